/* volmig migrate --mode bitmap: the passes, the pause, the strategy.
 * The design is in engine/migrate_bitmap.h; the data moves through
 * copy_run(); what is added to QEMU for it is engine/migrate_bitmap_qemu.c's. */
#include "engine/migrate_bitmap.h"
#include "engine/latency_watch.h"
#include "engine/migrate_run.h"
#include "engine/target_tls.h"
#include "engine/target_probe.h"
#include "common/error.h"
#include "qmp/qmp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define QMP_TIMEOUT_MS    RUN_QMP_TIMEOUT_MS
#define TARGET_PROBE_MS   10000     /* a target to answer before pass 0 */
#define FINAL_MAX_PASSES  16        /* paused passes before giving up */
/* The copier's depth.  QEMU serves every NBD export from one thread (its
 * main loop), the guest's own export included when the guest is a client
 * of the same server, and the requests it has in hand are served roughly in
 * turn: every read of ours in flight is work queued in front of a guest
 * request, and every connection of ours one more turn in the round.  Two
 * connections and 16 x 256 KiB (4 MiB, a few ms of QEMU's work) keep QEMU
 * busy: in bench/bitmap.sh the copier's default 4 x 64 (16 MiB) copied no
 * faster, and the stand-in guest's p99 was as high or higher (a noisy
 * 2-CPU machine: the differences are within its noise, the direction is
 * not). */
#define COPY_CONNECTIONS  2
#define COPY_REQUESTS     16

/* ---- pure parts ---- */

enum bitmap_step bitmap_decide(int pass, uint64_t dirty, uint64_t prev, uint64_t threshold)
{
    if (dirty <= threshold)
        return BM_SMALL;
    if (pass >= 1 && dirty >= prev)
        return BM_NOT_SHRINKING;
    if (pass >= BITMAP_MAX_PASSES)
        return BM_MAX_PASSES;
    return BM_PASS;
}

uint64_t bitmap_threshold(int64_t configured, double rate)
{
    double t = rate * 0.1;

    if (configured >= 0)
        return (uint64_t)configured;
    /* Written so that a rate that is not a number lands here too: casting
     * NaN to an integer is undefined, and an unmeasured rate means the
     * smallest threshold. */
    if (!(t >= (1 << 20)))
        return 1 << 20;
    if (t > (64 << 20))
        return 64 << 20;
    return (uint64_t)t;
}

const char *bitmap_step_name(enum bitmap_step s)
{
    switch (s) {
    case BM_SMALL:         return "below-threshold";
    case BM_NOT_SHRINKING: return "not-shrinking";
    case BM_MAX_PASSES:    return "max-passes";
    default:               return "pass";
    }
}

/* ---- plumbing ---- */

static int64_t dl(int64_t ms)
{
    return qmp_deadline_in(ms);
}

static void emit(struct bm *b, json_t *ev)
{
    run_emit(b->r, ev);
}

static bool cancelled(const struct bm *b)
{
    return run_cancelled(b->r);
}

/* ---- passes ---- */

struct progress_ctx {
    struct bm *b;
    int vol;
};

/* The latency-aware copy's step, from the copier's progress: what this
 * attempt copied so far and what the guest dirtied (the recording
 * bitmap's count, read only when the watch is about to step), and the
 * copier's next rate limit. */
static void pace(struct bm *b, const struct copy_status *st)
{
    uint64_t count = b->lw_dirty_last, limit;

    if (!lw_due(b->lw))
        return;
    if (bm_dirty_count(b, b->gen, &count) < 0)
        count = b->lw_dirty_last;
    if (b->gen != b->lw_gen) {
        b->lw_dirty_base += b->lw_dirty_last;
        b->lw_gen = b->gen;
    }
    b->lw_dirty_last = count;
    /* Bitmap mode converges by its passes (a dirty set that stops
     * shrinking pauses the guest), so the watch needs no remaining. */
    if (lw_tick(b->lw, b->lw_copied + st->done, b->lw_dirty_base + count, 0, &limit))
        b->pace = limit;
}

