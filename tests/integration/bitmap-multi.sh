#!/usr/bin/env bash
# volmig migrate --mode bitmap with two volumes in one call.
#
#  (a) disk0 and disk1 into two volmig serve targets, --switchover none.
#      Each target sits behind nbdkit's rate filter (4 MiB/s, nbd plugin),
#      so pass 0 takes seconds and the guest writes on both drives (HMP
#      qemu-io on the test's monitor) provably land while it runs: the
#      passes that follow must carry them.  Checked: exit 0, both
#      destinations equal their sources, at least one live dirty pass that
#      copied both drives' writes, progress per drive, the pause reported,
#      nothing of volmig's left in QEMU (exports, bitmaps, NBD server, jobs,
#      nodes), the VM running, no socket directory left.
#  (b) disk1's destination unreachable, and (c) disk1's destination too
#      small: exit 1, the error names disk1, nothing left in QEMU, the VM
#      running, both sources unchanged.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3 nbdkit qemu-io

mib=16

no_sock_dir() { # PID
    assert_eq "$(find /tmp -maxdepth 1 -name "volmig-$1.*")" "" "socket directory of volmig $1 left"
}

random_file "$T/src0" $mib
random_file "$T/src1" $mib
random_file "$T/dst0" $mib         # stale data: must be overwritten
random_file "$T/dst1" $mib
src_qemu q "$T/src0" "$T/src1"
p="$T/q.qmp2"

# (a) both volumes, guest writes on both during pass 0
for i in 0 1; do
    start_serve s$i --target "$T/dst$i" --listen "unix:$T/s$i.sock"
    eval "port$i=$(free_port)"
    eval "start_nbdkit slow$i \$port$i -i 127.0.0.1 --filter=rate nbd socket=$T/s$i.sock rate=32M"
done
migrate_bg bm --qmp "unix:$T/q.qmp" \
    --volume "disk0=nbd://127.0.0.1:$port0/" --volume "disk1=nbd://127.0.0.1:$port1/" \
    --mode bitmap --switchover none --converge-below 0 --retries 0 --progress-interval 100
wait_event bm started
burst_writes "$p" disk0 4 0x5a
burst_writes "$p" disk1 4 0xa5
has_event bm pass && fail "pass 0 ended before the guest writes: the test cannot show a dirty pass"
log "4 guest writes on each drive landed during pass 0"
# The writes stop here: an HMP qemu-io is not paused by QMP stop, so only
# writes known to have landed before the final pass may be compared.
migrate_wait bm
assert_eq "$bm_rc" 0 "volmig migrate exit status"
same_bytes "$T/src0" "$T/dst0"
same_bytes "$T/src1" "$T/dst1"

assert_eq "$(event_field bm started volumes | python3 -c '
import json, sys
print(" ".join(v["drive"] for v in json.load(sys.stdin)))')" "disk0 disk1" "volumes started"
live=$(live_passes bm)
log "passes with the guest running: $live"
[ "$live" -ge 2 ] || fail "expected at least 2 passes with the guest running, got $live"
dirty1=$(pass_dirty bm 1)
# 2 MiB written on each drive during pass 0.
[ "${dirty1:-0}" -ge 4194304 ] || fail "pass 1 did not copy both drives' writes (dirty $dirty1)"
passes=$(event_field bm completed passes)
[ "${passes:-0}" -ge 3 ] || fail "completed after $passes passes, expected pass 0, a dirty pass and a paused one"
# Progress reports each drive on its own, and pass 0 was seen moving on
# both (its last figures may come before the end: progress is periodic).
python3 -c '
import json, sys
done = {}
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["event"] == "progress" and e["pass"] == 0:
        for v in e["volumes"]:
            assert v["total"] == int(sys.argv[2]), v
            done[v["drive"]] = max(done.get(v["drive"], 0), v["done"])
ok = sorted(done) == ["disk0", "disk1"] and all(d > 0 for d in done.values())
sys.exit(0 if ok else "progress per drive in pass 0: %r" % done)' "$T/bm.json" $(( mib << 20 )) \
    || fail "no progress per drive"
pause=$(event_field bm paused seconds)
[ -n "$pause" ] || fail "no pause length reported"
log "guest paused for $pause s"
for e in started pass converged ready switchover paused completed; do
    has_event bm $e || fail "no '$e' event"
done
assert_eq "$(count_event bm failed)" 0 "failed attempts"
bitmap_clean "$p"
no_sock_dir $bm_pid
log "(a) both volumes migrated"

# (b) disk1's destination unreachable; disk0's is fine.
sum0=$(sha "$T/src0") sum1=$(sha "$T/src1")
truncate -s ${mib}M "$T/ok0"
start_serve ok0 --target "$T/ok0" --listen "unix:$T/ok0.sock"
dead_port=$(free_port)
migrate_bg ub --qmp "unix:$T/q.qmp" \
    --volume "disk0=nbd+unix:///?socket=$T/ok0.sock" --volume "disk1=nbd://127.0.0.1:$dead_port/" \
    --mode bitmap --switchover none --retries 0
migrate_wait ub
assert_eq "$ub_rc" 1 "exit status with an unreachable destination"
grep -q "disk1" "$T/ub.err" || fail "the error does not name disk1: $(cat "$T/ub.err")"
grep -q "disk1" <<<"$(event_field ub failed error)" || fail "the failed event does not name disk1"
bitmap_clean "$p"
no_sock_dir $ub_pid
assert_eq "$(sha "$T/src0")" "$sum0" "source 0 changed"
assert_eq "$(sha "$T/src1")" "$sum1" "source 1 changed"
# Every destination is looked at before any copy: disk0's is not written.
assert_eq "$(sha "$T/ok0")" "$(head -c ${mib}M /dev/zero | sha256sum | cut -d' ' -f1)" \
    "disk0's destination was written although disk1's was unreachable"
has_event ub started && fail "the copy started although disk1's destination was unreachable"
log "(b) unreachable destination: failed cleanly"

# (c) disk1's destination one MiB smaller than the drive.
truncate -s $(( mib - 1 ))M "$T/small1"
start_serve small1 --target "$T/small1" --listen "unix:$T/small1.sock"
migrate_bg sm --qmp "unix:$T/q.qmp" \
    --volume "disk0=nbd+unix:///?socket=$T/ok0.sock" --volume "disk1=nbd+unix:///?socket=$T/small1.sock" \
    --mode bitmap --switchover none --retries 0
migrate_wait sm
assert_eq "$sm_rc" 1 "exit status with a destination too small"
grep -q "disk1" "$T/sm.err" || fail "the error does not name disk1: $(cat "$T/sm.err")"
bitmap_clean "$p"
no_sock_dir $sm_pid
assert_eq "$(sha "$T/src0")" "$sum0" "source 0 changed"
assert_eq "$(sha "$T/src1")" "$sum1" "source 1 changed"
assert_eq "$(stat -c %s "$T/small1")" $(( (mib - 1) << 20 )) "the small destination grew"
grep -q "smaller than drive 'disk1'" "$T/sm.err" || fail "the error does not give the sizes"
assert_eq "$(sha "$T/ok0")" "$(head -c ${mib}M /dev/zero | sha256sum | cut -d' ' -f1)" \
    "disk0's destination was written although disk1's was too small"
log "ok"
