/* Mirror mode: QEMU's blockdev-mirror pushes every volume into its target;
 * volmig adds the target nodes, watches the jobs and switches over.  The
 * run core (engine/migrate_run.h) does the rest. */
#include "engine/migrate_mirror.h"
#include "engine/latency_watch.h"
#include "engine/target_tls.h"
#include "engine/target_probe.h"
#include "common/error.h"
#include "qmp/qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define QMP_TIMEOUT_MS     RUN_QMP_TIMEOUT_MS
#define CONNECT_TIMEOUT_MS 10000
#define SETTLE_TIMEOUT_MS  60000   /* jobs to conclude after a cancel */
#define NAME_PREFIX        MIG_NAME_PREFIX
#define STALL_WARN_MS      10000
#define PIVOT_PREFIX       "migrated-"   /* target nodes that become the VM's */
#define NODE_NAME_MAX      31            /* QEMU's limit on a node name */

/* The strategy's state, for the whole run (r->state). */
struct mig {
    struct mig_run *r;
    struct mig_config *cfg;
    struct qmp *q;
    int64_t last_progress;
    /* convergence watch */
    uint64_t best_remaining;
    int64_t best_at;
    bool warned;
    uint64_t prev_done;
    int64_t prev_at;
    double rate;              /* bytes per second, smoothed */
    bool no_space;            /* a target ran out of space: retrying cannot help */
    uint64_t stall_done;      /* progress when it last moved */
    int64_t stall_at;
    bool stall_warned;
    /* Jobs paused from outside (volmig never pauses one): per volume,
     * whether that was said for the pause going on; any_paused: some job
     * is paused now, so no data moving is no news. */
    bool *paused_warned;
    bool any_paused;
    /* TLS to NBD targets: QEMU's tls-creds object, and for PSK where the
     * key file is and whose key is ours */
    char tls_id[64];
    bool tls_added;
    struct client_tls tls;
    /* The latency-aware copy: from before the mirrors start until they
     * are READY. */
    struct lat_watch *lw;
};

static void emit(struct mig *m, json_t *ev)
{
    run_emit(m->r, ev);
}

static bool cancelled(const struct mig *m)
{
    return run_cancelled(m->r);
}

static int64_t dl(int64_t ms)
{
    return run_dl(ms);
}

static int nap(struct mig *m, int ms)
{
    return run_nap(m->r, ms);
}

/* ---- QEMU state ---- */

/* ---- targets ---- */


/* ---- TLS ---- */

static bool tls_wanted(const struct mig *m)
{
    return m->cfg->tls_creds || m->cfg->tls_psk;
}

/* Creates the tls-creds object the NBD nodes name.  It lives as long as
 * this migration (or, after a pivot onto NBD targets, as long as the VM
 * uses them). */
static int tls_add(struct mig *m)
{
    json_t *args;

    if (client_tls_init(&m->tls, m->cfg->tls_creds, m->cfg->tls_psk, m->cfg->tls_hostname) < 0)
        return -1;
    run_name(m->tls_id, sizeof m->tls_id, "tls");
    if (m->cfg->tls_creds)
        args = json_pack("{s:s, s:s, s:s, s:s, s:b}", "qom-type", "tls-creds-x509", "id",
                         m->tls_id, "dir", m->tls.creds_dir, "endpoint", "client",
                         "verify-peer", 1);
    else
        args = json_pack("{s:s, s:s, s:s, s:s, s:s}", "qom-type", "tls-creds-psk", "id",
                         m->tls_id, "dir", m->tls.psk_dir, "endpoint", "client", "username",
                         m->tls.psk_user);
    if (qmp_call(m->q, "object-add", args, NULL, dl(QMP_TIMEOUT_MS)) < 0) {
        err_prefix("QEMU could not load the TLS credentials");
        return -1;
    }
    m->tls_added = true;
    return 0;
}

static void tls_del(struct mig *m, enum mig_result res)
{
    bool in_use = res == MIG_DONE && m->cfg->switchover == MIG_SW_PIVOT;
    struct err_saved saved;

    if (!m->tls_added || in_use || !qmp_is_open(m->q))
        return;
    err_save(&saved);
    qmp_callf(m->q, NULL, dl(QMP_TIMEOUT_MS), "object-del", "{s:s}", "id", m->tls_id);
    m->tls_added = false;
    err_restore(saved.errnum, saved.msg);
}

