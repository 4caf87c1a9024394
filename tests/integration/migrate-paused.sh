#!/usr/bin/env bash
# A mirror paused from outside volmig (an operator's job-pause, or a fault
# harness's) copies nothing until it is resumed.  volmig names the job and
# says what to do, once per pause, and does not blame the destination ("no
# data moved") while the job is paused; once the job is resumed the
# migration finishes and the data are equal.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3

random_file "$T/src" 32
truncate -s 32M "$T/dst"
SRC_BPS=$((4 << 20)) src_qemu q "$T/src"   # reads throttled: the copy takes a while
p="$T/q.qmp2"

migrate_bg m --qmp "unix:$T/q.qmp" --volume "disk0=file:$T/dst" --switchover none \
    --progress-interval 200
wait_event m started
job=volmig-$m_pid-m0
qmp "$p" job-pause "{\"id\":\"$job\"}" >/dev/null || fail "job-pause"
paused_said() { grep -q 'paused from outside' "$T/m.json"; }
wait_for 20 paused_said || fail "volmig did not say that the job was paused"
msg=$(event_field m warning message | grep 'paused from outside')
log "volmig: $msg"
echo "$msg" | grep -q "$job" || fail "the warning does not name the job"
echo "$msg" | grep -q "job-resume" || fail "the warning does not say what to do"
assert_eq "$(event_field m warning job)" "$job" "the warning's job field"
sleep 12                                     # longer than the 10 s stall warning
grep -q 'no data moved' "$T/m.json" && fail "a paused job was taken for an unreachable destination"
assert_eq "$(grep -c 'paused from outside' "$T/m.json")" 1 "warnings for one pause"
qmp "$p" job-resume "{\"id\":\"$job\"}" >/dev/null || fail "job-resume"
unthrottle "$p" 1
migrate_wait m
assert_eq "$m_rc" 0 "exit status after the job was resumed"
same_bytes "$T/src" "$T/dst"
assert_clean "$p"
log "ok"
