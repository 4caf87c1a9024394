/* The run core: mig_run(), the attempt loop and what every strategy uses.
 * The design is in engine/migrate_run.h. */
#include "engine/migrate_run.h"
#include "common/error.h"
#include "qmp/qmp.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define QMP_TIMEOUT_MS RUN_QMP_TIMEOUT_MS
#define EXPORT_GONE_MS 30000     /* a deleted export to disappear */

/* ---- plumbing ---- */

int64_t run_dl(int64_t ms)
{
    return qmp_deadline_in(ms);
}

double run_secs(const struct mig_run *r)
{
    return (double)(qmp_now_ms() - r->t0) / 1000.0;
}

void run_emit(struct mig_run *r, json_t *ev)
{
    json_object_set_new(ev, "t", json_real((double)(int64_t)(run_secs(r) * 1000) / 1000.0));
    if (r->cfg->emit)
        r->cfg->emit(r->cfg->opaque, ev);
    else
        json_decref(ev);
}

bool run_cancelled(const struct mig_run *r)
{
    return r->cfg->cancel && *r->cfg->cancel;
}

int run_nap(struct mig_run *r, int ms)
{
    json_t *ev = NULL;

    /* A run without a monitor (the libvirt strategy talks to libvirtd,
     * never to QEMU) just sleeps. */
    if (!r->q) {
        usleep((useconds_t)ms * 1000);
        return 0;
    }
    if (qmp_wait_event(r->q, NULL, NULL, NULL, &ev, run_dl(ms)) == 0)
        json_decref(ev);
    while ((ev = qmp_next_event(r->q)))
        json_decref(ev);
    return qmp_is_open(r->q) ? 0 : -1;
}

bool mig_error_permanent(const char *cmd, const char *cls, const char *desc)
{
    static const char *const refusals[] = {
        "Parameter '",          /* ... expects X / is missing / is unexpected */
        "Invalid parameter",    /* ... 'X' / type for 'X' */
        "error parsing address",
        "Cannot find device=",
    };

    (void)cmd;
    if (!cls)
        return false;       /* no answer from QEMU at all: local, maybe passing */
    if (!strcmp(cls, "CommandNotFound") || !strcmp(cls, "DeviceNotFound"))
        return true;
    for (size_t i = 0; desc && i < sizeof refusals / sizeof *refusals; i++)
        if (!strncmp(desc, refusals[i], strlen(refusals[i])))
            return true;
    return false;
}

enum attempt run_qmp_failed(const struct mig_run *r, enum attempt if_open)
{
    if (!qmp_is_open(r->q))
        return ATT_GONE;
    if (if_open == ATT_RETRY && mig_error_permanent(NULL, qmp_error_class(r->q),
                                                    qmp_error_desc(r->q)))
        return ATT_FINAL;
    return if_open;
}

void run_name(char *buf, size_t len, const char *fmt, ...)
{
    int n = snprintf(buf, len, MIG_NAME_PREFIX "%d-", (int)getpid());
    va_list ap;

    if (n < 0 || (size_t)n >= len)
        return;
    va_start(ap, fmt);
    vsnprintf(buf + n, len - (size_t)n, fmt, ap);
    va_end(ap);
}

/* ---- QEMU's NBD server and exports ---- */

int run_nbd_server_start(struct mig_run *r, struct run_sock *s)
{
    json_t *addr;

    snprintf(s->dir, sizeof s->dir, RUN_SOCK_PARENT "/" MIG_NAME_PREFIX "%d.XXXXXX",
             (int)getpid());
    if (!mkdtemp(s->dir)) {
        err_set(errno, "mkdtemp %s", s->dir);
        s->dir[0] = '\0';
        return -1;
    }
    snprintf(s->path, sizeof s->path, "%s/" RUN_SOCK_NAME, s->dir);
    /* QEMU 7.2 takes the legacy SocketAddress form here. */
    addr = json_pack("{s:s, s:{s:s}}", "type", "unix", "data", "path", s->path);
    if (qmp_callf(r->q, NULL, run_dl(QMP_TIMEOUT_MS), "nbd-server-start", "{s:o}", "addr",
                  addr) < 0) {
        run_sock_remove(s);
        return -1;
    }
    return 0;
}

void run_sock_remove(struct run_sock *s)
{
    if (!s->dir[0])
        return;
    unlink(s->path);
    rmdir(s->dir);
    s->dir[0] = '\0';
}

