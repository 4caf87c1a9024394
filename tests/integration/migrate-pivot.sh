#!/usr/bin/env bash
# volmig migrate --switchover pivot into a local file, under guest writes
# (through the export, and one through HMP qemu-io on the node).
# The source node is also exported read-write over NBD (block-export-add),
# a stand-in for the guest's device.  Afterwards the export (the "device")
# sits on the new file, the data are equal, a write through the export lands
# in the target and not in the source, and no job is left.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 qemu-io python3

size=$((64 << 20))
random_file "$T/src" 64
random_file "$T/tgt" 64          # stale data in the target must be overwritten
SRC_BPS=$((4 << 20)) src_qemu q "$T/src"   # reads throttled: the copy takes a while
p="$T/q.qmp2"
export_node "$p" disk0 exp0 "$T/nbd.sock"
exp="nbd+unix:///exp0?socket=$T/nbd.sock"

migrate_bg mig --qmp "unix:$T/q.qmp" --volume "disk0=file:$T/tgt" --switchover pivot
wait_event mig started
job=volmig-$mig_pid-m0
# Guest writes while the mirror copies (the read throttle holds it in its
# copy phase; checked after the writes too): through the device (the
# export), then one through HMP on the node, the last write.
assert_eq "$(job_field "$p" "$job" status)" running "mirror status before the writes"
export_writes "$exp" $size 40 11
assert_eq "$(job_field "$p" "$job" status)" running "mirror status after the writes"
hmp_write "$p" disk0 0x77 $((5 << 20)) 12288
has_event mig ready && fail "the mirror was READY before the guest's last write"
unthrottle "$p" 1
migrate_wait mig
assert_eq "$mig_rc" 0 "volmig migrate exit status"

# The export, the VM's device, now sits on the target node.
node=$(qmp "$p" query-block-exports | python3 -c '
import json, sys
print([e["node-name"] for e in json.load(sys.stdin) if e["id"] == "exp0"][0])')
[ "$node" != disk0 ] || fail "the export still sits on the source node"
fname=$(qmp "$p" query-named-block-nodes '{"flat":true}' | python3 -c '
import json, sys
n = [n for n in json.load(sys.stdin) if n["node-name"] == sys.argv[1]][0]
print(n["image"]["filename"])' "$node")
assert_eq "$fname" "$T/tgt" "file under the export's node"
log "export exp0 now on node $node ($fname)"

assert_eq "$(qmp "$p" query-jobs)" "[]" "jobs left after the pivot"
assert_eq "$(qmp "$p" query-block-jobs)" "[]" "block jobs left after the pivot"
# Every guest write made during the copy is in the target.
same_bytes "$T/src" "$T/tgt" $size

# A write through the export after the pivot goes to the target only.
before=$(sha "$T/src")
qemu-io -f raw -c "write -P 0xee 1M 64k" "$exp" >/dev/null \
    || fail "write through the export failed"
qemu-io -f raw -r -c "read -P 0xee 1M 64k" "$T/tgt" | grep -qi "fail\|mismatch" \
    && fail "the write through the export is not in the target file"
qemu-io -f raw -r -c "read -P 0xee 1M 64k" "$T/tgt" >/dev/null || fail "cannot read the target"
assert_eq "$(sha "$T/src")" "$before" "source changed by a write after the pivot"

ev=$(events mig | grep -v progress | tr '\n' ' ')
log "events: $ev"
for e in started ready switchover completed; do
    has_event mig $e || fail "no '$e' event (events: $ev)"
done
assert_eq "$(event_field mig switchover mode)" pivot "switchover mode"
has_event mig progress || fail "no progress event"
log "ok"