static void watch_start(struct bm *b)
{
    struct lw_volume *lv;

    b->pace = b->cfg->speed;
    if (b->cfg->nvols <= 0 || !(lv = calloc((size_t)b->cfg->nvols, sizeof *lv)))
        return;
    for (int i = 0; i < b->cfg->nvols; i++)
        lv[i] = (struct lw_volume){ b->cfg->vols[i].drive, b->cfg->vols[i].node,
                                    b->cfg->vols[i].size };
    /* The probe goes through the server the copy reads from. */
    b->lw = lw_start(b->r, &b->cfg->latency_budget, lv, b->cfg->nvols, b->sock,
                     b->cfg->speed);
    free(lv);
    if (b->lw)
        b->pace = lw_limit(b->lw);
    b->lw_copied = b->lw_dirty_base = b->lw_dirty_last = 0;
    b->lw_gen = b->gen;
}

static void watch_stop(struct bm *b)
{
    lw_stop(b->lw);
    b->lw = NULL;
    b->pace = b->cfg->speed;
}

static void copy_progress(void *opaque, enum copy_event ev, const struct copy_status *st)
{
    struct progress_ctx *p = opaque;
    struct bm *b = p->b;
    json_t *vols;
    uint64_t done = 0, total = 0;
    char status[32];

    if (ev != COPY_EV_PROGRESS)
        return;
    pace(b, st);
    /* With a watch the copier reports more often than progress is due. */
    if (b->lw && qmp_now_ms() - b->last_progress < b->cfg->progress_ms)
        return;
    b->last_progress = qmp_now_ms();
    vols = json_array();
    b->vol_done[p->vol] = st->done;
    snprintf(status, sizeof status, "pass %d", b->pass);
    for (int i = 0; i < b->cfg->nvols; i++) {
        json_array_append_new(vols, json_pack("{s:s, s:I, s:I, s:I, s:s}", "drive",
                                              b->cfg->vols[i].drive, "done",
                                              (json_int_t)b->vol_done[i], "total",
                                              (json_int_t)b->vol_todo[i], "remaining",
                                              (json_int_t)(b->vol_todo[i] - b->vol_done[i]),
                                              "status", status));
        done += b->vol_done[i];
        total += b->vol_todo[i];
    }
    emit(b, json_pack("{s:s, s:i, s:I, s:o, s:I, s:I, s:I, s:f, s:f}", "event", "progress",
                      "pass", b->pass, "dirty", (json_int_t)b->pass_dirty, "volumes", vols,
                      "done", (json_int_t)done, "total", (json_int_t)total, "remaining",
                      (json_int_t)(total - done), "rate", st->rate, "eta", st->eta));
}

/* Copies volume vol through export id: all of it (ranges NULL) or the
 * ranges. */
static enum attempt copy_volume(struct bm *b, int vol, const char *id, const struct copy_range *ranges,
                            size_t n, struct copy_status *st)
{
    char src[512], tls_target[4200];
    const struct mig_volume *v = &b->cfg->vols[vol];
    struct progress_ctx pc = { b, vol };
    struct copy_config cc = {
        .source = src, .target = v->target, .connections = COPY_CONNECTIONS,
        .requests = COPY_REQUESTS, .tls = b->tls_on ? &b->tls : NULL,
        .max_rate = b->cfg->speed, .pace = b->lw ? &b->pace : NULL,
        .progress_ms = b->lw ? LW_TICK_MS : b->cfg->progress_ms, .cancel = b->cfg->cancel,
        .ranges = ranges,
        .nranges = n, .emit = copy_progress, .opaque = &pc,
    };
    enum copy_result r;

    bm_source_uri(b, id, src, sizeof src);
    /* With TLS options every NBD target uses TLS, as in mirror mode: the
     * copier takes that from the URI's scheme (nbd:// becomes nbds://). */
    if (b->tls_on && v->uri.kind != URI_FILE && !v->uri.tls) {
        snprintf(tls_target, sizeof tls_target, "nbds%s", v->target + 3);
        cc.target = tls_target;
    }
    memset(st, 0, sizeof *st);
    r = copy_run(&cc, st);
    b->lw_copied += st->done;
    if (r == COPY_CANCELLED)
        return ATT_CANCELLED;
    if (r == COPY_FAILED) {
        struct err_saved saved;

        err_prefix("pass %d of drive '%s'", b->pass, b->cfg->vols[vol].drive);
        /* The export's connections die with QEMU: ask the monitor, so that
         * a dead QEMU is reported as such and not retried. */
        err_save(&saved);
        qmp_call(b->q, "query-status", NULL, NULL, dl(QMP_TIMEOUT_MS));
        err_restore(saved.errnum, saved.msg);
        return run_qmp_failed(b->r, ATT_RETRY);
    }
    return ATT_OK;
}

