# Sourced by the bench scripts after tests/lib/common.sh: starting and
# stopping the NBD servers under comparison, the source QEMU, the stand-in
# guest, libvirt's mirror path, the fio copy limit.  Every process started here is tracked (common.sh kills what is
# left on exit) and untracked again once stopped, so a recycled PID is never
# signalled.

BENCH_HOME=$TOP/bench

# bytes SIZE: "2G", "256M", "512K" or a plain number of bytes.
bytes() { numfmt --from=iec "$1"; }

untrack_pid() {
    local p keep=()
    for p in "${_pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    _pids=("${keep[@]}")
}

# stop_pid PID: SIGTERM, 10 s of grace, then SIGKILL.  Returns the exit
# status of the process (143 = killed by SIGTERM, 137 = needed SIGKILL).
stop_pid() {
    local pid=$1 rc=0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || rc=$?
    untrack_pid "$pid"
    return $rc
}

now_ms() { date +%s%3N; }

port_listening() { ss -Htln "sport = :$1" | grep -q .; }

# wait_listening PID PORT LOG: until PORT listens; fails at once if PID dies.
wait_listening() {
    local pid=$1 port=$2
    for _ in $(seq 200); do
        port_listening "$port" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# peak_rss_kib PID: VmHWM, the peak resident set of the process so far.
peak_rss_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# QEMU's aio= for a file node: io_uring when this QEMU has it, else native
# (needs O_DIRECT) or threads.  Probed once with qemu-io.
probe_aio() { # DIR
    local f=$1/aio-probe.img
    truncate -s 1M "$f"
    if qemu-io -f raw -n -i io_uring -c 'read 0 4096' "$f" >/dev/null 2>&1; then
        QEMU_AIO_DIRECT=io_uring QEMU_AIO_CACHED=io_uring
    else
        QEMU_AIO_DIRECT=native QEMU_AIO_CACHED=threads
    fi
    rm -f "$f"
}

# file_node NODE PATH DIRECT(true|false): a QEMU -blockdev file node.
file_node() {
    local aio=$QEMU_AIO_CACHED
    [ "$3" = true ] && aio=$QEMU_AIO_DIRECT
    printf '{"driver":"file","node-name":"%s","filename":"%s","aio":"%s","cache":{"direct":%s}}' \
        "$1" "$2" "$aio" "$3"
}

# start_target KIND PATH PORT DIRECT NAME: one NBD server for PATH on
# 127.0.0.1:PORT, export "disk".  Sets srv_pid, or srv_note and returns 1.
# DIRECT=true is the device-bound configuration (O_DIRECT where the server
# has a switch for it), false the server-bound one (page cache / tmpfs).
start_target() {
    local kind=$1 tgt=$2 port=$3 direct=$4 name=$5 log=$T/$5.log
    srv_pid=0 srv_note=
    case $kind in
    volmig)
        if [ ! -x "$VOLMIG" ]; then srv_note="no $VOLMIG"; return 1; fi
        # volmig uses O_DIRECT wherever the target allows it (tmpfs does on
        # Linux >= 6.6): the server-bound case asks for the page cache.
        # BENCH_VOLMIG_ARGS adds options (e.g. to compare tuning knobs);
        # BENCH_SHM_DIRECT=1 leaves volmig its O_DIRECT on tmpfs.
        local nodirect=
        [ "$direct" = true ] || [ -n "${BENCH_SHM_DIRECT:-}" ] || nodirect=--no-direct
        "$VOLMIG" serve --target "$tgt" --listen "127.0.0.1:$port" --export disk \
            $nodirect ${BENCH_VOLMIG_ARGS:-} >"$log" 2>&1 &
        srv_pid=$!; track_pid $srv_pid
        if ! wait_for 10 grep -q "listening on" "$log" \
           || ! kill -0 $srv_pid 2>/dev/null; then
            srv_note="volmig serve did not start: $(tail -n 1 "$log")"
            stop_pid $srv_pid || true; srv_pid=0
            return 1
        fi ;;
    qemu-nbd)
        local cache=none aio=$QEMU_AIO_DIRECT
        [ "$direct" = true ] || { cache=writeback; aio=$QEMU_AIO_CACHED; }
        # -t: a qemu-nbd without it exits when its first client leaves.
        qemu-nbd -f raw --cache=$cache --aio=$aio -x disk -b 127.0.0.1 -p "$port" -t \
            "$tgt" >"$log" 2>&1 &
        srv_pid=$!; track_pid $srv_pid ;;
    nbdkit)
        # cache=none is not O_DIRECT in nbdkit: it writes through the page
        # cache and evicts behind itself (sync_file_range + fadvise).
        nbdkit -f -i 127.0.0.1 -p "$port" file "$tgt" cache=none >"$log" 2>&1 &
        srv_pid=$!; track_pid $srv_pid ;;
    qemu-export)
        start_qemu "$name" "$(file_node tgtf "$tgt" "$direct")" \
            '{"driver":"raw","node-name":"tgt0","file":"tgtf"}'
        srv_pid=$(eval echo "\$${name}_pid")
        qmp "$T/$name.qmp" nbd-server-start \
            "{\"addr\":{\"type\":\"inet\",\"data\":{\"host\":\"127.0.0.1\",\"port\":\"$port\"}}}" \
            block-export-add \
            '{"type":"nbd","id":"e0","node-name":"tgt0","name":"disk","writable":true}' \
            >>"$log" 2>&1 || fail "QEMU NBD export did not start: $(tail -n 2 "$log")" ;;
    *) fail "unknown server $kind" ;;
    esac
    wait_listening $srv_pid "$port" \
        || fail "$kind did not listen on $port: $(tail -n 3 "$log" 2>/dev/null)"
}

