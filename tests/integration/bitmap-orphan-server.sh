#!/usr/bin/env bash
# A bitmap-mode run killed between nbd-server-start and its first export
# leaves QEMU running an NBD server that nothing in QEMU names as volmig's;
# only its socket directory (/tmp/volmig-PID.XXXXXX, PID dead) tells.  The
# next run must prove the server is this QEMU's and holds nothing else,
# stop it, and migrate; the directory goes.  Made here by hand, exactly as
# such a run leaves it.  Not stopped: the same kind of directory served by
# this QEMU's server when another export is on it (someone uses it), and
# one served by another QEMU: then the run is refused and both servers stay.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 python3 nbdinfo

dead_pid() { sh -c 'echo $$'; }        # a pid that has just exited
# orphan_dir : a fresh directory of a dead run's name, in $dir
orphan_dir() {
    dir=$(mktemp -d "/tmp/volmig-$(dead_pid).XXXXXX")
    track_dir "$dir"
}
track_dir() { _orphans+=("$1"); }
_orphans=()
trap 'rm -rf "${_orphans[@]}"; cleanup' EXIT
server_at() { # QMP SOCK
    qmp "$1" nbd-server-start "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"$2\"}}}" >/dev/null \
        || fail "nbd-server-start at $2"
}

random_file "$T/src" 8
random_file "$T/other" 8
src_qemu q "$T/src"
p="$T/q.qmp2"

log "== an orphan server of this QEMU is stopped, and the run goes ahead"
orphan_dir
server_at "$p" "$dir/nbd.sock"
truncate -s 8M "$T/dst1"
"$VOLMIG" migrate --qmp "unix:$T/q.qmp" --volume "disk0=file:$T/dst1" --mode bitmap \
    --switchover none --retries 0 >"$T/a.out" 2>&1 || { cat "$T/a.out"; fail "the run was refused"; }
same_bytes "$T/src" "$T/dst1"
[ -e "$dir" ] && fail "the dead run's directory is still there"
server_at "$p" "$T/probe.sock"         # no server left running
qmp "$p" nbd-server-stop >/dev/null

log "== the same, but someone exports something on it: left alone"
orphan_dir
server_at "$p" "$dir/nbd.sock"
qmp "$p" block-export-add '{"type":"nbd","id":"users","node-name":"disk0","name":"users"}' >/dev/null \
    || fail "block-export-add"
rc=0
"$VOLMIG" migrate --qmp "unix:$T/q.qmp" --volume "disk0=file:$T/dst1" --mode bitmap \
    --switchover none --retries 0 >"$T/b.out" 2>&1 || rc=$?
cat "$T/b.out"
assert_eq "$rc" 1 "a run next to someone's export"
grep -q "already runs an NBD server" "$T/b.out" || fail "unclear refusal"
nbdinfo --list "nbd+unix:///?socket=$dir/nbd.sock" | grep -q "export=\"users\"\|export=users\|users" \
    || fail "the user's export is gone"
qmp "$p" block-export-del '{"id":"users"}' >/dev/null
wait_for 10 test "$(qmp "$p" query-block-exports)" = "[]" || fail "export users did not go"
qmp "$p" nbd-server-stop >/dev/null || fail "nbd-server-stop"
rm -rf "$dir"

log "== a dead run's directory served by another QEMU: left alone"
start_qemu other "{\"driver\":\"raw\",\"node-name\":\"o0\",\"file\":{\"driver\":\"file\",\"filename\":\"$T/other\"}}"
orphan_dir
server_at "$T/other.qmp2" "$dir/nbd.sock"
server_at "$p" "$T/mine.sock"          # this QEMU's server, not in a volmig directory
rc=0
"$VOLMIG" migrate --qmp "unix:$T/q.qmp" --volume "disk0=file:$T/dst1" --mode bitmap \
    --switchover none --retries 0 >"$T/c.out" 2>&1 || rc=$?
assert_eq "$rc" 1 "a run while this QEMU runs someone's server"
qmp "$p" nbd-server-start "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"$T/x.sock\"}}}" \
    >/dev/null 2>&1 && fail "this QEMU's own server was stopped"
qmp "$T/other.qmp2" nbd-server-start "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"$T/y.sock\"}}}" \
    >/dev/null 2>&1 && fail "the other QEMU's server was stopped"
[ -S "$dir/nbd.sock" ] || fail "the other QEMU's socket was removed"
assert_eq "$(qmp "$p" query-block-exports)" "[]" "a probe export was left"
log "ok"
