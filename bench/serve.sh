#!/usr/bin/env bash
# The benchmark of issue 2: QEMU's blockdev-mirror (default parameters) of
# one raw image into each NBD server under comparison, timed from the
# command to READY, every target compared with its source afterwards.
#
#   disk    both images on the disk, O_DIRECT (device-bound)
#   shm     both images in /dev/shm, no O_DIRECT (server-bound)
#   sparse  a BENCH_SPARSE_SIZE image holding BENCH_SPARSE_DATA of data,
#           against a dense image of BENCH_SPARSE_DATA, on the disk
#
# Servers: volmig serve, qemu-nbd, nbdkit's file plugin, a second QEMU's
# NBD export (nbd-server-start + block-export-add: what libvirt does), and
# the copy limit: fio reading the source while it writes the target.
#
# Knobs (environment):
#   BENCH_SIZE=2G  BENCH_REPEAT=3  BENCH_CASES="disk shm sparse"
#   BENCH_SERVERS="volmig qemu-nbd nbdkit qemu-export"
#   BENCH_SPARSE_SIZE=16G  BENCH_SPARSE_DATA=512M
#   BENCH_SPARSE_SERVERS (default: BENCH_SERVERS)
#   BENCH_DISK_DIR=/var/tmp (must be on the disk)  BENCH_OUT=bench/out
#
# Writes BENCH_OUT/serve.csv (every run), serve.md (medians, printed too),
# serve.png, logs/.  Exits 1 if a peer failed or any target differed from
# its source; a volmig serve that cannot start is reported n/a, not failed.
. "$(dirname "$0")/../tests/lib/common.sh"
. "$TOP/bench/lib.sh"

SIZE=$(bytes "${BENCH_SIZE:-2G}")
REPEAT=${BENCH_REPEAT:-3}
CASES=${BENCH_CASES:-disk shm sparse}
SERVERS=${BENCH_SERVERS:-volmig qemu-nbd nbdkit qemu-export}
SPARSE_SERVERS=${BENCH_SPARSE_SERVERS:-$SERVERS}
SPARSE_SIZE=$(bytes "${BENCH_SPARSE_SIZE:-16G}")
SPARSE_DATA=$(bytes "${BENCH_SPARSE_DATA:-512M}")
OUT=${BENCH_OUT:-$TOP/bench/out}
MIB=$((1 << 20))

for n in SIZE SPARSE_SIZE SPARSE_DATA; do
    (( ${!n} > 0 && ${!n} % MIB == 0 )) || fail "$n must be a positive multiple of 1 MiB"
done
for c in qemu-system-x86_64 qemu-nbd qemu-img qemu-io nbdkit fio gnuplot \
         python3 openssl ss cmp numfmt du; do
    command -v "$c" >/dev/null || fail "missing $c (make deps)"
done
nbdkit file --dump-plugin >/dev/null 2>&1 || fail "nbdkit has no file plugin (make deps)"

