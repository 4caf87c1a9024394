#!/usr/bin/env python3
"""A stand-in guest for migration tests and the demo (not part of the product).

    standin_guest.py QMP-SOCKET NODE VOLUME-MIB [MAX-WRITES]

Writes 1 MiB of a changing pattern at random offsets into NODE through HMP
qemu-io, on one persistent monitor connection, until a mirror of the
migration is READY (BLOCK_JOB_READY, or a volmig job no longer running).
A real guest is paused at switchover; a stand-in must stop by itself before
the mirrors finish, so it checks right before every write.  Prints the
number of writes made.
"""
import json, random, select, sys, time
sys.path.insert(0, __import__("os").path.dirname(__file__))
from qmp import QMP

def main():
    sock, node, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
    limit = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    q = QMP(sock)
    n = 0
    started = False
    deadline = time.time() + 120
    while n < limit and time.time() < deadline:
        # Drain whatever events arrived, without waiting.
        while select.select([q.s], [], [], 0)[0]:
            q.events.append(q.read())
        if any(e["event"] == "BLOCK_JOB_READY" for e in q.events):
            break
        jobs = [j for j in q.cmd("query-jobs")["return"] if j["id"].startswith("volmig-")]
        if jobs:
            started = True
            if jobs[0]["status"] not in ("created", "running"):
                break
        elif started:
            break
        off = random.randrange(0, max(mib - 1, 1))
        r = q.cmd("human-monitor-command",
                  {"command-line": 'qemu-io %s "write -P %d %dM 1M"' % (node, n % 250 + 1, off)})
        if "error" in r or "rror" in r.get("return", ""):
            print("write failed: %s" % r, file=sys.stderr)
            return 1
        n += 1
    print(n)
    return 0

if __name__ == "__main__":
    sys.exit(main())
