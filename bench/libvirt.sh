#!/usr/bin/env bash
# volmig migrate --switchover migrate:URI under libvirt, its two ways,
# between the two-host recipe's libvirtds (tests/lib/libvirt.sh host-up:
# a libvirtd per network and mount namespace, joined by a veth pair):
#   libvirt  libvirt's own storage migration (virDomainMigrateToURI3 with
#            NON_SHARED_DISK), as KubeVirt's virt-launcher does it
#   volmig   volmig's data path: libvirt's block copy into volmig serve
#            --once on the destination, the guest paused, a memory-only
#            migration onto the local volume
# each idle and under a stand-in guest (64 KiB writes through HMP qemu-io,
# tests/lib/libvirt-helpers.sh lv_guest_writer: a few MB/s at most).
#
# Reported per case, medians of BENCH_REPEAT runs taken in turns: total
# seconds (volmig migrate start to exit), the guest's pause (libvirt: the
# downtime libvirt measured on the destination; volmig: suspend to resume,
# which includes the end of the copies, volmig serve's exit and the memory
# migration), and the guest writes made during the run.  Idle runs are
# compared byte for byte.
#
# Knobs: BENCH_SIZE (1G), BENCH_DIR (/var/tmp: the volumes, on the disk),
#        BENCH_WAYS ("libvirt volmig"), BENCH_LOADS ("idle writes"),
#        BENCH_REPEAT (3).
. "$(dirname "$0")/../tests/lib/common.sh"
. "$TOP/tests/lib/libvirt-helpers.sh"
require ip unshare setsid numfmt python3
SIZE=$(numfmt --from=iec "${BENCH_SIZE:-1G}")
WAYS=${BENCH_WAYS:-libvirt volmig}
LOADS=${BENCH_LOADS:-idle writes}
REPEAT=${BENCH_REPEAT:-3}
OUT=$TOP/bench/out
mkdir -p "$OUT"
D=$(mktemp -d "${BENCH_DIR:-/var/tmp}/volmig-bench-lv.XXXXXX")
lv_cleanup_bench() { rm -rf "$D"; lv_cleanup; }
trap lv_cleanup_bench EXIT

lv_hosts_up
VIRSH=(virsh -q -c "$SRC_URI")
DOM=volmig-bench-$$
log "source volume: $(numfmt --to=iec "$SIZE") of random data in $D"
dd if=/dev/urandom of="$D/src.img" bs=1M count=$((SIZE >> 20)) status=none

# run WAY LOAD N: one migration; appends "WAY LOAD SECS PAUSE WRITES" to
# $D/results.
run() {
    local way=$1 load=$2 n=$3 dest serve="" port t0 t1 pause writes=0
    rm -f "$D/dst.img" "$D/writes" "$D/writes.uncertain"
    truncate -s "$SIZE" "$D/dst.img"
    LIBVIRT_URI=$SRC_URI "$LV" define "$DOM" "$D/src.img" || fail "define on the source host"
    dest="$DST_URI&migrate_uri=tcp://$DST_IP:$(free_port)"
    if [ "$way" = libvirt ]; then
        dest+="&disks_uri=tcp://$DST_IP:$(free_port)"
    else
        port=$(free_port)
        ip netns exec "$DST_NS" "$VOLMIG" serve --target "$D/dst.img" --size "$SIZE" \
            --listen "$DST_IP:$port" --once >"$D/serve.log" 2>&1 &
        serve=$!
        track_pid $serve
        wait_for 10 grep -q listening "$D/serve.log" || fail "volmig serve: $(cat "$D/serve.log")"
        dest+="&serve.vda=nbd://$DST_IP:$port/"
    fi
    [ "$load" = writes ] && lv_guest_writer "$DOM" "$D/writes"
    t0=$(date +%s.%N)
    ip netns exec "$SRC_NS" "$VOLMIG" migrate --qmp "libvirt:$DOM?uri=$SRC_URI" \
        --volume "vda=file:$D/dst.img" --switchover "migrate:$dest" --retries 0 \
        --output json >"$D/events" 2>"$D/err" \
        || fail "$way $load run $n: $(tail -3 "$D/events") $(cat "$D/err")"
    t1=$(date +%s.%N)
    [ "$load" = writes ] && { wait "$LV_WRITER" || true; writes=$(cat "$D/writes" 2>/dev/null || echo 0); }
    [ -n "$serve" ] && { wait "$serve" || true; }
    pause=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e.get("event") == "migrated": print(e["blocks_flushed_in"])' "$D/events")
    virsh -c "$DST_URI" destroy "$DOM" >/dev/null
    virsh -c "$DST_URI" undefine "$DOM" >/dev/null
    [ "$load" = idle ] && same_bytes "$D/src.img" "$D/dst.img"
    echo "$way $load $(awk "BEGIN { printf \"%.3f\", $t1 - $t0 }") ${pause:-0} $writes" >>"$D/results"
    log "$way $load run $n: $(tail -1 "$D/results")"
}

for n in $(seq "$REPEAT"); do
    for load in $LOADS; do
        for way in $WAYS; do run "$way" "$load" "$n"; done
    done
done

python3 - "$D/results" "$SIZE" >"$OUT/libvirt.md" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    way, load, secs, pause, writes = line.split()
    rows.setdefault((load, way), []).append((float(secs), float(pause), int(writes)))
size = int(sys.argv[2]) >> 20
print(f"migrate:URI under libvirt, {size} MiB, medians of {max(len(v) for v in rows.values())}\n")
print("| load | way | total s | x libvirt | MiB/s | guest pause ms | guest writes |")
print("|---|---|--:|--:|--:|--:|--:|")
for (load, way), v in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1] != "libvirt")):
    secs = statistics.median(x[0] for x in v)
    base = rows.get((load, "libvirt"))
    ratio = secs / statistics.median(x[0] for x in base) if base else float("nan")
    print(f"| {load} | {way} | {secs:.2f} | {ratio:.2f} | {size / secs:.0f} | "
          f"{statistics.median(x[1] for x in v) * 1000:.0f} | "
          f"{statistics.median(x[2] for x in v)} |")
EOF
cat "$OUT/libvirt.md"
