#!/usr/bin/env bash
# A failed bitmap-mode run hands on what it copied: a later `volmig
# migrate` (another process: the controller's next migration object after
# KubeVirt's backoff) with the same drive and destination resumes.
#  1. a 512 MiB run with --retries 0 whose destination (volmig serve) is
#     killed past half-way fails, keeping a bitmap in QEMU and a state file;
#     a new run, the destination back on the same file, resumes (resumed,
#     earlier_run, the bytes kept), the destination equals the source, both
#     runs together sent at most 1.25x the volume to it (counted by a proxy
#     in front of it), and the success leaves nothing kept;
#  2. the later run names another destination: a full copy, why says so,
#     and the kept state is gone;
#  3. QEMU restarted in between (the bitmap gone): a full copy, and why;
#  4. the state file garbled: a full copy, and why;
#  5. a later run that is cancelled removes what was kept;
#  6. the drive grew in between: a full copy, and why;
#  and a kept bitmap or state file older than a day is swept by a later run.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3

mib=512
size=$((mib << 20))
random_file "$T/src" $mib
src_qemu q "$T/src"
p="$T/q.qmp2"
S="$T/state"


kept_bitmaps() { bitmaps "$p" | tr ' ' '\n' | grep -c '^volmig-keep-' || true; }
state_files() { find "$S" -name '*.json' 2>/dev/null | wc -l; }

# fail_half NAME DST : a run into DST through a fresh counting proxy (NAME)
# whose server is killed past half-way; it must fail and keep its state.
# Leaves back set to the server's port.
fail_half() {
    local name=$1 dst=$2
    back=$(free_port)
    start_serve srv --target "$dst" --listen "127.0.0.1:$back"
    start_proxy "$name"
    migrate_bg "$name" --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$front/" \
        --mode bitmap --switchover none --speed 96M --retries 0 --state-dir "$S" \
        --progress-interval 100
    wait_for 60 past_half "$name" || fail "the copy did not get past half-way"
    kill -9 "$srv_pid"
    wait "$srv_pid" 2>/dev/null || true
    log "destination killed at $(last_done "$name") of $size bytes"
    migrate_wait "$name"
    assert_eq "$(eval echo "\$${name}_rc")" 1 "exit status of the run whose destination died"
    has_event "$name" kept || fail "the failed run did not keep its state"
    assert_eq "$(kept_bitmaps)" 1 "kept bitmaps in QEMU after the failed run"
    assert_eq "$(state_files)" 1 "state files after the failed run"
}

# later NAME TARGET : the later run, to its end; must succeed.
later() {
    migrate_bg "$1" --qmp "unix:$T/q.qmp" --volume "disk0=$2" --mode bitmap --switchover none \
        --retries 0 --state-dir "$S"
    migrate_wait "$1"
    assert_eq "$(eval echo "\$${1}_rc")" 0 "exit status of the later run ($1)"
}

# nothing_kept : no kept bitmap, no state file, nothing else of ours.
nothing_kept() {
    assert_eq "$(state_files)" 0 "state files left"
    bitmap_clean "$p"
}

# copied_in_full NAME WHY : the later run NAME copied everything and its
# resumed event says WHY; nothing is kept after it.
copied_in_full() {
    local why
    why=$(event_field "$1" resumed why)
    log "copied in full: $why"
    echo "$why" | grep -q "$2" || fail "no word of '$2' in why: $why"
    nothing_kept
}

# recopied NAME DST WHY : the later run NAME, through the proxy into a
# fresh server on DST, copies everything, says WHY, and keeps nothing.
recopied() {
    start_serve srv --target "$2" --listen "127.0.0.1:$back"
    later "$1" "nbd://127.0.0.1:$front/"
    kill "$srv_pid"; wait "$srv_pid" 2>/dev/null || true
    same_bytes "$T/src" "$2"
    copied_in_full "$1" "$3"
}

