#!/usr/bin/env bash
# SIGINT stops a copy: exit 3, a line saying how far it got, and the
# target really holds the source up to that offset; the source is
# untouched.  The target is nbdkit with a write delay, so the copy is slow.
. "$(dirname "$0")/../lib/common.sh"
require nbdkit cmp md5sum
scratch D /var/tmp
trap 'cleanup; rm -rf "$D"' EXIT

random_file "$D/src" 64
random_file "$D/dst" 64
sum=$(md5sum <"$D/src")
nbdkit -f -U "$T/k.sock" --filter=delay file "$D/dst" delay-write=200ms >"$T/k.log" 2>&1 &
track_pid $!
wait_for 10 test -S "$T/k.sock" || fail "nbdkit did not start"

"$VOLMIG" copy "$D/src" "nbd+unix:///?socket=$T/k.sock" --requests 4 >"$T/c.out" 2>&1 &
pid=$!
sleep 2
kill -INT $pid
start=$(date +%s)
rc=0; wait $pid || rc=$?
cat "$T/c.out"
assert_eq $rc 3 "exit status after SIGINT"
[ $(( $(date +%s) - start )) -le 10 ] || fail "took too long to stop"
line=$(grep "cancelled after" "$T/c.out") || fail "no line saying how far it got"
off=$(sed -n 's/.*up to offset \([0-9]*\).*/\1/p' <<<"$line")
[ -n "$off" ] && [ "$off" -gt 0 ] && [ "$off" -lt $(( 64 * 1024 * 1024 )) ] \
    || fail "offset '$off' is not a partial copy"
cmp -n "$off" "$D/src" "$D/dst" || fail "the target does not hold the source up to $off"
assert_eq "$(md5sum <"$D/src")" "$sum" "source checksum"
log "stopped at $off"
log ok
