#!/usr/bin/env bash
# --mode bitmap, interrupted:
#  (a) SIGINT during pass 0 into a slow destination: exit 3, one cancelled
#      event, the VM runs, no export, bitmap or NBD server of volmig's is
#      left, the source is unchanged;
#  (b) SIGKILL during pass 0: volmig cannot clean up, so its export, bitmap
#      and NBD server stay; the next run removes them (a warning says so),
#      then migrates normally and leaves nothing behind.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3 nbdkit

bitmaps() { # QMP : names of every dirty bitmap in QEMU
    qmp "$1" query-named-block-nodes '{"flat":true}' | python3 -c '
import json, sys
print(" ".join(b["name"] for n in json.load(sys.stdin) for b in n.get("dirty-bitmaps", [])))'
}

bitmap_clean() { # QMP
    assert_clean "$1"
    assert_eq "$(qmp "$1" query-block-exports)" "[]" "exports left in QEMU"
    assert_eq "$(bitmaps "$1")" "" "dirty bitmaps left in QEMU"
    qmp "$1" nbd-server-start "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"$T/probe.sock\"}}}" \
        >/dev/null || fail "an NBD server is still running in QEMU"
    qmp "$1" nbd-server-stop >/dev/null || fail "nbd-server-stop"
    assert_running "$1"
}

random_file "$T/src" 32
before=$(sha "$T/src")
src_qemu q "$T/src"
p="$T/q.qmp2"
truncate -s 32M "$T/slow"
port=$(free_port)
start_nbdkit slow $port -i 127.0.0.1 --filter=rate file "$T/slow" rate=16M   # 2 MiB/s

# (a) SIGINT mid-copy
migrate_bg ca --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/" \
    --mode bitmap --switchover none --progress-interval 100
wait_event ca progress
has_event ca pass && fail "pass 0 ended before the signal"
[ -n "$(bitmaps "$p")" ] || fail "no dirty bitmap while pass 0 runs"
kill -INT $ca_pid
migrate_wait ca
assert_eq "$ca_rc" 3 "exit status of a cancelled migration"
assert_eq "$(count_event ca cancelled)" 1 "cancelled events"
bitmap_clean "$p"
assert_eq "$(sha "$T/src")" "$before" "source changed"
log "(a) cancelled cleanly"

# (b) SIGKILL mid-copy, then a run that cleans up after it
migrate_bg cb --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/" \
    --mode bitmap --switchover none --progress-interval 100
wait_event cb progress
kill -KILL $cb_pid
migrate_wait cb
[ -n "$(bitmaps "$p")" ] || fail "the killed run left no bitmap: nothing to test"
[ "$(qmp "$p" query-block-exports)" != "[]" ] || fail "the killed run left no export"
truncate -s 32M "$T/dst"
migrate_bg cc --qmp "unix:$T/q.qmp" --volume "disk0=file:$T/dst" --mode bitmap --switchover none
migrate_wait cc
assert_eq "$cc_rc" 0 "exit status of the run after a killed one"
event_field cc warning message | grep -q "left in QEMU" || fail "no warning about the leftovers"
same_bytes "$T/src" "$T/dst"
bitmap_clean "$p"
assert_eq "$(sha "$T/src")" "$before" "source changed"
log "ok"
