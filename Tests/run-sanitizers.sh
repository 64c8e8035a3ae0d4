#!/usr/bin/env bash
# Runs the integration tests (SluiceProxyTests) under ThreadSanitizer, then AddressSanitizer.
#
#   Tests/run-sanitizers.sh [thread|address]...      (default: both, thread first)
#
# Scratch paths: <repo>/.build-tsan and <repo>/.build-asan (override with TSAN_SCRATCH,
# ASAN_SCRATCH). Extra arguments for `swift test` can be given in SANITIZER_TEST_ARGS (for
# example `--skip StreamingTests`). Exits non-zero when a run fails or a sanitizer reports.
set -u -o pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
kinds=("$@")
if [ ${#kinds[@]} -eq 0 ]; then kinds=(thread address); fi
export SWIFT_BACKTRACE=enable=no  # the Swift backtracer can hang for minutes after a crash
failed=0
results=()

for kind in "${kinds[@]}"; do
    case "$kind" in
        thread)
            scratch="${TSAN_SCRATCH:-$root/.build-tsan}"
            # Every race is reported (and counted below), not only the first.
            env=(TSAN_OPTIONS="log_path=$scratch/sanitizer-report second_deadlock_stack=1 ${TSAN_OPTIONS:-}")
            ;;
        address)
            scratch="${ASAN_SCRATCH:-$root/.build-asan}"
            # XCTest leaks a little of its own at exit (Tests/lsan.supp).
            env=(LSAN_OPTIONS="suppressions=$here/lsan.supp ${LSAN_OPTIONS:-}"
                 ASAN_OPTIONS="log_path=$scratch/sanitizer-report detect_leaks=1 ${ASAN_OPTIONS:-}")
            ;;
        *)
            echo "usage: $0 [thread|address]..." >&2
            exit 2
            ;;
    esac
    log="$scratch/sanitizer-test.log"  # inside the (git-ignored) scratch folder
    mkdir -p "$scratch"
    # Reports go to sanitizer-report.<pid>, one file per process: the test runner and the sluice
    # processes some tests start (their stderr is discarded, so a report there would be lost).
    rm -f "$scratch"/sanitizer-report.*
    echo "== $kind sanitizer: swift test --sanitize=$kind --scratch-path $scratch --filter SluiceProxyTests (log: $log)"
    start=$(date +%s)
    # shellcheck disable=SC2086
    (cd "$root" && env "${env[@]}" swift test --sanitize="$kind" --scratch-path "$scratch" \
        --filter SluiceProxyTests ${SANITIZER_TEST_ARGS:-}) > "$log" 2>&1
    status=$?
    took=$(( $(date +%s) - start ))
    pattern="WARNING: ThreadSanitizer|ERROR: AddressSanitizer|ERROR: LeakSanitizer"
    reports=$(cat "$log" "$scratch"/sanitizer-report.* 2>/dev/null | grep -cE "$pattern")
    summary=$(grep -E "^(✔|✘) Test run with" "$log" | tail -1)
    if [ $status -ne 0 ] || [ "$reports" -ne 0 ]; then
        failed=1
        for f in "$log" "$scratch"/sanitizer-report.*; do
            [ -f "$f" ] && grep -qE "$pattern" "$f" && { echo "---- $f"; grep -E -A40 "$pattern" "$f" | head -160; }
        done
        grep -E "✘|error:" "$log" | head -40
        results+=("$kind: FAILED (exit $status, $reports sanitizer reports) in ${took}s; $summary; log $log, reports $scratch/sanitizer-report.*")
    else
        results+=("$kind: clean in ${took}s; $summary")
    fi
done

echo
for line in "${results[@]}"; do echo "  $line"; done
exit $failed
