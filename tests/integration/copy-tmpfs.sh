#!/usr/bin/env bash
# volmig copy with both local ends in /dev/shm, where the copier does its
# local I/O with plain system calls on its own thread instead of io_uring:
# dense and sparse, onto fresh, dirty (holes become punched zeroes) and
# larger targets, and to and from nbdkit.  Every copy is compared byte for
# byte, the source must not change, and a fresh target stays sparse.
. "$(dirname "$0")/../lib/common.sh"
require nbdkit cmp md5sum truncate
[ -d /dev/shm ] && [ "$(stat -f -c %T /dev/shm)" = tmpfs ] || skip "/dev/shm is not a tmpfs"
scratch S /dev/shm
trap 'cleanup; rm -rf "$S"' EXIT

size=$(( 10 * 1024 * 1024 + 1234 ))
truncate -s $size "$S/sparse"
dd if=/dev/urandom of="$S/sparse" bs=64k count=1 conv=notrunc status=none
dd if=/dev/urandom of="$S/sparse" bs=1M count=2 seek=3 conv=notrunc status=none
dd if=/dev/zero of="$S/sparse" bs=1M count=1 seek=6 conv=notrunc status=none   # allocated zeroes
printf 'the end' | dd of="$S/sparse" bs=1 seek=$(( size - 7 )) conv=notrunc status=none
random_file "$S/dense" 24

copy_ok() { # NAME SRC DST CMPFILE [ARGS...]
    local name=$1 src=$2 dst=$3 ref=$4 before; shift 4
    before=$(md5sum <"$ref")
    timeout 120 "$VOLMIG" copy "$src" "$dst" "$@" >"$T/$name.out" 2>&1 \
        || { cat "$T/$name.out"; fail "$name: volmig copy failed"; }
    log "$name: $(tail -n 1 "$T/$name.out")"
}
same() { # NAME A B
    cmp -n "$(stat -c %s "$2")" "$2" "$3" || fail "$1: target differs"
}

copy_ok dense "$S/dense" "$S/dense.copy" "$S/dense" --output json
same dense "$S/dense" "$S/dense.copy"
grep -q 'in memory: plain syscalls' "$T/dense.out" || fail "dense: not using plain syscalls on tmpfs"

copy_ok sparse-fresh "$S/sparse" "$S/sparse.copy" "$S/sparse"
same sparse-fresh "$S/sparse" "$S/sparse.copy"
alloc=$(( $(stat -c %b "$S/sparse.copy") * $(stat -c %B "$S/sparse.copy") ))
[ $alloc -lt $(( 3 * 1024 * 1024 )) ] || fail "fresh target has $alloc bytes allocated"
grep -q "0 B written as zeroes" "$T/sparse-fresh.out" || fail "zeroes written onto a fresh file"

# A dirty target: holes and the zero MiB are zeroed (punched), small
# requests so that many of them are in flight at once.
dd if=/dev/urandom of="$S/dirty" bs=1M count=11 status=none
copy_ok sparse-dirty "$S/sparse" "$S/dirty" "$S/sparse" --request-size 64K --requests 7
same sparse-dirty "$S/sparse" "$S/dirty"
grep -Eq "[1-9][0-9.]* MiB written as zeroes" "$T/sparse-dirty.out" || fail "holes not zeroed"
alloc=$(( $(stat -c %b "$S/dirty") * $(stat -c %B "$S/dirty") ))
[ $alloc -lt $(( 5 * 1024 * 1024 )) ] || fail "dirty target: zeroes not punched ($alloc bytes allocated)"

truncate -s 20M "$S/big"
copy_ok larger "$S/sparse" "$S/big" "$S/sparse"
same larger "$S/sparse" "$S/big"
[ "$(stat -c %s "$S/big")" = $(( 20 * 1024 * 1024 )) ] || fail "larger target changed size"

# To and from nbdkit, whose file also lives in /dev/shm.
n=0
nbdkit_on() { # FILE [-r]: URI in $uri
    n=$((n + 1))
    nbdkit -f ${2:-} -U "$T/k$n.sock" file "$1" >"$T/k$n.log" 2>&1 &
    track_pid $!
    wait_for 10 test -S "$T/k$n.sock" || fail "nbdkit did not start"
    uri="nbd+unix:///?socket=$T/k$n.sock"
}
for f in dense sparse; do
    truncate -s "$(stat -c %s "$S/$f")" "$S/$f.nbd"
    nbdkit_on "$S/$f.nbd"
    copy_ok "$f-to-nbd" "$S/$f" "$uri" "$S/$f"
    same "$f-to-nbd" "$S/$f" "$S/$f.nbd"
    nbdkit_on "$S/$f" -r
    copy_ok "$f-from-nbd" "$uri" "$S/$f.back" "$S/$f"
    same "$f-from-nbd" "$S/$f" "$S/$f.back"
done
log ok
