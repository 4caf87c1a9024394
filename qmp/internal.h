/* qmp/ internals, one section per file. */
#ifndef VOLMIG_QMP_INTERNAL_H
#define VOLMIG_QMP_INTERNAL_H

#include "qmp/qmp.h"

/* ---- client.c: the handle, transport-independent ---- */

struct qmp_ops {
    const char *name;
    /* Sends one message (it carries our id).  Does not steal msg. */
    int (*send)(struct qmp *q, json_t *msg, int64_t deadline);
    /* Moves whatever arrived into qmp_deliver(); see qmp_pump(). */
    int (*pump)(struct qmp *q, int64_t deadline);
    int (*fd)(const struct qmp *q);
    void (*close)(struct qmp *q);
};

struct qmp {
    const struct qmp_ops *ops;
    void *tp;               /* the transport's state; owned by the transport */
    bool open;
    uint64_t next_id;
    json_t *greeting;       /* the "QMP" object; owned */
    json_t *events;         /* array: queued events, oldest first */
    json_t *replies;        /* object: id (as decimal) -> reply, not yet claimed */
    char error_class[64];   /* of the last failed reply, "" if none */
    char error_desc[512];
    qmp_trace_fn trace;
    void *trace_opaque;
};

struct qmp *qmp_new(const struct qmp_ops *ops, void *tp);
/* Called by transports with each complete message; steals msg.  -1 (and
 * the handle is closed) if msg is not something a QMP server sends. */
int qmp_deliver(struct qmp *q, json_t *msg);
/* Marks the handle dead: the transport is closed, queued replies stay. */
void qmp_shutdown(struct qmp *q);
void qmp_trace(struct qmp *q, const char *dir, const json_t *msg);
/* Milliseconds until deadline, for poll(): 0 if it passed. */
int qmp_poll_ms(int64_t deadline);

/* ---- unix.c ---- */

struct qmp *qmp_unix_open(const char *path, int64_t deadline);
struct qmp *qmp_unix_from_fd(int fd, int64_t deadline);

/* ---- libvirt.c ---- */

/* spec is "DOMAIN[?uri=URI]". */
struct qmp *qmp_libvirt_open(const char *spec, int64_t deadline);

#endif
