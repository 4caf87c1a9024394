#!/usr/bin/env bash
# The real job into a block device: volmig serve exports a loop device
# (its logical block size, O_DIRECT) and QEMU mirrors a raw disk into it;
# after READY and cancel the device equals the source byte for byte.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/serve-helpers.sh"
require qemu-system-x86_64 losetup blockdev python3
[ "$(id -u)" = 0 ] || skip "needs root for losetup"

random_file "$T/src" 64
random_file "$T/backing" 64
dev=$(losetup -f --show "$T/backing") || skip "no loop device available"
track_loop "$dev"
port=$(free_port)
serve srv --target "$dev" --listen 127.0.0.1:$port
if command -v nbdinfo >/dev/null; then
    nbdinfo "nbd://127.0.0.1:$port" >"$T/info" || fail "nbdinfo on the block device export"
    grep -E 'export-size|block_size' "$T/info"
    grep -qw "export-size: $((64 << 20))" "$T/info" || fail "export size of $dev"
    ss=$(blockdev --getss "$dev")
    min=$(sed -n 's/.*block_size_minimum: //p' "$T/info")
    strict "minimum block size $min, the device's logical block size is $ss" \
        [ "$min" = "$ss" ]
fi
mirror_to_serve "$T/src" $port
same_bytes "$T/src" "$dev"
losetup -d "$dev"
same_bytes "$T/src" "$T/backing"
log "ok"
