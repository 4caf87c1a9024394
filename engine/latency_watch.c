/* The latency-aware copy at work (engine/latency_watch.h): the guest's
 * latency from QEMU's histograms or from probe reads, one controller step
 * a second, and the events that tell the user what it does. */
#include "engine/latency_watch.h"
#include "engine/migrate_run.h"
#include "common/clock.h"
#include "common/error.h"
#include "qmp/qmp.h"

#include <errno.h>
#include <inttypes.h>
#include <libnbd.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QMP_TIMEOUT_MS RUN_QMP_TIMEOUT_MS

enum lw_signal { SIG_HISTOGRAM, SIG_PROBE, SIG_MEAN };

struct lw_vol {
    char qdev[256];           /* the device's backend path, histogram signal */
    bool we_set;              /* volmig set its histogram: volmig removes it */
    struct lat_hist prev;     /* the last snapshot */
    char export[96];          /* probe signal: our export of the node */
    bool exported;
    uint64_t size;
    const char *node;
    uint64_t ops, ns;         /* mean signal: the counters' last values */
    uint64_t applied;         /* the speed the strategy gave the job */
};

struct probe {
    pthread_t th;
    bool running;
    atomic_bool stop;
    atomic_bool failed;
    _Atomic uint64_t inflight_since;   /* clock_ns() the read under way began; 0: none */
    pthread_mutex_t mu;
    struct lat_hist h;        /* every probe since the start */
    struct nbd_handle **nbd;
    uint64_t *sizes;
    int n;
    char why[256];            /* why the probe stopped */
};

struct lat_watch {
    struct mig_run *r;
    enum lw_signal signal;
    struct lw_vol *vols;
    int n;
    /* probe signal */
    struct probe probe;
    struct lat_hist probe_prev;
    struct lw_counters counters;      /* mean signal */
    char sock[128];           /* QEMU's NBD server: own.path or --nbd-socket */
    struct run_sock own;      /* the private socket of a server the watch started */
    bool server_started;
    /* the controller */
    struct lat_ctl_cfg ctl;
    double baseline_p99_ns;
    uint64_t limit;
    int64_t last_ms;
    uint64_t last_copied, last_dirtied;
    bool primed;              /* the counters have a first value */
    bool converging, ceiling_warned, stale_warned;
    /* The guest's dirty rate, smoothed over a few seconds: a copy that
     * moves in bursts (QEMU's mirror under a low speed copies a buffer,
     * then sleeps) shows no dirtying at all in some intervals. */
    double dirty_avg;
    /* The stall guard: the least remaining seen, and when. */
    uint64_t best_remaining;
    int64_t best_at;
    bool gave_up;             /* the guard lifted the limit for good */
    int64_t start_ms;         /* the first tick: the copy began */
    double max_rate;          /* the fastest interval of the copy, bytes/s */
};

static int64_t dl(int64_t ms)
{
    return run_dl(ms);
}

static double ms(double ns)
{
    return isfinite(ns) ? ns / 1e6 : -1;
}

/* ---- the histogram signal ---- */

/* Each volume's guest device: the one whose BlockBackend has the node on
 * top (query-block's "qdev" beside "inserted": {"node-name"}), from one
 * query-block.  false when some node has none (an NBD export is no
 * device, and is not listed). */
static bool find_qdevs(struct lat_watch *w, const struct lw_volume *vols)
{
    json_t *blocks = NULL, *b;
    size_t i;
    int found = 0;

    if (qmp_call(w->r->q, "query-block", NULL, &blocks, dl(QMP_TIMEOUT_MS)) < 0)
        return false;
    for (int k = 0; k < w->n; k++) {
        w->vols[k].qdev[0] = '\0';
        json_array_foreach(blocks, i, b) {
            const char *qdev = json_string_value(json_object_get(b, "qdev"));
            const char *name = json_string_value(
                json_object_get(json_object_get(b, "inserted"), "node-name"));

            if (qdev && *qdev && name && !strcmp(name, vols[k].node)) {
                snprintf(w->vols[k].qdev, sizeof w->vols[k].qdev, "%s", qdev);
                found++;
                break;
            }
        }
    }
    json_decref(blocks);
    return found == w->n;
}