int run_export_ro_add(struct qmp *q, const char *id, const char *node)
{
    return qmp_callf(q, NULL, run_dl(QMP_TIMEOUT_MS), "block-export-add",
                     "{s:s, s:s, s:s, s:s, s:b}", "type", "nbd", "id", id, "node-name", node,
                     "name", id, "writable", 0);
}

static bool export_exists(struct qmp *q, const char *id)
{
    json_t *ex = NULL, *e;
    size_t i;
    bool found = false;

    if (qmp_call(q, "query-block-exports", NULL, &ex, run_dl(QMP_TIMEOUT_MS)) < 0)
        return false;
    json_array_foreach(ex, i, e) {
        const char *s = json_string_value(json_object_get(e, "id"));

        found |= s && !strcmp(s, id);
    }
    json_decref(ex);
    return found;
}

int run_export_del(struct qmp *q, const char *id)
{
    int64_t deadline = run_dl(EXPORT_GONE_MS);

    if (qmp_callf(q, NULL, run_dl(QMP_TIMEOUT_MS), "block-export-del", "{s:s, s:s}", "id", id,
                  "mode", "hard") < 0 &&
        export_exists(q, id))
        return -1;
    while (export_exists(q, id)) {
        json_t *ev = NULL;

        if (qmp_now_ms() > deadline) {
            err_set(ETIMEDOUT, "export %s did not go away", id);
            return -1;
        }
        if (qmp_wait_event(q, "BLOCK_EXPORT_DELETED", NULL, NULL, &ev, run_dl(50)) == 0)
            json_decref(ev);
        if (!qmp_is_open(q))
            return -1;
    }
    return 0;
}

size_t mig_pivot_base(const char *node)
{
    const char *m = strrchr(node, '.');
    size_t digits;

    if (!m || m == node || m[1] != 'm')
        return strlen(node);
    digits = strspn(m + 2, "0123456789");
    return digits && !m[2 + digits] ? (size_t)(m - node) : strlen(node);
}

int mig_name_pid(const char *name)
{
    int pid;

    if (!name || sscanf(name, MIG_NAME_PREFIX "%d-", &pid) != 1 || pid <= 0)
        return 0;
    return pid;
}

bool mig_pid_dead(int pid)
{
    return pid && pid != getpid() && kill(pid, 0) < 0 && errno == ESRCH;
}

json_t *run_find_by(json_t *arr, const char *key, const char *val)
{
    size_t i;
    json_t *e;

    json_array_foreach(arr, i, e) {
        const char *s = json_string_value(json_object_get(e, key));

        if (s && !strcmp(s, val))
            return e;
    }
    return NULL;
}

/* ---- the memory migration of a migrate:URI switchover ---- */

/* Waits for the memory migration to reach want.  ATT_RETRY if it failed
 * (or watch says so). */
static enum attempt wait_migration(struct mig_run *r, const char *want, json_t **last,
                                   enum attempt (*watch)(struct mig_run *r))
{
    for (;;) {
        json_t *h = NULL;
        const char *st = NULL;
        enum attempt a;

        if (run_cancelled(r))
            return ATT_CANCELLED;
        if (qmp_call(r->q, "query-migrate", NULL, &h, run_dl(QMP_TIMEOUT_MS)) == 0)
            st = json_string_value(json_object_get(h, "status"));
        if (!st) {
            json_decref(h);
            return qmp_is_open(r->q) ? ATT_RETRY : ATT_GONE;
        }
        if (!strcmp(st, want)) {
            if (last)
                *last = h;
            else
                json_decref(h);
            return ATT_OK;
        }
        if (!strcmp(st, "failed") || !strcmp(st, "cancelled")) {
            const char *why = json_string_value(json_object_get(h, "error-desc"));

            err_set(0, "memory migration %s%s%s", st, why ? ": " : "", why ? why : "");
            json_decref(h);
            return ATT_RETRY;
        }
        json_decref(h);
        if (watch && (a = watch(r)) != ATT_OK)
            return a;
        if (run_nap(r, 20) < 0)
            return ATT_GONE;
    }
}

enum attempt run_migration_start(struct mig_run *r, enum attempt (*watch)(struct mig_run *r))
{
    json_t *caps = json_pack("[{s:s, s:b}, {s:s, s:b}]", "capability", "pause-before-switchover",
                             "state", 1, "capability", "events", "state", 1);

