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
#   lv_twohost_domain NAME MIB       after lv_hosts_up: DOM=NAME defined and
#                                    started on the source host on
#                                    $T/src.img (MIB MiB of data in 64 MiB),
#                                    $T/dst.img the empty volume to move to
#   lv_moved_to_dst                  the domain left the source and runs on
#                                    the destination, whose live and
#                                    persistent XML name $T/dst.img; then
#                                    destroyed there, for comparing bytes
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

lv_twohost_domain() {
    DOM=$1
    dd if=/dev/urandom of="$T/src.img" bs=1M count="$2" status=none
    truncate -s 64M "$T/src.img" "$T/dst.img"
    LIBVIRT_URI=$SRC_URI "$LV" define "$DOM" "$T/src.img" || fail "define on the source host"
    VIRSH=(virsh -q -c "$SRC_URI")
}

lv_moved_to_dst() {
    local d
    assert_eq "$(virsh -c "$SRC_URI" list --all --name | grep -c .)" 0 "domains left on the source"
    assert_eq "$(virsh -c "$DST_URI" domstate "$DOM")" running "state on the destination"
    d=$(virsh -c "$DST_URI" domblklist "$DOM" | awk '$1 == "vda" { print $2 }')
    assert_eq "$d" "$T/dst.img" "destination live XML"
    d=$(virsh -c "$DST_URI" domblklist "$DOM" --inactive | awk '$1 == "vda" { print $2 }')
    assert_eq "$d" "$T/dst.img" "destination persistent XML"
    virsh -c "$DST_URI" destroy "$DOM" >/dev/null
}

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

# lv_guest_writer DOM OUT: a stand-in guest in the background (its pid in
# LV_WRITER) making 64 KiB writes 128 KiB apart through HMP qemu-io while
# DOM runs (the count made so far in OUT).  A monitor command still
# writes while the domain is paused, which a guest cannot: the writer
# stops at the first write after which DOM no longer runs, and leaves that
# write's offset (KiB) in OUT.uncertain, since it may have come after the
# pause.  lv_same_as_guest compares without that one write.
lv_guest_writer() {
    local dom=$1 out=$2
    ( k=0
      while [ $k -lt 400 ]; do
          [ "$(lv_state "$dom" 2>/dev/null)" = running ] || exit 0
          echo $((k * 128)) >"$out.uncertain"
          lv_write "$dom" vda $((k % 200 + 16)) $((k * 128))k 64k 2>/dev/null || exit 0
          [ "$(lv_state "$dom" 2>/dev/null)" = running ] || exit 0
          rm -f "$out.uncertain"
          k=$((k + 1)); echo $k >"$out"; sleep 0.05
      done ) &
    LV_WRITER=$!
    track_pid $LV_WRITER
}

# lv_same_as_guest SRC DST OUT: SRC and DST hold the same bytes, but for
# the one write lv_guest_writer could not place before or after a pause.
lv_same_as_guest() {
    local off
    if [ -f "$3.uncertain" ]; then
        off=$(cat "$3.uncertain")
        cp "$1" "$T/guest-a" && cp "$2" "$T/guest-b"
        for f in "$T/guest-a" "$T/guest-b"; do
            dd if=/dev/zero of="$f" bs=1k seek="$off" count=64 conv=notrunc status=none
        done
        same_bytes "$T/guest-a" "$T/guest-b"
        rm -f "$T/guest-a" "$T/guest-b"
    else
        same_bytes "$1" "$2"
    fi
}
