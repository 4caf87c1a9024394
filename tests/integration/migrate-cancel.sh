#!/usr/bin/env bash
# SIGINT to volmig migrate in each phase: (a) copying, into a slow
# destination; (b) READY, while the memory migration runs into a destination
# QEMU that is stopped (SIGSTOP) and a source limited to 4 KiB/s.  (The
# pre-switchover pause is not tested: no reliable way was found to hold
# volmig there; it reaches it ~0.1 s after READY.)  Each time: exit 3, a `cancelled` event, the VM runs, no job and
# no volmig- node is left, the source is unchanged.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3 nbdkit

random_file "$T/src" 32
before=$(sha "$T/src")
# Some RAM, so that a memory migration has something to send (phase b).
export QEMU_EXTRA="-m 128"
src_qemu q "$T/src"
p="$T/q.qmp2"

check_cancelled() { # NAME
    migrate_wait "$1"
    assert_eq "$(eval echo "\$${1}_rc")" 3 "exit status of a cancelled migration ($1)"
    assert_eq "$(count_event "$1" cancelled)" 1 "cancelled events ($1)"
    assert_running "$p"
    wait_for 30 test "$(migration_status "$p")" != cancelling || true
    assert_clean "$p"
    assert_eq "$(sha "$T/src")" "$before" "source changed ($1)"
    log "$1: cancelled cleanly"
}

# (a) copying
truncate -s 32M "$T/slow"
port=$(free_port)
# 2 MiB/s (the rate filter counts bits); a small mirror buffer keeps little
# in flight, so that the cancellation does not wait long for it.
start_nbdkit slow $port -i 127.0.0.1 --filter=rate file "$T/slow" rate=16M
migrate_bg ca --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/" --switchover none \
    --buf-size 1M
wait_event ca started
assert_eq "$(job_field "$p" "volmig-$ca_pid-m0" status)" running "mirror status at the signal"
kill -INT $ca_pid
check_cancelled ca
kill $slow_pid

# (b) READY, memory migration under way into a stopped destination
truncate -s 32M "$T/dst"
port=$(free_port)
start_serve srv --target "$T/dst" --listen 127.0.0.1:$port
mport=$(free_port)
dst_qemu "" dq "tcp:127.0.0.1:$mport" "$T/dst"
kill -STOP $dq_pid
# ...and a source that sends slowly: the migration stays active.
qmp "$p" migrate-set-parameters '{"max-bandwidth":4096}' >/dev/null || fail "migrate-set-parameters"
migrate_bg cb --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/" \
    --switchover "migrate:tcp:127.0.0.1:$mport"
wait_event cb switchover
wait_for 30 bash -c "[ \"\$(python3 '$QMPPY' '$p' query-migrate | python3 -c 'import json,sys; print(json.load(sys.stdin).get(\"status\",\"\"))')\" = active ]" \
    || fail "the memory migration never became active (status $(migration_status "$p"))"
kill -INT $cb_pid
check_cancelled cb
# The destination may already have gone when the source cancelled.
kill -CONT $dq_pid 2>/dev/null || true
kill -9 $dq_pid 2>/dev/null || true
qmp "$p" migrate-set-parameters '{"max-bandwidth":1073741824}' >/dev/null || fail "migrate-set-parameters"

log "ok"
