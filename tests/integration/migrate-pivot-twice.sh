#!/usr/bin/env bash
# After a pivot the drive's name keeps meaning the disk the VM uses.  Node
# disk0 is exported (the stand-in for the guest's device) and pivoted onto
# file t1; the export moves with it, and node disk0 is left behind with no
# user.  `--volume disk0=...` then resolves to the node the export is on,
# not to the stale disk0: a write made through the export after the first
# pivot is in t2 after the second, and the node the first pivot made is
# gone (one node stands for the name).  The size differs the second time
# (t2 is larger), which puts a raw node on top.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 qemu-io python3

random_file "$T/src" 16
truncate -s 16M "$T/t1"
truncate -s 20M "$T/t2"
src_qemu q "$T/src"
p="$T/q.qmp2"
export_node "$p" disk0 exp0 "$T/nbd.sock"
exp="nbd+unix:///exp0?socket=$T/nbd.sock"

export_on() {
    qmp "$p" query-block-exports | python3 -c '
import json, sys
print([e["node-name"] for e in json.load(sys.stdin) if e["id"] == "exp0"][0])'
}
nodes() {
    qmp "$p" query-named-block-nodes '{"flat":true}' | python3 -c '
import json, sys
print(" ".join(n["node-name"] for n in json.load(sys.stdin)))'
}

migrate_bg m1 --qmp "unix:$T/q.qmp" --volume "disk0=file:$T/t1" --switchover pivot
migrate_wait m1
assert_eq "$m1_rc" 0 "first pivot"
first=$(export_on)
assert_eq "$first" "disk0.m$m1_pid" "the node the export moved onto"
qemu-io -f raw -c "write -P 0x5c 2M 64k" "$exp" >/dev/null || fail "write through the export"

migrate_bg m2 --qmp "unix:$T/q.qmp" --volume "disk0=file:$T/t2" --switchover pivot
migrate_wait m2
assert_eq "$m2_rc" 0 "second pivot, same drive name"
assert_eq "$(event_field m2 started volumes | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["node"])')" \
    "$first" "the node the second run mirrored"
assert_eq "$(export_on)" "disk0.m$m2_pid" "the node the export moved onto the second time"
log "nodes now: $(nodes)"
nodes | tr ' ' '\n' | grep -qx "$first" && fail "the node of the first pivot is still there"
qemu-io -f raw -r -c "read -P 0x5c 2M 64k" "$T/t2" | grep -qi "fail\|mismatch" \
    && fail "the write made after the first pivot is not in t2"
cmp -n $((2 << 20)) "$T/src" "$T/t2" || fail "t2 differs from the source before the write"
assert_clean "$p"
log "ok"