/* Asks the destination how big the export is, within a deadline.
 * Returns 0, or -1 (retryable: nobody answered) with err_msg() set.  With
 * --tls-hostname the certificate names another host than the URI does;
 * libnbd cannot be told which, so this look skips the check and QEMU's
 * connection, which carries the data, makes it. */
static int nbd_target_size(struct mig *m, const struct target_uri *u, uint64_t *size)
{
    return probe_nbd_target(u, m->tls_added ? &m->tls : NULL, CONNECT_TIMEOUT_MS, size);
}

/* After a pivot the VM runs on the target nodes for good, so they get
 * names that are not ours to clean up or refuse later.  The node the
 * device ends up on is named after the source node (its base name, without
 * an earlier pivot's suffix) plus ".mPID", so that the name the user gave
 * keeps finding the drive (mig_pivot_base(), migrate_entry.c); a name too
 * long for that falls back to migrated-PID-tI. */
static void name_targets(struct mig *m, struct mig_volume *v, int i)
{
    char base[128];
    size_t n;
    bool pivot = m->cfg->switchover == MIG_SW_PIVOT;

    snprintf(v->proto_node, sizeof v->proto_node, "%s%d-p%d", pivot ? PIVOT_PREFIX : NAME_PREFIX,
             (int)getpid(), i);
    snprintf(v->top_node, sizeof v->top_node, "%s%d-t%d", pivot ? PIVOT_PREFIX : NAME_PREFIX,
             (int)getpid(), i);
    if (!pivot)
        return;
    n = mig_pivot_base(v->node);
    snprintf(base, sizeof base, "%.*s.m%d", (int)n, v->node, (int)getpid());
    if (strlen(base) + 2 > NODE_NAME_MAX)
        return;
    if (v->target_size == v->size) {
        snprintf(v->proto_node, sizeof v->proto_node, "%s", base);
    } else {
        snprintf(v->top_node, sizeof v->top_node, "%s", base);
        snprintf(v->proto_node, sizeof v->proto_node, "%s-f", base);
    }
}

/* Adds the nodes the mirror writes into.  A target larger than the source
 * gets a raw node limited to the source's size on top, because a mirror
 * wants both ends the same size. */
static enum attempt add_target(struct mig *m, struct mig_volume *v)
{
    json_t *args;
    bool blockdev = false;

    if (v->uri.kind == URI_FILE) {
        if (probe_file_target(v->uri.path, &v->target_size, &blockdev) < 0)
            return ATT_FINAL;
    } else if (nbd_target_size(m, &v->uri, &v->target_size) < 0) {
        return ATT_RETRY;
    }
    if (probe_fits(v->target, v->target_size, v->drive, v->size) < 0)
        return ATT_FINAL;
    name_targets(m, v, (int)(v - m->cfg->vols));
    if (v->uri.kind == URI_FILE) {
        /* QEMU refuses write permission on an O_DIRECT node whose size is
         * not a multiple of its request alignment (up to 4 KiB): such a
         * target goes through the page cache. */
        bool direct = v->target_size % 4096 == 0;

        args = direct ? json_pack("{s:s, s:s, s:s, s:{s:b}, s:s}", "driver",
                                  blockdev ? "host_device" : "file", "node-name", v->proto_node,
                                  "filename", v->uri.path, "cache", "direct", 1, "aio", "native")
                      : NULL;
        if (!direct || qmp_call(m->q, "blockdev-add", args, NULL, dl(QMP_TIMEOUT_MS)) < 0) {
            /* Some file systems (tmpfs) refuse O_DIRECT: fall back to the
             * page cache, which QEMU flushes at the end. */
            args = json_pack("{s:s, s:s, s:s}", "driver", blockdev ? "host_device" : "file",
                             "node-name", v->proto_node, "filename", v->uri.path);
            if (qmp_call(m->q, "blockdev-add", args, NULL, dl(QMP_TIMEOUT_MS)) < 0)
                return run_qmp_failed(m->r, ATT_FINAL);
        }
    } else {
        json_t *server = v->uri.kind == URI_NBD_UNIX
            ? json_pack("{s:s, s:s}", "type", "unix", "path", v->uri.socket)
            : json_pack("{s:s, s:s, s:s}", "type", "inet", "host", v->uri.host, "port", v->uri.port);

        args = json_pack("{s:s, s:s, s:o, s:s}", "driver", "nbd", "node-name", v->proto_node,
                         "server", server, "export", v->uri.export_name);
        if (m->tls_added)
            json_object_set_new(args, "tls-creds", json_string(m->tls_id));
        if (m->tls_added && m->cfg->tls_hostname)
            json_object_set_new(args, "tls-hostname", json_string(m->cfg->tls_hostname));
        if (qmp_call(m->q, "blockdev-add", args, NULL, dl(QMP_TIMEOUT_MS)) < 0)
            return run_qmp_failed(m->r, ATT_RETRY);
    }
    v->added_proto = true;
    if (v->target_size == v->size) {
        snprintf(v->top_node, sizeof v->top_node, "%s", v->proto_node);
        return ATT_OK;
    }
    args = json_pack("{s:s, s:s, s:s, s:I}", "driver", "raw", "node-name", v->top_node,
                     "file", v->proto_node, "size", (json_int_t)v->size);
    if (qmp_call(m->q, "blockdev-add", args, NULL, dl(QMP_TIMEOUT_MS)) < 0)
        return run_qmp_failed(m->r, ATT_FINAL);
    v->added_top = true;
    return ATT_OK;
}

