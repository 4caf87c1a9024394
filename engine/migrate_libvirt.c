/* libvirt mode: libvirt moves the disks of a domain it owns, through its
 * block copy (pivot, none) or its storage migration (migrate:URI); the run
 * core (engine/migrate_run.h) does the attempts, backoff and cancel.  The
 * design is in engine/migrate_libvirt.h; what libvirt does is in
 * engine/libvirt_domain*.c.
 *
 * Several disks, pivot: every copy is READY before the first pivot, and
 * libvirt pivots one disk at a time (virDomainBlockJobAbort per disk;
 * there is no transaction over several).  When a later pivot fails, the
 * disks pivoted before it stay on their destinations: each is a complete,
 * consistent copy that libvirt's live and persistent XML now name, and
 * moving it back would be another copy.  The copies not yet pivoted are
 * aborted (those disks stay on their sources), the attempt fails, and the
 * next attempt moves only the disks still on their sources.  The failure
 * message says which disk runs where.
 *
 * migrate:URI through volmig's data path (serve.DRIVE=NBD_URI in URI's
 * query, one per volume): each disk is block-copied into the volmig serve
 * that serves its volume on the destination host; once all are READY the
 * guest is paused, the copies are ended (consistent), volmig serve (run
 * with --once) exits when QEMU disconnects and so lets go of the volume's
 * image locks, and a memory-only migration starts the domain on the
 * destination with DEST_XML naming the volume as a local file; there it
 * is resumed.  The guest stays paused from the end of the copy to the end
 * of the memory migration: libvirt offers no hook inside a migration's
 * own switchover, and the destination QEMU cannot take the volume while
 * volmig serve holds it. */
#include "engine/migrate_libvirt_internal.h"
#include "common/clock.h"
#include "common/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- pure parts ---- */

bool mig_libvirt_addr(const char *addr)
{
    return addr && !strncmp(addr, "libvirt:", 8);
}

const char *mig_libvirt_refusal(const struct mig_config *cfg)
{
    if (cfg->mode == MIG_MODE_BITMAP)
        return "--mode bitmap cannot run under libvirt: its dirty bitmaps and NBD exports "
               "would be raw QMP behind libvirt's back, and libvirt's own checkpoint and "
               "backup API cannot stand in for them (checkpoints need qcow2 disks, and a pull "
               "backup exports one point in time, not passes that converge); use --mode "
               "mirror, which libvirt's block copy serves";
    if (cfg->tls_psk)
        return "--tls-psk cannot work under libvirt: libvirt's NBD client uses x509 "
               "certificates only (qemu.conf nbd_tls_x509_cert_dir); use an nbds:// target "
               "with those, or --qmp unix:PATH";
    if (cfg->tls_hostname)
        return "--tls-hostname cannot work under libvirt: libvirt gives QEMU no other name "
               "to check the NBD server's certificate against than the target's host";
    for (int i = 0; cfg->switchover == MIG_SW_MIGRATE && i < cfg->nvols; i++)
        if (cfg->vols[i].uri.kind != URI_FILE)
            return "under libvirt, migrate:URI takes file: targets (paths on the destination "
                   "host, which libvirt's storage migration fills)";
    return NULL;
}

int mig_libvirt_parse_addr(const char *spec, char **name, char **uri)
{
    const char *qm = strchr(spec, '?');

    *name = *uri = NULL;
    if (qm && (strncmp(qm + 1, "uri=", 4) || !qm[5])) {
        err_set(EINVAL, "libvirt:%s: expected libvirt:DOMAIN[?uri=URI]", spec);
        return -1;
    }
    if (qm == spec || !*spec) {
        err_set(EINVAL, "libvirt:%s: no domain name", spec);
        return -1;
    }
    *name = strndup(spec, qm ? (size_t)(qm - spec) : strlen(spec));
    *uri = qm ? strdup(qm + 5) : NULL;
    if (!*name || (qm && !*uri)) {
        free(*name);
        free(*uri);
        *name = *uri = NULL;
        err_set(ENOMEM, "libvirt:%s", spec);
        return -1;
    }
    return 0;
}

