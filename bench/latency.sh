#!/usr/bin/env bash
# make bench, issue 14: what the guest feels while its disk is copied, and
# whether the copy still gets there.
#
# A 1 GiB drive on the disk (the source node O_DIRECT, as a VM with
# cache=none) and a stand-in guest (bench/lib.sh: fio through a writable
# NBD export of the source node) writing 64 KiB at random, one at a time,
# at each rate of BENCH_RATES, over each span of BENCH_SPANS: "whole" is
# the whole drive, uniformly (the worst case: every write may land where
# the copy has already been), a size such as 128M is a hot set at the
# start of the drive (the copy passes it first, then it is dirtied again
# and again).  Rows, per span and rate:
#
#   none     the guest alone, BENCH_BASE_S seconds: the latency to compare with
#   mirror   volmig migrate --mode mirror into volmig serve
#   bitmap   volmig migrate --mode bitmap (through --nbd-socket) into volmig serve
#   libvirt  QEMU's blockdev-mirror with its defaults into a second QEMU's
#            NBD export, cancelled once READY (libvirt's path, lib.sh)
#
# The mirror and bitmap rows run with volmig's defaults, which include the
# latency-aware copy (--latency-budget auto: the guest's p99 kept under
# twice what it was before the copy).  For each value of BENCH_BUDGETS
# (default "off 10x"), a mirror and a bitmap row run with
# --latency-budget VALUE: "off" is the unthrottled copy the "x off" column
# compares total times with.  A value "off@SPEED" runs --latency-budget off
# --speed SPEED: a fixed rate, to show what the guest's latency is at a
# given copy rate (BENCH_FIXED, default "off@80M": about 1.5 times the
# guest's 50 MB/s, the least a copy must go to gain on it).
#
# Every copy runs with --switchover none and has BENCH_LIMIT seconds to
# converge (READY: the "ready" event, or QEMU's READY for libvirt's path);
# the guest is stopped then, as a real guest is paused at switchover.  A
# copy that is not READY by the limit is cancelled and its row says NO, with
# what was left.  Per row: seconds to READY, total seconds, the rate the
# guest reached, its write latency p50/p99 from the start of the copy to
# READY (fio's per-write log) and the p99 as a multiple of no migration's.
# fio is a closed loop (one write at a time): a write the copy stalls
# delays the next, so a slowed guest makes fewer samples ("writes") and the
# p99 understates what a guest with more requests in flight would see;
# "guest MB/s reached" against the rate asked says how much it was slowed.
#
# Beside the guest, a light probe (BENCH_PROBE IOPS of 4 KiB random reads
# through the same export; 0: none) records what a small request of
# volmig's own to QEMU's NBD server would see: the "probe p99" column
# tells whether such a probe could stand in for the guest's latency where
# QEMU reports none (engine/latency.h).
#
# The picture: for one case (BENCH_PLOT="SPAN RATE ROW", default
# "whole 50 bitmap"), the guest's latency of every write, the copy's rate
# and the controller's limit (volmig's --output json latency events) over
# time, in BENCH_OUT/latency.png.
#
# Knobs: BENCH_SIZE (1G), BENCH_RATES ("50 150"), BENCH_SPANS ("whole
#        128M"), BENCH_ROWS ("none mirror bitmap libvirt"), BENCH_BUDGETS
#        ("off 10x"), BENCH_FIXED ("off@80M"), BENCH_LIMIT (60), BENCH_BASE_S (10), BENCH_REPEAT (1; medians
#        when more), BENCH_SRC_DIRECT (true), BENCH_DISK_DIR (/var/tmp),
#        BENCH_OUT (bench/out), BENCH_PLOT, BENCH_PROBE (50).
. "$(dirname "$0")/../tests/lib/common.sh"
. "$TOP/bench/lib.sh"
require qemu-system-x86_64 fio python3 numfmt gnuplot
SIZE=$(bytes "${BENCH_SIZE:-1G}")
MIB=$((SIZE >> 20))
RATES=${BENCH_RATES:-50 150}
SPANS=${BENCH_SPANS:-whole 128M}
ROWS=${BENCH_ROWS:-none mirror bitmap libvirt}
BUDGETS=${BENCH_BUDGETS-off 10x}
FIXED=${BENCH_FIXED-off@80M}
LIMIT=${BENCH_LIMIT:-60}
BASE_S=${BENCH_BASE_S:-10}
REPEAT=${BENCH_REPEAT:-1}
DIRECT=${BENCH_SRC_DIRECT:-true}
PLOT=${BENCH_PLOT:-whole 50 bitmap}
PROBE=${BENCH_PROBE:-50}
OUT=${BENCH_OUT:-$TOP/bench/out}
RES=$T/results.jsonl
W=$(mktemp -d "${BENCH_DISK_DIR:-/var/tmp}/volmig-bench-latency.XXXXXX")
trap 'cleanup; rm -rf "$W"' EXIT
mkdir -p "$OUT"

