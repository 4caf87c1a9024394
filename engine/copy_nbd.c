/* The copier's NBD backend: libnbd's asynchronous API on one or more
 * connections to the same export.  Commands complete through callbacks
 * that only queue the request on the copier's completion list; the core
 * processes it from its loop, so no callback re-enters libnbd.
 *
 * Several connections are opened only when the server advertises
 * multi-conn, which promises that what one connection writes and flushes
 * is what every other one reads. */
#include "engine/copy_internal.h"
#include "engine/target_tls.h"
#include "common/clock.h"
#include "common/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NBD_MAX_ZERO      (1ULL << 30)
#define NBD_DEFAULT_MAX   (32U << 20)
#define CONNECT_SECONDS   30
#define COMMAND_SECONDS   60

struct nbd_ep {
    struct endpoint ep;        /* first: the core's view */
    struct target_uri uri;
    const struct client_tls *tls;  /* set when uri.tls */
    struct nbd_handle *h[COPY_MAX_CONNECTIONS];
    int nconn;
    int inflight[COPY_MAX_CONNECTIONS];
};

#define NBD(e) ((struct nbd_ep *)(e))

static int nbd_fail(struct endpoint *ep, const char *what)
{
    err_set(0, "%s: %s: %s", ep->spec, what, nbd_get_error());
    return -1;
}

/* Runs h's state machine until *done or the deadline.  -1 with err_msg()
 * set on timeout or a dead connection. */
static int wait_done(struct endpoint *ep, struct nbd_handle *h, const bool *done,
                     int seconds, const char *what)
{
    double end = clock_seconds() + seconds;

    while (!*done) {
        int left = (int)((end - clock_seconds()) * 1000);

        if (left <= 0) {
            err_set(ETIMEDOUT, "%s: %s", ep->spec, what);
            return -1;
        }
        if (nbd_poll(h, left) < 0)
            return nbd_fail(ep, what);
    }
    return 0;
}

static struct nbd_handle *connect_one(struct endpoint *ep)
{
    struct nbd_handle *h = nbd_create();
    double end = clock_seconds() + CONNECT_SECONDS;
    int r;

    if (!h) {
        nbd_fail(ep, "nbd_create");
        return NULL;
    }
    if (NBD(ep)->tls && client_tls_apply(NBD(ep)->tls, h) < 0) {
        err_prefix("%s", ep->spec);
        nbd_close(h);
        return NULL;
    }
    /* libnbd zeroes every read buffer before the read by default, so that
     * a caller who ignores a failed read cannot leak old heap contents.
     * The copier uses a buffer only after its read succeeded, and its
     * buffers never hold anything but volume data, so the memset (7-8% of the
     * copier's CPU time in a 2 GiB copy from NBD into tmpfs) buys nothing. */
    if (nbd_set_pread_initialize(h, false) < 0 ||
        nbd_set_export_name(h, NBD(ep)->uri.export_name) < 0 ||
        nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0)
        goto fail;
    if (NBD(ep)->uri.kind == URI_NBD_UNIX)
        r = nbd_aio_connect_unix(h, NBD(ep)->uri.socket);
    else
        r = nbd_aio_connect_tcp(h, NBD(ep)->uri.host, NBD(ep)->uri.port);
    if (r < 0)
        goto fail;
    while (!nbd_aio_is_ready(h)) {
        int left = (int)((end - clock_seconds()) * 1000);

        if (left <= 0) {
            err_set(ETIMEDOUT, "%s: connect", ep->spec);
            nbd_close(h);
            return NULL;
        }
        if (nbd_aio_is_dead(h) || nbd_aio_is_closed(h) || nbd_poll(h, left) < 0)
            goto fail;
    }
    return h;
fail:
    nbd_fail(ep, "connect");
    nbd_close(h);
    return NULL;
}

struct bs_ctx {
    struct endpoint *ep;
    struct extent_map *m;
    bool done;
    int err;
};

static int extent_cb(void *opaque, const char *context, uint64_t offset, uint32_t *entries,
                     size_t n, int *error)
{
    struct bs_ctx *b = opaque;
    struct extent_map *m = b->m;
    uint64_t pos = offset;

    (void)error;
    if (strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION))
        return 0;
    for (size_t i = 0; i + 1 < n && pos < b->ep->size; i += 2) {
        bool zero = entries[i + 1] & LIBNBD_STATE_ZERO;

        pos += entries[i];
        if (pos > b->ep->size)
            pos = b->ep->size;
        if (m->n && m->e[m->n - 1].zero == zero)
            m->e[m->n - 1].end = pos;
        else if (m->n < COPY_MAP_MAX)
            m->e[m->n++] = (typeof(m->e[0])){ pos, zero };
        else
            break;
    }
    return 0;
}