/* Takes parameter key=VALUE out of the query of uri (in place); *val gets
 * VALUE (malloc'd) or stays NULL. */
int lv_take_param(char *uri, const char *key, char **val)
{
    char *q = strchr(uri, '?'), *p;
    size_t kl = strlen(key);

    if (!q)
        return 0;
    for (p = q + 1; *p;) {
        char *amp = strchr(p, '&'), *next = amp ? amp + 1 : p + strlen(p);

        if (!strncmp(p, key, kl) && p[kl] == '=') {
            free(*val);
            if (!(*val = strndup(p + kl + 1, (size_t)((amp ? amp : next) - (p + kl + 1)))))
                return -1;
            memmove(p, next, strlen(next) + 1);
            continue;
        }
        p = next;
    }
    /* a query left empty, or ending in '&' */
    if (!q[1])
        *q = '\0';
    else if (uri[strlen(uri) - 1] == '&')
        uri[strlen(uri) - 1] = '\0';
    return 0;
}

int mig_libvirt_parse_dest(const char *text, char **dest_uri, char **migrate_uri,
                           char **disks_uri)
{
    *migrate_uri = *disks_uri = NULL;
    if (!(*dest_uri = strdup(text)) || lv_take_param(*dest_uri, "migrate_uri", migrate_uri) < 0 ||
        lv_take_param(*dest_uri, "disks_uri", disks_uri) < 0) {
        err_set(ENOMEM, "migrate:%s", text);
        return -1;
    }
    if (!**dest_uri || (*migrate_uri && !**migrate_uri) || (*disks_uri && !**disks_uri)) {
        err_set(EINVAL, "migrate:%s: expected migrate:LIBVIRT_URI[?migrate_uri=URI]"
                "[&disks_uri=URI] (the destination libvirtd)", text);
        return -1;
    }
    return 0;
}

/* ---- events ---- */

void lv_emit_started(struct lv *l, int attempt)
{
    json_t *vols = json_array();

    for (int i = 0; i < l->cfg->nvols; i++) {
        struct mig_volume *v = &l->cfg->vols[i];

        if (l->v[i].moved)
            continue;
        json_array_append_new(vols, json_pack("{s:s, s:s, s:s, s:I, s:I}", "drive", v->drive,
                                              "node", v->node, "target", v->target, "size",
                                              (json_int_t)v->size, "target_size",
                                              (json_int_t)v->target_size));
    }
    run_emit(l->r, json_pack("{s:s, s:i, s:o, s:s, s:s}", "event", "started", "attempt",
                             attempt + 1, "volumes", vols, "copy_mode",
                             l->cfg->write_blocking ? "write-blocking" : "background",
                             "via", l->via_serve ? "volmig serve, libvirt memory migration"
                                    : l->cfg->switchover == MIG_SW_MIGRATE
                                    ? "libvirt storage migration" : "libvirt block copy"));
}

/* A progress event in the mirror's format; vols may be an empty array
 * (libvirt's migration reports the disks' sum only). */
void lv_emit_progress(struct lv *l, json_t *vols, uint64_t done, uint64_t total)
{
    int64_t now = clock_ms();
    uint64_t remaining = total > done ? total - done : 0;
    double eta;

    if (l->prev_at && now > l->prev_at) {
        double inst = (double)(done > l->prev_done ? done - l->prev_done : 0) * 1000.0 /
                      (double)(now - l->prev_at);

        l->rate = l->rate ? 0.5 * l->rate + 0.5 * inst : inst;
    }
    l->prev_done = done;
    l->prev_at = now;
    l->last_progress = now;
    eta = l->rate > 0 ? (double)remaining / l->rate : -1;
    run_emit(l->r, json_pack("{s:s, s:o, s:I, s:I, s:I, s:f, s:f}", "event", "progress",
                             "volumes", vols, "done", (json_int_t)done, "total",
                             (json_int_t)total, "remaining", (json_int_t)remaining, "rate",
                             l->rate, "eta", eta));
    if (done != l->stall_done || !l->stall_at) {
        l->stall_done = done;
        l->stall_at = now;
        l->stall_warned = false;
    } else if (!l->stall_warned && remaining && now - l->stall_at > STALL_WARN_MS) {
        l->stall_warned = true;
        run_emit(l->r, json_pack("{s:s, s:s}", "event", "warning", "message",
                                 "no data moved for 10 s: is the destination reachable?"));
    }
}

