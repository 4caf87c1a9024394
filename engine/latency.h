/* The latency-aware copy (issue 14): pure decisions only.  Reading QEMU's
 * statistics, setting the copy's speed and emitting events are the run
 * core's; everything here is a function of its arguments, so that the
 * controller can be unit-tested without a QEMU (tests/unit/test_latency.c).
 *
 * ---- Where the guest's latency can be read (measured on QEMU 7.2.22) ----
 *
 * block-latency-histogram-set takes "id": the name of a BlockBackend made
 * with -drive, or the QOM path of the guest device's backend.  With
 * -blockdev and -device virtio-blk-pci,drive=disk0,id=vd0 (q35, TCG, -S):
 *   id "vd0"                                   GenericError "Device does not
 *                                              have a block device backend"
 *   id "/machine/peripheral/vd0/virtio-backend" accepted
 *   id "disk0" (a node name), id of an export  DeviceNotFound
 * The path to use is the "qdev" that query-block (and query-blockstats)
 * reports beside the node ("inserted": {"node-name"}); engine/migrate.c's
 * resolve() matches the other way, a device id to its node.  A node with
 * no device has no qdev, and no histogram can be set for it.
 * "boundaries-write" sets the write histogram alone, [] makes one bin,
 * boundaries not strictly increasing are refused, and the id alone removes
 * every histogram of the device, also one an operator set: the run core
 * should set only the write one and leave a histogram it found alone.
 * (A device on the node refuses a writable NBD export of it unless
 * share-rw=on: a test that writes through an export beside a device needs
 * that.)
 *
 * query-blockstats without query-nodes lists one entry per BlockBackend
 * that has a name or a device ("device", "qdev", "node-name"): the device's
 * counters (rd/wr/flush _operations, _bytes, _total_time_ns) and, once set,
 * rd_ / wr_ / flush_latency_histogram {boundaries, bins}.  Bins are counts
 * since the set (or since the boundaries last changed), never reset
 * otherwise: the controller differences two snapshots (lat_hist_delta).
 * These are counted by the device model (block_acct_start/done in
 * virtio-blk, scsi, ide, nvme), and only there: 1 MiB written through an
 * NBD export of the same node and 64 KiB through HMP "qemu-io -d" on the
 * device's own backend left every counter and bin at 0 (only
 * wr_highest_offset moved).  An NBD export's BlockBackend is anonymous and
 * deviceless, so it is not listed at all: with no device, as in the
 * bench's guestless QEMU (-machine none), the answer is [].
 *
 * query-blockstats with query-nodes: true lists every node (disk0, its
 * file child f0) with the same fields, all zero but wr_highest_offset,
 * and no histograms, whoever wrote: nodes do not account I/O in 7.2.
 *
 * So:
 *   production (a guest device on the node): the device's
 *     wr_latency_histogram (and rd_), read from query-blockstats every
 *     interval, is the guest's own latency as QEMU completes it: the
 *     signal this controller is built for.  A QEMU that libvirt owns
 *     allows block-latency-histogram-set through
 *     virDomainQemuMonitorCommand, as any QMP command.
 *   tests and the bench (fio through an NBD export, no device): QEMU
 *     reports nothing.  The latency can only be measured by the writer
 *     itself (fio's clat log, bench/latency.sh); an integration test of
 *     the controller needs either a booted guest or an injected signal.
 *
 * ---- volmig's own reads as a proxy (bitmap mode) ----
 *
 * In bitmap mode volmig reads the node through QEMU's NBD export; the
 * guest's requests and volmig's are served by the same QEMU AioContext
 * (one thread unless an iothread is set) and hit the same disk, so queueing
 * in QEMU or the device shows in both.  But a copy read is large (the
 * copier's request size, up to MiBs) and its time includes the transfer to
 * volmig and volmig's own queue depth; it rises when the copy itself goes
 * faster, so it is a measure of the copy's load, not of what a guest's
 * 4-64 KiB request waits.  It is the only signal when no device accounts
 * (the NBD stand-in) and a fallback when query-blockstats has no histogram,
 * taken per byte (latency / request size) or from a small probe read; it
 * does not exist in mirror mode, where QEMU does the reads.
 */
#ifndef VOLMIG_LATENCY_H
#define VOLMIG_LATENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- histograms in QEMU's format ----
 *
 * boundaries b[0] < b[1] < ... < b[n-1] (nanoseconds) make n + 1 bins:
 * [0, b[0]), [b[0], b[1]), ..., [b[n-1], +inf). */

