#!/usr/bin/env bash
# Live migration of one drive: --mode bitmap against --mode mirror, both
# with --switchover none into volmig serve, idle and under a stand-in guest
# (fio writing 64 KiB at random, rate-limited, one at a time) through an
# NBD export of the source node.  Under load only mirror mode runs for now:
# bitmap mode starts QEMU's one NBD server itself, and a FUSE export of the
# node conflicts with every NBD export or mirror (resize permission).  The guest stops writing at the switchover event, as a paused
# guest would.
#
# Reported per case: total seconds, passes (bitmap), the final pause
# (bitmap: stop..cont), and the guest's write latency p50/p99 while the
# migration ran (fio, completion latency).
#
# Knobs: BENCH_SIZE (default 1G), BENCH_DIR (default /var/tmp),
#        BENCH_RATES (MB/s, default "0 50"), BENCH_MODES ("mirror bitmap").
. "$(dirname "$0")/../tests/lib/common.sh"
require qemu-system-x86_64 fio python3 numfmt
SIZE=$(numfmt --from=iec "${BENCH_SIZE:-1G}")
RATES=${BENCH_RATES:-0 50}
MODES=${BENCH_MODES:-mirror bitmap}
W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/volmig-bench-bitmap.XXXXXX")
trap 'cleanup; rm -rf "$W"' EXIT
MIB=$((SIZE >> 20))
dd if=/dev/urandom of="$W/src.img" bs=1M count=$MIB status=none

run_case() { # MODE RATE
    local mode=$1 rate=$2 port fio_pid="" gargs=() name="$1_$2"
    truncate -s 0 "$W/dst.img"; truncate -s "$SIZE" "$W/dst.img"
    rm -f "$T"/src.qmp*
    start_qemu src "{\"driver\":\"raw\",\"node-name\":\"disk0\",\"file\":{\"driver\":\"file\",\"filename\":\"$W/src.img\"}}"
    # The guest's path: mirror jobs refuse to share a node with a FUSE
    # export (it holds the resize permission), and bitmap mode needs QEMU's
    # one NBD server for itself.
    if [ "$mode" = mirror ]; then
        qmp "$T/src.qmp2" nbd-server-start "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"$T/guest.sock\"}}}" \
            block-export-add '{"type":"nbd","id":"guest","node-name":"disk0","writable":true,"name":"disk0"}' \
            >/dev/null || fail "NBD export"
        gargs=(--ioengine=nbd --uri="nbd+unix:///disk0?socket=$T/guest.sock")
    elif [ "$rate" != 0 ]; then
        # No guest path yet: bitmap mode's NBD export conflicts with a FUSE
        # export of the node (resize permission) and QEMU runs one NBD
        # server, which bitmap mode starts itself.  Left for later (reuse a
        # running server whose socket the user names).
        printf '| %-6s | %4s | %7s | %6s | %9s | %7s | %7s |\n' "$mode" "$rate" n/a n/a n/a n/a n/a
        qmp "$T/src.qmp2" quit >/dev/null 2>&1 || true
        wait "$src_pid" 2>/dev/null || true
        return 0
    fi
    port=$(free_port)
    start_serve "srv_$name" --target "$W/dst.img" --listen 127.0.0.1:$port
    if [ "$rate" != 0 ]; then
        fio --name=guest "${gargs[@]}" --rw=randwrite --bs=64k \
            --rate=${rate}m --time_based --runtime=3600 --size="$SIZE" --output-format=json \
            --output="$T/fio-$name.json" >/dev/null 2>&1 &
        fio_pid=$!
        sleep 1
    fi
    local s e
    s=$(date +%s.%N)
    "$VOLMIG" migrate --output json --qmp "unix:$T/src.qmp" --volume "disk0=nbd://127.0.0.1:$port/" \
        --mode "$mode" --switchover none --retries 0 >"$T/$name.json" 2>"$T/$name.err" &
    local mpid=$!
    if [ -n "$fio_pid" ]; then
        until grep -q '"switchover"' "$T/$name.json" || ! kill -0 $mpid 2>/dev/null; do sleep 0.02; done
        kill -INT $fio_pid; wait $fio_pid || true
    fi
    wait $mpid || { cat "$T/$name.err" >&2; fail "$name: migrate failed"; }
    e=$(date +%s.%N)
    qmp "$T/src.qmp2" block-export-del '{"id":"guest"}' >/dev/null 2>&1 || true
    sleep 0.2
    qmp "$T/src.qmp2" quit >/dev/null 2>&1 || true
    wait "$src_pid" 2>/dev/null || true
    kill "$(eval echo "\$srv_${name}_pid")" 2>/dev/null || true
    python3 - "$mode" "$rate" "$T/$name.json" "$T/fio-$name.json" "$s" "$e" <<'PY'
import json, sys, os
mode, rate, evf, fiof, s, e = sys.argv[1:]
ev = [json.loads(l) for l in open(evf) if l.strip()]
passes = sum(1 for x in ev if x["event"] == "pass")
pause = [x["seconds"] for x in ev if x["event"] == "paused"]
p50 = p99 = "-"
if os.path.exists(fiof) and os.path.getsize(fiof):
    txt = open(fiof).read(); txt = txt[txt.index("{"):]
    w = json.loads(txt)["jobs"][0]["write"]["clat_ns"]["percentile"]
    p50 = "%.2f" % (w["50.000000"] / 1e6); p99 = "%.2f" % (w["99.000000"] / 1e6)
print("| %-6s | %4s | %7.2f | %6s | %9s | %7s | %7s |" % (mode, rate, float(e) - float(s),
      passes if mode == "bitmap" else "-", "%.3f" % pause[0] if pause else "-", p50, p99))
PY
}

echo "size: $MIB MiB, source and target in ${BENCH_DIR:-/var/tmp}"
echo "| mode   | MB/s | total s | passes | pause s   | p50 ms  | p99 ms  |"
echo "|--------|------|---------|--------|-----------|---------|---------|"
for rate in $RATES; do
    for mode in $MODES; do
        run_case "$mode" "$rate"
    done
done
