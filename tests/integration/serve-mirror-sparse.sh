#!/usr/bin/env bash
# The real job with a sparse source: 256 MiB virtual with a few scattered
# writes.  The target starts full of random data, so every hole of the
# source must reach it as zeroes (QEMU sends WRITE_ZEROES for them); after
# READY and cancel the target equals the source.  Whether the target stayed
# sparse (holes punched) is reported, not asserted.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/serve-helpers.sh"
require qemu-system-x86_64 qemu-img qemu-io python3

qemu-img create -q -f raw "$T/src" 256M
qio "$T/src" "write -P 0x11 0 64k" "write -P 0x22 7M 1M" "write -P 0x33 100M 4k" \
    "write -P 0x44 200000000 70000" "write -P 0x55 255M 1M" || fail "writing the source"
random_file "$T/disk" 256
port=$(free_port)
serve srv --target "$T/disk" --listen 127.0.0.1:$port
mirror_to_serve "$T/src" $port
same_bytes "$T/src" "$T/disk"
report_alloc "$T/src" "source"
report_alloc "$T/disk" "target"
alloc=$(du -k "$T/disk" | cut -f1)
if [ "$alloc" -lt $((64 * 1024)) ]; then log "target is sparse"; else
    log "NOTE: target is not sparse ($alloc KiB allocated): holes were written, not punched"; fi
log "ok"
