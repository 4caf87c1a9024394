#!/usr/bin/env bash
# The real job into a destination larger than the source: the target file
# is 16 MiB bigger and volmig serve exports only --size = the source's size
# (QEMU refuses a mirror target of another size).  The first N bytes equal
# the source and the tail beyond the export is untouched.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/serve-helpers.sh"
require qemu-system-x86_64 python3

random_file "$T/src" 48
random_file "$T/disk" 64
n=$((48 << 20))
tail_sum=$(tail -c +$((n + 1)) "$T/disk" | sha256sum)
port=$(free_port)
serve srv --target "$T/disk" --size $n --listen 127.0.0.1:$port
mirror_to_serve "$T/src" $port
same_bytes "$T/src" "$T/disk" $n
assert_eq "$(stat -c %s "$T/disk")" $((64 << 20)) "target file size"
assert_eq "$(tail -c +$((n + 1)) "$T/disk" | sha256sum)" "$tail_sum" "tail beyond --size"
log "ok"
