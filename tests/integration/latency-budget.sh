#!/usr/bin/env bash
# The latency-aware copy (--latency-budget) against a real QEMU.  A budget
# of 10 us is one no copy can keep, so the controller lowers the rate at
# every step: that makes what it does observable without any timing.
#
#  (a) mirror mode, a drive without a device (the probe signal): the limit
#      falls to the floor (8 MiB/s), QEMU's job runs at the limit volmig
#      last decided (query-block-jobs "speed"), the copy still finishes
#      and is exact, and the probe export and the NBD server volmig started
#      for it are gone afterwards.
#  (a2) an operator's block-job-set-speed on volmig's job wins: a warning
#      says the pacing stops, and the job keeps the operator's speed.
#  (b) bitmap mode: the copier keeps to the limit: once it is at the floor,
#      no interval copies more than twice it.
#  (c) a guest that dirties faster than the throttled copy follows: a
#      "converging" event, the limit lifted to 1.5 times the dirty rate,
#      and the copy converges.
#  (d) a drive on a guest device (q35, virtio-blk, paused with -S): the
#      signal is the device's histogram.  volmig sets a write histogram on
#      a device that has none and removes it afterwards; an operator's
#      histogram is used and left as it was.
#  (e) --latency-budget off: no budget, nothing added for it.
#  (f) bad values are bad usage, in migrate and copy --drive, and so is a
#      budget for libvirt's storage migration, which volmig cannot pace.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3 fio

FLOOR=$((8 << 20))

# lat_fields NAME KEY : KEY of every latency event, one per line.
lat_fields() { event_field "$1" latency "$2"; }

# no_probe_left QMP : no export and no NBD server of volmig's in QEMU.
no_probe_left() {
    assert_eq "$(exports "$1")" "" "exports left in QEMU"
    qmp "$1" nbd-server-start "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"$T/check.sock\"}}}" \
        >/dev/null || fail "the NBD server volmig started for its probe is still running"
    qmp "$1" nbd-server-stop >/dev/null || fail "nbd-server-stop"
}

# mirror_10us NAME : a 64 MiB drive (reads held to 16 MiB/s) mirrored into
# NAME.dst in the background with a budget of 10 us.
mirror_10us() {
    random_file "$T/$1.img" 64
    truncate -s 64M "$T/$1.dst"
    SRC_BPS=$((16 << 20)) src_qemu "$1" "$T/$1.img"
    migrate_bg "$1" --qmp "unix:$T/$1.qmp" --volume "disk0=file:$T/$1.dst" --switchover none \
        --retries 0 --latency-budget 10us
}

