#include "engine/migrate.h"
#include "engine/migrate_bitmap.h"
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

#define QMP_TIMEOUT_MS     30000
#define CONNECT_TIMEOUT_MS 10000
#define SETTLE_TIMEOUT_MS  60000   /* jobs to conclude after a cancel */
#define NAME_PREFIX        MIG_NAME_PREFIX
#define STALL_WARN_MS      10000
#define PIVOT_PREFIX       "migrated-"   /* target nodes that become the VM's */

/* How an attempt ended.  RETRY: the attempt was cleaned up and another may
 * succeed; FINAL: no attempt can (bad input); GONE: QEMU itself vanished. */
enum attempt { ATT_OK, ATT_RETRY, ATT_FINAL, ATT_GONE, ATT_CANCELLED };

struct mig {
    struct mig_config *cfg;
    struct qmp *q;
    int64_t t0;
    int64_t last_progress;
    bool migration_started;
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
    /* TLS to NBD targets: QEMU's tls-creds object, and for PSK where the
     * key file is and whose key is ours */
    char tls_id[64];
    bool tls_added;
    struct client_tls tls;
};

static double secs(const struct mig *m)
{
    return (double)(qmp_now_ms() - m->t0) / 1000.0;
}

static void emit(struct mig *m, json_t *ev)
{
    json_object_set_new(ev, "t", json_real((double)(int64_t)(secs(m) * 1000) / 1000.0));
    if (m->cfg->emit)
        m->cfg->emit(m->cfg->opaque, ev);
    else
        json_decref(ev);
}

static bool cancelled(const struct mig *m)
{
    return m->cfg->cancel && *m->cfg->cancel;
}

static int64_t dl(int64_t ms)
{
    return qmp_deadline_in(ms);
}

/* ---- QEMU state ---- */

static json_t *find_by(json_t *arr, const char *key, const char *val)
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

/* A device id as users know it ("virtio-disk0") against QEMU's qdev path
 * ("/machine/peripheral/virtio-disk0/virtio-backend"). */
static bool qdev_matches(const char *qdev, const char *id)
{
    static const char prefix[] = "/machine/peripheral/";
    size_t n = strlen(id);

    if (!strcmp(qdev, id))
        return true;
    if (strncmp(qdev, prefix, sizeof prefix - 1))
        return false;
    qdev += sizeof prefix - 1;
    return !strncmp(qdev, id, n) && (qdev[n] == '\0' || qdev[n] == '/');
}

