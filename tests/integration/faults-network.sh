#!/usr/bin/env bash
# Faults between two hosts (network namespaces), with guest writes running:
#  1. the network is cut (link down) mid-copy and restored: volmig reports
#     the stall, and the migration completes (the same attempt once TCP
#     recovers, or a retry if the connection broke); destination == source;
#  2. the destination volume is full (a file on a 16 MiB file system for a
#     32 MiB drive): a clear error naming the volume, exactly one attempt
#     (no retry storm), the source untouched, nothing left in QEMU.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/netns.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3 ip
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
netns_up || skip "network namespaces are not allowed here"
mnt=

random_file "$T/src" 32
QEMU_PREFIX="ip netns exec $SRC_NS" src_qemu q "$T/src"
p="$T/q.qmp2"

log "1. the link goes down mid-copy, and comes back"
truncate -s 32M "$T/dst"
bg_dst "$VOLMIG" serve --target "$T/dst" --listen "$DST_IP:10809" >"$T/serve.log" 2>&1
wait_for 10 grep -q "listening on" "$T/serve.log" || fail "serve did not start"
MIGRATE_WRAP="ip netns exec $SRC_NS" migrate_bg n1 --qmp "unix:$T/q.qmp" \
    --volume "disk0=nbd://$DST_IP:10809/" --switchover none --speed 2M --retries 5 --backoff 2
wait_event n1 started
job=$(qmp "$p" query-jobs | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
wait_for 60 job_progress_over "$p" "$job" $((4 << 20)) || fail "no progress"
# A guest keeps writing while the network is out.
hmp_write "$p" disk0 0x41 1M 64k
ip -n "$SRC_NS" link set "$SRC_DEV" down
# With the link down nothing moves: wait until the copy has visibly
# stalled (a stall warning, or a failed attempt), then bring it back.
wait_for 120 sh -c "grep -q 'no data moved\|\"failed\"' '$T/n1.json'" \
    || { cat "$T/n1.json"; fail "the outage was not noticed"; }
ip -n "$SRC_NS" link set "$SRC_DEV" up
hmp_write "$p" disk0 0x42 2M 64k
migrate_wait n1
assert_eq "$n1_rc" 0 "exit status after the network came back"
# TCP usually survives a short outage and the same attempt goes on; a reset
# connection fails the attempt and a retry completes.  Either is correct.
log "attempts: $(count_event n1 started), retries: $(count_event n1 retrying)"
cmp "$T/src" "$T/dst" || fail "destination differs after the network fault"
assert_clean "$p"

log "2. the destination volume is full"
mnt=$T/small
mkdir -p "$mnt"
mount -t tmpfs -o size=16m tmpfs "$mnt" || skip "cannot mount a small file system here"
track_mount "$mnt"
truncate -s 32M "$mnt/dst"        # sparse: looks big enough, is not
before=$(sha "$T/src")
bg_dst "$VOLMIG" serve --target "$mnt/dst" --listen "$DST_IP:10810" >"$T/serve2.log" 2>&1
wait_for 10 grep -q "listening on" "$T/serve2.log" || fail "serve did not start"
MIGRATE_WRAP="ip netns exec $SRC_NS" migrate_bg n2 --qmp "unix:$T/q.qmp" \
    --volume "disk0=nbd://$DST_IP:10810/" --switchover none --retries 5 --backoff 1
migrate_wait n2
assert_eq "$n2_rc" 1 "exit status when the destination is full"
assert_eq "$(count_event n2 started)" 1 "attempts into a full destination"
grep -q "full" "$T/n2.err" || fail "the error does not say the volume is full: $(cat "$T/n2.err")"
grep -q "nbd://$DST_IP:10810/" "$T/n2.err" || fail "the error does not name the volume"
assert_eq "$(sha "$T/src")" "$before" "source changed"
assert_clean "$p"
assert_running "$p"
echo ok
