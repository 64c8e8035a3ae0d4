#!/usr/bin/env bash
# Two Sluice binaries (e.g. before and after a change) on the same nginx upstream, alternating
# rounds in one run: 1 worker, wrk -t1 -c32 -d3s, 128 B keep-alive. Prints requests/s per round.
# Usage: bench/ab-binaries.sh BINARY_A BINARY_B [rounds]
# Needs: wrk, nginx (see bench/README.md).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 BINARY_A BINARY_B [rounds]" >&2; exit 64; }
cd "$(dirname "$0")/.."
source bench/lib/common.sh
UP_PORT=18481; PORT=18480
bench_nginx_upstream "$UP_PORT"
cat >"$WORK/sluice.yaml" <<YAML
workers: 1
listeners: [{ name: bench, address: "127.0.0.1:$PORT" }]
admin: { address: "127.0.0.1:$((PORT + 100))" }
state_file: off
upstreams: { app: { endpoints: ["127.0.0.1:$UP_PORT"] } }
routes:
  - { name: bench, match: { path_prefix: "/" }, upstream: app, sticky: none }
YAML
ROUNDS=${3:-3}
for round in $(seq "$ROUNDS"); do
  for bin in "$1" "$2"; do
    "$bin" run --config "$WORK/sluice.yaml" --no-watch >/dev/null 2>&1 &
    pid=$!
    bench_wait_http "$PORT"
    wrk -t1 -c32 -d1s "http://127.0.0.1:$PORT/" >/dev/null
    rps=$(wrk -t1 -c32 -d3s "http://127.0.0.1:$PORT/" | awk '/Requests\/sec/ {print $2}')
    echo "round $round $bin $rps"
    kill $pid; wait $pid 2>/dev/null || true
  done
done
