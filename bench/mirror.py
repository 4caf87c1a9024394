#!/usr/bin/env python3
"""One timed QEMU mirror, for bench/serve.sh (not part of the product).

    mirror.py QMP-SOCKET PORT SERVER-PID SOURCE-PID [--target PATH] [--timeout S]

On the source QEMU behind QMP-SOCKET: blockdev-add an NBD node "tgt" for
127.0.0.1:PORT export "disk", blockdev-mirror node "disk0" into it with
sync=full and QEMU's default parameters (job "m0"), wait for READY, then
block-job-cancel (a READY mirror then completes consistent), wait until the
job is gone, blockdev-del "tgt".

The clock and the CPU samples are taken on this one QMP connection, right
around the blockdev-mirror command and the BLOCK_JOB_READY event, so no
event can be missed and no process start-up is timed.  CPU time is utime +
stime of the whole process (every thread, io_uring workers included) from
/proc/PID/stat; SERVER-PID may be 0 when there is no server process.

Prints one JSON object: ready_s, done_s (READY to job gone: the cancel and
the final flush), server_cpu_s, source_cpu_s, and odirect: whether the
server holds PATH open with O_DIRECT at READY ("yes", "no", "-" when it
does not hold it open or no PATH was given); server_thread_pct and
source_thread_pct: the busiest thread's CPU time as a share of the time to
READY (100 = one thread saturated a CPU: that process is the bound);
server_profile and source_profile: CPU per thread name as a share of that
time, and the share of the process's CPU spent in the kernel;
machine_busy_pct: how busy all CPUs of the machine were meanwhile (100 =
every CPU saturated, by anyone).
Exits 1 with a message if the job fails or times out.
"""
import json, os, re, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "lib"))
from qmp import QMP  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """(user+system, system) CPU seconds of the whole process PID."""
    if pid <= 0:
        return 0.0, 0.0
    with open("/proc/%d/stat" % pid) as f:
        # Field 2 (comm) may hold spaces; everything after its ')' is fixed.
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / TICK, int(rest[12]) / TICK


def thread_seconds(pid):
    """(name, user+system CPU seconds, system seconds) of each thread of PID,
    by thread id."""
    out = {}
    if pid <= 0:
        return out
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                comm, rest = f.read().split(" (", 1)[1].rsplit(")", 1)
        except OSError:
            continue  # the thread ended in between
        rest = rest.split()
        out[tid] = (re.sub(r"-[0-9]+$", "", comm),
                    (int(rest[11]) + int(rest[12])) / TICK, int(rest[12]) / TICK)
    return out


def profile(before, after, cpu0, cpu1, seconds):
    """Where a process spent its CPU, as a share of SECONDS: summed per
    thread name (io_uring workers "iou-wrk-123" count as one), the threads
    that ended in between as "exited", then the kernel's share of all."""
    total, sys_s = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    if seconds <= 0 or total <= 0:
        return ""
    names = {}
    for tid, (name, t, _) in after.items():
        names[name] = names.get(name, 0.0) + t - before.get(tid, ("", 0.0))[1]
    gone = total - sum(names.values())
    if gone > 0.02:
        names["exited"] = gone
    top = sorted(names.items(), key=lambda kv: -kv[1])[:4]
    return " ".join("%s %.0f%%" % (n, 100 * t / seconds) for n, t in top if t > 0) + \
        "; system %.0f%% of its CPU" % (100 * min(sys_s, total) / total)


def busiest(before, after, seconds):
    """The largest share of SECONDS one thread spent on a CPU, in percent:
    near 100 means that thread is what bounds the copy."""
    used = [t[1] - before.get(tid, ("", 0.0))[1] for tid, t in after.items()]
    return round(100 * max(used, default=0.0) / seconds, 1) if seconds > 0 else 0.0


def machine_ticks():
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)  # idle and iowait are not busy


