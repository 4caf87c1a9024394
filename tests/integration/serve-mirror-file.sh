#!/usr/bin/env bash
# The real job, file target: QEMU blockdev-mirror of a raw disk into
# volmig serve, with writes during the copy and after READY; after a
# non-forced cancel the target file equals the source byte for byte.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/serve-helpers.sh"
require qemu-system-x86_64 python3

random_file "$T/src" 64
random_file "$T/disk" 64        # stale data in the target must be overwritten
port=$(free_port)
serve srv --target "$T/disk" --listen 127.0.0.1:$port
mirror_to_serve "$T/src" $port
same_bytes "$T/src" "$T/disk"
# The writes made while mirroring are in the target, not only the copy.
qio -r "$T/disk" "read -P 0x5a 4096 64k" "read -P 0 1M 128k" "read -P 0xa5 2M 12288" \
    "read -P 0x3c 100000 513" || fail "writes made during the mirror are missing"
kill -0 "$srv_pid" || fail "volmig serve exited after QEMU disconnected"
log "ok"
