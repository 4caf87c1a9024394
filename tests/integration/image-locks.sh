#!/usr/bin/env bash
# volmig takes part in QEMU's image locking exactly as qemu-img does.
#  - A disk a running VM has attached (virtio-blk on a paused q35 machine)
#    is never written: `copy` onto it and `serve --target` it are refused,
#    naming QEMU's process, and its bytes stay as they were.  qemu-img
#    convert -n refuses it too, which proves the fixture holds the lock.
#  - Reading it is refused as qemu-img convert refuses it, unless
#    --force-share; a writable --force-share is a usage error.
#  - While volmig serves or copies, it holds the locks: QEMU cannot open the
#    target (blockdev-add), nor the copy's source for writing, nor can a
#    second volmig serve the same target; two read-only exports share.
#  - The locks go with the process: afterwards QEMU opens the volume.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/serve-helpers.sh"
require qemu-system-x86_64 qemu-img qemu-io nbdinfo

random_file "$T/disk.img" 16
random_file "$T/src.img" 16
before=$(sha "$T/disk.img")

# A VM with the disk attached, as libvirt starts one: the device takes
# "write" and shares it with nobody.  -S keeps its CPU stopped (TCG).
qemu-system-x86_64 -machine q35,accel=tcg -S -nodefaults -display none \
    -blockdev "driver=file,filename=$T/disk.img,node-name=f0" \
    -blockdev driver=raw,file=f0,node-name=d0 \
    -device virtio-blk-pci,drive=d0,id=vd0 \
    -qmp "unix:$T/vm.qmp,server=on,wait=off" >"$T/vm.log" 2>&1 &
vm_pid=$!
track_pid $vm_pid
wait_for 20 test -S "$T/vm.qmp" || fail "the VM did not start"
qmp "$T/vm.qmp" query-status >/dev/null

expect_refused() { # WHAT EXIT PATTERN CMD... : CMD exits EXIT saying PATTERN
    local what=$1 want=$2 pattern=$3 rc=0; shift 3
    "$@" >"$T/out" 2>&1 || rc=$?
    sed 's/^/    /' "$T/out"
    [ $rc = "$want" ] || fail "$what: exit $rc, expected $want"
    grep -q -- "$pattern" "$T/out" || fail "$what: no '$pattern' in its message"
}

log "qemu-img refuses to write the VM's disk (the fixture holds QEMU's lock)"
expect_refused "qemu-img convert -n" 1 'Failed to get "write" lock' \
    qemu-img convert -n -f raw -O raw "$T/src.img" "$T/disk.img"

log "volmig copy onto the VM's disk is refused, naming QEMU"
expect_refused "copy onto a live disk" 1 "Failed to get \"write\" lock: qemu-system-x86 (pid $vm_pid)" \
    "$VOLMIG" copy "$T/src.img" "$T/disk.img"
expect_refused "copy onto a live disk, buffered" 1 'Failed to get "write" lock' \
    "$VOLMIG" copy --no-direct "$T/src.img" "$T/disk.img"

log "volmig serve of the VM's disk is refused, and listens nowhere"
port=$(free_port)
expect_refused "serve a live disk" 1 "Failed to get \"write\" lock: qemu-system-x86 (pid $vm_pid)" \
    timeout 20 "$VOLMIG" serve --target "$T/disk.img" --listen 127.0.0.1:$port
ss -Htln "sport = :$port" | grep -q . && fail "volmig serve listens on a refused target"
assert_eq "$(sha "$T/disk.img")" "$before" "the VM's disk after the refusals"

log "reading the VM's disk: refused as qemu-img convert refuses it, allowed with --force-share"
expect_refused "qemu-img convert reading" 1 'Failed to get shared "write" lock' \
    qemu-img convert -f raw -O raw "$T/disk.img" "$T/qi.img"
expect_refused "copy from a live disk" 1 "Failed to get shared \"write\" lock: qemu-system-x86 (pid $vm_pid)" \
    "$VOLMIG" copy "$T/disk.img" "$T/out.img"
[ -e "$T/out.img" ] && fail "a refused copy created its target"
"$VOLMIG" copy --force-share "$T/disk.img" "$T/out.img" >"$T/out" 2>&1 \
    || { cat "$T/out"; fail "copy --force-share of a live disk failed"; }
same_bytes "$T/disk.img" "$T/out.img"
expect_refused "serve --readonly a live disk" 1 'Failed to get shared "write" lock' \
    timeout 20 "$VOLMIG" serve --readonly --target "$T/disk.img" --listen 127.0.0.1:$port
expect_refused "serve --force-share without --readonly" 2 '--force-share is for --readonly' \
    "$VOLMIG" serve --force-share --target "$T/disk.img" --listen 127.0.0.1:$port