def odirect(pid, path):
    """How PID holds PATH open at this moment, from /proc/PID/fdinfo."""
    if pid <= 0 or not path:
        return "-"
    path, res = os.path.realpath(path), "-"
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) != path:
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                flags = next(int(l.split()[1], 8) for l in f if l.startswith("flags:"))
        except (OSError, StopIteration):
            continue
        if flags & os.O_DIRECT:
            return "yes"
        res = "no"
    return res


def command(q, name, args=None):
    r = q.cmd(name, args)
    if "error" in r:
        raise RuntimeError("%s: %s" % (name, r["error"].get("desc", r["error"])))
    return r["return"]


def wait_job_event(q, want, deadline):
    """Waits for event WANT of job m0; a job that ends early is an error."""
    while True:
        while q.events:
            e = q.events.pop(0)
            data = e.get("data", {})
            if data.get("device") != "m0" and data.get("id") != "m0":
                continue
            if e["event"] == want:
                return e
            if e["event"] in ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"):
                raise RuntimeError("job m0 ended before %s: %s" % (want, json.dumps(data)))
            if e["event"] == "BLOCK_JOB_ERROR":
                raise RuntimeError("job m0 I/O error: %s" % json.dumps(data))
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no %s for job m0" % want)
        q.s.settimeout(left)
        q.events.append(q.read())


def main(argv):
    timeout, target = 600.0, None
    if "--timeout" in argv:
        i = argv.index("--timeout")
        timeout = float(argv[i + 1])
        del argv[i:i + 2]
    if "--target" in argv:
        i = argv.index("--target")
        target = argv[i + 1]
        del argv[i:i + 2]
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    sock, port, server_pid, source_pid = argv[1], argv[2], int(argv[3]), int(argv[4])
    q = QMP(sock)
    command(q, "blockdev-add", {
        "driver": "nbd", "node-name": "tgt", "export": "disk",
        "server": {"type": "inet", "host": "127.0.0.1", "port": port}})
    thr0 = (thread_seconds(server_pid), thread_seconds(source_pid))
    cpu0 = (cpu_seconds(server_pid), cpu_seconds(source_pid))
    m0 = machine_ticks()
    t0 = time.monotonic()
    command(q, "blockdev-mirror", {"job-id": "m0", "device": "disk0",
                                   "target": "tgt", "sync": "full"})
    wait_job_event(q, "BLOCK_JOB_READY", t0 + timeout)
    t1 = time.monotonic()
    m1 = machine_ticks()
    cpu1 = (cpu_seconds(server_pid), cpu_seconds(source_pid))
    thr1 = (thread_seconds(server_pid), thread_seconds(source_pid))
    direct = odirect(server_pid, target)
    command(q, "block-job-cancel", {"device": "m0"})
    e = wait_job_event(q, "BLOCK_JOB_COMPLETED", t1 + timeout)
    t2 = time.monotonic()
    if e["data"].get("error"):
        raise RuntimeError("job m0 completed with error: %s" % e["data"]["error"])
    command(q, "blockdev-del", {"node-name": "tgt"})
    print(json.dumps({
        "ready_s": round(t1 - t0, 4), "done_s": round(t2 - t1, 4),
        "server_cpu_s": round(cpu1[0][0] - cpu0[0][0], 3),
        "source_cpu_s": round(cpu1[1][0] - cpu0[1][0], 3), "odirect": direct,
        "server_thread_pct": busiest(thr0[0], thr1[0], t1 - t0),
        "source_thread_pct": busiest(thr0[1], thr1[1], t1 - t0),
        "machine_busy_pct": round(100 * (m1[0] - m0[0]) / max(1, m1[1] - m0[1]), 1),
        "server_profile": profile(thr0[0], thr1[0], cpu0[0], cpu1[0], t1 - t0),
        "source_profile": profile(thr0[1], thr1[1], cpu0[1], cpu1[1], t1 - t0)}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except (RuntimeError, TimeoutError, OSError, EOFError) as err:
        print("mirror.py: %s" % err, file=sys.stderr)
        sys.exit(1)
