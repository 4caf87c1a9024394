#!/usr/bin/env bash
# volmig serve's life cycle from outside: --size beyond the target is
# refused at start with a message and exit status 1 or 2; a missing target
# is refused; --once exits 0 after its first client; SIGTERM with a client
# connected (and another one copying) exits 0 with every replied write in
# the target; the default listen address is loopback.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/serve-helpers.sh"
require nbdinfo nbdcopy qemu-system-x86_64 qemu-io python3

random_file "$T/disk" 16
sum=$(sha "$T/disk")

# run_fg NAME ARGS... : the server in the foreground, 20 s at most; sets rc
run_fg() {
    local name=$1; shift
    serve_argv "$@"
    rc=0
    timeout -k 5 20 "${SERVE_ARGV[@]}" >"$T/$name.log" 2>&1 </dev/null || rc=$?
    log "$name: exit $rc: $(head -n 3 "$T/$name.log" | tr '\n' ' ')"
}

log "--size larger than the target is refused"
port=$(free_port)
run_fg big --target "$T/disk" --size $(((16 << 20) + 512)) --listen 127.0.0.1:$port
[ $rc = 1 ] || [ $rc = 2 ] || fail "--size beyond the target: exit status $rc, expected 1 or 2"
[ -s "$T/big.log" ] || fail "--size beyond the target: no message"
grep -q "listening on" "$T/big.log" && fail "--size beyond the target: the server listened"
run_fg big2 --target "$T/disk" --size 1G --listen 127.0.0.1:$port
[ $rc = 1 ] || [ $rc = 2 ] || fail "--size 1G on a 16 MiB target: exit status $rc"
run_fg missing --target "$T/nonexistent" --listen 127.0.0.1:$port
[ $rc = 1 ] || [ $rc = 2 ] || fail "missing target: exit status $rc"
assert_eq "$(sha "$T/disk")" "$sum" "target changed by refused starts"

log "--size smaller than the target is accepted and advertised"
serve small --target "$T/disk" --size $((8 << 20)) --listen 127.0.0.1:$port
assert_eq "$(nbdinfo --size "nbd://127.0.0.1:$port")" $((8 << 20)) "advertised --size"
kill "$small_pid"; wait "$small_pid" 2>/dev/null || true

log "--once: exits 0 after the first client disconnects"
port=$(free_port)
serve once --target "$T/disk" --listen 127.0.0.1:$port --once
nbdcopy "nbd://127.0.0.1:$port" "$T/out" || fail "nbdcopy from a --once server"
same_bytes "$T/disk" "$T/out"
wait_for 20 sh -c "! kill -0 $once_pid" || fail "--once server still running after its client left"
rc=0; wait "$once_pid" || rc=$?
assert_eq "$rc" 0 "exit status of a --once server"

log "SIGTERM with clients connected: exit 0, replied writes are in the target"
port=$(free_port)
serve srv --target "$T/disk" --listen 127.0.0.1:$port
# QEMU holds an NBD connection and writes through it (node tgt).
start_qemu q
qmp "$T/q.qmp" blockdev-add "{\"driver\":\"raw\",\"node-name\":\"disk0\",\"file\":{\"driver\":\"nbd\",\"node-name\":\"tgt\",\"server\":{\"type\":\"inet\",\"host\":\"127.0.0.1\",\"port\":\"$port\"},\"export\":\"\"}}" \
    >/dev/null || fail "blockdev-add of the NBD export"
hmp_io "$T/q.qmp" "write -P 0x61 0 1M" "write -P 0x62 5M 64k"
# A second client reads continuously while the signal arrives.
( while nbdcopy "nbd://127.0.0.1:$port" null: 2>/dev/null; do :; done ) &
track_pid $!
sleep 0.5
kill -TERM "$srv_pid"
wait_for 30 sh -c "! kill -0 $srv_pid" || fail "volmig serve did not exit within 30 s of SIGTERM"
rc=0; wait "$srv_pid" || rc=$?
assert_eq "$rc" 0 "exit status after SIGTERM"
qio -r "$T/disk" "read -P 0x61 0 1M" "read -P 0x62 5M 64k" || fail "writes replied before SIGTERM are missing"
if nbdinfo --size "nbd://127.0.0.1:$port" >/dev/null 2>&1; then fail "still accepting after SIGTERM"; fi

log "the default listen address is loopback"
if ss -Htln "sport = :10809" | grep -q .; then
    log "port 10809 is busy here; default address not checked"
else
    serve dflt --target "$T/disk"
    ss -Htln "sport = :10809" >"$T/ss"
    cat "$T/ss"
    grep -q '127.0.0.1:10809' "$T/ss" || fail "default listen address is not 127.0.0.1:10809"
    grep -qE '(\*|0\.0\.0\.0|\[::\]):10809' "$T/ss" && fail "listening on all interfaces by default"
    nbdinfo --size nbd://127.0.0.1 >/dev/null || fail "nbdinfo on the default address"
fi
log "ok"
