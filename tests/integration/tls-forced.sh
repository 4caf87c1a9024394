#!/usr/bin/env bash
# The NBD side of TLS on the wire, with a raw client: a server with
# credentials answers nothing but STARTTLS and ABORT in the clear (every
# other option gets NBD_REP_ERR_TLS_REQD, NBD_OPT_EXPORT_NAME ends the
# session with not a byte about the export), an option smuggled in the
# same packet as STARTTLS is not obeyed (the STARTTLS injection attack:
# the connection is dropped), and garbage instead of a TLS handshake ends
# the connection.  A server without credentials answers STARTTLS with
# NBD_REP_ERR_UNSUP.  Nothing is ever written.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/serve-helpers.sh"
. "$TOP/tests/lib/tls-certs.sh"
require python3 certtool psktool

make_tls "$T/tls"
random_file "$T/disk" 4
before=$(sha "$T/disk")
port=$(free_port)
serve srv --target "$T/disk" --listen 127.0.0.1:$port --tls-psk "$T/tls/psk/keys.psk" --export vol
plain=$(free_port)
# Its own copy: a read-only export of the disk the first server writes
# would be refused by the image lock.
cp "$T/disk" "$T/plain"
serve plain --target "$T/plain" --listen 127.0.0.1:$plain --readonly

python3 - "$port" "$plain" <<'PY' || fail "raw client checks failed"
import socket, struct, sys
port, plain = int(sys.argv[1]), int(sys.argv[2])
OPT = 0x49484156454F5054
REP = 0x3e889045565a9
EXPORT_NAME, ABORT, LIST, STARTTLS, INFO, GO, SR, SETMETA = 1, 2, 3, 5, 6, 7, 8, 10
ACK, TLS_REQD, UNSUP = 1, 0x80000005, 0x80000001
bad = 0

def check(ok, what):
    global bad
    print(("ok   " if ok else "FAIL ") + what)
    bad += not ok

def connect(p):
    s = socket.create_connection(("127.0.0.1", p), timeout=10)
    g = recvn(s, 18)
    assert g[:8] == b"NBDMAGIC", g
    s.sendall(struct.pack(">I", 3))            # fixed newstyle, no zeroes
    return s

def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            break
        b += c
    return b

def opt(o, data=b""):
    return struct.pack(">QII", OPT, o, len(data)) + data

def reply(s):
    h = recvn(s, 20)
    if len(h) < 20:
        return None
    magic, o, t, n = struct.unpack(">QIII", h)
    assert magic == REP
    return o, t, recvn(s, n)

def closed(s):
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True

name = b"vol"
goinfo = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
meta = struct.pack(">I", len(name)) + name + struct.pack(">I", 1) + struct.pack(">I", 15) + b"base:allocation"

s = connect(port)
for o, d, what in ((LIST, b"", "LIST"), (INFO, goinfo, "INFO"), (GO, goinfo, "GO"),
                   (SR, b"", "STRUCTURED_REPLY"), (SETMETA, meta, "SET_META_CONTEXT")):
    s.sendall(opt(o, d))
    r = reply(s)
    check(r is not None and r[0] == o and r[1] == TLS_REQD, f"{what} before TLS: ERR_TLS_REQD")
    check(r is None or name not in r[2], f"{what} before TLS: the export name is not echoed")
s.sendall(opt(ABORT))
r = reply(s)
check(r is not None and r[1] == ACK, "ABORT before TLS: ACK")
check(closed(s), "ABORT: then the server hangs up")

s = connect(port)
s.sendall(opt(EXPORT_NAME, name))
check(closed(s), "EXPORT_NAME before TLS: closed, nothing sent")

s = connect(port)
s.sendall(opt(STARTTLS, b"x"))
r = reply(s)
check(r is not None and r[1] == 0x80000003, "STARTTLS with data: ERR_INVALID")
s.sendall(opt(STARTTLS) + opt(SR))
r = reply(s)
check(r is not None and r[0] == STARTTLS and r[1] == ACK, "STARTTLS: ACK")
check(closed(s), "an option smuggled behind STARTTLS: dropped, not answered")

s = connect(port)
s.sendall(opt(STARTTLS))
r = reply(s)
check(r is not None and r[1] == ACK, "STARTTLS: ACK")
s.sendall(opt(GO, goinfo) + b"\0" * 200)     # NBD in the clear, not TLS
check(closed(s), "plaintext instead of a TLS handshake: closed")

s = connect(plain)
s.sendall(opt(STARTTLS))
r = reply(s)
check(r is not None and r[1] == UNSUP, "server without credentials: STARTTLS gets ERR_UNSUP")
s.sendall(opt(ABORT)); reply(s)
sys.exit(1 if bad else 0)
PY
assert_eq "$(sha "$T/disk")" "$before" "target checksum"
cat "$T/srv.log"
grep -q "sent data after STARTTLS" "$T/srv.log" || fail "the injection attempt was not logged"
kill -0 "$srv_pid" || fail "volmig serve died"
log "ok"
