#!/usr/bin/env bash
# --mode bitmap --switchover none, SIGINT while the guest is paused for the
# final pass: volmig must resume the guest (QMP cont) as it cancels.
#
# --converge-below 1G sends the run to the pause right after pass 0, and
# 56 MiB of guest writes during pass 0 make the paused pass copy 56 MiB
# into a destination behind nbdkit's rate filter (8 MiB/s).  The copier
# keeps up to 16 MiB in flight (64 requests of 256 KiB) and a cancel waits
# for those, so the paused pass must be well over 16 MiB for the signal to
# find work not yet sent; with less, the pass completes and so does the
# run (exit 0, which would not test the cancel).
# Checked: the VM was paused when signalled, exit 3, one cancelled event
# and no paused or completed event, the VM running afterwards, nothing of
# volmig's left in QEMU, no socket directory left, the source unchanged.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3 nbdkit

vm_status_is() { # QMP STATUS
    [ "$(qemu_status "$1")" = "$2" ]
}

paused_pass_running() { # NAME : a paused pass started and has not ended
    has_event "$1" switchover && ! event_field "$1" pass paused | grep -qx true
}

random_file "$T/src" 64
src_qemu q "$T/src"
p="$T/q.qmp2"
assert_eq "$(qemu_status "$p")" running "VM status before the run"
truncate -s 64M "$T/dst"
port=$(free_port)
start_nbdkit slow $port -i 127.0.0.1 --filter=rate file "$T/dst" rate=64M   # 8 MiB/s

migrate_bg bm --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/" \
    --mode bitmap --switchover none --converge-below 1G --retries 0 --progress-interval 100
wait_event bm started
hmp_write "$p" disk0 0x5a 8M 56M
has_event bm pass && fail "pass 0 ended before the guest writes: the paused pass would be empty"
before=$(sha "$T/src")
wait_event bm switchover 60
wait_for 10 vm_status_is "$p" paused || fail "the VM was not paused for the final pass"
paused_pass_running bm || fail "the paused pass ended before the signal: nothing to test"
kill -INT $bm_pid
migrate_wait bm
assert_eq "$bm_rc" 3 "exit status of a run cancelled in the pause"
assert_eq "$(count_event bm cancelled)" 1 "cancelled events"
has_event bm paused && fail "a paused event after a cancel"
has_event bm completed && fail "a completed event after a cancel"
# No waiting here: volmig has exited, so the VM must already run.
assert_eq "$(qemu_status "$p")" running "VM status after the cancel"
bitmap_clean "$p"
assert_eq "$(find /tmp -maxdepth 1 -name "volmig-$bm_pid.*")" "" "socket directory left"
assert_eq "$(sha "$T/src")" "$before" "source changed"
log "ok"
