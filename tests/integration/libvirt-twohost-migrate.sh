#!/usr/bin/env bash
# libvirt's own storage migration between the two-host recipe's daemons,
# as KubeVirt's virt-launcher does it (virDomainMigrateToURI3 with LIVE,
# PEER2PEER, PERSIST_DEST, UNDEFINE_SOURCE, NON_SHARED_DISK, MIGRATE_DISKS,
# DEST_XML/PERSIST_XML naming the new volume, DISKS_URI): the ground the
# libvirt strategy's migrate:URI stands on.  The destination's live and
# persistent XML name the new volume, the source has no domain left, and
# the bytes are equal, a guest write made before included.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/libvirt-helpers.sh"
require ip unshare setsid

lv_hosts_up
lv_twohost_domain volmig-lvmig-$$ 16
lv_write "$DOM" vda 0x5a 20M 1M

virsh -c "$SRC_URI" dumpxml --inactive "$DOM" | sed "s#$T/src.img#$T/dst.img#" >"$T/dest.xml"
log "migrate with storage to $DST_IP, onto dst.img"
timeout 120 virsh -c "$SRC_URI" migrate --live --p2p --persistent --undefinesource \
    --copy-storage-all --migrate-disks vda --xml "$T/dest.xml" --persistent-xml "$T/dest.xml" \
    --migrateuri "tcp://$DST_IP:$(free_port)" --disks-uri "tcp://$DST_IP:$(free_port)" \
    "$DOM" "$DST_URI" >"$T/out" 2>&1 || fail "migration: $(cat "$T/out")"
lv_moved_to_dst
same_bytes "$T/src.img" "$T/dst.img"
log "ok"
