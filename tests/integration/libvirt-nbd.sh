#!/usr/bin/env bash
# Two disks of a persistent domain moved in one call through libvirt's
# block copy onto `volmig serve` targets, one over TCP, one over a unix
# socket: both READY before the first pivot; afterwards libvirt's live and
# persistent XML name protocol nbd with the export and the host/port or
# socket (domblklist would print only the export name), no job is left,
# and each target holds its source's bytes, guest writes included.  vdb's
# target is larger than vdb: libvirt gets a storage slice of vdb's size,
# since QEMU's mirror fails on ends of different sizes.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/libvirt-helpers.sh"
require python3

DOM=volmig-lvnbd-$$
dd if=/dev/urandom of="$T/a.img" bs=1M count=16 status=none
dd if=/dev/urandom of="$T/b.img" bs=1M count=8 status=none
truncate -s 64M "$T/a.img" "$T/a_dst" "$T/b_dst"
truncate -s 32M "$T/b.img"
port=$(free_port)
start_serve sa --target "$T/a_dst" --listen "127.0.0.1:$port" --export vol-a
start_serve sb --target "$T/b_dst" --listen "unix:$T/b.sock" --export vol-b
lv_domain "$DOM" persistent "$T/a.img" "$T/b.img"
lv_write "$DOM" vdb 0x11 1M 64k

A="nbd://127.0.0.1:$port/vol-a"
B="nbd+unix:///vol-b?socket=$T/b.sock"
"$LVD" "$DOM" copy vda="$A" virtio-disk1="$B" >"$T/out" || fail "copy: $(cat "$T/out")"
cat "$T/out"
# Both READY before the first pivot.
assert_eq "$(grep -n . "$T/out" | grep -E 'ready|pivoted' | cut -d: -f2 | tr '\n' ' ')" \
    "ready vda ready vdb pivoted vda pivoted vdb " "order of events"
"$LVD" "$DOM" verify vda="$A" vdb="$B" || fail "lvd verify"
lv_no_job "$DOM" vda
lv_no_job "$DOM" vdb

log "virsh's own XML names the NBD sources, live and persistent"
for flag in "" --inactive; do
    "${VIRSH[@]}" dumpxml "$DOM" $flag >"$T/xml"
    python3 - "$T/xml" "$port" "$T/b.sock" "$flag" <<'PY' || fail "XML ($flag)"
import sys, xml.etree.ElementTree as ET
d = ET.parse(sys.argv[1]).getroot()
disks = {x.find("target").get("dev"): x for x in d.iter("disk")}
for dev, name in (("vda", "vol-a"), ("vdb", "vol-b")):
    x = disks[dev]
    s = x.find("source")
    assert x.get("type") == "network", (dev, x.get("type"))
    assert s.get("protocol") == "nbd" and s.get("name") == name, (dev, s.attrib)
    assert x.find("mirror") is None, dev
h = disks["vda"].find("source/host")
assert h.get("name") == "127.0.0.1" and h.get("port") == sys.argv[2], h.attrib
h = disks["vdb"].find("source/host")
assert h.get("transport") == "unix" and h.get("socket") == sys.argv[3], h.attrib
PY
done

log "writes after the pivot reach the targets; bytes equal"
lv_write "$DOM" vda 0x22 4M 64k
"${VIRSH[@]}" destroy "$DOM" >/dev/null
assert_eq "$(od -An -tx1 -j $((4 << 20)) -N 1 "$T/a_dst" | tr -d ' ')" 22 "a_dst at 4M"
same_bytes "$T/b.img" "$T/b_dst" $((32 << 20))
cmp -s -n $((4 << 20)) "$T/a.img" "$T/a_dst" || fail "a_dst differs from a.img before 4M"
cmp -s -i $((5 << 20)) "$T/a.img" "$T/a_dst" || fail "a_dst differs from a.img after 5M"
log "ok"
