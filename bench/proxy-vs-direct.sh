#!/usr/bin/env bash
# Throughput of a release Sluice (1 worker, pinned to CPU 0) next to the same upstream reached
# directly, measured in one run: wrk -t1 -c64 -d${DURATION}s, 128-byte responses, keep-alive.
# The upstream is nginx returning a fixed 128-byte body (pinned with wrk to CPU 1).
# Needs: apt-get install -y wrk nginx-light   (or nginx)
# Usage: bench/proxy-vs-direct.sh [rounds] [duration-seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
DURATION=${2:-10}
UP_PORT=${UP_PORT:-18081}
PROXY_PORT=${PROXY_PORT:-18080}
SCRATCH=${SLUICE_SCRATCH:-.build}
source bench/lib/common.sh

bench_build "$SCRATCH"
bench_nginx_upstream "$UP_PORT" 1
cat >"$WORK/sluice.yaml" <<YAML
workers: 1
listeners:
  - name: bench
    address: 127.0.0.1:$PROXY_PORT
admin: { address: "127.0.0.1:$((PROXY_PORT + 100))" }
upstreams:
  app: { endpoints: ["127.0.0.1:$UP_PORT"] }
routes:
  - name: bench
    match: { path_prefix: "/" }
    upstream: app
    sticky: none
YAML
taskset -c 0 "$SCRATCH/release/sluice" run --config "$WORK/sluice.yaml" 2>"$WORK/sluice.log" &
PIDS+=($!)
SLUICE_PID=$!
bench_wait_http "$PROXY_PORT"

run_wrk() { taskset -c 1 wrk -t1 -c64 -d"${DURATION}s" --latency "$1" 2>&1; }
# Warm-up.
taskset -c 1 wrk -t1 -c64 -d2s "http://127.0.0.1:$PROXY_PORT/" >/dev/null
taskset -c 1 wrk -t1 -c64 -d2s "http://127.0.0.1:$UP_PORT/" >/dev/null
TICK=$(getconf CLK_TCK)
printf '| round | target | requests/s | p50 | p99 | sluice CPU µs/request |\n|---|---|---|---|---|---|\n'
for r in $(seq "$ROUNDS"); do
    for target in direct sluice; do
        if [ $target = direct ]; then url="http://127.0.0.1:$UP_PORT/"; else url="http://127.0.0.1:$PROXY_PORT/"; fi
        before=$(bench_cpu_ticks "$SLUICE_PID")
        out=$(run_wrk "$url")
        after=$(bench_cpu_ticks "$SLUICE_PID")
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        total=$(echo "$out" | awk '/requests in/ {print $1}')
        p50=$(echo "$out" | awk '$1=="50%" {print $2}')
        p99=$(echo "$out" | awk '$1=="99%" {print $2}')
        cpu="-"
        if [ $target = sluice ]; then cpu=$(awk -v t=$((after - before)) -v hz="$TICK" -v n="$total" 'BEGIN{printf "%.1f", t/hz*1e6/n}'); fi
        errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
        printf '| %s | %s | %s | %s | %s | %s |%s\n' "$r" "$target" "$rps" "$p50" "$p99" "$cpu" "${errs:+ $errs}"
    done
done
