# Sourced after common.sh by the tests of `volmig migrate`.
#
#   src_qemu NAME FILE...        a guest-less QEMU with nodes disk0, disk1, ...
#                                on the files (the "VM" whose disks move);
#                                SRC_BPS=N limits their reads (unthrottle)
#   migrate_bg NAME ARGS...      volmig migrate --output json ARGS in the
#                                background: JSON lines in $T/NAME.json, stderr
#                                in $T/NAME.err; sets NAME_pid
#   migrate_wait NAME            waits for it to exit; sets NAME_rc
#   wait_event NAME EVENT [S]    waits until the JSON output holds EVENT
#   events NAME                  the event names, one per line, in order
#   event_field NAME EVENT KEY   KEY of every EVENT, one per line
#   assert_clean QMP             no job, no volmig- node, VM running
#   throttle QMP JOB BYTES/S     block-job-set-speed (0: unlimited)
#   job_progress QMP JOB         current-progress of JOB ("" if none)
#   hmp_write QMP NODE PAT OFF LEN   a "guest" write through HMP qemu-io

# src_qemu NAME FILE... : node diskI for every FILE: a throttle filter
# (group tgI, reads limited to SRC_BPS bytes/s, unlimited if unset or 0) on
# raw node rawI on file node fileI.  The read limit is how a test holds a
# mirror in its copy phase long enough to act "mid-copy" without depending
# on timing; unthrottle lifts it (on QEMU 7.2 requests already waiting keep
# the old pace, so SRC_BPS also bounds how long a copy can be held).  The node layout is what a destination
# QEMU rebuilds with dst_blockdevs.
src_qemu() {
    local name=$1; shift
    local i=0 f lim=""
    [ "${SRC_BPS:-0}" != 0 ] && lim=",x-bps-read=$SRC_BPS"
    local saved_extra=${QEMU_EXTRA:-}
    local objs="" bd=()
    for f in "$@"; do
        objs+=" -object throttle-group,id=tg$i$lim"
        bd+=("$(node_json $i "$f")")
        i=$((i + 1))
    done
    QEMU_EXTRA="$objs $saved_extra" start_qemu_in "${QEMU_PREFIX:-}" "$name" "${bd[@]}"
}

node_json() { # I FILE
    echo "{\"driver\":\"throttle\",\"node-name\":\"disk$1\",\"throttle-group\":\"tg$1\",\"file\":{\"driver\":\"raw\",\"node-name\":\"raw$1\",\"file\":{\"driver\":\"file\",\"node-name\":\"file$1\",\"filename\":\"$2\"}}}"
}

# unthrottle QMP N : lifts the read limit of groups tg0..tgN-1.
unthrottle() {
    local i
    for i in $(seq 0 $(( $2 - 1 ))); do
        qmp "$1" qom-set "{\"path\":\"tg$i\",\"property\":\"limits\",\"value\":{\"bps-read\":0}}" >/dev/null \
            || fail "cannot lift the throttle of tg$i"
    done
}

migrate_bg() {
    local name=$1; shift
    ${MIGRATE_WRAP:-} "$VOLMIG" migrate --output json "$@" >"$T/$name.json" 2>"$T/$name.err" &
    local pid=$!
    track_pid $pid
    eval "${name}_pid=$pid"
}

migrate_wait() {
    local name=$1 pid rc=0
    pid=$(eval echo "\$${name}_pid")
    wait "$pid" || rc=$?
    eval "${name}_rc=$rc"
    log "volmig migrate ($name) exited $rc; stderr: $(tr '\n' ' ' <"$T/$name.err")"
}

# The event names of a run, in order.
events() {
    python3 -c '
import json, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if line:
        print(json.loads(line)["event"])' "$T/$1.json"
}

# event_field NAME EVENT KEY : KEY of every EVENT (JSON-encoded if not a
# string), one per line.
event_field() {
    python3 -c '
import json, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    e = json.loads(line)
    if e["event"] == sys.argv[2]:
        v = e.get(sys.argv[3])
        print(v if isinstance(v, str) else json.dumps(v))' "$T/$1.json" "$2" "$3"
}

has_event() { # NAME EVENT
    events "$1" 2>/dev/null | grep -x "$2" >/dev/null
}

# wait_event NAME EVENT [SECONDS] : fails if volmig exits first.
wait_event() {
    local name=$1 ev=$2 limit=${3:-60} pid end
    pid=$(eval echo "\$${name}_pid")
    end=$(( $(date +%s) + limit ))
    until has_event "$name" "$ev"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            has_event "$name" "$ev" && return 0
            cat "$T/$name.json" "$T/$name.err" >&2
            fail "volmig migrate ($name) exited before the '$ev' event"
        fi
        [ "$(date +%s)" -lt $end ] || { cat "$T/$name.json" >&2; fail "no '$ev' event within ${limit}s"; }
        sleep 0.05
    done
}

