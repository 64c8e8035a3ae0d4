#!/usr/bin/env bash
# What `busy_poll:` changes in wake-ups: the same release Sluice (1 worker, pinned to CPU 0) with
# busy_poll off and with `busy_poll: D`, measured alternately in one run (off, on, off, on...) under
# wrk -t1 -c64 for 128-byte responses from nginx (pinned with wrk to CPU 1). Per request: Sluice's
# CPU, how often Sluice went to sleep (voluntary context switches of all its threads: each is a
# wake-up someone pays for later), and the upstream nginx worker's context switches.
# Needs: apt-get install -y wrk nginx-light
# Usage: bench/busy-poll-wakeups.sh [rounds] [duration-seconds] [busy-poll]   (default 3 10 50us)
#        SLUICE_BIN=path/to/sluice skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
DURATION=${2:-10}
BUSY=${3:-50us}
UP_PORT=${UP_PORT:-18191}
OFF_PORT=${OFF_PORT:-18192}
ON_PORT=${ON_PORT:-18193}
SCRATCH=${SLUICE_SCRATCH:-.build-bench}
source bench/lib/common.sh

BIN=${SLUICE_BIN:-}
if [ -z "$BIN" ]; then bench_build "$SCRATCH"; BIN="$SCRATCH/release/sluice"; fi
bench_nginx_upstream "$UP_PORT" 1
UP_WORKER=""
for _ in $(seq 50); do
    [ -f "$WORK/nginx.pid" ] && UP_WORKER=$(pgrep -P "$(cat "$WORK/nginx.pid")" | head -1 || true)
    [ -n "$UP_WORKER" ] && break
    sleep 0.1
done
start_sluice() {  # port admin-port busy-poll
    cat >"$WORK/sluice-$1.yaml" <<YAML
workers: 1
listeners: [{ name: bench, address: "127.0.0.1:$1" }]
admin: { address: "127.0.0.1:$2" }
limits: { max_requests_per_connection: 0 }
upstreams: { app: { endpoints: ["127.0.0.1:$UP_PORT"] } }
routes: [{ name: bench, match: { path_prefix: "/" }, upstream: app, sticky: none }]
busy_poll: $3
YAML
    taskset -c 0 "$BIN" run --config "$WORK/sluice-$1.yaml" >"$WORK/sluice-$1.log" 2>&1 &
    PIDS+=($!)
}
start_sluice "$OFF_PORT" $((OFF_PORT + 100)) off
OFF_PID=${PIDS[-1]}
start_sluice "$ON_PORT" $((ON_PORT + 100)) "$BUSY"
ON_PID=${PIDS[-1]}
for p in $OFF_PORT $ON_PORT; do bench_wait_http "$p"; done
# switches PID: "voluntary involuntary" context switches summed over the process's threads.
switches() {
    cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ {v += $2} /^nonvoluntary_ctxt_switches/ {n += $2} END {print v + 0, n + 0}'
}
TICK=$(getconf CLK_TCK)
for p in $OFF_PORT $ON_PORT; do taskset -c 1 wrk -t1 -c64 -d2s "http://127.0.0.1:$p/" >/dev/null; done
printf '| round | busy_poll | requests/s | p99 | Sluice CPU µs/req | Sluice sleeps/req | Sluice involuntary/req | upstream switches/req |\n'
printf '|---|---|--:|--:|--:|--:|--:|--:|\n'
for r in $(seq "$ROUNDS"); do
    for mode in off "$BUSY"; do
        if [ "$mode" = off ]; then port=$OFF_PORT; pid=$OFF_PID; else port=$ON_PORT; pid=$ON_PID; fi
        c0=$(bench_cpu_ticks "$pid"); read -r v0 n0 <<<"$(switches "$pid")"; read -r uv0 un0 <<<"$(switches "$UP_WORKER")"
        out=$(taskset -c 1 wrk -t1 -c64 -d"${DURATION}s" --latency "http://127.0.0.1:$port/")
        c1=$(bench_cpu_ticks "$pid"); read -r v1 n1 <<<"$(switches "$pid")"; read -r uv1 un1 <<<"$(switches "$UP_WORKER")"
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        total=$(echo "$out" | awk '/requests in/ {print $1}')
        p99=$(echo "$out" | awk '$1=="99%" {print $2}')
        awk -v r="$r" -v m="$mode" -v rps="$rps" -v p99="$p99" -v t=$((c1 - c0)) -v hz="$TICK" -v n="$total" \
            -v v=$((v1 - v0)) -v iv=$((n1 - n0)) -v u=$((uv1 + un1 - uv0 - un0)) \
            'BEGIN { printf "| %s | %s | %s | %s | %.2f | %.3f | %.3f | %.3f |\n", r, m, rps, p99, t/hz*1e6/n, v/n, iv/n, u/n }'
    done
done
