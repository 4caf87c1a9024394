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
#   BENCH_VOLMIG_ARGS="..." (more volmig serve options)
#   BENCH_SHM_DIRECT=1 (volmig keeps O_DIRECT in /dev/shm; tmpfs allows it
#   on Linux >= 6.6)
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
# Logs and sockets in a directory of our own, not common.sh's /tmp one:
# other sessions on a shared machine have been seen sweeping /tmp/volmig-*.
rmdir "$T"
T=$DISK_DIR/run
mkdir "$T"
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
COLS="case server rep bytes data_bytes ready_s done_s server_cpu_s source_cpu_s
      server_thread_pct source_thread_pct rss_kib alloc_kib odirect load1 status note
      server_profile source_profile machine_busy_pct"
echo $COLS | tr ' ' , >"$CSV"
runs=0 failures=0
declare -A R   # the run being measured, one CSV line

new_result() { # CASE SERVER REP BYTES DATA_BYTES
    R=([case]=$1 [server]=$2 [rep]=$3 [bytes]=$4 [data_bytes]=$5 [ready_s]=0
       [done_s]=0 [server_cpu_s]=0 [source_cpu_s]=0 [server_thread_pct]=0
       [source_thread_pct]=0 [rss_kib]=0 [alloc_kib]=0 [odirect]=- [load1]=0
       [status]=ok [note]= [server_profile]= [source_profile]= [machine_busy_pct]=0)
}