count_event() { # NAME EVENT
    events "$1" | grep -cx "$2" || true
}

# assert_clean QMP : what a finished or cancelled migration must leave.
assert_clean() {
    local m=$1 out
    out=$(qmp "$m" query-jobs) || fail "query-jobs failed"
    assert_eq "$out" "[]" "jobs left in QEMU"
    out=$(qmp "$m" query-block-jobs) || fail "query-block-jobs failed"
    assert_eq "$out" "[]" "block jobs left in QEMU"
    out=$(qmp "$m" query-named-block-nodes '{"flat":true}' | python3 -c '
import json, sys
print(" ".join(n["node-name"] for n in json.load(sys.stdin) if n["node-name"].startswith("volmig-")))')
    assert_eq "$out" "" "volmig nodes left in QEMU"
}

qemu_status() { # QMP
    qmp "$1" query-status | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])'
}

migration_status() { # QMP
    qmp "$1" query-migrate | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status",""))'
}

is_running() { [ "$(qemu_status "$1")" = running ]; }

assert_running() { # QMP : polls, since a resume may still be on its way
    wait_for 30 is_running "$1" || fail "QEMU is not running (status $(qemu_status "$1"))"
}

throttle() { # QMP JOB BYTES-PER-SECOND
    qmp "$1" block-job-set-speed "{\"device\":\"$2\",\"speed\":$3}" >/dev/null \
        || fail "block-job-set-speed $2 $3 failed"
}

job_field() { # QMP JOB KEY : a field of a job in query-jobs ("" if no such job)
    qmp "$1" query-jobs | python3 -c '
import json, sys
for j in json.load(sys.stdin):
    if j["id"] == sys.argv[1]:
        print(j.get(sys.argv[2], ""))' "$2" "$3"
}

job_progress_over() { # QMP JOB BYTES : the job has copied more than BYTES
    local p
    p=$(job_field "$1" "$2" current-progress)
    [ -n "$p" ] && [ "$p" -gt "$3" ]
}

# hmp_write QMP NODE PATTERN OFFSET LEN : a guest write on a node, through
# HMP qemu-io (the monitor QMP is the test's own).
hmp_write() {
    local out
    out=$(qmp "$1" human-monitor-command \
        "{\"command-line\":\"qemu-io $2 \\\"write -P $3 $4 $5\\\"\"}") \
        || fail "HMP qemu-io write on $2 failed"
    grep -qiE 'error|fail' <<<"$out" && fail "HMP qemu-io write on $2: $out"
    return 0
}

# export_writes URI SIZE COUNT SEED : COUNT guest writes of 4-256 KiB at
# pseudo-random offsets inside SIZE bytes, patterns varying, through an NBD
# export of the node (the stand-in for the guest's device), in one qemu-io.
#
# Why not HMP qemu-io: on QEMU 7.2 an HMP qemu-io on a throttle node lifts
# its throttling for good (the temporary BlockBackend's drain), which would
# let the mirror run to READY under the test's feet.  Tests make at most one
# HMP write per node, as the last write before unthrottle.
export_writes() {
    local uri=$1 size=$2 count=$3 seed=$4 i off len c=() out
    RANDOM=$seed
    for i in $(seq "$count"); do
        len=$(( (RANDOM % 64 + 1) * 4096 ))
        off=$(( (RANDOM * 32768 + RANDOM) % (size - len) / 512 * 512 ))
        c+=(-c "write -P $(( (i * 37 + seed) % 255 + 1 )) $off $len")
    done
    out=$(qemu-io -f raw "${c[@]}" "$uri" 2>&1) || { echo "$out" >&2; fail "guest writes through $uri failed"; }
    grep -qiE 'error|fail' <<<"$out" && { echo "$out" >&2; fail "guest writes through $uri failed"; }
    return 0
}

# guest_hmp_writes QMP NODE SIZE COUNT SEED : like export_writes, through
# HMP qemu-io on the node.
guest_hmp_writes() {
    local m=$1 node=$2 size=$3 count=$4 seed=$5 i off len
    RANDOM=$seed
    for i in $(seq "$count"); do
        len=$(( (RANDOM % 64 + 1) * 4096 ))
        off=$(( (RANDOM * 32768 + RANDOM) % (size - len) / 512 * 512 ))
        hmp_write "$m" "$node" $(( (i * 37 + seed) % 255 + 1 )) $off $len
    done
}