static enum attempt start_mirror(struct mig *m, struct mig_volume *v)
{
    json_t *args = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "job-id", v->job, "device", v->node,
                             "target", v->top_node, "sync", "full", "copy-mode",
                             m->cfg->write_blocking ? "write-blocking" : "background",
                             "auto-dismiss", 0);

    if (m->cfg->granularity)
        json_object_set_new(args, "granularity", json_integer((json_int_t)m->cfg->granularity));
    if (m->cfg->buf_size)
        json_object_set_new(args, "buf-size", json_integer((json_int_t)m->cfg->buf_size));
    /* The latency-aware copy's first limit, shared out; else --speed. */
    if (m->lw && lw_limit(m->lw)) {
        uint64_t speed = lw_share(lw_limit(m->lw), m->cfg->nvols);

        lw_set_applied(m->lw, (int)(v - m->cfg->vols), speed);
        json_object_set_new(args, "speed", json_integer((json_int_t)speed));
    } else if (m->cfg->speed) {
        json_object_set_new(args, "speed", json_integer((json_int_t)m->cfg->speed));
    }
    if (qmp_call(m->q, "blockdev-mirror", args, NULL, dl(QMP_TIMEOUT_MS)) < 0)
        return run_qmp_failed(m->r, ATT_FINAL);
    v->started = true;
    return ATT_OK;
}

/* ---- watching jobs ---- */

/* A job paused from outside copies nothing until someone resumes it, and
 * volmig would wait for it for ever: it names the job, once per pause,
 * and says what to do.  ("standby" is a READY job paused.) */
static void watch_pause(struct mig *m, int i, const char *status)
{
    const struct mig_volume *v = &m->cfg->vols[i];
    bool paused = status && (!strcmp(status, "paused") || !strcmp(status, "standby"));
    char msg[512];

    m->any_paused |= paused;
    if (!paused || m->paused_warned[i]) {
        m->paused_warned[i] = paused;
        return;
    }
    m->paused_warned[i] = true;
    snprintf(msg, sizeof msg, "the mirror of drive '%s' (job %s) was paused from outside volmig "
             "(job-pause or block-job-pause): it copies nothing until it is resumed; resume it "
             "with job-resume {\"id\": \"%s\"}, or cancel this migration (SIGINT or SIGTERM)",
             v->drive, v->job, v->job);
    emit(m, json_pack("{s:s, s:s, s:s, s:s}", "event", "warning", "message", msg, "drive",
                      v->drive, "job", v->job));
}

/* Reads every job of ours: status, progress, error.  Returns -1 if QEMU is
 * gone, 1 if some job failed (message recorded), 0 otherwise. */
