#!/usr/bin/env bash
# Failures and retries of volmig migrate:
#  1. the destination server is killed (SIGKILL) mid-copy and restarted on
#     the same port: the attempt fails, a retry follows after the backoff
#     (1 s here) and succeeds; the data are equal;
#  2. a destination that stays down: retries with a doubling backoff
#     (0.5 s, 1 s), then exit 1 with the reason; nothing left in QEMU;
#  3. volmig migrate itself killed (SIGKILL) mid-copy: the next run removes
#     the dead run's job and nodes, says so, and succeeds.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3

random_file "$T/src" 32
src_qemu q "$T/src"
p="$T/q.qmp2"

log "1. destination killed mid-copy, restarted"
truncate -s 32M "$T/dst"
port=$(free_port)
start_serve dst --target "$T/dst" --listen "127.0.0.1:$port"
migrate_bg r1 --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/" \
    --switchover none --speed 4M --retries 3 --backoff 1
wait_event r1 started
job=$(qmp "$p" query-jobs | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
wait_for 60 job_progress_over "$p" "$job" $((2 << 20)) || fail "the copy does not progress"
kill -9 "$dst_pid"
wait "$dst_pid" 2>/dev/null || true
wait_event r1 retrying 60
start_serve dst --target "$T/dst" --listen "127.0.0.1:$port"
migrate_wait r1
assert_eq "$r1_rc" 0 "exit status after a retry"
assert_eq "$(event_field r1 retrying delay | head -n 1)" 1.0 "first backoff"
[ "$(count_event r1 failed)" -ge 1 ] || fail "no failed event before the retry"
assert_eq "$(event_field r1 started attempt | tail -n 1)" 2 "the successful attempt"
has_event r1 completed || fail "no completed event"
cmp "$T/src" "$T/dst" || fail "destination differs after the retried migration"
assert_clean "$p"
kill "$dst_pid"; wait "$dst_pid" 2>/dev/null || true

log "2. a destination that stays down"
port=$(free_port)
migrate_bg r2 --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/" \
    --switchover none --retries 2 --backoff 0.5
migrate_wait r2
assert_eq "$r2_rc" 1 "exit status when every attempt fails"
assert_eq "$(event_field r2 retrying delay | tr '\n' ' ')" "0.5 1.0 " "backoff doubles"
assert_eq "$(count_event r2 failed)" 3 "failed attempts"
grep -q "127.0.0.1:$port" "$T/r2.err" || fail "the error does not name the target: $(cat "$T/r2.err")"
assert_clean "$p"
assert_running "$p"

log "3. volmig migrate killed mid-copy; the next run cleans up after it"
truncate -s 32M "$T/dst3"
port=$(free_port)
start_serve dst3 --target "$T/dst3" --listen "127.0.0.1:$port"
migrate_bg r3 --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/" \
    --switchover none --speed 1M
wait_event r3 started
kill -9 "$r3_pid"
wait "$r3_pid" 2>/dev/null || true
left=$(qmp "$p" query-jobs | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
assert_eq "$left" 1 "the killed run's job is still in QEMU"
migrate_bg r4 --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/" --switchover none
migrate_wait r4
assert_eq "$r4_rc" 0 "exit status of the run after a killed one"
event_field r4 warning message | grep -q "left in QEMU" || fail "no warning about the leftovers"
cmp "$T/src" "$T/dst3" || fail "destination differs"
assert_clean "$p"
echo ok
