#!/usr/bin/env bash
# make demo: a live volume migration between two hosts, end to end.
#
#   source host (a network namespace)        destination host (another one)
#   QEMU running, disk0 = source.img          volmig serve  -> dest.img
#   a stand-in guest writing into disk0       QEMU -incoming, disk0 = dest.img
#   volmig migrate --switchover migrate:...   ...runs on dest.img afterwards
#
# At the end the destination volume must equal the source volume as of the
# switchover, byte for byte.
. "$(dirname "$0")/common.sh"
. "$TOP/tests/lib/netns.sh"
require qemu-system-x86_64 python3 cmp ip

MIB=${DEMO_MIB:-1024}
say() { printf '%s\n' "$*"; }

say "== volmig demo: move a running VM's disk to another host's volume =="
if netns_up; then
    say "-- two hosts: $SRC_NS ($SRC_IP) and $DST_NS ($DST_IP), joined by a veth pair"
else
    SRC_NS= DST_NS= SRC_IP=127.0.0.1 DST_IP=127.0.0.1
    say "-- network namespaces are not allowed here: both 'hosts' run on loopback"
fi

say "-- source host: QEMU with a $MIB MiB disk of random data (node disk0)"
random_file "$T/source.img" "$MIB"
bg_src qemu-system-x86_64 -machine none -nodefaults -display none \
    -qmp "unix:$T/src.qmp,server=on,wait=off" -qmp "unix:$T/src.qmp2,server=on,wait=off" \
    -blockdev "{\"driver\":\"file\",\"node-name\":\"disk0-file\",\"filename\":\"$T/source.img\"}" \
    -blockdev '{"driver":"raw","node-name":"disk0","file":"disk0-file"}' \
    >"$T/src.qemu.log" 2>&1
wait_for 20 test -S "$T/src.qmp2" || fail "source QEMU did not start"

say "-- destination host: an empty volume, volmig serve, and QEMU waiting for the VM"
truncate -s "$((MIB + 64))M" "$T/dest.img"      # a bigger volume than the source
bg_dst "$VOLMIG" serve --target "$T/dest.img" --listen "$DST_IP:10809" >"$T/serve.log" 2>&1
wait_for 10 grep -q "listening on" "$T/serve.log" || { cat "$T/serve.log"; fail "volmig serve did not start"; }
sed 's/^/   | /' "$T/serve.log"
bg_dst qemu-system-x86_64 -machine none -nodefaults -display none \
    -qmp "unix:$T/dst.qmp,server=on,wait=off" \
    -blockdev "{\"driver\":\"file\",\"node-name\":\"disk0-file\",\"filename\":\"$T/dest.img\"}" \
    -blockdev '{"driver":"raw","node-name":"disk0","file":"disk0-file"}' \
    -incoming "tcp:$DST_IP:4444" >"$T/dst.qemu.log" 2>&1
wait_for 20 test -S "$T/dst.qmp" || fail "destination QEMU did not start"

# The stand-in guest: 1 MiB writes at random offsets through QEMU's own
# block layer until the mirror is READY (a real guest is paused at the
# switchover; a stand-in has to stop by itself).
python3 "$TOP/tests/lib/standin_guest.py" "$T/src.qmp2" disk0 "$MIB" >"$T/guest.writes" &
track_pid $!

say "-- volmig migrate --volume disk0=nbd://$DST_IP:10809/ --switchover migrate:tcp:$DST_IP:4444"
start=$(date +%s.%N)
in_src "$VOLMIG" migrate --qmp "unix:$T/src.qmp" --volume "disk0=nbd://$DST_IP:10809/" \
    --switchover "migrate:tcp:$DST_IP:4444" --retries 2 --backoff 2 | sed 's/^/   /'
[ "${PIPESTATUS[0]}" = 0 ] || fail "volmig migrate failed"
end=$(date +%s.%N)
wait_for 30 test -s "$T/guest.writes" || true

say "-- after the switchover"
dst_status=$(qmp "$T/dst.qmp" query-status | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
src_status=$(qmp "$T/src.qmp2" query-status | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
say "   destination QEMU: $dst_status    source QEMU: $src_status"
[ "$dst_status" = running ] || fail "the destination QEMU is not running"
cmp -n "$((MIB << 20))" "$T/source.img" "$T/dest.img" \
    || fail "the destination volume differs from the source"
say
say "   volume       $MIB MiB, $(cat "$T/guest.writes" 2>/dev/null || echo '?') guest writes of 1 MiB during the copy"
say "   total        $(python3 -c "print('%.2f' % ($end - $start))") s (volmig migrate, start to finish)"
say "   verified     destination == source as of the switchover, byte for byte"