log "0. a kept bitmap older than a day is swept by the next run"
qmp "$p" block-dirty-bitmap-add '{"node":"disk0","name":"volmig-keep-1000-0000beef"}' >/dev/null \
    || fail "block-dirty-bitmap-add"

log "1. killed half-way with --retries 0; a new run on the same file resumes"
truncate -s $size "$T/dst"
fail_half r1 "$T/dst"
bitmaps "$p" | grep -q volmig-keep-1000- && fail "the expired kept bitmap is still there"
[ "$(event_field r1 warning count)" = 1 ] || fail "no word of the expired bitmap swept"
# a state file of another QEMU, two days old: the next run removes it
echo '{}' >"$S/00000000000000aa.json"
touch -d '2 days ago' "$S/00000000000000aa.json"
start_serve srv --target "$T/dst" --listen "127.0.0.1:$back"
later r1b "nbd://127.0.0.1:$front/"
[ -e "$S/00000000000000aa.json" ] && fail "an expired state file was left"
kill "$srv_pid"; wait "$srv_pid" 2>/dev/null || true
same_bytes "$T/src" "$T/dst"
has_event r1b resumed || fail "no resumed event"
assert_eq "$(event_field r1b resumed earlier_run)" true "resumed from an earlier run"
assert_eq "$(event_field r1b resumed why)" null "a reason for a full copy"
kept=$(event_field r1b resumed kept)
sent=$(cat "$T/r1.count")
log "resumed with $kept bytes kept; $sent bytes sent to the destination by both runs ($(python3 -c "print('%.2f' % ($sent / $size))")x)"
[ "$kept" -ge $((size / 2)) ] || fail "kept only $kept bytes of a copy killed past half-way"
[ "$sent" -le $((size * 5 / 4)) ] || fail "sent $sent bytes, more than 1.25x the volume"
nothing_kept

log "2. the later run names another destination"
truncate -s $size "$T/dst2"
fail_half r2 "$T/dst2"
truncate -s $size "$T/other"
later r2b "file:$T/other"
same_bytes "$T/src" "$T/other"
assert_eq "$(event_field r2b resumed kept)" 0 "bytes kept for another destination"
copied_in_full r2b "another destination"

log "3. QEMU restarted: the kept bitmap is gone"
rm -f "$T/dst3"; truncate -s $size "$T/dst3"
fail_half r3 "$T/dst3"
kill -9 "$q_pid"; wait "$q_pid" 2>/dev/null || true
rm -f "$T/q.qmp" "$T/q.qmp2"
src_qemu q "$T/src"
recopied r3b "$T/dst3" "gone from QEMU"

log "4. a garbled state file"
rm -f "$T/dst4"; truncate -s $size "$T/dst4"
fail_half r4 "$T/dst4"
f=$(find "$S" -name '*.json')
head -c 40 "$f" >"$f.cut" && mv "$f.cut" "$f"
recopied r4b "$T/dst4" "garbled"

log "5. a later run that is cancelled removes what was kept"
rm -f "$T/dst5"; truncate -s $size "$T/dst5"
fail_half r5 "$T/dst5"
start_serve srv --target "$T/dst5" --listen "127.0.0.1:$back"
migrate_bg r5b --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$front/" --mode bitmap \
    --switchover none --retries 0 --state-dir "$S" --speed 32M
wait_event r5b resumed 60
kill -TERM "$r5b_pid"
migrate_wait r5b
assert_eq "$r5b_rc" 3 "exit status of the cancelled run"
kill "$srv_pid"; wait "$srv_pid" 2>/dev/null || true
nothing_kept

log "6. the drive grew in between"
rm -f "$T/dst6"; truncate -s $size "$T/dst6"
fail_half r6 "$T/dst6"
qmp "$p" block_resize "{\"node-name\":\"disk0\",\"size\":$((size + (1 << 20)))}" >/dev/null \
    || fail "block_resize"
truncate -s $((size + (1 << 20))) "$T/dst6"
recopied r6b "$T/dst6" "size changed"
log "ok"
