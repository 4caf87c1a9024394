#!/usr/bin/env bash
# volmig migrate --qmp libvirt:DOMAIN?uri=SRC --switchover migrate:DST
# between the two-host recipe's libvirtds (each in a network and a mount
# namespace of its own): libvirt's own storage migration moves the
# persistent domain onto a new volume on the destination while a stand-in
# guest writes (HMP qemu-io through the source's monitor).  The
# destination's live and persistent XML name the new volume, the bytes
# equal the source's (every write made before the switchover included),
# no domain is left on the source, and progress came from libvirt's job
# statistics.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/libvirt-helpers.sh"
require ip unshare setsid

lv_hosts_up
lv_twohost_domain volmig-lvmig2-$$ 40

log "a stand-in guest writes 64 KiB blocks while volmig migrates to $DST_IP"
lv_guest_writer "$DOM" "$T/writes"
dest="$DST_URI&migrate_uri=tcp://$DST_IP:$(free_port)&disks_uri=tcp://$DST_IP:$(free_port)"
"$VOLMIG" migrate --qmp "libvirt:$DOM?uri=$SRC_URI" --volume "vda=file:$T/dst.img" \
    --switchover "migrate:$dest" --speed 8M --retries 0 --output json >"$T/events" 2>"$T/err" \
    || { cat "$T/events" "$T/err"; fail "volmig migrate to the other host failed"; }
wait $LV_WRITER || true
log "$(cat "$T/writes" 2>/dev/null || echo 0) guest writes were made"
[ "$(cat "$T/writes" 2>/dev/null || echo 0)" -ge 5 ] || fail "too few guest writes during the migration"
grep -q '"event":"completed"' "$T/events" || fail "no completed event"
grep -q '"event":"progress".*"done":[1-9]' "$T/events" || fail "no progress from libvirt's job stats"
grep -q '"via":"libvirt storage migration"' "$T/events" || fail "not libvirt's migration"

lv_moved_to_dst
lv_same_as_guest "$T/src.img" "$T/dst.img" "$T/writes"
log "ok"
