#!/usr/bin/env bash
# make bench BENCH_ONLY=guest: the latency-aware copy under a real guest.
#
# The guest is the boot sector the tests use (tests/tools/guest_writer.S):
# SeaBIOS runs it from a virtio-blk disk under TCG, and it writes 32 KiB
# at a time through the device, as fast as it can, over a 16 MiB hot set
# from 1 MiB on (so the rate is the guest's, not ours to choose).  What it
# feels is read from the device's own write histogram (one the bench sets
# before volmig starts, which volmig then reads and leaves alone): QEMU
# times each request from the device's submission to its completion.
#
# The drive (BENCH_SIZE, random data) is opened with O_DIRECT, as a VM
# with cache=none; each row boots the guest anew, measures BENCH_BASE_S
# seconds of the guest alone, then copies the drive into a file with
# --switchover none and reads the histogram over the whole copy.  Rows:
# none (the guest alone), then mirror and bitmap with each value of
# BENCH_GUEST_BUDGETS ("off auto 10x").  Per row: seconds, the guest's
# writes per second, p50/p99 in ms, the p99 as a multiple of the guest
# alone in the same boot, and the time as a multiple of the same mode's
# "off".  Each copy is compared with the drive (cmp) after the guest is
# stopped: the guest's writes after its first round change no byte.
#
# Knobs: BENCH_SIZE (1G), BENCH_BASE_S (5), BENCH_GUEST_BUDGETS
#        ("off auto 10x"), BENCH_REPEAT (1; medians when more),
#        BENCH_DISK_DIR (/var/tmp), BENCH_OUT (bench/out).
. "$(dirname "$0")/../tests/lib/common.sh"
. "$TOP/bench/lib.sh"
require qemu-system-x86_64 python3 numfmt
SIZE=$(bytes "${BENCH_SIZE:-1G}")
BASE_S=${BENCH_BASE_S:-5}
BUDGETS=${BENCH_GUEST_BUDGETS:-off auto 10x}
REPEAT=${BENCH_REPEAT:-1}
OUT=${BENCH_OUT:-$TOP/bench/out}
. "$TOP/tests/lib/guest-writer.sh"
RES=$T/results.jsonl
W=$(mktemp -d "${BENCH_DISK_DIR:-/var/tmp}/volmig-bench-guest.XXXXXX")
trap 'cleanup; rm -rf "$W"' EXIT
mkdir -p "$OUT"
BOUNDS='[10000,20000,50000,100000,150000,200000,300000,500000,750000,1000000,1500000,2000000,3000000,5000000,7500000,10000000,15000000,20000000,30000000,50000000,75000000,100000000,200000000,500000000,1000000000]'
VD=/machine/peripheral/vd0/virtio-backend

log "the drive: $(numfmt --to=iec "$SIZE") of random data, the guest's boot sector first"
guest_image "$W/disk.img" $((SIZE >> 20))

boot() {
    guest_qemu "$T/g" "$W/disk.img" '"cache":{"direct":true},"aio":"native"'
    g_pid=$guest_pid
    qmp "$T/g.qmp2" block-latency-histogram-set "{\"id\":\"$VD\",\"boundaries-write\":$BOUNDS}" \
        >/dev/null || fail "the bench's histogram"
    guest_wrote "$W/disk.img" \
        || fail "the guest did not write its 16 MiB"
}

halt() {
    qmp "$T/g.qmp2" quit >/dev/null 2>&1 || true
    wait "$g_pid" 2>/dev/null || true
    untrack_pid "$g_pid"
}

snap() { qmp "$T/g.qmp2" query-blockstats >"$T/$1.stats" || fail "query-blockstats"; }

