#!/usr/bin/env python3
"""A minimal QMP client for test and bench scripts (not part of the product).

    qmp.py SOCKET CMD [ARGS-JSON] [CMD [ARGS-JSON]] ...
        Runs each command in order, prints each "return" as one JSON line,
        exits 1 on the first error reply (printed to stderr).
    qmp.py SOCKET --wait EVENT [--timeout S] [--match KEY=VALUE] ...
        Waits for an event (optionally with data[KEY] == VALUE), prints it.
    qmp.py SOCKET --wait-job JOB STATUS [--timeout S]
        Polls query-block-jobs/query-jobs until JOB reaches STATUS
        ("ready" or "concluded"/"gone").

A QMP socket serves one client at a time, so every call connects, works,
and disconnects.
"""
import json, socket, sys, time

class QMP:
    def __init__(self, path, timeout=30):
        deadline = time.time() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        self.s.settimeout(timeout)
        self.f = self.s.makefile("rwb")
        self.events = []
        json.loads(self.f.readline())  # greeting
        self.cmd("qmp_capabilities")

    def read(self):
        line = self.f.readline()
        if not line:
            raise EOFError("QMP connection closed")
        return json.loads(line)

    def cmd(self, name, args=None):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg).encode() + b"\n")
        self.f.flush()
        while True:
            r = self.read()
            if "event" in r:
                self.events.append(r)
                continue
            return r

    def wait_event(self, name, timeout, match):
        deadline = time.time() + timeout
        while True:
            for e in self.events:
                if e["event"] == name and all(
                        str(e.get("data", {}).get(k)) == v for k, v in match):
                    return e
            self.events.clear()
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no %s event within %ss" % (name, timeout))
            self.s.settimeout(left)
            self.events.append(self.read())


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    q = QMP(argv[1])
    args = argv[2:]
    timeout = 120.0
    if "--timeout" in args:
        i = args.index("--timeout")
        timeout = float(args[i + 1])
        del args[i:i + 2]
    if args[0] == "--wait":
        match = []
        while "--match" in args:
            i = args.index("--match")
            k, v = args[i + 1].split("=", 1)
            match.append((k, v))
            del args[i:i + 2]
        print(json.dumps(q.wait_event(args[1], timeout, match)))
        return 0
    if args[0] == "--wait-job":
        job, want = args[1], args[2]
        deadline = time.time() + timeout
        while time.time() < deadline:
            jobs = q.cmd("query-jobs")["return"]
            st = next((j["status"] for j in jobs if j["id"] == job), "gone")
            if st == want or (want == "gone" and st == "gone"):
                print(st)
                return 0
            if st in ("concluded", "null", "gone") and want != st:
                err = next((j.get("error") for j in jobs if j["id"] == job), None)
                print("job %s is %s (error: %s)" % (job, st, err), file=sys.stderr)
                return 1
            time.sleep(0.05)
        print("job %s not %s within %ss" % (job, want, timeout), file=sys.stderr)
        return 1
    while args:
        name = args.pop(0)
        cargs = None
        if args and args[0].startswith("{"):
            cargs = json.loads(args.pop(0))
        r = q.cmd(name, cargs)
        if "error" in r:
            print("%s: %s" % (name, json.dumps(r["error"])), file=sys.stderr)
            return 1
        print(json.dumps(r["return"]))
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv))
