#!/usr/bin/env bash
# What volmig migrate refuses: a target smaller than the source (up front,
# both sizes named, exit 1, one `failed` event and no retry, nothing left in
# QEMU, target untouched), an unknown drive, and bad usage (exit 2).
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3

random_file "$T/src" 32
random_file "$T/small" 16
small_sha=$(sha "$T/small")
src_qemu q "$T/src"
p="$T/q.qmp2"
port=$(free_port)
start_serve srv --target "$T/small" --listen 127.0.0.1:$port

migrate_bg r1 --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/" --retries 3 --backoff 1
migrate_wait r1
assert_eq "$r1_rc" 1 "exit status for a too small target"
grep -q 33554432 "$T/r1.err" && grep -q 16777216 "$T/r1.err" \
    || fail "the message does not name both sizes: $(cat "$T/r1.err")"
assert_eq "$(count_event r1 failed)" 1 "failed events"
assert_eq "$(count_event r1 retrying)" 0 "retrying events"
has_event r1 started && fail "a migration started into a too small target"
assert_clean "$p"
assert_running "$p"
assert_eq "$(sha "$T/small")" "$small_sha" "the refused target was written"

migrate_bg r2 --qmp "unix:$T/q.qmp" --volume "nosuch=nbd://127.0.0.1:$port/"
migrate_wait r2
assert_eq "$r2_rc" 1 "exit status for an unknown drive"
grep -q "nosuch" "$T/r2.err" && grep -qi "not found" "$T/r2.err" \
    || fail "unclear message for an unknown drive: $(cat "$T/r2.err")"
assert_clean "$p"

usage() { # EXPECTED-WORD ARGS...
    local w=$1 rc=0; shift
    "$VOLMIG" migrate "$@" >"$T/u.out" 2>"$T/u.err" || rc=$?
    assert_eq "$rc" 2 "exit status of: volmig migrate $*"
    grep -qi -- "$w" "$T/u.err" || fail "no '$w' in the message for: $* ($(cat "$T/u.err"))"
}
usage volume --qmp "unix:$T/q.qmp"
usage switchover --qmp "unix:$T/q.qmp" --volume "disk0=file:$T/small" --switchover sideways
usage volume --qmp "unix:$T/q.qmp" --volume "disk0=http://example/x"
usage volume --qmp "unix:$T/q.qmp" --volume "disk0"
assert_eq "$(sha "$T/small")" "$small_sha" "target written by a refused call"
log "ok"