log "== (a) mirror mode, probe signal, a budget no copy keeps"
mirror_10us a
wait_event a latency-budget 30
assert_eq "$(event_field a latency-budget signal)" probe "signal of a drive without a device"
assert_eq "$(event_field a latency-budget budget_ms)" 0.01 "budget"
# The limit reaches the floor, and QEMU's job then runs at it.
seen=""
for _ in $(seq 300); do
    if grep -qx "$FLOOR" <<<"$(lat_fields a limit)"; then
        speed=$(qmp "$T/a.qmp2" query-block-jobs | python3 -c '
import json, sys
j = json.load(sys.stdin)
print(j[0]["speed"] if j else "")')
        [ "$speed" = "$FLOOR" ] && { seen=yes; break; }
        [ -z "$speed" ] && break
    fi
    has_event a ready && break
    sleep 0.05
done
[ "$seen" = yes ] || { cat "$T/a.json"; fail "the mirror never ran at the floor the controller chose"; }
grep -qx decrease <<<"$(lat_fields a step)" || fail "no decrease over a budget of 10 us"
migrate_wait a
assert_eq "$a_rc" 0 "mirror mode with a budget: exit status"
same_bytes "$T/a.img" "$T/a.dst"
assert_clean "$T/a.qmp2"
no_probe_left "$T/a.qmp2"

log "== (a2) an operator sets the job's speed: volmig leaves it"
mirror_10us o
wait_event o latency 30
OP=$((3 << 20))
job=$(qmp "$T/o.qmp2" query-block-jobs | python3 -c '
import json, sys
j = json.load(sys.stdin)
print(j[0]["device"] if j else "")')
[ -n "$job" ] || fail "no mirror job to set the speed of"
qmp "$T/o.qmp2" block-job-set-speed "{\"device\":\"$job\",\"speed\":$OP}" >/dev/null \
    || fail "block-job-set-speed"
wait_event o warning 30
event_field o warning message | grep -q "speed of job $job was set to $OP B/s from outside" \
    || fail "unexpected warning: $(event_field o warning message)"
# Three of the watch's steps later the job still runs at the operator's speed.
sleep 1.5
speed=$(qmp "$T/o.qmp2" query-block-jobs | python3 -c '
import json, sys
j = json.load(sys.stdin)
print(j[0]["speed"] if j else "none")')
assert_eq "$speed" "$OP" "the job's speed after volmig's pacing stopped"
qmp "$T/o.qmp2" block-job-set-speed "{\"device\":\"$job\",\"speed\":0}" >/dev/null \
    || fail "block-job-set-speed 0"
migrate_wait o
assert_eq "$o_rc" 0 "mirror mode, speed set from outside: exit status"
same_bytes "$T/o.img" "$T/o.dst"
assert_clean "$T/o.qmp2"
no_probe_left "$T/o.qmp2"

log "== (b) bitmap mode: the copier keeps to the limit"
random_file "$T/b.img" 64
SRC_BPS=$((32 << 20)) src_qemu b "$T/b.img"
migrate_bg b --qmp "unix:$T/b.qmp" --volume "disk0=file:$T/b.dst" --mode bitmap \
    --switchover none --retries 0 --latency-budget 10us
migrate_wait b
assert_eq "$b_rc" 0 "bitmap mode with a budget: exit status"
same_bytes "$T/b.img" "$T/b.dst"
python3 - "$T/b.json" "$FLOOR" <<'PY' || fail "the copier went faster than its limit"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
floor = int(sys.argv[2])
lat = [e for e in ev if e["event"] == "latency"]
assert lat, "no latency event"
# After a step that set the floor, the next interval runs under it.
checked = 0
for prev, cur in zip(lat, lat[1:]):
    if prev["limit"] == floor:
        checked += 1
        assert cur["copy_rate"] <= 2 * floor, (prev, cur)
assert checked, "the limit never reached the floor: %s" % [e["limit"] for e in lat]
print("intervals at the floor:", checked)
PY
bitmap_clean "$T/b.qmp2"

log "== (c) a guest that outruns the throttled copy"
random_file "$T/c.img" 64
SRC_BPS=$((32 << 20)) src_qemu c "$T/c.img"
export_node "$T/c.qmp2" disk0 guest "$T/guest.sock"
fio --name=guest --ioengine=nbd --uri="nbd+unix:///guest?socket=$T/guest.sock" \
    --rw=randwrite --bs=64k --rate=24m --time_based --runtime=600 --size=64M \
    >"$T/fio.log" 2>&1 &
fio_pid=$!
track_pid $fio_pid
migrate_bg c --qmp "unix:$T/c.qmp" --volume "disk0=file:$T/c.dst" --mode bitmap \
    --switchover none --retries 0 --latency-budget 10us --nbd-socket "$T/guest.sock"
wait_event c converging 120
# The writer stops once the controller gave way to it: writes that stop
# before the last passes leave an exact copy to compare.
kill -INT $fio_pid; wait $fio_pid 2>/dev/null || true
migrate_wait c
assert_eq "$c_rc" 0 "a copy the guest outruns: exit status"
python3 - "$T/c.json" <<'PY' || { cat "$T/c.json"; fail "no converging step"; }
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
conv = [e for e in ev if e["event"] == "converging"]
assert conv, "no converging event"
c = conv[0]
assert c["limit"] >= 1.5 * c["dirty_rate"] * 0.999, c
assert c["limit"] > 8 << 20, c
print(c["message"])
PY
qmp "$T/c.qmp2" block-export-del '{"id":"guest"}' >/dev/null
same_bytes "$T/c.img" "$T/c.dst"

log "== (d) a guest device: its histogram is the signal"
random_file "$T/d.img" 32
random_file "$T/e.img" 32
truncate -s 32M "$T/d.dst" "$T/e.dst"
qemu-system-x86_64 -machine q35 -S -nodefaults -display none \
    -qmp "unix:$T/d.qmp,server=on,wait=off" -qmp "unix:$T/d.qmp2,server=on,wait=off" \
    -object throttle-group,id=tgd,x-bps-read=$((8 << 20)) \
    -blockdev "{\"driver\":\"throttle\",\"node-name\":\"disk0\",\"throttle-group\":\"tgd\",\"file\":{\"driver\":\"raw\",\"node-name\":\"raw0\",\"file\":{\"driver\":\"file\",\"filename\":\"$T/d.img\"}}}" \
    -blockdev "{\"driver\":\"raw\",\"node-name\":\"disk1\",\"file\":{\"driver\":\"file\",\"filename\":\"$T/e.img\"}}" \
    -device virtio-blk-pci,drive=disk0,id=vd0 -device virtio-blk-pci,drive=disk1,id=vd1 \
    >"$T/d.log" 2>&1 &
track_pid $!
wait_for 30 test -S "$T/d.qmp2" || { cat "$T/d.log"; fail "the q35 QEMU did not start"; }
# The operator's histogram on vd1: a read one and a write one.
qmp "$T/d.qmp2" block-latency-histogram-set \
    '{"id":"/machine/peripheral/vd1/virtio-backend","boundaries-read":[1000,2000],"boundaries-write":[5000]}' \
    >/dev/null || fail "cannot set the operator's histogram"
histograms() { # QDEV : the histogram keys of that device, sorted
    qmp "$T/d.qmp2" query-blockstats | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s.get("qdev") == sys.argv[1]:
        print(" ".join(sorted("%s=%s" % (k, v["boundaries"]) for k, v in s["stats"].items()
                              if k.endswith("_latency_histogram"))))' "$1"
}
op_before=$(histograms /machine/peripheral/vd1/virtio-backend)
[ -n "$op_before" ] || fail "the operator's histogram is not there"
SRC_BPS=0 migrate_bg d --qmp "unix:$T/d.qmp" --volume "disk0=file:$T/d.dst" \
    --volume "disk1=file:$T/e.dst" --switchover none --retries 0 --latency-budget 3ms
wait_event d latency-budget 30
assert_eq "$(event_field d latency-budget signal)" histogram "signal of a drive on a device"
# While it runs (reads of disk0 held at 8 MiB/s; a paused guest does no
# I/O, so the controller sees an idle guest), vd0 carries volmig's write
# histogram and nothing else.
vd0_during=$(histograms /machine/peripheral/vd0/virtio-backend)
has_event d ready && fail "the copy of disk0 was not held: the test cannot look at it mid-copy"
migrate_wait d
assert_eq "$d_rc" 0 "a drive on a device: exit status"
same_bytes "$T/d.img" "$T/d.dst"
same_bytes "$T/e.img" "$T/e.dst"
case $vd0_during in
    wr_latency_histogram=*) ;;
    *) fail "vd0 during the copy: expected volmig's write histogram alone, got '$vd0_during'" ;;
esac
assert_eq "$(histograms /machine/peripheral/vd0/virtio-backend)" "" "vd0's histogram after the run"
assert_eq "$(histograms /machine/peripheral/vd1/virtio-backend)" "$op_before" "the operator's histogram"
assert_clean "$T/d.qmp2"

log "== (e) --latency-budget off"
truncate -s 0 "$T/a.dst"; truncate -s 64M "$T/a.dst"
qmp "$T/a.qmp2" qom-set '{"path":"tg0","property":"limits","value":{"bps-read":0}}' >/dev/null
migrate_bg e --qmp "unix:$T/a.qmp" --volume "disk0=file:$T/a.dst" --switchover none \
    --retries 0 --latency-budget off
migrate_wait e
assert_eq "$e_rc" 0 "--latency-budget off: exit status"
has_event e latency-budget && fail "a budget with --latency-budget off"
has_event e latency && fail "latency steps with --latency-budget off"
same_bytes "$T/a.img" "$T/a.dst"

log "== (f) bad values"
for bad in "" 0 -1ms 5 abc 1x 0.5x nan 1e9s 5us 70s 3msx 2xx ms off2; do
    for cmd in "migrate --qmp unix:$T/a.qmp --volume disk0=file:$T/a.dst" \
               "copy --qmp unix:$T/a.qmp --drive disk0 $T/never"; do
        rc=0
        # shellcheck disable=SC2086
        "$VOLMIG" $cmd --latency-budget "$bad" >"$T/bad.out" 2>&1 || rc=$?
        assert_eq "$rc" 2 "${cmd%% *} --latency-budget '$bad': exit status"
        grep -q -- "--latency-budget '$bad'" "$T/bad.out" \
            || { cat "$T/bad.out"; fail "${cmd%% *} --latency-budget '$bad': unclear error"; }
    done
done
[ -e "$T/never" ] && fail "a bad --latency-budget created the target"
rc=0
"$VOLMIG" migrate --qmp libvirt:nosuchdomain --volume disk0=file:/nonexistent \
    --switchover 'migrate:qemu+tcp://host2/system' --latency-budget 5ms >"$T/lv.out" 2>&1 \
    || rc=$?
assert_eq "$rc" 2 "--latency-budget with libvirt's storage migration: exit status"
grep -q "libvirt's storage migration" "$T/lv.out" \
    || fail "--latency-budget with libvirt's storage migration: unclear error: $(cat "$T/lv.out")"
assert_clean "$T/a.qmp2"
log "ok"
