/* The libvirtd half of engine/libvirt_domain.h: one connection, one
 * domain, libvirt's block copy.
 *
 * libvirt's calls block and take no timeout; its events arrive only while
 * somebody runs its event loop.  So:
 *   - one process-wide thread runs libvirt's default event loop (started
 *     once for the process, shared with qmp/libvirt.c: common/virt_loop.c);
 *   - the BLOCK_JOB_2, lifecycle and close callbacks run in that thread
 *     and record what they saw in the handle's struct lvd_events, under
 *     its lock, and signal its condition;
 *   - the caller's waits sleep on that condition until a deadline.
 * Keepalive turns a libvirtd that stopped answering into a closed
 * connection, so the blocking calls themselves end too.
 *
 * libvirt 9.0 facts (src/ paths in Debian's libvirt 9.0.0 source):
 *   - virDomainBlockCopy takes typed params "bandwidth" (ullong, bytes/s),
 *     "granularity" (uint, a power of two) and "buf-size" (ullong) and the
 *     flags SHALLOW, REUSE_EXT, TRANSIENT_JOB, SYNCHRONOUS_WRITES
 *     (qemu_driver.c qemuDomainBlockCopy, virTypedParamsValidate and
 *     virCheckFlags).  SYNCHRONOUS_WRITES becomes blockdev-mirror
 *     copy-mode=write-blocking (qemu_monitor_json.c
 *     qemuMonitorJSONBlockdevMirror).
 *   - a persistent domain is refused "domain is not transient" unless
 *     TRANSIENT_JOB is given (qemu_driver.c qemuDomainBlockCopyCommon);
 *     the flag only lifts that check: the job is then not recoverable if
 *     the VM stops while it runs.
 *   - a second job on a disk is refused "disk '%s' already in active
 *     block job" (qemu_domain.c qemuDomainDiskBlockJobIsActive); a
 *     migration while any block job runs is refused "domain has active
 *     block job" (qemu_migration.c qemuMigrationSrcIsAllowed via
 *     qemuDomainHasBlockjob).
 *   - READY comes as BLOCK_JOB_2 with status VIR_DOMAIN_BLOCK_JOB_READY
 *     and the disk's target as its disk (qemu_blockjob.c
 *     qemuBlockJobEventProcess, qemuBlockJobEmitEvents, which sends
 *     BLOCK_JOB only for local sources but BLOCK_JOB_2 always); the live
 *     XML then has <mirror ready='yes'>.
 *   - virDomainBlockJobAbort with PIVOT refuses a job that is not READY
 *     ("not ready for pivot yet", qemu_block.c qemuBlockPivot).  Without
 *     ASYNC it waits for the job's end with no timeout (qemu_driver.c
 *     qemuDomainBlockJobAbort, qemuDomainObjWait), so ASYNC is used here
 *     and the end is awaited as an event with a deadline.  A pivot ends
 *     with COMPLETED (FAILED: still on the source); an abort ends with
 *     CANCELED even when QEMU completed the READY mirror
 *     (qemu_blockjob.c qemuBlockJobEventProcessConcluded turns
 *     COMPLETED/FAILED of an ABORTING job into CANCELLED).
 *   - after a pivot libvirt rewrites the persistent definition's disk
 *     (qemu_blockjob.c qemuBlockJobProcessEventConcludedCopyPivot ->
 *     qemuBlockJobRewriteConfigDiskSource, saved by qemuDomainSaveConfig),
 *     but skips it, with only a debug message, when the persistent disk's
 *     source is not the live one (virStorageSourceIsSameLocation).
 *     lvd_copy_check refuses that case before starting and lvd_verify
 *     checks the result.
 */
#include "engine/libvirt_domain.h"
#include "engine/libvirt_internal.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/virt_loop.h"
#include "engine/target_probe.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#define LVD_MAX_DISKS 64
#define LVD_NO_EVENT (-1)
/* Not a libvirt status: the job is gone from libvirt's view and no event
 * said how it ended. */
#define LVD_JOB_GONE 16
#define LVD_SOURCE_MAX 4400

/* What the callbacks saw.  Shared between the event loop thread and the
 * caller; reference-counted because libvirt calls the free callback of a
 * registration in the loop thread, possibly after lvd_close returned. */
