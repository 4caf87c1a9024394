#!/usr/bin/env bash
# The one test runner behind `make check`: every cmocka unit binary, then
# every integration script, each counted once.  It closes with the line
# "N passed, N failed" so that a run which executed nothing is visible.
#
#   tests/run.sh [--unit-only | --integration-only] [PATTERN...]
#
# PATTERN filters test names.  An integration script exits 0 (pass), 77
# (skipped: a peer is missing) or anything else (fail).  Under CI a skip
# counts as a failure: a missing tool must never pass silently.
#
# Nothing a test starts may outlive it: after each test the runner looks
# for its processes, network namespaces, mounts, loop devices and scratch
# directories (tests/lib/leftovers.sh, by the tag VOLMIG_TAG each test
# gets), fails the test if any is left, and removes them; the run ends
# with the same check over all its tests.  Other runs on the machine carry
# other tags and are not touched.  Ctrl-C (SIGINT) or SIGTERM stops the
# test under way, which cleans up after itself, and ends the run (130/143).
# Each test has a deadline (TEST_TIMEOUT seconds, 600 by default).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD VOLMIG="$PWD/$BUILD/volmig" TOP="$PWD"
. tests/lib/leftovers.sh
unit_only=0 integration_only=0
patterns=()
for a in "$@"; do
    case "$a" in
        --unit-only) unit_only=1 ;;
        --integration-only) integration_only=1 ;;
        *) patterns+=("$a") ;;
    esac
done
# VOLMIG_TESTS_DIR: another directory of integration scripts (the runner's
# own test runs it on a suite of misbehaving tests).
tests_dir=${VOLMIG_TESTS_DIR:-tests/integration}
timeout_s=${TEST_TIMEOUT:-600}
run_tag=vc$$
ntest=0
interrupted=0 cur=
on_signal() {
    interrupted=$1
    [ -z "$cur" ] || kill -TERM "$cur" 2>/dev/null
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap 'on_signal 129' HUP

selected() {
    [ ${#patterns[@]} -eq 0 ] && return 0
    local p
    for p in "${patterns[@]}"; do [[ "$1" == *"$p"* ]] && return 0; done
    return 1
}

passed=0 failed=0 skipped=0
failures=()
# The logs are kept when something failed; VOLMIG_LOGDIR or KEEP keeps them always.
if [ -n "${VOLMIG_LOGDIR:-}" ]; then
    logdir=$VOLMIG_LOGDIR; mkdir -p "$logdir"
else
    logdir=$(mktemp -d /tmp/volmig-check.XXXXXX)
fi

# run_one LOG CMD... : runs a test with its own tag and ledger, in the
# background so that a signal reaches the runner at once; sets rc and tag.
run_one() {
    local log=$1; shift
    ntest=$((ntest + 1))
    tag=${run_tag}t$ntest
    VOLMIG_TAG=$tag VOLMIG_LEDGER="$logdir/$tag.ledger" \
        timeout -k 10 "$timeout_s" "$@" >"$log" 2>&1 &
    cur=$!
    while :; do
        wait "$cur"; rc=$?
        kill -0 "$cur" 2>/dev/null || break     # else a signal woke the wait
    done
    cur=
    [ $rc = 124 ] && echo "timed out after $timeout_s s" >>"$log"
}

# check_left NAME LOG : what the test just run left behind fails it, and
# is removed.
check_left() {
    local what
    what=$(leftovers "$tag" "$logdir/$tag.ledger") && return 0
    {
        echo "LEFT BEHIND by $1:"
        sed 's/^/  /' <<<"$what"
    } | tee -a "$2"
    sweep_leftovers "$tag" "$logdir/$tag.ledger"
    rc=1
    return 1
}

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
    [ $integration_only = 0 ] && [ $interrupted = 0 ] || break
    [ -x "$t" ] || continue
    name=unit/$(basename "$t")
    selected "$name" || continue
    log="$logdir/$(basename "$t").log"
    if [ -n "${VALGRIND:-}" ]; then
        run_one "$log" valgrind -q --error-exitcode=99 --leak-check=full "$t"
    else
        run_one "$log" "$t"
    fi
    check_left "$name" "$log"
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
    for t in "$tests_dir"/*.sh; do
        [ $interrupted = 0 ] || break
        [ -f "$t" ] || continue
        name=integration/$(basename "$t" .sh)
        selected "$name" || continue
        log="$logdir/$(basename "$t" .sh).log"
        start=$(date +%s)
        run_one "$log" bash "$t"
        [ $interrupted = 0 ] || { echo "interrupted" >>"$log"; rc=$interrupted; }
        check_left "$name" "$log"
        record "$name ($(( $(date +%s) - start )) s)" "$rc" "$log"
    done
fi

# The whole run, once more: nothing any of its tests started is left.
cat "$logdir"/*.ledger >"$logdir/run.ledger" 2>/dev/null
if ! what=$(leftovers "${run_tag}t*" "$logdir/run.ledger"); then
    printf 'LEFT BEHIND by this run:\n%s\n' "$(sed 's/^/  /' <<<"$what")"
    sweep_leftovers "${run_tag}t*" "$logdir/run.ledger"
    failed=$((failed + 1)); failures+=("(leftovers)")
fi

echo
[ $interrupted = 0 ] || echo "interrupted: the tests after the one under way did not run"
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[*]}"
[ $skipped -gt 0 ] && echo "skipped: $skipped (a peer is missing; run 'make deps')"
if [ $failed = 0 ] && [ $interrupted = 0 ] && [ -z "${KEEP:-}" ] && [ -z "${VOLMIG_LOGDIR:-}" ]; then
    rm -rf "$logdir"
    echo "logs: none kept (KEEP=1 keeps them)"
else
    echo "logs: $logdir"
fi
echo "$passed passed, $failed failed"
[ $interrupted = 0 ] || exit $interrupted
[ $failed = 0 ] && [ $((passed + failed)) -gt 0 ]
