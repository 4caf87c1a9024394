#!/usr/bin/env bash
# make demo: the destination half of a live volume migration, end to end.
# A running QEMU has a 256 MiB disk full of data; volmig serve exports an
# empty volume over TCP; QEMU mirrors its disk into it (what KubeVirt's
# volume migration does), we watch the copy, stop it consistently and
# compare the two volumes byte for byte.
# (To be replaced by a `volmig migrate` demo once that exists.)
. "$(dirname "$0")/common.sh"
. "$TOP/tests/lib/serve-helpers.sh"
require qemu-system-x86_64 python3 cmp

MIB=${DEMO_MIB:-256}
say() { printf '%s\n' "$*"; }

say "== volmig demo: mirror a running QEMU disk into volmig serve =="
say "-- source: a $MIB MiB disk of random data, attached to QEMU as node disk0"
random_file "$T/source.img" "$MIB"
truncate -s "${MIB}M" "$T/dest.img"
start_qemu vm "{\"driver\":\"raw\",\"node-name\":\"disk0\",\"file\":{\"driver\":\"file\",\"filename\":\"$T/source.img\"}}"

port=$(free_port)
say "-- destination: volmig serve --target dest.img --listen 127.0.0.1:$port"
serve dest --target "$T/dest.img" --listen "127.0.0.1:$port"
sed 's/^/   | /' "$T/dest.log"

say "-- QEMU: blockdev-add an NBD node for the destination, blockdev-mirror into it"
m="$T/vm.qmp"
qmp "$m" blockdev-add "{\"driver\":\"nbd\",\"node-name\":\"dest\",\"server\":{\"type\":\"inet\",\"host\":\"127.0.0.1\",\"port\":\"$port\"},\"export\":\"\"}" >/dev/null \
    || fail "blockdev-add failed"
start=$(date +%s.%N)
qmp "$m" blockdev-mirror '{"job-id":"mirror0","device":"disk0","target":"dest","sync":"full"}' >/dev/null \
    || fail "blockdev-mirror failed"

# Progress: the job's offset and len from query-block-jobs, until READY.
while :; do
    line=$(qmp "$m" query-block-jobs | python3 -c '
import json, sys
jobs = [j for j in json.load(sys.stdin) if j["device"] == "mirror0"]
if not jobs: print("gone"); sys.exit()
j = jobs[0]
print(j["ready"], j["offset"], j["len"])')
    [ "$line" = gone ] && fail "the mirror job disappeared before READY"
    read -r ready off len <<<"$line"
    pct=$(( len ? off * 100 / len : 0 ))
    printf '   copied %4d / %d MiB  %3d%%\n' $((off >> 20)) $((len >> 20)) $pct
    [ "$ready" = True ] && break
    sleep 0.5
done
end=$(date +%s.%N)
say "-- READY: source and destination in sync; block-job-cancel stops the mirror consistently"
qmp "$m" block-job-cancel '{"device":"mirror0"}' >/dev/null || fail "block-job-cancel failed"
wait_for 60 job_gone "$m" mirror0 || fail "the mirror did not stop"
qmp "$m" blockdev-del '{"node-name":"dest"}' >/dev/null || fail "blockdev-del failed"

say "-- verify: cmp source.img dest.img"
cmp "$T/source.img" "$T/dest.img" || fail "the destination differs from the source"
secs=$(python3 -c "print('%.2f' % ($end - $start))")
mbs=$(python3 -c "print('%.0f' % ($MIB * 1048576 / 1e6 / max($end - $start, 1e-3)))")
say
say "   size      $MIB MiB"
say "   copy      $secs s to READY"
say "   rate      $mbs MB/s"
say "   result    identical, byte for byte"