bool lv_progress_due(const struct lv *l)
{
    return clock_ms() - l->last_progress >= l->cfg->progress_ms;
}

/* The block copies' progress, from libvirt's job info. */
int lv_copy_progress(struct lv *l)
{
    json_t *vols = json_array();
    uint64_t done = 0, total = 0;

    for (int i = 0; i < l->cfg->nvols; i++) {
        struct mig_volume *v = &l->cfg->vols[i];
        struct lvd_progress p;

        if (l->v[i].moved || !l->v[i].started)
            continue;
        if (lvd_job_info(l->c, l->v[i].target, &p) < 0) {
            json_decref(vols);
            return -1;
        }
        if (p.end) {
            v->done = p.cur;
            v->total = p.end;
        }
        snprintf(v->status, sizeof v->status, "%s", l->v[i].ready ? "ready" : "running");
        json_array_append_new(vols, json_pack("{s:s, s:I, s:I, s:I, s:s}", "drive", v->drive,
                                              "done", (json_int_t)v->done, "total",
                                              (json_int_t)v->total, "remaining",
                                              (json_int_t)(v->total - v->done), "status",
                                              v->status));
        done += v->done;
        total += v->total;
    }
    lv_emit_progress(l, vols, done, total);
    return 0;
}

/* ---- block copy: pivot and none ---- */

/* After a libvirt call failed: GONE when the domain or libvirtd is, else
 * if_alive. */
enum attempt lv_failed(struct lv *l, enum attempt if_alive)
{
    if (lvd_alive(l->c))
        return if_alive;
    err_prefix("the domain or its libvirtd went away");
    return ATT_GONE;
}

/* ---- the latency-aware copy: libvirt's block statistics, job bandwidth ---- */

static int read_counters(void *opaque, int vol, uint64_t *ops, uint64_t *ns)
{
    struct lv *l = opaque;

    return lvd_write_stats(l->c, l->v[vol].target, ops, ns);
}

static int active_vols(const struct lv *l)
{
    int n = 0;

    for (int i = 0; i < l->cfg->nvols; i++)
        n += !l->v[i].moved;
    return n;
}

/* Before the copies start: the baseline with nothing copying. */
static void watch_start(struct lv *l)
{
    l->counters = (struct lw_counters){ read_counters, l };
    l->lw = lw_start_counters(l->r, &l->cfg->latency_budget, l->cfg->nvols, &l->counters,
                              l->cfg->speed * (uint64_t)active_vols(l));
}

void lv_watch_stop(struct lv *l)
{
    lw_stop(l->lw);
    l->lw = NULL;
}

/* One step, when due: the copies' progress as the counters the watch
 * differentiates, the limit shared out as each job's bandwidth, set only
 * when it changed.  A bandwidth set from outside (virsh blockjob
 * --bandwidth) ends the pacing for the rest of the run, with a warning,
 * as in mirror mode. */
static enum attempt pace(struct lv *l)
{
    uint64_t copied = 0, dirtied = 0, limit, per;
    char what[128];

    if (!lw_due(l->lw))
        return ATT_OK;
    for (int i = 0; i < l->cfg->nvols; i++) {
        struct lvd_progress p;

        if (!l->v[i].started)
            continue;
        if (lvd_job_info(l->c, l->v[i].target, &p) < 0)
            return lv_failed(l, ATT_RETRY);
        copied += p.cur;
        dirtied += p.end;
        snprintf(what, sizeof what, "the bandwidth of the block copy of disk %s",
                 l->v[i].target);
        if (p.end && lw_foreign_speed(l->lw, i, p.bandwidth, what)) {
            lv_watch_stop(l);
            return ATT_OK;
        }
    }
    if (!lw_tick(l->lw, copied, dirtied, dirtied - copied, &limit))
        return ATT_OK;
    per = lw_share(limit, active_vols(l));
    for (int i = 0; i < l->cfg->nvols; i++) {
        if (!l->v[i].started || lw_applied(l->lw, i) == per)
            continue;
        if (lvd_set_speed(l->c, l->v[i].target, per) < 0)
            return lv_failed(l, ATT_RETRY);
        lw_set_applied(l->lw, i, per);
    }
    return ATT_OK;
}

