#!/usr/bin/env python3
"""The stand-in guest's write latency in a time window (bench/lib.sh).

    guestlat.py LOG START_MS END_MS    prints {"n", "p50", "p99", "mbs"}

LOG is fio's per-write completion latency log (--write_lat_log with
--log_avg_msec=0 --log_unix_epoch=1): "time_ms, latency_ns, dir, bytes,
...", one line per write, time being its completion.  p50/p99 are in
milliseconds (nearest rank), mbs the MB/s the writes in the window make.
"""
import json, os, sys

def window(path, start_ms, end_ms):
    """What the writes completed within [start_ms, end_ms] saw: a dict
    with n, and p50, p99 (ms) and mbs when n > 0."""
    lat, nbytes = [], 0
    if os.path.exists(path):
        for line in open(path):
            f = line.split(",")
            if len(f) >= 4 and start_ms <= int(f[0]) <= end_ms:
                lat.append(int(f[1]) / 1e6)
                nbytes += int(f[3])
    lat.sort()
    r = {"n": len(lat)}
    if lat:
        r["p50"] = lat[len(lat) // 2]
        r["p99"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        r["mbs"] = nbytes / 1e6 / max((end_ms - start_ms) / 1000.0, 1e-3)
    return r

if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    print(json.dumps(window(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
