#!/usr/bin/env bash
# A refusal that repeats is not retried: QEMU refusing the memory
# migration's URI (migrate:garbage) fails the run after one attempt, with
# QEMU's reason, instead of copying the volume again after every backoff.
# A failure that may pass (a destination that is not there yet) is still
# retried.  Nothing is left in QEMU either way.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3

random_file "$T/src" 8
truncate -s 8M "$T/dst"
src_qemu q "$T/src"
p="$T/q.qmp2"

migrate_bg bad --qmp "unix:$T/q.qmp" --volume "disk0=file:$T/dst" --switchover migrate:garbage \
    --retries 3 --backoff 0.2
migrate_wait bad
assert_eq "$bad_rc" 1 "exit status"
assert_eq "$(count_event bad failed)" 1 "attempts"
assert_eq "$(count_event bad retrying)" 0 "retries"
grep -q "Parameter 'uri'" "$T/bad.err" || fail "QEMU's reason is not in the message: $(cat "$T/bad.err")"
assert_clean "$p"

port=$(free_port)
migrate_bg down --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/" --switchover none \
    --retries 1 --backoff 0.2
migrate_wait down
assert_eq "$down_rc" 1 "exit status with no destination"
assert_eq "$(count_event down retrying)" 1 "retries of an unreachable destination"
assert_clean "$p"
log "ok"