enum attempt lv_start_copies(struct lv *l, int attempt)
{
    struct lvd_copy_opts o = {
        .bandwidth = l->cfg->speed, .granularity = (unsigned)l->cfg->granularity,
        .buf_size = l->cfg->buf_size, .sync_writes = l->cfg->write_blocking,
    };
    /* The guest's latency before the copy is the budget's reference. */
    watch_start(l);
    if (l->lw && lw_limit(l->lw))
        o.bandwidth = lw_share(lw_limit(l->lw), active_vols(l));
    for (int i = 0; i < l->cfg->nvols; i++) {
        struct lv_vol *lv = &l->v[i];
        struct mig_volume *v = &l->cfg->vols[i];

        if (lv->moved)
            continue;
        lv->ready = false;
        v->done = v->total = 0;
        /* init checked before the first; a retry checks again, since the
         * destination or the domain may have changed. */
        if (attempt > 0 && !l->via_serve &&
            lvd_copy_check(l->c, lv->target, lv->copy_dest, l->tls_on ? &l->tls : NULL,
                           CHECK_TIMEOUT_MS, &lv->fit) < 0)
            return lv_failed(l, ATT_RETRY);
        /* volmig serve --once would take a probe's connection for its one
         * client: its export is the disk's size (--size), no slice. */
        if (lvd_copy_start(l->c, lv->target, lv->copy_dest,
                           l->via_serve ? &(struct lvd_fit){ 0 } : &lv->fit, &o) < 0)
            return lv_failed(l, ATT_RETRY);
        lv->started = true;
        if (l->lw)
            lw_set_applied(l->lw, i, o.bandwidth);
    }
    return ATT_OK;
}

static enum attempt wait_ready(struct lv *l)
{
    for (;;) {
        bool all = true;
        enum attempt a;

        if (run_cancelled(l->r))
            return ATT_CANCELLED;
        for (int i = 0; i < l->cfg->nvols; i++) {
            struct lv_vol *lv = &l->v[i];

            if (lv->moved || lv->ready)
                continue;
            if (lvd_wait_ready(l->c, lv->target, clock_ms()) == 0) {
                lv->ready = true;
                continue;
            }
            if (err_errno() != ETIMEDOUT)
                return lv_failed(l, ATT_RETRY);
            all = false;
        }
        if (all)
            return ATT_OK;
        if (lv_progress_due(l) && lv_copy_progress(l) < 0)
            return lv_failed(l, ATT_RETRY);
        if ((a = pace(l)) != ATT_OK)
            return a;
        run_nap(l->r, 50);
    }
}

enum attempt lv_wait_ready(struct lv *l)
{
    enum attempt a = wait_ready(l);

    lv_watch_stop(l);
    return a;
}

/* Which disks run where, after a pivot of disk failed. */
static void say_where(struct lv *l, int failed_at)
{
    char moved[512] = "", *p = moved;

    for (int i = 0; i < failed_at; i++)
        if (l->v[i].moved)
            p += snprintf(p, (size_t)(moved + sizeof moved - p), "%s%s", p == moved ? "" : ", ",
                          l->cfg->vols[i].drive);
    if (moved[0])
        err_prefix("%s already run%s on %s destination%s (libvirt names %s); the pivot of %s "
                   "failed, and it and the disks after it stay on their sources",
                   moved, strchr(moved, ',') ? "" : "s", strchr(moved, ',') ? "their" : "its",
                   strchr(moved, ',') ? "s" : "", strchr(moved, ',') ? "them" : "it",
                   l->cfg->vols[failed_at].drive);
}

