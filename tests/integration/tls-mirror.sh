#!/usr/bin/env bash
# The real job over TLS: volmig migrate makes a running QEMU mirror its disk
# into volmig serve over TLS (PSK, then X.509 with a client certificate and
# --tls-hostname); with --switchover none the target then equals the source
# byte for byte, and QEMU is left with no job, node or tls-creds object of
# ours.  Then a mirror driven by hand over TLS with guest writes during the
# copy and after READY (the steps of mirror_to_serve, plus tls-creds), which
# must all reach the target.  A migration with the wrong key, or without
# TLS, fails, writes nothing and leaves nothing behind.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/serve-helpers.sh"
. "$TOP/tests/lib/tls-certs.sh"
require qemu-system-x86_64 python3 certtool psktool

make_tls "$T/tls"
random_file "$T/src" 128
start_qemu q "{\"driver\":\"raw\",\"node-name\":\"disk0\",\"file\":{\"driver\":\"file\",\"filename\":\"$T/src\"}}"
m2="$T/q.qmp2"

# nothing_left : no job, no volmig- node and no volmig- object in QEMU
nothing_left() {
    qmp "$m2" query-block-jobs | grep -q '"device"' && fail "a block job was left in QEMU"
    qmp "$m2" query-named-block-nodes | grep -q '"volmig-' && fail "a volmig node was left in QEMU"
    qmp "$m2" qom-list '{"path":"/objects"}' | grep -q '"volmig-' && fail "a volmig object was left in QEMU"
    return 0
}

