/* The libvirt transport: a QEMU whose monitor libvirtd holds.
 *
 * libvirt's calls block and take no timeout, and its events arrive only
 * while somebody runs its event loop.  So that callers still see one
 * single-threaded handle with deadlines, the blocking parts run in threads
 * of their own and hand their results to the caller's thread through an
 * inbox and a pipe:
 *   - one process-wide thread runs libvirt's default event loop forever;
 *     the QEMU monitor event, lifecycle and close callbacks run there;
 *   - each command runs virDomainQemuMonitorCommand in a short-lived
 *     detached thread.
 * Their messages land in the inbox and a byte in the pipe wakes the caller,
 * whose qmp_pump() moves them into the handle like the unix transport
 * does.  A command whose caller gave up (deadline) finishes in its thread
 * and its reply is dropped with the inbox when the last reference goes.
 */
#include "qmp/internal.h"
#include "common/virt_loop.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

/* The marker a thread puts in the inbox when the transport itself failed. */
#define LV_FAILED "volmig-transport-error"

/* Shared between the caller's thread, command threads and callbacks;
 * freed by whoever drops the last reference. */
struct lv_inbox {
    pthread_mutex_t lock;
    int refs;
    json_t *msgs;               /* array, oldest first */
    int pipe[2];                /* [1] written when msgs grows */
};

struct lv_tp {
    virConnectPtr conn;         /* owned */
    virDomainPtr dom;           /* owned */
    struct lv_inbox *inbox;     /* one reference */
    int qemu_cb, life_cb;       /* callback ids, -1 if not registered */
    bool close_cb;
};

static struct lv_inbox *inbox_new(void)
{
    struct lv_inbox *b = calloc(1, sizeof *b);