record() {
    local c line= v
    for c in note server_profile source_profile; do
        v=${R[$c]//,/;}
        R[$c]=${v//$'\n'/ }
    done
    R[load1]=$(cut -d' ' -f1 /proc/loadavg)
    for c in $COLS; do line+=${line:+,}${R[$c]}; done
    echo "$line" >>"$CSV"
    [ "${R[status]}" != failed ] || failures=$((failures + 1))
    if [ "${R[status]}" != ok ]; then
        printf '  %-6s %-12s #%s %s: %s\n' "${R[case]}" "${R[server]}" "${R[rep]}" \
            "${R[status]}" "${R[note]}"
        return
    fi
    printf '  %-6s %-12s #%s %7.2f s %5.0f MB/s' "${R[case]}" "${R[server]}" "${R[rep]}" \
        "${R[ready_s]}" "$(awk "BEGIN {print ${R[data_bytes]} / ${R[ready_s]} / 1e6}")"
    [ "${R[server]}" = copy-limit ] || printf \
        '  CPU s: server %5.2f (top thread %3.0f%%) source %5.2f (top %3.0f%%)  RSS %3d MiB  O_DIRECT %s' \
        "${R[server_cpu_s]}" "${R[server_thread_pct]}" "${R[source_cpu_s]}" \
        "${R[source_thread_pct]}" $((R[rss_kib] / 1024)) "${R[odirect]}"
    [ "${R[server]}" = copy-limit ] || printf '  machine busy %s%%' "${R[machine_busy_pct]}"
    printf '  load %s%s\n' "${R[load1]}" "${R[note]:+  ($(echo "${R[note]}"))}"
}

# mirror_attempt KIND SRC DIR DIRECT: one mirror of SRC into a fresh sparse
# target in DIR served by KIND, the server's exit, the comparison of target
# and source.  Fills R.
mirror_attempt() {
    local kind=$1 src=$2 dir=$3 direct=$4
    local n=$((++runs)) tgt=$3/tgt.img port src_pid res k v rc=0
    rm -f "$tgt"
    truncate -s "${R[bytes]}" "$tgt"
    port=$(free_port)
    if ! start_target "$kind" "$tgt" "$port" "$direct" "dst$n"; then
        R[status]=n/a R[note]=$srv_note
        rm -f "$tgt"
        return
    fi
    start_qemu "src$n" "$(file_node src0 "$src" "$direct")" \
        '{"driver":"raw","node-name":"disk0","file":"src0"}'
    src_pid=$(eval echo "\$src${n}_pid")
    if res=$(python3 "$BENCH_HOME/mirror.py" "$T/src$n.qmp" "$port" "$srv_pid" \
                "$src_pid" --target "$tgt" 2>"$T/mirror$n.err"); then
        while IFS='=' read -r k v; do R[$k]=$v; done < <(python3 -c '
import json, sys
for k, v in json.loads(sys.argv[1]).items(): print("%s=%s" % (k, v))' "$res")
    else
        R[status]=failed R[note]="mirror: $(tail -n 1 "$T/mirror$n.err")"
        kill -0 "$srv_pid" 2>/dev/null || R[note]+="; $kind had exited: $(tail -n 1 "$T/dst$n.log")"
    fi
    R[rss_kib]=$(peak_rss_kib "$srv_pid")
    stop_pid "$src_pid" || true
    stop_pid "$srv_pid" || rc=$?
    # SIGTERM is a clean stop for every server here: exit 0, or QEMU's and
    # qemu-nbd's death by the signal after their own clean-up.
    if [ $rc != 0 ] && [ $rc != 143 ] && [ "${R[status]}" = ok ]; then
        R[note]="$kind exited with status $rc on SIGTERM"
        [ "$kind" != volmig ] || R[status]=failed
    fi
    if [ "${R[status]}" = ok ]; then
        # qemu-img compare skips the holes on both sides: cmp would read 16 GiB.
        if [ "${R[case]}" = sparse ]; then
            qemu-img compare -q -f raw -F raw "$src" "$tgt" || R[status]=failed
        else
            cmp -s "$src" "$tgt" || R[status]=failed
        fi
        [ "${R[status]}" = ok ] || R[note]="TARGET DIFFERS FROM SOURCE"
        R[alloc_kib]=$(du -k "$tgt" | cut -f1)
    fi
    rm -f "$tgt"
}

# mirror_run CASE KIND REP SRC DIR DIRECT DATA_BYTES: a mirror that fails
# (not a target that differs) is tried once more, since the machine may be
# shared with other tests; the first failure stays in the note.
mirror_run() {
    local first
    new_result "$1" "$2" "$3" "$(stat -c %s "$4")" "$7"
    mirror_attempt "$2" "$4" "$5" "$6"
    if [ "${R[status]}" = failed ] && [[ "${R[note]}" == mirror:* ]]; then
        first=${R[note]}
        new_result "$1" "$2" "$3" "$(stat -c %s "$4")" "$7"
        mirror_attempt "$2" "$4" "$5" "$6"
        R[note]="retried after: $first${R[note]:+; ${R[note]}}"
    fi
    record
}

copy_run() { # CASE REP SRC DIR DIRECT(1|0) [warmup]
    local tgt=$4/tgt.img size secs
    size=$(stat -c %s "$3")
    rm -f "$tgt"
    truncate -s "$size" "$tgt"
    secs=$(copy_limit "$3" "$tgt" "$size" "$5")
    rm -f "$tgt"
    [ -z "${6:-}" ] || return 0
    new_result "$1" copy-limit "$2" "$size" "$size"
    R[ready_s]=$secs R[odirect]=$([ "$5" = 1 ] && echo yes || echo no)
    record
}

# rotate N WORD...: the words, starting with the (N mod count)th, so that no
# server always runs first (on a cold machine) or right after another one.
rotate() {
    local n=$1; shift
    local w=("$@") i
    for ((i = 0; i < ${#w[@]}; i++)); do echo "${w[(i + n) % ${#w[@]}]}"; done
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
            python3 "$BENCH_HOME/mkimage.py" dense "$src" "$SIZE"
        fi
        sync
        # A first, unrecorded copy touches as much memory as a run does: on
        # a VM the first touch of fresh guest memory is much slower.
        copy_run $case 0 "$src" "$dir" "$([ $direct = true ] && echo 1 || echo 0)" warmup
        # Servers take turns within each repeat, so a slow spell of the
        # machine spreads over all of them instead of hitting one.
        for rep in $(seq "$REPEAT"); do
            for kind in $(rotate $((rep - 1)) $SERVERS); do
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
    python3 "$BENCH_HOME/mkimage.py" sparse "$sparse" "$SPARSE_SIZE" "$SPARSE_DATA"
    python3 "$BENCH_HOME/mkimage.py" dense "$dense" "$SPARSE_DATA"
    sync
    for rep in $(seq "$REPEAT"); do
        for kind in $(rotate $((rep - 1)) $SPARSE_SERVERS); do
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
python3 "$BENCH_HOME/report.py" "$OUT"
if [ $failures -gt 0 ]; then
    fail "$failures run(s) failed; see $CSV and $OUT/logs"
fi