struct lvd_events {
    pthread_mutex_t lock;
    pthread_cond_t cond;        /* CLOCK_MONOTONIC */
    int refs;
    bool stopped, closed;
    struct {
        char target[32];
        int status;             /* virConnectDomainEventBlockJobStatus or LVD_NO_EVENT */
    } job[LVD_MAX_DISKS];
    size_t njob;
};

struct lvd {
    virConnectPtr conn;         /* owned */
    virDomainPtr dom;           /* owned */
    char *name;
    bool persistent;
    struct lvd_events *ev;      /* one reference */
    int job_cb, life_cb;        /* callback ids, -1 if not registered */
    bool close_cb;
};

/* ---- events ---- */

static struct lvd_events *events_new(void)
{
    struct lvd_events *e = calloc(1, sizeof *e);
    pthread_condattr_t ca;

    if (!e)
        return NULL;
    pthread_mutex_init(&e->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cond, &ca);
    pthread_condattr_destroy(&ca);
    e->refs = 1;
    return e;
}

static struct lvd_events *events_ref(struct lvd_events *e)
{
    pthread_mutex_lock(&e->lock);
    e->refs++;
    pthread_mutex_unlock(&e->lock);
    return e;
}

static void events_unref(void *opaque)
{
    struct lvd_events *e = opaque;
    int left;

    pthread_mutex_lock(&e->lock);
    left = --e->refs;
    pthread_mutex_unlock(&e->lock);
    if (left)
        return;
    pthread_cond_destroy(&e->cond);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

/* The slot of target, made if missing; NULL when the table is full.
 * Called with the lock held. */
static int *job_slot(struct lvd_events *e, const char *target)
{
    size_t i;

    for (i = 0; i < e->njob; i++)
        if (!strcmp(e->job[i].target, target))
            return &e->job[i].status;
    if (e->njob == LVD_MAX_DISKS || strlen(target) >= sizeof e->job[0].target)
        return NULL;
    snprintf(e->job[i].target, sizeof e->job[i].target, "%s", target);
    e->job[i].status = LVD_NO_EVENT;
    e->njob++;
    return &e->job[i].status;
}

static void on_block_job(virConnectPtr conn, virDomainPtr dom, const char *disk, int type,
                         int status, void *opaque)
{
    struct lvd_events *e = opaque;
    int *slot;

    (void)conn; (void)dom; (void)type;
    pthread_mutex_lock(&e->lock);
    if ((slot = job_slot(e, disk)))
        *slot = status;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
    struct lvd_events *e = opaque;

    (void)conn; (void)dom; (void)detail;
    if (event != VIR_DOMAIN_EVENT_STOPPED)
        return 0;
    pthread_mutex_lock(&e->lock);
    e->stopped = true;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
    return 0;
}

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
    struct lvd_events *e = opaque;

    (void)conn; (void)reason;
    pthread_mutex_lock(&e->lock);
    e->closed = true;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
}

/* Forgets target's last event: what comes after this is about the next
 * step. */
static void job_reset(struct lvd *c, const char *target)
{
    int *slot;

    pthread_mutex_lock(&c->ev->lock);
    if ((slot = job_slot(c->ev, target)))
        *slot = LVD_NO_EVENT;
    pthread_mutex_unlock(&c->ev->lock);
}

/* What libvirt shows of target's job right now, asked once a second
 * while no event came: a status, LVD_NO_EVENT while the job goes on, -1
 * when it cannot tell.  The event is the fast path; this is the floor
 * under it, for an end event that never reaches this client. */
typedef int (*job_poll_fn)(struct lvd *c, const char *target, const void *arg);

/* Sleeps until target's status is one of want (a bit mask of 1 << status)
 * or something ends the wait.  The status seen, or -1 with err_msg(). */
