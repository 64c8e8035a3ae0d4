#!/usr/bin/env bash
# User-space CPU time per proxied request of Sluice, nginx and HAProxy, from perf's samples: each
# proxy (one worker, pinned to CPU 0; the configs of bench/instructions-per-request.sh) proxies
# h2load --h1 (64 keep-alive connections, pinned to CPU 1 with the nginx upstream, 128 B answers)
# while `perf record` samples it; its CPU time over the run (utime + stime from /proc) is split by
# where the samples fell (kernel or any user-space code: the proxy, its libraries, the vDSO).
# /proc's own utime/stime split is itself a sample, one per scheduler tick (250 a second here),
# scaled onto the exact total; perf takes 4,000 a second. Rounds alternate the proxies; medians.
#
# Needs: apt-get install -y linux-perf nginx-light haproxy nghttp2-client curl (perf needs
# kernel.perf_event_paranoid <= 1, or root)
# Usage: bench/sampled-user-time.sh [rounds] [requests]     (SLUICE=path/to/sluice to skip the build;
#        SYSTEMS="sluice nginx" for some of them)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
N=${2:-300000}
UP_PORT=${UP_PORT:-18396}
PROXY_PORT=${PROXY_PORT:-18395}
SCRATCH=${SLUICE_SCRATCH:-.build-bench}
source bench/lib/common.sh
source bench/lib/proxies.sh

if [ -z "${SLUICE:-}" ]; then bench_build "$SCRATCH"; SLUICE=$SCRATCH/release/sluice; fi
bench_nginx_upstream "$UP_PORT" 1
bench_wait_http "$UP_PORT"
bench_proxy_configs "$PROXY_PORT" "$UP_PORT"
HZ=$(getconf CLK_TCK)

measure() { # name command... -> "name cpu-us/req user-share"
    local name=$1 pid
    shift
    taskset -c 0 "$@" >"$WORK/$name.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    local ok=0
    for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PROXY_PORT/" && { ok=1; break; }; sleep 0.1; done
    [ "$ok" = 1 ] || { echo "sampled: $name does not answer" >&2; tail -n 20 "$WORK/$name.log" >&2; kill "$pid"; exit 1; }
    taskset -c 1 h2load --h1 -n 20000 -c 64 -t1 "http://127.0.0.1:$PROXY_PORT/" >/dev/null 2>&1 || true  # warm-up
    local t0 t1
    t0=$(bench_cpu_ticks "$pid")
    # (The h2load check below judges the run; perf returns h2load's status.)
    perf record -q -F 4000 -p "$pid" -o "$WORK/perf.data" -- \
        taskset -c 1 h2load --h1 -n "$N" -c 64 -t1 "http://127.0.0.1:$PROXY_PORT/" >"$WORK/h2load.txt" 2>&1 || true
    t1=$(bench_cpu_ticks "$pid" 2>/dev/null || echo 0)
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    grep -q " $N succeeded" "$WORK/h2load.txt" || { echo "sampled: $name: not every request succeeded" >&2; tail -n 5 "$WORK/h2load.txt" >&2; exit 1; }
    local kernel
    kernel=$(perf report -i "$WORK/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null \
        | awk '/\[kernel\.kallsyms\]/ && k == "" { gsub("%", "", $1); k = $1 } END { print k }')
    # No kernel samples at all: perf fell back to user space only (perf_event_paranoid >= 2, not root).
    [ -n "$kernel" ] || { echo "sampled: $name: perf recorded no kernel samples (run as root or lower kernel.perf_event_paranoid)" >&2; exit 1; }
    awk -v n="$name" -v t=$((t1 - t0)) -v hz="$HZ" -v req="$N" -v k="$kernel" \
        'BEGIN { printf "%s %.2f %.4f\n", n, t / hz * 1e6 / req, 1 - k / 100 }'
}

RESULTS=$WORK/results.txt
for _ in $(seq "$ROUNDS"); do
    for sys in ${SYSTEMS:-sluice nginx haproxy}; do
        # In this shell, not a pipeline's subshell: a failure stops the script and its EXIT trap
        # stops the proxy (kept in PIDS).
        case $sys in
            sluice) measure sluice "$SLUICE" run --config "$WORK/sluice.yaml" >>"$RESULTS" ;;
            nginx) measure nginx nginx -c "$WORK/nginx-proxy.conf" >>"$RESULTS" ;;
            haproxy) measure haproxy haproxy -db -f "$WORK/haproxy.cfg" >>"$RESULTS" ;;
            *) echo "sampled: unknown system $sys (sluice, nginx, haproxy)" >&2; exit 2 ;;
        esac
        tail -n 1 "$RESULTS" >&2
    done
done

echo "bench/sampled-user-time.sh: $ROUNDS round(s) of $N requests, 128 B keep-alive, h2load --h1 -c64"
echo
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    n, cpu, share = line.split()
    rows.setdefault(n, []).append((float(cpu), float(share)))
print("| proxy | CPU µs/req | user-space share of samples | user-space µs/req (min-max) |")
print("|---|--:|--:|--:|")
user = {}
for n, rs in rows.items():
    us = [c * s for c, s in rs]
    user[n] = statistics.median(us)
    print(f"| {n} | {statistics.median(c for c, _ in rs):.2f} | {statistics.median(s for _, s in rs) * 100:.1f}% | "
          f"{user[n]:.2f} ({min(us):.2f}-{max(us):.2f}) |")
if "sluice" in user:
    print()
    print("; ".join(f"Sluice / {n}: {user['sluice'] / user[n]:.2f}" for n in user if n != "sluice" and user[n]))
PY
