#!/usr/bin/env bash
# volmig copy between local files: dense, sparse, unaligned, onto dirty and
# onto fresh (created) targets, with and without O_DIRECT; the source is
# never modified; a too-small target is refused with both sizes and left
# as it was; bad command lines exit 2.
. "$(dirname "$0")/../lib/common.sh"
require cmp md5sum truncate python3
scratch D /var/tmp   # a real disk: O_DIRECT and SEEK_HOLE
trap 'rm -rf "$D"; cleanup' EXIT

sparse_src() { # PATH SIZE: data at a few places, holes elsewhere
    truncate -s "$2" "$1"
    dd if=/dev/urandom of="$1" bs=64k count=1 conv=notrunc status=none
    dd if=/dev/urandom of="$1" bs=1M count=2 seek=3 conv=notrunc status=none
    dd if=/dev/zero of="$1" bs=1M count=1 seek=6 conv=notrunc status=none   # allocated zeroes
    printf 'the end' | dd of="$1" bs=1 seek=$(( $2 - 7 )) conv=notrunc status=none
}

check_copy() { # NAME SRC DST [ARGS...]
    local name=$1 src=$2 dst=$3 before after; shift 3
    before=$(md5sum <"$src")
    "$VOLMIG" copy "$src" "$dst" "$@" >"$T/$name.out" 2>&1 \
        || { cat "$T/$name.out"; fail "$name: volmig copy failed"; }
    after=$(md5sum <"$src")
    assert_eq "$after" "$before" "$name: source checksum"
    cmp -n "$(stat -c %s "$src")" "$src" "$dst" || fail "$name: target differs"
    grep -Eq 'done:|"completed"' "$T/$name.out" || fail "$name: no summary line"
    log "$name: $(tail -n 1 "$T/$name.out")"
}

random_file "$D/dense" 24
check_copy dense-fresh "$D/dense" "$D/dense.copy"
random_file "$D/dirty" 24
check_copy dense-dirty "$D/dense" "$D/dirty"

size=$(( 10 * 1024 * 1024 + 1234 ))
sparse_src "$D/sparse" $size
check_copy sparse-fresh "$D/sparse" "$D/sparse.copy"
# The fresh target stays sparse: holes and the zero MiB were not written.
alloc=$(( $(stat -c %b "$D/sparse.copy") * $(stat -c %B "$D/sparse.copy") ))
[ $alloc -lt $(( 3 * 1024 * 1024 )) ] || fail "fresh target has $alloc bytes allocated"
grep -q "0 B written as zeroes" "$T/sparse-fresh.out" || fail "zeroes written onto a fresh file"
grep -Eq "[1-9][0-9.]* MiB already zero" "$T/sparse-fresh.out" || fail "holes not skipped"

dd if=/dev/urandom of="$D/sparse.dirty" bs=1M count=11 status=none
check_copy sparse-dirty "$D/sparse" "$D/sparse.dirty" --request-size 64K --requests 7
grep -Eq "[1-9][0-9.]* MiB written as zeroes" "$T/sparse-dirty.out" || fail "holes not zeroed"
check_copy sparse-buffered "$D/sparse" "$D/sparse.buffered" --no-direct
# Larger target: only the source's length is written.
truncate -s 20M "$D/big"
check_copy larger-target "$D/sparse" "$D/big" --output json
grep -q '"event":"completed"' "$T/larger-target.out" || fail "no JSON completed event"
[ "$(stat -c %s "$D/big")" = $(( 20 * 1024 * 1024 )) ] || fail "larger target changed size"
# /dev/shm: no O_DIRECT there, the copier falls back to buffered I/O.
scratch S /dev/shm
trap 'rm -rf "$D" "$S"; cleanup' EXIT
check_copy shm "$D/sparse" "$S/copy"

# More extents than one extent query holds (512): the holes past them are
# still not read.  1000 data blocks of 4 KiB, 60 KiB of hole after each.
truncate -s $(( 1000 * 65536 )) "$D/frag"
python3 - "$D/frag" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
for i in range(1000):
    os.pwrite(fd, os.urandom(4096), i * 65536)
os.close(fd)
PY
check_copy fragmented "$D/frag" "$D/frag.copy" --output json
read=$(python3 -c 'import json, sys
print([json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")][-1]["read"])' "$T/fragmented.out")
[ "$read" -le $(( 2 * 1000 * 4096 )) ] || fail "fragmented: $read bytes read for 4000 KiB of data"

# Too small: refused before anything is written, with both sizes.
dd if=/dev/urandom of="$D/small" bs=1M count=10 status=none
before=$(md5sum <"$D/small")
rc=0; "$VOLMIG" copy "$D/sparse" "$D/small" >"$T/small.out" 2>&1 || rc=$?
assert_eq $rc 1 "exit status for a small target"
grep -q "smaller" "$T/small.out" && grep -q "$size" "$T/small.out" \
    && grep -q $(( 10 * 1024 * 1024 )) "$T/small.out" || { cat "$T/small.out"; fail "message lacks the sizes"; }
assert_eq "$(md5sum <"$D/small")" "$before" "small target was modified"

# Usage errors exit 2; a missing source exits 1.
for args in "" "$D/dense" "$D/dense x y" "--requests 0 $D/dense x" "--request-size 1000 $D/dense x" \
            "--connections 99 $D/dense x" "$D/dense nbd://host:99999/" "nbds://h/ $D/x" \
            "http://h/x $D/x" "$D/dense nbd+unix:///e" "--output xml $D/dense x"; do
    rc=0; "$VOLMIG" copy $args >"$T/usage.out" 2>&1 || rc=$?
    assert_eq $rc 2 "exit status of 'volmig copy $args'"
done
rc=0; "$VOLMIG" copy "$D/missing" "$D/x" >"$T/missing.out" 2>&1 || rc=$?
assert_eq $rc 1 "missing source"
grep -q "No such file" "$T/missing.out" || fail "missing source: $(cat "$T/missing.out")"
[ ! -e "$D/x" ] || fail "a target was created for a missing source"
log ok