serve ro --readonly -U --target "$T/disk.img" --listen "unix:$T/ro.sock"
assert_eq "$(nbdinfo --size "nbd+unix:///?socket=$T/ro.sock")" $((16 << 20)) "the shared export's size"
kill "$ro_pid"; wait "$ro_pid" 2>/dev/null || true
assert_eq "$(sha "$T/disk.img")" "$before" "the VM's disk at the end"
kill "$vm_pid"; wait "$vm_pid" 2>/dev/null || true

# A guest-less QEMU to try using volumes while volmig holds them.  A node
# takes its permissions only when something uses it, so each try adds the
# node and exports it over NBD (writable: "write" as a guest would take it).
start_qemu q
qmp "$T/q.qmp2" nbd-server-start "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"$T/qnbd.sock\"}}}" >/dev/null
try_open() { # FILE WRITABLE : QEMU opens FILE and exports it
    local rc=0 ro=true
    [ "$2" = true ] && ro=false
    qmp "$T/q.qmp2" blockdev-add \
        "{\"driver\":\"raw\",\"node-name\":\"try\",\"read-only\":$ro,\"file\":{\"driver\":\"file\",\"filename\":\"$1\"}}" \
        >"$T/open.out" 2>&1 || return 1
    qmp "$T/q.qmp2" block-export-add \
        "{\"type\":\"nbd\",\"id\":\"try\",\"node-name\":\"try\",\"writable\":$2}" \
        >"$T/open.out" 2>&1 || rc=1
    [ $rc = 0 ] && qmp "$T/q.qmp2" block-export-del '{"id":"try"}' >/dev/null
    [ $rc = 0 ] && wait_for 10 sh -c "! python3 '$QMPPY' '$T/q.qmp2' query-block-exports | grep -q try"
    qmp "$T/q.qmp2" blockdev-del '{"node-name":"try"}' >/dev/null
    return $rc
}

log "while volmig serves a target, QEMU cannot open it, nor can a second server"
random_file "$T/tgt.img" 16
serve w --target "$T/tgt.img" --listen "unix:$T/w.sock"
try_open "$T/tgt.img" true && fail "QEMU opened a target volmig serves"
grep -q 'lock' "$T/open.out" || { cat "$T/open.out"; fail "QEMU's refusal is not a lock error"; }
sed 's/^/    /' "$T/open.out"
expect_refused "qemu-io writing a served target" 1 'Failed to get "write" lock' \
    qemu-io -f raw -c 'write -P 9 0 4k' "$T/tgt.img"
expect_refused "a second serve of the target" 1 "Failed to get \"write\" lock: volmig (pid $w_pid)" \
    timeout 20 "$VOLMIG" serve --target "$T/tgt.img" --listen "unix:$T/w2.sock"
kill "$w_pid"; wait "$w_pid" 2>/dev/null || true
try_open "$T/tgt.img" true || { cat "$T/open.out"; fail "the lock outlived volmig serve"; }

log "two read-only exports of one volume share it"
serve r1 --readonly --target "$T/tgt.img" --listen "unix:$T/r1.sock"
serve r2 --readonly --target "$T/tgt.img" --listen "unix:$T/r2.sock"
try_open "$T/tgt.img" false || { cat "$T/open.out"; fail "QEMU could not read a volume volmig only reads"; }
try_open "$T/tgt.img" true && fail "QEMU opened for writing a volume volmig exports read-only"
kill "$r1_pid" "$r2_pid"; wait "$r1_pid" "$r2_pid" 2>/dev/null || true

log "during a copy, QEMU can open neither its target nor its source for writing"
random_file "$T/big.img" 24
"$VOLMIG" copy --no-direct --speed 4M "$T/big.img" "$T/copy.img" >"$T/copy.log" 2>&1 &
copy_pid=$!
track_pid $copy_pid
wait_for 20 test -s "$T/copy.img" || fail "the copy did not start"
kill -0 $copy_pid 2>/dev/null || { cat "$T/copy.log"; fail "the copy ended too early for the test"; }
try_open "$T/copy.img" true && fail "QEMU opened the target of a running copy"
try_open "$T/big.img" true && fail "QEMU opened for writing the source of a running copy"
try_open "$T/big.img" false || { cat "$T/open.out"; fail "QEMU could not read the source of a copy"; }
kill -0 $copy_pid 2>/dev/null || fail "the copy ended before all probes ran (too fast for the test)"
wait $copy_pid || { cat "$T/copy.log"; fail "the copy failed"; }
same_bytes "$T/big.img" "$T/copy.img"
try_open "$T/copy.img" true || { cat "$T/open.out"; fail "the copy's lock outlived it"; }
log "image locks: all checks passed"