static int poll_jobs(struct mig *m)
{
    json_t *jobs = NULL;
    int rc = 0;

    if (qmp_call(m->q, "query-jobs", NULL, &jobs, dl(QMP_TIMEOUT_MS)) < 0)
        return -1;
    m->any_paused = false;
    for (int i = 0; i < m->cfg->nvols; i++) {
        struct mig_volume *v = &m->cfg->vols[i];
        json_t *j;
        const char *st, *err;

        if (!v->started)
            continue;
        j = run_find_by(jobs, "id", v->job);
        if (!j) {
            snprintf(v->status, sizeof v->status, "gone");
            if (!rc) {
                err_set(0, "mirror of drive '%s' disappeared", v->drive);
                rc = 1;
            }
            continue;
        }
        st = json_string_value(json_object_get(j, "status"));
        snprintf(v->status, sizeof v->status, "%s", st ? st : "?");
        v->done = (uint64_t)json_integer_value(json_object_get(j, "current-progress"));
        v->total = (uint64_t)json_integer_value(json_object_get(j, "total-progress"));
        watch_pause(m, i, st);
        err = json_string_value(json_object_get(j, "error"));
        if (err && !rc) {
            /* A full destination stays full: say which, and do not retry
             * into it until someone frees or grows it. */
            m->no_space |= strstr(err, "No space left") != NULL;
            err_set(0, "mirror of drive '%s' into %s failed: %s%s", v->drive, v->target, err,
                    m->no_space ? " (the destination volume is full; not retrying)" : "");
            rc = 1;
        }
    }
    json_decref(jobs);
    return rc;
}

static bool all_status(struct mig *m, const char *status)
{
    for (int i = 0; i < m->cfg->nvols; i++)
        if (strcmp(m->cfg->vols[i].status, status))
            return false;
    return true;
}

static void emit_progress(struct mig *m)
{
    json_t *vols = json_array();
    uint64_t done = 0, total = 0, remaining;
    int64_t now = qmp_now_ms();
    double eta;

    for (int i = 0; i < m->cfg->nvols; i++) {
        struct mig_volume *v = &m->cfg->vols[i];

        json_array_append_new(vols, json_pack("{s:s, s:I, s:I, s:I, s:s}", "drive", v->drive,
                                              "done", (json_int_t)v->done, "total",
                                              (json_int_t)v->total, "remaining",
                                              (json_int_t)(v->total - v->done), "status",
                                              v->status));
        done += v->done;
        total += v->total;
    }
    if (m->prev_at && now > m->prev_at) {
        double inst = (double)(done - (done < m->prev_done ? done : m->prev_done)) * 1000.0 /
                      (double)(now - m->prev_at);

        m->rate = m->rate ? 0.5 * m->rate + 0.5 * inst : inst;
    }
    m->prev_done = done;
    m->prev_at = now;
    remaining = total - done;
    eta = m->rate > 0 ? (double)remaining / m->rate : -1;
    emit(m, json_pack("{s:s, s:o, s:I, s:I, s:I, s:f, s:f}", "event", "progress", "volumes", vols,
                      "done", (json_int_t)done, "total", (json_int_t)total, "remaining",
                      (json_int_t)remaining, "rate", m->rate, "eta", eta));

    /* Nothing moved at all for a while: the destination or the network is
     * probably down (a TCP connection can stall for many minutes before it
     * fails).  Say so once per stall. */
    if (done != m->stall_done || !m->stall_at || m->any_paused) {
        m->stall_done = done;
        m->stall_at = now;
        m->stall_warned = false;
    } else if (!m->stall_warned && remaining && now - m->stall_at > STALL_WARN_MS) {
        m->stall_warned = true;
        emit(m, json_pack("{s:s, s:s}", "event", "warning", "message",
                          "no data moved for 10 s: is the destination reachable?"));
    }

    /* The mirror converges when what is left shrinks.  If the guest
     * dirties faster than the copy drains, it never does: say so once. */
    if (!m->best_at || remaining < m->best_remaining || m->any_paused) {
        m->best_remaining = remaining;
        m->best_at = now;
    } else if (!m->warned && now - m->best_at > m->cfg->converge_warn_s * 1000LL) {
        m->warned = true;
        emit(m, json_pack("{s:s, s:s}", "event", "warning", "message",
                          m->cfg->write_blocking
                          ? "not converging: the remaining data has not shrunk; the destination "
                            "may be too slow for the guest's writes"
                          : "not converging: the guest dirties data faster than the copy drains "
                            "it. --copy-mode write-blocking converges by construction (guest "
                            "writes then wait for the destination); QEMU 7.2 cannot change the "
                            "mode of a running job, so cancel and start again with it"));
    }
}