/* ---- what is still to copy (the invariant of migrate_bitmap_resume.c) ---- */

/* Volume vol's pass sets out to copy r (NULL: all of it), which includes
 * what was pending: r becomes the pending set.  -1 on no memory. */
static int set_pending(struct bm *b, int vol, const struct copy_range *r, size_t n)
{
    struct copy_range whole = { 0, b->cfg->vols[vol].size }, *p;

    if (!r) {
        r = &whole;
        n = 1;
    }
    p = realloc(b->pend[vol], (n ? n : 1) * sizeof *p);
    if (!p) {
        err_set(ENOMEM, "pending ranges");
        return -1;
    }
    memcpy(p, r, n * sizeof *p);
    b->pend[vol] = p;
    b->npend[vol] = n;
    return 0;
}

/* After the copy: what it settled is no longer pending.  Everything below
 * the copier's contiguous mark is written and acknowledged. */
static void settle_pending(struct bm *b, int vol, enum attempt a, const struct copy_status *st)
{
    b->npend[vol] = a == ATT_OK ? 0 : ranges_from(b->pend[vol], b->npend[vol], st->contiguous);
}

/* pend[vol] together with r, into *out (caller frees).  -1 on no memory. */
static int with_pending(struct bm *b, int vol, const struct copy_range *r, size_t n,
                        struct copy_range **out, size_t *nout)
{
    *out = malloc((b->npend[vol] + n + 1) * sizeof **out);
    if (!*out) {
        err_set(ENOMEM, "pending ranges");
        return -1;
    }
    *nout = ranges_union(b->pend[vol], b->npend[vol], r, n, *out);
    return 0;
}

static void emit_pass(struct bm *b, int64_t t, uint64_t dirty)
{
    emit(b, json_pack("{s:s, s:i, s:I, s:I, s:f, s:b}", "event", "pass", "pass", b->pass,
                      "dirty", (json_int_t)dirty, "data", (json_int_t)b->pass_data, "seconds",
                      (double)t / 1000.0, "paused", b->paused_pass));
    b->pass++;
}

/* Copies volume vol's ranges r (NULL: all of it) through export id, as a
 * pass of its own: pending before, settled after. */
static enum attempt copy_pending(struct bm *b, int vol, const char *id, const struct copy_range *r,
                                 size_t n, uint64_t *settled)
{
    struct copy_status st;
    enum attempt a;

    if (set_pending(b, vol, r, n) < 0)
        return ATT_FINAL;
    b->vol_todo[vol] = r ? ranges_bytes(r, n) : b->cfg->vols[vol].size;
    b->vol_done[vol] = 0;
    if (r && !n)
        return ATT_OK;
    a = copy_volume(b, vol, id, r, n, &st);
    settle_pending(b, vol, a, &st);
    *settled += st.done;
    b->pass_data += st.data;
    return a;
}

/* Pass 0: everything, while a fresh bitmap generation records. */
static enum attempt pass_full(struct bm *b)
{
    enum attempt a = bm_switch_bitmaps(b, true);
    char id[96];
    uint64_t settled = 0;
    int64_t t = qmp_now_ms();

    if (a != ATT_OK)
        return a;
    b->pass_dirty = b->pass_data = 0;
    for (int i = 0; i < b->cfg->nvols; i++) {
        b->vol_todo[i] = b->cfg->vols[i].size;
        b->vol_done[i] = 0;
        b->pass_dirty += b->cfg->vols[i].size;
        b->tsize[i] = b->cfg->vols[i].target_size;
        if (set_pending(b, i, NULL, 0) < 0)
            return ATT_FINAL;
    }
    /* From here everything still to copy is in pend and the bitmaps. */
    b->resumable = true;
    for (int i = 0; i < b->cfg->nvols; i++) {
        a = bm_export_add(b, i, b->gen, false, id, sizeof id);
        if (a != ATT_OK)
            return a;
        a = copy_pending(b, i, id, NULL, 0, &settled);
        if (run_export_del(b->q, id) < 0 && a == ATT_OK)
            a = run_qmp_failed(b->r, ATT_RETRY);
        if (a != ATT_OK)
            return a;
    }
    t = qmp_now_ms() - t;
    b->rate = t > 0 ? (double)settled * 1000.0 / (double)t : 0;
    emit_pass(b, t, settled);
    return ATT_OK;
}