/* QEMU's {"boundaries": [...], "bins": [...]} into h; -1 when absent or
 * malformed. */
static int hist_from_json(const json_t *j, struct lat_hist *h)
{
    const json_t *jb = json_object_get(j, "boundaries"), *jn = json_object_get(j, "bins");
    uint64_t bounds[LAT_HIST_MAX_BOUNDS], bins[LAT_HIST_MAX_BOUNDS + 1];
    size_t nb = json_array_size(jb), nn = json_array_size(jn);

    if (!json_is_array(jb) || !json_is_array(jn) || nb > LAT_HIST_MAX_BOUNDS ||
        nn > LAT_HIST_MAX_BOUNDS + 1)
        return -1;
    for (size_t i = 0; i < nb; i++)
        bounds[i] = (uint64_t)json_integer_value(json_array_get(jb, i));
    for (size_t i = 0; i < nn; i++)
        bins[i] = (uint64_t)json_integer_value(json_array_get(jn, i));
    return lat_hist_set(h, bounds, nb, bins, nn);
}

/* The write histograms of every watched device, from one query-blockstats
 * (out[i] for vols[i]).  -1 when the query failed; a device without a
 * histogram gets an empty one. */
static int read_histograms(struct lat_watch *w, struct lat_hist *out)
{
    json_t *stats = NULL, *s;
    size_t j;

    if (qmp_call(w->r->q, "query-blockstats", NULL, &stats, dl(QMP_TIMEOUT_MS)) < 0)
        return -1;
    for (int i = 0; i < w->n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        json_array_foreach(stats, j, s) {
            const char *qdev = json_string_value(json_object_get(s, "qdev"));

            if (qdev && !strcmp(qdev, w->vols[i].qdev))
                hist_from_json(json_object_get(json_object_get(s, "stats"),
                                               "wr_latency_histogram"), &out[i]);
        }
    }
    json_decref(stats);
    return 0;
}

/* Which histograms device qdev has in query-blockstats' answer stats:
 * *wr the write one, *other any other (read, flush, zone append). */
static void device_histograms(json_t *stats, const char *qdev, bool *wr, bool *other)
{
    json_t *s;
    size_t j;

    *wr = *other = false;
    json_array_foreach(stats, j, s) {
        const char *name = json_string_value(json_object_get(s, "qdev"));
        json_t *st = json_object_get(s, "stats");
        const char *key;
        json_t *v;

        if (!name || strcmp(name, qdev))
            continue;
        json_object_foreach(st, key, v) {
            size_t kl = strlen(key), sl = strlen("_latency_histogram");

            if (kl <= sl || strcmp(key + kl - sl, "_latency_histogram"))
                continue;
            if (!strcmp(key, "wr_latency_histogram"))
                *wr = true;
            else
                *other = true;
        }
    }
}

/* Gives every volume's device a write histogram: volmig's own boundaries
 * where it has none, the operator's where it has one (left alone).  -1
 * when some volume has no device. */
static int histograms_start(struct lat_watch *w, const struct lw_volume *vols)
{
    uint64_t bounds[LAT_HIST_MAX_BOUNDS];
    size_t nb = lat_hist_default_bounds(bounds, LAT_HIST_MAX_BOUNDS);
    json_t *stats = NULL;
    int rc = 0;

    if (!find_qdevs(w, vols) ||
        qmp_call(w->r->q, "query-blockstats", NULL, &stats, dl(QMP_TIMEOUT_MS)) < 0)
        return -1;
    for (int i = 0; i < w->n && rc == 0; i++) {
        struct lw_vol *v = &w->vols[i];
        bool wr, other;
        json_t *arr;

        device_histograms(stats, v->qdev, &wr, &other);
        if (wr)
            continue;
        arr = json_array();
        for (size_t k = 0; k < nb; k++)
            json_array_append_new(arr, json_integer((json_int_t)bounds[k]));
        if (qmp_callf(w->r->q, NULL, dl(QMP_TIMEOUT_MS), "block-latency-histogram-set",
                      "{s:s, s:o}", "id", v->qdev, "boundaries-write", arr) < 0)
            rc = -1;
        else
            /* Removing a histogram removes them all (the id alone):
             * volmig removes its own only when the device had no other,
             * so that an operator's read or flush histogram survives the
             * migration. */
            v->we_set = !other;
    }
    json_decref(stats);
    return rc;
}