/* True when a job of ours runs at a speed volmig did not give it: someone
 * ran block-job-set-speed on it (the watch says so).  False too when QEMU
 * could not be asked. */
static bool speed_foreign(struct mig *m)
{
    json_t *jobs = NULL, *j;
    bool found = false;
    char what[128];

    if (qmp_call(m->q, "query-block-jobs", NULL, &jobs, dl(QMP_TIMEOUT_MS)) < 0)
        return false;
    for (int i = 0; i < m->cfg->nvols && !found; i++) {
        if (!m->cfg->vols[i].started ||
            !(j = run_find_by(jobs, "device", m->cfg->vols[i].job)))
            continue;
        snprintf(what, sizeof what, "the speed of job %s", m->cfg->vols[i].job);
        found = lw_foreign_speed(m->lw, i,
                                 (uint64_t)json_integer_value(json_object_get(j, "speed")), what);
    }
    json_decref(jobs);
    return found;
}

static void watch_stop(struct mig *m)
{
    lw_stop(m->lw);
    m->lw = NULL;
}

/* The latency-aware copy's step: the mirrors' progress as the counters
 * the watch differentiates (total-progress grows by what the guest
 * dirties again), and its limit shared out as each job's speed, set only
 * when it changed.  A speed set from outside (block-job-set-speed through
 * QMP) ends the pacing for the rest of the run.  -1 when QEMU refused the
 * speed. */
static int pace(struct mig *m)
{
    uint64_t copied = 0, dirtied = 0, limit, per;

    for (int i = 0; i < m->cfg->nvols; i++) {
        copied += m->cfg->vols[i].done;
        dirtied += m->cfg->vols[i].total;
    }
    if (!lw_tick(m->lw, copied, dirtied, dirtied - copied, &limit))
        return 0;
    if (speed_foreign(m)) {
        watch_stop(m);
        return 0;
    }
    per = lw_share(limit, m->cfg->nvols);
    for (int i = 0; i < m->cfg->nvols; i++) {
        if (lw_applied(m->lw, i) == per)
            continue;
        if (qmp_callf(m->q, NULL, dl(QMP_TIMEOUT_MS), "block-job-set-speed", "{s:s, s:I}",
                      "device", m->cfg->vols[i].job, "speed", (json_int_t)per) < 0)
            return -1;
        lw_set_applied(m->lw, i, per);
    }
    return 0;
}

static void watch_start(struct mig *m)
{
    struct lw_volume *lv;

    if (m->cfg->nvols <= 0 || !(lv = calloc((size_t)m->cfg->nvols, sizeof *lv)))
        return;
    for (int i = 0; i < m->cfg->nvols; i++)
        lv[i] = (struct lw_volume){ m->cfg->vols[i].drive, m->cfg->vols[i].node,
                                    m->cfg->vols[i].size };
    m->lw = lw_start(m->r, &m->cfg->latency_budget, lv, m->cfg->nvols, m->cfg->nbd_socket,
                     m->cfg->speed * (uint64_t)m->cfg->nvols);
    free(lv);
}

/* Waits until every mirror is READY.  Progress is reported on the way. */
static enum attempt wait_ready(struct mig *m)
{
    for (;;) {
        int r;

        if (cancelled(m))
            return ATT_CANCELLED;
        r = poll_jobs(m);
        if (r < 0)
            return ATT_GONE;
        if (r > 0)
            return m->no_space ? ATT_FINAL : ATT_RETRY;
        if (qmp_now_ms() - m->last_progress >= m->cfg->progress_ms) {
            m->last_progress = qmp_now_ms();
            emit_progress(m);
        }
        if (all_status(m, "ready"))
            return ATT_OK;
        if (pace(m) < 0)
            return run_qmp_failed(m->r, ATT_RETRY);
        if (nap(m, 200) < 0)
            return ATT_GONE;
    }
}

/* Waits until every job of ours has concluded (or vanished), then
 * dismisses them.  0, or -1 if QEMU is gone or they would not settle. */