static enum attempt pivot_all(struct lv *l)
{
    /* The controller learns here that the VM is about to run on the
     * destinations (KubeVirt's targetNodeDomainReadyTimestamp). */
    run_switching(l->r, "block-job-pivot");
    for (int i = 0; i < l->cfg->nvols; i++) {
        struct lv_vol *lv = &l->v[i];
        struct mig_volume *v = &l->cfg->vols[i];

        if (lv->moved)
            continue;
        if (lvd_finish(l->c, lv->target, true, clock_ms() + FINISH_TIMEOUT_MS) < 0) {
            enum attempt a = lv_failed(l, ATT_RETRY);

            say_where(l, i);
            return a;
        }
        lv->started = false;
        lv->moved = true;
        snprintf(v->status, sizeof v->status, "pivoted");
        /* libvirt skips the persistent definition, with only a debug
         * message, in cases lvd_copy_check cannot foresee all of: say so
         * loudly instead of redefining the domain behind the user's back.
         * Retrying cannot help. */
        if (lvd_verify(l->c, lv->target, &v->uri) < 0) {
            err_prefix("drive '%s' was pivoted, but", v->drive);
            return ATT_FINAL;
        }
    }
    return ATT_OK;
}

/* none: each READY copy is aborted, which leaves it consistent. */
enum attempt lv_abort_all(struct lv *l)
{
    for (int i = 0; i < l->cfg->nvols; i++) {
        struct lv_vol *lv = &l->v[i];

        if (!lv->started)
            continue;
        if (lvd_finish(l->c, lv->target, false, clock_ms() + FINISH_TIMEOUT_MS) < 0)
            return lv_failed(l, ATT_RETRY);
        lv->started = false;
        snprintf(l->cfg->vols[i].status, sizeof l->cfg->vols[i].status, "copied");
    }
    return ATT_OK;
}

static enum attempt copy_attempt(struct lv *l, int attempt)
{
    enum attempt a;
    bool pivot = l->cfg->switchover == MIG_SW_PIVOT;

    l->last_progress = l->prev_at = l->stall_at = 0;
    l->rate = 0;
    if ((a = lv_start_copies(l, attempt)) != ATT_OK)
        return a;
    lv_emit_started(l, attempt);
    if ((a = lv_wait_ready(l)) != ATT_OK)
        return a;
    lv_copy_progress(l);
    run_emit(l->r, json_pack("{s:s}", "event", "ready"));
    run_emit(l->r, json_pack("{s:s, s:s}", "event", "switchover", "mode",
                             pivot ? "pivot" : "none"));
    return pivot ? pivot_all(l) : lv_abort_all(l);
}

/* ---- the strategy ---- */

static int resolve_all(struct lv *l)
{
    struct mig_config *cfg = l->cfg;

    for (int i = 0; i < cfg->nvols; i++) {
        struct mig_volume *v = &cfg->vols[i];

        if (lvd_resolve(l->c, v->drive, &l->v[i].target) < 0)
            return -1;
        for (int j = 0; j < i; j++)
            if (!strcmp(l->v[j].target, l->v[i].target)) {
                err_set(0, "drives '%s' and '%s' are the same disk (%s)", cfg->vols[j].drive,
                        v->drive, l->v[i].target);
                return -1;
            }
        snprintf(v->node, sizeof v->node, "%s", l->v[i].target);
        if (lvd_capacity(l->c, l->v[i].target, &v->size) < 0)
            return -1;
        v->target_size = v->size;
    }
    return 0;
}

/* Everything that must hold before anything starts, so that a refusal
 * leaves the domain untouched.  A migrate:URI destination file lives on
 * the other host: it is checked here only when it is visible here too. */
static int check_all(struct lv *l)
{
    for (int i = 0; i < l->cfg->nvols; i++) {
        struct mig_volume *v = &l->cfg->vols[i];

        if (l->cfg->switchover == MIG_SW_MIGRATE && access(v->uri.path, F_OK) < 0)
            continue;
        if (lvd_copy_check(l->c, l->v[i].target, &v->uri, l->tls_on ? &l->tls : NULL,
                           CHECK_TIMEOUT_MS, &l->v[i].fit) < 0)
            return -1;
    }
    return 0;
}

