#!/usr/bin/env bash
# Worker scaling: one Sluice worker pinned to CPU 0 next to two workers left to the scheduler,
# same load (wrk -t2 -c128, unpinned) and the same upstream (nginx, two workers, 128-byte
# answers, keep-alive), alternated round by round. Prints, per configuration, the median req/s,
# Sluice's CPU per request (utime+stime / requests), the CPU the load side (wrk + upstream) spent
# per request, and how busy the whole machine was (from /proc/stat).
#
# On a machine with as many CPUs as workers the load side competes with the proxy for the same
# CPUs, so req/s cannot show the workers' scaling there; CPU µs per request can: a worker that
# contended with the other (a shared lock, a shared cache line, the kernel's accept queue) would
# cost more per request with two than with one.
#
# MODE=gzip measures where the proxy, not the load, is the limit: the upstream serves a 64 KiB JSON
# document and Sluice compresses it (gzip level 5) for wrk, which asks for gzip. Compressing costs
# the proxy about 0.55 ms per request, against some 0.05 ms for wrk and the upstream together, so
# there two workers can show how the proxy scales. (MODE=tls-handshake, a full TLS handshake with
# an RSA 4096 certificate per request, was meant for the same; but wrk's own TLS client costs about
# as much CPU per handshake as Sluice does, so the load is the limit there too.)
#
# Needs: apt-get install -y wrk nginx-light (and openssl for MODE=tls-handshake)
# Usage: bench/scaling.sh [rounds] [duration-seconds]     (SLUICE=path/to/sluice to skip the build;
#        MODE=keep-alive (default), MODE=gzip or MODE=tls-handshake)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
DURATION=${2:-8}
UP_PORT=${UP_PORT:-18181}
PROXY_PORT=${PROXY_PORT:-18180}
SCRATCH=${SLUICE_SCRATCH:-.build-bench}
MODE=${MODE:-keep-alive}
source bench/lib/common.sh
case $MODE in
    keep-alive) URL=http://127.0.0.1:$PROXY_PORT/; WRK_HEADER=(); LISTENER_TLS=""; COMPRESSION="" ;;
    gzip)
        mkdir -p "$WORK/www"
        python3 bench/lib/json64k.py "$WORK/www/64k.json"
        chmod 755 "$WORK" "$WORK/www"; chmod 644 "$WORK/www/64k.json"   # nginx's workers read it as their user
        URL=http://127.0.0.1:$PROXY_PORT/64k.json; WRK_HEADER=(-H "Accept-Encoding: gzip"); LISTENER_TLS=""
        COMPRESSION="    compression: { gzip: true, level: 5, min_bytes: 1024, types: [application/json] }" ;;
    tls-handshake)
        openssl req -x509 -newkey rsa:4096 -nodes -days 2 -subj /CN=bench.test \
            -addext "subjectAltName=IP:127.0.0.1" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1 \
            || { echo "scaling: openssl could not make the certificate" >&2; exit 1; }
        URL=https://127.0.0.1:$PROXY_PORT/; WRK_HEADER=(-H "Connection: close"); COMPRESSION=""
        LISTENER_TLS="    tls: { certificates: [{ cert: \"$WORK/cert.pem\", key: \"$WORK/key.pem\" }], session_tickets: false, session_cache: false }" ;;
    *) echo "scaling: MODE is keep-alive, gzip or tls-handshake" >&2; exit 2 ;;
esac

if [ -z "${SLUICE:-}" ]; then bench_build "$SCRATCH"; SLUICE=$SCRATCH/release/sluice; fi
if [ "$MODE" = gzip ]; then
    bench_nginx_upstream "$UP_PORT" "" 2 "$WORK/www"
    up_ok=0
    for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$UP_PORT/64k.json" && { up_ok=1; break; }; sleep 0.1; done
    [ "$up_ok" = 1 ] || { echo "scaling: the upstream does not serve /64k.json" >&2; exit 1; }
else
    bench_nginx_upstream "$UP_PORT" "" 2
    bench_wait_http "$UP_PORT"
fi
# The master and its two workers (the pid file and the workers exist once it answers).
NGINX_PIDS="$(cat "$WORK/nginx.pid") $(pgrep -P "$(cat "$WORK/nginx.pid")" | tr '\n' ' ')"
[ "$(wc -w <<<"$NGINX_PIDS")" -ge 3 ] || { echo "scaling: nginx workers not found ($NGINX_PIDS)" >&2; exit 1; }

config() { # workers
    cat <<YAML
workers: $1
listeners:
  - name: bench
    address: 127.0.0.1:$PROXY_PORT
$LISTENER_TLS
admin: { address: "127.0.0.1:$((PROXY_PORT + 100))" }
access_log: { path: off }
limits: { max_requests_per_connection: 0, upstream_max_idle: 4096 }
upstreams:
  app: { endpoints: ["127.0.0.1:$UP_PORT"] }
routes:
  - name: bench
    match: { path_prefix: "/" }
    upstream: app
    sticky: none
$COMPRESSION
YAML
}
config 1 >"$WORK/one.yaml"
config 2 >"$WORK/two.yaml"

