#!/usr/bin/env bash
# The source's NBD server dies mid-copy (QEMU SIGKILLed under its export).
# volmig copy must fail with the source named, after letting the target's
# requests in flight finish (nbdkit behind its rate filter holds them), and
# without spinning on the dead connection meanwhile (checked as CPU time
# well below the wall time: under load a spinning copier gets less CPU, so
# this can miss a spin but never flag a copier that sleeps).
# In bitmap mode the same death is QEMU gone: a "lost" event, no retry.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3 nbdkit

random_file "$T/src" 32
truncate -s 32M "$T/dst"
port=$(free_port)
start_nbdkit slow $port -i 127.0.0.1 --filter=rate file "$T/dst" rate=32M   # bits/s
src_qemu q "$T/src"
qmp "$T/q.qmp2" nbd-server-start "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"$T/n.sock\"}}}" \
    block-export-add '{"type":"nbd","id":"e","node-name":"disk0","name":"e"}' >/dev/null \
    || fail "export of the source"

log "== volmig copy: QEMU killed after the copy started"
run_rusage "$T/copy.out" "$VOLMIG" copy "nbd+unix:///e?socket=$T/n.sock" "nbd://127.0.0.1:$port/" \
    --output json --progress-interval 100 &
copier=$!
wait_for 30 grep -q '"event":"progress"' "$T/copy.out" || fail "the copy never made progress"
kill -9 "$q_pid"
wait "$copier" || true
cat "$T/copy.out" | grep -v '"progress"'
read -r rc _ <"$T/copy.out.cpu"
assert_eq "$rc" 1 "volmig copy exit status"
grep -q "nbd+unix:///e?socket=.*closed connection\|nbd+unix:///e?socket=.*reset" "$T/copy.out" \
    || fail "the error does not name the source's connection"
assert_sleeps "$T/copy.out" "the failing copy"

log "== bitmap mode: QEMU killed mid-pass is a lost monitor, not a retry"
truncate -s 0 "$T/dst"; truncate -s 32M "$T/dst"
src_qemu q2 "$T/src"
migrate_bg bm --qmp "unix:$T/q2.qmp" --volume "disk0=nbd://127.0.0.1:$port/" --mode bitmap \
    --switchover none --retries 3 --backoff 1 --progress-interval 100
wait_event bm progress
kill -9 "$q2_pid"
migrate_wait bm
assert_eq "$bm_rc" 1 "bitmap mode exit status"
has_event bm lost || fail "no 'lost' event"
has_event bm retrying && fail "a dead QEMU was retried"
log "ok"