/* Resolves vol->drive (node name, then drive id or qdev id) to its node. */
static int resolve(struct mig *m, struct mig_volume *v)
{
    json_t *nodes = NULL, *blocks = NULL, *n;
    const char *node = NULL;
    int rc = -1;

    if (qmp_callf(m->q, &nodes, dl(QMP_TIMEOUT_MS), "query-named-block-nodes", "{s:b}",
                  "flat", 1) < 0)
        return -1;
    if (find_by(nodes, "node-name", v->drive)) {
        node = v->drive;
    } else {
        size_t i;
        json_t *b;

        if (qmp_call(m->q, "query-block", NULL, &blocks, dl(QMP_TIMEOUT_MS)) < 0)
            goto out;
        json_array_foreach(blocks, i, b) {
            const char *dev = json_string_value(json_object_get(b, "device"));
            const char *qdev = json_string_value(json_object_get(b, "qdev"));

            if ((dev && !strcmp(dev, v->drive)) || (qdev && qdev_matches(qdev, v->drive))) {
                node = json_string_value(json_object_get(json_object_get(b, "inserted"),
                                                         "node-name"));
                if (!node) {
                    err_set(0, "drive '%s' has no medium inserted", v->drive);
                    goto out;
                }
                break;
            }
        }
    }
    if (!node || !(n = find_by(nodes, "node-name", node))) {
        err_set(0, "drive '%s' not found: no block node, drive id or device id of that name",
                v->drive);
        goto out;
    }
    if (!strncmp(node, NAME_PREFIX, strlen(NAME_PREFIX))) {
        err_set(0, "drive '%s' is a node of an earlier migration (%s); refusing to mirror it",
                v->drive, node);
        goto out;
    }
    if (json_is_true(json_object_get(n, "ro"))) {
        err_set(0, "drive '%s' (node %s) is read-only: nothing to migrate safely", v->drive, node);
        goto out;
    }
    snprintf(v->node, sizeof v->node, "%s", node);
    v->size = (uint64_t)json_integer_value(json_object_get(json_object_get(n, "image"),
                                                           "virtual-size"));
    if (!v->size) {
        err_set(0, "drive '%s' (node %s) reports no size", v->drive, node);
        goto out;
    }
    rc = 0;
out:
    json_decref(nodes);
    json_decref(blocks);
    return rc;
}

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
    snprintf(m->tls_id, sizeof m->tls_id, NAME_PREFIX "%d-tls", (int)getpid());
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
                return qmp_is_open(m->q) ? ATT_FINAL : ATT_GONE;
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
            return qmp_is_open(m->q) ? ATT_RETRY : ATT_GONE;
    }
    v->added_proto = true;
    if (v->target_size == v->size) {
        snprintf(v->top_node, sizeof v->top_node, "%s", v->proto_node);
        return ATT_OK;
    }
    args = json_pack("{s:s, s:s, s:s, s:I}", "driver", "raw", "node-name", v->top_node,
                     "file", v->proto_node, "size", (json_int_t)v->size);
    if (qmp_call(m->q, "blockdev-add", args, NULL, dl(QMP_TIMEOUT_MS)) < 0)
        return qmp_is_open(m->q) ? ATT_FINAL : ATT_GONE;
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
    if (m->cfg->speed)
        json_object_set_new(args, "speed", json_integer((json_int_t)m->cfg->speed));
    if (qmp_call(m->q, "blockdev-mirror", args, NULL, dl(QMP_TIMEOUT_MS)) < 0)
        return qmp_is_open(m->q) ? ATT_FINAL : ATT_GONE;
    v->started = true;
    return ATT_OK;
}

/* ---- watching jobs ---- */

/* Sleeps up to ms, waking early on any QMP event (events only wake us:
 * job and migration state is read by polling, which cannot miss one). */
static int nap(struct mig *m, int ms)
{
    json_t *ev = NULL;

    if (qmp_wait_event(m->q, NULL, NULL, NULL, &ev, dl(ms)) == 0)
        json_decref(ev);
    while ((ev = qmp_next_event(m->q)))
        json_decref(ev);
    return qmp_is_open(m->q) ? 0 : -1;
}

/* Reads every job of ours: status, progress, error.  Returns -1 if QEMU is
 * gone, 1 if some job failed (message recorded), 0 otherwise. */
