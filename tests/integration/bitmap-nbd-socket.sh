#!/usr/bin/env bash
# --mode bitmap --nbd-socket PATH: QEMU's NBD server is the test's (as it
# would be libvirt's), with a writable export of the drive that fio, the
# stand-in guest, writes through.  volmig adds its exports to that server,
# copies into volmig serve, and afterwards the server and the test's export
# are still there while everything of volmig's is gone.
#
# The drive's reads are throttled (SRC_BPS), so pass 0 of the 48 MiB drive
# takes seconds; fio writes a fixed 12 MiB of 64 KiB blocks at random
# offsets and is proven to finish while pass 0 still runs.  Why not keep it
# writing up to the switchover: QMP stop does not pause a writer outside the
# guest, so a write racing the final paused pass could be missed, and only
# writes proven to have landed before it may be compared.
# Checked: exit 0, destination equals source, a live dirty pass copied the
# guest's writes, the test's export still serves (nbdinfo lists it, a write
# through it works), the server still runs, no export or bitmap of volmig's
# is left.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3 fio nbdinfo qemu-io

urlq() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$1"; }
# user_server_ok QMP SOCKET EXPORTS : QEMU's NBD server still runs on SOCKET
# (a second one cannot start; nbdinfo lists exactly EXPORTS there), nothing
# of volmig's is left, the VM runs.
user_server_ok() {
    local m=$1 sock=$2 want=$3 listed
    assert_clean "$m"
    assert_eq "$(exports "$m")" "$want" "block exports in QEMU"
    assert_eq "$(bitmaps "$m")" "" "dirty bitmaps left in QEMU"
    listed=$(nbdinfo --list --json "nbd+unix:///?socket=$(urlq "$sock")" | python3 -c '
import json, sys
print(" ".join(e["export-name"] for e in json.load(sys.stdin)["exports"]))') \
        || fail "nbdinfo --list on the user's socket failed: the server is gone"
    assert_eq "$listed" "$want" "exports listed on the user's socket"
    if qmp "$m" nbd-server-start "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"$T/probe.sock\"}}}" \
        >/dev/null 2>&1; then
        fail "the user's NBD server was stopped (a new one could start)"
    fi
    assert_running "$m"
}

mib=48
random_file "$T/src" $mib
random_file "$T/dst" $mib           # stale data: must be overwritten
SRC_BPS=$((12 << 20)) src_qemu q "$T/src"
p="$T/q.qmp2"
sock="$T/user nbd&.sock"            # characters a URI would take for syntax
qmp "$p" nbd-server-start "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"$sock\"}}}" \
    block-export-add '{"type":"nbd","id":"guest","node-name":"disk0","name":"guest","writable":true}' \
    >/dev/null || fail "the test's NBD server and export"
guest_uri="nbd+unix:///guest?socket=$(urlq "$sock")"
start_serve dst --target "$T/dst" --listen "unix:$T/dst.sock"

migrate_bg bm --qmp "unix:$T/q.qmp" --volume "disk0=nbd+unix:///?socket=$T/dst.sock" \
    --mode bitmap --nbd-socket "$sock" --switchover none --converge-below 0 --retries 0 \
    --progress-interval 100
wait_event bm started
# fio's nbd engine takes the URI; 64 KiB random writes, 12 MiB in all.
fio --name=guest --ioengine=nbd --uri="$guest_uri" --rw=randwrite --bs=64k --size=${mib}M \
    --io_size=12M --rate=8m --randseed=7 >"$T/fio.log" 2>&1 || { cat "$T/fio.log" >&2; fail "fio"; }
has_event bm pass && fail "pass 0 ended before fio finished: the test cannot show a dirty pass"
log "fio wrote 12 MiB during pass 0"
migrate_wait bm
assert_eq "$bm_rc" 0 "volmig migrate exit status"
same_bytes "$T/src" "$T/dst"
dirty1=$(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["event"] == "pass" and e["pass"] == 1: print(e["dirty"])' "$T/bm.json")
[ "${dirty1:-0}" -ge $((1 << 20)) ] || fail "pass 1 did not copy fio's writes (dirty ${dirty1:-none})"
assert_eq "$(count_event bm failed)" 0 "failed attempts"
user_server_ok "$p" "$sock" guest
# The test's export still takes writes.
qemu-io -f raw -c "write -P 0x77 0 64k" "$guest_uri" >/dev/null || fail "write through the test's export"
log "(a) migrated through the user's server; it and its export are intact"

# (b) A run killed mid-copy leaves its exports and bitmap on the user's
# server, here with no export of the user's on it.  The next run (mirror
# mode, which sweeps too) removes them and must leave the server running:
# it was not the dead run's.
qmp "$p" block-export-del '{"id":"guest"}' >/dev/null || fail "block-export-del guest"
wait_for 10 test "$(exports "$p")" = "" || fail "the test's export did not go"
truncate -s ${mib}M "$T/dst2"
migrate_bg kb --qmp "unix:$T/q.qmp" --volume "disk0=file:$T/dst2" \
    --mode bitmap --nbd-socket "$sock" --switchover none --progress-interval 100
wait_event kb progress
kill -KILL $kb_pid
migrate_wait kb
[ -n "$(bitmaps "$p")" ] || fail "the killed run left no bitmap: nothing to test"
[ -n "$(exports "$p")" ] || fail "the killed run left no export: nothing to test"
log "left by the killed run: $(exports "$p") / $(bitmaps "$p")"
migrate_bg mr --qmp "unix:$T/q.qmp" --volume "disk0=file:$T/dst2" --switchover none
migrate_wait mr
assert_eq "$mr_rc" 0 "exit status of the mirror run after the killed one"
event_field mr warning message | grep -q "left in QEMU" || fail "no warning about the leftovers"
user_server_ok "$p" "$sock" ""
log "(b) the sweep removed the dead run's exports and left the server running"
qmp "$p" nbd-server-stop >/dev/null || fail "nbd-server-stop"
log "ok"
