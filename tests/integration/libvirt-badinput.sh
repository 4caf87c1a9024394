#!/usr/bin/env bash
# Bad input to a block copy through libvirt (tests/tools/lvd over
# engine/libvirt_domain.h): each is refused with a message that says what
# is wrong, and the domain is left as it was (running, on its source in the
# live and persistent XML, no job, the destination not written).
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/libvirt-helpers.sh"

DOM=volmig-lvbad-$$
dd if=/dev/urandom of="$T/src.img" bs=1M count=48 status=none
truncate -s 64M "$T/src.img" "$T/dst.img"
truncate -s 32M "$T/small.img"
lv_domain "$DOM" persistent "$T/src.img"

# refused EXPECTED-ERROR-REGEX LVD-ARGS...: exit 1 with that message, and
# the domain untouched.
refused() {
    local want=$1 rc
    shift
    set +e
    "$LVD" "$@" >"$T/out" 2>"$T/err"; rc=$?
    set -e
    assert_eq "$rc" 1 "exit status of lvd $*"
    grep -qE "$want" "$T/err" || fail "lvd $*: expected /$want/, got: $(cat "$T/err")"
    log "refused: $(cat "$T/err")"
    untouched
}

untouched() {
    assert_eq "$(lv_state "$DOM")" running "state"
    assert_eq "$(lv_source "$DOM" vda)" "$T/src.img" "live XML"
    assert_eq "$(lv_source "$DOM" vda --inactive)" "$T/src.img" "persistent XML"
    lv_no_job "$DOM" vda
    cmp -s "$T/dst.img" <(head -c $((64 << 20)) /dev/zero) || fail "dst.img was written"
}

refused "no domain named $DOM-none" "$DOM-none" copy vda="file:$T/dst.img"
refused "has no disk vdz.*vda \(virtio-disk0\)" "$DOM" copy vdz="file:$T/dst.img"
refused "smaller than" "$DOM" copy vda="file:$T/small.img"
refused "$T/missing.img: No such file" "$DOM" copy vda="file:$T/missing.img"
refused "already runs on its destination" "$DOM" copy vda="file:$T/src.img"
port=$(free_port)
refused "cannot reach the target nbd://127.0.0.1:$port/x" \
    "$DOM" copy --timeout 5 vda="nbd://127.0.0.1:$port/x"
refused "expected NAME=DEST" "$DOM" copy vda

log "a persistent definition that names another source than the live one"
"${VIRSH[@]}" dumpxml --inactive "$DOM" | sed "s#$T/src.img#$T/other.img#" >"$T/def.xml"
"${VIRSH[@]}" define "$T/def.xml" >/dev/null
set +e
"$LVD" "$DOM" copy vda="file:$T/dst.img" 2>"$T/err"; rc=$?
set -e
assert_eq "$rc" 1 "exit status"
grep -q "persistent definition names file:$T/other.img but it runs on file:$T/src.img" "$T/err" \
    || fail "unexpected error: $(cat "$T/err")"
lv_no_job "$DOM" vda
"${VIRSH[@]}" dumpxml --inactive "$DOM" | sed "s#$T/other.img#$T/src.img#" >"$T/def.xml"
"${VIRSH[@]}" define "$T/def.xml" >/dev/null
untouched

log "a second copy of a disk that is being copied"
"$LVD" "$DOM" start --bandwidth $((1 << 20)) vda="file:$T/dst.img" || fail "start"
set +e
"$LVD" "$DOM" start vda="file:$T/dst.img" 2>"$T/err"; rc=$?
set -e
assert_eq "$rc" 1 "exit status of a second start"
grep -q "already has a block copy under way" "$T/err" || fail "unexpected: $(cat "$T/err")"
log "a deadline that passes before READY"
set +e
"$LVD" "$DOM" wait-ready --timeout 2 vda >/dev/null 2>"$T/err"; rc=$?
set -e
assert_eq "$rc" 1 "exit status of wait-ready"
grep -q "waiting for READY: Connection timed out" "$T/err" || fail "unexpected: $(cat "$T/err")"

log "the domain destroyed while lvd waits for READY: an error, not a hang"
"$LVD" "$DOM" wait-ready --timeout 120 vda >"$T/out" 2>"$T/err" &
w=$!
# It prints progress once a second while it waits.
wait_for 30 grep -q "progress vda" "$T/out" || fail "lvd wait-ready does not wait"
"${VIRSH[@]}" destroy "$DOM" >/dev/null
for _ in $(seq 100); do kill -0 $w 2>/dev/null || break; sleep 0.1; done
kill -0 $w 2>/dev/null && { kill $w; fail "lvd wait-ready hangs after the domain stopped"; }
set +e; wait $w; rc=$?; set -e
assert_eq "$rc" 1 "exit status"
grep -q "the domain stopped" "$T/err" || fail "unexpected: $(cat "$T/err")"
log "the transient job is gone with the VM: it starts again on its source"
"${VIRSH[@]}" start "$DOM" >/dev/null
assert_eq "$(lv_source "$DOM" vda)" "$T/src.img" "live XML after the restart"
assert_eq "$(lv_source "$DOM" vda --inactive)" "$T/src.img" "persistent XML after the restart"
lv_no_job "$DOM" vda
log "ok"
