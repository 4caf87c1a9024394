#!/usr/bin/env bash
# make bench, issue 4: a live volume migration, volmig against the path
# libvirt takes today, side by side in one run.
#
#   volmig   volmig migrate (its mirror parameters) into volmig serve
#   libvirt  QEMU's default mirror parameters into a second QEMU's own NBD
#            export (nbd-server-start + block-export-add), what libvirt does
#
# each idle and under a stand-in guest (fio's nbd engine through an NBD
# export of the source node) writing 64 KiB at random at 50 and 150 MB/s,
# in both copy modes.  Reported: seconds to READY, total seconds, the guest's
# write latency p50/p99 during the copy, and the disk's raw copy limit (fio
# reading the source while writing the target, O_DIRECT) from the same run.
#
# volmig runs with --latency-budget BENCH_MIGRATE_BUDGET (default off): this
# compares the copy engines at full speed; bench/latency.sh measures the
# latency-aware copy.
#
# Knobs: BENCH_SIZE (default 2G), BENCH_DIR_DISK (default /var/tmp),
#        BENCH_RATES (default "0 50 150"), BENCH_MODES (default
#        "background write-blocking").
. "$(dirname "$0")/../tests/lib/common.sh"
. "$TOP/bench/lib.sh"
require qemu-system-x86_64 fio python3 numfmt
SIZE=$(numfmt --from=iec "${BENCH_SIZE:-2G}")
RATES=${BENCH_RATES:-0 50 150}
MODES=${BENCH_MODES:-background write-blocking}
W=$(mktemp -d "${BENCH_DIR_DISK:-/var/tmp}/volmig-bench-migrate.XXXXXX")
OUT=$TOP/bench/out
mkdir -p "$OUT"
trap 'cleanup; rm -rf "$W"' EXIT
MIB=$((SIZE >> 20))

log "source: $MIB MiB of random data in $W"
dd if=/dev/urandom of="$W/src.img" bs=1M count=$MIB status=none
sync

now() { date +%s.%N; }
elapsed() { python3 -c "print('%.2f' % ($2 - $1))"; }

# The disk's copy limit: read the source while writing a target, O_DIRECT.
copy_limit() {
    truncate -s "$SIZE" "$W/limit.img"
    local s e
    s=$(now)
    fio --name=r --filename="$W/src.img" --rw=read --bs=1M --direct=1 --ioengine=io_uring \
        --iodepth=16 --size="$SIZE" --name=w --filename="$W/limit.img" --rw=write --bs=1M \
        --direct=1 --ioengine=io_uring --iodepth=16 --size="$SIZE" >/dev/null
    e=$(now)
    rm -f "$W/limit.img"
    elapsed "$s" "$e"
}

# The source VM: disk0 on the source image (O_DIRECT), exported read-write
# on a unix socket so that fio can play the guest (lib.sh).
start_source() { guest_qemu_start "$W/src.img" true; }
stop_source() { guest_qemu_stop; }

# The stand-in guest: 64 KiB random writes at RATE MB/s until SIGINT.
start_guest() { # RATE
    fio --name=guest --ioengine=nbd --uri="nbd+unix:///guest?socket=$T/guest.sock" \
        --rw=randwrite --bs=64k --rate="${1}m" --iodepth=4 --time_based --runtime=3600 \
        --size="$SIZE" --output-format=json --output="$T/guest.json" >/dev/null 2>&1 &
    guest_pid=$!
    track_pid $guest_pid
    sleep 1
}
stop_guest() { # -> "p50 p99" in microseconds
    kill -INT "$guest_pid" 2>/dev/null || true
    wait "$guest_pid" 2>/dev/null || true
    python3 - "$T/guest.json" <<'PY'
import json, sys
try:
    text = open(sys.argv[1]).read()
    j = json.loads(text[text.index("{"):])["jobs"][0]["write"]["clat_ns"]["percentile"]
    print("%.0f %.0f" % (j["50.000000"] / 1000, j["99.000000"] / 1000))
except Exception:
    print("? ?")
PY
}

