#!/usr/bin/env bash
# The latency-aware copy under libvirt, steered by a real guest: a domain
# that boots the writing boot sector (tests/tools/guest_writer.S; see
# latency-guest) from its virtio disk.  volmig reads the guest's write
# latency from libvirt's block statistics (the mean: libvirt gives no
# finer) and paces libvirt's block copy through its bandwidth, with no raw
# QMP: the domain is never tainted custom-monitor.
#
#  (a) a budget of 10 us: the mean signal, the guest's writes in the
#      windows, the controller lowers the limit (to no less than 1.5 times
#      the guest's dirty rate) and libvirt's job runs at the limit volmig
#      last decided, and the copy completes; the copy equals the disk once
#      the domain stopped.
#  (b) an operator sets the copy's bandwidth (virsh blockjob --bandwidth):
#      a warning, and the bandwidth stays the operator's.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/libvirt-helpers.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require python3

. "$TOP/tests/lib/guest-writer.sh"
DOM=volmig-lvlat-$$

# guest_domain NAME : a transient domain booting NAME.img, once the guest
# wrote its 16 MiB (its writes change nothing from then on).
guest_domain() {
    guest_image "$T/$1.img" 160
    lv_domain "$1" transient "$T/$1.img"
    guest_wrote "$T/$1.img" \
        || fail "the guest of $1 did not write its 16 MiB"
}

untainted() {
    grep -q "tainted: custom-monitor" "/var/log/libvirt/qemu/$1.log" \
        && fail "$1 is tainted: $(grep tainted "/var/log/libvirt/qemu/$1.log")"
    return 0
}

bandwidth() { # DOM : the block copy's bandwidth in bytes/s, "none" without a job
    local out
    out=$(virsh -c qemu:///system blockjob "$1" vda --bytes 2>&1) || true
    grep -q "No current block job" <<<"$out" && { echo none; return; }
    sed -n 's/.*Bandwidth limit: *\([0-9]*\) bytes\/s.*/\1/p' <<<"$out"
}

log "== (a) a budget no copy keeps"
guest_domain "$DOM"
truncate -s 160M "$T/a.dst"
migrate_bg a --qmp "libvirt:$DOM" --volume "vda=file:$T/a.dst" --switchover none \
    --retries 0 --latency-budget 10us
wait_event a latency-budget 30
assert_eq "$(event_field a latency-budget signal)" mean "signal under libvirt"
# libvirt's job runs at the limit of a step (one volume: all of it), below
# the 128 MiB/s the copy starts at.
seen=""
for _ in $(seq 600); do
    limit=$(event_field a latency limit | tail -1)
    if [ -n "$limit" ]; then
        bw=$(bandwidth "$DOM")
        [ "$bw" = "$limit" ] && [ "$bw" -lt $((128 << 20)) ] && { seen=yes; break; }
        [ "$bw" = none ] && break
    fi
    sleep 0.02
done
[ "$seen" = yes ] || { cat "$T/a.json"; fail "libvirt's copy never ran at a limit the controller chose"; }
migrate_wait a
assert_eq "$a_rc" 0 "a paced block copy under libvirt: exit status"
python3 - "$T/a.json" <<'PY' || fail "the block statistics did not carry the guest's writes"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
b = [e for e in ev if e["event"] == "latency-budget"][0]
assert b["baseline_samples"] > 0 and b["baseline_mean_ms"] > 0, b
lat = [e for e in ev if e["event"] == "latency"]
assert lat and all("mean_ms" in e and "p99_ms" not in e for e in lat), lat
seen = [e for e in lat if e["samples"] > 0]
assert seen, lat
assert any(e["step"] == "decrease" for e in lat), lat
print("baseline: %d writes, mean %.3f ms; %d of %d windows with writes" %
      (b["baseline_samples"], b["baseline_mean_ms"], len(seen), len(lat)))
PY
lv_no_job "$DOM" vda
untainted "$DOM"
"${VIRSH[@]}" destroy "$DOM" >/dev/null
same_bytes "$T/$DOM.img" "$T/a.dst"

log "== (b) an operator sets the copy's bandwidth"
guest_domain "$DOM-b"
truncate -s 160M "$T/b.dst"
migrate_bg b --qmp "libvirt:$DOM-b" --volume "vda=file:$T/b.dst" --switchover none \
    --retries 0 --latency-budget 10us
wait_event b latency 30
OP=$((3 << 20))
virsh -c qemu:///system blockjob "$DOM-b" vda --bandwidth "$OP" --bytes >/dev/null \
    || fail "virsh blockjob --bandwidth"
wait_event b warning 30
event_field b warning message | grep -q "set to $OP B/s from outside" \
    || fail "unexpected warning: $(event_field b warning message)"
sleep 1.5
assert_eq "$(bandwidth "$DOM-b")" "$OP" "the copy's bandwidth after volmig's pacing stopped"
virsh -c qemu:///system blockjob "$DOM-b" vda --bandwidth 0 >/dev/null || fail "bandwidth 0"
migrate_wait b
assert_eq "$b_rc" 0 "an operator's bandwidth: exit status"
"${VIRSH[@]}" destroy "$DOM-b" >/dev/null
same_bytes "$T/$DOM-b.img" "$T/b.dst"
log "ok"
