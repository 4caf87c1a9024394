#!/usr/bin/env bash
# volmig copy to and from NBD servers: volmig serve (TCP), nbdkit's file
# plugin and qemu-nbd (unix sockets), with dense, sparse and unaligned
# (10 MiB + 1234 bytes) volumes, and NBD to NBD.  Every copy is compared
# byte for byte and the source's checksum must not change.
. "$(dirname "$0")/../lib/common.sh"
require nbdkit qemu-nbd cmp md5sum truncate
scratch D /var/tmp
trap 'cleanup; rm -rf "$D"' EXIT

odd=$(( 10 * 1024 * 1024 + 1234 ))
mk_sparse() { # PATH SIZE
    truncate -s "$2" "$1"
    dd if=/dev/urandom of="$1" bs=64k count=1 conv=notrunc status=none
    dd if=/dev/urandom of="$1" bs=1M count=2 seek=3 conv=notrunc status=none
    printf 'the end' | dd of="$1" bs=1 seek=$(( $2 - 7 )) conv=notrunc status=none
}
mk_sparse "$D/sparse" $odd
mk_sparse "$D/sparse16" $(( 16 * 1024 * 1024 ))
random_file "$D/dense" 16

n=0
# serve KIND FILE [ro]: an NBD server exporting FILE, its URI in $uri (not
# a command substitution: the server must be tracked by this shell).  A
# source is exported read-only: the servers take QEMU's image locks, and a
# writable export would keep the later copies from reading the file.
serve() {
    local kind=$1 file=$2 sock ro=()
    n=$((n + 1))
    sock="$T/s$n.sock"
    case $kind in
        volmig)
            # --size: without it volmig serve keeps O_DIRECT (minimum block
            # 512) on a file of unaligned size, and its tail is unreachable.
            local port; port=$(free_port)
            [ "${3:-}" = ro ] && ro=(--readonly)
            start_serve "v$n" --target "$file" --listen 127.0.0.1:$port --size "$(stat -c %s "$file")" \
                "${ro[@]}"
            uri="nbd://127.0.0.1:$port/" ;;
        nbdkit)
            [ "${3:-}" = ro ] && ro=(-r)
            nbdkit -f "${ro[@]}" -U "$sock" file "$file" >"$T/k$n.log" 2>&1 &
            track_pid $!
            wait_for 10 test -S "$sock" || fail "nbdkit did not start"
            uri="nbd+unix:///?socket=$sock" ;;
        qemu-nbd)
            [ "${3:-}" = ro ] && ro=(-r)
            qemu-nbd -t -e 8 "${ro[@]}" -f raw --cache=none -k "$sock" "$file" >"$T/q$n.log" 2>&1 &
            track_pid $!
            wait_for 10 test -S "$sock" || fail "qemu-nbd did not start"
            uri="nbd+unix:///?socket=$sock" ;;
    esac
}

copy_ok() { # NAME SRC-URI DST-URI SRC-FILE DST-FILE
    local before
    before=$(md5sum <"$4")
    timeout 120 "$VOLMIG" copy "$2" "$3" >"$T/$1.out" 2>&1 \
        || { cat "$T/$1.out"; fail "$1: copy failed"; }
    assert_eq "$(md5sum <"$4")" "$before" "$1: source checksum"
    cmp -n "$(stat -c %s "$4")" "$4" "$5" || fail "$1: target differs"
    log "$1: $(head -n 1 "$T/$1.out" | sed 's/^ *//')"
    log "$1: $(tail -n 1 "$T/$1.out" | sed 's/^ *//')"
}

for srv in volmig nbdkit qemu-nbd; do
    for v in sparse sparse16 dense; do
        size=$(stat -c %s "$D/$v")
        # file -> NBD: a target full of garbage, so holes must be zeroed
        head -c "$size" /dev/urandom >"$D/$srv-$v.t"
        serve $srv "$D/$srv-$v.t"
        copy_ok "$v-to-$srv" "$D/$v" "$uri" "$D/$v" "$D/$srv-$v.t"
        # NBD -> file (fresh)
        serve $srv "$D/$v" ro; src=$uri
        copy_ok "$srv-$v-to-file" "$src" "$D/$srv-$v.f" "$D/$v" "$D/$srv-$v.f"
        # NBD -> NBD.  qemu-nbd exports a raw file of unaligned size
        # rounded up to 512 bytes, so its copies need that much room.
        [ $srv = qemu-nbd ] && size=$(( (size + 511) / 512 * 512 ))
        head -c "$size" /dev/urandom >"$D/$srv-$v.n"
        serve volmig "$D/$srv-$v.n"
        copy_ok "$srv-$v-to-volmig" "$src" "$uri" "$D/$v" "$D/$srv-$v.n"
    done
done
# Several connections were used where the server offers multi-conn.
grep -q "connections (multi-conn)" "$T"/*.out || fail "no copy used multi-conn"

# An NBD target smaller than the source is refused, nothing written.
head -c $(( 8 * 1024 * 1024 )) /dev/urandom >"$D/small"
before=$(md5sum <"$D/small")
serve nbdkit "$D/small"
rc=0; "$VOLMIG" copy "$D/dense" "$uri" >"$T/small.out" 2>&1 || rc=$?
assert_eq $rc 1 "small NBD target"
grep -q "smaller.*8388608 < 16777216" "$T/small.out" || fail "$(cat "$T/small.out")"
assert_eq "$(md5sum <"$D/small")" "$before" "small NBD target was written"
# A read-only export is no target.
port=$(free_port)
start_serve ro --target "$D/dense" --listen 127.0.0.1:$port --readonly
rc=0; "$VOLMIG" copy "$D/sparse16" "nbd://127.0.0.1:$port/" >"$T/ro.out" 2>&1 || rc=$?
assert_eq $rc 1 "read-only target"
grep -q "read-only" "$T/ro.out" || fail "$(cat "$T/ro.out")"
# Nobody listening: a clear failure, not a hang.
rc=0; timeout 60 "$VOLMIG" copy "nbd://127.0.0.1:$(free_port)/" "$D/x" >"$T/refused.out" 2>&1 || rc=$?
assert_eq $rc 1 "connection refused"
grep -qi "refused" "$T/refused.out" || fail "$(cat "$T/refused.out")"
log ok