span_bytes() { [ "$1" = whole ] && echo "$SIZE" || bytes "$1"; }

# stand_in_start NAME RATE SPAN / stand_in_stop: the guest and the probe.
stand_in_start() {
    [ "$PROBE" = 0 ] || guest_probe_start "$1" "$PROBE"
    guest_fio_start "$1" "$2" "$(span_bytes "$3")"
}
stand_in_stop() {
    guest_fio_stop
    [ "$PROBE" = 0 ] || guest_probe_stop
}

has_budget_option() { "$VOLMIG" migrate --help 2>&1 | grep -c -- --latency-budget >/dev/null; }

# record SPAN RATE ROW BUDGET S_MS READY_MS E_MS CONVERGED EVENTS NOTE:
# one line of results.  The guest's latency counts from S_MS (the copy
# starts) to READY_MS (it was stopped then), or to E_MS for a baseline.
record() {
    local name
    name=$(case_name "$1" "$2" "$3" "$4")
    BENCH_HOME=$BENCH_HOME python3 - "$@" "$(guest_lat_log "$name")" "$(guest_probe_log "$name")" \
        >>"$RES" <<'PY'
import json, os, sys
sys.path.insert(0, os.environ["BENCH_HOME"])
from guestlat import window
span, rate, row, budget, s, ready, e, conv, evf, note, log, plog = sys.argv[1:13]
s, ready, e = int(s), int(ready), int(e)
r = {"span": span, "rate": int(rate), "row": row, "budget": budget, "total": (e - s) / 1000.0,
     "converged": conv, "note": note}
if conv == "yes" and row != "none":
    r["ready"] = (ready - s) / 1000.0
ev = [json.loads(l) for l in open(evf) if l.strip()] if evf and os.path.exists(evf) else []
prog = [x for x in ev if x.get("event") == "progress"]
if conv == "NO" and prog:
    r["left_mib"] = prog[-1].get("remaining", 0) / 2**20
p = [x for x in ev if x.get("event") == "paused"]
if p:
    r["pause_ms"] = p[0]["seconds"] * 1000.0
lat = window(log, s, ready if row != "none" else e)
if lat["n"]:
    r["p50"], r["p99"], r["mbs"] = lat["p50"], lat["p99"], lat["mbs"]
r["writes"] = lat["n"]
lat = window(plog, s, ready if row != "none" else e)
if lat["n"]:
    r["probe_p99"] = lat["p99"]
print(json.dumps(r))
PY
}

case_name() { echo "$1_$2_$3${4:+_$4}"; }

# run_none SPAN RATE
run_none() {
    local name s e
    name=$(case_name "$1" "$2" none "")
    guest_qemu_start "$W/src.img" "$DIRECT"
    stand_in_start "$name" "$2" "$1"
    s=$(now_ms)
    sleep "$BASE_S"
    e=$(now_ms)
    stand_in_stop
    guest_qemu_stop
    record "$1" "$2" none "" "$s" "$e" "$e" - "" ""
}

# run_volmig SPAN RATE MODE BUDGET
run_volmig() {
    local span=$1 rate=$2 mode=$3 budget=$4 name port s r e mpid conv=NO note="" extra=()
    name=$(case_name "$span" "$rate" "$mode" "$budget")
    if [ -n "$budget" ] && ! has_budget_option; then
        record "$span" "$rate" "$mode" "$budget" 0 0 0 n/a "" "this volmig has no --latency-budget"
        return
    fi
    # The stand-in guest writes through an export on QEMU's NBD server:
    # bitmap mode copies through that server, and both modes probe the
    # latency through it (the stand-in is no device QEMU accounts for).
    extra+=(--nbd-socket "$T/guest.sock" ${BENCH_EXTRA:-})
    case $budget in
        "") ;;
        *@*) extra+=(--latency-budget "${budget%@*}" --speed "${budget#*@}") ;;
        *) extra+=(--latency-budget "$budget") ;;
    esac
    truncate -s 0 "$W/dst.img"; truncate -s "$SIZE" "$W/dst.img"
    guest_qemu_start "$W/src.img" "$DIRECT"
    port=$(free_port)
    start_serve srv --target "$W/dst.img" --listen "127.0.0.1:$port"
    stand_in_start "$name" "$rate" "$span"
    s=$(now_ms)
    "$VOLMIG" migrate --output json --progress-interval 250 --qmp "unix:$T/src.qmp" \
        --volume "disk0=nbd://127.0.0.1:$port/" --mode "$mode" --switchover none --retries 0 \
        "${extra[@]}" >"$T/$name.json" 2>"$T/$name.err" &
    mpid=$!
    track_pid $mpid
    local why=limit
    while [ "$(now_ms)" -lt $((s + LIMIT * 1000)) ]; do
        if grep -qs '"event":"ready"' "$T/$name.json"; then why=ready; break; fi
        if ! kill -0 $mpid 2>/dev/null; then why=exited; break; fi
        sleep 0.02
    done
    r=$(now_ms)
    stand_in_stop
    if [ $why = ready ]; then
        conv=yes
    elif kill -0 $mpid 2>/dev/null; then
        note="not READY within $LIMIT s; cancelled"
        [ $why = limit ] || note="stopped waiting after $((r - s)) ms ($why); cancelled"
        kill -TERM $mpid
    fi
    if ! wait $mpid && [ -z "$note" ]; then
        note="migrate failed: $(tail -n 1 "$T/$name.err")"
        conv=NO
    fi
    untrack_pid $mpid
    e=$(now_ms)
    stop_serve srv
    untrack_pid "$srv_pid"
    guest_qemu_stop
    record "$span" "$rate" "$mode" "$budget" "$s" "$r" "$e" "$conv" "$T/$name.json" "$note"
    [ "$PLOT" = "$span $rate $mode" ] && [ -z "$budget" ] && plot "$name" "$s" "$r" "$e"
    return 0
}

