#!/usr/bin/env bash
# volmig migrate --qmp libvirt:DOMAIN cancelled (SIGINT) in the middle of
# a bandwidth-limited copy: exit 3, a cancelled event, no job left, and
# libvirt's live and persistent XML still name the old disk.  Then bad
# input, each refused with a message that says what is wrong and the
# domain untouched: a domain that does not exist, a disk it does not have,
# a destination smaller than the disk, a destination libvirtd that cannot
# be reached.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/libvirt-helpers.sh"

DOM=volmig-lvmcancel-$$
dd if=/dev/urandom of="$T/src.img" bs=1M count=48 status=none
truncate -s 64M "$T/src.img" "$T/dst.img"
truncate -s 32M "$T/small.img"
lv_domain "$DOM" persistent "$T/src.img"

untouched() {
    assert_eq "$(lv_state "$DOM")" running "state"
    assert_eq "$(lv_source "$DOM" vda)" "$T/src.img" "live XML"
    assert_eq "$(lv_source "$DOM" vda --inactive)" "$T/src.img" "persistent XML"
    lv_no_job "$DOM" vda
}

log "cancel while copying at 4 MiB/s"
"$VOLMIG" migrate --qmp "libvirt:$DOM" --volume "vda=file:$T/dst.img" --switchover pivot \
    --speed 4M --output json >"$T/events" 2>"$T/err" &
pid=$!
wait_for 20 grep -q '"event":"progress".*"done":[1-9]' "$T/events" \
    || { kill -INT $pid; fail "no progress: $(cat "$T/events" "$T/err")"; }
kill -INT $pid
set +e
wait $pid; rc=$?
set -e
assert_eq "$rc" 3 "exit status after SIGINT"
grep -q '"event":"cancelled"' "$T/events" || fail "no cancelled event"
grep -q '"event":"switchover"' "$T/events" && fail "it switched over"
untouched

# refused EXPECTED-REGEX VOLMIG-MIGRATE-ARGS...: exit 1, that message, the
# domain untouched.
refused() {
    local want=$1 rc
    shift
    set +e
    "$VOLMIG" migrate --retries 0 "$@" >"$T/out" 2>"$T/err"; rc=$?
    set -e
    assert_eq "$rc" 1 "exit status of migrate $*"
    grep -qE "$want" "$T/err" || fail "migrate $*: expected /$want/, got: $(cat "$T/err")"
    log "refused: $(cat "$T/err")"
    untouched
}
refused "no domain named $DOM-none" --qmp "libvirt:$DOM-none" --volume "vda=file:$T/dst.img"
refused "has no disk vdz" --qmp "libvirt:$DOM" --volume "vdz=file:$T/dst.img"
refused "smaller than" --qmp "libvirt:$DOM" --volume "vda=file:$T/small.img" --switchover pivot
refused "libvirt: migration: .*$T/no-such-socket" --qmp "libvirt:$DOM" \
    --volume "vda=file:$T/dst.img" \
    --switchover "migrate:qemu+unix:///system?socket=$T/no-such-socket"
log "ok"