static void histograms_stop(struct lat_watch *w)
{
    for (int i = 0; i < w->n; i++)
        if (w->vols[i].we_set && qmp_is_open(w->r->q))
            qmp_callf(w->r->q, NULL, dl(QMP_TIMEOUT_MS), "block-latency-histogram-set",
                      "{s:s}", "id", w->vols[i].qdev);
}

/* ---- the probe signal ---- */

/* xorshift64: offsets need not be good random numbers, only spread. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *probe_main(void *opaque)
{
    struct probe *p = opaque;
    uint64_t seed = clock_ns() | 1, period = 1000000000ULL / LW_PROBE_HZ;
    char buf[LW_PROBE_SIZE];

    for (uint64_t k = 0; !atomic_load(&p->stop); k++) {
        int i = (int)(k % (uint64_t)p->n);
        uint64_t blocks = p->sizes[i] / LW_PROBE_SIZE, t0 = clock_ns(), t1;
        uint64_t off = blocks ? next_rand(&seed) % blocks * LW_PROBE_SIZE : 0;

        if (!blocks)
            continue;
        atomic_store(&p->inflight_since, t0);
        if (nbd_pread(p->nbd[i], buf, LW_PROBE_SIZE, off, 0) < 0) {
            snprintf(p->why, sizeof p->why, "a probe read failed: %s", nbd_get_error());
            atomic_store(&p->failed, true);
            break;
        }
        t1 = clock_ns();
        atomic_store(&p->inflight_since, 0);
        pthread_mutex_lock(&p->mu);
        lat_hist_add(&p->h, t1 - t0);
        pthread_mutex_unlock(&p->mu);
        if (t1 - t0 < period) {
            struct timespec ts = { 0, (long)(period - (t1 - t0)) };

            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* QEMU's NBD server for the probe: nbd_socket when given, else one the
 * watch starts on a private socket.  -1 when there is none it may use
 * (QEMU already runs a server someone else started, at a socket volmig
 * was not told). */
static int probe_server(struct lat_watch *w, const char *nbd_socket)
{
    if (nbd_socket) {
        snprintf(w->sock, sizeof w->sock, "%s", nbd_socket);
        return 0;
    }
    if (run_nbd_server_start(w->r, &w->own) < 0) {
        err_prefix("no guest device reports the drive's latency, and QEMU's NBD server for a "
                   "probe could not be started (if QEMU runs one, give its socket with "
                   "--nbd-socket)");
        return -1;
    }
    snprintf(w->sock, sizeof w->sock, "%s", w->own.path);
    w->server_started = true;
    return 0;
}

static int probe_start(struct lat_watch *w, const char *nbd_socket)
{
    struct probe *p = &w->probe;
    uint64_t bounds[LAT_HIST_MAX_BOUNDS];
    size_t nb = lat_hist_default_bounds(bounds, LAT_HIST_MAX_BOUNDS);

    if (probe_server(w, nbd_socket) < 0)
        return -1;
    p->nbd = calloc((size_t)w->n, sizeof *p->nbd);
    p->sizes = calloc((size_t)w->n, sizeof *p->sizes);
    if (!p->nbd || !p->sizes) {
        err_set(ENOMEM, "latency probe");
        return -1;
    }
    p->n = w->n;
    for (int i = 0; i < w->n; i++) {
        struct lw_vol *v = &w->vols[i];

        /* On a server volmig did not start, the ext tag keeps a later
         * sweep of a dead run's exports from stopping that server. */
        run_name(v->export, sizeof v->export, "%sp%d", w->r->cfg->nbd_socket ? "ext-" : "", i);
        if (run_export_ro_add(w->r->q, v->export, v->node) < 0) {
            err_prefix("a probe export on QEMU's NBD server at %s", w->sock);
            return -1;
        }
        v->exported = true;
        p->sizes[i] = v->size;
        p->nbd[i] = nbd_create();
        if (!p->nbd[i] || nbd_set_export_name(p->nbd[i], v->export) < 0 ||
            nbd_connect_unix(p->nbd[i], w->sock) < 0) {
            err_set(0, "latency probe through %s: %s", w->sock, nbd_get_error());
            return -1;
        }
    }
    p->h.nbounds = nb;
    memcpy(p->h.bounds, bounds, nb * sizeof *bounds);
    memset(p->h.bins, 0, sizeof p->h.bins);
    pthread_mutex_init(&p->mu, NULL);
    if (pthread_create(&p->th, NULL, probe_main, p)) {
        pthread_mutex_destroy(&p->mu);
        err_set(0, "latency probe: no thread");
        return -1;
    }
    p->running = true;
    return 0;
}

