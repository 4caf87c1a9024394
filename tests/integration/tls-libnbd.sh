#!/usr/bin/env bash
# volmig serve with TLS, seen by libnbd (nbdinfo, nbdcopy): with X.509
# (client certificates verified) and with a PSK, the right credentials copy
# in and out byte for byte; a plain client, a client without a certificate,
# a client of another CA and a wrong key are all refused, and none of them
# changes a byte of the target.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/serve-helpers.sh"
. "$TOP/tests/lib/tls-certs.sh"
require nbdinfo nbdcopy certtool psktool sha256sum

make_tls "$T/tls"
SIZE_MIB=16
random_file "$T/src" $SIZE_MIB
random_file "$T/evil" $SIZE_MIB
truncate -s ${SIZE_MIB}M "$T/disk"

# refused WHAT URI : nbdinfo and an nbdcopy into the export both fail, and
# the target is as it was.
refused() {
    local what=$1 uri=$2 before
    before=$(sha "$T/disk")
    if nbdinfo "$uri" >"$T/refused.out" 2>&1; then
        cat "$T/refused.out"; fail "$what: nbdinfo was let in"
    fi
    log "$what: nbdinfo refused: $(grep -m1 -iE 'error|nbd_|tls' "$T/refused.out" || tail -n 1 "$T/refused.out")"
    if nbdcopy "$T/evil" "$uri" >"$T/refused.out" 2>&1; then
        fail "$what: nbdcopy wrote into the export"
    fi
    assert_eq "$(sha "$T/disk")" "$before" "$what: target checksum"
}

# accepted URI : TLS is negotiated, and a copy in and out is exact.
accepted() {
    local uri=$1
    nbdinfo "$uri" >"$T/info.out" 2>&1 || { cat "$T/info.out"; fail "nbdinfo over TLS failed"; }
    grep -q "with TLS" "$T/info.out" || { cat "$T/info.out"; fail "TLS was not negotiated"; }
    nbdcopy --connections=2 "$T/src" "$uri" || fail "nbdcopy into the export over TLS failed"
    same_bytes "$T/src" "$T/disk"
    rm -f "$T/out"
    nbdcopy "$uri" "$T/out" || fail "nbdcopy out of the export over TLS failed"
    same_bytes "$T/src" "$T/out"
}

log "== X.509, client certificates required (the server has ca-cert.pem)"
port=$(free_port)
serve x509 --target "$T/disk" --listen 127.0.0.1:$port --tls-creds "$T/tls/server" -v
grep -q "TLS required (X.509, client certificates verified)" "$T/x509.log" \
    || { cat "$T/x509.log"; fail "the listening line does not say TLS is required"; }
base="nbds://127.0.0.1:$port/?tls-certificates="
refused "plain client" "nbd://127.0.0.1:$port/"
refused "client without a certificate" "${base}$T/tls/anon"
refused "client of another CA" "${base}$T/tls/other"
# A client that trusts our CA but whose own certificate is from another CA.
mkdir "$T/tls/mixed"
cp "$T/tls/client/ca-cert.pem" "$T/tls/mixed/"
cp "$T/tls/other/client-"*.pem "$T/tls/mixed/"
refused "client certificate from another CA" "${base}$T/tls/mixed"
accepted "${base}$T/tls/client"
log "server log:"; cat "$T/x509.log"
grep -q "TLS handshake failed" "$T/x509.log" || fail "refused handshakes were not logged"

log "== X.509, server authentication only (no ca-cert.pem on the server)"
stop_serve x509
mkdir "$T/tls/srvonly"
cp "$T/tls/server/server-"*.pem "$T/tls/srvonly/"
truncate -s 0 "$T/disk"; truncate -s ${SIZE_MIB}M "$T/disk"
port=$(free_port)
serve srvonly --target "$T/disk" --listen 127.0.0.1:$port --tls-creds "$T/tls/srvonly"
grep -q "server authentication only" "$T/srvonly.log" || fail "the listening line hides that clients are not checked"
refused "plain client" "nbd://127.0.0.1:$port/"
refused "client of another CA (does not trust the server)" "nbds://127.0.0.1:$port/?tls-certificates=$T/tls/other"
accepted "nbds://127.0.0.1:$port/?tls-certificates=$T/tls/anon"

log "== PSK"
stop_serve srvonly
truncate -s 0 "$T/disk"; truncate -s ${SIZE_MIB}M "$T/disk"
port=$(free_port)
serve psk --target "$T/disk" --listen 127.0.0.1:$port --tls-psk "$T/tls/psk/keys.psk" --export vol
refused "plain client" "nbd://127.0.0.1:$port/vol"
refused "wrong key" "nbds://volmig@127.0.0.1:$port/vol?tls-psk-file=$T/tls/wrongpsk/keys.psk"
mkdir "$T/tls/mallory"
psktool -u mallory -p "$T/tls/mallory/keys.psk" >/dev/null
refused "unknown user" "nbds://mallory@127.0.0.1:$port/vol?tls-psk-file=$T/tls/mallory/keys.psk"
accepted "nbds://volmig@127.0.0.1:$port/vol?tls-psk-file=$T/tls/psk/keys.psk"
log "many connections and requests at once"
random_file "$T/src" $SIZE_MIB
nbdcopy --connections=4 --requests=64 "$T/src" \
    "nbds://volmig@127.0.0.1:$port/vol?tls-psk-file=$T/tls/psk/keys.psk" || fail "nbdcopy -C4 failed"
same_bytes "$T/src" "$T/disk"

log "== a unix socket with TLS"
stop_serve psk
port=unix:$T/sock
serve usock --target "$T/disk" --listen "$port" --tls-psk "$T/tls/psk/keys.psk"
refused "plain client" "nbd+unix:///?socket=$T/sock"
accepted "nbds+unix://volmig@/?socket=$T/sock&tls-psk-file=$T/tls/psk/keys.psk"

log "== bad credentials are refused at start, with the path in the message"
for args in "--tls-creds $T/nonexistent" "--tls-psk $T/nonexistent" \
            "--tls-creds $T/tls/client" "--tls-psk $T/tls/server/server-cert.pem" \
            "--tls-creds $T/tls/server --tls-psk $T/tls/psk/keys.psk"; do
    # shellcheck disable=SC2086
    if "$VOLMIG" serve --target "$T/disk" --listen 127.0.0.1:0 $args >"$T/bad.out" 2>&1; then
        fail "volmig serve started with $args"
    fi
    log "$args: $(cat "$T/bad.out" | head -n 1)"
done
log "ok"
