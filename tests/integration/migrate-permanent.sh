#!/usr/bin/env bash
# A refusal that repeats costs no copy: a malformed memory migration URI
# (migrate:garbage) is refused before anything starts (the command line's
# check; the engine would refuse QEMU's answer after one attempt, which
# test_migrate_run covers).  A failure that may pass (a destination that is
# not there yet) is still retried.  Nothing is left in QEMU either way.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3

random_file "$T/src" 8
truncate -s 8M "$T/dst"
src_qemu q "$T/src"
p="$T/q.qmp2"

# migrate:garbage no longer reaches QEMU: volmig migrate checks the URI's
# form while it parses its arguments (bad usage, exit 2, no attempt at
# all; tests/integration/cli-badinput.sh).  The engine's own refusal of
# what QEMU refuses (mig_error_permanent) is a unit test's now.
migrate_bg bad --qmp "unix:$T/q.qmp" --volume "disk0=file:$T/dst" --switchover migrate:garbage \
    --retries 3 --backoff 0.2
migrate_wait bad
assert_eq "$bad_rc" 2 "exit status"
assert_eq "$(count_event bad started)" 0 "attempts"
grep -q "migrate:garbage" "$T/bad.err" || fail "the message does not name the URI: $(cat "$T/bad.err")"
assert_clean "$p"

port=$(free_port)
migrate_bg down --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/" --switchover none \
    --retries 1 --backoff 0.2
migrate_wait down
assert_eq "$down_rc" 1 "exit status with no destination"
assert_eq "$(count_event down retrying)" 1 "retries of an unreachable destination"
assert_clean "$p"
log "ok"
