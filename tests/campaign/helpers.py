#!/usr/bin/env python3
"""Helpers of the randomized fault campaign and the load tests (not part of
the product).

    helpers.py writer QMP EVENTS LOG SEED RATE SECONDS NODE:SIZE...
        The stand-in guest: HMP qemu-io writes of 4-256 KiB at random
        512-aligned offsets on the nodes, round robin, over one QMP
        connection, for up to SECONDS; RATE light (a write every 50 ms) or
        heavy (back to back).  Stops at once when EVENTS (volmig's JSON
        lines) holds "ready".  Each completed write is logged to LOG as
        "NODE OFFSET LEN PATTERN FLAG"; FLAG "late" marks a write after
        which "ready" was found, i.e. one that may have raced the switchover.
    helpers.py probe QMP
        One line per thing a migration must not leave in QEMU: jobs, block
        jobs, volmig-* nodes, exports, dirty bitmaps and objects.  Then the
        line "status STATUS".
    helpers.py compare A B SIZE [OFF:LEN ...]
        Compares the first SIZE bytes of A and B, skipping the given ranges;
        prints the first differing offset and exits 1 if they differ.
    helpers.py sparse-check FILE SIZE OFF:LEN...
        Every byte of FILE outside the given ranges reads as zero, found
        through SEEK_DATA/SEEK_HOLE (the holes are not read).  Prints the
        bytes allocated outside the ranges that had to be read.
"""
import json, os, random, socket, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from qmp import QMP  # noqa: E402


def has_ready(path):
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        if json.loads(line).get("event") == "ready":
                            return True
                    except ValueError:
                        pass   # a line being written
    except FileNotFoundError:
        pass
    return False


def writer(qmp, events, log, seed, rate, seconds, vols):
    rnd = random.Random(int(seed))
    vols = [(v.split(":")[0], int(v.split(":")[1])) for v in vols]
    q = QMP(qmp)
    end = time.time() + float(seconds)
    n = 0
    with open(log, "w") as out:
        while time.time() < end and not has_ready(events):
            node, size = vols[n % len(vols)]
            ln = rnd.randint(8, 512) * 512
            ln = min(ln, size // 512 * 512)
            off = rnd.randrange(0, (size - ln) // 512 + 1) * 512
            pat = rnd.randint(1, 255)
            r = q.cmd("human-monitor-command",
                      {"command-line": 'qemu-io %s "write -P %d %d %d"' % (node, pat, off, ln)})
            if "error" in r or any(w in r.get("return", "").lower() for w in ("error", "fail")):
                print("write on %s failed: %s" % (node, r), file=sys.stderr)
                return 1
            late = has_ready(events)
            out.write("%s %d %d %d %s\n" % (node, off, ln, pat, "late" if late else "ok"))
            out.flush()
            n += 1
            if late:
                break
            if rate == "light":
                time.sleep(0.05)
    return 0


def probe(qmp):
    q = QMP(qmp)
    def ret(c, a=None):
        r = q.cmd(c, a)
        return r.get("return", [])
    for j in ret("query-jobs"):
        print("job %s %s" % (j["id"], j["status"]))
    for j in ret("query-block-jobs"):
        print("block-job %s" % j["device"])
    for n in ret("query-named-block-nodes", {"flat": True}):
        if n["node-name"].startswith("volmig-"):
            print("node %s" % n["node-name"])
        for b in n.get("dirty-bitmaps", []):
            if b.get("name", "").startswith("volmig"):
                print("bitmap %s on %s" % (b["name"], n["node-name"]))
    for e in ret("query-block-exports"):
        if e["id"].startswith("volmig") or e.get("node-name", "").startswith("volmig-"):
            print("export %s" % e["id"])
    for o in ret("qom-list", {"path": "/objects"}):
        if o["name"].startswith("volmig"):
            print("object %s" % o["name"])
    print("status %s" % ret("query-status")["status"])
    return 0


def compare(a, b, size, skips):
    size = int(size)
    skips = sorted((int(s.split(":")[0]), int(s.split(":")[1])) for s in skips)
    chunk = 1 << 20
    with open(a, "rb") as fa, open(b, "rb") as fb:
        pos = 0
        while pos < size:
            n = min(chunk, size - pos)
            x, y = fa.read(n), fb.read(n)
            if x != y:
                if len(x) != len(y):
                    print("short read at %d (%d vs %d bytes)" % (pos, len(x), len(y)))
                    return 1
                for i in range(n):
                    if x[i] != y[i] and not any(o <= pos + i < o + ln for o, ln in skips):
                        print("first difference at offset %d" % (pos + i))
                        return 1
            pos += n
    return 0


def sparse_check(path, size, ranges):
    size = int(size)
    ranges = sorted((int(r.split(":")[0]), int(r.split(":")[1])) for r in ranges)
    fd = os.open(path, os.O_RDONLY)
    pos, outside = 0, 0
    try:
        while pos < size:
            try:
                d = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break              # no data after pos
            if d >= size:
                break
            h = min(os.lseek(fd, d, os.SEEK_HOLE), size)
            # data extent [d, h): every byte outside the ranges must be zero
            p = d
            while p < h:
                n = min(1 << 20, h - p)
                buf = os.pread(fd, n, p)
                for i in range(0, n, 4096):
                    blk = buf[i:i + 4096]
                    o = p + i
                    if any(ro <= o and o + len(blk) <= ro + rl for ro, rl in ranges):
                        continue
                    outside += len(blk)
                    if blk.count(0) != len(blk):
                        for k, c in enumerate(blk):
                            if c and not any(ro <= o + k < ro + rl for ro, rl in ranges):
                                print("non-zero byte at offset %d outside the data" % (o + k))
                                return 1
                p += n
            pos = h
    finally:
        os.close(fd)
    print("allocated outside the data: %d bytes (all zero)" % outside)
    return 0


def main(a):
    if len(a) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if a[1] == "writer":
        return writer(a[2], a[3], a[4], a[5], a[6], a[7], a[8:])
    if a[1] == "probe":
        return probe(a[2])
    if a[1] == "compare":
        return compare(a[2], a[3], a[4], a[5:])
    if a[1] == "sparse-check":
        return sparse_check(a[2], a[3], a[4:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