ticks() { local t=0; for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(bench_cpu_ticks "$p"))); done; echo $t; }
machine() { awk '/^cpu / { print $2+$3+$4+$5+$6+$7+$8, $5+$6 }' /proc/stat; }  # total, idle+iowait
HZ=$(getconf CLK_TCK)

run() { # name pin-prefix... -> one line: name req/s sluice-us/req load-us/req busy%
    local name=$1 yaml=$2; shift 2
    "$@" "$SLUICE" run --config "$WORK/$yaml" >"$WORK/sluice-$name.log" 2>&1 &
    local sp=$!
    PIDS+=("$sp")
    # (run is in a pipeline, a subshell: on failure it stops its own Sluice before it exits.)
    local ok=0 hdrs
    for _ in $(seq 50); do curl -skf -o /dev/null "${WRK_HEADER[@]}" "$URL" && { ok=1; break; }; sleep 0.1; done
    if [ "$ok" = 0 ]; then
        echo "scaling: $name: Sluice does not answer $URL" >&2; tail -n 20 "$WORK/sluice-$name.log" >&2
        kill "$sp"; exit 1
    fi
    if [ "$MODE" = gzip ]; then
        hdrs=$(curl -sf -D - -o /dev/null -H "Accept-Encoding: gzip" "$URL" || true)
        if ! grep -qi "^content-encoding: gzip" <<<"$hdrs"; then
            echo "scaling: $name: the response is not gzip-compressed" >&2; kill "$sp"; exit 1
        fi
    fi
    wrk -t2 -c128 -d2s "${WRK_HEADER[@]}" "$URL" >/dev/null   # warm-up
    local s0 l0 m0 i0 s1 l1 m1 i1 out req rps
    s0=$(ticks "$sp"); l0=$(ticks $NGINX_PIDS); read -r m0 i0 <<<"$(machine)"
    out=$(wrk -t2 -c128 -d"${DURATION}s" "${WRK_HEADER[@]}" "$URL" 2>&1)
    s1=$(ticks "$sp"); l1=$(ticks $NGINX_PIDS); read -r m1 i1 <<<"$(machine)"
    kill "$sp"; wait "$sp" 2>/dev/null || true
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$sp" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
    req=$(awk '/requests in/ { print $1 }' <<<"$out")
    rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
    if grep -qE "Socket errors|Non-2xx" <<<"$out"; then echo "scaling: $name: $(grep -E 'Socket errors|Non-2xx' <<<"$out")" >&2; fi
    awk -v n="$name" -v rps="$rps" -v req="$req" -v s=$((s1 - s0)) -v l=$((l1 - l0)) -v m=$((m1 - m0)) -v i=$((i1 - i0)) -v hz="$HZ" \
        'BEGIN { printf "%s %.0f %.2f %.2f %.0f\n", n, rps, s / hz * 1e6 / req, l / hz * 1e6 / req, (m - i) * 100 / m }'
}

RESULTS=$WORK/results.txt
for r in $(seq "$ROUNDS"); do
    run one-pinned one.yaml taskset -c 0 | tee -a "$RESULTS" >&2
    run two-unpinned two.yaml env | tee -a "$RESULTS" >&2
done

what="128 B keep-alive"
[ "$MODE" = tls-handshake ] && what="128 B, a new connection and a full TLS handshake (RSA 4096) per request"
[ "$MODE" = gzip ] && what="a 64 KiB JSON response gzipped by Sluice (level 5), keep-alive"
echo "bench/scaling.sh: $(nproc) CPUs ($(awk -F: '/model name/ { print $2; exit }' /proc/cpuinfo | sed 's/^ *//')), $ROUNDS round(s) x ${DURATION}s, wrk -t2 -c128, upstream nginx 2 workers, $what"
echo
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    n, rps, s, l, b = line.split()
    rows.setdefault(n, []).append((float(rps), float(s), float(l), float(b)))
print("| configuration | req/s (median) | min-max | Sluice CPU µs/req | upstream nginx CPU µs/req | machine busy |")
print("|---|--:|--:|--:|--:|--:|")
med = {}
for n in ("one-pinned", "two-unpinned"):
    rs = rows.get(n, [])
    if not rs:
        continue
    col = lambda k: statistics.median(r[k] for r in rs)
    med[n] = col(0)
    print(f"| {n} | {col(0):,.0f} | {min(r[0] for r in rs):,.0f}-{max(r[0] for r in rs):,.0f} | {col(1):.2f} | {col(2):.2f} | {col(3):.0f}% |")
if len(med) == 2 and med["one-pinned"]:
    print(f"\ntwo workers / one worker: {med['two-unpinned'] / med['one-pinned']:.2f}x req/s")
PY