# migrate_tls NAME SERVE-ARGS -- MIGRATE-ARGS : a fresh target, volmig
# serve with SERVE-ARGS, volmig migrate with MIGRATE-ARGS; then the target
# must equal the source.  (volmig migrate --switchover none ends as soon as
# the copy is READY, so writes during it could land after the end: the
# hand-driven mirror below covers those.)
migrate_tls() {
    local name=$1; shift
    local sargs=() margs=()
    while [ "$1" != -- ]; do sargs+=("$1"); shift; done
    shift
    margs=("$@")
    random_file "$T/$name.disk" 128         # stale data to be overwritten
    local port; port=$(free_port)
    serve "$name" --target "$T/$name.disk" --listen 127.0.0.1:$port --export vol "${sargs[@]}"
    # A guest write just before: the copy is of the disk as it is now.
    hmp_io "$m2" "write -P $((RANDOM % 200 + 1)) $((RANDOM % 100))M 64k"
    # From $T, so that relative credential paths are relative to it (and
    # not to QEMU's working directory).
    (cd "$T" && "$VOLMIG" migrate --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/vol" \
        --switchover none --retries 0 "${margs[@]}") >"$T/$name.mig" 2>&1 \
        || { cat "$T/$name.mig" "$T/$name.log"; fail "$name: volmig migrate over TLS failed"; }
    cat "$T/$name.mig"
    hmp_io "$T/q.qmp2" flush
    same_bytes "$T/src" "$T/$name.disk"
    nothing_left
    grep -q "TLS required" "$T/$name.log" || fail "$name: the server did not require TLS"
}

log "== PSK (the keys.psk file)"
migrate_tls psk --tls-psk "$T/tls/psk/keys.psk" -- --tls-psk "$T/tls/psk/keys.psk"
log "== PSK (the directory holding keys.psk, a relative path)"
migrate_tls pskdir --tls-psk "$T/tls/psk/keys.psk" -- --tls-psk tls/psk
log "== X.509 with a client certificate (a relative path), the certificate's name given by --tls-hostname"
migrate_tls x509 --tls-creds "$T/tls/server" -- --tls-creds tls/client --tls-hostname localhost

log "== by hand: blockdev-add with tls-creds, blockdev-mirror, guest writes mid-copy and after READY"
random_file "$T/hand.disk" 128
port=$(free_port)
serve hand --target "$T/hand.disk" --listen 127.0.0.1:$port --export vol --tls-psk "$T/tls/psk/keys.psk"
m="$T/q.qmp"
qmp "$m" object-add "{\"qom-type\":\"tls-creds-psk\",\"id\":\"t0\",\"dir\":\"$T/tls/psk\",\"endpoint\":\"client\",\"username\":\"volmig\"}" \
    >/dev/null || fail "object-add tls-creds-psk failed"
qmp "$m" blockdev-add "{\"driver\":\"nbd\",\"node-name\":\"tgt\",\"server\":{\"type\":\"inet\",\"host\":\"127.0.0.1\",\"port\":\"$port\"},\"export\":\"vol\",\"tls-creds\":\"t0\"}" \
    >/dev/null || fail "blockdev-add of the NBD target over TLS failed"
qmp "$m" blockdev-mirror '{"job-id":"m0","device":"disk0","target":"tgt","sync":"full","speed":33554432}' \
    >/dev/null || fail "blockdev-mirror failed"
hmp_io "$m" "write -P 0x5a 4096 64k" "write -z 1M 128k"
qmp "$m" block-job-set-speed '{"device":"m0","speed":0}' >/dev/null
qmp "$m" --wait-job m0 ready --timeout 300 >/dev/null || fail "mirror m0 never became READY"
hmp_io "$m" "write -P 0xa5 2M 12288" "write -P 0x3c 100000 513"
qmp "$m" block-job-cancel '{"device":"m0"}' >/dev/null || fail "block-job-cancel failed"
wait_for 120 job_gone "$m" m0 || fail "mirror m0 did not finish after cancel"
qmp "$m" blockdev-del '{"node-name":"tgt"}' >/dev/null || fail "blockdev-del failed"
qmp "$m" object-del '{"id":"t0"}' >/dev/null || fail "object-del failed"
hmp_io "$m" "flush"
same_bytes "$T/src" "$T/hand.disk"
qio -r "$T/hand.disk" "read -P 0x5a 4096 64k" "read -P 0 1M 128k" "read -P 0xa5 2M 12288" \
    "read -P 0x3c 100000 513" || fail "writes made during the mirror are missing"

log "== the wrong key: the migration fails, nothing is written or left behind"
random_file "$T/bad.disk" 64
before=$(sha "$T/bad.disk")
port=$(free_port)
serve bad --target "$T/bad.disk" --listen 127.0.0.1:$port --export vol --tls-psk "$T/tls/psk/keys.psk"
if "$VOLMIG" migrate --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/vol" \
       --switchover none --retries 0 --tls-psk "$T/tls/wrongpsk/keys.psk" >"$T/bad.mig" 2>&1; then
    cat "$T/bad.mig"; fail "volmig migrate succeeded with the wrong key"
fi
cat "$T/bad.mig"
assert_eq "$(sha "$T/bad.disk")" "$before" "target checksum after a refused migration"
nothing_left
log "== without TLS into a server that requires it: refused"
if "$VOLMIG" migrate --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/vol" \
       --switchover none --retries 0 >"$T/plain.mig" 2>&1; then
    fail "volmig migrate without TLS was let in"
fi
tail -n 1 "$T/plain.mig"
assert_eq "$(sha "$T/bad.disk")" "$before" "target checksum after a plain migration attempt"
nothing_left
log "== bad TLS options are usage errors"
rc=0
"$VOLMIG" migrate --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/vol" \
    --tls-psk "$T/tls/psk" --tls-creds "$T/tls/client" >/dev/null 2>&1 || rc=$?
assert_eq $rc 2 "exit status of --tls-psk with --tls-creds"
cp "$T/tls/psk/keys.psk" "$T/other.psk"
"$VOLMIG" migrate --qmp "unix:$T/q.qmp" --volume "disk0=nbd://127.0.0.1:$port/vol" \
    --tls-psk "$T/other.psk" >"$T/name.mig" 2>&1 && fail "a PSK file not named keys.psk was accepted"
grep -q "keys.psk" "$T/name.mig" || { cat "$T/name.mig"; fail "no word on keys.psk"; }
nothing_left
log "ok"
