#!/usr/bin/env bash
# A persistent domain (as KubeVirt's virt-launcher defines them) moved by
# its target name vda onto a new file through libvirt's block copy and
# pivot (tests/tools/lvd over engine/libvirt_domain.h): libvirt's live and
# persistent XML name the new file, no job is left, and after `virsh
# destroy` + `virsh start` QEMU runs on the new file, whose bytes equal the
# source's, guest writes during the copy included.  Then a transient
# domain's disk, named by its source path, onto a block device, with
# libvirt's block job events ignored: READY and the pivot's end are then
# seen only by polling libvirt, as when an event is lost.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/libvirt-helpers.sh"
require losetup

DOM=volmig-lvpivot-$$
dd if=/dev/urandom of="$T/src.img" bs=1M count=24 status=none
truncate -s 64M "$T/src.img" "$T/new.img"
lv_domain "$DOM" persistent "$T/src.img"

log "start the copy of vda and wait for READY"
"$LVD" "$DOM" start vda="file:$T/new.img" || fail "start"
"$LVD" "$DOM" wait-ready vda >"$T/out" || fail "wait-ready"
grep -q "ready vda" "$T/out" || fail "no ready line: $(cat "$T/out")"

log "guest writes while the mirror runs reach both files"
lv_write "$DOM" vda 0x5a 1M 1M
lv_write "$DOM" vda 0xa5 40M 64k

log "pivot"
"$LVD" "$DOM" finish pivot vda || fail "pivot"
"$LVD" "$DOM" verify vda="file:$T/new.img" || fail "lvd verify"
assert_eq "$(lv_source "$DOM" vda)" "$T/new.img" "live XML after the pivot"
assert_eq "$(lv_source "$DOM" vda --inactive)" "$T/new.img" "persistent XML after the pivot"
lv_no_job "$DOM" vda
assert_eq "$(lv_state "$DOM")" running "state after the pivot"

log "destroy and start: QEMU opens the new file"
"${VIRSH[@]}" destroy "$DOM" >/dev/null
same_bytes "$T/src.img" "$T/new.img"
"${VIRSH[@]}" start "$DOM" >/dev/null || fail "the domain does not start again"
"${VIRSH[@]}" qemu-monitor-command "$DOM" --hmp 'info block' >"$T/block"
grep -q "$T/new.img" "$T/block" || fail "QEMU does not run on new.img: $(cat "$T/block")"
grep -q "$T/src.img" "$T/block" && fail "QEMU still opens src.img: $(cat "$T/block")"

log "a write after the restart lands in the new file only"
lv_write "$DOM" vda 0x33 8M 64k
"${VIRSH[@]}" destroy "$DOM" >/dev/null
assert_eq "$(od -An -tx1 -j $((8 << 20)) -N 1 "$T/new.img" | tr -d ' ')" 33 "new.img at 8M"
cmp -s "$T/src.img" "$T/new.img" && fail "src.img changed after the pivot"

log "a transient domain pivoted by its source path onto a block device"
truncate -s 64M "$T/t.img" "$T/blk.img"
dd if=/dev/urandom of="$T/t.img" bs=1M count=4 conv=notrunc status=none
dev=$(losetup -f --show "$T/blk.img") || fail "losetup"
track_loop "$dev"
lv_domain "$DOM-t" transient "$T/t.img"
"$LVD" --no-job-events "$DOM-t" copy --timeout 20 "$T/t.img=file:$dev" >"$T/out" \
    || fail "copy onto $dev without job events: $(cat "$T/out")"
assert_eq "$(lv_source "$DOM-t" vda)" "$dev" "live XML"
"${VIRSH[@]}" dumpxml "$DOM-t" | grep -q "<disk type='block' device='disk'>" \
    || fail "not a block disk: $("${VIRSH[@]}" dumpxml "$DOM-t" | grep -A3 '<disk')"
lv_no_job "$DOM-t" vda
"${VIRSH[@]}" destroy "$DOM-t" >/dev/null
same_bytes "$T/t.img" "$dev"
log "ok"
