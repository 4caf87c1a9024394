#!/usr/bin/env bash
# --speed limits the data the native copier reads per second: volmig copy
# of 24 MiB at 8 MiB/s, and volmig migrate --mode bitmap of a 16 MiB drive
# at 4 MiB/s (the limit KubeVirt's bandwidthPerMigration sets), each take
# at least the time the limit allows (less the 100 ms head start), and the
# copies are exact.  Holes and zeroes move no data and are not held back:
# a sparse 1 GiB volume at 1 MiB/s copies no data at all.  A bad --speed
# is bad usage.  Only lower bounds are asserted: a slow machine makes the
# copies longer, never shorter.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3

# at_least T0 SECONDS WHAT : at least SECONDS have passed since T0 (date +%s.%N)
at_least() {
    python3 -c 'import sys, time; sys.exit(0 if time.time() - float(sys.argv[1]) >= float(sys.argv[2]) else 1)' "$1" "$2" \
        || fail "$3 took less than $2 s: the limit was not applied"
}

log "== volmig copy --speed 8M of 24 MiB"
random_file "$T/src" 24
t0=$(date +%s.%N)
# Also the CPU it used: waiting on the limit must sleep, not spin.
run_rusage "$T/copy.json" "$VOLMIG" copy "$T/src" "$T/dst" --speed 8M --output json \
    || { cat "$T/copy.json"; fail "volmig copy --speed failed"; }
at_least "$t0" 2.8 "24 MiB at 8 MiB/s"
same_bytes "$T/src" "$T/dst"
assert_sleeps "$T/copy.json" "the rate-limited copy"

log "== sparse 1 GiB at 1 MiB/s: no data, so nothing to hold back"
truncate -s 1G "$T/sparse"
"$VOLMIG" copy "$T/sparse" "$T/sparse.dst" --speed 1M --output json >"$T/sparse.json" 2>&1 \
    || { cat "$T/sparse.json"; fail "sparse copy failed"; }
data=$(python3 -c '
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print([e for e in ev if e["event"] == "completed"][-1]["data"])' "$T/sparse.json")
assert_eq "$data" 0 "bytes of data copied from an empty sparse volume"

log "== bad --speed"
for bad in 0 -5 fast; do
    rc=0
    "$VOLMIG" copy "$T/src" "$T/never" --speed "$bad" >"$T/bad.out" 2>&1 || rc=$?
    assert_eq "$rc" 2 "--speed $bad: exit status"
    grep -q -- "--speed" "$T/bad.out" || fail "--speed $bad: unclear error"
done
[ -e "$T/never" ] && fail "a bad --speed created the target"

log "== volmig migrate --mode bitmap --speed 4M of a 16 MiB drive"
random_file "$T/disk" 16
src_qemu q "$T/disk"
truncate -s 16M "$T/bm.dst"
t0=$(date +%s.%N)
"$VOLMIG" migrate --qmp "unix:$T/q.qmp" --volume "disk0=file:$T/bm.dst" --mode bitmap \
    --switchover none --speed 4M --retries 0 >"$T/bm.out" 2>&1 \
    || { cat "$T/bm.out"; fail "bitmap mode with --speed failed"; }
at_least "$t0" 3.8 "16 MiB at 4 MiB/s in bitmap mode"
same_bytes "$T/disk" "$T/bm.dst"
log "ok"