static int lv_init(struct mig_run *r)
{
    struct lv *l = calloc(1, sizeof *l);
    const char *why = mig_libvirt_refusal(r->cfg);

    if (!l) {
        err_set(ENOMEM, "libvirt state");
        return -1;
    }
    l->r = r;
    l->cfg = r->cfg;
    r->state = l;
    if (why) {
        err_set(0, "%s", why);
        return -1;
    }
    if (mig_libvirt_parse_addr(r->cfg->qmp + 8, &l->name, &l->uri) < 0)
        return -1;
    if (r->cfg->switchover == MIG_SW_MIGRATE &&
        mig_libvirt_parse_dest(r->cfg->migrate_uri, &l->dest_uri, &l->migrate_uri,
                               &l->disks_uri) < 0)
        return -1;
    if (!(l->v = calloc((size_t)r->cfg->nvols, sizeof *l->v))) {
        err_set(ENOMEM, "libvirt state");
        return -1;
    }
    if (r->cfg->tls_creds) {
        if (client_tls_init(&l->tls, r->cfg->tls_creds, NULL, NULL) < 0)
            return -1;
        l->tls_on = true;
    }
    for (int i = 0; i < r->cfg->nvols; i++)
        l->v[i].copy_dest = &r->cfg->vols[i].uri;
    if (r->cfg->switchover == MIG_SW_MIGRATE && lv_take_serves(l) < 0)
        return -1;
    if (!(l->c = lvd_open(l->uri, l->name)))
        return -1;
    return resolve_all(l) == 0 && check_all(l) == 0 ? 0 : -1;
}

static enum attempt lv_attempt(struct mig_run *r, int attempt)
{
    struct lv *l = r->state;

    if (l->cfg->switchover != MIG_SW_MIGRATE)
        return copy_attempt(l, attempt);
    return l->via_serve ? lv_serve_attempt(l, attempt) : lv_migrate_attempt(l, attempt);
}

/* Aborts what this attempt started: libvirt then runs the domain on the
 * disks it ran on before (or, for those pivoted, on their destinations). */
static void lv_cleanup(struct mig_run *r)
{
    struct lv *l = r->state;
    struct err_saved e;

    err_save(&e);
    lv_watch_stop(l);
    if (l->mig) {
        if (!lvd_migrate_ended(l->mig))
            lvd_migrate_abort(l->c);
        lvd_migrate_end(l->mig, NULL);
        l->mig = NULL;
    }
    for (int i = 0; i < l->cfg->nvols; i++) {
        struct lvd_progress p;

        if (!l->v[i].started)
            continue;
        /* A copy that failed on its own has no job left to abort. */
        if (lvd_job_info(l->c, l->v[i].target, &p) == 0) {
            l->v[i].started = false;
            continue;
        }
        if (lvd_finish(l->c, l->v[i].target, false, clock_ms() + FINISH_TIMEOUT_MS) == 0)
            l->v[i].started = false;
        else
            run_emit(r, json_pack("{s:s, s:s, s:s}", "event", "warning", "message", err_msg(),
                                  "drive", l->cfg->vols[i].drive));
    }
    if (l->suspended && lvd_alive(l->c)) {
        if (lvd_resume(l->c) == 0)
            l->suspended = false;
        else
            run_emit(r, json_pack("{s:s, s:s}", "event", "warning", "message", err_msg()));
    }
    err_restore(e.errnum, e.msg);
}

static void lv_finish(struct mig_run *r, enum mig_result res)
{
    struct lv *l = r->state;

    (void)res;
    if (!l)
        return;
    if (l->mig || l->suspended)
        lv_cleanup(r);
    lv_watch_stop(l);
    lvd_close(l->c);
    for (int i = 0; l->v && i < l->cfg->nvols; i++)
        free(l->v[i].target);
    free(l->v);
    free(l->name);
    free(l->uri);
    free(l->dest_uri);
    free(l->migrate_uri);
    free(l->disks_uri);
    free(l);
    r->state = NULL;
}

const struct mig_strategy mig_libvirt = {
    .name = "libvirt",
    .init = lv_init,
    .attempt = lv_attempt,
    .cleanup = lv_cleanup,
    .finish = lv_finish,
};
