#!/usr/bin/env bash
# volmig copy with block devices (loop devices) on either side: a block
# device tells no holes, so every hole of a sparse source must be zeroed on
# a dirty device target; an unaligned source onto a device, and back.
. "$(dirname "$0")/../lib/common.sh"
require losetup cmp md5sum
[ "$(id -u)" = 0 ] || skip "losetup needs root"
scratch D /var/tmp
trap 'cleanup; rm -rf "$D"' EXIT

loop() { # VAR FILE : VAR = /dev/loopN (O_DIRECT on the backing file where it can);
         # not $(loop ...): track_loop in a subshell would be lost
    local dev
    dev=$(losetup -f --show --direct-io=on "$2" 2>/dev/null || losetup -f --show "$2") \
        || fail "losetup $2"
    track_loop "$dev"
    printf -v "$1" '%s' "$dev"
}

copy_ok() { # NAME SRC DST [LEN]
    local before
    before=$(md5sum <"$2")
    "$VOLMIG" copy "$2" "$3" >"$T/$1.out" 2>&1 || { cat "$T/$1.out"; fail "$1: copy failed"; }
    assert_eq "$(md5sum <"$2")" "$before" "$1: source checksum"
    cmp -n "${4:-$(blockdev --getsize64 "$2" 2>/dev/null || stat -c %s "$2")}" "$2" "$3" \
        || fail "$1: target differs"
    log "$1: $(tail -n 1 "$T/$1.out")"
}

# Sparse 32 MiB source file; the device target starts full of garbage.
truncate -s 32M "$D/src"
dd if=/dev/urandom of="$D/src" bs=1M count=3 seek=5 conv=notrunc status=none
dd if=/dev/urandom of="$D/src" bs=4k count=1 seek=8000 conv=notrunc status=none
random_file "$D/dev1" 32
loop dev1 "$D/dev1"
copy_ok file-to-dev "$D/src" "$dev1"
grep -Eq "[1-9][0-9.]* MiB written as zeroes" "$T/file-to-dev.out" || fail "holes were not zeroed on the device"

# Device to device (dense), then device to a fresh file.
random_file "$D/dev2" 40
loop dev2 "$D/dev2"
random_file "$D/dev0" 32
loop dev0 "$D/dev0"
copy_ok dev-to-dev "$dev0" "$dev2" $(( 32 * 1024 * 1024 ))
copy_ok dev-to-file "$dev1" "$D/back"
cmp "$D/src" "$D/back" || fail "round trip through the device differs"

# Unaligned source (10 MiB + 1234) onto a device: the tail is written
# buffered, the bytes after it on the device stay as they were.
size=$(( 10 * 1024 * 1024 + 1234 ))
head -c $size /dev/urandom >"$D/odd"
dd if=/dev/urandom of="$D/odd" bs=1M count=2 seek=4 conv=notrunc status=none
truncate -s 6M "$D/odd" && truncate -s $size "$D/odd"   # a hole at the end
tail_before=$(dd if="$dev2" bs=1 skip=$size count=4096 status=none | md5sum)
copy_ok odd-to-dev "$D/odd" "$dev2" $size
assert_eq "$(dd if="$dev2" bs=1 skip=$size count=4096 status=none | md5sum)" "$tail_before" \
    "bytes past the source's end on the device"

# A device smaller than the source is refused.
rc=0; "$VOLMIG" copy "$dev2" "$dev1" >"$T/small.out" 2>&1 || rc=$?
assert_eq $rc 1 "smaller device target"
grep -q "smaller" "$T/small.out" || fail "$(cat "$T/small.out")"
log ok