static int settle_jobs(struct mig *m, bool want_success)
{
    int64_t deadline = dl(SETTLE_TIMEOUT_MS);
    int failed = 0;

    for (;;) {
        int r = poll_jobs(m);
        bool busy = false;

        if (r < 0)
            return -1;
        if (r > 0 && want_success)
            failed = 1;
        for (int i = 0; i < m->cfg->nvols; i++) {
            const char *st = m->cfg->vols[i].status;

            if (m->cfg->vols[i].started && strcmp(st, "concluded") && strcmp(st, "gone") &&
                strcmp(st, "null"))
                busy = true;
        }
        if (!busy)
            break;
        if (qmp_now_ms() > deadline) {
            err_set(0, "block jobs did not finish within %d s", SETTLE_TIMEOUT_MS / 1000);
            return -1;
        }
        if (nap(m, 50) < 0)
            return -1;
    }
    for (int i = 0; i < m->cfg->nvols; i++) {
        struct mig_volume *v = &m->cfg->vols[i];

        if (v->started && !strcmp(v->status, "concluded"))
            qmp_callf(m->q, NULL, dl(QMP_TIMEOUT_MS), "job-dismiss", "{s:s}", "id", v->job);
        v->started = false;
    }
    return failed ? -1 : 0;
}

static int del_node(struct mig *m, const char *node)
{
    return qmp_callf(m->q, NULL, dl(QMP_TIMEOUT_MS), "blockdev-del", "{s:s}", "node-name", node);
}

/* Removes our target nodes, the one on top first.  Deleting a node
 * flushes it first, so this is also what makes the destination durable. */
static int detach_targets(struct mig *m)
{
    int rc = 0;

    for (int i = 0; i < m->cfg->nvols; i++) {
        struct mig_volume *v = &m->cfg->vols[i];

        if (v->added_top && del_node(m, v->top_node) < 0)
            rc = -1;
        if (v->added_proto && del_node(m, v->proto_node) < 0)
            rc = -1;
        v->added_top = v->added_proto = false;
    }
    return rc;
}

/* Undoes an attempt: the VM keeps running on its own volumes. */
static void cleanup(struct mig *m)
{
    struct err_saved saved;

    watch_stop(m);
    err_save(&saved);
    if (!qmp_is_open(m->q))
        return;
    for (int i = 0; i < m->cfg->nvols; i++) {
        struct mig_volume *v = &m->cfg->vols[i];

        if (v->started)
            qmp_callf(m->q, NULL, dl(QMP_TIMEOUT_MS), "block-job-cancel", "{s:s, s:b}",
                      "device", v->job, "force", 1);
    }
    settle_jobs(m, false);
    detach_targets(m);
    err_restore(saved.errnum, saved.msg);
}

static void qnap(struct qmp *q, int ms)
{
    json_t *ev = NULL;

    if (qmp_wait_event(q, NULL, NULL, NULL, &ev, dl(ms)) == 0)
        json_decref(ev);
    while ((ev = qmp_next_event(q)))
        json_decref(ev);
}

/* Removes what a migration of ours that died left in QEMU: its jobs and
 * nodes carry our prefix and the pid of a process that is gone. */
