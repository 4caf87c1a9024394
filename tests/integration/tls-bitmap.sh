#!/usr/bin/env bash
# volmig migrate --mode bitmap over TLS: volmig's own copier reaches the
# destination with --tls-psk, then --tls-creds (with a client certificate),
# while the guest writes during pass 0.  The destination is nbdkit requiring
# TLS behind its rate filter (4 MiB/s), so pass 0 provably runs when the
# guest's writes (HMP qemu-io) land; then volmig serve requiring TLS, idle.
# The destination must equal the source byte for byte, with a dirty pass
# when the guest wrote, and QEMU is left with no export, bitmap, NBD server
# or object of volmig's.
# A wrong key fails without touching the destination; --tls-hostname,
# which libnbd cannot check, is refused before anything is copied.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
. "$TOP/tests/lib/tls-certs.sh"
require qemu-system-x86_64 python3 certtool psktool

make_tls "$T/tls"
mib=24
random_file "$T/src" $mib
src_qemu q "$T/src"
p="$T/q.qmp2"

# bitmap_tls NAME NBDKIT-TLS-ARGS -- MIGRATE-ARGS : into nbdkit, guest writes in pass 0
bitmap_tls() {
    local name=$1 sargs=() port; shift
    while [ "$1" != -- ]; do sargs+=("$1"); shift; done
    shift
    random_file "$T/$name.disk" $mib              # stale data to be overwritten
    port=$(free_port)
    start_nbdkit "$name" $port -i 127.0.0.1 --tls=require "${sargs[@]}" \
        --filter=rate file "$T/$name.disk" rate=32M   # bits/s
    migrate_bg "$name" --qmp "unix:$T/q.qmp" --volume "disk0=nbd://localhost:$port/" \
        --mode bitmap --switchover none --converge-below 0 --retries 0 "$@"
    wait_event "$name" started
    qmp "$p" human-monitor-command '{"command-line":"qemu-io disk0 \"write -P 0x5a 2M 1M\""}' \
        human-monitor-command '{"command-line":"qemu-io disk0 \"write -P 0xa5 20M 512k\""}' \
        | grep -qiE 'error|fail' && fail "$name: guest writes failed"
    has_event "$name" pass && fail "$name: pass 0 ended before the guest writes"
    migrate_wait "$name"
    assert_eq "$(eval echo "\$${name}_rc")" 0 "$name: volmig migrate exit status"
    same_bytes "$T/src" "$T/$name.disk"
    [ "$(count_event "$name" pass)" -ge 2 ] || fail "$name: no dirty pass after pass 0"
    [ -n "$(event_field "$name" paused seconds)" ] || fail "$name: no pause length"
    bitmap_clean "$p"
}

log "== PSK, into nbdkit"
bitmap_tls psk --tls-psk="$T/tls/psk/keys.psk" -- --tls-psk "$T/tls/psk/keys.psk"
log "== X.509 with a client certificate, into nbdkit"
bitmap_tls x509 --tls-certificates="$T/tls/server" --tls-verify-peer -- --tls-creds "$T/tls/client"

log "== PSK into volmig serve, idle"
random_file "$T/serve.disk" $mib
port=$(free_port)
start_serve serve --target "$T/serve.disk" --listen 127.0.0.1:$port --export vol \
    --tls-psk "$T/tls/psk/keys.psk"
grep -q "TLS required" "$T/serve.log" || fail "volmig serve does not require TLS"
migrate_bg serve --qmp "unix:$T/q.qmp" --volume "disk0=nbds://localhost:$port/vol" \
    --mode bitmap --switchover none --retries 0 --tls-psk "$T/tls/psk"
migrate_wait serve
assert_eq "$serve_rc" 0 "into volmig serve: exit status"
same_bytes "$T/src" "$T/serve.disk"
bitmap_clean "$p"

log "== a wrong key: failed, the destination untouched, nothing left"
random_file "$T/wrong.disk" $mib
before=$(sha256sum <"$T/wrong.disk")
port=$(free_port)
start_serve wrong --target "$T/wrong.disk" --listen 127.0.0.1:$port --tls-psk "$T/tls/psk/keys.psk"
migrate_bg wrong --qmp "unix:$T/q.qmp" --volume "disk0=nbds://127.0.0.1:$port/" \
    --mode bitmap --switchover none --retries 0 --tls-psk "$T/tls/wrongpsk/keys.psk"
migrate_wait wrong
assert_eq "$wrong_rc" 1 "wrong key: exit status"
grep -q "disk0" "$T/wrong.err" || fail "wrong key: the error does not name the drive"
assert_eq "$(sha256sum <"$T/wrong.disk")" "$before" "wrong key: the destination changed"
bitmap_clean "$p"

log "== --tls-hostname is refused in bitmap mode"
migrate_bg host --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/" \
    --mode bitmap --switchover none --retries 0 --tls-creds "$T/tls/client" --tls-hostname localhost
migrate_wait host
assert_eq "$host_rc" 1 "--tls-hostname: exit status"
grep -q "tls-hostname" "$T/host.err" || fail "--tls-hostname: unclear error"
has_event host started && fail "--tls-hostname: the copy started"
bitmap_clean "$p"

log "== an nbds target without credentials is bad usage"
rc=0
"$VOLMIG" migrate --qmp "unix:$T/q.qmp" --volume "disk0=nbds://127.0.0.1:$port/" --mode bitmap \
    >"$T/usage.out" 2>&1 || rc=$?
assert_eq "$rc" 2 "nbds without credentials: exit status"
grep -q "needs --tls-creds or --tls-psk" "$T/usage.out" || fail "nbds without credentials: unclear error"
log "ok"
