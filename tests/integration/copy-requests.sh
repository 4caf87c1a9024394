#!/usr/bin/env bash
# The request pattern of a sparse copy, recorded by nbdkit's log filter:
#   - source over NBD: no Read touches a hole;
#   - dirty NBD target: holes and all-zero data arrive as Zero requests,
#     never as Write;
#   - fresh sparse NBD target: nothing at all is sent for holes or zeroes.
. "$(dirname "$0")/../lib/common.sh"
require nbdkit python3 cmp
scratch D /var/tmp
trap 'cleanup; rm -rf "$D"' EXIT
M=$((1024 * 1024))

# 64 MiB: data [0,1M) [10M,12M) [63M,64M), allocated zeroes [20M,21M),
# holes everywhere else.
truncate -s 64M "$D/src"
dd if=/dev/urandom of="$D/src" bs=1M count=1 conv=notrunc status=none
dd if=/dev/urandom of="$D/src" bs=1M count=2 seek=10 conv=notrunc status=none
dd if=/dev/zero of="$D/src" bs=1M count=1 seek=20 conv=notrunc status=none
dd if=/dev/urandom of="$D/src" bs=1M count=1 seek=63 conv=notrunc status=none
HOLES="$((1*M)):$((10*M)) $((12*M)):$((20*M)) $((21*M)):$((63*M))"
ZEROES="$((20*M)):$((21*M))"

n=0
nbdkit_log() { # FILE LOG: nbdkit with the log filter; URI in $uri
    n=$((n + 1))
    nbdkit -f -U "$T/k$n.sock" --filter=log file "$1" logfile="$2" >"$T/k$n.out" 2>&1 &
    track_pid $!
    wait_for 10 test -S "$T/k$n.sock" || fail "nbdkit did not start"
    uri="nbd+unix:///?socket=$T/k$n.sock"
}

# check LOG VERB none|cover RANGES... : no VERB request overlaps any range
# (none), or VERB requests cover every range completely (cover).
check() {
    python3 - "$@" <<'PY' || fail "request pattern: $*"
import re, sys
log, verb, mode, ranges = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
reqs = []
for line in open(log):
    m = re.search(r' %s id=\d+ offset=(0x[0-9a-f]+) count=(0x[0-9a-f]+)' % verb, line)
    if m:
        reqs.append((int(m.group(1), 16), int(m.group(1), 16) + int(m.group(2), 16)))
print("%s: %d %s requests" % (log.split('/')[-1], len(reqs), verb))
for r in ranges:
    a, b = map(int, r.split(':'))
    if mode == 'none':
        bad = [q for q in reqs if q[0] < b and q[1] > a]
        if bad:
            sys.exit("%s %s overlaps [%d, %d)" % (verb, bad[0], a, b))
    else:
        pos = a
        for q in sorted(reqs):
            if q[0] <= pos < q[1]:
                pos = q[1]
        if pos < b:
            sys.exit("%s requests leave [%d, %d) uncovered" % (verb, pos, b))
PY
}

# 1. NBD source: holes are never read; the data is.
nbdkit_log "$D/src" "$D/src.log"
"$VOLMIG" copy "$uri" "$D/out1" >"$T/c1.out" 2>&1 || { cat "$T/c1.out"; fail "copy 1"; }
cmp "$D/src" "$D/out1" || fail "copy 1 differs"
check "$D/src.log" Read none $HOLES
check "$D/src.log" Read cover 0:$M $((10*M)):$((12*M)) $((63*M)):$((64*M))
grep -q " Extents " "$D/src.log" || fail "no block status asked"

# 2. Dirty NBD target: holes and the zero MiB become Zero requests.
random_file "$D/dirty" 64
nbdkit_log "$D/dirty" "$D/dirty.log"
"$VOLMIG" copy "$D/src" "$uri" >"$T/c2.out" 2>&1 || { cat "$T/c2.out"; fail "copy 2"; }
cmp "$D/src" "$D/dirty" || fail "copy 2 differs"
check "$D/dirty.log" Write none $HOLES $ZEROES
check "$D/dirty.log" Zero cover $HOLES $ZEROES
check "$D/dirty.log" Write cover 0:$M $((10*M)):$((12*M)) $((63*M)):$((64*M))

# 3. Fresh sparse NBD target: it reads zeroes already, so no Write and no
#    Zero for holes or zeroes.
truncate -s 64M "$D/fresh"
nbdkit_log "$D/fresh" "$D/fresh.log"
"$VOLMIG" copy "$D/src" "$uri" >"$T/c3.out" 2>&1 || { cat "$T/c3.out"; fail "copy 3"; }
cmp "$D/src" "$D/fresh" || fail "copy 3 differs"
check "$D/fresh.log" Write none $HOLES $ZEROES
check "$D/fresh.log" Zero none 0:$((64*M))
log ok