int mirror_sweep(struct qmp *q)
{
    json_t *jobs = NULL, *nodes = NULL, *e;
    size_t i;
    int found = 0;

    if (qmp_call(q, "query-jobs", NULL, &jobs, dl(QMP_TIMEOUT_MS)) == 0) {
        json_array_foreach(jobs, i, e) {
            const char *id = json_string_value(json_object_get(e, "id"));

            if (!mig_pid_dead(mig_name_pid(id)))
                continue;
            found++;
            qmp_callf(q, NULL, dl(QMP_TIMEOUT_MS), "block-job-cancel", "{s:s, s:b}", "device",
                      id, "force", 1);
            for (int t = 0; t < 200; t++) {
                json_t *st = NULL;
                const char *s;
                bool done;

                if (qmp_call(q, "query-jobs", NULL, &st, dl(QMP_TIMEOUT_MS)) < 0)
                    break;
                e = run_find_by(st, "id", id);
                s = e ? json_string_value(json_object_get(e, "status")) : "gone";
                done = !e || !strcmp(s, "concluded") || !strcmp(s, "null");
                json_decref(st);
                if (done)
                    break;
                qnap(q, 50);
            }
            qmp_callf(q, NULL, dl(QMP_TIMEOUT_MS), "job-dismiss", "{s:s}", "id", id);
        }
    }
    /* Two passes: a raw node on top must go before the node under it. */
    for (int pass = 0; pass < 2; pass++) {
        if (qmp_callf(q, &nodes, dl(QMP_TIMEOUT_MS), "query-named-block-nodes", "{s:b}",
                      "flat", 1) < 0)
            break;
        json_array_foreach(nodes, i, e) {
            const char *name = json_string_value(json_object_get(e, "node-name"));

            if (!mig_pid_dead(mig_name_pid(name)))
                continue;
            if (pass == 0)
                found++;
            qmp_callf(q, NULL, dl(QMP_TIMEOUT_MS), "blockdev-del", "{s:s}", "node-name", name);
        }
        json_decref(nodes);
        nodes = NULL;
    }
    /* Then the TLS credentials objects nothing uses any more. */
    if (qmp_callf(q, &nodes, dl(QMP_TIMEOUT_MS), "qom-list", "{s:s}", "path", "/objects") == 0) {
        json_array_foreach(nodes, i, e) {
            const char *name = json_string_value(json_object_get(e, "name"));

            if (!mig_pid_dead(mig_name_pid(name)))
                continue;
            if (qmp_callf(q, NULL, dl(QMP_TIMEOUT_MS), "object-del", "{s:s}", "id", name) == 0)
                found++;
        }
        json_decref(nodes);
    }
    json_decref(jobs);
    return found;
}

/* ---- switchover ---- */

static enum attempt switch_pivot(struct mig *m)
{
    run_switching(m->r, "job-complete");
    for (int i = 0; i < m->cfg->nvols; i++)
        if (qmp_callf(m->q, NULL, dl(QMP_TIMEOUT_MS), "job-complete", "{s:s}", "id",
                      m->cfg->vols[i].job) < 0)
            return run_qmp_failed(m->r, ATT_RETRY);
    if (settle_jobs(m, true) < 0)
        return run_qmp_failed(m->r, ATT_RETRY);
    /* The VM now runs on the target nodes: they are no longer ours to
     * remove.  A source that an earlier pivot made is left with no user:
     * it goes, so that one node stands for the drive's name. */
    for (int i = 0; i < m->cfg->nvols; i++) {
        struct mig_volume *v = &m->cfg->vols[i];
        char child[160];

        v->added_top = v->added_proto = false;
        if (mig_pivot_base(v->node) == strlen(v->node))
            continue;
        snprintf(child, sizeof child, "%s-f", v->node);
        del_node(m, v->node);
        del_node(m, child);
    }
    err_clear();
    return ATT_OK;
}

/* A READY mirror that is cancelled without force completes with the
 * target consistent, and leaves the VM on its source. */
static enum attempt finish_mirrors(struct mig *m)
{
    for (int i = 0; i < m->cfg->nvols; i++)
        if (qmp_callf(m->q, NULL, dl(QMP_TIMEOUT_MS), "block-job-cancel", "{s:s, s:b}", "device",
                      m->cfg->vols[i].job, "force", 0) < 0)
            return run_qmp_failed(m->r, ATT_RETRY);
    if (settle_jobs(m, true) < 0)
        return run_qmp_failed(m->r, ATT_RETRY);
    if (detach_targets(m) < 0)
        return run_qmp_failed(m->r, ATT_RETRY);
    return ATT_OK;
}

/* The memory migration stops at its pre-switchover pause as long as the
 * mirrors are fine. */
static enum attempt watch_jobs(struct mig_run *r)
{
    int rc = poll_jobs(r->state);

    return rc < 0 ? ATT_GONE : rc > 0 ? ATT_RETRY : ATT_OK;
}

static enum attempt switch_migrate(struct mig *m)
{
    enum attempt a = run_migration_start(m->r, watch_jobs);
    int64_t paused;