rm -rf "$OUT/logs"
mkdir -p "$OUT/logs"
DISK_DIR=$(mktemp -d "${BENCH_DISK_DIR:-/var/tmp}/volmig-bench.XXXXXX")
SHM_DIR=$(mktemp -d /dev/shm/volmig-bench.XXXXXX)
# The logs outlive $T: they are kept next to the results.
bench_cleanup() {
    cp "$T"/*.log "$T"/*.err "$OUT/logs/" 2>/dev/null || true
    cleanup
    rm -rf "$DISK_DIR" "$SHM_DIR"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

[ "$(stat -f -c %T "$DISK_DIR")" != tmpfs ] || fail "$DISK_DIR is tmpfs, not a disk"
[ "$(stat -f -c %T "$SHM_DIR")" = tmpfs ] || fail "/dev/shm is not tmpfs"
need_space() { # DIR BYTES
    local avail; avail=$(( $(df -Pk "$1" | awk 'NR==2 {print $4}') * 1024 ))
    (( avail > $2 )) || fail "$1 has $((avail / MIB)) MiB free, the bench needs $(($2 / MIB)) MiB"
}
need_space "$DISK_DIR" $((2 * SIZE + 3 * SPARSE_DATA + 256 * MIB))
[[ " $CASES " != *" shm "* ]] || need_space "$SHM_DIR" $((2 * SIZE + 64 * MIB))
probe_aio "$DISK_DIR"

CSV=$OUT/serve.csv
echo "case,server,rep,bytes,data_bytes,ready_s,done_s,server_cpu_s,source_cpu_s,rss_kib,alloc_kib,odirect,status,note" >"$CSV"
runs=0 failures=0

record() { # CASE SERVER REP BYTES DATA READY DONE SCPU QCPU RSS ALLOC ODIRECT STATUS NOTE
    local note=${14//,/;}
    echo "$1,$2,$3,$4,$5,$6,$7,$8,$9,${10},${11},${12},${13},${note//$'\n'/ }" >>"$CSV"
    if [ "$2" = copy-limit ]; then
        printf '  %-6s %-12s #%s %8.2f s %7.0f MB/s\n' "$1" "$2" "$3" "$6" \
            "$(awk "BEGIN {print $5 / $6 / 1e6}")"
    elif [ "${13}" = ok ]; then
        printf '  %-6s %-12s #%s %8.2f s %7.0f MB/s  server %6.2f CPU s  source %6.2f CPU s  RSS %5d MiB  O_DIRECT %s\n' \
            "$1" "$2" "$3" "$6" "$(awk "BEGIN {print $5 / $6 / 1e6}")" "$8" "$9" \
            $((${10} / 1024)) "${12}"
    else
        printf '  %-6s %-12s #%s %s: %s\n' "$1" "$2" "$3" "${13}" "$note"
    fi
}

# mirror_run CASE KIND REP SRC DIR DIRECT DATA: one mirror of SRC into a
# fresh sparse target in DIR served by KIND, then the server's exit and the
# comparison of target and source.
mirror_run() {
    local case=$1 kind=$2 rep=$3 src=$4 dir=$5 direct=$6 data=$7
    local n=$((++runs)) tgt=$5/tgt.img size port src_pid res rc=0
    local status=ok note= rss=0 alloc=0 ready=0 done_s=0 scpu=0 qcpu=0 odirect=-
    size=$(stat -c %s "$src")
    rm -f "$tgt"
    truncate -s "$size" "$tgt"
    port=$(free_port)
    if ! start_target "$kind" "$tgt" "$port" "$direct" "dst$n"; then
        record "$case" "$kind" "$rep" "$size" "$data" 0 0 0 0 0 0 - n/a "$srv_note"
        rm -f "$tgt"
        return 0
    fi
    start_qemu "src$n" "$(file_node src0 "$src" "$direct")" \
        '{"driver":"raw","node-name":"disk0","file":"src0"}'
    src_pid=$(eval echo "\$src${n}_pid")
    if res=$(python3 "$BENCH_DIR/mirror.py" "$T/src$n.qmp" "$port" "$srv_pid" \
                "$src_pid" --target "$tgt" 2>"$T/mirror$n.err"); then
        read -r ready done_s scpu qcpu odirect < <(python3 -c '
import json, sys
r = json.loads(sys.argv[1])
print(r["ready_s"], r["done_s"], r["server_cpu_s"], r["source_cpu_s"], r["odirect"])' "$res")
    else
        status=failed note="mirror: $(tail -n 1 "$T/mirror$n.err")"
    fi
    rss=$(peak_rss_kib "$srv_pid")
    stop_pid "$src_pid" || true
    stop_pid "$srv_pid" || rc=$?
    # SIGTERM is a clean stop for every server here: exit 0, or QEMU's and
    # qemu-nbd's death by the signal after their own clean-up.
    if [ $rc != 0 ] && [ $rc != 143 ] && [ $status = ok ]; then
        note="$kind exited with status $rc on SIGTERM"
        [ "$kind" = volmig ] && status=failed
    fi
    if [ $status = ok ]; then
        if [ "$case" = sparse ]; then
            # qemu-img compare skips holes on both sides; cmp would read 16 GiB.
            qemu-img compare -q -f raw -F raw "$src" "$tgt" || status=failed
        else
            cmp -s "$src" "$tgt" || status=failed
        fi
        [ $status = ok ] || note="TARGET DIFFERS FROM SOURCE"
        alloc=$(du -k "$tgt" | cut -f1)
    fi
    [ $status != failed ] || failures=$((failures + 1))
    record "$case" "$kind" "$rep" "$size" "$data" "$ready" "$done_s" "$scpu" "$qcpu" \
        "$rss" "$alloc" "$odirect" "$status" "$note"
    python3 "$BENCH_DIR/mkimage.py" dontneed "$src"
    rm -f "$tgt"
}

copy_run() { # CASE REP SRC DIR DIRECT(1|0)
    local tgt=$4/tgt.img size secs
    size=$(stat -c %s "$3")
    rm -f "$tgt"
    truncate -s "$size" "$tgt"
    secs=$(copy_limit "$3" "$tgt" "$size" "$5")
    record "$1" copy-limit "$2" "$size" "$size" "$secs" 0 0 0 0 0 "$([ "$5" = 1 ] && echo yes || echo no)" ok ""
    python3 "$BENCH_DIR/mkimage.py" dontneed "$3"
    rm -f "$tgt"
}

dense_cases() {
    local case rep kind dir direct src
    for case in disk shm; do
        [[ " $CASES " == *" $case "* ]] || continue
        if [ $case = disk ]; then dir=$DISK_DIR direct=true; else dir=$SHM_DIR direct=false; fi
        src=$dir/src.img
        log "$case: $((SIZE / MIB)) MiB of random data in $dir"
        if [ $case = shm ] && [ -f "$DISK_DIR/src.img" ]; then
            cp "$DISK_DIR/src.img" "$src"
        else
            python3 "$BENCH_DIR/mkimage.py" dense "$src" "$SIZE"
        fi
        sync
        # Servers take turns within each repeat, so a slow spell of the
        # machine spreads over all of them instead of hitting one.
        for rep in $(seq "$REPEAT"); do
            for kind in $SERVERS; do
                mirror_run $case "$kind" "$rep" "$src" "$dir" $direct "$SIZE"
            done
            copy_run $case "$rep" "$src" "$dir" "$([ $direct = true ] && echo 1 || echo 0)"
        done
        rm -f "$src"
    done
}

sparse_cases() {
    [[ " $CASES " == *" sparse "* ]] || return 0
    local rep kind sparse=$DISK_DIR/sparse.img dense=$DISK_DIR/dense.img
    log "sparse: $((SPARSE_SIZE >> 30)) GiB holding $((SPARSE_DATA / MIB)) MiB, against $((SPARSE_DATA / MIB)) MiB dense, on the disk"
    python3 "$BENCH_DIR/mkimage.py" sparse "$sparse" "$SPARSE_SIZE" "$SPARSE_DATA"
    python3 "$BENCH_DIR/mkimage.py" dense "$dense" "$SPARSE_DATA"
    sync
    for rep in $(seq "$REPEAT"); do
        for kind in $SPARSE_SERVERS; do
            mirror_run sparse "$kind" "$rep" "$sparse" "$DISK_DIR" true "$SPARSE_DATA"
            mirror_run dense "$kind" "$rep" "$dense" "$DISK_DIR" true "$SPARSE_DATA"
        done
    done
    rm -f "$sparse" "$dense"
}

meta() {
    local v
    v=$(git -C "$TOP" describe --always --dirty 2>/dev/null || echo unknown)
    cat <<EOF
date: $(date -u +%Y-%m-%dT%H:%M:%SZ)
volmig: $v
host: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, kernel $(uname -r)
disk: $(df -P "$DISK_DIR" | awk 'NR==2 {print $1}') ($(stat -f -c %T "$DISK_DIR")), load average at start $(cut -d' ' -f1-3 /proc/loadavg)
peers: $(qemu-system-x86_64 --version | head -1 | sed 's/ (.*//'), $(nbdkit --version), $(fio --version), QEMU aio=$QEMU_AIO_DIRECT
size: $SIZE
sparse: $SPARSE_SIZE $SPARSE_DATA
repeat: $REPEAT
EOF
}

meta >"$OUT/serve.meta"
dense_cases
sparse_cases
python3 "$BENCH_DIR/report.py" "$OUT"
if [ $failures -gt 0 ]; then
    fail "$failures run(s) failed; see $CSV and $OUT/logs"
fi
