#!/usr/bin/env bash
# Builds Sluice's libFuzzer targets and runs each for a bounded time.
#
#   Tests/Fuzz/run-fuzzers.sh [SECONDS] [TARGET...]
#
# SECONDS defaults to 60 per target; TARGETs default to all four. Each target runs on a copy of
# its committed seed corpus (Tests/Fuzz/Corpus/<target>) in a temporary folder, so the committed
# corpus is never flooded. Prints per target the run time, executions and executions per second.
# Exits non-zero when any target crashes, fails an invariant, times out on an input or runs out of
# memory; the crashing input's path is printed (it is kept in the temporary folder).
#
# Environment: FUZZ_SCRATCH (SwiftPM scratch path, default <repo>/.build-fuzz), FUZZ_KEEP=1 keeps
# the temporary folder even when everything passed.
set -u -o pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(FuzzRequestParser FuzzResponseParser FuzzChunkedDecoder FuzzConfigLoader)
fi
scratch="${FUZZ_SCRATCH:-$root/.build-fuzz}"
case "$seconds" in
    ''|*[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-fuzz.XXXXXX")"
export SWIFT_BACKTRACE=enable=no  # the Swift backtracer can hang for minutes after a crash
failed=0
summary=()

for target in "${targets[@]}"; do
    if [ ! -d "$here/Corpus/$target" ]; then
        echo "unknown target $target (no Corpus/$target)" >&2
        exit 2
    fi
    echo "== $target: building"
    # Debug (-Onone): at -O planted bugs were found far later. Only the last --sanitize reaches the
    # compiler, so the fuzzer+address pair is passed with -Xswiftc as well.
    if ! (cd "$here" && swift build --scratch-path "$scratch" --product "$target" \
            --sanitize fuzzer -Xswiftc -sanitize=fuzzer,address \
            -Xswiftc -parse-as-library -Xswiftc -DFUZZING) > "$work/$target.build.log" 2>&1; then
        grep -v "Cannot export local symbol" "$work/$target.build.log" | tail -40
        echo "== $target: BUILD FAILED (log: $work/$target.build.log)"
        exit 1
    fi
    binary="$scratch/debug/$target"
    corpus="$work/$target-corpus"
    artifacts="$work/$target-artifacts"
    mkdir -p "$corpus" "$artifacts"
    cp "$here/Corpus/$target/"* "$corpus/"
    log="$work/$target.log"
    echo "== $target: fuzzing for ${seconds}s on a copy of $(ls "$corpus" | wc -l) seed inputs"
    start=$(date +%s%N)
    "$binary" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" > "$log" 2>&1
    status=$?
    took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
    took="$((took_ms / 1000)).$(printf '%03d' $((took_ms % 1000)) | cut -c1)"
    # libFuzzer's final stats (-print_final_stats=1); the "Done N runs" line only when no crash.
    runs="$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)"
    if [ -z "$runs" ]; then runs="$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)"; fi
    runs="${runs:-0}"
    rate=$(( took_ms > 0 ? runs * 1000 / took_ms : runs ))
    crash="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)"
    if [ $status -ne 0 ] || [ -n "$crash" ]; then
        failed=1
        echo "---- $target output (last 60 lines) ----"
        tail -60 "$log"
        echo "----"
        line="$target: FAILED (exit $status) after ${took}s, $runs executions ($rate exec/s); crash input: ${crash:-none written} (log: $log)"
    else
        line="$target: ok, ${took}s, $runs executions, $rate exec/s, corpus $(ls "$corpus" | wc -l) inputs"
    fi
    echo "== $line"
    summary+=("$line")
done

echo
echo "Fuzzing summary:"
for line in "${summary[@]}"; do echo "  $line"; done
if [ $failed -ne 0 ]; then
    echo "Crash inputs and logs are kept in $work"
    exit 1
fi
if [ "${FUZZ_KEEP:-0}" = 1 ]; then echo "Work folder kept: $work"; else rm -rf "$work"; fi
