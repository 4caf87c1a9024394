#!/usr/bin/env bash
# Bad input against volmig serve, from tests/tools/nbd_badclient.c: broken
# handshakes (unknown client flags, garbage option magic, a 4 GiB option,
# a truncated option), unknown options and export names, then requests out
# of range, misaligned, over the maximum payload, with unknown flags or
# types, writes on a --readonly export, a bad request magic, and clients
# vanishing mid-request while another one works.  Each scenario checks the
# replies the NBD spec names; after each one the server must still accept
# clients, and at the end the target must hold exactly the legal writes.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/serve-helpers.sh"
require nbdinfo
[ -x "$BADCLIENT" ] || fail "$BADCLIENT not built (make)"

random_file "$T/disk" 40
cp "$T/disk" "$T/model"
port=$(free_port)
serve srv --target "$T/disk" --listen 127.0.0.1:$port

alive() { # AFTER : the server is up and serves a new client
    kill -0 "$srv_pid" 2>/dev/null || fail "volmig serve died after $1"
    nbdinfo --size "nbd://127.0.0.1:$port" >/dev/null 2>&1 \
        || fail "volmig serve does not accept clients after $1"
}

scenario() { # ADDRESS SCENARIO [EXPORT]
    log "scenario $2"
    local rc=0
    timeout -k 5 120 "$BADCLIENT" "$@" >"$T/$2.out" 2>&1 || rc=$?
    sed 's/^/    /' "$T/$2.out"
    strict "nbd_badclient $2 (exit $rc)" [ $rc = 0 ]
}

for s in bad-client-flags bad-option-magic huge-option truncated-option \
         unknown-option unknown-export options transmission oversized-write \
         bad-magic vanish; do
    scenario 127.0.0.1:$port $s
    alive $s
done

# model OFFSET LENGTH BYTE : a legal write of the scenarios above
model() {
    head -c "$2" /dev/zero | tr '\0' "\\$(printf '%03o' "$3")" \
        | dd of="$T/model" bs=64K seek="$1" oflag=seek_bytes conv=notrunc status=none iflag=fullblock
}
for i in $(seq 0 15); do model $(((1 << 20) + i * 65536)) 65536 $((0x40 + i)); done
model $((2 << 20)) $((3 * 65536)) 0
model $((3 << 20)) 65536 0xc4
for r in $(seq 0 7); do model $(((10 << 20) + r * 65536)) 65536 $((0x10 + r)); done
kill -TERM "$srv_pid"
wait_for 30 sh -c "! kill -0 $srv_pid" || fail "volmig serve did not exit on SIGTERM"
cmp -l "$T/model" "$T/disk" | head -n 5 | sed 's/^/    differs: /'
cmp -n $((8 << 20)) "$T/model" "$T/disk" || fail "the target differs from the legal writes"
cmp -i $((8 << 20)):$((8 << 20)) -n $((1 << 20)) "$T/model" "$T/disk" \
    || fail "a write whose client vanished mid-payload reached the target (8 MiB..9 MiB)"
same_bytes "$T/model" "$T/disk"

log "a --readonly export on a unix socket, named"
sum=$(sha "$T/disk")
serve ro --target "$T/disk" --listen "unix:$T/ro.sock" --export ro1 --readonly
scenario "unix:$T/ro.sock" readonly ro1
scenario "unix:$T/ro.sock" unknown-export ro1
scenario "unix:$T/ro.sock" options ro1
kill -0 "$ro_pid" || fail "the read-only server died"
assert_eq "$(sha "$T/disk")" "$sum" "target changed behind a --readonly export"
log "ok"