/* Exports volume vol's node with frozen bitmap generation old as id, and
 * reads what that bitmap marks together with what is pending into *r. */
static enum attempt todo_ranges(struct bm *b, int vol, int old, char *id, size_t idlen,
                                struct copy_range **r, size_t *n)
{
    struct copy_range *d = NULL;
    size_t nd = 0;
    uint64_t bytes = 0;
    char bname[96];
    enum attempt a = bm_export_add(b, vol, old, true, id, idlen);

    if (a != ATT_OK)
        return a;
    bm_bitmap_name(b, vol, old, bname, sizeof bname);
    if (bitmap_dirty_ranges(b->sock, id, bname, b->cfg->vols[vol].size, &d, &nd, &bytes) < 0) {
        run_export_del(b->q, id);
        return run_qmp_failed(b->r, ATT_RETRY);
    }
    a = with_pending(b, vol, d, nd, r, n) < 0 ? ATT_FINAL : ATT_OK;
    free(d);
    if (a != ATT_OK)
        run_export_del(b->q, id);
    return a;
}

/* The end of volume vol's part of a pass over frozen generation old. */
static enum attempt pass_end(struct bm *b, int vol, int old, const char *id, enum attempt a)
{
    char bname[96];

    if (run_export_del(b->q, id) < 0 && a == ATT_OK)
        a = run_qmp_failed(b->r, ATT_RETRY);
    /* Also after a failure: what the bitmap marked is pending now. */
    bm_bitmap_name(b, vol, old, bname, sizeof bname);
    if (qmp_callf(b->q, NULL, dl(QMP_TIMEOUT_MS), "block-dirty-bitmap-remove", "{s:s, s:s}",
                  "node", b->cfg->vols[vol].node, "name", bname) < 0 && a == ATT_OK)
        a = run_qmp_failed(b->r, ATT_RETRY);
    return a;
}

/* Pass k: freeze the bitmap of the last pass, copy what it marks (and
 * whatever is pending). */
static enum attempt pass_dirty(struct bm *b)
{
    enum attempt a = bm_switch_bitmaps(b, false);
    int old = b->gen - 1;
    char id[96];
    uint64_t settled = 0;
    int64_t t = qmp_now_ms();

    if (a != ATT_OK)
        return a;
    b->pass_dirty = b->pass_data = 0;
    for (int i = 0; i < b->cfg->nvols; i++) {
        struct copy_range *r = NULL;
        size_t n = 0;

        a = todo_ranges(b, i, old, id, sizeof id, &r, &n);
        if (a != ATT_OK)
            return a;
        b->pass_dirty += ranges_bytes(r, n);
        a = copy_pending(b, i, id, r, n, &settled);
        free(r);
        a = pass_end(b, i, old, id, a);
        if (a != ATT_OK)
            return a;
    }
    emit_pass(b, qmp_now_ms() - t, b->pass_dirty);
    return ATT_OK;
}

/* Whether volume vol resumes with *r (the failed attempt's leftovers) or
 * is copied in full (*r freed, NULL, no ranges): the resumed event's entry
 * for it. */
static json_t *resume_or_not(struct bm *b, int vol, const char *id, struct copy_range **r,
                             size_t *n)
{
    const struct mig_volume *v = &b->cfg->vols[vol];
    char why[512] = "";
    uint64_t todo = ranges_bytes(*r, *n);
    json_t *entry;

    /* Across processes a volume the earlier run kept nothing usable for
     * is copied in full (its pend is all of it), for the reason found. */
    if (b->keep_adopted && b->keep_why[vol][0])
        snprintf(why, sizeof why, "%s", b->keep_why[vol]);
    if (why[0] || bm_resume_check(b, vol, id, *r, *n, why, sizeof why) != 1) {
        free(*r);
        *r = NULL;
        *n = 0;
        todo = v->size;
    }
    b->tsize[vol] = v->target_size;
    entry = json_pack("{s:s, s:I, s:I, s:b}", "drive", v->drive, "kept",
                      (json_int_t)(v->size - todo), "todo", (json_int_t)todo, "full", !*r);
    if (!*r)
        json_object_set_new(entry, "why", json_string(why));
    return entry;
}

