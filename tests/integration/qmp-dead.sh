#!/usr/bin/env bash
# A monitor that goes away is an error, not a hang: QEMU killed while a
# command waits for its reply, a socket nobody serves, a monitor that is
# busy with another client (only the deadline ends that wait).
. "$(dirname "$0")/../lib/common.sh"
require qemu-system-x86_64

start_qemu vm '{"driver":"null-co","node-name":"disk0","size":1048576}'

log "QEMU killed while a command is in flight"
mkfifo "$T/in"
# The reply deadline (600 s) is far beyond how long this test waits below:
# an exit before it can only come from noticing the closed socket.
"$VOLMIG" qmp -v --timeout 600 "unix:$T/vm.qmp" <"$T/in" >"$T/out" 2>"$T/err" &
cpid=$!
track_pid $cpid
exec 3>"$T/in"
echo query-status >&3
wait_for 30 grep -q running "$T/out" || fail "first command got no reply"
kill -STOP "$vm_pid"            # QEMU can no longer answer
echo query-block >&3
wait_for 30 grep -q '^-> {"execute":"query-block"' "$T/err" || fail "second command not sent"
kill -KILL "$vm_pid"
wait_for 60 sh -c "! kill -0 $cpid 2>/dev/null" || fail "volmig qmp hangs after QEMU died"
set +e; wait $cpid; rc=$?; set -e
exec 3>&-
assert_eq "$rc" 1 "exit status"
grep -q 'closed' "$T/err" || fail "no 'closed' in the error: $(tail -n 2 "$T/err")"
assert_eq "$(wc -l <"$T/out")" 1 "only the first command has a reply"

log "a socket nobody serves"
set +e
"$VOLMIG" qmp "unix:$T/vm.qmp" -c query-status 2>"$T/err"; rc=$?
set -e
assert_eq "$rc" 1 "exit status on a dead socket"
grep -q 'Connection refused' "$T/err" || fail "unexpected error: $(cat "$T/err")"

log "a monitor busy with another client: the greeting never comes, the deadline ends it"
start_qemu vm2 '{"driver":"null-co","node-name":"disk0","size":1048576}'
mkfifo "$T/in2"
"$VOLMIG" qmp "unix:$T/vm2.qmp" <"$T/in2" >"$T/out2" 2>&1 &
track_pid $!
exec 4>"$T/in2"
echo query-status >&4
wait_for 30 grep -q running "$T/out2" || fail "first client did not connect"
set +e
"$VOLMIG" qmp --timeout 1 "unix:$T/vm2.qmp" -c query-status 2>"$T/err"; rc=$?
set -e
exec 4>&-
assert_eq "$rc" 1 "exit status on a busy monitor"
grep -q 'no QMP greeting' "$T/err" || fail "unexpected error: $(cat "$T/err")"
log "ok"