static int bs_done_cb(void *opaque, int *error)
{
    struct bs_ctx *b = opaque;

    b->err = *error;
    b->done = true;
    return 1;
}

static int nbd_extents(struct endpoint *ep, uint64_t off, uint64_t len, struct extent_map *m)
{
    struct bs_ctx b = { .ep = ep, .m = m };

    m->start = off;
    m->n = m->cur = 0;
    if (len > COPY_EXTENT_WINDOW)
        len = COPY_EXTENT_WINDOW;
    if (ep->knows_zero) {
        nbd_extent_callback ecb = { .callback = extent_cb, .user_data = &b };
        nbd_completion_callback ccb = { .callback = bs_done_cb, .user_data = &b };

        if (nbd_aio_block_status(NBD(ep)->h[0], len, off, ecb, ccb, 0) < 0)
            return nbd_fail(ep, "block status");
        if (wait_done(ep, NBD(ep)->h[0], &b.done, COMMAND_SECONDS, "block status") < 0)
            return -1;
        if (b.err) {
            err_set(b.err, "%s: block status at %llu", ep->spec, (unsigned long long)off);
            return -1;
        }
    }
    if (m->n == 0)   /* nothing said: data, read it */
        m->e[m->n++] = (typeof(m->e[0])){ off + len, false };
    m->end = m->e[m->n - 1].end;
    return 0;
}

static int io_done_cb(void *opaque, int *error)
{
    struct creq *r = opaque;
    struct endpoint *ep = r->st == ST_READ ? r->cp->src : r->cp->dst;

    NBD(ep)->inflight[r->conn]--;
    r->res = *error ? -*error : (int64_t)(r->io_end - r->io_pos);
    r->next = r->cp->done;
    r->cp->done = r;
    return 1;
}

static int nbd_start(struct endpoint *ep, struct creq *r, enum ep_op op)
{
    nbd_completion_callback cb = { .callback = io_done_cb, .user_data = r };
    uint8_t *buf = r->buf + (r->io_pos - r->io_base);
    uint64_t len = r->io_end - r->io_pos;
    int64_t cookie = -1;
    int c = 0;

    for (int i = 1; i < NBD(ep)->nconn; i++)
        if (NBD(ep)->inflight[i] < NBD(ep)->inflight[c])
            c = i;
    r->conn = c;
    switch (op) {
    case OP_READ: cookie = nbd_aio_pread(NBD(ep)->h[c], buf, len, r->io_pos, cb, 0); break;
    case OP_WRITE: cookie = nbd_aio_pwrite(NBD(ep)->h[c], buf, len, r->io_pos, cb, 0); break;
    case OP_ZERO: cookie = nbd_aio_zero(NBD(ep)->h[c], len, r->io_pos, cb, 0); break;
    }
    if (cookie < 0)
        return nbd_fail(ep, op == OP_READ ? "read" : op == OP_WRITE ? "write" : "zero");
    NBD(ep)->inflight[c]++;
    return 0;
}

static bool nbd_zero_unsupported(struct endpoint *ep, struct creq *r, int64_t res)
{
    (void)r;
    if (res != -ENOTSUP && res != -EOPNOTSUPP)
        return false;
    ep->can_zero = false;
    return true;
}

static int flush_done_cb(void *opaque, int *error)
{
    struct bs_ctx *b = opaque;

    b->err = *error;
    b->done = true;
    return 1;
}

static int nbd_flush_all(struct endpoint *ep)
{
    for (int i = 0; i < NBD(ep)->nconn; i++) {
        struct bs_ctx b = { .ep = ep };
        nbd_completion_callback cb = { .callback = flush_done_cb, .user_data = &b };

        if (nbd_can_flush(NBD(ep)->h[i]) != 1)
            continue;
        if (nbd_aio_flush(NBD(ep)->h[i], cb, 0) < 0)
            return nbd_fail(ep, "flush");
        if (wait_done(ep, NBD(ep)->h[i], &b.done, COMMAND_SECONDS, "flush") < 0)
            return -1;
        if (b.err) {
            err_set(b.err, "%s: flush", ep->spec);
            return -1;
        }
    }
    return 0;
}

static void nbd_close_all(struct endpoint *ep)
{
    for (int i = 0; i < NBD(ep)->nconn; i++) {
        if (nbd_aio_is_ready(NBD(ep)->h[i]))
            nbd_shutdown(NBD(ep)->h[i], 0);
        nbd_close(NBD(ep)->h[i]);
        NBD(ep)->h[i] = NULL;
    }
    NBD(ep)->nconn = 0;
    free(ep);
}