# run_libvirt SPAN RATE
run_libvirt() {
    local name s r e conv=NO note="" left
    name=$(case_name "$1" "$2" libvirt "")
    truncate -s 0 "$W/dst.img"; truncate -s "$SIZE" "$W/dst.img"
    guest_qemu_start "$W/src.img" "$DIRECT"
    dst_qemu_start "$W/dst.img"
    stand_in_start "$name" "$2" "$1"
    s=$(now_ms)
    libvirt_mirror_start
    libvirt_mirror_ready "$LIMIT" && conv=yes
    r=$(now_ms)
    stand_in_stop
    if [ $conv = yes ]; then
        libvirt_mirror_finish
    else
        left=$(qmp "$T/src.qmp2" query-jobs | python3 -c '
import json, sys
j = [x for x in json.loads(sys.stdin.read()) if x["id"] == "m0"]
print("%.0f" % ((j[0]["total-progress"] - j[0]["current-progress"]) / 2**20) if j else "?")')
        note="not READY within $LIMIT s ($left MiB left); cancelled"
        libvirt_mirror_finish force
    fi
    e=$(now_ms)
    dst_qemu_stop
    guest_qemu_stop
    record "$1" "$2" libvirt "" "$s" "$r" "$e" "$conv" "" "$note"
}

# plot NAME S_MS READY_MS E_MS: the guest's write latency, the probe's and
# the copy's rate over time, one PNG.
plot() {
    local name=$1 rd
    rd=$(python3 -c "print('%.1f' % (($3 - $2) / 1000))")
    python3 - "$(guest_lat_log "$name")" "$(guest_probe_log "$name")" "$T/$name.json" "$2" "$4" \
        "$T/plot" <<'PY'
import json, os, sys
log, plog, evf, s, e, out = sys.argv[1:7]
s, e = int(s), int(e)
for src, dst in ((log, out + ".lat"), (plog, out + ".probe")):
    with open(dst, "w") as f:
        for line in open(src) if os.path.exists(src) else []:
            x = line.split(",")
            if s - 1000 <= int(x[0]) <= e:
                f.write("%.3f %.3f\n" % ((int(x[0]) - s) / 1000.0, int(x[1]) / 1e6))
with open(out + ".rate", "w") as f, open(out + ".limit", "w") as g:
    for l in open(evf):
        ev = json.loads(l)
        if ev.get("event") == "latency":
            f.write("%.3f %.1f\n" % (ev["t"], ev["copy_rate"] / 1e6))
            if ev["limit"]:
                g.write("%.3f %.1f\n" % (ev["t"], ev["limit"] / 1e6))
PY
    cat >"$T/latency.gp" <<EOF
set terminal pngcairo size 1200,500 font ",10"
set output "$OUT/latency.png"
set termoption noenhanced
set title "$name ($MIB MiB), --latency-budget auto: the guest's 64 KiB writes, a 4 KiB read probe, the copy's rate and its limit; READY at $rd s, where the guest stops"
set xlabel "seconds since the copy started"
set ylabel "latency, ms (log)"
set y2label "copy rate, MB/s"
set logscale y
set xrange [-1:*]
set ytics nomirror
set y2tics
set y2range [0:*]
set grid xtics ytics
set key top left opaque
set arrow from $rd,graph 0 to $rd,graph 1 nohead dt 2
plot "$T/plot.lat" using 1:2 with points pt 7 ps 0.3 lc rgb "#c03030" title "guest write (fio, every write)", \
     "$T/plot.probe" using 1:2 with points pt 6 ps 0.5 lc rgb "#30a030" title "probe read through the export", \
     "$T/plot.rate" using 1:2 axes x1y2 with linespoints pt 5 ps 0.4 lw 2 lc rgb "#3050c0" title "copy rate (volmig latency events, per 0.5 s)", \
     "$T/plot.limit" using 1:2 axes x1y2 with steps lw 2 dt 2 lc rgb "#e08000" title "the controller's rate limit"
EOF
    gnuplot "$T/latency.gp" || log "gnuplot failed: no $OUT/latency.png"
}

log "source: $MIB MiB of random data in $W (O_DIRECT: $DIRECT); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
dd if=/dev/urandom of="$W/src.img" bs=1M count=$MIB status=none
sync
: >"$RES"
for span in $SPANS; do
    for rate in $RATES; do
        for _ in $(seq "$REPEAT"); do
            for row in $ROWS; do
                log "span $span, $rate MB/s: $row"
                case $row in
                none)          run_none "$span" "$rate" ;;
                mirror|bitmap) run_volmig "$span" "$rate" "$row" "" ;;
                libvirt)       run_libvirt "$span" "$rate" ;;
                *)             fail "BENCH_ROWS: unknown row '$row'" ;;
                esac
            done
            for b in $BUDGETS $FIXED; do
                for mode in mirror bitmap; do
                    log "span $span, $rate MB/s: $mode, --latency-budget $b"
                    run_volmig "$span" "$rate" "$mode" "$b"
                done
            done
        done
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$RES" "$MIB" "$LIMIT" "$REPEAT" "$load_after" <<'PY' | tee "$OUT/latency.md"
import json, statistics, sys
res, mib, limit, repeat, load = sys.argv[1:6]
runs = [json.loads(l) for l in open(res) if l.strip()]
def key(r):
    return (r["span"], r["rate"], r["row"], r["budget"])
