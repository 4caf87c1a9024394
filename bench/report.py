#!/usr/bin/env python3
"""The report of bench/serve.sh (not part of the product).

    report.py OUT

Reads OUT/serve.csv (one line per run) and OUT/serve.meta, writes the
medians as Markdown to OUT/serve.md (and stdout), the chart data to
OUT/serve.dat and the chart to OUT/serve.png through gnuplot.
"""
import csv, os, statistics, subprocess, sys

GIB = 1 << 30
NAMES = {
    "volmig": "volmig serve",
    "qemu-nbd": "qemu-nbd",
    "nbdkit": "nbdkit file",
    "qemu-export": "QEMU NBD export",
    "copy-limit": "copy limit (fio)",
}
ORDER = list(NAMES)


class Row:
    """The median of one server's runs in one case, or why there is none."""

    def __init__(self, runs):
        self.server = runs[0]["server"]
        self.n = len(runs)
        bad = [r for r in runs if r["status"] != "ok"]
        self.status = bad[0]["status"] if bad else "ok"
        self.note = bad[0]["note"] if bad else ""
        if bad:
            return
        med = lambda k: statistics.median(float(r[k]) for r in runs)
        gib = int(runs[0]["bytes"]) / GIB
        self.data = int(runs[0]["data_bytes"])
        self.s = med("ready_s")
        self.done = med("done_s")
        self.mbs = self.data / self.s / 1e6
        self.cpu = med("server_cpu_s") / gib
        self.cpu_abs = med("server_cpu_s")
        self.src_cpu = med("source_cpu_s") / gib
        self.rss = max(int(r["rss_kib"]) for r in runs) / 1024
        self.alloc = med("alloc_kib") / 1024
        self.odirect = runs[0]["odirect"]
        self.thr = med("server_thread_pct")
        self.src_thr = med("source_thread_pct")
        self.busy = med("machine_busy_pct")
        mid = sorted(runs, key=lambda r: float(r["ready_s"]))[len(runs) // 2]
        self.profiles = (mid["server_profile"], mid["source_profile"])
        self.spread = (min(float(r["ready_s"]) for r in runs),
                       max(float(r["ready_s"]) for r in runs))

    @property
    def ok(self):
        return self.status == "ok"


def load(out):
    with open(os.path.join(out, "serve.csv")) as f:
        runs = list(csv.DictReader(f))
    meta = {}
    with open(os.path.join(out, "serve.meta")) as f:
        for line in f:
            k, _, v = line.partition(": ")
            meta[k] = v.strip()
    rows = {}
    for case in dict.fromkeys(r["case"] for r in runs):
        for server in ORDER:
            mine = [r for r in runs if r["case"] == case and r["server"] == server]
            if mine:
                rows.setdefault(case, {})[server] = Row(mine)
    return runs, rows, meta


def num(x, fmt="%.2f"):
    return fmt % x if x is not None else "—"


def ratio(a, b):
    return "%.2f" % (a / b) if a is not None and b else "—"


def dense_table(title, rows):
    v = rows.get("volmig")
    vs = v.s if v and v.ok else None
    vc = v.cpu if v and v.ok else None
    lines = [title, "",
             "| target | s to READY | MB/s | server CPU s/GiB | server top thread | "
             "source QEMU CPU s/GiB | source top thread | machine CPU busy | peak RSS MiB "
             "| O_DIRECT | s ÷ volmig s | CPU ÷ volmig CPU | min–max s |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|:-:|--:|--:|--:|"]
    for server, r in rows.items():
        name = NAMES[server]
        if not r.ok:
            lines.append("| %s | %s | | | | | | | | | | | %s |" % (name, r.status, r.note))
            continue
        dash = lambda v: "—" if server == "copy-limit" else v
        lines.append("| %s | %.2f | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.2f–%.2f |" % (
            name, r.s, r.mbs, dash(num(r.cpu)), dash("%.0f%%" % r.thr),
            dash(num(r.src_cpu)), dash("%.0f%%" % r.src_thr), dash("%.0f%%" % r.busy),
            dash(num(r.rss, "%.0f")),
            r.odirect, ratio(r.s, vs), dash(ratio(r.cpu, vc)), r.spread[0], r.spread[1]))
    return lines


def profile_table(title, rows):
    lines = [title, "", "| target | server: CPU by thread, share of the time to READY "
             "| source QEMU: the same |", "|---|---|---|"]
    for server, r in rows.items():
        if r.ok and server != "copy-limit":
            lines.append("| %s | %s | %s |" % (NAMES[server], r.profiles[0] or "—",
                                               r.profiles[1] or "—"))
    return lines


def sparse_table(meta, rows):
    sp, de = rows.get("sparse", {}), rows.get("dense", {})
    vsize, data = (int(x) for x in meta["sparse"].split())
    lines = ["### Sparse: %d GiB virtual holding %d MiB of data, against %d MiB dense (on the disk)"
             % (vsize // GIB, data >> 20, data >> 20), "",
             "| target | sparse s | dense s | sparse ÷ dense | server CPU s sparse | "
             "server CPU s dense | target allocated MiB (sparse) | peak RSS MiB |",
             "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for server in ORDER:
        s, d = sp.get(server), de.get(server)
        if not s or not d:
            continue
        if not s.ok or not d.ok:
            bad = s if not s.ok else d
            lines.append("| %s | %s | | | | | | %s |" % (NAMES[server], bad.status, bad.note))
            continue
        lines.append("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f | %.0f |" % (
            NAMES[server], s.s, d.s, s.s / d.s, s.cpu_abs, d.cpu_abs, s.alloc,
            max(s.rss, d.rss)))
    return lines


def targets(runs, rows):
    """Issue 2's targets, checked against the medians where they exist."""
    def get(case, server):
        r = rows.get(case, {}).get(server)
        return r if r and r.ok else None
    out = []

    def check(label, ok, detail):
        out.append("- %s: **%s** (%s)" % (label, "met" if ok else "missed", detail))

    v = get("disk", "volmig")
    if v:
        for peer, want in (("qemu-export", 4), ("qemu-nbd", 3)):
            p = get("disk", peer)
            if p:
                check("disk: %gx faster than %s" % (want, NAMES[peer]), p.s / v.s >= want,
                      "%.2fx" % (p.s / v.s))
        p = get("disk", "nbdkit")
        if p:
            check("disk: no slower than nbdkit", v.s <= p.s, "%.2f s vs %.2f s" % (v.s, p.s))
        p = get("disk", "copy-limit")
        if p:
            check("disk: within 90% of the copy limit", p.s / v.s >= 0.9,
                  "%.0f%%" % (100 * p.s / v.s))
    v, p = get("shm", "volmig"), get("shm", "nbdkit")
    if v and p:
        check("shm: 1.2x faster than nbdkit", p.s / v.s >= 1.2, "%.2fx" % (p.s / v.s))
        check("shm: at most half nbdkit's CPU per GiB", v.cpu <= p.cpu / 2,
              "%.2f vs %.2f s/GiB" % (v.cpu, p.cpu))
    s, d = get("sparse", "volmig"), get("dense", "volmig")
    if s and d:
        check("sparse within 2x of dense", s.s <= 2 * d.s, "%.2fx" % (s.s / d.s))
    rss = [int(r["rss_kib"]) for r in runs if r["server"] == "volmig" and r["status"] == "ok"]
    if rss:
        check("peak RSS of volmig serve at most 64 MiB", max(rss) <= 64 << 10,
              "VmHWM %.1f MiB, the largest over %d runs" % (max(rss) / 1024, len(rss)))
    return out or ["- no volmig serve results: nothing to check"]


def chart(out, rows):
    dat = os.path.join(out, "serve.dat")
    with open(dat, "w") as f:
        f.write("# target disk_s shm_s disk_cpu_per_gib shm_cpu_per_gib\n")
        for server in ORDER:
            vals = []
            for key in ("s", "cpu"):
                for case in ("disk", "shm"):
                    r = rows.get(case, {}).get(server)
                    ok = r and r.ok and not (key == "cpu" and server == "copy-limit")
                    vals.append("%.3f" % getattr(r, key) if ok else "?")
            if any(x != "?" for x in vals) or server == "volmig":
                f.write('"%s" %s\n' % (NAMES[server], " ".join(vals)))
    gp = os.path.join(out, "serve.gp")
    with open(gp, "w") as f:
        f.write("""set terminal pngcairo size 1200,500 font ",10"
set output "%s"
set termoption noenhanced
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set xtics rotate by -20 scale 0
set key top left
set multiplot layout 1,2 title "QEMU blockdev-mirror into each NBD server (median; n/a bars are missing)"
set title "seconds to READY (lower is better)"
set yrange [0:*]
set offsets 0,0,graph 0.08,0
# Two bars per cluster, one gap: bar centres sit 1/6 left and right of it.
plot "%s" using 2:xtic(1) title "disk, O_DIRECT", "" using 3 title "/dev/shm", \
     "" using ($0-1.0/6):2:(sprintf("%%.1f", $2)) with labels offset 0,0.7 notitle, \
     "" using ($0+1.0/6):3:(sprintf("%%.1f", $3)) with labels offset 0,0.7 notitle
set title "server CPU seconds per GiB (lower is better)"
plot "%s" using 4:xtic(1) title "disk, O_DIRECT", "" using 5 title "/dev/shm", \
     "" using ($0-1.0/6):4:(sprintf("%%.2f", $4)) with labels offset 0,0.7 notitle, \
     "" using ($0+1.0/6):5:(sprintf("%%.2f", $5)) with labels offset 0,0.7 notitle
unset multiplot
""" % (os.path.join(out, "serve.png"), dat, dat))
    subprocess.run(["gnuplot", gp], check=True)


def notes(runs):
    loads = [float(r["load1"]) for r in runs]
    out = "Load average (1 min) at the end of each run: %.2f–%.2f on %s." % (
        min(loads), max(loads), "this machine")
    retried = [r for r in runs if r["note"].startswith("retried")]
    if retried:
        out += " Retried once after a failed mirror: %s." % "; ".join(
            "%s %s #%s (%s)" % (r["case"], r["server"], r["rep"], r["note"]) for r in retried)
    return out


def main(out):
    runs, rows, meta = load(out)
    gib = int(meta["size"]) / GIB
    size = ("%g GiB" % gib) if gib >= 1 else "%d MiB" % (int(meta["size"]) >> 20)
    md = ["## volmig serve against the peers: QEMU blockdev-mirror, default parameters", "",
          "%s; volmig %s; %s; %s." % (meta["date"], meta["volmig"], meta["host"], meta["disk"]),
          "%s." % meta["peers"],
          "Each time is the median of %s runs from blockdev-mirror to BLOCK_JOB_READY; every "
          "target was compared with its source afterwards. CPU is utime+stime of the whole "
          "process (all threads) over the same interval. Ratios above 1: the row takes longer "
          "or more CPU than volmig serve. \"top thread\": the busiest thread's CPU time as a "
          "share of the time to READY; near 100%% that thread is the bound. \"machine CPU busy\": "
          "all CPUs of the machine, whoever used them, over the same interval. The time from "
          "READY to the job's end (block-job-cancel and the final flush) is in serve.csv "
          "(done_s)." % meta["repeat"], "", notes(runs), ""]
    if "disk" in rows:
        md += dense_table("### On the disk: %s, O_DIRECT (device-bound)" % size, rows["disk"]) + [""]
    if "shm" in rows:
        md += dense_table("### In /dev/shm: %s, no O_DIRECT (server-bound)" % size, rows["shm"]) + [""]
    if "sparse" in rows:
        md += sparse_table(meta, rows) + [""]
    for case, where in (("disk", "on the disk"), ("shm", "in /dev/shm")):
        if case in rows:
            md += profile_table("### Where the CPU goes %s (the median run)" % where,
                                rows[case]) + [""]
    md += ["### Issue 2's targets", ""] + targets(runs, rows) + [""]
    text = "\n".join(md)
    with open(os.path.join(out, "serve.md"), "w") as f:
        f.write(text)
    print(text)
    if "disk" in rows or "shm" in rows:
        chart(out, rows)
        print("chart: %s" % os.path.join(out, "serve.png"))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
