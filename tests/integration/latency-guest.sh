#!/usr/bin/env bash
# The latency-aware copy steered by a real guest's writes.  The guest is a
# boot sector (tests/tools/guest_writer.S) that SeaBIOS runs from a
# virtio-blk disk under TCG: it writes 32 KiB of 0x5a at a time through
# the BIOS, and so through the device, over the 16 MiB from 1 MiB on, round
# and round.  Its writes are the device's own, so QEMU's statistics and
# latency histogram count them, as they count a Linux guest's.  After its
# first round its writes change no byte, so a copy taken at any moment
# equals the disk: each copy is compared with cmp once the guest stopped.
#
#  (a) mirror mode, a budget of 10 us: the signal is the device's write
#      histogram, its windows hold the guest's writes, the controller
#      lowers the limit, and the copy still completes (the guest never
#      stops writing) and is exact; volmig's histogram is gone afterwards.
#  (b) bitmap mode, the default budget: the same signal; volmig pauses
#      the guest for the last pass, and the copy is exact.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3

. "$TOP/tests/lib/guest-writer.sh"
VD=/machine/peripheral/vd0/virtio-backend

# guest NAME : a q35 QEMU booting NAME.img, whose boot sector is the
# writer.  160 MiB of random data, so that a copy lasts several of the
# controller's steps.  (Holding the copy's reads back with a throttle node
# would not do: the guest rewrites its 16 MiB faster than such a copy
# reads, and a background mirror then never catches up.)
guest() {
    guest_image "$T/$1.img" 160
    guest_qemu "$T/$1" "$T/$1.img"
    # Its first round done, the guest's writes change nothing any more.
    guest_wrote "$T/$1.img" \
        || fail "the guest did not write its 16 MiB: $(wr_ops "$1") writes counted"
}

wr_ops() { # NAME : the device's write count
    qmp "$T/$1.qmp2" query-blockstats | python3 -c '
import json, sys
for d in json.load(sys.stdin):
    if d.get("qdev") == sys.argv[1]:
        print(d["stats"]["wr_operations"])' "$VD"
}

has_histogram() { # NAME : exit 0 when the device has a write histogram
    qmp "$T/$1.qmp2" query-blockstats | python3 -c '
import json, sys
for d in json.load(sys.stdin):
    if d.get("qdev") == sys.argv[1]:
        sys.exit(0 if "wr_latency_histogram" in d["stats"] else 1)
sys.exit(2)' "$VD"
}

# steered NAME : the latency events show the guest's writes in the signal.
steered() {
    python3 - "$T/$1.json" <<'PY' || fail "the histogram did not carry the guest's writes"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
b = [e for e in ev if e["event"] == "latency-budget"]
assert b and b[0]["signal"] == "histogram", b
assert b[0]["baseline_samples"] > 0, b
lat = [e for e in ev if e["event"] == "latency"]
seen = [e for e in lat if e["samples"] > 0 and e["p99_ms"] is not None]
assert seen, lat
print("baseline: %d writes, p99 %.3f ms; %d of %d windows with writes" %
      (b[0]["baseline_samples"], b[0]["baseline_p99_ms"], len(seen), len(lat)))
PY
}


log "== (a) mirror mode, a budget no copy keeps, a guest writing all along"
guest a
truncate -s 160M "$T/a.dst"
before=$(wr_ops a)
migrate_bg a --qmp "unix:$T/a.qmp" --volume "disk0=file:$T/a.dst" --switchover none \
    --retries 0 --latency-budget 10us
migrate_wait a
assert_eq "$a_rc" 0 "mirror mode under a writing guest: exit status"
[ "$(wr_ops a)" -gt "$before" ] || fail "the guest did not write during the copy"
steered a
grep -qx decrease <<<"$(event_field a latency step)" || fail "no decrease over a budget of 10 us"
has_histogram a && fail "volmig's write histogram is still on the device"
qmp "$T/a.qmp2" stop >/dev/null
same_bytes "$T/a.img" "$T/a.dst"
assert_clean "$T/a.qmp2"

log "== (b) bitmap mode, the default budget"
guest b
migrate_bg b --qmp "unix:$T/b.qmp" --volume "disk0=file:$T/b.dst" --mode bitmap \
    --switchover none --retries 0
migrate_wait b
assert_eq "$b_rc" 0 "bitmap mode under a writing guest: exit status"
steered b
has_histogram b && fail "volmig's write histogram is still on the device"
assert_eq "$(qmp "$T/b.qmp2" query-status | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')" \
    running "the guest runs again after the last pass"
bitmap_clean "$T/b.qmp2"
qmp "$T/b.qmp2" stop >/dev/null
same_bytes "$T/b.img" "$T/b.dst"
log "ok"
