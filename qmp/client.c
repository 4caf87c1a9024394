/* The QMP handle: ids, replies, the event queue, deadlines.  Transports
 * only move bytes or messages; everything QMP means lives here. */
#include "qmp/internal.h"
#include "common/clock.h"
#include "common/error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t qmp_now_ms(void)
{
    return clock_ms();
}

int64_t qmp_deadline_in(int64_t timeout_ms)
{
    return qmp_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
}

int qmp_poll_ms(int64_t deadline)
{
    int64_t left = deadline - qmp_now_ms();

    if (left <= 0)
        return 0;
    return left > 60000 ? 60000 : (int)left;
}

static qmp_trace_fn default_trace;
static void *default_trace_opaque;

struct qmp *qmp_new(const struct qmp_ops *ops, void *tp)
{
    struct qmp *q = calloc(1, sizeof *q);

    if (!q) {
        err_set(ENOMEM, "QMP handle");
        return NULL;
    }
    q->ops = ops;
    q->tp = tp;
    q->open = true;
    q->next_id = 1;
    q->events = json_array();
    q->replies = json_object();
    q->trace = default_trace;
    q->trace_opaque = default_trace_opaque;
    return q;
}

void qmp_shutdown(struct qmp *q)
{
    if (q->open && q->ops->close)
        q->ops->close(q);
    q->open = false;
}

void qmp_close(struct qmp *q)
{
    if (!q)
        return;
    qmp_shutdown(q);
    json_decref(q->greeting);
    json_decref(q->events);
    json_decref(q->replies);
    free(q);
}

const json_t *qmp_greeting(const struct qmp *q)
{
    return q->greeting;
}

bool qmp_is_open(const struct qmp *q)
{
    return q->open;
}

const char *qmp_error_class(const struct qmp *q)
{
    return q->error_class[0] ? q->error_class : NULL;
}

const char *qmp_error_desc(const struct qmp *q)
{
    return q->error_class[0] ? q->error_desc : NULL;
}

/* q NULL sets the default for handles opened later, so that a trace can
 * show the handshake too. */
void qmp_set_trace(struct qmp *q, qmp_trace_fn fn, void *opaque)
{
    if (!q) {
        default_trace = fn;
        default_trace_opaque = opaque;
        return;
    }
    q->trace = fn;
    q->trace_opaque = opaque;
}

void qmp_trace(struct qmp *q, const char *dir, const json_t *msg)
{
    char *s;

    if (!q->trace)
        return;
    s = json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s)
        q->trace(dir, s, q->trace_opaque);
    free(s);
}

int qmp_fd(const struct qmp *q)
{
    return q->open ? q->ops->fd(q) : -1;
}

/* Something a QMP server may send: the greeting, an event, or a reply that
 * carries one of our ids.  Anything else ends the session: a peer that
 * breaks the protocol cannot be trusted with the next command either. */