/* The first pass of a retry: per volume, what the failed attempt left
 * (pending, and the bitmap kept recording since) if the destination
 * passes bm_resume_check(), else everything.  Says which in a resumed
 * event. */
static enum attempt pass_resume(struct bm *b, int attempt)
{
    int nv = b->cfg->nvols, old;
    struct copy_range **r = calloc((size_t)nv, sizeof *r);
    size_t *n = calloc((size_t)nv, sizeof *n);
    char (*id)[96] = calloc((size_t)nv, sizeof *id);
    bool *live = calloc((size_t)nv, sizeof *live);   /* export id[i] is up */
    json_t *vols = json_array(), *ev;
    const char *why = NULL;
    uint64_t kept = 0, settled = 0;
    int64_t t = qmp_now_ms();
    enum attempt a = r && n && id && live ? bm_switch_bitmaps(b, false) : ATT_FINAL;

    old = b->gen - 1;
    b->pass_dirty = b->pass_data = 0;
    for (int i = 0; i < nv && a == ATT_OK; i++) {
        json_t *vol;

        a = todo_ranges(b, i, old, id[i], sizeof id[i], &r[i], &n[i]);
        if (a != ATT_OK)
            break;
        live[i] = true;
        vol = resume_or_not(b, i, id[i], &r[i], &n[i]);
        why = why ? why : json_string_value(json_object_get(vol, "why"));
        kept += (uint64_t)json_integer_value(json_object_get(vol, "kept"));
        b->pass_dirty += (uint64_t)json_integer_value(json_object_get(vol, "todo"));
        json_array_append_new(vols, vol);
    }
    if (a == ATT_OK) {
        ev = json_pack("{s:s, s:i, s:I, s:I, s:O}", "event", "resumed", "attempt", attempt + 1,
                       "kept", (json_int_t)kept, "todo", (json_int_t)b->pass_dirty, "volumes",
                       vols);
        if (why)
            json_object_set_new(ev, "why", json_string(why));
        if (b->keep_adopted)
            json_object_set_new(ev, "earlier_run", json_true());
        emit(b, ev);
    }
    b->keep_adopted = false;
    for (int i = 0; i < nv && a == ATT_OK; i++) {
        a = copy_pending(b, i, id[i], r[i], n[i], &settled);
        a = pass_end(b, i, old, id[i], a);
        live[i] = false;
    }
    /* A failure before a volume's turn: its export goes, its frozen bitmap
     * stays (the cleanup merges it into the one recording). */
    for (int i = 0; live && i < nv; i++)
        if (live[i])
            run_export_del(b->q, id[i]);
    json_decref(vols);
    for (int i = 0; r && i < nv; i++)
        free(r[i]);
    free(r);
    free(n);
    free(id);
    free(live);
    if (a != ATT_OK)
        return a;
    t = qmp_now_ms() - t;
    b->rate = t > 0 ? (double)settled * 1000.0 / (double)t : 0;
    emit_pass(b, t, b->pass_dirty);
    return ATT_OK;
}

/* Live passes until the dirty set is small or stops shrinking. */
static enum attempt converge(struct bm *b)
{
    uint64_t threshold = bitmap_threshold(b->cfg->converge_below, b->rate);
    uint64_t prev = UINT64_MAX, dirty;

