# Sourced by tests/integration/libvirt-*.sh after common.sh: a domain that
# libvirt owns, moved through libvirt's own APIs by tests/tools/lvd.
#
#   lv_domain NAME transient|persistent IMAGE...   starts it; destroyed (and
#                                                  undefined) on exit
#   lv_write DOM DISK PAT OFF LEN    a "guest" write through the disk's device
#                                    (HMP qemu-io on virtio-diskN's backend,
#                                    so it passes through a mirror like a
#                                    guest's write); DISK is vda, vdb, ...
#   lv_source DOM DISK [--inactive]  the source libvirt names for DISK
#   lv_no_job DOM DISK               libvirt has no block job on DISK
#   lv_state DOM                     virsh domstate
#   lv_hosts_up                      two hosts: network namespaces SRC_NS and
#                                    DST_NS (netns.sh), each with a libvirtd
#                                    of its own (libvirt.sh host-up) at
#                                    SRC_URI and DST_URI; taken down on exit
require libvirtd virsh qemu-system-x86_64
[ "$(id -u)" = 0 ] || skip "libvirtd for a system domain needs root"
LV="$TOP/tests/lib/libvirt.sh"
LVD="$TOP/$BUILD/tests/tools/lvd"
VIRSH=(virsh -q -c qemu:///system)
[ -x "$LVD" ] || fail "no $LVD (make all)"
_lv_domains=() _lv_hosts=() _lv_netns=0

lv_cleanup() {
    local d
    for d in "${_lv_domains[@]}"; do "$LV" destroy "$d"; done
    for d in "${_lv_hosts[@]}"; do "$LV" host-down "$d"; done
    [ $_lv_netns = 1 ] && netns_down
    cleanup
}

lv_hosts_up() {
    . "$TOP/tests/lib/netns.sh"
    _lv_netns=1
    netns_up || fail "cannot make network namespaces"
    SRC_HOST=lvsrc$$ DST_HOST=lvdst$$
    _lv_hosts+=("$SRC_HOST" "$DST_HOST")
    SRC_URI=$("$LV" host-up "$SRC_HOST" "$SRC_NS") || fail "no libvirtd for $SRC_HOST"
    DST_URI=$("$LV" host-up "$DST_HOST" "$DST_NS") || fail "no libvirtd for $DST_HOST"
}
trap lv_cleanup EXIT

lv_domain() {
    local name=$1 kind=$2
    shift 2
    _lv_domains+=("$name")
    if [ "$kind" = persistent ]; then
        "$LV" define "$name" "$@" || fail "could not define and start $name"
    else
        "$LV" start "$name" "$@" || fail "could not start $name"
    fi
}

lv_write() {
    local dom=$1 disk=$2 idx out
    idx=$(( $(printf '%d' "'${disk:2:1}") - 97 ))
    out=$("${VIRSH[@]}" qemu-monitor-command "$dom" --hmp \
        "qemu-io -d /machine/peripheral/virtio-disk$idx/virtio-backend \"write -P $3 $4 $5\"") \
        || fail "HMP qemu-io write on $dom $disk failed"
    grep -qiE 'error|fail' <<<"$out" && fail "HMP qemu-io write on $dom $disk: $out"
    return 0
}

lv_source() {
    "${VIRSH[@]}" domblklist "$1" ${3:-} | awk -v d="$2" '$1 == d { print $2 }'
}

lv_no_job() {
    local out
    out=$(virsh -c qemu:///system blockjob "$1" "$2" 2>&1) || true
    grep -q "No current block job" <<<"$out" || fail "$1 $2 still has a block job: $out"
    "${VIRSH[@]}" dumpxml "$1" | grep -q '<mirror' && fail "$1 still has a <mirror> in its live XML"
    return 0
}

lv_state() {
    "${VIRSH[@]}" domstate "$1"
}
