#!/usr/bin/env bash
# volmig qmp through libvirt (libvirt:DOMAIN): a real libvirtd running a
# type='qemu' domain (tests/lib/libvirt.sh), the same commands as over the
# unix socket, events through the QEMU monitor event API, and the domain
# going away while volmig waits.  It warns, once, that raw commands taint
# the domain.
. "$(dirname "$0")/../lib/common.sh"
require libvirtd virsh qemu-system-x86_64 python3
[ "$(id -u)" = 0 ] || skip "libvirtd for a system domain needs root"

py() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

DOM=volmig-qmp-$$
LV="$TOP/tests/lib/libvirt.sh"
trap '"$LV" destroy "$DOM"; cleanup' EXIT
truncate -s 64M "$T/disk.img"
"$LV" start "$DOM" "$T/disk.img" || fail "could not start a libvirt domain"
Q="libvirt:$DOM"

log "query-status, query-named-block-nodes and an error reply, through libvirt"
set +e
"$VOLMIG" qmp "$Q" -c query-status -c 'query-named-block-nodes flat=true' \
    -c no-such-command >"$T/out" 2>"$T/err"
rc=$?
set -e
assert_eq "$rc" 1 "exit status after a failed command"
assert_eq "$(sed -n 1p "$T/out" | py 'd["return"]["status"]')" running "query-status"
fmt=$(sed -n 2p "$T/out" | py '[n["node-name"] for n in d["return"] if n["drv"] == "raw"][0]')
sed -n 2p "$T/out" | grep -q "$T/disk.img" || fail "the domain's disk is not among the nodes"
assert_eq "$(sed -n 3p "$T/out" | py 'd["error"]["class"]')" CommandNotFound "error class"
assert_eq "$(grep -c 'taints the domain' "$T/err")" 1 "the taint warning, said once"
grep -q "tainted: custom-monitor" "/var/log/libvirt/qemu/$DOM.log" \
    || fail "libvirt did not record the taint the warning announces"

log "the same with an explicit uri"
"$VOLMIG" qmp "$Q?uri=qemu:///system" -c query-status >"$T/out" || fail "?uri="
assert_eq "$(py 'd["return"]["status"]' <"$T/out")" running "query-status with uri"

log "a mirror of the domain's disk ($fmt) reaches READY: the event comes through libvirt"
"$VOLMIG" qmp "$Q" \
    -c 'blockdev-add driver=null-co node-name=tgt size=67108864' \
    -c "blockdev-mirror job-id=m0 device=$fmt target=tgt sync=full" \
    -c '/wait BLOCK_JOB_READY 60' \
    -c 'block-job-cancel device=m0' \
    -c '/wait BLOCK_JOB_COMPLETED 60' \
    -c 'blockdev-del node-name=tgt' >"$T/out" 2>"$T/err" || { cat "$T/err"; fail "mirror run"; }
assert_eq "$(sed -n 3p "$T/out" | py 'd["event"]')" BLOCK_JOB_READY "event"
assert_eq "$(sed -n 3p "$T/out" | py 'd["data"]["device"]')" m0 "event device"
assert_eq "$(sed -n 5p "$T/out" | py 'd["event"]')" BLOCK_JOB_COMPLETED "completion event"

log "the domain destroyed while volmig waits: an error, not a hang"
"$VOLMIG" qmp "$Q" -c query-status -c '/wait NEVER 600' >"$T/out" 2>"$T/err" &
cpid=$!
track_pid $cpid
# Connected, with its event callbacks registered, once the first reply is out.
wait_for 60 grep -q running "$T/out" || fail "no reply before the destroy"
virsh -c qemu:///system destroy "$DOM" >/dev/null
wait_for 60 sh -c "! kill -0 $cpid 2>/dev/null" || fail "volmig qmp hangs after the domain stopped"
set +e; wait $cpid; rc=$?; set -e
assert_eq "$rc" 1 "exit status"
grep -q 'domain stopped\|not running\|closed' "$T/err" || fail "unexpected error: $(cat "$T/err")"

log "a domain that does not exist"
set +e
"$VOLMIG" qmp "libvirt:$DOM-none" -c query-status 2>"$T/err"; rc=$?
set -e
assert_eq "$rc" 1 "exit status"
grep -q "$DOM-none" "$T/err" || fail "unexpected error: $(cat "$T/err")"
log "ok"
