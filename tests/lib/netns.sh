# Two test hosts on one machine: network namespaces joined by a veth pair.
#   netns_up  -> sets SRC_NS DST_NS SRC_IP DST_IP, or returns 1 (no netns)
#   in_src CMD... / in_dst CMD...  run a command on a host
# Only the namespaces' own addresses are used; cleanup (common.sh) removes
# them after the processes.
netns_up() {
    local id=$$
    SRC_NS="volmig-src-$id" DST_NS="volmig-dst-$id"
    SRC_IP=10.213.$((id % 250)).1 DST_IP=10.213.$((id % 250)).2
    ip netns add "$SRC_NS" 2>/dev/null || return 1
    track_netns "$SRC_NS"
    if ! ip netns add "$DST_NS" 2>/dev/null; then
        ip netns del "$SRC_NS"; return 1
    fi
    track_netns "$DST_NS"
    _netns=("$SRC_NS" "$DST_NS")
    ip link add "vs$id" netns "$SRC_NS" type veth peer name "vd$id" netns "$DST_NS" || return 1
    ip -n "$SRC_NS" addr add "$SRC_IP/24" dev "vs$id"
    ip -n "$DST_NS" addr add "$DST_IP/24" dev "vd$id"
    ip -n "$SRC_NS" link set "vs$id" up
    ip -n "$DST_NS" link set "vd$id" up
    ip -n "$SRC_NS" link set lo up
    ip -n "$DST_NS" link set lo up
    SRC_DEV="vs$id" DST_DEV="vd$id"
}
netns_down() {
    local n
    for n in "${_netns[@]:-}"; do [ -n "$n" ] && ip netns del "$n" 2>/dev/null; done
    return 0
}
in_src() { if [ -n "${SRC_NS:-}" ]; then ip netns exec "$SRC_NS" "$@"; else "$@"; fi; }
in_dst() { if [ -n "${DST_NS:-}" ]; then ip netns exec "$DST_NS" "$@"; else "$@"; fi; }
# bg_src CMD... / bg_dst CMD... : CMD in the background on a host, tracked
# for cleanup; sets BG_PID.  Not `in_src CMD &`: that runs a subshell,
# whose pid is not the command's, and killing it leaves the command running.
bg_src() { _bg_in "${SRC_NS:-}" "$@"; }
bg_dst() { _bg_in "${DST_NS:-}" "$@"; }
_bg_in() {
    local ns=$1; shift
    if [ -n "$ns" ]; then ip netns exec "$ns" "$@" & else "$@" & fi
    BG_PID=$!
    track_pid $BG_PID
}
