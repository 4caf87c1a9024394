#!/usr/bin/env bash
# The two-host recipe (tests/lib/libvirt.sh host-up/host-down): two
# libvirtds, each in a network namespace and a private mount namespace with
# its own /etc/libvirt, /run/libvirt, /var/lib/libvirt and host_uuid,
# reached as qemu+unix:///system?socket=PATH.  Each runs a persistent
# domain of the same name that the other and the system libvirtd do not
# see, with its QEMU in the host's network namespace; engine/libvirt_domain
# pivots a disk through such a URI, and libvirt refuses a migration to the
# other host while a block copy runs.  Then everything is taken down: no
# daemon, QEMU, namespace or directory is left, also when the test fails
# half-way (checked in a child that fails on purpose).
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/libvirt-helpers.sh"
require ip unshare setsid

# left_behind HOST... : fails if anything of these hosts or their
# namespaces is still there.
left_behind() {
    local h
    for h in "$@"; do
        [ -e "/tmp/volmig-lvhost-$h" ] && fail "/tmp/volmig-lvhost-$h is left"
        grep -q "volmig-lvhost-$h" /proc/self/mountinfo && fail "a mount of $h is left"
    done
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && fail "process $p is left: $(cat /proc/$p/cmdline | tr '\0' ' ')"; done
    for n in "${nss[@]}"; do ip netns list | grep -qw "$n" && fail "netns $n is left"; done
    return 0
}

log "a child that brings two hosts up and fails half-way"
set +e
bash -c '. "$1/tests/lib/common.sh"; . "$1/tests/lib/libvirt-helpers.sh"
    lv_hosts_up
    echo "$SRC_NS $DST_NS $SRC_HOST $DST_HOST $(cat /tmp/volmig-lvhost-$SRC_HOST/daemon.pid) $(cat /tmp/volmig-lvhost-$DST_HOST/daemon.pid)" >"$2"
    fail "on purpose"' child "$TOP" "$T/child" >"$T/child.log" 2>&1
rc=$?
set -e
assert_eq "$rc" 1 "the child's exit status"
read -r ns1 ns2 h1 h2 p1 p2 <"$T/child" || fail "the child did not bring its hosts up: $(cat "$T/child.log")"
pids=("$p1" "$p2") nss=("$ns1" "$ns2")
left_behind "$h1" "$h2"

log "two hosts"
lv_hosts_up
pids=("$(cat "/tmp/volmig-lvhost-$SRC_HOST/daemon.pid")" "$(cat "/tmp/volmig-lvhost-$DST_HOST/daemon.pid")")
nss=("$SRC_NS" "$DST_NS")
uuid() { virsh -c "$1" capabilities | sed -n 's#.*<uuid>\(.*\)</uuid>.*#\1#p' | head -1; }
u_src=$(uuid "$SRC_URI") u_dst=$(uuid "$DST_URI") u_sys=$(uuid qemu:///system)
[ -n "$u_src" ] && [ "$u_src" != "$u_dst" ] && [ "$u_src" != "$u_sys" ] && [ "$u_dst" != "$u_sys" ] \
    || fail "host UUIDs not distinct: $u_src $u_dst $u_sys"

DOM=volmig-lvtwo-$$
dd if=/dev/urandom of="$T/src.img" bs=1M count=8 status=none
truncate -s 64M "$T/src.img" "$T/dst.img" "$T/new.img" "$T/back.img"
LIBVIRT_URI=$SRC_URI "$LV" define "$DOM" "$T/src.img" || fail "define on $SRC_HOST"
LIBVIRT_URI=$DST_URI "$LV" define "$DOM" "$T/dst.img" || fail "define on $DST_HOST"
for side in SRC DST; do
    uri=${side}_URI ns=${side}_NS
    assert_eq "$(virsh -c "${!uri}" list --name | grep .)" "$DOM" "domains on $side"
    pid=$(cat "/tmp/volmig-lvhost-$( [ $side = SRC ] && echo $SRC_HOST || echo $DST_HOST )/run/qemu/$DOM.pid")
    pids+=("$pid")
    ip netns pids "${!ns}" | grep -qx "$pid" || fail "the $side QEMU ($pid) is not in ${!ns}"
done
virsh -c qemu:///system list --all --name | grep -qx "$DOM" && fail "the system libvirtd sees $DOM"
assert_eq "$(virsh -c "$SRC_URI" domblklist "$DOM" | awk '$1 == "vda" { print $2 }')" "$T/src.img" "src vda"
assert_eq "$(virsh -c "$DST_URI" domblklist "$DOM" | awk '$1 == "vda" { print $2 }')" "$T/dst.img" "dst vda"

log "a pivot through the source host's URI"
"$LVD" --uri "$SRC_URI" "$DOM" copy vda="file:$T/new.img" >/dev/null || fail "lvd copy"
assert_eq "$(virsh -c "$SRC_URI" domblklist "$DOM" --inactive | awk '$1 == "vda" { print $2 }')" \
    "$T/new.img" "src persistent vda"
assert_eq "$(virsh -c "$DST_URI" domblklist "$DOM" --inactive | awk '$1 == "vda" { print $2 }')" \
    "$T/dst.img" "dst persistent vda"

log "a migration to the other host while a block copy runs is refused by libvirt"
"$LVD" --uri "$SRC_URI" "$DOM" start --bandwidth $((1 << 20)) vda="file:$T/back.img" || fail "start"
set +e
virsh -c "$SRC_URI" migrate --live --p2p --persistent --undefinesource "$DOM" "$DST_URI" \
    >"$T/out" 2>&1; rc=$?
set -e
[ $rc != 0 ] || fail "the migration was not refused"
grep -q "domain has active block job" "$T/out" || fail "unexpected: $(cat "$T/out")"
"$LVD" --uri "$SRC_URI" "$DOM" finish abort vda || fail "abort"
assert_eq "$(virsh -c "$SRC_URI" domstate "$DOM")" running "the source domain after the refusal"

log "take both down"
"$LV" host-down "$SRC_HOST"
"$LV" host-down "$DST_HOST"
netns_down
_lv_hosts=() _lv_netns=0
left_behind "$SRC_HOST" "$DST_HOST"
same_bytes "$T/src.img" "$T/new.img"
log "ok"
