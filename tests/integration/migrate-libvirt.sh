#!/usr/bin/env bash
# volmig migrate against a QEMU that libvirt owns (libvirt:DOMAIN): the
# domain's disk, named by its device id as a user would, is pivoted onto a
# new file; the domain keeps running on it, and the data are equal.
. "$(dirname "$0")/../lib/common.sh"
require libvirtd virsh qemu-system-x86_64 python3
[ "$(id -u)" = 0 ] || skip "libvirtd for a system domain needs root"

DOM=volmig-mig-$$
LV="$TOP/tests/lib/libvirt.sh"
trap '"$LV" destroy "$DOM"; cleanup' EXIT
random_file "$T/disk.img" 64
truncate -s 80M "$T/new.img"
"$LV" start "$DOM" "$T/disk.img" || fail "could not start a libvirt domain"

dev=$(virsh -c qemu:///system qemu-monitor-command "$DOM" '{"execute":"query-block"}' \
    | python3 -c 'import json,sys; b=json.load(sys.stdin)["return"][0]; print(b["qdev"].split("/")[3])')
log "the domain's disk is device $dev; pivot it onto new.img through libvirt"
"$VOLMIG" migrate --qmp "libvirt:$DOM" --volume "$dev=file:$T/new.img" --switchover pivot \
    --output json >"$T/events" || { cat "$T/events"; fail "volmig migrate through libvirt failed"; }
grep -q '"event":"completed"' "$T/events" || fail "no completed event"

node=$(virsh -c qemu:///system qemu-monitor-command "$DOM" '{"execute":"query-block"}' \
    | python3 -c 'import json,sys; b=json.load(sys.stdin)["return"][0]; print(b["inserted"]["file"])')
log "the device now reads from: $node"
case "$node" in *new.img*) ;; *) fail "the domain's disk is not on new.img after the pivot: $node" ;; esac
assert_eq "$(virsh -c qemu:///system domstate "$DOM")" running "domain state"
cmp -n $((64 << 20)) "$T/disk.img" "$T/new.img" || fail "new.img differs from the disk"
jobs=$(virsh -c qemu:///system qemu-monitor-command "$DOM" '{"execute":"query-jobs"}')
grep -q '"return":\[\]' <<<"$jobs" || fail "jobs left behind: $jobs"
echo ok
