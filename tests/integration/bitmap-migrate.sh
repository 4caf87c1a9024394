#!/usr/bin/env bash
# --mode bitmap --switchover migrate:URI on loopback: the drive goes to a
# file behind nbdkit's rate filter (so pass 0 takes seconds and a guest
# write provably lands in it), the VM's memory to a destination QEMU started
# with -incoming on that same file.  The last pass runs inside the memory
# migration's pre-switchover pause.  Afterwards the destination runs, the
# source is postmigrate, the destination volume equals the source, the
# pause is reported and nothing of volmig's is left in the source QEMU.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3 nbdkit

mib=32
random_file "$T/src" $mib
random_file "$T/dst" $mib
export QEMU_EXTRA="-m 128"
src_qemu q "$T/src"
p="$T/q.qmp2"
port=$(free_port)
start_nbdkit slow $port -i 127.0.0.1 --filter=rate file "$T/dst" rate=32M   # 4 MiB/s
mport=$(free_port)
dst_qemu "" dq "tcp:127.0.0.1:$mport" "$T/dst"

migrate_bg mig --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/" \
    --mode bitmap --switchover "migrate:tcp:127.0.0.1:$mport" --converge-below 0 --retries 0
wait_event mig started
# Guest writes that provably land during pass 0 (a writer outside the
# guest is not paused by the migration, so none may race the final pass).
burst_writes "$p" disk0 8 0x33
has_event mig pass && fail "pass 0 ended before the guest writes"
migrate_wait mig
assert_eq "$mig_rc" 0 "volmig migrate exit status"
wait_for 30 test "$(qemu_status "$T/dq.qmp2")" = running \
    || fail "destination QEMU is not running: $(qemu_status "$T/dq.qmp2")"
assert_eq "$(qemu_status "$p")" postmigrate "source QEMU status"
assert_eq "$(migration_status "$p")" completed "source migration status"
kill $slow_pid
same_bytes "$T/src" "$T/dst"
for e in started pass converged ready switchover paused completed; do
    has_event mig $e || fail "no '$e' event"
done
assert_eq "$(event_field mig switchover mode)" migrate "switchover mode"
[ "$(live_passes mig)" -ge 2 ] || fail "fewer than 2 live passes"
[ -n "$(event_field mig paused seconds)" ] || fail "no pause length"
log "pause: $(event_field mig paused seconds) s; QEMU downtime $(event_field mig paused qemu_downtime_ms) ms"
assert_clean "$p"
assert_eq "$(qmp "$p" query-block-exports)" "[]" "exports left in QEMU"
assert_eq "$(bitmaps "$p")" "" "dirty bitmaps left in QEMU"
log "ok"