    if (a != ATT_OK)
        return a;
    /* The guest is paused from here on: finish every mirror consistent,
     * flush and detach the destinations, then let the migration go on. */
    paused = qmp_now_ms();
    a = finish_mirrors(m);
    if (a == ATT_OK)
        a = run_migration_continue(m->r, NULL);
    if (a != ATT_OK)
        return a;
    emit(m, json_pack("{s:s, s:f}", "event", "migrated", "blocks_flushed_in",
                      (double)(qmp_now_ms() - paused) / 1000.0));
    return ATT_OK;
}

/* ---- one attempt ---- */

static enum attempt attempt_once(struct mig *m, int attempt)
{
    struct mig_config *cfg = m->cfg;
    enum attempt a = ATT_OK;
    json_t *vols;

    m->best_at = 0;
    m->warned = false;
    m->stall_at = 0;
    m->prev_at = 0;
    m->rate = 0;
    for (int i = 0; i < cfg->nvols && a == ATT_OK; i++) {
        struct mig_volume *v = &cfg->vols[i];

        run_name(v->job, sizeof v->job, "m%d", i);
        v->status[0] = '\0';
        v->done = v->total = 0;
        a = add_target(m, v);
    }
    /* The guest's latency before the copy is the budget's reference: it is
     * measured with the targets added and nothing copying yet. */
    if (a == ATT_OK)
        watch_start(m);
    for (int i = 0; i < cfg->nvols && a == ATT_OK; i++)
        a = start_mirror(m, &cfg->vols[i]);
    if (a != ATT_OK)
        return a;
    vols = json_array();
    for (int i = 0; i < cfg->nvols; i++) {
        struct mig_volume *v = &cfg->vols[i];

        json_array_append_new(vols, json_pack("{s:s, s:s, s:s, s:I, s:I}", "drive", v->drive,
                                              "node", v->node, "target", v->target, "size",
                                              (json_int_t)v->size, "target_size",
                                              (json_int_t)v->target_size));
    }
    emit(m, json_pack("{s:s, s:i, s:o, s:s}", "event", "started", "attempt", attempt + 1,
                      "volumes", vols, "copy_mode",
                      cfg->write_blocking ? "write-blocking" : "background"));
    m->last_progress = 0;
    a = wait_ready(m);
    /* Once READY the copy only follows the guest's writes; its probe
     * export would also keep a memory migration from inactivating the
     * node. */
    watch_stop(m);
    if (a != ATT_OK)
        return a;
    emit_progress(m);
    emit(m, json_pack("{s:s}", "event", "ready"));
    emit(m, json_pack("{s:s, s:s}", "event", "switchover", "mode",
                      cfg->switchover == MIG_SW_PIVOT ? "pivot" :
                      cfg->switchover == MIG_SW_MIGRATE ? "migrate" : "none"));
    switch (cfg->switchover) {
    case MIG_SW_PIVOT:   return switch_pivot(m);
    case MIG_SW_MIGRATE: return switch_migrate(m);
    default:             return finish_mirrors(m);
    }
}

/* ---- the strategy ---- */

static int mirror_init(struct mig_run *r)
{
    struct mig *m = calloc(1, sizeof *m);

    if (!m) {
        err_set(ENOMEM, "mirror state");
        return -1;
    }
    m->r = r;
    m->cfg = r->cfg;
    m->q = r->q;
    r->state = m;
    m->paused_warned = calloc((size_t)m->cfg->nvols, sizeof *m->paused_warned);
    if (!m->paused_warned) {
        err_set(ENOMEM, "mirror state");
        return -1;
    }
    for (int i = 0; i < m->cfg->nvols && tls_wanted(m) && !m->tls_added; i++)
        if (m->cfg->vols[i].uri.kind != URI_FILE && tls_add(m) < 0)
            return -1;
    return 0;
}

static enum attempt mirror_attempt(struct mig_run *r, int attempt)
{
    return attempt_once(r->state, attempt);
}

static void mirror_cleanup(struct mig_run *r)
{
    cleanup(r->state);
}

static void mirror_finish(struct mig_run *r, enum mig_result res)
{
    struct mig *m = r->state;

    if (!m)
        return;
    watch_stop(m);
    tls_del(m, res);
    free(m->paused_warned);
    free(m);
    r->state = NULL;
}

const struct mig_strategy mig_mirror = {
    .name = "mirror",
    .init = mirror_init,
    .attempt = mirror_attempt,
    .cleanup = mirror_cleanup,
    .finish = mirror_finish,
};
