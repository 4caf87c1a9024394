#!/usr/bin/env bash
# volmig copy over TLS: nbds:// and nbds+unix:// ends with --tls-psk or
# --tls-creds, into and out of volmig serve requiring TLS, byte for byte.
# Refusals: a wrong key, a CA that does not sign the server, and a plain
# nbd:// URI to a TLS server all fail (exit 1) and leave the target as it
# was; an nbds URI without credentials, or credentials without an nbds URI,
# is bad usage (exit 2) and writes nothing.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/tls-certs.sh"
require certtool psktool python3

make_tls "$T/tls"
random_file "$T/src" 24
# An unaligned size too: the tail goes through TLS like the rest.
head -c $(( 5 * 1048576 + 1536 )) /dev/urandom >"$T/odd"

# copy_ok NAME SOURCE TARGET ARGS... : volmig copy must succeed.
copy_ok() {
    local name=$1; shift
    "$VOLMIG" copy "$@" --output json >"$T/$name.out" 2>&1 \
        || { cat "$T/$name.out" >&2; fail "$name: volmig copy failed"; }
}
# copy_rc WANT NAME ARGS... : volmig copy must exit WANT and say why.
copy_rc() {
    local want=$1 name=$2 rc=0; shift 2
    "$VOLMIG" copy "$@" >"$T/$name.out" 2>&1 || rc=$?
    cat "$T/$name.out"
    assert_eq "$rc" "$want" "$name: exit status"
    grep -q "volmig copy:" "$T/$name.out" || fail "$name: no error message"
}

log "== PSK over a unix socket, file -> nbds+unix"
random_file "$T/psk.disk" 24                  # stale data to be overwritten
start_serve psk --target "$T/psk.disk" --listen "unix:$T/psk.sock" --tls-psk "$T/tls/psk/keys.psk"
grep -q "TLS required (PSK)" "$T/psk.log" || fail "the server does not require TLS"
copy_ok psk1 "$T/src" "nbds+unix:///?socket=$T/psk.sock" --tls-psk "$T/tls/psk/keys.psk"
same_bytes "$T/src" "$T/psk.disk"

log "== PSK (the directory), nbds+unix -> file"
copy_ok psk2 "nbds+unix:///?socket=$T/psk.sock" "$T/back" --tls-psk "$T/tls/psk"
same_bytes "$T/src" "$T/back"

log "== refusals leave the target as it was"
before=$(sha256sum <"$T/psk.disk")
copy_rc 1 wrongkey "$T/odd" "nbds+unix:///?socket=$T/psk.sock" --tls-psk "$T/tls/wrongpsk/keys.psk"
copy_rc 1 plain "$T/odd" "nbd+unix:///?socket=$T/psk.sock"
grep -qi "TLS" "$T/plain.out" || fail "plain: the error does not mention TLS"
copy_rc 2 nocreds "$T/odd" "nbds+unix:///?socket=$T/psk.sock"
grep -q "needs --tls-creds or --tls-psk" "$T/nocreds.out" || fail "nocreds: unclear error"
copy_rc 2 nonbds "$T/odd" "$T/never" --tls-psk "$T/tls/psk/keys.psk"
[ -e "$T/never" ] && fail "nonbds: a target was created"
copy_rc 2 both "$T/odd" "nbds+unix:///?socket=$T/psk.sock" --tls-psk "$T/tls/psk" \
    --tls-creds "$T/tls/client"
copy_rc 2 badpsk "$T/odd" "nbds+unix:///?socket=$T/psk.sock" --tls-psk "$T/tls/client/ca-cert.pem"
assert_eq "$(sha256sum <"$T/psk.disk")" "$before" "a refused copy changed the target"

log "== X.509 over TCP with a client certificate, the host in the certificate"
random_file "$T/x509.disk" 24
port=$(free_port)
start_serve x509 --target "$T/x509.disk" --listen 127.0.0.1:$port --export vol \
    --tls-creds "$T/tls/server"
copy_ok x1 "$T/odd" "nbds://localhost:$port/vol" --tls-creds "$T/tls/client"
same_bytes "$T/odd" "$T/x509.disk" $(( 5 * 1048576 + 1536 ))
copy_ok x2 "nbds://localhost:$port/vol" "$T/back2" --tls-creds "$T/tls/client"
same_bytes "$T/x509.disk" "$T/back2"
before=$(sha256sum <"$T/x509.disk")
copy_rc 1 otherca "$T/src" "nbds://localhost:$port/vol" --tls-creds "$T/tls/other"
assert_eq "$(sha256sum <"$T/x509.disk")" "$before" "a refused copy changed the target"
log "ok"
