#!/usr/bin/env bash
# volmig serve seen by QEMU's NBD client: qemu-img convert -n into it and
# qemu-img compare; qemu-io writes (plain, FUA, unaligned), zeroes (with and
# without unmap, fast), discards and flushes, each read back with its pattern
# and the target file compared with a model built alongside; then a
# --readonly server: reads work, writes fail, the file is unchanged.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/serve-helpers.sh"
require qemu-img qemu-io

SIZE_MIB=32
random_file "$T/src" $SIZE_MIB
truncate -s ${SIZE_MIB}M "$T/disk"
port=$(free_port)
uri="nbd://127.0.0.1:$port"
serve srv --target "$T/disk" --listen 127.0.0.1:$port

log "qemu-img convert -n"
qemu-img convert -n -f raw -O raw "$T/src" "$uri" || fail "qemu-img convert -n failed"
qemu-img compare -f raw -F raw "$T/src" "$uri" || fail "qemu-img compare: the export differs from the source"
same_bytes "$T/src" "$T/disk"

# model OFFSET LENGTH BYTE : what the target must now hold, kept in $T/model
cp "$T/src" "$T/model"
model() {
    head -c "$2" /dev/zero | tr '\0' "\\$(printf '%03o' "$3")" \
        | dd of="$T/model" bs=64K seek="$1" oflag=seek_bytes conv=notrunc status=none iflag=fullblock
}

log "qemu-io writes, FUA writes, unaligned writes, flush"
qio "$uri" "write -P 0xab 0 1M" "read -P 0xab 0 1M" \
    "write -f -P 0x11 1M 64k" "read -P 0x11 1M 64k" \
    "write -P 0x22 3000000 1000" "read -P 0x22 3000000 1000" \
    "write -P 0x33 5M 8M" "read -P 0x33 5M 8M" \
    "flush" || fail "qemu-io writes"
model 0 1048576 0xab; model 1048576 65536 0x11; model 3000000 1000 0x22
model $((5 << 20)) $((8 << 20)) 0x33
same_bytes "$T/model" "$T/disk"

log "qemu-io write -z (NO_HOLE), write -z -u (may punch), write -z -n (FAST_ZERO)"
qio "$uri" "write -z 14M 1M" "read -P 0 14M 1M" \
    "write -z -u 16M 2M" "read -P 0 16M 2M" \
    "write -z 18M 4097" "read -P 0 18M 4097" || fail "qemu-io write zeroes"
model $((14 << 20)) $((1 << 20)) 0; model $((16 << 20)) $((2 << 20)) 0
model $((18 << 20)) 4097 0
if qio "$uri" "write -z -n 20M 1M" "read -P 0 20M 1M"; then
    model $((20 << 20)) $((1 << 20)) 0
else
    log "WARNING: fast zero refused (allowed by the spec); writing zeroes the slow way"
    qio "$uri" "write -z 20M 1M" || fail "write -z after a refused fast zero"
    model $((20 << 20)) $((1 << 20)) 0
fi
same_bytes "$T/model" "$T/disk"

log "qemu-io discard, then overwrite what was discarded"
qio "$uri" "discard 24M 4M" "flush" || fail "qemu-io discard"
# After a trim the contents are unspecified until rewritten; the rest must
# not have moved.
cmp -n $((24 << 20)) "$T/model" "$T/disk" || fail "discard changed bytes before it"
cmp -i $((28 << 20)) "$T/model" "$T/disk" || fail "discard changed bytes after it"
qio "$uri" "write -P 0x44 24M 4M" "read -P 0x44 24M 4M" || fail "rewrite after discard"
model $((24 << 20)) $((4 << 20)) 0x44
same_bytes "$T/model" "$T/disk"
qemu-img compare -f raw -F raw "$T/model" "$uri" || fail "qemu-img compare after qemu-io"

log "a --readonly server: reads work, writes are refused"
kill "$srv_pid"; wait "$srv_pid" 2>/dev/null || true
sum=$(sha "$T/disk")
port=$(free_port)
uri="nbd://127.0.0.1:$port"
serve ro --target "$T/disk" --listen 127.0.0.1:$port --readonly
qio -r "$uri" "read -P 0xab 0 1M" "read -P 0x44 24M 4M" || fail "reads from a read-only export"
if command -v nbdinfo >/dev/null; then
    nbdinfo "$uri" | grep -q 'is_read_only: true' || fail "nbdinfo: READ_ONLY flag not set"
fi
qemu-img compare -f raw -F raw "$T/model" "$uri" || fail "qemu-img compare on the read-only export"
# QEMU's client sees READ_ONLY and refuses to open for writing; a server
# that got such a write anyway is tested by serve-badinput.
if qio "$uri" "write -P 0x55 0 64k" 2>"$T/rw.err"; then fail "a write on a --readonly export succeeded"; fi
log "write refused: $(head -n 2 "$T/rw.err" | tr '\n' ' ')"
if qio -r "$uri" "write -P 0x55 0 64k" 2>/dev/null; then fail "a write on a --readonly export succeeded"; fi
if qio "$uri" "write -z 0 64k" 2>/dev/null; then fail "write -z on a --readonly export succeeded"; fi
if qio "$uri" "discard 0 64k" 2>/dev/null; then fail "discard on a --readonly export succeeded"; fi
if qemu-img convert -n -f raw -O raw "$T/src" "$uri" 2>/dev/null; then
    fail "qemu-img convert into a --readonly export succeeded"
fi
assert_eq "$(sha "$T/disk")" "$sum" "target changed behind a --readonly export"
log "ok"