static void probe_stop(struct lat_watch *w)
{
    struct probe *p = &w->probe;

    if (p->running) {
        atomic_store(&p->stop, true);
        pthread_join(p->th, NULL);
        pthread_mutex_destroy(&p->mu);
        p->running = false;
    }
    for (int i = 0; p->nbd && i < p->n; i++)
        if (p->nbd[i]) {
            nbd_shutdown(p->nbd[i], 0);
            nbd_close(p->nbd[i]);
        }
    free(p->nbd);
    free(p->sizes);
    p->nbd = NULL;
    p->sizes = NULL;
    if (!qmp_is_open(w->r->q))
        return;
    for (int i = 0; i < w->n; i++)
        if (w->vols[i].exported)
            run_export_del(w->r->q, w->vols[i].export);
    if (w->server_started)
        qmp_call(w->r->q, "nbd-server-stop", NULL, NULL, dl(QMP_TIMEOUT_MS));
}

/* ---- one window of the signal ---- */

/* What completed since the last call: its p99 (NaN: nothing) and count.
 * -1 when the signal is lost. */
static int window(struct lat_watch *w, double *p99, uint64_t *samples)
{
    struct lat_hist now, delta;

    *p99 = NAN;
    *samples = 0;
    if (w->signal == SIG_PROBE) {
        if (atomic_load(&w->probe.failed))
            return -1;
        pthread_mutex_lock(&w->probe.mu);
        now = w->probe.h;
        pthread_mutex_unlock(&w->probe.mu);
        lat_hist_delta(&now, &w->probe_prev, &delta);
        w->probe_prev = now;
        *samples = lat_hist_count(&delta);
        *p99 = lat_hist_percentile(&delta, 0.99);
        /* No probe came back in the whole window: the one under way is
         * the window's latency, and a lower bound of it. */
        if (!*samples) {
            uint64_t since = atomic_load(&w->probe.inflight_since);

            if (since) {
                *samples = 1;
                *p99 = (double)(clock_ns() - since);
            }
        }
        return 0;
    }
    if (w->signal == SIG_MEAN) {
        /* Several volumes: the worst mean among them, all their writes. */
        for (int i = 0; i < w->n; i++) {
            struct lw_vol *v = &w->vols[i];
            uint64_t ops, ns;

            if (w->counters.read(w->counters.opaque, i, &ops, &ns) < 0)
                return -1;
            /* Counters that went back (a device replugged) start anew. */
            if (ops > v->ops && ns >= v->ns) {
                double mean = (double)(ns - v->ns) / (double)(ops - v->ops);

                *samples += ops - v->ops;
                if (!(*p99 >= mean))
                    *p99 = mean;
            }
            v->ops = ops;
            v->ns = ns;
        }
        return 0;
    }
    {
        struct lat_hist *cur = calloc((size_t)w->n, sizeof *cur);

        if (!cur || read_histograms(w, cur) < 0) {
            free(cur);
            return -1;
        }
        /* Several volumes: the worst p99 among them, all their requests. */
        for (int i = 0; i < w->n; i++) {
            double p;

            lat_hist_delta(&cur[i], &w->vols[i].prev, &delta);
            w->vols[i].prev = cur[i];
            *samples += lat_hist_count(&delta);
            p = lat_hist_percentile(&delta, 0.99);
            if (isfinite(p) && !(*p99 >= p))
                *p99 = p;
        }
        free(cur);
    }
    return 0;
}

static const char *signal_name(const struct lat_watch *w)
{
    return w->signal == SIG_PROBE ? "probe" : w->signal == SIG_MEAN ? "mean" : "histogram";
}

