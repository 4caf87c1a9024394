#!/usr/bin/env bash
# --nbd-socket refused or failing cleanly:
#  (a) an empty path: bad usage, exit 2; with --mode mirror (or no --mode),
#      where it only serves the latency probe, a path where QEMU runs no
#      server leaves the copy unpaced: exit 0, a warning that says so, and
#      nothing left;
#  (b) QEMU runs no NBD server: exit 1, the message says so, and volmig
#      starts none and leaves nothing;
#  (c) a path where nothing listens, while QEMU's server (the test's, with
#      an export) listens elsewhere: exit 1, the message names the path, and
#      the test's server and export are untouched, nothing of volmig's left;
#  (d) a path where another NBD server (volmig serve) listens: exit 1, "not
#      QEMU's", the same checks;
#  (e) no --nbd-socket while a server runs: exit 1 and the message points
#      at --nbd-socket.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3 nbdinfo

server_running() { # QMP : 0 if QEMU runs an NBD server (a second cannot start)
    if qmp "$1" nbd-server-start "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"$T/probe.sock\"}}}" \
        >/dev/null 2>&1; then
        qmp "$1" nbd-server-stop >/dev/null
        return 1
    fi
    return 0
}
# run NAME WANT-RC PATTERN ARGS... : volmig migrate, its exit status and a
# pattern its error message must hold.
run() {
    local name=$1 want=$2 pat=$3; shift 3
    local rc=0
    "$VOLMIG" migrate --qmp "unix:$T/q.qmp" --volume "disk0=file:$T/dst" --switchover none \
        --retries 0 "$@" >"$T/$name.out" 2>&1 || rc=$?
    log "$name: exit $rc: $(tr '\n' ' ' <"$T/$name.out")"
    assert_eq "$rc" "$want" "$name: exit status"
    grep -q -- "$pat" "$T/$name.out" || fail "$name: the message does not say '$pat'"
}

random_file "$T/src" 8
truncate -s 8M "$T/dst"
src_qemu q "$T/src"
p="$T/q.qmp2"

# (a)
run a1 0 "without a latency budget: .*$T/x.sock" --mode mirror --nbd-socket "$T/x.sock"
run a2 0 "without a latency budget: .*$T/x.sock" --nbd-socket "$T/x.sock"
run a3 2 "unix socket path" --mode bitmap --nbd-socket ""
run a4 2 "unix socket path" --nbd-socket ""
assert_clean "$p"
assert_eq "$(exports "$p")" "" "exports left in QEMU"
server_running "$p" && fail "(a) an NBD server runs in QEMU after a mirror with --nbd-socket"

# (b)
run b 1 "QEMU runs no NBD server" --mode bitmap --nbd-socket "$T/none.sock"
assert_clean "$p"
assert_eq "$(exports "$p")" "" "exports left in QEMU"
assert_eq "$(bitmaps "$p")" "" "bitmaps left in QEMU"
server_running "$p" && fail "(b) an NBD server runs in QEMU after a refused --nbd-socket run"
log "(b) ok"

# (c)
qmp "$p" nbd-server-start "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"$T/user.sock\"}}}" \
    block-export-add '{"type":"nbd","id":"guest","node-name":"disk0","name":"guest","writable":true}' \
    >/dev/null || fail "the test's NBD server and export"
user_intact() {
    assert_clean "$p"
    assert_eq "$(exports "$p")" guest "exports in QEMU"
    assert_eq "$(bitmaps "$p")" "" "bitmaps left in QEMU"
    nbdinfo --list "nbd+unix:///?socket=$T/user.sock" | grep -q 'export="guest"' \
        || fail "the test's export is not served on its socket any more"
    server_running "$p" || fail "the test's NBD server was stopped"
}
run c 1 "nbd-socket $T/elsewhere.sock: cannot reach" --mode bitmap --nbd-socket "$T/elsewhere.sock"
user_intact
log "(c) ok"

# (d)
start_serve other --target "$T/dst" --listen "unix:$T/other.sock"
run d 1 "is not QEMU's" --mode bitmap --nbd-socket "$T/other.sock"
user_intact
log "(d) ok"

# (e)
run e 1 "--nbd-socket PATH" --mode bitmap
user_intact
log "(e) ok"

# And the right socket works, the export of the test's staying.  The
# server of (d) goes first: it holds the image lock on dst.
stop_serve other
run f 0 "done" --mode bitmap --nbd-socket "$T/user.sock"
same_bytes "$T/src" "$T/dst"
user_intact
log "ok"