#define LAT_HIST_MAX_BOUNDS 64

struct lat_hist {
    size_t nbounds;
    uint64_t bounds[LAT_HIST_MAX_BOUNDS];
    uint64_t bins[LAT_HIST_MAX_BOUNDS + 1];    /* nbounds + 1 of them */
};

/* The boundaries volmig sets with block-latency-histogram-set: 1-2-5 steps
 * from 50 us to 10 s (ns), fine enough that interpolating within a bin
 * errs by less than the bin's width.  Writes at most max, returns how many
 * it wrote. */
size_t lat_hist_default_bounds(uint64_t *out, size_t max);

/* Fills h from QEMU's arrays: nbounds boundaries, nbins bins.  -1 when
 * nbins != nbounds + 1, nbounds > LAT_HIST_MAX_BOUNDS or the boundaries are
 * not strictly increasing (h is then empty); 0 otherwise.  nbounds may be
 * 0: one bin holding everything. */
int lat_hist_set(struct lat_hist *h, const uint64_t *bounds, size_t nbounds, const uint64_t *bins,
                 size_t nbins);

/* Counts one request of ns nanoseconds in its bin. */
void lat_hist_add(struct lat_hist *h, uint64_t ns);

/* The requests counted in h. */
uint64_t lat_hist_count(const struct lat_hist *h);

/* out = now - prev, bin by bin: what completed between two snapshots.
 * When the boundaries differ, or a bin went down (the histogram was reset
 * or set anew in between), now alone is the window's best estimate and
 * out = now; returns 1 then, 0 otherwise. */
int lat_hist_delta(const struct lat_hist *now, const struct lat_hist *prev, struct lat_hist *out);

/* The q-quantile (0 < q <= 1; 0.99 for p99) in nanoseconds, interpolated
 * linearly within its bin as Prometheus's histogram_quantile does: the
 * first bin runs from 0, and a quantile that falls in the open last bin is
 * its lower boundary (a lower bound: the histogram cannot say more).  NaN
 * for an empty histogram, a NULL one or q outside (0, 1]. */
double lat_hist_percentile(const struct lat_hist *h, double q);

/* ---- the budget ---- */

enum lat_budget_kind {
    LAT_BUDGET_AUTO,        /* factor x the guest's p99 before the copy */
    LAT_BUDGET_ABS,         /* ns */
    LAT_BUDGET_OFF,
};

struct lat_budget {
    enum lat_budget_kind kind;
    double value;           /* AUTO: the factor; ABS: nanoseconds */
};

#define LAT_BUDGET_FACTOR 2.0
/* The smallest budget the controller works to: a p99 before the copy of
 * 100 us would otherwise make 200 us, which the jitter of a shared host
 * exceeds with no copy running. */
#define LAT_BUDGET_MIN_NS 1000000.0
/* The budget when the guest did no I/O before the copy (no p99 to scale). */
#define LAT_BUDGET_IDLE_NS 20000000.0

/* Parses --latency-budget: "off", "auto" (the default: LAT_BUDGET_FACTOR),
 * "Nx" (N times the p99 before the copy, N > 1), or a duration
 * "N" + "us" | "ms" | "s" (N > 0; fractions allowed).  -1 with *why set to
 * a sentence on anything else (empty, negative, NaN, no unit, trailing
 * text, out of range: under 10 us or over 60 s, a factor <= 1 or > 1000). */
int lat_budget_parse(const char *s, struct lat_budget *out, const char **why);

/* The budget in ns for the run: ABS as is; AUTO its factor times
 * pre_p99_ns, at least LAT_BUDGET_MIN_NS, or LAT_BUDGET_IDLE_NS when
 * pre_p99_ns is not a positive number (no I/O seen); OFF: 0. */
double lat_budget_ns(const struct lat_budget *b, double pre_p99_ns);

