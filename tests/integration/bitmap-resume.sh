#!/usr/bin/env bash
# A bitmap-mode retry resumes instead of recopying.
#  1. a 512 MiB migration whose destination (volmig serve) is killed past
#     half-way through pass 0 and restarted on the same file: the retry
#     says it resumed (the resumed event, with the bytes it kept), the
#     destination equals the source, and all attempts together sent at
#     most 1.25x the volume to the destination (counted by a proxy in front
#     of it, not by volmig);
#  2. the same, but what comes back at that address is a different, empty
#     volume: the retry notices (a sampled block differs), copies
#     everything, says why, and the result is equal.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3

mib=512
size=$((mib << 20))
random_file "$T/src" $mib
src_qemu q "$T/src"
p="$T/q.qmp2"


# run_killed NAME DST_AFTER : migrates into $T/dst through the proxy, kills
# the server past half-way, restarts it on DST_AFTER, waits for the end.
run_killed() {
    local name=$1 after=$2
    truncate -s $size "$T/dst"
    back=$(free_port)
    start_serve srv --target "$T/dst" --listen "127.0.0.1:$back"
    start_proxy "$name"
    migrate_bg "$name" --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$front/" \
        --mode bitmap --switchover none --speed 96M --retries 2 --backoff 1 \
        --progress-interval 100
    wait_for 60 past_half "$name" || fail "the copy did not get past half-way"
    kill -9 "$srv_pid"
    wait "$srv_pid" 2>/dev/null || true
    log "destination killed at $(last_done "$name") of $size bytes"
    wait_event "$name" retrying 60
    start_serve srv --target "$after" --listen "127.0.0.1:$back"
    migrate_wait "$name"
    assert_eq "$(eval echo "\$${name}_rc")" 0 "exit status after the retry"
    kill "$srv_pid"; wait "$srv_pid" 2>/dev/null || true
}

log "1. killed and restarted on the same file"
run_killed r1 "$T/dst"
same_bytes "$T/src" "$T/dst"
has_event r1 resumed || fail "no resumed event"
kept=$(event_field r1 resumed kept)
sent=$(cat "$T/r1.count")
log "resumed with $kept bytes kept; $sent bytes sent to the destination in all ($(python3 -c "print('%.2f' % ($sent / $size))")x)"
[ "$kept" -ge $((size / 2)) ] || fail "kept only $kept bytes of a copy killed past half-way"
[ "$sent" -le $((size * 5 / 4)) ] || fail "sent $sent bytes, more than 1.25x the volume"
bitmap_clean "$p"

log "2. a different, empty volume comes back at that address"
truncate -s $size "$T/other"
run_killed r2 "$T/other"
same_bytes "$T/src" "$T/other"
why=$(event_field r2 resumed why)
log "the retry copied in full: $why"
echo "$why" | grep -q "differ" || fail "the retry did not say that the destination differs: $why"
assert_eq "$(event_field r2 resumed kept)" 0 "bytes kept on a different destination"
bitmap_clean "$p"
log "ok"