run_volmig() { # MODE -> "ready total"
    truncate -s 0 "$W/dst.img"; truncate -s "$SIZE" "$W/dst.img"
    local port s ready e
    port=$(free_port)
    start_serve dst --target "$W/dst.img" --listen "127.0.0.1:$port"
    s=$(now)
    "$VOLMIG" migrate --qmp "unix:$T/src.qmp" --volume "disk0=nbd://127.0.0.1:$port/" \
        --copy-mode "$1" --switchover none --output json --retries 0 \
        --latency-budget "${BENCH_MIGRATE_BUDGET:-off}" >"$T/mig.json" \
        || fail "volmig migrate failed: $(tail -n 2 "$T/mig.json")"
    e=$(now)
    ready=$(python3 -c "
import json
for l in open('$T/mig.json'):
    ev = json.loads(l)
    if ev['event'] == 'ready': print(ev['t'])")
    kill "$dst_pid"; wait "$dst_pid" 2>/dev/null || true
    echo "$ready $(elapsed "$s" "$e")"
}

run_libvirt() { # MODE -> "ready total"
    truncate -s 0 "$W/dst.img"; truncate -s "$SIZE" "$W/dst.img"
    dst_qemu_start "$W/dst.img"
    local s r e
    s=$(now)
    libvirt_mirror_start "$1"
    libvirt_mirror_ready 3600 || fail "libvirt-path mirror never ready"
    r=$(now)
    libvirt_mirror_finish
    e=$(now)
    dst_qemu_stop
    echo "$(elapsed "$s" "$r") $(elapsed "$s" "$e")"
}

limit=$(copy_limit)
log "disk copy limit: $limit s for $MIB MiB"
start_source
rows=()
for mode in $MODES; do
    for rate in $RATES; do
        for who in volmig libvirt; do
            [ "$rate" != 0 ] && start_guest "$rate"
            read -r ready total < <(run_$who "$mode")
            lat="- -"
            [ "$rate" != 0 ] && lat=$(stop_guest)
            # Without guest writes the target must equal the source.
            if [ "$rate" = 0 ]; then cmp -s "$W/src.img" "$W/dst.img" || fail "$who $mode: target differs"; fi
            rows+=("$who|$mode|$rate|$ready|$total|$lat")
            log "$who $mode ${rate}MB/s: ready $ready s, total $total s, guest p50/p99 $lat us"
        done
    done
done
stop_source

{
    echo "### Live migration of a $MIB MiB volume (disk copy limit $limit s)"
    echo
    echo "| path | copy mode | guest writes MB/s | s to READY | total s | ratio libvirt/volmig | guest p50 us | guest p99 us |"
    echo "|---|---|---|---|---|---|---|---|"
    for r in "${rows[@]}"; do
        IFS='|' read -r who mode rate ready total lat <<<"$r"
        read -r p50 p99 <<<"$lat"
        ratio=""
        if [ "$who" = libvirt ]; then
            for v in "${rows[@]}"; do
                IFS='|' read -r w2 m2 r2 _ t2 _ <<<"$v"
                [ "$w2|$m2|$r2" = "volmig|$mode|$rate" ] && ratio=$(python3 -c "print('%.2fx' % ($total / $t2))")
            done
        fi
        echo "| $who | $mode | $rate | $ready | $total | $ratio | $p50 | $p99 |"
    done
    echo
    echo "volmig at the copy limit: $(python3 -c "
rows = '''${rows[*]}'''.split()
t = [float(r.split('|')[4]) for r in rows if r.startswith('volmig|background|0|')]
print('%.0f%%' % (100 * $limit / t[0]) if t else 'n/a')") (limit time / volmig idle total)"
} | tee "$OUT/migrate.md"