static int job_wait(struct lvd *c, const char *target, unsigned want, int64_t deadline,
                    const char *what, job_poll_fn poll, const void *arg)
{
    struct lvd_events *e = c->ev;
    int rc = -1, *slot;

    pthread_mutex_lock(&e->lock);
    for (;;) {
        int64_t now = clock_ms();
        struct timespec ts;

        slot = job_slot(e, target);
        if (slot && *slot != LVD_NO_EVENT && (want & (1u << *slot))) {
            rc = *slot;
            break;
        }
        if (e->stopped || e->closed) {
            err_set(0, "libvirt: %s disk %s: %s: %s", c->name, target, what,
                    e->stopped ? "the domain stopped" : "the connection to libvirtd closed");
            break;
        }
        if (!slot || now >= deadline) {
            if (slot)
                err_set(ETIMEDOUT, "libvirt: %s disk %s: %s", c->name, target, what);
            else
                err_set(E2BIG, "libvirt: %s disk %s: more than %d disks", c->name, target,
                        LVD_MAX_DISKS);
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        now = deadline - now < 1000 ? deadline - now : 1000;
        ts.tv_sec += now / 1000;
        ts.tv_nsec += (now % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (pthread_cond_timedwait(&e->cond, &e->lock, &ts) == ETIMEDOUT && poll) {
            int s;

            /* The poll talks to libvirtd, whose events the loop thread
             * delivers under this lock. */
            pthread_mutex_unlock(&e->lock);
            s = poll(c, target, arg);
            pthread_mutex_lock(&e->lock);
            if (s >= 0 && s != LVD_NO_EVENT && (want & (1u << s))) {
                rc = s;
                break;
            }
        }
    }
    pthread_mutex_unlock(&e->lock);
    return rc;
}

/* -1 with err_msg() when the domain stopped or libvirtd went away: the
 * live XML of a stopped persistent domain is its definition, which has
 * no job to wait for. */
static int still_there(struct lvd *c, const char *target, const char *what)
{
    bool stopped, closed;

    pthread_mutex_lock(&c->ev->lock);
    stopped = c->ev->stopped;
    closed = c->ev->closed;
    pthread_mutex_unlock(&c->ev->lock);
    if (!stopped && !closed && virDomainIsActive(c->dom) != 1)
        stopped = true;
    if (!stopped && !closed)
        return 0;
    err_set(0, "libvirt: %s disk %s: %s: %s", c->name, target, what,
            closed ? "the connection to libvirtd closed" : "the domain stopped");
    return -1;
}

static const char *status_name(int s)
{
    switch (s) {
    case VIR_DOMAIN_BLOCK_JOB_COMPLETED: return "completed";
    case VIR_DOMAIN_BLOCK_JOB_FAILED: return "failed";
    case VIR_DOMAIN_BLOCK_JOB_CANCELED: return "cancelled";
    case VIR_DOMAIN_BLOCK_JOB_READY: return "ready";
    case LVD_JOB_GONE: return "ended (libvirt sent no event saying how)";
    default: return "in an unknown state";
    }
}

/* ---- connection ---- */

static void lv_err(const char *fmt, const char *a, const char *b)
{
    char ctx[512];

    snprintf(ctx, sizeof ctx, fmt, a, b);
    err_set(0, "libvirt: %s: %s", ctx, virGetLastErrorMessage());
}

static int lvd_register(struct lvd *c)
{
    c->job_cb = virConnectDomainEventRegisterAny(
        c->conn, c->dom, VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2,
        VIR_DOMAIN_EVENT_CALLBACK(on_block_job), events_ref(c->ev), events_unref);
    if (c->job_cb < 0) {
        events_unref(c->ev);
        lv_err("block job events of %s%s", c->name, "");
        return -1;
    }
    c->life_cb = virConnectDomainEventRegisterAny(
        c->conn, c->dom, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
        VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), events_ref(c->ev), events_unref);
    if (c->life_cb < 0) {
        events_unref(c->ev);
        lv_err("lifecycle events of %s%s", c->name, "");
        return -1;
    }
    if (virConnectRegisterCloseCallback(c->conn, on_close, events_ref(c->ev), events_unref) == 0)
        c->close_cb = true;
    else
        events_unref(c->ev);
    return 0;
}

struct lvd *lvd_open(const char *uri, const char *name)
{
    struct lvd *c;

    if (!uri)
        uri = "qemu:///system";
    c = calloc(1, sizeof *c);
    if (virt_loop_start() < 0 || !c || !(c->ev = events_new()) || !(c->name = strdup(name))) {
        err_set(0, "libvirt: cannot start the event loop");
        lvd_close(c);
        return NULL;
    }
    c->job_cb = c->life_cb = -1;
    if (!(c->conn = virConnectOpen(uri))) {
        lv_err("connecting to %s%s", uri, "");
        goto fail;
    }
    virConnectSetKeepAlive(c->conn, 5, 3);
    if (!(c->dom = virDomainLookupByName(c->conn, name))) {
        if (virGetLastErrorCode() == VIR_ERR_NO_DOMAIN)
            err_set(0, "libvirt: no domain named %s at %s", name, uri);
        else
            lv_err("looking up domain %s at %s", name, uri);
        goto fail;
    }
    if (virDomainIsActive(c->dom) != 1) {
        err_set(0, "libvirt: domain %s is not running", name);
        goto fail;
    }
    c->persistent = virDomainIsPersistent(c->dom) == 1;
    if (lvd_register(c) < 0)
        goto fail;
    return c;
fail:
    lvd_close(c);
    return NULL;
}

void lvd_close(struct lvd *c)
{
    if (!c)
        return;
    if (c->job_cb >= 0)
        virConnectDomainEventDeregisterAny(c->conn, c->job_cb);
    if (c->life_cb >= 0)
        virConnectDomainEventDeregisterAny(c->conn, c->life_cb);
    if (c->close_cb)
        virConnectUnregisterCloseCallback(c->conn, on_close);
    if (c->dom)
        virDomainFree(c->dom);
    if (c->conn)
        virConnectClose(c->conn);
    if (c->ev)
        events_unref(c->ev);
    free(c->name);
    free(c);
}

const char *lvd_name(const struct lvd *c)
{
    return c->name;
}

bool lvd_persistent(const struct lvd *c)
{
    return c->persistent;
}

virDomainPtr lvd_dom(struct lvd *c)
{
    return c->dom;
}

bool lvd_alive(struct lvd *c)
{
    bool stopped, closed;

    pthread_mutex_lock(&c->ev->lock);
    stopped = c->ev->stopped;
    closed = c->ev->closed;
    pthread_mutex_unlock(&c->ev->lock);
    return !stopped && !closed && virDomainIsActive(c->dom) == 1;
}

int lvd_suspend(struct lvd *c)
{
    if (virDomainSuspend(c->dom) < 0) {
        lv_err("pausing %s%s", c->name, "");
        return -1;
    }
    return 0;
}

int lvd_resume(struct lvd *c)
{
    if (virDomainResume(c->dom) < 0) {
        lv_err("resuming %s%s", c->name, "");
        return -1;
    }
    return 0;
}

bool lvd_paused(struct lvd *c)
{
    int state, reason;

    return virDomainGetState(c->dom, &state, &reason, 0) == 0 && state == VIR_DOMAIN_PAUSED;
}

void lvd_set_error(const char *what, const char *name)
{
    lv_err("%s %s", what, name);
}

/* ---- disks ---- */

int lvd_disks(struct lvd *c, bool inactive, struct lvd_disk **v, size_t *n)
{
    char *xml = virDomainGetXMLDesc(c->dom, inactive ? VIR_DOMAIN_XML_INACTIVE : 0);
    int rc;

    if (!xml) {
        lv_err("%s XML of %s", inactive ? "persistent" : "live", c->name);
        return -1;
    }
    rc = lvd_parse_disks(xml, v, n);
    free(xml);
    if (rc < 0)
        err_prefix("libvirt: %s XML of %s", inactive ? "persistent" : "live", c->name);
    return rc;
}

/* The disk with target in the live or persistent XML: *v, *n hold all of
 * them (to free), the index is returned; -1 with err_msg(). */
static int disk_of(struct lvd *c, bool inactive, const char *target, struct lvd_disk **v,
                   size_t *n)
{
    int i;

    if (lvd_disks(c, inactive, v, n) < 0)
        return -1;
    for (i = 0; i < (int)*n; i++)
        if ((*v)[i].target && !strcmp((*v)[i].target, target))
            return i;
    lvd_disks_free(*v, *n);
    *v = NULL;
    *n = 0;
    err_set(ENOENT, "libvirt: the %s XML of %s has no disk %s",
            inactive ? "persistent" : "live", c->name, target);
    return -1;
}

int lvd_resolve(struct lvd *c, const char *name, char **target)
{
    struct lvd_disk *v;
    size_t n;
    int i;

    if (lvd_disks(c, false, &v, &n) < 0)
        return -1;
    i = lvd_disk_find(v, n, name);
    if (i < 0) {
        err_prefix("libvirt: domain %s", c->name);
    } else if (!(*target = strdup(v[i].target))) {
        err_set(ENOMEM, "libvirt");
        i = -1;
    }
    lvd_disks_free(v, n);
    return i < 0 ? -1 : 0;
}

int lvd_capacity(struct lvd *c, const char *target, uint64_t *size)
{
    virDomainBlockInfo info;

    if (virDomainGetBlockInfo(c->dom, target, &info, 0) < 0) {
        lv_err("size of %s disk %s", c->name, target);
        return -1;
    }
    *size = info.capacity;
    return 0;
}

/* ---- block copy ---- */

/* A persistent domain whose definition names another source than the
 * live XML would keep the old source after a pivot without a word. */
static int check_persistent_source(struct lvd *c, const char *target, const struct lvd_disk *live)
{
    struct lvd_disk *v;
    size_t n;
    char a[4400], b[4400];
    int i, rc = 0;

    if (!c->persistent)
        return 0;
    if ((i = disk_of(c, true, target, &v, &n)) < 0) {
        err_prefix("libvirt: refusing to copy: libvirt could not carry a pivot into the "
                   "persistent definition");
        return -1;
    }
    if (!lvd_disk_same_source(&v[i], live)) {
        lvd_disk_source_text(&v[i], a, sizeof a);
        lvd_disk_source_text(live, b, sizeof b);
        err_set(0, "libvirt: refusing to copy %s disk %s: its persistent definition names %s "
                "but it runs on %s, and libvirt would not carry a pivot into the persistent "
                "definition (redefine the domain first)", c->name, target, a, b);
        rc = -1;
    }
    lvd_disks_free(v, n);
    return rc;
}

static int check_dest_size(struct lvd *c, const char *target, const struct target_uri *dest,
                           const struct client_tls *tls, int timeout_ms, struct lvd_fit *fit)
{
    uint64_t cap, size;
    char what[4600];

    if (lvd_capacity(c, target, &cap) < 0)
        return -1;
    if (dest->kind == URI_FILE) {
        /* REUSE_EXT: libvirt would refuse a missing file itself ("missing
         * destination file"), but after taking its job lock. */
        if (probe_file_target(dest->path, &size, &fit->blockdev) < 0)
            return -1;
        snprintf(what, sizeof what, "%s", dest->path);
    } else {
        if (probe_nbd_target(dest, tls, timeout_ms, &size) < 0)
            return -1;
        nbd_uri_text(dest, tls != NULL, what, sizeof what);
    }
    if (probe_fits(what, size, target, cap) < 0)
        return -1;
    fit->slice = size > cap ? cap : 0;
    return 0;
}

int lvd_copy_check(struct lvd *c, const char *target, const struct target_uri *dest,
                   const struct client_tls *tls, int timeout_ms, struct lvd_fit *fit)
{
    struct lvd_disk *v;
    size_t n;
    int i, rc = -1;

    memset(fit, 0, sizeof *fit);
    if ((i = disk_of(c, false, target, &v, &n)) < 0)
        return -1;
    if (v[i].mirror)
        err_set(EBUSY, "libvirt: %s disk %s already has a block copy under way", c->name, target);
    else if (lvd_disk_is(&v[i], dest))
        err_set(EINVAL, "libvirt: %s disk %s already runs on its destination", c->name, target);
    else if (check_persistent_source(c, target, &v[i]) == 0 &&
             check_dest_size(c, target, dest, tls, timeout_ms, fit) == 0)
        rc = 0;
    lvd_disks_free(v, n);
    return rc;
}

int lvd_copy_start(struct lvd *c, const char *target, const struct target_uri *dest,
                   const struct lvd_fit *fit, const struct lvd_copy_opts *o)
{
    virTypedParameterPtr params = NULL;
    int nparams = 0, maxparams = 0, rc = -1;
    unsigned flags = VIR_DOMAIN_BLOCK_COPY_REUSE_EXT;
    char *xml = lvd_dest_xml(dest, fit->blockdev, o->format, fit->slice);

    if (!xml)
        return -1;
    /* A transient job on a persistent domain: if the VM stops while the
     * copy runs, the job is gone and the domain is on its old disk. */
    if (c->persistent)
        flags |= VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB;
    if (o->sync_writes)
        flags |= VIR_DOMAIN_BLOCK_COPY_SYNCHRONOUS_WRITES;
    if ((o->bandwidth && virTypedParamsAddULLong(&params, &nparams, &maxparams,
                                                 VIR_DOMAIN_BLOCK_COPY_BANDWIDTH,
                                                 o->bandwidth) < 0) ||
        (o->granularity && virTypedParamsAddUInt(&params, &nparams, &maxparams,
                                                 VIR_DOMAIN_BLOCK_COPY_GRANULARITY,
                                                 o->granularity) < 0) ||
        (o->buf_size && virTypedParamsAddULLong(&params, &nparams, &maxparams,
                                                VIR_DOMAIN_BLOCK_COPY_BUF_SIZE,
                                                o->buf_size) < 0)) {
        err_set(ENOMEM, "libvirt: block copy parameters");
        goto out;
    }
    job_reset(c, target);
    if (virDomainBlockCopy(c->dom, target, xml, params, nparams, flags) < 0) {
        lv_err("block copy of %s disk %s", c->name, target);
        goto out;
    }
    rc = 0;
out:
    virTypedParamsFree(params, nparams);
    free(xml);
    return rc;
}

void lvd_deaf_to_jobs(struct lvd *c)
{
    if (c->job_cb >= 0 && virConnectDomainEventDeregisterAny(c->conn, c->job_cb) == 0)
        c->job_cb = -1;
}

/* What libvirt shows of target's block job now: the live XML's <mirror>
 * (and whether it is READY), the disk's source, and whether libvirt still
 * has the job.  The XML is read first and the job second, so a job that
 * ends in between shows as gone, never as a job without its <mirror>.
 * -1 with err_msg(). */
struct job_view {
    bool mirror, ready, job;
    char source[LVD_SOURCE_MAX];
};

static int job_view(struct lvd *c, const char *target, struct job_view *jv)
{
    struct lvd_progress p;
    struct lvd_disk *v;
    size_t n;
    int i;

    if ((i = disk_of(c, false, target, &v, &n)) < 0)
        return -1;
    jv->mirror = v[i].mirror;
    jv->ready = v[i].mirror_ready;
    lvd_disk_source_text(&v[i], jv->source, sizeof jv->source);
    lvd_disks_free(v, n);
    if ((i = lvd_job_info(c, target, &p)) < 0)
        return -1;
    jv->job = i == 1;
    return 0;
}

/* A poll for job_wait: READY once the live XML says <mirror ready='yes'>,
 * LVD_JOB_GONE once libvirt shows neither a <mirror> nor a job. */
static int poll_ready(struct lvd *c, const char *target, const void *arg)
{
    struct job_view jv;

    (void)arg;
    if (job_view(c, target, &jv) < 0)
        return -1;
    if (jv.ready)
        return VIR_DOMAIN_BLOCK_JOB_READY;
    return jv.mirror || jv.job ? LVD_NO_EVENT : LVD_JOB_GONE;
}

int lvd_wait_ready(struct lvd *c, const char *target, int64_t deadline)
{
    unsigned want = 1u << VIR_DOMAIN_BLOCK_JOB_READY | 1u << VIR_DOMAIN_BLOCK_JOB_COMPLETED |
                    1u << VIR_DOMAIN_BLOCK_JOB_FAILED | 1u << VIR_DOMAIN_BLOCK_JOB_CANCELED |
                    1u << LVD_JOB_GONE;
    struct lvd_disk *v;
    size_t n;
    bool mirror, ready;
    int i, s;

    /* A job started before this handle existed already sent its READY. */
    if (still_there(c, target, "waiting for READY") < 0 ||
        (i = disk_of(c, false, target, &v, &n)) < 0)
        return -1;
    mirror = v[i].mirror;
    ready = v[i].mirror_ready;
    lvd_disks_free(v, n);
    if (ready)
        return 0;
    /* No <mirror>: the job ended or never began; an event may say how. */
    s = job_wait(c, target, want, mirror ? deadline : clock_ms(), "waiting for READY",
                 poll_ready, NULL);
    if (s == VIR_DOMAIN_BLOCK_JOB_READY)
        return 0;
    if (s >= 0)
        err_set(0, "libvirt: the block copy of %s disk %s %s before it was ready (libvirt "
                "does not pass QEMU's reason on: see the domain's QEMU log)", c->name, target,
                status_name(s));
    else if (!mirror && still_there(c, target, "waiting for READY") == 0)
        err_set(ENOENT, "libvirt: %s disk %s has no block copy", c->name, target);
    return -1;
}

int lvd_job_info(struct lvd *c, const char *target, struct lvd_progress *p)
{
    virDomainBlockJobInfo info;
    int rc = virDomainGetBlockJobInfo(c->dom, target, &info,
                                      VIR_DOMAIN_BLOCK_JOB_INFO_BANDWIDTH_BYTES);

    if (rc < 0) {
        lv_err("block job of %s disk %s", c->name, target);
        return -1;
    }
    memset(p, 0, sizeof *p);
    if (rc == 1) {
        p->cur = info.cur;
        p->end = info.end;
        p->bandwidth = info.bandwidth;
    }
    return rc;
}

int lvd_set_speed(struct lvd *c, const char *target, uint64_t bandwidth)
{
    if (virDomainBlockJobSetSpeed(c->dom, target, bandwidth,
                                  VIR_DOMAIN_BLOCK_JOB_SPEED_BANDWIDTH_BYTES) < 0) {
        lv_err("bandwidth of the block job of %s disk %s", c->name, target);
        return -1;
    }
    return 0;
}

int lvd_write_stats(struct lvd *c, const char *target, uint64_t *ops, uint64_t *ns)
{
    virTypedParameterPtr params = NULL;
    int n = 0, rc = -1;
    long long o = 0, t = 0;
    bool have_o, have_t;

    /* The first call with no room asks how many fields there are. */
    if (virDomainBlockStatsFlags(c->dom, target, NULL, &n, 0) < 0 || n <= 0 ||
        !(params = calloc((size_t)n, sizeof *params)) ||
        virDomainBlockStatsFlags(c->dom, target, params, &n, 0) < 0) {
        lv_err("block statistics of %s disk %s", c->name, target);
        goto out;
    }
    /* Signed fields (libvirt says -1 for a count it does not have). */
    have_o = virTypedParamsGetLLong(params, n, VIR_DOMAIN_BLOCK_STATS_WRITE_REQ, &o) == 1;
    have_t = virTypedParamsGetLLong(params, n, VIR_DOMAIN_BLOCK_STATS_WRITE_TOTAL_TIMES,
                                    &t) == 1;
    if (!have_o || !have_t || o < 0 || t < 0) {
        err_set(ENOTSUP, "libvirt: the block statistics of %s disk %s have no write counts",
                c->name, target);
        goto out;
    }
    *ops = (uint64_t)o;
    *ns = (uint64_t)t;
    rc = 0;
out:
    if (params)
        virTypedParamsClear(params, n);
    free(params);
    return rc;
}

/* libvirt forgets the job (no job info, no <mirror>) once it processed
 * the end; the end event may come a little before. */
static int wait_no_job(struct lvd *c, const char *target, int64_t deadline)
{
    for (;;) {
        struct job_view jv;

        if (job_view(c, target, &jv) < 0)
            return -1;
        if (!jv.job && !jv.mirror)
            return 0;
        if (clock_ms() >= deadline) {
            err_set(ETIMEDOUT, "libvirt: %s disk %s still shows its block job", c->name, target);
            return -1;
        }
        usleep(50000);
    }
}

/* What lvd_finish's poll compares: the disk's source before the end was
 * asked for. */
struct end_poll {
    bool pivot;
    char before[LVD_SOURCE_MAX];
};

/* A poll for job_wait: once libvirt shows neither a <mirror> nor a job,
 * the end happened; a pivot that moved the disk completed, one that did
 * not failed, and an abort cancelled. */
static int poll_end(struct lvd *c, const char *target, const void *arg)
{
    const struct end_poll *ep = arg;
    struct job_view jv;

    if (job_view(c, target, &jv) < 0)
        return -1;
    if (jv.mirror || jv.job)
        return LVD_NO_EVENT;
    if (!ep->pivot)
        return VIR_DOMAIN_BLOCK_JOB_CANCELED;
    return strcmp(jv.source, ep->before) ? VIR_DOMAIN_BLOCK_JOB_COMPLETED
                                         : VIR_DOMAIN_BLOCK_JOB_FAILED;
}

int lvd_finish(struct lvd *c, const char *target, bool pivot, int64_t deadline)
{
    unsigned flags = VIR_DOMAIN_BLOCK_JOB_ABORT_ASYNC;
    unsigned want = 1u << VIR_DOMAIN_BLOCK_JOB_COMPLETED | 1u << VIR_DOMAIN_BLOCK_JOB_FAILED |
                    1u << VIR_DOMAIN_BLOCK_JOB_CANCELED;
    const char *what = pivot ? "pivot" : "abort";
    struct end_poll ep = { .pivot = pivot };
    struct lvd_progress p;
    struct lvd_disk *v;
    size_t n;
    int i, s;

    if ((i = disk_of(c, false, target, &v, &n)) < 0)
        return -1;
    lvd_disk_source_text(&v[i], ep.before, sizeof ep.before);
    lvd_disks_free(v, n);
    if (pivot)
        flags |= VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT;
    job_reset(c, target);
    if (virDomainBlockJobAbort(c->dom, target, flags) < 0) {
        lv_err(pivot ? "pivot of %s disk %s" : "abort of %s disk %s", c->name, target);
        return -1;
    }
    s = job_wait(c, target, want, deadline,
                 pivot ? "waiting for the pivot to end" : "waiting for the abort to end",
                 poll_end, &ep);
    if (s < 0) {
        /* Say where the job stands, so that a hang in QEMU shows. */
        if (err_errno() == ETIMEDOUT && lvd_job_info(c, target, &p) == 1)
            err_set(ETIMEDOUT, "libvirt: %s disk %s: the %s did not end in time; the block "
                    "job is still at %" PRIu64 " of %" PRIu64 " bytes", c->name, target, what,
                    p.cur, p.end);
        return -1;
    }
    if (pivot ? s != VIR_DOMAIN_BLOCK_JOB_COMPLETED : s == VIR_DOMAIN_BLOCK_JOB_FAILED) {
        err_set(EIO, "libvirt: the %s of %s disk %s %s%s", what, c->name, target, status_name(s),
                pivot ? ": the domain stays on its source" : "");
        return -1;
    }
    return wait_no_job(c, target, deadline);
}

/* target in the live or persistent XML names dest, with no <mirror>. */
static int verify_one(struct lvd *c, bool inactive, const char *target,
                      const struct target_uri *dest)
{
    struct lvd_disk *v;
    size_t n;
    char have[LVD_SOURCE_MAX], want[LVD_SOURCE_MAX + 200];
    int i, rc = 0;

    if ((i = disk_of(c, inactive, target, &v, &n)) < 0)
        return -1;
    if (v[i].mirror) {
        err_set(EBUSY, "libvirt: the live XML of %s still has a <mirror> on disk %s", c->name,
                target);
        rc = -1;
    } else if (!lvd_disk_is(&v[i], dest)) {
        lvd_disk_source_text(&v[i], have, sizeof have);
        if (dest->kind == URI_FILE)
            snprintf(want, sizeof want, "%s", dest->path);
        else
            nbd_uri_text(dest, dest->tls, want, sizeof want);
        err_set(0, "libvirt: the %s of %s names %s for disk %s, not %s",
                inactive ? "persistent definition" : "live XML", c->name, have, target, want);
        rc = -1;
    }
    lvd_disks_free(v, n);
    return rc;
}

int lvd_verify(struct lvd *c, const char *target, const struct target_uri *dest)
{
    if (verify_one(c, false, target, dest) < 0)
        return -1;
    return c->persistent ? verify_one(c, true, target, dest) : 0;
}