    if (!b)
        return NULL;
    if (pipe2(b->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        free(b);
        return NULL;
    }
    pthread_mutex_init(&b->lock, NULL);
    b->refs = 1;
    b->msgs = json_array();
    return b;
}

static struct lv_inbox *inbox_ref(struct lv_inbox *b)
{
    pthread_mutex_lock(&b->lock);
    b->refs++;
    pthread_mutex_unlock(&b->lock);
    return b;
}

static void inbox_unref(void *opaque)
{
    struct lv_inbox *b = opaque;
    int left;

    pthread_mutex_lock(&b->lock);
    left = --b->refs;
    pthread_mutex_unlock(&b->lock);
    if (left)
        return;
    json_decref(b->msgs);
    close(b->pipe[0]);
    close(b->pipe[1]);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* Steals msg. */
static void inbox_push(struct lv_inbox *b, json_t *msg)
{
    ssize_t n;

    if (!msg)
        return;
    pthread_mutex_lock(&b->lock);
    json_array_append_new(b->msgs, msg);
    pthread_mutex_unlock(&b->lock);
    n = write(b->pipe[1], "", 1);   /* a full pipe already wakes the reader */
    (void)n;
}

static void inbox_fail(struct lv_inbox *b, const char *why)
{
    inbox_push(b, json_pack("{s:s}", LV_FAILED, why));
}

/* ---- callbacks (in the event loop thread) ---- */

static void on_qemu_event(virConnectPtr conn, virDomainPtr dom, const char *event,
                          long long seconds, unsigned int micros, const char *details,
                          void *opaque)
{
    json_t *ev, *data = NULL;

    (void)conn; (void)dom;
    if (details)
        data = json_loads(details, 0, NULL);
    ev = json_pack("{s:s, s:{s:I, s:I}}", "event", event, "timestamp",
                   "seconds", (json_int_t)seconds, "microseconds", (json_int_t)micros);
    if (ev && data)
        json_object_set_new(ev, "data", data);
    else
        json_decref(data);
    inbox_push(opaque, ev);
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail,
                        void *opaque)
{
    (void)conn; (void)dom; (void)detail;
    if (event == VIR_DOMAIN_EVENT_STOPPED)
        inbox_fail(opaque, "the domain stopped");
    return 0;
}

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
    (void)conn; (void)reason;
    inbox_fail(opaque, "the connection to libvirtd closed");
}

/* ---- commands ---- */

struct lv_job {
    virDomainPtr dom;           /* a reference of its own */
    struct lv_inbox *inbox;     /* a reference of its own */
    char *cmd;                  /* the command as JSON text */
    json_int_t id;
};

/* libvirt hands back QEMU's reply verbatim, with libvirt's own id; the
 * handle matches on ours. */
static void *job_thread(void *arg)
{
    struct lv_job *j = arg;
    char *result = NULL;
    json_t *reply;

    if (virDomainQemuMonitorCommand(j->dom, j->cmd, &result, 0) < 0) {
        char why[512];

        snprintf(why, sizeof why, "libvirt: %s", virGetLastErrorMessage());
        inbox_fail(j->inbox, why);
    } else {
        reply = json_loads(result, 0, NULL);
        if (!json_is_object(reply)) {
            json_decref(reply);
            inbox_fail(j->inbox, "libvirt returned a reply that is not a JSON object");
        } else {
            json_object_set_new(reply, "id", json_integer(j->id));
            inbox_push(j->inbox, reply);
        }
    }
    free(result);
    free(j->cmd);
    virDomainFree(j->dom);
    inbox_unref(j->inbox);
    free(j);
    return NULL;
}

static int lv_send(struct qmp *q, json_t *msg, int64_t deadline)
{
    struct lv_tp *t = q->tp;
    struct lv_job *j = calloc(1, sizeof *j);
    json_t *copy = json_copy(msg);
    pthread_t th;

    (void)deadline;     /* nothing here waits */
    if (!j || !copy) {
        free(j);
        json_decref(copy);
        err_set(ENOMEM, "QMP command");
        return -1;
    }
    j->id = json_integer_value(json_object_get(msg, "id"));
    json_object_del(copy, "id");    /* libvirt sets its own */
    j->cmd = json_dumps(copy, JSON_COMPACT);
    json_decref(copy);
    if (!j->cmd || virDomainRef(t->dom) < 0) {
        free(j->cmd);
        free(j);
        err_set(ENOMEM, "QMP command");
        return -1;
    }
    j->dom = t->dom;
    j->inbox = inbox_ref(t->inbox);
    if (pthread_create(&th, NULL, job_thread, j) != 0) {
        virDomainFree(j->dom);
        inbox_unref(j->inbox);
        free(j->cmd);
        free(j);
        err_set(EAGAIN, "starting a libvirt command thread");
        return -1;
    }
    pthread_detach(th);     /* from here the thread owns j */
    return 0;
}

static int lv_fd(const struct qmp *q)
{
    return ((struct lv_tp *)q->tp)->inbox->pipe[0];
}

/* Moves the inbox into the handle. 1 if anything came, -1 if the
 * transport failed. */
static int lv_drain(struct qmp *q)
{
    struct lv_tp *t = q->tp;
    struct lv_inbox *b = t->inbox;
    char junk[256];
    json_t *msgs;
    size_t i;
    int rc = 0;

    while (read(b->pipe[0], junk, sizeof junk) > 0)
        ;
    pthread_mutex_lock(&b->lock);
    msgs = b->msgs;
    b->msgs = json_array();
    pthread_mutex_unlock(&b->lock);
    for (i = 0; i < json_array_size(msgs) && rc >= 0; i++) {
        json_t *m = json_array_get(msgs, i);
        const char *failed = json_string_value(json_object_get(m, LV_FAILED));

        if (failed) {
            err_set(EPIPE, "QMP through libvirt: %s", failed);
            qmp_shutdown(q);
            rc = -1;
        } else if (qmp_deliver(q, json_incref(m)) < 0) {
            rc = -1;
        } else {
            rc = 1;
        }
    }
    json_decref(msgs);
    return rc;
}

static int lv_pump(struct qmp *q, int64_t deadline)
{
    struct pollfd p = { .fd = lv_fd(q), .events = POLLIN };

    for (;;) {
        int rc = lv_drain(q);

        if (rc != 0)
            return rc;
        rc = poll(&p, 1, qmp_poll_ms(deadline));
        if (rc < 0 && errno != EINTR) {
            err_set(errno, "poll");
            return -1;
        }
        if (rc == 0 && qmp_now_ms() >= deadline)
            return 0;
    }
}

static void lv_close(struct qmp *q)
{
    struct lv_tp *t = q->tp;

    if (t->qemu_cb >= 0)
        virConnectDomainQemuMonitorEventDeregister(t->conn, t->qemu_cb);
    if (t->life_cb >= 0)
        virConnectDomainEventDeregisterAny(t->conn, t->life_cb);
    if (t->close_cb)
        virConnectUnregisterCloseCallback(t->conn, on_close);
    if (t->dom)
        virDomainFree(t->dom);
    if (t->conn)
        virConnectClose(t->conn);
    inbox_unref(t->inbox);
    free(t);
    q->tp = NULL;
}

static const struct qmp_ops lv_ops = {
    .name = "libvirt",
    .send = lv_send,
    .pump = lv_pump,
    .fd = lv_fd,
    .close = lv_close,
};

/* "DOMAIN[?uri=URI]" -> name and uri (both malloc'd). */
static int parse_spec(const char *spec, char **name, char **uri)
{
    const char *qm = strchr(spec, '?');

    *name = strndup(spec, qm ? (size_t)(qm - spec) : strlen(spec));
    *uri = strdup("qemu:///system");
    if (qm) {
        if (strncmp(qm + 1, "uri=", 4) || !qm[5]) {
            free(*name);
            free(*uri);
            err_set(EINVAL, "libvirt:%s: expected libvirt:DOMAIN[?uri=URI]", spec);
            return -1;
        }
        free(*uri);
        *uri = strdup(qm + 5);
    }
    if (!**name) {
        free(*name);
        free(*uri);
        err_set(EINVAL, "libvirt:%s: no domain name", spec);
        return -1;
    }
    return 0;
}

static int lv_connect(struct lv_tp *t, const char *name, const char *uri)
{
    t->conn = virConnectOpen(uri);
    if (!t->conn) {
        err_set(0, "libvirt: connecting to %s: %s", uri, virGetLastErrorMessage());
        return -1;
    }
    /* Keepalive turns a libvirtd that stopped answering into a closed
     * connection (and so an error) instead of a silent wait. */
    virConnectSetKeepAlive(t->conn, 5, 3);
    t->dom = virDomainLookupByName(t->conn, name);
    if (!t->dom) {
        err_set(0, "libvirt: domain %s: %s", name, virGetLastErrorMessage());
        return -1;
    }
    if (virDomainIsActive(t->dom) != 1) {
        err_set(0, "libvirt: domain %s is not running", name);
        return -1;
    }
    t->qemu_cb = virConnectDomainQemuMonitorEventRegister(
        t->conn, t->dom, NULL, on_qemu_event, inbox_ref(t->inbox), inbox_unref, 0);
    if (t->qemu_cb < 0) {
        inbox_unref(t->inbox);
        err_set(0, "libvirt: QEMU events of %s: %s", name, virGetLastErrorMessage());
        return -1;
    }
    t->life_cb = virConnectDomainEventRegisterAny(
        t->conn, t->dom, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
        VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), inbox_ref(t->inbox), inbox_unref);
    if (t->life_cb < 0)
        inbox_unref(t->inbox);
    if (virConnectRegisterCloseCallback(t->conn, on_close, inbox_ref(t->inbox),
                                        inbox_unref) == 0)
        t->close_cb = true;
    else
        inbox_unref(t->inbox);
    return 0;
}

