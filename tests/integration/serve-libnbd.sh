#!/usr/bin/env bash
# volmig serve seen by libnbd: nbdinfo reads the export's size, block sizes,
# flags and meta contexts, an unknown export name is refused, and nbdcopy
# copies in and out (one connection, then four with 64 requests in flight)
# without changing a byte.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/serve-helpers.sh"
require nbdinfo nbdcopy python3

SIZE_MIB=24
random_file "$T/src" $SIZE_MIB
truncate -s ${SIZE_MIB}M "$T/disk"
port=$(free_port)
uri="nbd://127.0.0.1:$port"
serve srv --target "$T/disk" --listen 127.0.0.1:$port

# jfield KEY : one field of the first export in $T/info.json
jfield() {
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["exports"][0][sys.argv[2]])' \
        "$T/info.json" "$1"
}

log "nbdinfo --json"
nbdinfo --json "$uri" >"$T/info.json" || fail "nbdinfo failed on $uri"
cat "$T/info.json"
assert_eq "$(jfield export-size)" $((SIZE_MIB << 20)) "export size"
assert_eq "$(jfield is_read_only)" False "read-only flag"
for f in can_flush can_fua can_trim can_zero can_fast_zero can_multi_conn; do
    strict "$f not advertised" [ "$(jfield $f)" = True ]
done
min=$(jfield block_size_minimum) pref=$(jfield block_size_preferred) max=$(jfield block_size_maximum)
case "$min" in 1|512|4096) ;; *) fail "minimum block size $min is not 1, 512 or 4096" ;; esac
[ "$pref" -ge 4096 ] && [ $((pref & (pref - 1))) = 0 ] && [ "$pref" -ge "$min" ] \
    || fail "preferred block size $pref"
assert_eq "$max" 33554432 "maximum block size"
grep -q '"base:allocation"' "$T/info.json" || fail "base:allocation context not listed"

log "unknown export names are refused"
if nbdinfo "$uri/nosuchexport" >"$T/unknown.out" 2>&1; then
    fail "nbdinfo accepted the export name 'nosuchexport'"
fi
cat "$T/unknown.out"

log "nbdcopy in, one connection"
nbdcopy --connections=1 "$T/src" "$uri" || fail "nbdcopy into the server failed"
same_bytes "$T/src" "$T/disk"
log "nbdcopy out"
nbdcopy "$uri" "$T/out" || fail "nbdcopy out of the server failed"
same_bytes "$T/src" "$T/out"

log "nbdcopy in and out, 4 connections, 64 requests"
random_file "$T/src2" $SIZE_MIB
nbdcopy --connections=4 --requests=64 "$T/src2" "$uri" || fail "nbdcopy -C4 in failed"
same_bytes "$T/src2" "$T/disk"
rm -f "$T/out"
nbdcopy --connections=4 --requests=64 "$uri" "$T/out" || fail "nbdcopy -C4 out failed"
same_bytes "$T/src2" "$T/out"

log "a sparse source: zeroes are written as zeroes"
truncate -s ${SIZE_MIB}M "$T/sparse"
dd if=/dev/urandom of="$T/sparse" bs=64K count=3 seek=37 conv=notrunc status=none
nbdcopy "$T/sparse" "$uri" || fail "nbdcopy of a sparse file failed"
same_bytes "$T/sparse" "$T/disk"
report_alloc "$T/disk" "target after a sparse copy"

log "a named export on a unix socket"
stop_serve srv    # it holds the disk's write lock while it runs
serve named --target "$T/disk" --listen "unix:$T/sock" --export disk1
nbdinfo --list --json "nbd+unix:///?socket=$T/sock" >"$T/list.json" || fail "NBD_OPT_LIST failed"
grep -q '"export-name": "disk1"' "$T/list.json" || { cat "$T/list.json"; fail "disk1 not listed"; }
nbdinfo --size "nbd+unix:///disk1?socket=$T/sock" >"$T/size" || fail "export disk1 not reachable"
assert_eq "$(cat "$T/size")" $((SIZE_MIB << 20)) "size of disk1"
if nbdinfo "nbd+unix:///?socket=$T/sock" >/dev/null 2>&1; then
    fail "the empty export name was accepted by a server exporting only disk1"
fi
nbdcopy "nbd+unix:///disk1?socket=$T/sock" "$T/out2" || fail "nbdcopy out of disk1 failed"
same_bytes "$T/sparse" "$T/out2"
log "ok"
