#!/usr/bin/env bash
# The fault campaign's own harness (issue 15): a step that fails fails the
# run at once, and a run that hangs is stopped at its deadline; neither
# leaves a process behind (tests/run.sh checks that after every test).
# Run 3 of seed 7 is one volume, --switchover none, no cancel: its mirror
# is paused and resumed by the harness.
. "$(dirname "$0")/../lib/common.sh"
require qemu-system-x86_64 qemu-io qemu-img python3

campaign() { # OUT ENV... : run 3 of seed 7
    local out=$1 rc=0; shift
    env "$@" ONLY=3 timeout 300 bash "$TOP/tests/campaign/campaign.sh" 4 7 >"$T/$out" 2>&1 || rc=$?
    sed 's/^/    | /' "$T/$out"
    return $rc
}

log "1. block-job-resume fails: the run fails, naming the step"
t0=$(date +%s)
campaign resume.out HARNESS_FAULT=resume && fail "the campaign passed a run whose resume failed"
grep -q "harness: block-job-resume .* failed, the mirror stays paused" "$T/resume.out" \
    || fail "the failed step is not named"
grep -q "other failures 1" "$T/resume.out" || fail "the run is not counted as a failure"
[ $(( $(date +%s) - t0 )) -lt 120 ] || fail "the failed step took $(( $(date +%s) - t0 )) s to end the run"

log "2. a resume lost without a word (the old '|| true'): the deadline stops the run"
t0=$(date +%s)
campaign hang.out HARNESS_FAULT=hang RUN_DEADLINE=20 && fail "the campaign passed a run that hung"
grep -q "run 3 passed its deadline of 20 s; stopped" "$T/hang.out" || fail "the deadline is not reported"
grep -q "other failures 1" "$T/hang.out" || fail "the run is not counted as a failure"
[ $(( $(date +%s) - t0 )) -lt 90 ] || fail "the deadline took $(( $(date +%s) - t0 )) s"
log "ok"
