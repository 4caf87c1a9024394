#!/usr/bin/env bash
# volmig copy reads a local source from the page cache where the cache
# holds it, and with O_DIRECT elsewhere, without filling the cache:
#  - warm source (read once just before): next to nothing is read from the
#    device (the process's block input, getrusage's ru_inblock);
#  - half warm: about the cold half is read from the device;
#  - cold source (caches dropped): the copy reads it all from the device and
#    leaves the cache as empty as it found it (fincore);
# and every copy is byte-equal.  A copy that read with O_DIRECT only would
# read the whole volume from the device when warm; one that read buffered
# only would leave it in the cache when cold.
. "$(dirname "$0")/../lib/common.sh"
require fincore python3
[ -w /proc/sys/vm/drop_caches ] || skip "dropping the page cache needs root"

MIB=64
# Not in /tmp, which may be tmpfs: the source must live on a device.
scratch D /var/tmp
trap 'rm -rf "$D"; cleanup' EXIT
random_file "$D/src" $MIB
sync

# inblock TARGET : copies src to TARGET, prints the MiB the copy read from
# devices (block input of the process, its io_uring work included)
inblock() {
    rm -f "$1"
    python3 - "$VOLMIG" "$D/src" "$1" "$T/copy.out" <<'PY'
import resource, subprocess, sys
out = open(sys.argv[4], "w")
rc = subprocess.call([sys.argv[1], "copy", sys.argv[2], sys.argv[3]], stdout=out, stderr=out)
if rc:
    sys.exit(rc)
print(int(resource.getrusage(resource.RUSAGE_CHILDREN).ru_inblock * 512 / 1048576))
PY
}
cached_mib() { fincore -b -n -o RES "$D/src" | awk '{print int($1 / 1048576)}'; }
# Dropping the caches also drops volmig's own binary and libraries, and
# loading them again counts as the copy's block input (about 20 MiB): so
# they are loaded once right after each drop, before anything is measured.
drop() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
    "$VOLMIG" --help >/dev/null 2>&1 || true
}

# Another process dropping the caches between the warming and the copy
# (a benchmark on a shared machine) would make a warm source cold: each
# warm case gets three tries, and fails only if all three read too much.
warm_case() { # NAME WARM-CMD LOW HIGH
    local name=$1 warm=$2 low=$3 high=$4 try
    for try in 1 2 3; do
        drop
        eval "$warm"
        mib=$(inblock "$D/$name") || { cat "$T/copy.out"; fail "the $name copy failed"; }
        log "$name copy (try $try) read $mib MiB of $MIB from the device"
        same_bytes "$D/src" "$D/$name"
        [ "$mib" -ge "$low" ] && [ "$mib" -le "$high" ] && return 0
    done
    return 1
}

log "warm: the source was just read"
warm_case warm 'cat "$D/src" >/dev/null' 0 $((MIB / 8)) \
    || fail "a warm source was read from the device ($mib MiB of $MIB)"
head -n 1 "$T/copy.out"
grep -q "page cache" "$T/copy.out" || fail "the copy does not say it reads from the page cache"

log "half warm: the first half was just read"
# dd's readahead caches a little more than the half it read.
warm_case half "dd if='$D/src' of=/dev/null bs=1M count=$((MIB / 2)) status=none" \
    $((MIB / 4)) $((MIB / 2 + MIB / 8)) \
    || fail "a half-warm source: $mib MiB read from the device, expected a little under $((MIB / 2))"

log "cold: caches dropped"
drop
mib=$(inblock "$D/cold") || { cat "$T/copy.out"; fail "the cold copy failed"; }
cached=$(cached_mib)
log "cold copy read $mib MiB from the device and left $cached MiB of the source in the cache"
[ "$mib" -ge $((MIB - MIB / 8)) ] || fail "a cold copy read only $mib MiB of $MIB from the device"
[ "$cached" -le $((MIB / 8)) ] || fail "a cold copy filled the page cache with $cached MiB of the source"
same_bytes "$D/src" "$D/cold"
log "ok"
