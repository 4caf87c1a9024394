#!/usr/bin/env bash
# make bench: the benchmarks under bench/, one after the other.
#   serve    issue 2: QEMU's mirror into volmig serve and the peers
#   migrate  issue 4: volmig migrate against the libvirt path
#   copy     issue 6: volmig copy against nbdcopy and qemu-img convert
#   tls      issue 7: the throughput cost of TLS in volmig serve
#   bitmap   issue 6: migrate --mode bitmap against --mode mirror
#   latency  issue 14: the guest's write latency during each kind of copy,
#            and whether the copy converges
#   libvirt  issue 12: migrate:URI under libvirt, libvirt's storage migration
#            against volmig's data path
#   guest    issue 14: the latency-aware copy under a real guest (a boot
#            sector writing through virtio-blk), its own device histogram
# BENCH_ONLY="serve" runs a subset.  Every other knob is an environment
# variable listed at the top of each script, e.g.
#   make bench BENCH_ONLY=serve BENCH_SIZE=256M BENCH_REPEAT=1
# A benchmark that fails does not stop the next; the exit status is that of
# the last one that failed.
set -uo pipefail
cd "$(dirname "$0")"
rc=0
for b in ${BENCH_ONLY:-serve migrate copy tls bitmap latency libvirt guest}; do
    [ -x "./$b.sh" ] || [ -f "./$b.sh" ] || { echo "bench: no bench/$b.sh" >&2; rc=2; continue; }
    echo "## bench/$b.sh"
    bash "./$b.sh" || { r=$?; echo "bench: bench/$b.sh failed (exit $r)" >&2; rc=$r; }
done
exit $rc
