#!/usr/bin/env bash
# A block copy through libvirt cancelled in the middle (bandwidth-limited
# so that it is still copying): no job is left, libvirt's live and
# persistent XML are unchanged, the domain runs on its source.  Then a
# pivot asked of a copy that is not READY yet is refused, and the copy can
# still be aborted.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/libvirt-helpers.sh"

DOM=volmig-lvcancel-$$
dd if=/dev/urandom of="$T/src.img" bs=1M count=48 status=none
truncate -s 64M "$T/src.img" "$T/dst.img"
lv_domain "$DOM" persistent "$T/src.img"

log "cancel while copying at 4 MiB/s"
"$LVD" "$DOM" cancel --bandwidth $((4 << 20)) vda="file:$T/dst.img" >"$T/out" \
    || fail "cancel: $(cat "$T/out")"
cat "$T/out"
read -r _ _ _ at <"$T/out"
[ "${at%/*}" -lt "${at#*/}" ] || fail "the copy was not in the middle when cancelled: $at"
lv_no_job "$DOM" vda
assert_eq "$(lv_source "$DOM" vda)" "$T/src.img" "live XML"
assert_eq "$(lv_source "$DOM" vda --inactive)" "$T/src.img" "persistent XML"
assert_eq "$(lv_state "$DOM")" running "state"

log "a pivot before READY is refused; the copy then aborts"
"$LVD" "$DOM" start --bandwidth $((1 << 20)) vda="file:$T/dst.img" || fail "start"
set +e
"$LVD" "$DOM" finish pivot vda 2>"$T/err"; rc=$?
set -e
assert_eq "$rc" 1 "exit status of an early pivot"
grep -q "not ready for pivot" "$T/err" || fail "unexpected error: $(cat "$T/err")"
"$LVD" "$DOM" progress vda | grep -qv none || fail "the copy stopped after the refused pivot"
"$LVD" "$DOM" finish abort vda || fail "abort"
lv_no_job "$DOM" vda
assert_eq "$(lv_source "$DOM" vda --inactive)" "$T/src.img" "persistent XML"
log "ok"
