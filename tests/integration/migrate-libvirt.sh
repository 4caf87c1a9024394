#!/usr/bin/env bash
# volmig migrate against a persistent domain that libvirt owns
# (--qmp libvirt:DOMAIN), as KubeVirt's virt-launcher defines them: the
# disk, named vda as a libvirt user names it, is pivoted onto a new file
# through libvirt's block copy, never raw QMP.  libvirt's live and
# persistent XML name the new file, no job is left, and after `virsh destroy` + `virsh start` QEMU opens the new
# file, whose bytes equal the source's (a guest write during the copy
# included).  (The stand-in guest's writes go through HMP, which taints
# the domain; migrate-libvirt-multi checks that volmig itself does not.)
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/libvirt-helpers.sh"

DOM=volmig-mig-$$
dd if=/dev/urandom of="$T/disk.img" bs=1M count=24 status=none
truncate -s 64M "$T/disk.img"
truncate -s 80M "$T/new.img"
lv_domain "$DOM" persistent "$T/disk.img"

log "pivot vda onto new.img (larger) through libvirt, a guest write under way"
"$VOLMIG" migrate --qmp "libvirt:$DOM" --volume "vda=file:$T/new.img" --switchover pivot \
    --speed 16M --output json >"$T/events" 2>"$T/err" &
pid=$!
sleep 0.5
lv_write "$DOM" vda 0x5a 2M 1M
wait $pid || { cat "$T/events" "$T/err"; fail "volmig migrate through libvirt failed"; }
grep -q '"event":"completed"' "$T/events" || fail "no completed event"
grep -q '"event":"progress"' "$T/events" || fail "no progress event"
grep -q '"via":"libvirt block copy"' "$T/events" || fail "not libvirt's block copy: $(head -3 "$T/events")"

assert_eq "$(lv_source "$DOM" vda)" "$T/new.img" "live XML after the pivot"
assert_eq "$(lv_source "$DOM" vda --inactive)" "$T/new.img" "persistent XML after the pivot"
lv_no_job "$DOM" vda
assert_eq "$(lv_state "$DOM")" running "state after the pivot"

log "destroy and start: QEMU opens the new file, equal to the source"
"${VIRSH[@]}" destroy "$DOM" >/dev/null
same_bytes "$T/disk.img" "$T/new.img" $((64 << 20))
"${VIRSH[@]}" start "$DOM" >/dev/null || fail "the domain does not start again"
"${VIRSH[@]}" qemu-monitor-command "$DOM" --hmp 'info block' >"$T/block"
grep -q "$T/new.img" "$T/block" || fail "QEMU does not run on new.img: $(cat "$T/block")"
grep -q "$T/disk.img" "$T/block" && fail "QEMU still opens disk.img: $(cat "$T/block")"

log "the text output says the copy is libvirt's (switchover none)"
truncate -s 80M "$T/copy.img"
"$VOLMIG" migrate --qmp "libvirt:$DOM" --volume "vda=file:$T/copy.img" >"$T/text" 2>&1 \
    || fail "volmig migrate --switchover none: $(cat "$T/text")"
grep -q "attempt 1: libvirt block copy (background)" "$T/text" \
    || fail "the text output does not name libvirt's block copy: $(cat "$T/text")"
assert_eq "$(lv_source "$DOM" vda)" "$T/new.img" "live XML after a copy without switchover"
log "ok"