    if (qmp_callf(r->q, NULL, run_dl(QMP_TIMEOUT_MS), "migrate-set-capabilities", "{s:o}",
                  "capabilities", caps) < 0)
        return run_qmp_failed(r, ATT_FINAL);
    if (qmp_callf(r->q, NULL, run_dl(QMP_TIMEOUT_MS), "migrate", "{s:s}", "uri",
                  r->cfg->migrate_uri) < 0)
        return run_qmp_failed(r, ATT_RETRY);
    r->migration_started = true;
    return wait_migration(r, "pre-switchover", NULL, watch);
}

void run_switching(struct mig_run *r, const char *step)
{
    run_emit(r, json_pack("{s:s, s:s}", "event", "switching", "step", step));
}

enum attempt run_migration_continue(struct mig_run *r, json_t **last)
{
    enum attempt a;

    /* A cancel that arrived in the pause still wins: the migration is
     * cancelled (cleanup) and the VM resumes on its own volumes; the
     * targets hold consistent copies nobody uses. */
    if (run_cancelled(r))
        return ATT_CANCELLED;
    run_switching(r, "migrate-continue");
    if (qmp_callf(r->q, NULL, run_dl(QMP_TIMEOUT_MS), "migrate-continue", "{s:s}", "state",
                  "pre-switchover") < 0)
        return run_qmp_failed(r, ATT_RETRY);
    a = wait_migration(r, "completed", last, NULL);
    if (a == ATT_OK)
        r->migration_started = false;
    return a;
}

/* ---- the attempt loop ---- */

static void cleanup(struct mig_run *r)
{
    struct err_saved e;

    if (!r->q || !qmp_is_open(r->q)) {
        r->strategy->cleanup(r);
        return;
    }
    err_save(&e);
    if (r->migration_started) {
        qmp_call(r->q, "migrate_cancel", NULL, NULL, run_dl(QMP_TIMEOUT_MS));
        r->migration_started = false;
    }
    err_restore(e.errnum, e.msg);
    r->strategy->cleanup(r);
}

/* Sleeps for a backoff, waking early on cancellation.  False if cancelled. */
static bool backoff_sleep(struct mig_run *r, double seconds)
{
    int64_t until = qmp_now_ms() + (int64_t)(seconds * 1000);

    while (qmp_now_ms() < until) {
        if (run_cancelled(r))
            return false;
        if (run_nap(r, 100) < 0)
            return true;   /* QEMU gone: the next attempt says so */
    }
    return !run_cancelled(r);
}

enum mig_result run_attempts(struct mig_run *r)
{
    double delay = r->cfg->backoff_s;

    for (int attempt = 0;; attempt++) {
        enum attempt a = r->strategy->attempt(r, attempt);

        if (a == ATT_OK) {
            json_t *ev = json_pack("{s:s, s:f}", "event", "completed", "seconds", 0.0);

            if (r->strategy->complete)
                r->strategy->complete(r, ev);
            json_object_set_new(ev, "seconds", json_real(run_secs(r)));
            run_emit(r, ev);
            return MIG_DONE;
        }
        if (a == ATT_GONE) {
            err_set(0, "QEMU's monitor went away during the migration: the VM's state is "
                       "unknown; manual recovery is needed (check whether QEMU still runs, and "
                       "on which volumes)");
            run_emit(r, json_pack("{s:s, s:s}", "event", "lost", "error", err_msg()));
            return MIG_FAILED;
        }
        cleanup(r);
        if (a == ATT_CANCELLED || run_cancelled(r)) {
            run_emit(r, json_pack("{s:s}", "event", "cancelled"));
            return MIG_CANCELLED;
        }
        run_emit(r, json_pack("{s:s, s:s, s:i}", "event", "failed", "error", err_msg(),
                              "attempt", attempt + 1));
        if (a == ATT_FINAL || attempt >= r->cfg->retries)
            return MIG_FAILED;
        run_emit(r, json_pack("{s:s, s:i, s:f, s:s}", "event", "retrying", "attempt",
                              attempt + 2, "delay", delay, "error", err_msg()));
        if (!backoff_sleep(r, delay)) {
            run_emit(r, json_pack("{s:s}", "event", "cancelled"));
            return MIG_CANCELLED;
        }
        delay *= 2;
    }
}
