#!/usr/bin/env bash
# A bitmap-mode retry of two volumes resumes also when the failure hits a
# dirty pass.  Guest writes during pass 0 (16 MiB on disk0, 4 MiB on disk1)
# make pass 1 copy them; disk0's destination is killed while pass 1 copies
# disk0, before it reaches disk1.  The retry must copy only what is left of
# disk0's pass and disk1's 4 MiB (its frozen bitmap merged into the one
# that kept recording), not the volumes again; both destinations end equal
# to their sources.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3

random_file "$T/src0" 32
random_file "$T/src1" 32
truncate -s 32M "$T/dst0"
truncate -s 32M "$T/dst1"
src_qemu q "$T/src0" "$T/src1"
p="$T/q.qmp2"
port0=$(free_port)
start_serve srv0 --target "$T/dst0" --listen "127.0.0.1:$port0"
port1=$(free_port)
start_serve srv1 --target "$T/dst1" --listen "127.0.0.1:$port1"

migrate_bg m --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port0/" \
    --volume "disk1=nbd://127.0.0.1:$port1/" --mode bitmap --switchover none --speed 8M \
    --converge-below 0 --retries 2 --backoff 1 --progress-interval 100
wait_event m started
hmp() { qmp "$p" human-monitor-command "{\"command-line\":\"qemu-io $1 \\\"write -P $2 $3 $4\\\"\"}" \
        | grep -qiE 'error|fail' && fail "guest write on $1"; return 0; }
hmp disk0 0x11 0 16M
hmp disk1 0x22 8M 4M
has_event m pass && fail "pass 0 ended before the guest writes"

# in_pass1_disk0 : a progress event of pass 1 with disk0 under way
in_pass1_disk0() {
    python3 -c '
import json, sys
for l in open(sys.argv[1]):
    try: e = json.loads(l)
    except ValueError: continue
    if e.get("event") == "progress" and e.get("pass") == 1 and e["volumes"][0]["done"] > (2 << 20):
        sys.exit(0)
sys.exit(1)' "$T/m.json"
}
wait_for 60 in_pass1_disk0 || fail "pass 1 of disk0 was not seen"
kill -9 "$srv0_pid"
wait "$srv0_pid" 2>/dev/null || true
has_event m resumed && fail "resumed before the failure"
wait_event m retrying 60
start_serve srv0 --target "$T/dst0" --listen "127.0.0.1:$port0"
migrate_wait m
assert_eq "$m_rc" 0 "exit status after the retry"
same_bytes "$T/src0" "$T/dst0"
same_bytes "$T/src1" "$T/dst1"
vols=$(event_field m resumed volumes)
log "resumed: $vols"
todo1=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])[1]["todo"])' "$vols")
todo0=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])[0]["todo"])' "$vols")
assert_eq "$todo1" $((4 << 20)) "what disk1 had left: its 4 MiB of guest writes"
[ "$todo0" -lt $((16 << 20)) ] || fail "disk0 copies more than its pass had left: $todo0"
bitmap_clean "$p"
log "ok"
