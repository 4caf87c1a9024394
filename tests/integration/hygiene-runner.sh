#!/usr/bin/env bash
# tests/run.sh against misbehaving tests (issue 15):
#  1. a test that leaves a process, a network namespace, a loop device and
#     a scratch directory behind is failed, each leftover is named, and the
#     runner removes them all;
#  2. Ctrl-C (SIGINT to the runner) stops the test under way at once: the
#     runner exits 130 within seconds, the test's own cleanup has stopped
#     what it started, and nothing of it is left.
. "$(dirname "$0")/../lib/common.sh"
require ip losetup timeout
[ "$(id -u)" = 0 ] || skip "network namespaces and loop devices need root"

# alive PID : running (a zombie waits only for its parent to reap it)
alive() { [ -e "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

S=$T/suite
mkdir -p "$S"
cat >"$S/leak.sh" <<'EOS'
. "$TOP/tests/lib/common.sh"
sleep 300 &                                   # not tracked
echo $! >"$HYG/leak.pid"
scratch_leak=$(mktemp -d "/var/tmp/volmig-test.$VOLMIG_TAG.XXXXXX")
echo "$scratch_leak" >"$HYG/leak.dir"
truncate -s 1M "$scratch_leak/img"
losetup -f --show "$scratch_leak/img" >"$HYG/leak.loop"
ip netns add "volmig-leak-$$"
echo "netns volmig-leak-$$" >>"$VOLMIG_LEDGER"
echo "volmig-leak-$$" >"$HYG/leak.netns"
exit 0
EOS
cat >"$S/slow.sh" <<'EOS'
. "$TOP/tests/lib/common.sh"
sleep 300 &
track_pid $!
echo $! >"$HYG/slow.pid"
echo "$T" >"$HYG/slow.dir"
sleep 300
EOS

log "1. a test that leaves things behind"
rc=0
HYG=$T VOLMIG_TESTS_DIR=$S VOLMIG_LOGDIR=$T/logs1 "$TOP/tests/run.sh" --integration-only leak \
    >"$T/run1.out" 2>&1 || rc=$?
cat "$T/run1.out"
[ $rc != 0 ] || fail "the runner passed a test that left things behind"
grep -q "LEFT BEHIND by integration/leak" "$T/run1.out" || fail "the leftovers are not reported"
grep -q "process $(cat "$T/leak.pid"): sleep 300" "$T/run1.out" || fail "the process is not named"
grep -q "network namespace $(cat "$T/leak.netns")" "$T/run1.out" || fail "the namespace is not named"
grep -q "loop device $(cat "$T/leak.loop")" "$T/run1.out" || fail "the loop device is not named"
grep -q "directory $(cat "$T/leak.dir")" "$T/run1.out" || fail "the directory is not named"
grep -q "^FAIL integration/leak" "$T/run1.out" || fail "the test is not failed"
alive "$(cat "$T/leak.pid")" && fail "the process is still running"
ip netns list | grep -qw "$(cat "$T/leak.netns")" && fail "the namespace is still there"
losetup -a | grep -q "$(cat "$T/leak.dir")" && fail "the loop device is still attached"
[ -e "$(cat "$T/leak.dir")" ] && fail "the directory is still there"

log "2. Ctrl-C during a test"
# As from a terminal: the runner leads its own process group, SIGINT not
# ignored (bash ignores it in a background job), and Ctrl-C signals the
# whole group.
HYG=$T VOLMIG_TESTS_DIR=$S VOLMIG_LOGDIR=$T/logs2 python3 -c '
import os, signal, sys
os.setsid()
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' "$TOP/tests/run.sh" --integration-only slow >"$T/run2.out" 2>&1 &
runner=$!
track_pid $runner
wait_for 20 test -s "$T/slow.dir" || fail "the slow test did not start"
kill -INT -- -$runner
t0=$(date +%s)
rc=0
wait $runner || rc=$?
cat "$T/run2.out"
assert_eq "$rc" 130 "the runner's exit status after SIGINT"
[ $(( $(date +%s) - t0 )) -lt 20 ] || fail "the runner took $(( $(date +%s) - t0 )) s to stop"
alive "$(cat "$T/slow.pid")" && fail "the slow test's process is still running"
[ -e "$(cat "$T/slow.dir")" ] && fail "the slow test's directory is still there"
grep -q "LEFT BEHIND" "$T/run2.out" && fail "the slow test, interrupted, left something"
log "ok"
