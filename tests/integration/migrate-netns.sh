#!/usr/bin/env bash
# Two hosts (network namespaces), three volumes in one call, one target
# larger than its source, into three `volmig serve` exports on the
# destination; guest writes during the copy; --switchover migrate: into a
# destination QEMU started with -incoming.  Afterwards the destination QEMU
# runs, the source is postmigrate, and every destination volume equals its
# source byte for byte.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 qemu-io python3 ip

mib=(32 64 48)          # source sizes
dmib=(32 96 48)         # destination sizes: volume 1 gets a larger one
for i in 0 1 2; do
    random_file "$T/src$i" ${mib[$i]}
    random_file "$T/dst$i" ${dmib[$i]}    # stale data must be overwritten
done
netns_setup

ports=() vols=()
for i in 0 1 2; do
    ports[$i]=$(free_port)
    serve_in "$IN_DST" srv$i --target "$T/dst$i" --listen "$DST_IP:${ports[$i]}" --export vol$i
    vols+=(--volume "disk$i=nbd://$DST_IP:${ports[$i]}/vol$i")
done
mport=$(free_port)
dst_qemu "$IN_DST" dq "tcp:$DST_IP:$mport" "$T/dst0" "$T/dst1" "$T/dst2"
QEMU_PREFIX=$IN_SRC SRC_BPS=$((3 << 20)) src_qemu q "$T/src0" "$T/src1" "$T/src2"
p="$T/q.qmp2"

MIGRATE_WRAP=$IN_SRC migrate_bg mig --qmp "unix:$T/q.qmp" "${vols[@]}" \
    --switchover "migrate:tcp:$DST_IP:$mport"
wait_event mig started
# Guest writes while every mirror copies, through HMP qemu-io.  The read
# throttle holds each mirror in its copy phase, until the node's first HMP
# write (QEMU 7.2 lifts the throttle of a node that HMP qemu-io touched): so
# many writes on disk0 and disk1, then exactly one on disk2, the last write
# of all; until it is done disk2's mirror cannot be READY, so neither can
# the migration.
for i in 0 1 2; do
    assert_eq "$(job_field "$p" "volmig-$mig_pid-m$i" status)" running "mirror $i before the writes"
done
guest_hmp_writes "$p" disk0 $((${mib[0]} << 20)) 6 3
guest_hmp_writes "$p" disk1 $((${mib[1]} << 20)) 6 4
assert_eq "$(job_field "$p" "volmig-$mig_pid-m2" status)" running "mirror 2 before its write"
has_event mig ready && fail "the mirrors were READY before the guest's last write"
hmp_write "$p" disk2 0x42 $((3 << 20)) 65536
unthrottle "$p" 3
migrate_wait mig
assert_eq "$mig_rc" 0 "volmig migrate exit status"

wait_for 30 test "$(qemu_status "$T/dq.qmp2")" = running \
    || fail "destination QEMU is not running: $(qemu_status "$T/dq.qmp2")"
assert_eq "$(qemu_status "$p")" postmigrate "source QEMU status"
assert_eq "$(migration_status "$p")" completed "source migration status"
assert_clean "$p"
for i in 0 1 2; do
    same_bytes "$T/src$i" "$T/dst$i" $((${mib[$i]} << 20))
done
for e in started ready switchover migrated completed; do
    has_event mig $e || fail "no '$e' event"
done
assert_eq "$(event_field mig switchover mode)" migrate "switchover mode"
assert_eq "$(count_event mig failed)" 0 "failed attempts"
log "ok: three volumes moved, destination running"
