# Sourced after common.sh by the TLS tests and bench/tls.sh.
#
# make_tls DIR : test credentials, made fresh and fast (ECDSA keys):
#   DIR/server/  ca-cert.pem server-cert.pem server-key.pem   (volmig serve
#                --tls-creds; the certificate names localhost and 127.0.0.1)
#   DIR/client/  ca-cert.pem client-cert.pem client-key.pem   (libnbd's
#                tls-certificates, QEMU's tls-creds-x509 endpoint=client)
#   DIR/other/   the same for a client of another CA: it trusts neither the
#                server nor is trusted by it
#   DIR/anon/    ca-cert.pem only: trusts the server, has no certificate
#   DIR/psk/keys.psk        user "volmig" and a random key (psktool)
#   DIR/wrongpsk/keys.psk   user "volmig" and another key
# Private keys are mode 0600, as QEMU and GnuTLS expect of real ones.
make_tls() {
    local d=$1
    mkdir -p "$d"/{ca,otherca,server,client,other,anon,psk,wrongpsk}
    _tls_ca "$d/ca" "volmig test CA"
    _tls_ca "$d/otherca" "another CA"
    _tls_leaf "$d/ca" "$d/server" server 'cn = "localhost"
dns_name = "localhost"
ip_address = "127.0.0.1"
ip_address = "::1"
tls_www_server
encryption_key
signing_key'
    _tls_leaf "$d/ca" "$d/client" client 'cn = "volmig test client"
tls_www_client
encryption_key
signing_key'
    _tls_leaf "$d/otherca" "$d/other" client 'cn = "a client of another CA"
tls_www_client
encryption_key
signing_key'
    cp "$d/ca/ca-cert.pem" "$d/server/"
    cp "$d/ca/ca-cert.pem" "$d/client/"
    cp "$d/ca/ca-cert.pem" "$d/anon/"
    cp "$d/otherca/ca-cert.pem" "$d/other/"
    psktool -u volmig -p "$d/psk/keys.psk" >/dev/null
    psktool -u volmig -p "$d/wrongpsk/keys.psk" >/dev/null
    chmod 600 "$d"/*/*-key.pem "$d"/*/keys.psk
}

_tls_ca() { # DIR CN
    certtool --generate-privkey --key-type=ecdsa --outfile "$1/ca-key.pem" 2>/dev/null
    printf 'cn = "%s"\nca\ncert_signing_key\nexpiration_days = 2\n' "$2" >"$1/ca.info"
    certtool --generate-self-signed --load-privkey "$1/ca-key.pem" \
        --template "$1/ca.info" --outfile "$1/ca-cert.pem" 2>/dev/null
}

_tls_leaf() { # CADIR DIR server|client TEMPLATE
    certtool --generate-privkey --key-type=ecdsa --outfile "$2/$3-key.pem" 2>/dev/null
    printf '%s\nexpiration_days = 2\n' "$4" >"$2/$3.info"
    certtool --generate-certificate --load-privkey "$2/$3-key.pem" \
        --load-ca-certificate "$1/ca-cert.pem" --load-ca-privkey "$1/ca-key.pem" \
        --template "$2/$3.info" --outfile "$2/$3-cert.pem" 2>/dev/null
    rm -f "$2/$3.info"
}
