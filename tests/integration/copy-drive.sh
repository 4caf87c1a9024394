#!/usr/bin/env bash
# volmig copy --qmp ADDR --drive NAME TARGET (pull mode): a running VM's
# drive is copied live onto a path (created), onto file:PATH and into
# volmig serve; each copy equals the source byte for byte, the guest pause
# is reported, and QEMU keeps no export, bitmap or NBD server of volmig's.
# Bad usage (offline-only options, no TARGET, two TARGETs, --drive without
# --qmp) exits 2 and touches nothing; an unknown drive fails (exit 1).
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3

random_file "$T/src" 20
src_qemu q "$T/src"
p="$T/q.qmp2"
hmp_write "$p" disk0 0x33 1M 64k       # the copy is of the drive as it is now


log "== onto a new path"
"$VOLMIG" copy --qmp "unix:$T/q.qmp" --drive disk0 "$T/new.img" >"$T/a.out" 2>&1 \
    || { cat "$T/a.out"; fail "pull copy onto a path failed"; }
cat "$T/a.out"
grep -q "the guest was paused for" "$T/a.out" || fail "no pause reported"
same_bytes "$T/src" "$T/new.img"
bitmap_clean "$p"

log "== onto file:PATH, JSON output"
random_file "$T/old.img" 20
"$VOLMIG" copy --qmp "unix:$T/q.qmp" --drive=disk0 "file:$T/old.img" --output json >"$T/b.json" \
    2>"$T/b.err" || { cat "$T/b.err"; fail "pull copy onto file: failed"; }
grep -q '"event": *"paused"' "$T/b.json" || fail "no paused event"
same_bytes "$T/src" "$T/old.img"
bitmap_clean "$p"

log "== into volmig serve"
random_file "$T/srv.img" 20
port=$(free_port)
start_serve srv --target "$T/srv.img" --listen 127.0.0.1:$port
"$VOLMIG" copy --qmp "unix:$T/q.qmp" --drive disk0 "nbd://127.0.0.1:$port/" >"$T/c.out" 2>&1 \
    || { cat "$T/c.out"; fail "pull copy into volmig serve failed"; }
same_bytes "$T/src" "$T/srv.img"
bitmap_clean "$p"

log "== bad usage and an unknown drive"
usage() { # WANT ARGS...
    local want=$1 rc=0; shift
    "$VOLMIG" copy "$@" >"$T/u.out" 2>&1 || rc=$?
    cat "$T/u.out"
    assert_eq "$rc" "$want" "volmig copy $*"
    grep -q "volmig copy" "$T/u.out" || fail "no message for: $*"
}
usage 2 --qmp "unix:$T/q.qmp" --drive disk0 "$T/x.img" --connections 2
usage 2 --qmp "unix:$T/q.qmp" --drive disk0
usage 2 --qmp "unix:$T/q.qmp" --drive disk0 "$T/x.img" "$T/y.img"
usage 2 --drive disk0 "$T/x.img"
[ -e "$T/x.img" ] && fail "bad usage created a target"
usage 1 --qmp "unix:$T/q.qmp" --drive nosuch "$T/x.img"
grep -q nosuch "$T/u.out" || fail "the error does not name the drive"
bitmap_clean "$p"
log "ok"
