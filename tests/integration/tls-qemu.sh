#!/usr/bin/env bash
# QEMU's NBD client over TLS into volmig serve: qemu-img with a
# tls-creds-x509 object (client certificate) and a tls-creds-psk object
# converts into the export and reads it back exactly; qemu-img with the
# wrong key, without TLS, or with another CA's certificate is refused and
# the target keeps its bytes.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/serve-helpers.sh"
. "$TOP/tests/lib/tls-certs.sh"
require qemu-img certtool psktool

make_tls "$T/tls"
SIZE_MIB=16
random_file "$T/src" $SIZE_MIB
random_file "$T/evil" $SIZE_MIB
truncate -s ${SIZE_MIB}M "$T/disk"

# nbdopts PORT CREDS-ID : --image-opts for the export over TLS
nbdopts() {
    echo "driver=nbd,server.type=inet,server.host=127.0.0.1,server.port=$1,export=vol,tls-creds=$2"
}

# qemu_refused WHAT ARGS... : qemu-img convert of evil into the export
# fails and the served file, $target, is unchanged.
qemu_refused() {
    local what=$1 before; shift
    before=$(sha "$target")
    if qemu-img convert -n -f raw "$T/evil" "$@" >"$T/q.out" 2>&1; then
        fail "$what: qemu-img wrote into the export"
    fi
    log "$what: refused: $(head -n 1 "$T/q.out")"
    assert_eq "$(sha "$target")" "$before" "$what: target checksum"
}

log "== X.509 with a client certificate"
port=$(free_port)
target=$T/disk
serve x509 --target "$T/disk" --listen 127.0.0.1:$port --tls-creds "$T/tls/server" --export vol
obj="tls-creds-x509,id=tls0,endpoint=client,dir=$T/tls/client"
qemu-img convert -n -f raw "$T/src" --object "$obj" --target-image-opts "$(nbdopts $port tls0)" \
    || fail "qemu-img convert into the export over TLS (X.509) failed"
same_bytes "$T/src" "$T/disk"
qemu-img info --object "$obj" --image-opts "$(nbdopts $port tls0)" >"$T/info.out" \
    || fail "qemu-img info over TLS failed"
grep -q "virtual size: 16 MiB" "$T/info.out" || { cat "$T/info.out"; fail "wrong size over TLS"; }
qemu-img convert -O raw --object "$obj" --image-opts "$(nbdopts $port tls0)" "$T/out" \
    || fail "qemu-img convert out of the export over TLS failed"
same_bytes "$T/src" "$T/out"
qemu_refused "no TLS" -O raw "nbd://127.0.0.1:$port/vol"
qemu_refused "another CA" --object "tls-creds-x509,id=tls0,endpoint=client,dir=$T/tls/other" \
    --target-image-opts "$(nbdopts $port tls0)"
qemu_refused "no client certificate" --object "tls-creds-x509,id=tls0,endpoint=client,dir=$T/tls/anon" \
    --target-image-opts "$(nbdopts $port tls0)"
log "a certificate name that does not match (tls-hostname) is refused by QEMU"
qemu_refused "wrong tls-hostname" --object "$obj" \
    --target-image-opts "$(nbdopts $port tls0),tls-hostname=not-the-server.example"

log "== PSK"
truncate -s ${SIZE_MIB}M "$T/disk2"    # the X.509 server still holds disk
port=$(free_port)
target=$T/disk2
serve psk --target "$T/disk2" --listen 127.0.0.1:$port --tls-psk "$T/tls/psk/keys.psk" --export vol
obj="tls-creds-psk,id=tls0,endpoint=client,dir=$T/tls/psk,username=volmig"
qemu-img convert -n -f raw "$T/src" --object "$obj" --target-image-opts "$(nbdopts $port tls0)" \
    || fail "qemu-img convert into the export over TLS (PSK) failed"
same_bytes "$T/src" "$T/disk2"
rm -f "$T/out"
qemu-img convert -O raw --object "$obj" --image-opts "$(nbdopts $port tls0)" "$T/out" \
    || fail "qemu-img convert out over TLS (PSK) failed"
same_bytes "$T/src" "$T/out"
qemu_refused "no TLS" -O raw "nbd://127.0.0.1:$port/vol"
qemu_refused "wrong key" --object "tls-creds-psk,id=tls0,endpoint=client,dir=$T/tls/wrongpsk,username=volmig" \
    --target-image-opts "$(nbdopts $port tls0)"
kill -0 "$psk_pid" && kill -0 "$x509_pid" || fail "volmig serve died"
log "ok"