# copy_limit SRC TGT BYTES DIRECT(1|0): fio reading SRC while writing TGT
# (two jobs at once, 1 MiB blocks, queue depth 16).  Prints the seconds the
# slower of the two took.
copy_limit() {
    local src=$1 tgt=$2 size=$3 direct=$4 engine=io_uring
    fio --enghelp 2>/dev/null | grep -qw io_uring || engine=libaio
    fio --output-format=json --ioengine=$engine --bs=1M --iodepth=16 \
        --direct="$direct" --size="$size" --fallocate=none --invalidate=1 \
        --name=read --rw=read --filename="$src" \
        --name=write --rw=write --filename="$tgt" >"$T/fio.json" \
        || { cat "$T/fio.json" >&2; fail "fio failed"; }
    python3 -c '
import json, sys
jobs = json.load(open(sys.argv[1]))["jobs"]
ms = max(j[j["jobname"]]["runtime"] for j in jobs)
print("%.4f" % (ms / 1000))' "$T/fio.json"
}

# ---- the stand-in guest ----
# A guestless source QEMU ("src": $T/src.qmp for the code under test,
# $T/src.qmp2 for the bench's own calls) whose drive, node disk0, is a raw
# image, exported writable as "guest" on $T/guest.sock; and fio playing the
# guest through that export (its nbd engine): 64 KiB writes at random
# offsets, rate-limited, one at a time, each write's completion latency in
# a log.  QMP stop does not pause fio: the caller stops it when the copy is
# READY or converged, as a real guest is paused at switchover.  QEMU counts
# none of these writes in query-blockstats (no device: engine/latency.h),
# so fio's log is the only record of what the guest felt.

# guest_qemu_start IMG [DIRECT]: DIRECT=true opens IMG with O_DIRECT and
# aio=native, as a VM with cache=none; by default through the page cache.
guest_qemu_start() {
    local file="{\"driver\":\"file\",\"filename\":\"$1\"}"
    [ "${2:-false}" = true ] &&
        file="{\"driver\":\"file\",\"filename\":\"$1\",\"cache\":{\"direct\":true},\"aio\":\"native\"}"
    rm -f "$T"/src.qmp*
    start_qemu src "{\"driver\":\"raw\",\"node-name\":\"disk0\",\"file\":$file}"
    qmp "$T/src.qmp2" nbd-server-start "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"$T/guest.sock\"}}}" \
        block-export-add '{"type":"nbd","id":"guest","node-name":"disk0","writable":true,"name":"guest"}' \
        >/dev/null || fail "the guest's NBD export"
}

guest_qemu_stop() {
    qmp "$T/src.qmp2" block-export-del '{"id":"guest"}' >/dev/null 2>&1 || true
    sleep 0.2
    qmp "$T/src.qmp2" quit >/dev/null 2>&1 || true
    wait "$src_pid" 2>/dev/null || true
    untrack_pid "$src_pid"
}

# guest_fio_start NAME RATE [SPAN]: the stand-in guest writing RATE MB/s
# over the first SPAN bytes of the drive (default: all SIZE of it).  Sets
# fio_pid; the log of every write is guest_lat_log NAME.
guest_fio_start() {
    rm -f "$T/fio-$1"_clat.*.log
    fio --name=guest --ioengine=nbd --uri="nbd+unix:///guest?socket=$T/guest.sock" \
        --rw=randwrite --bs=64k --rate="$2m" --time_based --runtime=3600 --size="${3:-$SIZE}" \
        --write_lat_log="$T/fio-$1" --log_avg_msec=0 --log_unix_epoch=1 \
        --output-format=json --output="$T/fio-$1.json" >/dev/null 2>&1 &
    fio_pid=$!
    track_pid $fio_pid
    sleep 1
}

