#!/usr/bin/env bash
# The one test runner behind `make check`: every cmocka unit binary, then
# every integration script, each counted once.  It closes with the line
# "N passed, N failed" so that a run which executed nothing is visible.
#
#   tests/run.sh [--unit-only] [PATTERN...]   PATTERN filters test names.
#
# An integration script exits 0 (pass), 77 (skipped: a peer is missing) or
# anything else (fail).  Under CI a skip counts as a failure: a missing tool
# must never pass silently.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD VOLMIG="$PWD/$BUILD/volmig" TOP="$PWD"
unit_only=0
patterns=()
for a in "$@"; do
    case "$a" in
        --unit-only) unit_only=1 ;;
        *) patterns+=("$a") ;;
    esac
done

selected() {
    [ ${#patterns[@]} -eq 0 ] && return 0
    local p
    for p in "${patterns[@]}"; do [[ "$1" == *"$p"* ]] && return 0; done
    return 1
}

passed=0 failed=0 skipped=0
failures=()
logdir=$(mktemp -d /tmp/volmig-check.XXXXXX)

record() { # name status log
    case "$2" in
        0)  passed=$((passed + 1)); printf 'PASS %s\n' "$1" ;;
        77) if [ -n "${CI:-}" ]; then
                failed=$((failed + 1)); failures+=("$1")
                printf 'FAIL %s (skipped, which CI does not allow)\n' "$1"
                tail -n 5 "$3" | sed 's/^/     | /'
            else
                skipped=$((skipped + 1)); printf 'SKIP %s: %s\n' "$1" "$(tail -n 1 "$3")"
            fi ;;
        *)  failed=$((failed + 1)); failures+=("$1")
            printf 'FAIL %s (exit %s), last lines of %s:\n' "$1" "$2" "$3"
            tail -n 25 "$3" | sed 's/^/     | /' ;;
    esac
}

for t in "$BUILD"/tests/unit/test_*; do
    [ -x "$t" ] || continue
    name=unit/$(basename "$t")
    selected "$name" || continue
    log="$logdir/$(basename "$t").log"
    if [ -n "${VALGRIND:-}" ]; then
        valgrind -q --error-exitcode=99 --leak-check=full "$t" >"$log" 2>&1
    else
        "$t" >"$log" 2>&1
    fi
    rc=$?
    # Each cmocka case counts on its own; a binary that died before its
    # summary counts as one failure.
    np=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' "$log" | head -n 1)
    nf=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' "$log" | head -n 1)
    if [ $rc = 0 ] && [ -n "$np" ]; then
        passed=$((passed + np)); printf 'PASS %s (%s cases)\n' "$name" "$np"
    else
        passed=$((passed + ${np:-0}))
        [ -n "$nf" ] && failed=$((failed + nf - 1))
        record "$name" "${rc/#0/1}" "$log"
    fi
done

if [ $unit_only = 0 ]; then
    for t in tests/integration/*.sh; do
        [ -f "$t" ] || continue
        name=integration/$(basename "$t" .sh)
        selected "$name" || continue
        log="$logdir/$(basename "$t" .sh).log"
        start=$(date +%s)
        timeout -k 10 600 bash "$t" >"$log" 2>&1
        rc=$?
        [ $rc = 124 ] && echo "timed out after 600 s" >>"$log"
        record "$name ($(( $(date +%s) - start )) s)" "$rc" "$log"
    done
fi

echo
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[*]}"
[ $skipped -gt 0 ] && echo "skipped: $skipped (a peer is missing; run 'make deps')"
echo "logs: $logdir"
echo "$passed passed, $failed failed"
[ $failed = 0 ] && [ $((passed + failed)) -gt 0 ]
