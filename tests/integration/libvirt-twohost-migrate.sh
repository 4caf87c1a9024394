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
DOM=volmig-lvmig-$$
dd if=/dev/urandom of="$T/src.img" bs=1M count=16 status=none
truncate -s 64M "$T/src.img" "$T/dst.img"
LIBVIRT_URI=$SRC_URI "$LV" define "$DOM" "$T/src.img" || fail "define on the source host"
VIRSH=(virsh -q -c "$SRC_URI")
lv_write "$DOM" vda 0x5a 20M 1M

virsh -c "$SRC_URI" dumpxml --inactive "$DOM" | sed "s#$T/src.img#$T/dst.img#" >"$T/dest.xml"
log "migrate with storage to $DST_IP, onto dst.img"
timeout 120 virsh -c "$SRC_URI" migrate --live --p2p --persistent --undefinesource \
    --copy-storage-all --migrate-disks vda --xml "$T/dest.xml" --persistent-xml "$T/dest.xml" \
    --migrateuri "tcp://$DST_IP:$(free_port)" --disks-uri "tcp://$DST_IP:$(free_port)" \
    "$DOM" "$DST_URI" >"$T/out" 2>&1 || fail "migration: $(cat "$T/out")"
assert_eq "$(virsh -c "$SRC_URI" list --all --name | grep -c .)" 0 "domains left on the source"
assert_eq "$(virsh -c "$DST_URI" domstate "$DOM")" running "state on the destination"
src() { virsh -c "$DST_URI" domblklist "$DOM" "$@" | awk '$1 == "vda" { print $2 }'; }
assert_eq "$(src)" "$T/dst.img" "destination live XML"
assert_eq "$(src --inactive)" "$T/dst.img" "destination persistent XML"
virsh -c "$DST_URI" destroy "$DOM" >/dev/null
same_bytes "$T/src.img" "$T/dst.img"
log "ok"
