/* The latency-aware copy at work: what engine/latency.h decides, fed with
 * what QEMU reports and applied by the strategy that copies.
 *
 * While a strategy copies, it calls lw_tick() from its waiting loop (mirror
 * mode) or from the copier's progress callback (bitmap mode).  About once
 * a second the watch reads the guest's latency over the last interval,
 * steps the controller (lat_ctl_step) and hands back the copy's next rate
 * limit, which the strategy applies: block-job-set-speed on each mirror, or
 * the copier's pace.
 *
 * The signal, in order of preference:
 *   histogram  the guest device on the node (query-block's "qdev"): its
 *              write latency histogram in query-blockstats, which volmig
 *              sets with block-latency-histogram-set when the device has
 *              none (and removes at the end), or reads as an operator set
 *              it (and leaves alone).  What the guest itself waits for.
 *   probe      no device accounts (a drive QEMU exports to a writer that
 *              is not a guest device, as this project's stand-in guest):
 *              a thread reads 4 KiB at random offsets, LW_PROBE_HZ times a
 *              second, through a read-only NBD export of the node on
 *              QEMU's NBD server, and times them.  The probe waits in the
 *              same queues as the guest's requests (QEMU's thread for the
 *              node, the host's disk); 400 KiB/s of reads does not load
 *              them.
 *   mean       under libvirt, where raw QMP would taint the domain: the
 *              disk's block statistics (libvirt's wr_operations and
 *              wr_total_times, QEMU's own counts of the guest device's
 *              writes), which hold the mean write latency of each window
 *              and nothing finer.  The budget then applies to the mean,
 *              and the events say "mean" where the others say "p99".
 * With none (no device, no NBD server the watch may use), the copy runs
 * unthrottled and a warning says why.
 *
 * The budget is fixed once, before the copy starts: LW_BASELINE_MS of the
 * signal with nothing copying give the guest's p99, and --latency-budget
 * (auto: twice that) the budget.  Events: "latency-budget" once, then
 * "latency" at each step (p99, limit, what was decided), and "converging"
 * when the guest dirties faster than the throttled copy would follow and
 * the limit is raised to keep converging (the guest's latency gives way). */
#ifndef VOLMIG_LATENCY_WATCH_H
#define VOLMIG_LATENCY_WATCH_H

#include "engine/latency.h"

#include <stdbool.h>
#include <stdint.h>

struct mig_run;
struct lat_watch;

#define LW_INTERVAL_MS  500
/* How often a caller that can choose should call lw_tick(). */
#define LW_TICK_MS      100
#define LW_BASELINE_MS  500
#define LW_PROBE_HZ     200
#define LW_STALL_MS     8000
#define LW_STRETCH      4
#define LW_DIRTY_AVG_MS 3000
#define LW_PROBE_SIZE   4096

struct lw_volume {
    const char *drive;        /* for messages */
    const char *node;         /* the source node the copy reads */
    uint64_t size;
};

/* Starts watching volumes vols[0..n) for run r and measures the baseline
 * (blocks LW_BASELINE_MS).  nbd_socket: QEMU's NBD server to probe
 * through when no device accounts (NULL: the watch starts QEMU's NBD
 * server itself on a private socket, if none runs).  ceiling: bytes/s the
 * limit never exceeds (--speed, bandwidthPerMigration; 0: none).  NULL
 * when the budget is off or there is no signal (a warning event says
 * which); never fails the run. */
struct lat_watch *lw_start(struct mig_run *r, const struct lat_budget *budget,
                           const struct lw_volume *vols, int n, const char *nbd_socket,
                           uint64_t ceiling);

/* The mean signal's source: volume vol's write requests so far and the
 * time they took in all (ns).  -1 with err_msg() when it cannot tell. */
struct lw_counters {
    int (*read)(void *opaque, int vol, uint64_t *ops, uint64_t *ns);
    void *opaque;
};

/* lw_start() with the mean signal, for n volumes read through c (which
 * must outlive the watch); r needs no monitor. */
struct lat_watch *lw_start_counters(struct mig_run *r, const struct lat_budget *budget, int n,
                                    const struct lw_counters *c, uint64_t ceiling);

/* Call often while copying.  copied: bytes the copy has moved so far,
 * dirtied: bytes the guest has dirtied so far (both only ever grow; the
 * watch differentiates them).  remaining: what is left to copy, when the
 * caller knows (0: not known): a copy that has not gained on the guest
 * for LW_STALL_MS, or has taken LW_STRETCH times what its fastest rate
 * would need for the whole (plus LW_STALL_MS), is let go at full speed for
 * the rest of the run (a "converging" event says so), whatever the
 * budget: QEMU's mirror, which must catch up with every write before it
 * is READY, would otherwise crawl behind a guest that keeps a hot set
 * dirty.  The first call only
 * records where the counters start.  Steps at most once per LW_INTERVAL_MS;
 * returns true when it did and *limit (bytes/s for the whole copy, 0:
 * unlimited) is the one to apply now.  w may be NULL (returns false). */
bool lw_tick(struct lat_watch *w, uint64_t copied, uint64_t dirtied, uint64_t remaining,
             uint64_t *limit);

/* True when the next lw_tick() will step (or prime): a caller whose
 * counters cost a QMP query asks first.  False for NULL. */
bool lw_due(const struct lat_watch *w);

/* The limit last decided (0: unlimited); 0 for NULL. */
uint64_t lw_limit(const struct lat_watch *w);

/* Where the limit is applied as one speed per job (mirror mode's
 * block-job-set-speed, libvirt's block copy bandwidth), the watch keeps
 * what each volume's job was given, to tell a speed set from outside.
 * lw_share(): each of n jobs' share of limit, rounded up (0: unlimited).
 * lw_applied(): what volume vol's job was last given (0 before any);
 * lw_set_applied() records a new one. */
uint64_t lw_share(uint64_t limit, int n);
uint64_t lw_applied(const struct lat_watch *w, int vol);
void lw_set_applied(struct lat_watch *w, int vol, uint64_t speed);

/* speed: what QEMU or libvirt reports for volume vol's job now.  When it
 * is not what the job was given, someone else set it: the operator's word
 * stands, a warning names the job (what: "the speed of job X") and says
 * the pacing stops, and true is returned; the caller then stops the watch
 * and leaves every job's speed as it is. */
bool lw_foreign_speed(struct lat_watch *w, int vol, uint64_t speed, const char *what);

/* Stops the probe, removes what the watch added to QEMU (its export, its
 * NBD server, a histogram it set); NULL is fine. */
void lw_stop(struct lat_watch *w);

#endif
