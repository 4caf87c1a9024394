#!/usr/bin/env bash
# volmig migrate --qmp libvirt:DOMAIN?uri=SRC --switchover
# migrate:DST?serve.vda=NBD_URI between the two-host recipe's libvirtds:
# volmig's data path under libvirt.  libvirt block-copies the disk into
# volmig serve --once on the destination host, which serves the new
# volume; once READY the guest is paused, the copy ends, volmig serve
# exits (letting go of the volume's image locks), and a memory-only
# migration starts the domain on the destination on the volume as a local
# file, where it is resumed.  A stand-in guest writes throughout.  The
# destination's live and persistent XML name the volume, the bytes equal
# the source's, no domain is left on the source, volmig serve is gone.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/libvirt-helpers.sh"
require ip unshare setsid

lv_hosts_up
lv_twohost_domain volmig-lvserve-$$ 40

port=$(free_port)
ip netns exec "$DST_NS" "$VOLMIG" serve --target "$T/dst.img" --size 64M \
    --listen "$DST_IP:$port" --once >"$T/serve.log" 2>&1 &
serve=$!
track_pid $serve
# --once: any connection is its one client, so readiness is read from its log.
wait_for 10 grep -q listening "$T/serve.log" || fail "volmig serve did not start: $(cat "$T/serve.log")"

log "a stand-in guest writes 64 KiB blocks while volmig migrates through volmig serve"
lv_guest_writer "$DOM" "$T/writes"
dest="$DST_URI&migrate_uri=tcp://$DST_IP:$(free_port)&serve.vda=nbd://$DST_IP:$port/"
# volmig runs on the source host, where it sees the destination as QEMU does.
ip netns exec "$SRC_NS" "$VOLMIG" migrate --qmp "libvirt:$DOM?uri=$SRC_URI" --volume "vda=file:$T/dst.img" \
    --switchover "migrate:$dest" --speed 8M --retries 0 --output json >"$T/events" 2>"$T/err" \
    || { cat "$T/events" "$T/err" "$T/serve.log"; fail "volmig migrate through volmig serve failed"; }
wait $LV_WRITER || true
log "$(cat "$T/writes" 2>/dev/null || echo 0) guest writes were made"
[ "$(cat "$T/writes" 2>/dev/null || echo 0)" -ge 5 ] || fail "too few guest writes during the migration"
grep -q '"via":"volmig serve, libvirt memory migration"' "$T/events" || fail "not volmig's data path"
grep -q '"event":"completed"' "$T/events" || fail "no completed event"
log "the guest was paused for $(grep -o '"blocks_flushed_in":[0-9.]*' "$T/events" | cut -d: -f2) s"
kill -0 $serve 2>/dev/null && fail "volmig serve still runs"

lv_moved_to_dst
lv_same_as_guest "$T/src.img" "$T/dst.img" "$T/writes"
log "ok"