# export_node QMP NODE ID SOCKET : a writable NBD export of NODE named ID
# (starts the NBD server on SOCKET if needed).
export_node() {
    qmp "$1" query-block-exports | grep -q '"id"' \
        || qmp "$1" nbd-server-start "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"$4\"}}}" >/dev/null \
        || fail "nbd-server-start failed"
    qmp "$1" block-export-add "{\"type\":\"nbd\",\"id\":\"$3\",\"node-name\":\"$2\",\"name\":\"$3\",\"writable\":true}" \
        >/dev/null || fail "cannot export $2"
}

# start_nbdkit NAME PORT ARGS... : nbdkit -f -p PORT ARGS in the background
# (foreground mode, so that the pid is nbdkit's); sets NAME_pid.
start_nbdkit() {
    local name=$1 port=$2; shift 2
    nbdkit -f -p "$port" "$@" >"$T/$name.log" 2>&1 &
    local pid=$!
    track_pid $pid
    eval "${name}_pid=$pid"
    wait_for 10 port_listening "$port" || { cat "$T/$name.log" >&2; fail "nbdkit ($name) did not start"; }
}

port_listening() { ss -Htln "sport = :$1" | grep -q .; }

sha() { # FILE [LEN]
    if [ -n "${2:-}" ]; then head -c "$2" "$1" | sha256sum | cut -d' ' -f1
    else sha256sum "$1" | cut -d' ' -f1; fi
}

# ---- two hosts: network namespaces joined by a veth pair ----
#
# netns_setup : creates namespaces vmsNNN (source) and vmdNNN (destination)
# joined by a veth pair, 10.77.0.1 and 10.77.0.2, and sets SRC_IP, DST_IP,
# IN_SRC and IN_DST (command prefixes).  Where namespaces cannot be created
# it falls back to loopback, says so, and both prefixes are empty.
# The namespaces are deleted on exit, after the processes are stopped.
NS_SRC="" NS_DST=""
netns_setup() {
    local s=vms$$ d=vmd$$
    SRC_IP=127.0.0.1 DST_IP=127.0.0.1 IN_SRC="" IN_DST=""
    if ip netns add "$s" 2>/dev/null; then
        NS_SRC=$s
        track_netns "$s"
        trap 'cleanup; netns_cleanup' EXIT
        if ip netns add "$d" 2>/dev/null; then
            NS_DST=$d
            track_netns "$d"
            if ip link add "va$$" type veth peer name "vb$$" 2>/dev/null &&
               ip link set "va$$" netns "$s" && ip link set "vb$$" netns "$d" &&
               ip -n "$s" addr add 10.77.0.1/24 dev "va$$" && ip -n "$d" addr add 10.77.0.2/24 dev "vb$$" &&
               ip -n "$s" link set "va$$" up && ip -n "$d" link set "vb$$" up &&
               ip -n "$s" link set lo up && ip -n "$d" link set lo up; then
                SRC_IP=10.77.0.1 DST_IP=10.77.0.2
                IN_SRC="ip netns exec $s" IN_DST="ip netns exec $d"
                $IN_SRC ip route get $DST_IP >/dev/null || fail "no route from $s to $DST_IP"
                log "two hosts: namespace $s ($SRC_IP) and $d ($DST_IP)"
                return 0
            fi
        fi
    fi
    netns_cleanup
    log "NOTE: cannot create network namespaces here; falling back to loopback (one host)"
}

netns_cleanup() {
    [ -z "$NS_SRC" ] || ip netns del "$NS_SRC" 2>/dev/null || true
    [ -z "$NS_DST" ] || ip netns del "$NS_DST" 2>/dev/null || true
    ip link del "va$$" 2>/dev/null || true
    NS_SRC="" NS_DST=""
    return 0
}

# start_qemu_in PREFIX NAME BLOCKDEV... : start_qemu, run under PREFIX
# (e.g. "ip netns exec NS"; it execs, so the pid is QEMU's).
start_qemu_in() {
    local prefix=$1 name=$2; shift 2
    local args=() b
    for b in "$@"; do args+=(-blockdev "$b"); done
    $prefix qemu-system-x86_64 -machine none -nodefaults -display none \
        -qmp "unix:$T/$name.qmp,server=on,wait=off" \
        -qmp "unix:$T/$name.qmp2,server=on,wait=off" \
        "${args[@]}" ${QEMU_EXTRA:-} >"$T/$name.qemu.log" 2>&1 &
    local pid=$!
    track_pid $pid
    eval "${name}_pid=$pid"
    wait_for 20 test -S "$T/$name.qmp2" || { cat "$T/$name.qemu.log" >&2; fail "QEMU $name did not start"; }
}

