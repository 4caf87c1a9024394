# Sourced by the bench scripts after tests/lib/common.sh: starting and
# stopping the NBD servers under comparison, the source QEMU, the fio copy
# limit.  Every process started here is tracked (common.sh kills what is
# left on exit) and untracked again once stopped, so a recycled PID is never
# signalled.

BENCH_DIR=$TOP/bench

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
