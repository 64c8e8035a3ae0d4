#!/usr/bin/env bash
# What per-request metrics recording costs: the same release Sluice (1 worker, pinned to CPU 0)
# with recording on and with `--no-metrics`, measured alternately in one run (on, off, on, off...)
# under wrk -t1 -c64 for 128-byte responses from nginx (pinned with wrk to CPU 1).
# Needs: apt-get install -y wrk nginx-light
# Usage: bench/metrics-cost.sh [rounds] [duration-seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
DURATION=${2:-10}
UP_PORT=${UP_PORT:-18181}
ON_PORT=${ON_PORT:-18182}
OFF_PORT=${OFF_PORT:-18183}
SCRATCH=${SLUICE_SCRATCH:-.build}
source bench/lib/common.sh

bench_build "$SCRATCH"
BIN="$SCRATCH/release/sluice"
bench_nginx_upstream "$UP_PORT" 1
start_sluice() {  # port admin-port extra-args...
    local port=$1 admin=$2; shift 2
    cat >"$WORK/sluice-$port.yaml" <<YAML
workers: 1
listeners: [{ name: bench, address: "127.0.0.1:$port" }]
admin: { address: "127.0.0.1:$admin" }
upstreams: { app: { endpoints: ["127.0.0.1:$UP_PORT"] } }
routes: [{ name: bench, match: { path_prefix: "/" }, upstream: app, sticky: none }]
YAML
    taskset -c 0 "$BIN" run --config "$WORK/sluice-$port.yaml" "$@" 2>"$WORK/sluice-$port.log" &
    PIDS+=($!)
}
start_sluice "$ON_PORT" $((ON_PORT + 100))
ON_PID=${PIDS[-1]}
start_sluice "$OFF_PORT" $((OFF_PORT + 100)) --no-metrics
OFF_PID=${PIDS[-1]}
for p in $ON_PORT $OFF_PORT; do bench_wait_http "$p"; done
TICK=$(getconf CLK_TCK)
for p in $ON_PORT $OFF_PORT; do taskset -c 1 wrk -t1 -c64 -d2s "http://127.0.0.1:$p/" >/dev/null; done
printf '| round | metrics | requests/s | p99 | CPU µs/request |\n|---|---|---|---|---|\n'
for r in $(seq "$ROUNDS"); do
    for mode in on off; do
        if [ $mode = on ]; then port=$ON_PORT; pid=$ON_PID; else port=$OFF_PORT; pid=$OFF_PID; fi
        before=$(bench_cpu_ticks "$pid")
        out=$(taskset -c 1 wrk -t1 -c64 -d"${DURATION}s" --latency "http://127.0.0.1:$port/")
        after=$(bench_cpu_ticks "$pid")
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        total=$(echo "$out" | awk '/requests in/ {print $1}')
        p99=$(echo "$out" | awk '$1=="99%" {print $2}')
        cpu=$(awk -v t=$((after - before)) -v hz="$TICK" -v n="$total" 'BEGIN{printf "%.2f", t/hz*1e6/n}')
        printf '| %s | %s | %s | %s | %s |\n' "$r" "$mode" "$rps" "$p99" "$cpu"
    done
done
