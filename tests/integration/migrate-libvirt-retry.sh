#!/usr/bin/env bash
# volmig migrate --qmp libvirt:DOMAIN retries through the run core: the
# volmig serve a block copy writes into is killed in the middle of the
# copy; libvirt's job fails, the attempt is cleaned up (no job left,
# libvirt still on the source), and after the backoff a second attempt,
# into the server started again, pivots the domain onto the NBD export.
# libvirt's live and persistent XML then name that export, and the bytes
# equal the source's.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/libvirt-helpers.sh"

DOM=volmig-lvretry-$$
dd if=/dev/urandom of="$T/src.img" bs=1M count=32 status=none
truncate -s 64M "$T/src.img" "$T/dst.img"
lv_domain "$DOM" persistent "$T/src.img"
port=$(free_port)
start_serve s1 --target "$T/dst.img" --listen "127.0.0.1:$port"

"$VOLMIG" migrate --qmp "libvirt:$DOM" --volume "vda=nbd://127.0.0.1:$port/" \
    --switchover pivot --speed 4M --retries 2 --backoff 3 --output json >"$T/events" 2>"$T/err" &
pid=$!
track_pid $pid
wait_for 20 grep -q '"event":"progress".*"done":[1-9]' "$T/events" \
    || fail "no progress: $(cat "$T/events" "$T/err")"
log "kill volmig serve in the middle of the copy"
kill -9 "$s1_pid"
wait_for 30 grep -q '"event":"retrying"' "$T/events" \
    || fail "no retrying event: $(cat "$T/events" "$T/err")"
grep '"event":"failed"' "$T/events" | head -1
lv_no_job "$DOM" vda
assert_eq "$(lv_source "$DOM" vda)" "$T/src.img" "live XML between the attempts"
log "volmig serve again, within the backoff"
start_serve s2 --target "$T/dst.img" --listen "127.0.0.1:$port"
wait $pid || fail "volmig migrate failed: $(tail -3 "$T/events") $(cat "$T/err")"
grep -q '"event":"started","attempt":2' "$T/events" || fail "no second attempt"
grep -q '"event":"completed"' "$T/events" || fail "no completed event"
"${VIRSH[@]}" dumpxml "$DOM" | grep -q "<host name='127.0.0.1' port='$port'/>" \
    || fail "the live XML does not name the export: $("${VIRSH[@]}" dumpxml "$DOM" | grep -A4 '<disk')"
"${VIRSH[@]}" dumpxml --inactive "$DOM" | grep -q "<host name='127.0.0.1' port='$port'/>" \
    || fail "the persistent XML does not name the export"
lv_no_job "$DOM" vda
"${VIRSH[@]}" destroy "$DOM" >/dev/null
stop_serve s2
same_bytes "$T/src.img" "$T/dst.img"
log "ok"
