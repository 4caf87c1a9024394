#!/usr/bin/env bash
# volmig migrate --mode bitmap --switchover none under guest writes.
#
# The destination is a file behind nbdkit's rate filter (4 MiB/s), so pass 0
# of the 16 MiB drive takes seconds: the first guest write (HMP qemu-io on
# the drive) provably lands while pass 0 runs, so bitmap 0 holds it and at
# least one live dirty pass must follow; the final pass runs with the guest
# paused.
# Checked: exit 0, destination equals source byte for byte, >= 2 passes with
# the guest running, the pause length reported (JSON and text), and nothing
# of volmig's left in QEMU: no export, no dirty bitmap, no NBD server.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3 nbdkit

mib=32
random_file "$T/src" $mib
random_file "$T/dst" $mib          # stale data: must be overwritten
src_qemu q "$T/src"
p="$T/q.qmp2"
port=$(free_port)
start_nbdkit slow $port -i 127.0.0.1 --filter=rate file "$T/dst" rate=32M   # bits/s

migrate_bg bm --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/" \
    --mode bitmap --switchover none --converge-below 0 --retries 0 --progress-interval 100
wait_event bm started
# During pass 0: writes that bitmap 0 must hold (4 MiB).
burst_writes "$p" disk0 8 0x5a
has_event bm pass && fail "pass 0 ended before the guest writes: the test cannot show a dirty pass"
log "8 guest writes landed during pass 0"
# Why writes stop here and not at the final pass: a writer outside
# the guest (HMP qemu-io) is not paused by QMP stop, so a write issued as
# the event appears could land after the paused pass and be missed; only a
# write proven to have landed before the final pass may be compared.
migrate_wait bm
assert_eq "$bm_rc" 0 "volmig migrate exit status"
same_bytes "$T/src" "$T/dst"

live=$(live_passes bm)
log "passes with the guest running: $live"
[ "$live" -ge 2 ] || fail "expected at least 2 passes with the guest running, got $live"
dirty1=$(pass_dirty bm 1)
[ "${dirty1:-0}" -ge 4194304 ] || fail "pass 1 did not copy the write made during pass 0 (dirty $dirty1)"
pause=$(event_field bm paused seconds)
[ -n "$pause" ] || fail "no pause length reported"
log "guest paused for $pause s"
for e in started pass converged ready switchover paused completed; do
    has_event bm $e || fail "no '$e' event"
done
assert_eq "$(event_field bm switchover mode)" none "switchover mode"
assert_eq "$(count_event bm failed)" 0 "failed attempts"
bitmap_clean "$p"

# Idle, text output, into a file: the pause is in the text too.
truncate -s ${mib}M "$T/dst2"
"$VOLMIG" migrate --qmp "unix:$T/q.qmp" --volume "disk0=file:$T/dst2" --mode bitmap \
    --switchover none >"$T/text.out" 2>&1 || { cat "$T/text.out" >&2; fail "idle run failed"; }
cat "$T/text.out"
grep -q "the guest was paused for [0-9.]* s" "$T/text.out" || fail "no pause length in the text output"
same_bytes "$T/src" "$T/dst2"
bitmap_clean "$p"
log "ok"
