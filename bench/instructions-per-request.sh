#!/usr/bin/env bash
# User-space instructions per proxied request, counted exactly by valgrind (callgrind): Sluice,
# nginx and HAProxy each as a one-worker proxy between h2load (HTTP/1.1, 16 keep-alive
# connections) and one nginx upstream answering 128 bytes, on a 95/5 split. Each proxy runs twice
# under callgrind, with N1 and N2 requests; (Ir(N2) - Ir(N1)) / (N2 - N1) is the cost of one
# request with start-up and shutdown taken out. Unlike CPU time on a shared machine, the count does
# not move from run to run (kernel time is not counted: this is the proxies' own code and the
# libraries they call).
#
# Needs: apt-get install -y valgrind nginx-light haproxy nghttp2-client curl
# Usage: bench/instructions-per-request.sh [N1] [N2]     (SLUICE=path/to/sluice to skip the build)
#        SYSTEMS="sluice" to count only some of the proxies; CALLGRIND_DIR=dir keeps the callgrind
#        files there (for callgrind_annotate: where the instructions go, function by function; a
#        relative dir is taken from the repository's top folder).
set -euo pipefail
cd "$(dirname "$0")/.."
N1=${1:-2000}
N2=${2:-22000}
UP_PORT=${UP_PORT:-18391}
PROXY_PORT=${PROXY_PORT:-18390}
SCRATCH=${SLUICE_SCRATCH:-.build-bench}
source bench/lib/common.sh
source bench/lib/proxies.sh

if [ -z "${SLUICE:-}" ]; then bench_build "$SCRATCH"; SLUICE=$SCRATCH/release/sluice; fi
# Valgrind 3.19 cannot read the DWARF 5 of Swift binaries: give it a copy without debug info.
strip --strip-debug -o "$WORK/sluice" "$SLUICE"
bench_nginx_upstream "$UP_PORT" ""
bench_wait_http "$UP_PORT"

bench_proxy_configs "$PROXY_PORT" "$UP_PORT"

count() { # name requests command... -> total Ir of the run
    local name=$1 n=$2 vp
    shift 2
    valgrind --tool=callgrind --trace-children=no --callgrind-out-file="$WORK/cg.$name.$n" "$@" >"$WORK/vg.$name.$n.log" 2>&1 &
    vp=$!
    PIDS+=("$vp")
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PROXY_PORT/" && break; sleep 0.3; done
    h2load --h1 -n "$n" -c 16 -t1 "http://127.0.0.1:$PROXY_PORT/" >"$WORK/h2load.$name.$n.txt" 2>&1
    grep -q " $n succeeded" "$WORK/h2load.$name.$n.txt" || { echo "instructions: $name: not every request succeeded" >&2; cat "$WORK/h2load.$name.$n.txt" >&2; exit 1; }
    kill -TERM "$vp"; wait "$vp" 2>/dev/null || true
    awk '/^summary:/ { s += $2 } END { print s }' "$WORK"/cg."$name"."$n"*
}

echo "bench/instructions-per-request.sh: user-space instructions per request (callgrind), $N1 and $N2 requests, 128 B keep-alive"
echo
echo "| proxy | instructions per request |"
echo "|---|--:|"
declare -A PER
for sys in ${SYSTEMS:-sluice nginx haproxy}; do
    case $sys in
        sluice) cmd=("$WORK/sluice" run --config "$WORK/sluice.yaml") ;;
        nginx) cmd=(nginx -c "$WORK/nginx-proxy.conf") ;;
        haproxy) cmd=(haproxy -db -f "$WORK/haproxy.cfg") ;;
        *) echo "instructions: unknown system $sys (sluice, nginx, haproxy)" >&2; exit 2 ;;
    esac
    a=$(count "$sys" "$N1" "${cmd[@]}")
    b=$(count "$sys" "$N2" "${cmd[@]}")
    PER[$sys]=$(( (b - a) / (N2 - N1) ))
    if [ -n "${CALLGRIND_DIR:-}" ]; then mkdir -p "$CALLGRIND_DIR"; cp "$WORK"/cg."$sys".* "$CALLGRIND_DIR"/; fi
    echo "| $sys | ${PER[$sys]} |"
done
echo
if [ -n "${PER[sluice]:-}" ] && [ -n "${PER[nginx]:-}" ] && [ -n "${PER[haproxy]:-}" ]; then
    awk -v s="${PER[sluice]}" -v n="${PER[nginx]}" -v h="${PER[haproxy]}" \
        'BEGIN { printf "Sluice / nginx: %.2f; Sluice / HAProxy: %.2f\n", s / n, s / h }'
fi
