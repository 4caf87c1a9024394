#!/usr/bin/env bash
# Copy only (switchover none) through libvirt: a persistent domain's vda
# copied to a new file by block copy (write-blocking, with granularity and
# buffer size), READY, guest writes, then an abort
# without pivot.  libvirt (live and persistent XML) still names the old
# file, no job is left, and the copy equals the source, the writes made
# while the mirror ran included (QEMU completes a READY mirror on a
# non-forced cancel).  Then the one-call form (lvd copy --switchover none)
# on a transient domain, named by its alias, with libvirt's block job
# events ignored: READY and the abort's end are then seen only by polling
# libvirt, as when an event is lost.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/libvirt-helpers.sh"

DOM=volmig-lvcopy-$$
dd if=/dev/urandom of="$T/src.img" bs=1M count=24 status=none
truncate -s 64M "$T/src.img" "$T/copy.img" "$T/copy2.img" "$T/t.img"
lv_domain "$DOM" persistent "$T/src.img"

"$LVD" "$DOM" start --sync-writes --granularity 65536 --buf-size $((1 << 20)) \
    vda="file:$T/copy.img" || fail "start"
"$LVD" "$DOM" wait-ready vda >/dev/null || fail "wait-ready"
# libvirt's status XML records the job's flags: REUSE_EXT (0x2),
# TRANSIENT_JOB (0x4, a persistent domain), SYNCHRONOUS_WRITES (0x8).
# libvirt saves that file after it sent the READY event, so it may lag.
wait_for 10 grep -q "<blockjob name='copy-vda-[^']*' type='copy' state='ready'.* jobflags='0xe'" \
    "/var/run/libvirt/qemu/$DOM.xml" || fail "job flags: $(grep blockjob "/var/run/libvirt/qemu/$DOM.xml")"
lv_write "$DOM" vda 0x5a 2M 1M
lv_write "$DOM" vda 0x77 63M 64k
log "abort without pivot: libvirt stays on src.img"
"$LVD" "$DOM" finish abort vda || fail "abort"
"$LVD" "$DOM" verify vda="file:$T/src.img" || fail "lvd verify"
assert_eq "$(lv_source "$DOM" vda)" "$T/src.img" "live XML"
assert_eq "$(lv_source "$DOM" vda --inactive)" "$T/src.img" "persistent XML"
lv_no_job "$DOM" vda
assert_eq "$(lv_state "$DOM")" running "state"

log "the copy is consistent: equal to the source once the domain stopped"
"${VIRSH[@]}" destroy "$DOM" >/dev/null
same_bytes "$T/src.img" "$T/copy.img"

log "one call, by alias, on a transient domain, without job events"
dd if=/dev/urandom of="$T/t.img" bs=1M count=8 conv=notrunc status=none
lv_domain "$DOM-t" transient "$T/t.img"
"$LVD" --no-job-events "$DOM-t" copy --timeout 20 --switchover none \
    virtio-disk0="file:$T/copy2.img" >"$T/out" || fail "copy --switchover none: $(cat "$T/out")"
grep -q "copied vda" "$T/out" || fail "unexpected output: $(cat "$T/out")"
assert_eq "$(lv_source "$DOM-t" vda)" "$T/t.img" "transient domain's live XML"
lv_no_job "$DOM-t" vda
"${VIRSH[@]}" destroy "$DOM-t" >/dev/null
same_bytes "$T/t.img" "$T/copy2.img"
log "ok"