    for (;;) {
        enum bitmap_step s;
        enum attempt a;

        if (cancelled(b))
            return ATT_CANCELLED;
        if (bm_dirty_count(b, b->gen, &dirty) < 0)
            return run_qmp_failed(b->r, ATT_RETRY);
        s = bitmap_decide(b->pass - 1, dirty, prev, threshold);
        if (s != BM_PASS) {
            emit(b, json_pack("{s:s, s:s, s:I, s:I, s:i}", "event", "converged", "reason",
                              bitmap_step_name(s), "dirty", (json_int_t)dirty, "threshold",
                              (json_int_t)threshold, "passes", b->pass));
            if (s == BM_NOT_SHRINKING || s == BM_MAX_PASSES)
                emit(b, json_pack("{s:s, s:s}", "event", "warning", "message",
                                  s == BM_NOT_SHRINKING
                                  ? "the dirty set stopped shrinking: the guest writes as fast "
                                    "as the copy goes; pausing it for the last pass anyway"
                                  : "too many passes; pausing the guest for the last one"));
            return ATT_OK;
        }
        a = pass_dirty(b);
        if (a != ATT_OK)
            return a;
        prev = b->pass_dirty;
    }
}

/* With the guest paused: passes until one finds nothing new dirtied.  A
 * paused guest writes nothing, so that is normally one pass; more mean
 * something outside the guest still writes. */
static enum attempt final_passes(struct bm *b, int *n)
{
    uint64_t dirty = 0;

    b->paused_pass = true;
    for (*n = 0; *n < FINAL_MAX_PASSES; (*n)++) {
        enum attempt a = pass_dirty(b);

        if (a != ATT_OK)
            return a;
        if (bm_dirty_count(b, b->gen, &dirty) < 0)
            return run_qmp_failed(b->r, ATT_RETRY);
        if (dirty == 0) {
            (*n)++;
            return ATT_OK;
        }
    }
    err_set(0, "the drives were still written while the guest was paused (%llu bytes after %d "
               "passes): something outside the guest writes to them",
            (unsigned long long)dirty, FINAL_MAX_PASSES);
    return ATT_FINAL;
}

static const char *status_of(struct bm *b, const char *cmd, json_t **holder)
{
    if (qmp_call(b->q, cmd, NULL, holder, dl(QMP_TIMEOUT_MS)) < 0)
        return NULL;
    return json_string_value(json_object_get(*holder, "status"));
}

static void emit_paused(struct bm *b, int64_t from, int passes, json_t *extra)
{
    json_t *ev = json_pack("{s:s, s:f, s:i}", "event", "paused", "seconds",
                           (double)(qmp_now_ms() - from) / 1000.0, "final_passes", passes);

    if (extra)
        json_object_update(ev, extra);
    json_decref(extra);
    emit(b, ev);
}

static enum attempt switch_none(struct bm *b)
{
    json_t *h = NULL;
    const char *st = status_of(b, "query-status", &h);
    bool running = st && !strcmp(st, "running");
    int64_t from;
    int n = 0;
    enum attempt a;

    json_decref(h);
    if (!st)
        return run_qmp_failed(b->r, ATT_RETRY);
    emit(b, json_pack("{s:s, s:s}", "event", "switchover", "mode", "none"));
    from = qmp_now_ms();
    if (running) {
        if (qmp_call(b->q, "stop", NULL, NULL, dl(QMP_TIMEOUT_MS)) < 0)
            return run_qmp_failed(b->r, ATT_RETRY);
        b->stopped = true;
    }
    a = final_passes(b, &n);
    if (a != ATT_OK)
        return a;
    /* Nothing of ours is needed any more: remove it while paused, so the
     * guest resumes without our bitmaps slowing its writes. */
    bm_sweep_mine(b);
    b->server_started = false;
    if (b->stopped) {
        if (qmp_call(b->q, "cont", NULL, NULL, dl(QMP_TIMEOUT_MS)) < 0)
            return run_qmp_failed(b->r, ATT_RETRY);
        b->stopped = false;
    }
    emit_paused(b, from, n, running ? NULL : json_pack("{s:s}", "note",
                                                       "the VM was not running: no pause"));
    return ATT_OK;
}

static enum attempt switch_migrate(struct bm *b)
{
    json_t *last = NULL, *extra;
    enum attempt a;
    int64_t from;
    int n = 0;