struct qmp *qmp_libvirt_open(const char *spec, int64_t deadline)
{
    struct lv_tp *t;
    struct qmp *q;
    char *name, *uri;
    json_t *version = NULL;
    int rc;

    if (parse_spec(spec, &name, &uri) < 0)
        return NULL;
    t = calloc(1, sizeof *t);
    if (virt_loop_start() < 0 || !t || !(t->inbox = inbox_new())) {
        err_set(0, "libvirt: cannot start the event loop");
        free(t);
        free(name);
        free(uri);
        return NULL;
    }
    t->qemu_cb = t->life_cb = -1;
    q = qmp_new(&lv_ops, t);            /* from here q owns t */
    if (!q) {
        lv_close(&(struct qmp){ .tp = t });
        free(name);
        free(uri);
        return NULL;
    }
    rc = lv_connect(t, name, uri);
    free(name);
    free(uri);
    /* libvirt negotiated capabilities long ago; the greeting is made up
     * from query-version so that callers see the same thing either way. */
    if (rc == 0)
        rc = qmp_call(q, "query-version", NULL, &version, deadline);
    if (rc < 0) {
        qmp_close(q);
        return NULL;
    }
    q->greeting = json_pack("{s:o, s:[]}", "version", version, "capabilities");
    return q;
}