/* The statistic the signal gives: the p99, or the mean alone. */
static const char *stat_key(const struct lat_watch *w, const char *p99_key,
                            const char *mean_key)
{
    return w->signal == SIG_MEAN ? mean_key : p99_key;
}

/* ---- the watch ---- */

static void watch_free(struct lat_watch *w)
{
    if (!w)
        return;
    if (w->signal == SIG_PROBE)
        probe_stop(w);
    else if (w->signal == SIG_HISTOGRAM)
        histograms_stop(w);
    run_sock_remove(&w->own);
    free(w->vols);
    free(w);
}

static struct lat_watch *watch_new(struct mig_run *r, int n)
{
    struct lat_watch *w = calloc(1, sizeof *w);

    if (w && !(w->vols = calloc((size_t)n, sizeof *w->vols))) {
        free(w);
        return NULL;
    }
    if (w) {
        w->r = r;
        w->n = n;
    }
    return w;
}

/* The baseline, the budget and the first limit, once the signal is set
 * up; then the latency-budget event.  -1 with err_msg(). */
static int watch_begin(struct lat_watch *w, const struct lat_budget *budget, uint64_t ceiling)
{
    uint64_t samples;
    double budget_ns;

    /* The baseline: the signal over a window with nothing copying. */
    if (window(w, &(double){ 0 }, &samples) < 0)
        return -1;
    /* run_nap() wakes at any QMP event: nap until the window is full. */
    for (int64_t end = qmp_now_ms() + LW_BASELINE_MS, left; (left = end - qmp_now_ms()) > 0;)
        if (run_nap(w->r, (int)left) < 0)
            return -1;
    if (window(w, &w->baseline_p99_ns, &samples) < 0)
        return -1;
    if (!samples)
        w->baseline_p99_ns = NAN;
    budget_ns = lat_budget_ns(budget, w->baseline_p99_ns);
    w->ctl = lat_ctl_defaults(budget_ns, ceiling);
    /* The copy starts at a modest rate and grows while the guest's latency
     * allows: its first interval, before any measurement, cannot flood the
     * guest's queue. */
    w->limit = ceiling && ceiling < w->ctl.start ? ceiling : w->ctl.start;
    w->last_ms = qmp_now_ms();
    run_emit(w->r, json_pack("{s:s, s:s, s:f, s:f, s:I, s:I, s:I}", "event", "latency-budget",
                             "signal", signal_name(w),
                             stat_key(w, "baseline_p99_ms", "baseline_mean_ms"),
                             ms(w->baseline_p99_ns), "budget_ms", ms(budget_ns),
                             "baseline_samples", (json_int_t)samples, "ceiling",
                             (json_int_t)ceiling, "limit", (json_int_t)w->limit));
    return 0;
}

/* No budget after all: says why, frees w.  Always NULL. */
static struct lat_watch *watch_fail(struct mig_run *r, struct lat_watch *w)
{
    char msg[768];

    snprintf(msg, sizeof msg, "the copy runs without a latency budget: %s",
             err_msg()[0] ? err_msg() : "out of memory");
    run_emit(r, json_pack("{s:s, s:s}", "event", "warning", "message", msg));
    watch_free(w);
    return NULL;
}

struct lat_watch *lw_start(struct mig_run *r, const struct lat_budget *budget,
                           const struct lw_volume *vols, int n, const char *nbd_socket,
                           uint64_t ceiling)
{
    struct lat_watch *w;
    struct err_saved saved;

    if (budget->kind == LAT_BUDGET_OFF || n <= 0 || !r->q)
        return NULL;
    err_save(&saved);
    err_clear();
    if (!(w = watch_new(r, n)))
        goto fail;
    for (int i = 0; i < n; i++) {
        w->vols[i].size = vols[i].size;
        w->vols[i].node = vols[i].node;
    }
    w->signal = SIG_HISTOGRAM;
    if (histograms_start(w, vols) < 0) {
        histograms_stop(w);
        for (int i = 0; i < n; i++)
            w->vols[i].we_set = false;
        w->signal = SIG_PROBE;
        if (probe_start(w, nbd_socket) < 0)
            goto fail;
    }
    if (watch_begin(w, budget, ceiling) < 0)
        goto fail;
    err_restore(saved.errnum, saved.msg);
    return w;
fail:
    w = watch_fail(r, w);
    err_restore(saved.errnum, saved.msg);
    return w;
}