    emit(b, json_pack("{s:s, s:s}", "event", "switchover", "mode", "migrate"));
    a = run_migration_start(b->r, NULL);
    if (a != ATT_OK)
        return a;
    /* The guest is paused from here until the migration completes. */
    from = qmp_now_ms();
    a = final_passes(b, &n);
    if (a != ATT_OK)
        return a;
    bm_sweep_mine(b);
    b->server_started = false;
    extra = json_pack("{s:f}", "blocks_finished_in", (double)(qmp_now_ms() - from) / 1000.0);
    a = run_migration_continue(b->r, &last);
    if (a != ATT_OK) {
        json_decref(extra);
        return a;
    }
    /* QEMU's own figure for the whole stop-and-copy phase, memory included. */
    if (json_object_get(last, "downtime"))
        json_object_set(extra, "qemu_downtime_ms", json_object_get(last, "downtime"));
    json_decref(last);
    emit_paused(b, from, n, extra);
    return ATT_OK;
}

/* Every target is looked at before anything is copied, so that a bad
 * second volume fails the run before the first one is written.  A file
 * target that does not exist yet is created by the copier, at the drive's
 * size. */
static enum attempt check_targets(struct bm *b)
{
    for (int i = 0; i < b->cfg->nvols; i++) {
        struct mig_volume *v = &b->cfg->vols[i];
        bool blockdev;

        if (v->uri.kind == URI_FILE) {
            if (probe_file_target(v->uri.path, &v->target_size, &blockdev) < 0) {
                if (err_errno() == ENOENT)
                    continue;
                err_prefix("drive '%s'", v->drive);
                return ATT_FINAL;
            }
        } else if (probe_nbd_target(&v->uri, b->tls_on ? &b->tls : NULL, TARGET_PROBE_MS,
                                    &v->target_size) < 0) {
            err_prefix("drive '%s'", v->drive);
            return ATT_RETRY;     /* as in mirror mode: it may be on its way */
        }
        if (probe_fits(v->target, v->target_size, v->drive, v->size) < 0)
            return ATT_FINAL;
    }
    return ATT_OK;
}

/* A resumed event for an attempt that copies everything, and why. */
static void emit_not_resumed(struct bm *b, int attempt, const char *why)
{
    uint64_t all = 0;

    for (int i = 0; i < b->cfg->nvols; i++)
        all += b->cfg->vols[i].size;
    emit(b, json_pack("{s:s, s:i, s:I, s:I, s:s}", "event", "resumed", "attempt", attempt + 1,
                      "kept", (json_int_t)0, "todo", (json_int_t)all, "why", why));
}

static enum attempt attempt_once(struct bm *b, int attempt)
{
    json_t *vols = json_array();
    enum attempt a;

    bool resume = attempt > 0 && b->resumable;

    /* b->gen goes on counting across attempts: a retry's names never
     * meet what a failed attempt left. */
    b->pass = 0;
    b->paused_pass = false;
    b->pass_data = 0;
    for (int i = 0; i < b->cfg->nvols; i++) {
        struct mig_volume *v = &b->cfg->vols[i];

        json_array_append_new(vols, json_pack("{s:s, s:s, s:s, s:I}", "drive", v->drive, "node",
                                              v->node, "target", v->target, "size",
                                              (json_int_t)v->size));
    }
    a = check_targets(b);
    if (a == ATT_OK)
        a = bm_server_start(b);
    if (a != ATT_OK) {
        json_decref(vols);
        return a;
    }
    /* The guest's latency before the copy is the budget's reference; it is
     * measured before the started event, which says that pass 0 begins. */
    watch_start(b);
    emit(b, json_pack("{s:s, s:i, s:o, s:s, s:s}", "event", "started", "attempt", attempt + 1,
                      "volumes", vols, "copy_mode", "bitmap", "mode", "bitmap"));
    /* The first attempt that gets this far looks for what a failed run
     * of an earlier process kept. */
    if (!b->keep_tried) {
        b->keep_tried = true;
        resume = b->keep_adopted = bm_keep_adopt(b);
        if (!resume && b->keep_seen)
            emit_not_resumed(b, attempt, b->keep_why[0]);
    }
    for (int i = 0; i < b->cfg->nvols && resume; i++)
        resume = bm_bitmap_exists(b, i, b->gen);
    if (attempt > 0 && b->resumable && !resume)
        emit_not_resumed(b, attempt, "the dirty bitmap the failed attempt kept is gone");
    a = resume ? pass_resume(b, attempt) : pass_full(b);
    if (a == ATT_OK)
        a = converge(b);
    /* The passes with the guest paused run at full speed: no guest waits
     * for them.  The probe export also goes before a memory migration. */
    watch_stop(b);
    if (a == ATT_OK && cancelled(b))
        a = ATT_CANCELLED;
    if (a != ATT_OK)
        return a;
    emit(b, json_pack("{s:s, s:s}", "event", "ready", "mode", "bitmap"));
    return b->cfg->switchover == MIG_SW_MIGRATE ? switch_migrate(b) : switch_none(b);
}