static int poll_jobs(struct mig *m)
{
    json_t *jobs = NULL;
    int rc = 0;

    if (qmp_call(m->q, "query-jobs", NULL, &jobs, dl(QMP_TIMEOUT_MS)) < 0)
        return -1;
    for (int i = 0; i < m->cfg->nvols; i++) {
        struct mig_volume *v = &m->cfg->vols[i];
        json_t *j;
        const char *st, *err;

        if (!v->started)
            continue;
        j = find_by(jobs, "id", v->job);
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
    if (done != m->stall_done || !m->stall_at) {
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
    if (!m->best_at || remaining < m->best_remaining) {
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

    err_save(&saved);
    if (!qmp_is_open(m->q))
        return;
    if (m->migration_started) {
        qmp_call(m->q, "migrate_cancel", NULL, NULL, dl(QMP_TIMEOUT_MS));
        m->migration_started = false;
    }
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

int mig_name_pid(const char *name)
{
    int pid;

    if (!name || sscanf(name, NAME_PREFIX "%d-", &pid) != 1 || pid <= 0)
        return 0;
    return pid;
}

bool mig_pid_dead(int pid)
{
    return pid && pid != getpid() && kill(pid, 0) < 0 && errno == ESRCH;
}

/* Removes what a migration of ours that died left in QEMU: its jobs and
 * nodes carry our prefix and the pid of a process that is gone. */
static void remove_leftovers(struct mig *m)
{
    json_t *jobs = NULL, *nodes = NULL, *e;
    size_t i;
    int found = 0;

    if (qmp_call(m->q, "query-jobs", NULL, &jobs, dl(QMP_TIMEOUT_MS)) == 0) {
        json_array_foreach(jobs, i, e) {
            const char *id = json_string_value(json_object_get(e, "id"));

            if (!mig_pid_dead(mig_name_pid(id)))
                continue;
            found++;
            qmp_callf(m->q, NULL, dl(QMP_TIMEOUT_MS), "block-job-cancel", "{s:s, s:b}", "device",
                      id, "force", 1);
            for (int t = 0; t < 200; t++) {
                json_t *st = NULL;
                const char *s;
                bool done;

                if (qmp_call(m->q, "query-jobs", NULL, &st, dl(QMP_TIMEOUT_MS)) < 0)
                    break;
                e = find_by(st, "id", id);
                s = e ? json_string_value(json_object_get(e, "status")) : "gone";
                done = !e || !strcmp(s, "concluded") || !strcmp(s, "null");
                json_decref(st);
                if (done)
                    break;
                nap(m, 50);
            }
            qmp_callf(m->q, NULL, dl(QMP_TIMEOUT_MS), "job-dismiss", "{s:s}", "id", id);
        }
    }
    /* Two passes: a raw node on top must go before the node under it. */
    for (int pass = 0; pass < 2; pass++) {
        if (qmp_callf(m->q, &nodes, dl(QMP_TIMEOUT_MS), "query-named-block-nodes", "{s:b}",
                      "flat", 1) < 0)
            break;
        json_array_foreach(nodes, i, e) {
            const char *name = json_string_value(json_object_get(e, "node-name"));

            if (!mig_pid_dead(mig_name_pid(name)))
                continue;
            if (pass == 0)
                found++;
            del_node(m, name);
        }
        json_decref(nodes);
        nodes = NULL;
    }
    /* Then the TLS credentials objects nothing uses any more. */
    if (qmp_callf(m->q, &nodes, dl(QMP_TIMEOUT_MS), "qom-list", "{s:s}", "path", "/objects") == 0) {
        json_array_foreach(nodes, i, e) {
            const char *name = json_string_value(json_object_get(e, "name"));

            if (!mig_pid_dead(mig_name_pid(name)))
                continue;
            if (qmp_callf(m->q, NULL, dl(QMP_TIMEOUT_MS), "object-del", "{s:s}", "id", name) == 0)
                found++;
        }
        json_decref(nodes);
    }
    json_decref(jobs);
    found += bitmap_remove_leftovers(m->q);
    if (found)
        emit(m, json_pack("{s:s, s:s, s:i}", "event", "warning", "message",
                          "removed jobs, nodes and objects left in QEMU by a migration that died",
                          "count", found));
}

/* ---- switchover ---- */

static enum attempt switch_pivot(struct mig *m)
{
    for (int i = 0; i < m->cfg->nvols; i++)
        if (qmp_callf(m->q, NULL, dl(QMP_TIMEOUT_MS), "job-complete", "{s:s}", "id",
                      m->cfg->vols[i].job) < 0)
            return qmp_is_open(m->q) ? ATT_RETRY : ATT_GONE;
    if (settle_jobs(m, true) < 0)
        return qmp_is_open(m->q) ? ATT_RETRY : ATT_GONE;
    /* The VM now runs on the target nodes: they are no longer ours to
     * remove. */
    for (int i = 0; i < m->cfg->nvols; i++)
        m->cfg->vols[i].added_top = m->cfg->vols[i].added_proto = false;
    return ATT_OK;
}

/* A READY mirror that is cancelled without force completes with the
 * target consistent, and leaves the VM on its source. */
static enum attempt finish_mirrors(struct mig *m)
{
    for (int i = 0; i < m->cfg->nvols; i++)
        if (qmp_callf(m->q, NULL, dl(QMP_TIMEOUT_MS), "block-job-cancel", "{s:s, s:b}", "device",
                      m->cfg->vols[i].job, "force", 0) < 0)
            return qmp_is_open(m->q) ? ATT_RETRY : ATT_GONE;
    if (settle_jobs(m, true) < 0)
        return qmp_is_open(m->q) ? ATT_RETRY : ATT_GONE;
    if (detach_targets(m) < 0)
        return qmp_is_open(m->q) ? ATT_RETRY : ATT_GONE;
    return ATT_OK;
}

static const char *migration_status(struct mig *m, json_t **holder)
{
    if (qmp_call(m->q, "query-migrate", NULL, holder, dl(QMP_TIMEOUT_MS)) < 0)
        return NULL;
    return json_string_value(json_object_get(*holder, "status"));
}

/* Waits for the memory migration to reach want.  ATT_RETRY if it failed or
 * a mirror did. */
static enum attempt wait_migration(struct mig *m, const char *want, bool watch_jobs)
{
    for (;;) {
        json_t *h = NULL;
        const char *st;

        if (cancelled(m))
            return ATT_CANCELLED;
        st = migration_status(m, &h);
        if (!st) {
            json_decref(h);
            return qmp_is_open(m->q) ? ATT_RETRY : ATT_GONE;
        }
        if (!strcmp(st, want)) {
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
        if (watch_jobs) {
            int r = poll_jobs(m);

            if (r)
                return r < 0 ? ATT_GONE : ATT_RETRY;
        }
        if (nap(m, 20) < 0)
            return ATT_GONE;
    }
}

static enum attempt switch_migrate(struct mig *m)
{
    json_t *caps = json_pack("[{s:s, s:b}, {s:s, s:b}]", "capability", "pause-before-switchover",
                             "state", 1, "capability", "events", "state", 1);
    enum attempt a;
    int64_t paused;

    if (qmp_callf(m->q, NULL, dl(QMP_TIMEOUT_MS), "migrate-set-capabilities", "{s:o}",
                  "capabilities", caps) < 0)
        return qmp_is_open(m->q) ? ATT_FINAL : ATT_GONE;
    if (qmp_callf(m->q, NULL, dl(QMP_TIMEOUT_MS), "migrate", "{s:s}", "uri",
                  m->cfg->migrate_uri) < 0)
        return qmp_is_open(m->q) ? ATT_RETRY : ATT_GONE;
    m->migration_started = true;
    a = wait_migration(m, "pre-switchover", true);
    if (a != ATT_OK)
        return a;
    /* The guest is paused from here on: finish every mirror consistent,
     * flush and detach the destinations, then let the migration go on. */
    paused = qmp_now_ms();
    a = finish_mirrors(m);
    if (a != ATT_OK)
        return a;
    /* A cancel that arrived in the pause still wins: the migration is
     * cancelled (cleanup) and the VM resumes on its own volumes; the
     * targets hold consistent copies nobody uses. */
    if (cancelled(m))
        return ATT_CANCELLED;
    if (qmp_callf(m->q, NULL, dl(QMP_TIMEOUT_MS), "migrate-continue", "{s:s}", "state",
                  "pre-switchover") < 0)
        return qmp_is_open(m->q) ? ATT_RETRY : ATT_GONE;
    a = wait_migration(m, "completed", false);
    if (a != ATT_OK)
        return a;
    m->migration_started = false;
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

        snprintf(v->job, sizeof v->job, NAME_PREFIX "%d-m%d", (int)getpid(), i);
        /* After a pivot the VM runs on the target nodes for good, so they
         * get names that are not ours to clean up or refuse later. */
        snprintf(v->proto_node, sizeof v->proto_node, "%s%d-p%d",
                 cfg->switchover == MIG_SW_PIVOT ? PIVOT_PREFIX : NAME_PREFIX, (int)getpid(), i);
        snprintf(v->top_node, sizeof v->top_node, "%s%d-t%d",
                 cfg->switchover == MIG_SW_PIVOT ? PIVOT_PREFIX : NAME_PREFIX, (int)getpid(), i);
        v->status[0] = '\0';
        v->done = v->total = 0;
        a = add_target(m, v);
    }
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

/* Sleeps for a backoff, waking early on cancellation. */
static bool backoff_sleep(struct mig *m, double seconds)
{
    int64_t until = qmp_now_ms() + (int64_t)(seconds * 1000);

    while (qmp_now_ms() < until) {
        if (cancelled(m))
            return false;
        if (nap(m, 100) < 0)
            return true;   /* QEMU gone: the next attempt says so */
    }
    return !cancelled(m);
}

enum mig_result mig_run(struct mig_config *cfg)
{
    struct mig m = { .cfg = cfg, .t0 = qmp_now_ms() };
    enum mig_result res = MIG_FAILED;
    double delay = cfg->backoff_s;

    m.q = qmp_open(cfg->qmp, QMP_TIMEOUT_MS);
    if (!m.q) {
        err_prefix("cannot reach QEMU's monitor at %s", cfg->qmp);
        return MIG_FAILED;
    }
    remove_leftovers(&m);
    for (int i = 0; i < cfg->nvols; i++) {
        if (resolve(&m, &cfg->vols[i]) < 0)
            goto out;
        for (int j = 0; j < i; j++)
            if (!strcmp(cfg->vols[j].node, cfg->vols[i].node)) {
                err_set(0, "drives '%s' and '%s' are the same node (%s)", cfg->vols[j].drive,
                        cfg->vols[i].drive, cfg->vols[i].node);
                goto out;
            }
    }
    if (cfg->mode == MIG_MODE_BITMAP) {
        res = bitmap_run(cfg, m.q, m.t0);
        goto out;
    }
    for (int i = 0; i < cfg->nvols && tls_wanted(&m) && !m.tls_added; i++)
        if (cfg->vols[i].uri.kind != URI_FILE && tls_add(&m) < 0)
            goto out;
    for (int attempt = 0;; attempt++) {
        enum attempt a = attempt_once(&m, attempt);

        if (a == ATT_OK) {
            emit(&m, json_pack("{s:s, s:f}", "event", "completed", "seconds", secs(&m)));
            res = MIG_DONE;
            break;
        }
        if (a == ATT_GONE) {
            err_set(0, "QEMU's monitor went away during the migration: the VM's state is "
                       "unknown; manual recovery is needed (check whether QEMU still runs, and "
                       "on which volumes)");
            emit(&m, json_pack("{s:s, s:s}", "event", "lost", "error", err_msg()));
            break;
        }
        cleanup(&m);
        if (a == ATT_CANCELLED || cancelled(&m)) {
            emit(&m, json_pack("{s:s}", "event", "cancelled"));
            res = MIG_CANCELLED;
            break;
        }
        emit(&m, json_pack("{s:s, s:s, s:i}", "event", "failed", "error", err_msg(), "attempt",
                           attempt + 1));
        if (a == ATT_FINAL || attempt >= cfg->retries)
            break;
        emit(&m, json_pack("{s:s, s:i, s:f, s:s}", "event", "retrying", "attempt", attempt + 2,
                           "delay", delay, "error", err_msg()));
        if (!backoff_sleep(&m, delay)) {
            emit(&m, json_pack("{s:s}", "event", "cancelled"));
            res = MIG_CANCELLED;
            break;
        }
        delay *= 2;
    }
out:
    tls_del(&m, res);
    qmp_close(m.q);
    return res;
}