struct lat_watch *lw_start_counters(struct mig_run *r, const struct lat_budget *budget, int n,
                                    const struct lw_counters *c, uint64_t ceiling)
{
    struct lat_watch *w;
    struct err_saved saved;

    if (budget->kind == LAT_BUDGET_OFF || n <= 0)
        return NULL;
    err_save(&saved);
    err_clear();
    if ((w = watch_new(r, n))) {
        w->signal = SIG_MEAN;
        w->counters = *c;
    }
    if (!w || watch_begin(w, budget, ceiling) < 0)
        w = watch_fail(r, w);
    err_restore(saved.errnum, saved.msg);
    return w;
}

bool lw_due(const struct lat_watch *w)
{
    return w && (!w->primed || qmp_now_ms() - w->last_ms >= LW_INTERVAL_MS);
}

/* The copy has not gained on the guest for LW_STALL_MS while throttled:
 * whatever the controller's reasons, it now copies at full speed (the
 * ceiling) for the rest of the run, and says so. */
static bool stall_guard(struct lat_watch *w, uint64_t copied, uint64_t remaining, int64_t now,
                        uint64_t *limit)
{
    char msg[320];
    double secs = (double)(now - w->start_ms) / 1000.0, fastest;

    if (w->gave_up) {
        *limit = w->limit;
        return true;
    }
    if (!remaining || w->limit == w->ctl.ceiling)
        return false;
    if (!w->best_at || remaining < w->best_remaining) {
        w->best_remaining = remaining;
        w->best_at = now;
    }
    /* What the whole copy would have taken at the fastest rate it ran. */
    fastest = w->max_rate > 0 ? (double)(copied + remaining) / w->max_rate : INFINITY;
    if (now - w->best_at >= LW_STALL_MS)
        snprintf(msg, sizeof msg,
                 "the copy has not gained on the guest for %d s within the latency budget: it "
                 "runs at full speed from here on, to converge, and the guest's latency gives "
                 "way", LW_STALL_MS / 1000);
    else if (secs > LW_STRETCH * fastest + LW_STALL_MS / 1000.0)
        snprintf(msg, sizeof msg,
                 "the copy within the latency budget has taken %.0f s, over %d times what its "
                 "fastest rate would need: it runs at full speed from here on, to converge, and "
                 "the guest's latency gives way", secs, LW_STRETCH);
    else
        return false;
    w->gave_up = true;
    w->limit = w->ctl.ceiling;
    *limit = w->limit;
    run_emit(w->r, json_pack("{s:s, s:s, s:f, s:I}", "event", "converging", "message", msg,
                             "dirty_rate", w->dirty_avg, "limit", (json_int_t)w->limit));
    return true;
}