# dst_qemu PREFIX NAME INCOMING FILE... : the destination QEMU, -incoming
# INCOMING, with the source's node layout on the destination volumes.
dst_qemu() {
    local prefix=$1 name=$2 incoming=$3; shift 3
    local i=0 f objs="" bd=()
    for f in "$@"; do
        objs+=" -object throttle-group,id=tg$i"
        bd+=("$(node_json $i "$f")")
        i=$((i + 1))
    done
    QEMU_EXTRA="$objs -incoming $incoming ${QEMU_EXTRA:-}" start_qemu_in "$prefix" "$name" "${bd[@]}"
}

# serve_in PREFIX NAME ARGS... : start_serve under PREFIX.
serve_in() {
    local prefix=$1 name=$2; shift 2
    $prefix "$VOLMIG" serve "$@" >"$T/$name.log" 2>&1 &
    local pid=$!
    track_pid $pid
    eval "${name}_pid=$pid"
    wait_for 10 grep -q "listening on" "$T/$name.log" \
        || { cat "$T/$name.log" >&2; fail "volmig serve ($name) did not start"; }
}

# burst_writes QMP NODE N PATTERN : N guest writes of 512 KiB, 3 MiB apart,
# starting at 1 MiB, through HMP qemu-io in one monitor connection (quick:
# they all land within a pass of bitmap mode that a test holds open).
burst_writes() {
    local args=() i
    for i in $(seq 0 $(( $3 - 1 ))); do
        args+=(human-monitor-command "{\"command-line\":\"qemu-io $2 \\\"write -P $4 $(( i * 3 + 1 ))M 512k\\\"\"}")
    done
    qmp "$1" "${args[@]}" | grep -qiE 'error|fail' && fail "guest writes on $2 failed"
    return 0
}

# exports QMP : the ids of all block exports
exports() {
    qmp "$1" query-block-exports | python3 -c '
import json, sys
print(" ".join(e["id"] for e in json.load(sys.stdin)))'
}

# bitmaps QMP : the names of all dirty bitmaps on any node
bitmaps() {
    qmp "$1" query-named-block-nodes '{"flat":true}' | python3 -c '
import json, sys
print(" ".join(b["name"] for n in json.load(sys.stdin) for b in n.get("dirty-bitmaps", [])))'
}

# bitmap_clean QMP : what bitmap mode must leave behind, whatever its end:
# no job or volmig node, no export, no dirty bitmap, no volmig object, no
# NBD server (a new one starts), and the VM running.
bitmap_clean() {
    assert_clean "$1"
    assert_eq "$(qmp "$1" query-block-exports)" "[]" "exports left in QEMU"
    assert_eq "$(bitmaps "$1")" "" "dirty bitmaps left in QEMU"
    qmp "$1" qom-list '{"path":"/objects"}' | grep -q '"volmig-' && fail "a volmig object was left in QEMU"
    qmp "$1" nbd-server-start "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"$T/probe.sock\"}}}" \
        >/dev/null || fail "an NBD server is still running in QEMU"
    qmp "$1" nbd-server-stop >/dev/null || fail "nbd-server-stop"
    assert_running "$1"
}

# live_passes NAME : how many bitmap-mode passes ran with the guest running
live_passes() {
    python3 -c '
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(sum(1 for e in ev if e["event"] == "pass" and not e["paused"]))' "$T/$1.json"
}

# pass_dirty NAME N : the bytes pass N of a bitmap-mode run found dirty
pass_dirty() {
    python3 -c '
import json, sys
for l in open(sys.argv[1]):
    e = json.loads(l) if l.strip() else {}
    if e.get("event") == "pass" and e["pass"] == int(sys.argv[2]): print(e["dirty"])' "$T/$1.json" "$2"
}

# For the resume tests: a proxy that counts the bytes reaching the
# destination, and where a run got to.
# start_proxy NAME : the counting proxy on a free port in front of $back;
# sets front.
start_proxy() {
    front=$(free_port)
    python3 "$TOP/tests/lib/count_proxy.py" "$front" "$back" "$T/$1.count" &
    track_pid $!
    wait_for 10 port_listening "$front" || fail "the counting proxy did not start"
}

# last_done NAME : bytes done in the last progress event so far
last_done() {
    python3 -c '
import json, sys
d = 0
for l in open(sys.argv[1]):
    try: e = json.loads(l)
    except ValueError: continue
    if e.get("event") == "progress": d = e["done"]
print(d)' "$T/$1.json"
}
# past_half NAME : the run NAME has copied more than 55% of $size
past_half() { [ "$(last_done "$1")" -gt $((size * 11 / 20)) ]; }