/* ---- the rate controller ----
 *
 * AIMD on the copy's rate limit, one step per interval (about a second:
 * several hundred guest requests, so that a p99 means something):
 *   over budget   limit x decrease, from the rate the copy reached when
 *                 it was below its limit (else the decrease would not
 *                 bite for several steps)
 *   under budget  limit + increase (x grow when far under, or the guest
 *                 idle), but only while the limit binds (the copy ran at
 *                 >= LAT_BIND of it) or the guest was idle: a limit the
 *                 copy does not reach says nothing, and growing it would
 *                 only make the next decrease slow
 *   no signal     (p99 not a number while the guest did I/O) the limit
 *                 holds
 * then two bounds, in this order:
 *   convergence   never below converge x the guest's dirty rate, so that
 *                 the copy gains on the guest; when that lifts the limit
 *                 above what AIMD chose, out.flags has LAT_F_CONVERGE and
 *                 the caller emits an event (the guest writes faster than
 *                 the throttled copy follows; its latency gives way)
 *   floor         never below floor
 *   ceiling       never above ceiling (KubeVirt's bandwidthPerMigration,
 *                 --speed), not even to converge: LAT_F_CEILING says it cut
 *                 (with LAT_F_CONVERGE: the copy may not converge inside
 *                 the ceiling, which the caller says too)
 * Rates are bytes per second.  A limit of 0 is "unlimited", as QEMU's
 * speed 0; with no ceiling an unlimited copy stays unlimited until the
 * first decrease, which starts from the measured copy rate. */

#define LAT_BIND 0.8

struct lat_ctl_cfg {
    double budget_ns;       /* p99 to stay under; <= 0 or NaN: off */
    uint64_t floor;         /* bytes/s never gone under (> 0) */
    uint64_t ceiling;       /* bytes/s never exceeded; 0: none */
    uint64_t increase;      /* additive step, bytes/s */
    double grow;            /* > 1: multiplicative step far under budget */
    double decrease;        /* multiplicative factor, in (0, 1) */
    double converge;        /* >= 1: the limit is at least this x dirty rate */
    uint64_t start;         /* the first limit (the caller's choice to use) */
};

/* Under budget by this much (p99 < LAT_HEADROOM x budget), or with the
 * guest idle, an increase is multiplicative (x grow, at least + increase):
 * the slow start of a copy that begins at cfg.start, and the recovery from
 * a hard cut. */
#define LAT_HEADROOM 0.5

/* Defaults: floor 8 MiB/s, increase 16 MiB/s, grow 1.5, decrease 0.5,
 * converge 1.5, start 128 MiB/s; budget_ns and ceiling as given.  A copy
 * starts at start (under the ceiling) rather than unlimited: its first
 * interval, before any measurement, then cannot flood the guest's queue,
 * and growing by 1.5 a step reaches 700 MiB/s in five steps. */
struct lat_ctl_cfg lat_ctl_defaults(double budget_ns, uint64_t ceiling);

struct lat_ctl_in {
    double p99_ns;          /* the guest's p99 over the last interval */
    uint64_t samples;       /* guest requests in it (0: the guest was idle) */
    uint64_t limit;         /* the limit now; 0: unlimited */
    double copy_rate;       /* what the copy moved, bytes/s, last interval */
    double dirty_rate;      /* what the guest dirtied, bytes/s, same */
};

enum lat_ctl_why {
    LAT_OFF,                /* no budget: the ceiling (or unlimited) */
    LAT_HOLD,               /* no signal, or a limit the copy did not reach */
    LAT_DECREASE,
    LAT_INCREASE,
};

#define LAT_F_CONVERGE 1u   /* raised to keep converging: emit an event */
#define LAT_F_FLOOR    2u   /* the floor raised it */
#define LAT_F_CEILING  4u   /* the ceiling cut it */

struct lat_ctl_out {
    uint64_t limit;         /* the next limit; 0: unlimited */
    enum lat_ctl_why why;   /* what AIMD decided, before the bounds */
    unsigned flags;         /* LAT_F_* */
};

struct lat_ctl_out lat_ctl_step(const struct lat_ctl_cfg *cfg, const struct lat_ctl_in *in);
const char *lat_ctl_why_name(enum lat_ctl_why w);

/* The copy's depth (requests in flight) for a rate limit.  By Little's
 * law, limit bytes/s with requests of req_size bytes that each take
 * req_latency_s seconds need limit x latency bytes in flight; more only
 * waits in QEMU's queue and the device's, in front of the guest's
 * requests.  Returns that with LAT_DEPTH_HEADROOM to spare, rounded up,
 * at least 1 and at most max (max also when the limit is 0, unlimited, or
 * the latency is not a positive number; 1 when req_size is 0).  For
 * bitmap mode's copier, which can change its depth between requests; a
 * QEMU 7.2 mirror fixes its depth (buf-size) when the job starts. */
#define LAT_DEPTH_HEADROOM 1.25
unsigned lat_ctl_depth(uint64_t limit, double req_latency_s, uint64_t req_size, unsigned max);

#endif