static bool conn_dead(const struct endpoint *ep, int conn)
{
    const struct nbd_ep *n = (const struct nbd_ep *)ep;

    return conn >= 0 && conn < n->nconn && n->h[conn] &&
           (nbd_aio_is_dead(n->h[conn]) || nbd_aio_is_closed(n->h[conn]));
}

static bool nbd_lost(const struct endpoint *ep, const struct creq *r)
{
    return conn_dead(ep, r->conn);
}

static int nbd_poll_fds(struct endpoint *ep, struct pollfd *fds, int max)
{
    int n = 0;

    for (int i = 0; i < NBD(ep)->nconn && n < max; i++, n++) {
        unsigned dir = nbd_aio_get_direction(NBD(ep)->h[i]);

        /* A dead connection has nothing more to say, and its socket would
         * wake every poll with POLLHUP. */
        fds[n].fd = conn_dead(ep, i) ? -1 : nbd_aio_get_fd(NBD(ep)->h[i]);
        fds[n].events = (dir & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0) |
                        (dir & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0);
        fds[n].revents = 0;
    }
    return n;
}

static int nbd_notify(struct endpoint *ep, const struct pollfd *fds)
{
    int rc = 0;

    /* Every live connection is served even when one has died: requests
     * on the others must still complete for the run to drain. */
    for (int i = 0; i < NBD(ep)->nconn; i++) {
        short rev = fds[i].revents;

        if (!conn_dead(ep, i) &&
            (((rev & (POLLIN | POLLHUP | POLLERR)) && nbd_aio_notify_read(NBD(ep)->h[i]) < 0) ||
             ((rev & POLLOUT) && nbd_aio_notify_write(NBD(ep)->h[i]) < 0))) {
            if (!rc)
                nbd_fail(ep, "connection");
            rc = -1;
        } else if (conn_dead(ep, i)) {
            if (!rc)
                err_set(ECONNRESET, "%s: the server closed connection %d", ep->spec, i + 1);
            rc = -1;
        }
    }
    return rc;
}

static const struct ep_ops nbd_ops = {
    .extents = nbd_extents,
    .start = nbd_start,
    .flush = nbd_flush_all,
    .zero_unsupported = nbd_zero_unsupported,
    .close = nbd_close_all,
    .poll_fds = nbd_poll_fds,
    .notify = nbd_notify,
    .lost = nbd_lost,
};

struct endpoint *copy_nbd_open(const char *spec, const struct target_uri *uri,
                               const struct client_tls *tls, bool is_target, int connections)
{
    struct nbd_ep *n = calloc(1, sizeof *n);
    struct endpoint *ep = &n->ep;
    struct nbd_handle *h;
    int64_t v;

    if (!n) {
        err_set(ENOMEM, "%s", spec);
        return NULL;
    }
    ep->spec = spec;
    ep->is_target = is_target;
    n->uri = *uri;
    n->tls = tls;
    /* Closing frees: from here on every failure goes through it. */
    ep->ops = &nbd_ops;
    if (!(h = connect_one(ep)))
        goto fail;
    NBD(ep)->h[0] = h;
    NBD(ep)->nconn = 1;
    v = nbd_get_size(h);
    if (v < 0)
        goto fail_nbd;
    ep->size = (uint64_t)v;
    if (ep->is_target && nbd_is_read_only(h) == 1) {
        err_set(EROFS, "%s: the export is read-only", ep->spec);
        goto fail;
    }
    v = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
    ep->align = v > 0 ? (uint32_t)v : 1;
    v = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
    ep->max_io = v > 0 && v < NBD_DEFAULT_MAX ? (uint32_t)v : NBD_DEFAULT_MAX;
    ep->max_zero = NBD_MAX_ZERO;
    ep->can_zero = nbd_can_zero(h) == 1;
    ep->knows_zero = nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
    if (nbd_can_multi_conn(h) != 1)
        connections = 1;
    while (NBD(ep)->nconn < connections) {
        if (!(h = connect_one(ep)))
            goto fail;
        NBD(ep)->h[NBD(ep)->nconn++] = h;
    }
    snprintf(ep->desc, sizeof ep->desc, "nbd, %d connection%s%s%s", NBD(ep)->nconn,
             NBD(ep)->nconn > 1 ? "s (multi-conn)" : "",
             ep->knows_zero ? ", base:allocation" : "",
             ep->can_zero || !ep->is_target ? "" : ", no WRITE_ZEROES");
    return ep;
fail_nbd:
    nbd_fail(ep, "size");
fail:
    nbd_close_all(ep);
    return NULL;
}