/* ---- the strategy ---- */

static int bitmap_init(struct mig_run *r)
{
    struct mig_config *cfg = r->cfg;
    struct bm *b;

    if (cfg->switchover == MIG_SW_PIVOT) {
        err_set(0, "--mode bitmap does not pivot (QEMU would have to reopen the drive on the "
                   "target): use --switchover none or migrate:URI, or --mode mirror");
        return -1;
    }
    if (cfg->tls_hostname) {
        /* libnbd checks the certificate against the URI's host and cannot
         * be told another name; skipping the check would send the data to
         * whoever answers. */
        err_set(0, "--mode bitmap cannot check a certificate against --tls-hostname: name the "
                   "certificate's host in the target URI, or use --mode mirror");
        return -1;
    }
    b = calloc(1, sizeof *b);
    if (!b) {
        err_set(ENOMEM, "bitmap state");
        return -1;
    }
    r->state = b;
    b->r = r;
    b->cfg = cfg;
    b->q = r->q;
    if (cfg->tls_creds || cfg->tls_psk) {
        if (client_tls_init(&b->tls, cfg->tls_creds, cfg->tls_psk, NULL) < 0)
            return -1;
        b->tls_on = true;
    }
    b->gen = -1;
    b->vol_done = calloc((size_t)cfg->nvols, sizeof *b->vol_done);
    b->vol_todo = calloc((size_t)cfg->nvols, sizeof *b->vol_todo);
    b->pend = calloc((size_t)cfg->nvols, sizeof *b->pend);
    b->npend = calloc((size_t)cfg->nvols, sizeof *b->npend);
    b->tsize = calloc((size_t)cfg->nvols, sizeof *b->tsize);
    b->keep_why = calloc((size_t)cfg->nvols, sizeof *b->keep_why);
    if (!b->vol_done || !b->vol_todo || !b->pend || !b->npend || !b->tsize || !b->keep_why) {
        err_set(ENOMEM, "volume state");
        return -1;
    }
    return 0;
}

static enum attempt bitmap_attempt(struct mig_run *r, int attempt)
{
    return attempt_once(r->state, attempt);
}

static void bitmap_cleanup(struct mig_run *r)
{
    watch_stop(r->state);
    bm_cleanup(r->state);
}

static void bitmap_complete(struct mig_run *r, json_t *completed)
{
    struct bm *b = r->state;

    bm_cleanup(b);
    json_object_set_new(completed, "passes", json_integer(b->pass));
}

static void bitmap_finish(struct mig_run *r, enum mig_result res)
{
    struct bm *b = r->state;

    if (!b)
        return;
    watch_stop(b);
    /* A failed run kept its bitmap for a retry that will not come in this
     * process: it hands it on to a later run.  Any other end makes what
     * was kept for these drives useless. */
    if (res == MIG_FAILED && b->resumable && qmp_is_open(r->q))
        bm_keep_persist(b);
    else if (res != MIG_FAILED)
        bm_keep_drop(b);
    if (b->resumable && qmp_is_open(r->q))
        bm_sweep_mine(b);
    run_sock_remove(&b->own);
    for (int i = 0; b->pend && i < b->cfg->nvols; i++)
        free(b->pend[i]);
    free(b->pend);
    free(b->npend);
    free(b->tsize);
    free(b->keep_why);
    free(b->vol_done);
    free(b->vol_todo);
    free(b);
    r->state = NULL;
}

const struct mig_strategy mig_bitmap = {
    .name = "bitmap",
    .init = bitmap_init,
    .attempt = bitmap_attempt,
    .cleanup = bitmap_cleanup,
    .complete = bitmap_complete,
    .finish = bitmap_finish,
};