rows = []
for r in runs:
    if any(key(x) == key(r) for x in rows):
        continue
    same = [x for x in runs if key(x) == key(r)]
    m = dict(r)
    for k in ("total", "ready", "p50", "p99", "mbs", "pause_ms", "left_mib", "probe_p99", "writes"):
        v = [x[k] for x in same if k in x]
        if v:
            m[k] = statistics.median(v)
    no = [x for x in same if x["converged"] == "NO"]
    if no:
        m["converged"] = "NO" if len(no) == len(same) else "%d of %d" % (len(same) - len(no), len(same))
        m["note"] = no[0]["note"]
    rows.append(m)
def base(r):
    return next((x for x in rows if (x["span"], x["rate"], x["row"]) == (r["span"], r["rate"], "none")), None)
def unthrottled(r):
    return next((x for x in rows if (x["span"], x["rate"], x["row"], x["budget"]) == (r["span"], r["rate"], r["row"], "off")), None)
def f(v, fmt="%.2f"):
    return fmt % v if v is not None else "-"
print("### The guest's write latency during a copy of %s MiB (limit %s s to READY; %s run%s per row; load after: %s)"
      % (mib, limit, repeat, "" if repeat == "1" else "s, medians", load))
print()
print("| span | guest MB/s | row | budget | converged | s to READY | total s | total x off | guest MB/s reached | writes | p50 ms | p99 ms | p99 x none | probe p99 ms | pause ms | note |")
print("|---|--:|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
for r in rows:
    b = base(r)
    none = r["row"] == "none"
    na = r["converged"] == "n/a"
    x = r["p99"] / b["p99"] if not none and b and r.get("p99") and b.get("p99") else None
    u = unthrottled(r)
    tx = r["total"] / u["total"] if u and not none and not na and u.get("total") and r["converged"] == "yes" else None
    print("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        r["span"], r["rate"], "no migration" if none else r["row"],
        "-" if none or r["row"] == "libvirt" else r["budget"].replace("@", ", --speed ") if r["budget"] else "auto",
        "-" if none else r["converged"], f(r.get("ready")),
        "(%.0f s)" % r["total"] if none else "-" if na else f(r["total"]), f(tx),
        f(r.get("mbs"), "%.0f"),
        f(r.get("writes"), "%.0f") if not na else "-", f(r.get("p50")), f(r.get("p99")), f(x), f(r.get("probe_p99")), f(r.get("pause_ms"), "%.0f"),
        r.get("note") or ""))
missed = [r for r in rows if r["row"] != "none" and r["converged"] not in ("yes", "n/a")]
print()
if missed:
    print("Not converged within %s s: %s." % (limit, "; ".join(
        "%s span, %d MB/s, %s%s" % (r["span"], r["rate"], r["row"],
                                    " (budget %s)" % r["budget"] if r["budget"] else "") for r in missed)))
else:
    print("Every copy reached READY within %s s." % limit)
PY
log "table: $OUT/latency.md; picture ($PLOT): $OUT/latency.png"