# summary A B SECONDS : writes/s, p50, p99 (ms) of the histogram B - A.
summary() {
    python3 - "$T/$1.stats" "$T/$2.stats" "$3" "$VD" <<'PY'
import json, sys
def hist(path):
    for d in json.load(open(path)):
        if d.get("qdev") == sys.argv[4]:
            h = d["stats"]["wr_latency_histogram"]
            return h["boundaries"], h["bins"]
b, x = hist(sys.argv[1])
_, y = hist(sys.argv[2])
d = [q - p for p, q in zip(x, y)]
n = sum(d)
def pct(q):
    if not n:
        return float("nan")
    want, acc = q * n, 0
    for i, c in enumerate(d):
        if acc + c >= want:
            lo = b[i - 1] if i else 0
            hi = b[i] if i < len(b) else b[-1]
            return (lo + (hi - lo) * ((want - acc) / c if c else 0)) / 1e6
        acc += c
    return b[-1] / 1e6
print("%.0f %.3f %.3f" % (n / float(sys.argv[3]), pct(0.5), pct(0.99)))
PY
}

run_row() { # MODE BUDGET REP
    local mode=$1 budget=$2 rep=$3 t0 t1 secs rc=0 base copy
    boot
    snap b0; sleep "$BASE_S"; snap b1
    base=$(summary b0 b1 "$BASE_S")
    rm -f "$W/dst.img"
    truncate -s "$SIZE" "$W/dst.img"
    snap c0
    t0=$(now_ms)
    "$VOLMIG" migrate --qmp "unix:$T/g.qmp" --volume "disk0=file:$W/dst.img" --mode "$mode" \
        --switchover none --retries 0 --latency-budget "$budget" --output json \
        >"$T/$mode-$budget.json" 2>"$T/$mode-$budget.err" || rc=$?
    t1=$(now_ms)
    snap c1
    qmp "$T/g.qmp2" stop >/dev/null
    [ "$rc" = 0 ] || { cat "$T/$mode-$budget.err" >&2; fail "volmig migrate --mode $mode --latency-budget $budget failed"; }
    cmp -s "$W/disk.img" "$W/dst.img" || fail "the copy ($mode, $budget) differs from the drive"
    halt
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1000 }')
    copy=$(summary c0 c1 "$secs")
    printf '{"mode":"%s","budget":"%s","rep":%d,"secs":%s,"base":"%s","copy":"%s"}\n' \
        "$mode" "$budget" "$rep" "$secs" "$base" "$copy" >>"$RES"
    log "$mode $budget (run $rep): $secs s; guest alone: $base; during the copy: $copy (writes/s p50 p99)"
}

for rep in $(seq "$REPEAT"); do
    for mode in mirror bitmap; do
        for budget in $BUDGETS; do run_row "$mode" "$budget" "$rep"; done
    done
done

python3 - "$RES" "$SIZE" >"$OUT/guest.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = lambda xs: statistics.median(xs)
def f(r, key, i):
    return float(r[key].split()[i])
keys = []
for r in rows:
    k = (r["mode"], r["budget"])
    if k not in keys:
        keys.append(k)
off = {m: med([r["secs"] for r in rows if r["mode"] == m and r["budget"] == "off"])
       for m in ("mirror", "bitmap") if any(r["mode"] == m and r["budget"] == "off" for r in rows)}
print("A real guest (SeaBIOS boot sector writing 32 KiB at a time through virtio-blk, "
      "16 MiB hot set), %d MiB drive, O_DIRECT; the guest's write latency from the "
      "device's own histogram; medians of %d run(s).\n" % (int(sys.argv[2]) >> 20,
      max(r["rep"] for r in rows)))
print("| mode | budget | seconds | x off | guest writes/s alone | during | p99 alone ms | p50 ms | p99 ms | p99 x alone |")
print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
for m, b in keys:
    rs = [r for r in rows if r["mode"] == m and r["budget"] == b]
    secs = med([r["secs"] for r in rs])
    ratio = med([f(r, "copy", 2) / f(r, "base", 2) for r in rs])
    print("| %s | %s | %.2f | %s | %.0f | %.0f | %.3f | %.3f | %.3f | %.1fx |" % (
        m, b, secs, "%.1fx" % (secs / off[m]) if m in off else "-",
        med([f(r, "base", 0) for r in rs]), med([f(r, "copy", 0) for r in rs]),
        med([f(r, "base", 2) for r in rs]), med([f(r, "copy", 1) for r in rs]),
        med([f(r, "copy", 2) for r in rs]), ratio))
PY
cat "$OUT/guest.md"
