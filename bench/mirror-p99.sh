#!/usr/bin/env bash
# Does mirroring move the primary's latency? Two release Sluice instances (1 worker each) in one
# run, forwarding to the same primary upstream (answers after PRIMARY_MS): "on" copies MIRROR_PERCENT (100) % of the
# requests to a mirror ten times slower (MIRROR_MS, compare: true), "off" has no mirror. wrk
# (--latency) alternates between them for ROUNDS rounds; each round's p50/p99 are printed, then the
# mirror counters of "on". Both upstreams are bench/lib/delay-server.py (Python asyncio).
# Needs: wrk, python3. LOG_DIR=DIR keeps the two instances' logs there.
# Usage: bench/mirror-p99.sh [rounds] [duration-seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
DURATION=${2:-10}
CONNS=${3:-8}
PRIMARY_MS=${PRIMARY_MS:-2}
MIRROR_MS=${MIRROR_MS:-20}
MIRROR_PERCENT=${MIRROR_PERCENT:-100}
UP_PORT=${UP_PORT:-18381}
MIRROR_PORT=${MIRROR_PORT:-18382}
ON_PORT=${ON_PORT:-18383}
OFF_PORT=${OFF_PORT:-18384}
SCRATCH=${SLUICE_SCRATCH:-.build}
source bench/lib/common.sh

bench_build "$SCRATCH"
BIN="$SCRATCH/release/sluice"
python3 bench/lib/delay-server.py "$UP_PORT" "$PRIMARY_MS" & PIDS+=($!)
python3 bench/lib/delay-server.py "$MIRROR_PORT" "$MIRROR_MS" & PIDS+=($!)
start_sluice() {  # port admin-port mirror-yaml
    cat >"$WORK/sluice-$1.yaml" <<YAML
workers: 1
listeners: [{ name: bench, address: "127.0.0.1:$1" }]
admin: { address: "127.0.0.1:$2" }
state_file: off
upstreams:
  app: { endpoints: ["127.0.0.1:$UP_PORT"] }
  shadow: { endpoints: ["127.0.0.1:$MIRROR_PORT"] }
routes:
  - name: bench
    upstream: app
    sticky: none
$3
YAML
    "$BIN" run --config "$WORK/sluice-$1.yaml" --no-watch 2>"${LOG_DIR:-$WORK}/sluice-$1.log" >/dev/null & PIDS+=($!)
}
start_sluice "$ON_PORT" $((ON_PORT + 100)) "    mirror: { to: shadow, percent: $MIRROR_PERCENT, compare: true }"
start_sluice "$OFF_PORT" $((OFF_PORT + 100)) ""
for p in $ON_PORT $OFF_PORT; do bench_wait_http "$p"; done
for p in $ON_PORT $OFF_PORT; do wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$p/" >/dev/null; done   # warm-up
run() {  # label port
    local out
    out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$2/")
    printf '%-12s p50 %-8s p99 %-8s %s req/s\n' "$1" "$(awk '$1 == "50%" {print $2}' <<<"$out")" \
        "$(awk '$1 == "99%" {print $2}' <<<"$out")" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
}
echo "primary ${PRIMARY_MS} ms, mirror ${MIRROR_MS} ms (${MIRROR_PERCENT}%, compare: true), wrk -t1 -c$CONNS -d${DURATION}s, $ROUNDS rounds"
for r in $(seq "$ROUNDS"); do
    run "mirror on" "$ON_PORT"
    run "mirror off" "$OFF_PORT"
done
curl -s "http://127.0.0.1:$((ON_PORT + 100))/metrics" | grep '^sluice_mirror_requests_total' | grep -v ' 0$' || true