int qmp_deliver(struct qmp *q, json_t *msg)
{
    json_t *id = json_object_get(msg, "id");
    char key[32];

    qmp_trace(q, "<-", msg);
    if (json_is_string(json_object_get(msg, "event"))) {
        json_array_append_new(q->events, msg);
        return 0;
    }
    if (json_is_object(json_object_get(msg, "QMP")) && !q->greeting) {
        q->greeting = json_incref(json_object_get(msg, "QMP"));
        json_decref(msg);
        return 0;
    }
    if ((json_object_get(msg, "return") || json_is_object(json_object_get(msg, "error")))
        && json_is_integer(id) && json_integer_value(id) > 0
        && (uint64_t)json_integer_value(id) < q->next_id) {
        snprintf(key, sizeof key, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
        json_object_set_new(q->replies, key, msg);
        return 0;
    }
    json_decref(msg);
    err_set(EPROTO, "QMP: unexpected message from the monitor");
    qmp_shutdown(q);
    return -1;
}

int qmp_pump(struct qmp *q, int64_t deadline)
{
    if (!q->open) {
        err_set(EPIPE, "QMP monitor is closed");
        return -1;
    }
    return q->ops->pump(q, deadline);
}

int qmp_send(struct qmp *q, const char *cmd, json_t *args, uint64_t *id)
{
    json_t *msg;
    uint64_t n;
    int rc;

    if (!q->open) {
        json_decref(args);
        err_set(EPIPE, "%s: QMP monitor is closed", cmd);
        return -1;
    }
    if (args && !json_is_object(args)) {
        json_decref(args);
        err_set(EINVAL, "%s: arguments must be a JSON object", cmd);
        return -1;
    }
    n = q->next_id++;
    msg = json_pack("{s:s, s:I}", "execute", cmd, "id", (json_int_t)n);
    if (!msg) {
        json_decref(args);
        err_set(ENOMEM, "%s", cmd);
        return -1;
    }
    if (args)
        json_object_set_new(msg, "arguments", args);
    qmp_trace(q, "->", msg);
    /* Sending has its own bound: a monitor that stops reading fills the
     * socket buffer, and that must not stall the caller forever. */
    rc = q->ops->send(q, msg, qmp_deadline_in(30000));
    json_decref(msg);
    if (rc < 0) {
        err_prefix("%s", cmd);
        qmp_shutdown(q);
        return -1;
    }
    if (id)
        *id = n;
    return 0;
}

/* Takes a finished reply apart: 0 and the return value, or -1 and the
 * error recorded with QEMU's class. */
static int reply_result(struct qmp *q, json_t *reply, const char *what, json_t **ret)
{
    json_t *err = json_object_get(reply, "error");

    if (err) {
        const char *cls = json_string_value(json_object_get(err, "class"));
        const char *desc = json_string_value(json_object_get(err, "desc"));

        snprintf(q->error_class, sizeof q->error_class, "%s", cls ? cls : "GenericError");
        snprintf(q->error_desc, sizeof q->error_desc, "%s", desc ? desc : "(no description)");
        err_set(0, "%s: %s: %s", what, q->error_class, desc ? desc : "(no description)");
        return -1;
    }
    if (ret)
        *ret = json_incref(json_object_get(reply, "return"));
    return 0;
}

/* what names the command in messages. */
static int wait_reply(struct qmp *q, uint64_t id, const char *what, json_t **ret,
                      int64_t deadline)
{
    char key[32];
    json_t *reply;
    int rc;

    q->error_class[0] = '\0';
    if (ret)
        *ret = NULL;
    snprintf(key, sizeof key, "%" PRIu64, id);
    for (;;) {
        reply = json_object_get(q->replies, key);
        if (reply) {
            json_incref(reply);
            json_object_del(q->replies, key);
            rc = reply_result(q, reply, what, ret);
            json_decref(reply);
            return rc;
        }
        if (!q->open) {
            err_set(EPIPE, "%s: QMP monitor closed before it replied", what);
            return -1;
        }
        rc = q->ops->pump(q, deadline);
        if (rc < 0) {
            err_prefix("%s", what);
            return -1;
        }
        if (rc == 0 && qmp_now_ms() >= deadline) {
            err_set(ETIMEDOUT, "%s: no reply from QMP", what);
            return -1;
        }
    }
}

int qmp_wait_reply(struct qmp *q, uint64_t id, json_t **ret, int64_t deadline)
{
    char what[48];

    snprintf(what, sizeof what, "command #%" PRIu64, id);
    return wait_reply(q, id, what, ret, deadline);
}

int qmp_call(struct qmp *q, const char *cmd, json_t *args, json_t **ret, int64_t deadline)
{
    uint64_t id;

    if (ret)
        *ret = NULL;
    q->error_class[0] = '\0';
    if (qmp_send(q, cmd, args, &id) < 0)
        return -1;
    return wait_reply(q, id, cmd, ret, deadline);
}

int qmp_callf(struct qmp *q, json_t **ret, int64_t deadline, const char *cmd,
              const char *fmt, ...)
{
    json_t *args = NULL;
    json_error_t jerr;
    va_list ap;

    if (fmt) {
        va_start(ap, fmt);
        args = json_vpack_ex(&jerr, 0, fmt, ap);
        va_end(ap);
        if (!args) {
            err_set(EINVAL, "%s: building arguments: %s", cmd, jerr.text);
            return -1;
        }
    }
    return qmp_call(q, cmd, args, ret, deadline);
}

static bool event_matches(const json_t *ev, const char *name, qmp_event_pred pred,
                          void *opaque)
{
    const char *n = json_string_value(json_object_get(ev, "event"));

    if (name && (!n || strcmp(n, name)))
        return false;
    return !pred || pred(ev, opaque);
}

int qmp_wait_event(struct qmp *q, const char *name, qmp_event_pred pred,
                   void *opaque, json_t **event, int64_t deadline)
{
    size_t seen = 0;
    int rc;

    *event = NULL;
    for (;;) {
        /* Only events queued since the last look need checking. */
        for (; seen < json_array_size(q->events); seen++) {
            json_t *ev = json_array_get(q->events, seen);

            if (event_matches(ev, name, pred, opaque)) {
                *event = json_incref(ev);
                json_array_remove(q->events, seen);
                return 0;
            }
        }
        if (!q->open) {
            err_set(EPIPE, "waiting for event %s: QMP monitor is closed",
                    name ? name : "(any)");
            return -1;
        }
        rc = q->ops->pump(q, deadline);
        if (rc < 0) {
            err_prefix("waiting for event %s", name ? name : "(any)");
            return -1;
        }
        if (rc == 0 && qmp_now_ms() >= deadline) {
            err_set(ETIMEDOUT, "no event %s from QMP in time", name ? name : "(any)");
            return -1;
        }
    }
}

json_t *qmp_next_event(struct qmp *q)
{
    json_t *ev;

    if (json_array_size(q->events) == 0)
        return NULL;
    ev = json_incref(json_array_get(q->events, 0));
    json_array_remove(q->events, 0);
    return ev;
}

bool qmp_match_data(const json_t *event, void *key_eq_value)
{
    const char *kv = key_eq_value, *eq = strchr(kv, '=');
    const char *v;
    char key[128];

    if (!eq || (size_t)(eq - kv) >= sizeof key)
        return false;
    memcpy(key, kv, eq - kv);
    key[eq - kv] = '\0';
    v = json_string_value(json_object_get(json_object_get(event, "data"), key));
    return v && !strcmp(v, eq + 1);
}
