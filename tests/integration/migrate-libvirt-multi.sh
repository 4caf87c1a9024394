#!/usr/bin/env bash
# volmig migrate --qmp libvirt:DOMAIN with several disks in one call, each
# named as libvirt users name them (target, source path, alias): a copy
# only (--switchover none) leaves libvirt on the old disks with consistent
# copies; then a pivot of all of them moves libvirt's live and persistent
# XML.  No raw QMP is sent: the domain is not tainted custom-monitor.  A
# --mode bitmap run is refused up front, saying why.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/libvirt-helpers.sh"

DOM=volmig-lvmulti-$$
for d in a b c; do
    dd if=/dev/urandom of="$T/$d.img" bs=1M count=8 status=none
    truncate -s 32M "$T/$d.img" "$T/$d-copy.img" "$T/$d-new.img"
done
lv_domain "$DOM" persistent "$T/a.img" "$T/b.img" "$T/c.img"
untainted() {
    grep -q "tainted: custom-monitor" "/var/log/libvirt/qemu/$DOM.log" \
        && fail "the domain is tainted: $(grep tainted "/var/log/libvirt/qemu/$DOM.log")"
    return 0
}

log "copy only: vda by target, vdb by source path, vdc by alias"
"$VOLMIG" migrate --qmp "libvirt:$DOM" --volume "vda=file:$T/a-copy.img" \
    --volume "$T/b.img=file:$T/b-copy.img" --volume "virtio-disk2=file:$T/c-copy.img" \
    --switchover none --output json >"$T/events" 2>"$T/err" \
    || { cat "$T/events" "$T/err"; fail "copy-only failed"; }
for d in a b c; do same_bytes "$T/$d.img" "$T/$d-copy.img"; done
for t in vda:a vdb:b vdc:c; do
    assert_eq "$(lv_source "$DOM" "${t%:*}")" "$T/${t#*:}.img" "live XML ${t%:*} after none"
    assert_eq "$(lv_source "$DOM" "${t%:*}" --inactive)" "$T/${t#*:}.img" "persistent XML ${t%:*}"
    lv_no_job "$DOM" "${t%:*}"
done
untainted

log "--mode bitmap is refused before anything starts"
set +e
"$VOLMIG" migrate --qmp "libvirt:$DOM" --volume "vda=file:$T/a-new.img" --mode bitmap \
    2>"$T/err"; rc=$?
set -e
assert_eq "$rc" 2 "exit status of bitmap mode under libvirt"
grep -q "checkpoints need qcow2" "$T/err" || fail "unexpected: $(cat "$T/err")"

log "pivot all three in one call (write-blocking)"
"$VOLMIG" migrate --qmp "libvirt:$DOM" --volume "vda=file:$T/a-new.img" \
    --volume "vdb=file:$T/b-new.img" --volume "vdc=file:$T/c-new.img" \
    --switchover pivot --copy-mode write-blocking --output json >"$T/events" 2>"$T/err" \
    || { cat "$T/events" "$T/err"; fail "pivot failed"; }
for t in vda:a vdb:b vdc:c; do
    assert_eq "$(lv_source "$DOM" "${t%:*}")" "$T/${t#*:}-new.img" "live XML ${t%:*}"
    assert_eq "$(lv_source "$DOM" "${t%:*}" --inactive)" "$T/${t#*:}-new.img" "persistent XML ${t%:*}"
    lv_no_job "$DOM" "${t%:*}"
done
untainted
"${VIRSH[@]}" destroy "$DOM" >/dev/null
for d in a b c; do same_bytes "$T/$d.img" "$T/$d-new.img"; done
log "ok"