guest_fio_stop() {
    kill -INT "$fio_pid" 2>/dev/null || true
    wait "$fio_pid" 2>/dev/null || true
    untrack_pid "$fio_pid"
}

guest_lat_log() { echo "$T/fio-$1_clat.1.log"; }

# guest_probe_start NAME [IOPS]: a second, light client of the guest's
# export reading 4 KiB at random, IOPS a second (default 50), each read's
# latency in guest_probe_log NAME: what a small request of volmig's own
# through QEMU's NBD server would see (engine/latency.h).  Sets probe_pid.
guest_probe_start() {
    rm -f "$T/probe-$1"_clat.*.log
    fio --name=probe --ioengine=nbd --uri="nbd+unix:///guest?socket=$T/guest.sock" \
        --rw=randread --bs=4k --rate_iops="${2:-50}" --time_based --runtime=3600 --size="$SIZE" \
        --write_lat_log="$T/probe-$1" --log_avg_msec=0 --log_unix_epoch=1 \
        --output-format=json --output="$T/probe-$1.json" >/dev/null 2>&1 &
    probe_pid=$!
    track_pid $probe_pid
}

guest_probe_stop() {
    kill -INT "$probe_pid" 2>/dev/null || true
    wait "$probe_pid" 2>/dev/null || true
    untrack_pid "$probe_pid"
}

guest_probe_log() { echo "$T/probe-$1_clat.1.log"; }

# ---- libvirt's path ----
# QEMU's own blockdev-mirror with its default parameters into a second
# QEMU's NBD export (nbd-server-start + block-export-add), then a
# non-forced block-job-cancel once READY (a READY mirror then ends
# consistent): what libvirt does for a migration with storage.

# dst_qemu_start IMG: QEMU "dst" exporting IMG (O_DIRECT) writable as
# "vol" on $T/dst.sock.
dst_qemu_start() {
    rm -f "$T"/dst.qmp*
    start_qemu dst "{\"driver\":\"raw\",\"node-name\":\"vol\",\"file\":{\"driver\":\"file\",\"filename\":\"$1\",\"cache\":{\"direct\":true},\"aio\":\"native\"}}"
    qmp "$T/dst.qmp2" nbd-server-start "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"$T/dst.sock\"}}}" \
        block-export-add '{"type":"nbd","id":"e","node-name":"vol","writable":true,"name":"vol"}' \
        >/dev/null || fail "the destination QEMU's NBD export"
}

dst_qemu_stop() {
    qmp "$T/dst.qmp2" quit >/dev/null 2>&1 || true
    wait "$dst_pid" 2>/dev/null || true
    untrack_pid "$dst_pid"
}

# libvirt_mirror_start [COPY-MODE]: job m0 from src's disk0 into dst's vol.
libvirt_mirror_start() {
    qmp "$T/src.qmp2" blockdev-add "{\"driver\":\"nbd\",\"node-name\":\"tgt\",\"server\":{\"type\":\"unix\",\"path\":\"$T/dst.sock\"},\"export\":\"vol\"}" \
        blockdev-mirror "{\"job-id\":\"m0\",\"device\":\"disk0\",\"target\":\"tgt\",\"sync\":\"full\",\"copy-mode\":\"${1:-background}\"}" \
        >/dev/null || fail "libvirt path: blockdev-mirror"
}

# libvirt_mirror_ready SECONDS: 0 once m0 is READY, 1 if not within SECONDS.
libvirt_mirror_ready() {
    qmp "$T/src.qmp2" --wait-job m0 ready --timeout "$1" >/dev/null 2>&1
}

# libvirt_mirror_finish [force]: cancel m0 (forced: a mirror that is not
# READY, whose target is then incomplete), wait until it is gone, remove
# the target node.
libvirt_mirror_finish() {
    local force=false
    [ "${1:-}" = force ] && force=true
    qmp "$T/src.qmp2" block-job-cancel "{\"device\":\"m0\",\"force\":$force}" >/dev/null || true
    qmp "$T/src.qmp2" --wait-job m0 gone --timeout 600 >/dev/null 2>&1 || true
    qmp "$T/src.qmp2" blockdev-del '{"node-name":"tgt"}' >/dev/null || true
}
