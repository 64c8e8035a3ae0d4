#!/usr/bin/env bash
# Heap allocations per proxied request in steady state: a release Sluice (1 worker) runs with an
# LD_PRELOAD malloc counter; after a warm-up, N keep-alive requests go through it (wrk, 16
# connections); the counter is read before and after. Needs: gcc, wrk, nginx-light.
# Usage: bench/malloc-per-request.sh [requests-seconds] [close|h2c]
#   close: every request on a new connection (Connection: close), to see what a connection costs
#   h2c: HTTP/2 with prior knowledge (h2load, 10 connections x 100 streams; needs nghttp2-client)
# ROUTE_EXTRA / GROUP_EXTRA (environment): YAML added to the route (indented 4 spaces) and to the
# upstream group's flow mapping (starting with a comma), e.g. to count with retries configured:
#   ROUTE_EXTRA='    retries: { attempts: 2, per_try_timeout: 2s }' GROUP_EXTRA=', balance: least_request, max_requests: 100000'
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-3}
WRK_EXTRA=()
[ "${2:-}" = close ] && WRK_EXTRA=(-H "Connection: close")
H2=0
[ "${2:-}" = h2c ] && H2=1
UP_PORT=${UP_PORT:-18281}
PORT=${PORT:-18280}
SCRATCH=${SLUICE_SCRATCH:-.build}
source bench/lib/common.sh

bench_build "$SCRATCH"
gcc -O2 -shared -fPIC -o "$WORK/mallcount.so" bench/malloc-count/mallcount.c -ldl -lpthread
bench_nginx_upstream "$UP_PORT"
cat >"$WORK/sluice.yaml" <<YAML
workers: 1
listeners: [{ name: bench, address: "127.0.0.1:$PORT", http2: $([ $H2 = 1 ] && echo true || echo false) }]
admin: { address: "127.0.0.1:$((PORT + 100))" }
upstreams: { app: { endpoints: ["127.0.0.1:$UP_PORT"]${GROUP_EXTRA:-} } }
routes:
  - name: bench
    match: { path_prefix: "/" }
    split: { app: 100 }
    sticky: none
${ROUTE_EXTRA:-}
YAML
MALLCOUNT_OUT="$WORK/count" LD_PRELOAD="$WORK/mallcount.so" "$SCRATCH/release/sluice" run --config "$WORK/sluice.yaml" --no-watch 2>"$WORK/sluice.log" &
PIDS+=($!)
bench_wait_http "$PORT"
count() { rm -f "$WORK/count"; touch "$WORK/count.req"; for _ in $(seq 100); do [ -s "$WORK/count" ] && break; sleep 0.05; done; cat "$WORK/count"; }
if [ $H2 = 1 ]; then
    # h2c: h2load, 10 connections x 100 streams (nghttp2-client); nghttp2's own per-stream state counts too.
    h2load -t1 -c10 -m100 -D 1 "http://127.0.0.1:$PORT/" >/dev/null   # warm-up
    before=$(count)
    served=$(h2load -t1 -c10 -m100 -D "$DURATION" "http://127.0.0.1:$PORT/" | awk '/^requests:/ {print $8}')
else
wrk -t1 -c16 -d1s "http://127.0.0.1:$PORT/" >/dev/null   # warm-up: pools, buffers, caches
before=$(count)
served=$(wrk -t1 -c16 -d"${DURATION}s" "${WRK_EXTRA[@]}" "http://127.0.0.1:$PORT/" | awk '/requests in/ {print $1}')
fi
after=$(count)
awk -v b="$before" -v a="$after" -v n="$served" 'BEGIN { printf "requests: %d, mallocs: %d, mallocs per request: %.4f\n", n, a - b, (a - b) / n }'