bool lw_tick(struct lat_watch *w, uint64_t copied, uint64_t dirtied, uint64_t remaining,
             uint64_t *limit)
{
    int64_t now;
    double secs, p99;
    uint64_t samples;
    struct lat_ctl_in in;
    struct lat_ctl_out out;

    if (!w)
        return false;
    now = qmp_now_ms();
    /* The first call gives the counters their start, and the first window
     * starts with it: the time between the baseline and the copy's start
     * (targets being added, say) is neither. */
    if (!w->primed) {
        w->primed = true;
        w->start_ms = now;
        w->last_copied = copied;
        w->last_dirtied = dirtied;
        w->last_ms = now;
        window(w, &(double){ 0 }, &samples);
        return false;
    }
    if (now - w->last_ms < LW_INTERVAL_MS)
        return false;
    if (stall_guard(w, copied, remaining, now, limit)) {
        w->last_ms = now;
        return true;
    }
    secs = (double)(now - w->last_ms) / 1000.0;
    if (window(w, &p99, &samples) < 0) {
        /* The signal went: hold the limit, say so once. */
        if (!w->stale_warned) {
            w->stale_warned = true;
            run_emit(w->r, json_pack("{s:s, s:s}", "event", "warning", "message",
                                     w->signal == SIG_PROBE && w->probe.why[0]
                                     ? w->probe.why
                                     : "the guest's latency can no longer be read; the copy's "
                                       "rate limit stays where it is"));
        }
        w->last_ms = now;
        return false;
    }
    in = (struct lat_ctl_in){
        .p99_ns = p99,
        .samples = samples,
        .limit = w->limit,
        .copy_rate = copied >= w->last_copied ? (double)(copied - w->last_copied) / secs : 0,
        .dirty_rate = dirtied >= w->last_dirtied ? (double)(dirtied - w->last_dirtied) / secs
                                                 : 0,
    };
    /* An average over about LW_DIRTY_AVG_MS, and the larger of it and the
     * interval's own rate: a burst of dirtying counts at once, a quiet
     * interval does not make the guest look idle. */
    {
        double a = secs * 1000.0 / LW_DIRTY_AVG_MS;

        w->dirty_avg += (a < 1 ? a : 1) * (in.dirty_rate - w->dirty_avg);
        if (w->dirty_avg > in.dirty_rate)
            in.dirty_rate = w->dirty_avg;
    }
    if (in.copy_rate > w->max_rate)
        w->max_rate = in.copy_rate;
    out = lat_ctl_step(&w->ctl, &in);
    w->last_ms = now;
    w->last_copied = copied;
    w->last_dirtied = dirtied;
    run_emit(w->r, json_pack("{s:s, s:f, s:f, s:I, s:I, s:f, s:f, s:s}", "event", "latency",
                             stat_key(w, "p99_ms", "mean_ms"), ms(p99), "budget_ms", ms(w->ctl.budget_ns), "samples",
                             (json_int_t)samples, "limit", (json_int_t)out.limit, "copy_rate",
                             in.copy_rate, "dirty_rate", in.dirty_rate, "step",
                             lat_ctl_why_name(out.why)));
    if ((out.flags & LAT_F_CONVERGE) && !w->converging) {
        char msg[256];

        snprintf(msg, sizeof msg,
                 "the guest dirties %.0f MB/s, faster than the copy may go within the latency "
                 "budget: the copy speeds up to keep converging, and the guest's latency gives "
                 "way", in.dirty_rate / 1e6);
        run_emit(w->r, json_pack("{s:s, s:s, s:f, s:I}", "event", "converging", "message", msg,
                                 "dirty_rate", in.dirty_rate, "limit", (json_int_t)out.limit));
    }
    w->converging = (out.flags & LAT_F_CONVERGE) != 0;
    if ((out.flags & LAT_F_CONVERGE) && (out.flags & LAT_F_CEILING) && !w->ceiling_warned) {
        w->ceiling_warned = true;
        run_emit(w->r, json_pack("{s:s, s:s}", "event", "warning", "message",
                                 "the guest dirties faster than the bandwidth limit lets the "
                                 "copy go: the copy may not converge"));
    }
    w->limit = out.limit;
    *limit = out.limit;
    return true;
}

uint64_t lw_limit(const struct lat_watch *w)
{
    return w ? w->limit : 0;
}

uint64_t lw_share(uint64_t limit, int n)
{
    return limit && n > 0 ? (limit + (uint64_t)n - 1) / (uint64_t)n : 0;
}

uint64_t lw_applied(const struct lat_watch *w, int vol)
{
    return w->vols[vol].applied;
}

void lw_set_applied(struct lat_watch *w, int vol, uint64_t speed)
{
    w->vols[vol].applied = speed;
}

bool lw_foreign_speed(struct lat_watch *w, int vol, uint64_t speed, const char *what)
{
    char msg[320];

    if (speed == w->vols[vol].applied)
        return false;
    snprintf(msg, sizeof msg, "%s was set to %" PRIu64 " B/s from outside: the latency-aware "
             "copy stops and leaves every job's speed as it is", what, speed);
    run_emit(w->r, json_pack("{s:s, s:s}", "event", "warning", "message", msg));
    return true;
}

void lw_stop(struct lat_watch *w)
{
    struct err_saved saved;

    err_save(&saved);
    watch_free(w);
    err_restore(saved.errnum, saved.msg);
}
