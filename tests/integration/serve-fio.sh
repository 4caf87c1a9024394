#!/usr/bin/env bash
# fio's nbd engine (libnbd) against volmig serve: four jobs write random
# blocks with crc32c checksums into disjoint quarters of the export, then
# read everything back and verify; a second pass with mixed block sizes
# and a queue depth of 16 does the same.  The target file must then hold
# what fio reads through the server.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/serve-helpers.sh"
require fio nbdcopy
fio --enghelp=nbd >/dev/null 2>&1 || skip "fio built without the nbd engine"

SIZE_MIB=64
truncate -s ${SIZE_MIB}M "$T/disk"
port=$(free_port)
serve srv --target "$T/disk" --listen 127.0.0.1:$port

# Each job owns size/numjobs bytes (offset_increment), so the jobs'
# verifications cannot trip over each other's writes.
cat >"$T/verify.fio" <<JOB
[global]
ioengine=nbd
uri=nbd://127.0.0.1:$port
size=$((SIZE_MIB / 4))M
offset_increment=$((SIZE_MIB / 4))M
numjobs=4
rw=randwrite
verify=crc32c
verify_fatal=1
verify_state_save=0
do_verify=1
group_reporting=1

[bs4k-qd1]
bs=4k
iodepth=1

[mixed-qd16]
stonewall
bssplit=4k/40:64k/40:1m/20
iodepth=16
JOB
(cd "$T" && fio --output="$T/fio.out" "$T/verify.fio") || { cat "$T/fio.out"; fail "fio reported an error"; }
grep -E 'err=|WRITE:|READ:' "$T/fio.out" || true
grep -q 'err= 0' "$T/fio.out" || { cat "$T/fio.out"; fail "fio reported a non-zero err"; }
# The verify pass reads back all it wrote, in both groups.
assert_eq "$(grep -c 'READ: .*io=' "$T/fio.out")" 2 "fio verify passes"

# What the server returns is what is in the file.
nbdcopy "nbd://127.0.0.1:$port" "$T/out" || fail "nbdcopy out failed"
same_bytes "$T/disk" "$T/out"
log "ok"
