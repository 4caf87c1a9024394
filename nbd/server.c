/* volmig serve's connection loop: one thread, one io_uring, every socket
 * and every target operation on it.
 *
 * A connection moves through the handshake (pure state machine in
 * handshake.c) into transmission, where a receive loop reads one request
 * header at a time, receives a write's payload straight into a buffer from
 * the registered pool, and hands the request to the target while it goes on
 * receiving the next one.  Replies go out in completion order through a
 * per-connection send queue with one send in flight, so replies never
 * interleave on the wire.
 *
 * Lifetimes: the server owns connections; a connection owns its requests.
 * A connection is freed only once no submitted operation refers to it
 * (c->ops == 0) and it has no request left, so a completion can never find
 * freed memory.
 */
#include "nbd/internal.h"
#include "common/bufpool.h"
#include "common/error.h"
#include "common/target.h"
#include "common/uring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define RING_ENTRIES        512
#define MAX_INFLIGHT        64          /* requests per connection */
#define POOL_SIZE           (NBD_MAX_PAYLOAD + (8U << 20))
#define ZERO_BUF_SIZE       (1U << 20)
#define MAX_READ_EXTENTS    16
#define MAX_STATUS_EXTENTS  64
#define IN_CAP              (NBD_MAX_OPTION + 64)
#define HANDSHAKE_SECONDS   30
#define SHUTDOWN_SECONDS    10
#define DISCARD_CHUNK       (64U << 10)

/* user_data carries the owner's address with an operation kind in the low
 * bits; owners are allocated 256-byte aligned, which leaves room for a
 * sub-index (which extent of a read completed). */
enum op_kind { OP_IGNORE, OP_ACCEPT, OP_SIGNAL, OP_TICK, OP_RECV, OP_SEND, OP_TARGET };
#define UD(kind, ptr, idx) ((uint64_t)(uintptr_t)(ptr) | ((uint64_t)(idx) << 3) | (kind))
#define UD_KIND(ud)  ((enum op_kind)((ud) & 7))
#define UD_PTR(ud)   ((void *)(uintptr_t)((ud) & ~(uint64_t)255))
#define UD_IDX(ud)   ((int)(((ud) >> 3) & 31))
#define OWNER_ALIGN  256

enum rx_state { RX_IDLE, RX_HEADER, RX_PAYLOAD, RX_DISCARD, RX_WAIT_BUF, RX_WAIT_SLOT, RX_STOPPED };
enum req_step { STEP_IO, STEP_ZERO_WRITES, STEP_FLUSH_AFTER };

struct server;

struct req {
    struct conn *c;
    struct req *next;            /* send queue */
    struct nbd_request r;
    uint32_t err;                /* NBD error to reply, 0 for success */
    uint8_t *buf;                /* from the pool; owned by this request */
    size_t buflen;
    int pending;                 /* target operations outstanding */
    enum req_step step;
    uint64_t zpos;               /* zero-by-writing progress */
    int nextent;
    struct target_extent ext[MAX_READ_EXTENTS];
    struct msghdr msg;
    struct iovec iov[2 * MAX_READ_EXTENTS + 2];
    uint8_t hdr[1024];           /* reply headers and small payloads */
};

struct conn {
    struct server *s;
    struct conn *next;
    struct conn *wait_next;      /* buffer waiters */
    int fd;
    char peer[80];
    bool transmission;
    bool closing;                /* no more requests will be read */
    bool broken;                 /* the socket failed: drop replies */
    bool waiting_buf;
    bool recv_busy, send_busy;
    int ops;                     /* submitted operations referring to us */
    int inflight;                /* requests read and not yet replied */
    time_t deadline;             /* handshake must end by then */
    /* handshake */
    struct nbd_hs hs;
    enum nbd_hs_result hs_result;
    struct nbd_outbuf *hsout;
    size_t hsout_sent;
    uint8_t *in;                 /* handshake input, then leftover bytes */
    size_t in_len;
    /* transmission */
    struct nbd_session sess;
    enum rx_state rx;
    uint8_t reqhdr[NBD_REQUEST_SIZE];
    size_t hdr_got;
    struct req *rx_req;          /* request whose payload we receive */
    size_t rx_got;
    uint64_t discard_left;
    struct req *sendq, *sendq_tail;
};

struct server {
    const struct nbd_serve_config *cfg;
    void (*log)(const char *fmt, ...);
    struct io_uring ring;
    struct target tgt;
    struct bufpool pool;
    struct nbd_export exp;
    uint8_t *zero_buf;
    uint8_t *scratch;            /* discarded payloads land here */
    int lfd;
    char unix_path[108];
    bool accepting;
    int sfd;
    struct signalfd_siginfo siginfo;
    struct __kernel_timespec tick;
    struct conn *conns;
    struct conn *waiters, *waiters_tail;
    int nconns;
    int served;
    bool stopping;
    time_t stop_deadline;
    bool flush_failed;
    struct nbd_tls *tls;         /* NULL: plaintext only */
};

static void conn_rx_next(struct conn *c);
static void conn_send_kick(struct conn *c);
static void req_run(struct req *q);
static void req_reply(struct req *q);
static void conn_hs_process(struct conn *c);
static void conn_start_tls(struct conn *c);
static void begin_stop(struct server *s, const char *why);

static void slog(struct server *s, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    if (!s->log)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    s->log("%s", buf);
}

static struct io_uring_sqe *get_sqe(struct server *s)
{
    return uring_get_sqe(&s->ring);
}

static void *aligned_zalloc(size_t size)
{
    void *p = aligned_alloc(OWNER_ALIGN, (size + OWNER_ALIGN - 1) / OWNER_ALIGN * OWNER_ALIGN);

    if (p)
        memset(p, 0, size);
    return p;
}

/* ---- connection lifetime ---- */

static void conn_maybe_free(struct conn *c)
{
    struct server *s = c->s;
    struct conn **pp;

    if (!c->closing || c->ops || c->inflight || c->waiting_buf)
        return;
    for (pp = &s->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    if (c->fd >= 0)
        close(c->fd);
    if (s->cfg->verbose)
        slog(s, "client %s disconnected", c->peer);
    free(c->hsout);
    free(c->in);
    free(c);
    s->nconns--;
    s->served++;
    if (s->cfg->once && !s->stopping) {
        s->stopping = true;
        s->stop_deadline = time(NULL) + SHUTDOWN_SECONDS;
    }
}

static void req_free(struct req *q)
{
    struct conn *c = q->c;
    struct server *s = c->s;

    if (q->buf)
        bufpool_free(&s->pool, q->buf, q->buflen);
    free(q);
    c->inflight--;
    /* A freed buffer may let a waiting connection go on. */
    while (s->waiters) {
        struct conn *w = s->waiters;
        struct req *wq = w->rx_req;
        size_t need = wq->r.length;

        wq->buf = bufpool_alloc(&s->pool, need);
        if (!wq->buf)
            break;
        wq->buflen = need;
        s->waiters = w->wait_next;
        if (!s->waiters)
            s->waiters_tail = NULL;
        w->waiting_buf = false;
        if (w->closing) {
            w->rx_req = NULL;
            req_free(wq);
            conn_maybe_free(w);
        } else if (wq->r.type == NBD_CMD_WRITE) {
            w->rx = RX_PAYLOAD;
            w->rx_got = 0;
            conn_rx_next(w);
        } else {
            w->rx_req = NULL;
            req_run(wq);
            w->rx = RX_IDLE;
            conn_rx_next(w);
        }
    }
    if (c->rx == RX_WAIT_SLOT && c->inflight < MAX_INFLIGHT) {
        c->rx = RX_IDLE;
        conn_rx_next(c);
    }
    /* Freeing c, if this was its last request, is left to the caller:
     * it may still be using c. */
}

/* Stops reading requests.  Requests already read still run and are
 * answered (unless the socket is broken); then the connection goes. */
static void conn_close(struct conn *c, bool hard)
{
    struct server *s = c->s;

    if (!c->closing) {
        c->closing = true;
        c->rx = RX_STOPPED;
        /* A payload that never fully arrived.  While a receive still
         * writes into its buffer, on_recv frees it instead. */
        if (c->rx_req && !c->waiting_buf && !c->recv_busy) {
            req_free(c->rx_req);
            c->rx_req = NULL;
        }
    }
    if (hard) {
        c->broken = true;
        while (c->sendq && !c->send_busy) {
            struct req *q = c->sendq;

            c->sendq = q->next;
            req_free(q);
        }
    }
    if (c->waiting_buf) {
        struct conn **pp;

        for (pp = &s->waiters; *pp; pp = &(*pp)->wait_next) {
            if (*pp == c) {
                *pp = c->wait_next;
                break;
            }
        }
        s->waiters_tail = NULL;
        for (struct conn *w = s->waiters; w; w = w->wait_next)
            s->waiters_tail = w;
        c->waiting_buf = false;
        if (c->rx_req) {
            req_free(c->rx_req);
            c->rx_req = NULL;
        }
    }
    /* Wakes any receive in flight: it completes with 0 or an error. */
    if (c->fd >= 0)
        shutdown(c->fd, hard ? SHUT_RDWR : SHUT_RD);
    conn_maybe_free(c);
}

/* ---- receiving ---- */

static void submit_recv(struct conn *c, void *buf, size_t len)
{
    struct io_uring_sqe *sqe = get_sqe(c->s);

    /* MSG_WAITALL lets the kernel gather a whole header or payload before
     * it completes; a short count (shutdown, signal) is still handled. */
    io_uring_prep_recv(sqe, c->fd, buf, len, c->transmission ? MSG_WAITALL : 0);
    io_uring_sqe_set_data64(sqe, UD(OP_RECV, c, 0));
    c->recv_busy = true;
    c->ops++;
}

/* Bytes that arrived with the end of the handshake come first. */
static size_t take_leftover(struct conn *c, uint8_t *dst, size_t want)
{
    size_t n = c->in_len < want ? c->in_len : want;

    if (n) {
        memcpy(dst, c->in, n);
        memmove(c->in, c->in + n, c->in_len - n);
        c->in_len -= n;
    }
    return n;
}

static struct req *req_new(struct conn *c)
{
    struct req *q = aligned_zalloc(sizeof *q);

    if (q) {
        q->c = c;
        c->inflight++;
    }
    return q;
}

/* A whole request header is in c->reqhdr: validate it and decide what
 * comes next on the wire. */
static void handle_header(struct conn *c)
{
    struct server *s = c->s;
    struct nbd_request r;
    struct req *q;
    int v;

    c->hdr_got = 0;
    if (nbd_request_decode(c->reqhdr, &r) < 0) {
        slog(s, "client %s sent a bad request magic; disconnecting", c->peer);
        conn_close(c, true);
        return;
    }
    v = nbd_request_validate(&r, &s->exp, &c->sess);
    if (v == NBD_VALID_DISCONNECT) {
        slog(s, "client %s sent a %u-byte write, over the %u-byte maximum; disconnecting",
             c->peer, r.length, s->exp.max_payload);
        conn_close(c, true);
        return;
    }
    if (r.type == NBD_CMD_DISC && v == 0) {
        conn_close(c, false);
        return;
    }
    q = req_new(c);
    if (!q) {
        conn_close(c, true);
        return;
    }
    q->r = r;
    q->err = (uint32_t)v;
    if (v && r.type == NBD_CMD_WRITE) {
        /* Refused writes still carry their payload: skip it to stay in
         * step with the stream, then answer. */
        c->rx_req = q;
        c->discard_left = r.length;
        c->rx = RX_DISCARD;
        return;
    }
    if (v) {
        req_reply(q);
        c->rx = RX_IDLE;
        return;
    }
    if (r.type == NBD_CMD_WRITE || r.type == NBD_CMD_READ) {
        q->buf = bufpool_alloc(&s->pool, r.length);
        if (!q->buf) {
            c->rx_req = q;
            c->rx = RX_WAIT_BUF;
            c->waiting_buf = true;
            c->wait_next = NULL;
            if (s->waiters_tail)
                s->waiters_tail->wait_next = c;
            else
                s->waiters = c;
            s->waiters_tail = c;
            return;
        }
        q->buflen = r.length;
    }
    if (r.type == NBD_CMD_WRITE) {
        c->rx_req = q;
        c->rx_got = 0;
        c->rx = RX_PAYLOAD;
        return;
    }
    req_run(q);
    c->rx = RX_IDLE;
}

/* Drives the receive side until it needs the kernel (a recv in flight) or
 * has to wait (buffers, the in-flight limit, closing). */
static void conn_rx_next(struct conn *c)
{
    for (;;) {
        if (c->closing || c->recv_busy)
            return;
        switch (c->rx) {
        case RX_IDLE:
            if (c->inflight >= MAX_INFLIGHT) {
                c->rx = RX_WAIT_SLOT;
                return;
            }
            c->rx = RX_HEADER;
            c->hdr_got = 0;
            /* fall through */
        case RX_HEADER:
            c->hdr_got += take_leftover(c, c->reqhdr + c->hdr_got, NBD_REQUEST_SIZE - c->hdr_got);
            if (c->hdr_got < NBD_REQUEST_SIZE) {
                submit_recv(c, c->reqhdr + c->hdr_got, NBD_REQUEST_SIZE - c->hdr_got);
                return;
            }
            handle_header(c);
            break;
        case RX_PAYLOAD: {
            struct req *q = c->rx_req;

            c->rx_got += take_leftover(c, q->buf + c->rx_got, q->r.length - c->rx_got);
            if (c->rx_got < q->r.length) {
                submit_recv(c, q->buf + c->rx_got, q->r.length - c->rx_got);
                return;
            }
            c->rx_req = NULL;
            c->rx = RX_IDLE;
            req_run(q);
            break;
        }
        case RX_DISCARD: {
            size_t n = c->discard_left < DISCARD_CHUNK ? (size_t)c->discard_left : DISCARD_CHUNK;

            c->discard_left -= take_leftover(c, c->s->scratch, n);
            if (c->discard_left) {
                n = c->discard_left < DISCARD_CHUNK ? (size_t)c->discard_left : DISCARD_CHUNK;
                submit_recv(c, c->s->scratch, n);
                return;
            }
            req_reply(c->rx_req);
            c->rx_req = NULL;
            c->rx = RX_IDLE;
            break;
        }
        case RX_WAIT_BUF:
        case RX_WAIT_SLOT:
        case RX_STOPPED:
            return;
        }
    }
}

static void on_recv(struct conn *c, int res)
{
    c->recv_busy = false;
    c->ops--;
    if (c->closing) {
        if (c->rx_req && !c->waiting_buf) {
            req_free(c->rx_req);
            c->rx_req = NULL;
        }
        return;
    }
    if (res <= 0) {
        /* The peer hung up (0) or the socket failed; both end reading.
         * Replies already owed still go out if the socket takes them. */
        if (res < 0 && res != -ECONNRESET && c->s->cfg->verbose)
            slog(c->s, "client %s: receive failed: %s", c->peer, strerror(-res));
        conn_close(c, res < 0 || !c->transmission);
        return;
    }
    if (!c->transmission) {
        c->in_len += (size_t)res;
        conn_hs_process(c);
        return;
    }
    switch (c->rx) {
    case RX_HEADER:  c->hdr_got += (size_t)res; break;
    case RX_PAYLOAD: c->rx_got += (size_t)res; break;
    case RX_DISCARD: c->discard_left -= (size_t)res; break;
    default: break;
    }
    conn_rx_next(c);
}

/* ---- sending ---- */

static void conn_send_kick(struct conn *c)
{
    struct io_uring_sqe *sqe;
    struct req *q = c->sendq;

    if (c->send_busy || !q)
        return;
    sqe = get_sqe(c->s);
    io_uring_prep_sendmsg(sqe, c->fd, &q->msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, UD(OP_SEND, c, 0));
    c->send_busy = true;
    c->ops++;
}

static void queue_reply(struct req *q)
{
    struct conn *c = q->c;

    if (c->broken) {
        req_free(q);
        return;
    }
    q->msg.msg_iov = q->iov;
    q->next = NULL;
    if (c->sendq_tail && c->sendq)
        c->sendq_tail->next = q;
    else
        c->sendq = q;
    c->sendq_tail = q;
    conn_send_kick(c);
}

static void on_send_tx(struct conn *c, int res)
{
    struct req *q = c->sendq;
    size_t n;

    c->send_busy = false;
    c->ops--;
    if (res < 0) {
        if (c->s->cfg->verbose)
            slog(c->s, "client %s: send failed: %s", c->peer, strerror(-res));
        conn_close(c, true);
        return;
    }
    /* A short send: skip what went out and send the rest. */
    n = (size_t)res;
    while (q->msg.msg_iovlen && (n || q->msg.msg_iov->iov_len == 0)) {
        struct iovec *v = q->msg.msg_iov;

        if (n >= v->iov_len) {
            n -= v->iov_len;
            q->msg.msg_iov++;
            q->msg.msg_iovlen--;
        } else {
            v->iov_base = (uint8_t *)v->iov_base + n;
            v->iov_len -= n;
            n = 0;
        }
    }
    if (q->msg.msg_iovlen) {
        conn_send_kick(c);
        return;
    }
    c->sendq = q->next;
    if (!c->sendq)
        c->sendq_tail = NULL;
    req_free(q);
    if (c->broken) {
        while (c->sendq) {
            q = c->sendq;
            c->sendq = q->next;
            req_free(q);
        }
        c->sendq_tail = NULL;
        return;
    }
    conn_send_kick(c);
}

/* ---- replies ---- */

static void add_iov(struct req *q, void *p, size_t len)
{
    q->iov[q->msg.msg_iovlen].iov_base = p;
    q->iov[q->msg.msg_iovlen].iov_len = len;
    q->msg.msg_iovlen++;
}

static void build_error(struct req *q)
{
    if (q->c->sess.structured) {
        add_iov(q, q->hdr, nbd_put_error_chunk(q->hdr, q->r.cookie, q->err, nbd_strerror(q->err)));
    } else {
        /* A simple reply carries read data only when error is zero. */
        add_iov(q, q->hdr, nbd_put_simple_reply(q->hdr, q->r.cookie, q->err));
    }
}

static void build_read(struct req *q)
{
    uint8_t *h = q->hdr;

    if (!q->c->sess.structured) {
        add_iov(q, h, nbd_put_simple_reply(h, q->r.cookie, 0));
        add_iov(q, q->buf, q->r.length);
        return;
    }
    for (int i = 0; i < q->nextent; i++) {
        const struct target_extent *e = &q->ext[i];
        uint16_t flags = i == q->nextent - 1 ? NBD_REPLY_FLAG_DONE : 0;
        uint8_t *start = h;

        if (e->hole) {
            h += nbd_put_chunk(h, flags, NBD_REPLY_TYPE_OFFSET_HOLE, q->r.cookie, 12);
            h = put_be64(h, e->offset);
            h = put_be32(h, (uint32_t)e->length);
            add_iov(q, start, (size_t)(h - start));
        } else {
            h += nbd_put_chunk(h, flags, NBD_REPLY_TYPE_OFFSET_DATA, q->r.cookie,
                               (uint32_t)(8 + e->length));
            h = put_be64(h, e->offset);
            add_iov(q, start, (size_t)(h - start));
            add_iov(q, q->buf + (e->offset - q->r.offset), e->length);
        }
    }
}

static void build_block_status(struct req *q)
{
    struct target_extent e[MAX_STATUS_EXTENTS];
    bool one = q->r.flags & NBD_CMD_FLAG_REQ_ONE;
    int n = target_extents(&q->c->s->tgt, q->r.offset, q->r.length, e, one ? 2 : MAX_STATUS_EXTENTS);
    uint8_t *h = q->hdr;

    if (one)
        n = 1;
    h += nbd_put_chunk(h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, q->r.cookie,
                       (uint32_t)(4 + 8 * n));
    h = put_be32(h, NBD_BASE_ALLOCATION_ID);
    for (int i = 0; i < n; i++) {
        h = put_be32(h, (uint32_t)e[i].length);
        h = put_be32(h, e[i].hole ? NBD_STATE_HOLE | NBD_STATE_ZERO : 0);
    }
    add_iov(q, q->hdr, (size_t)(h - q->hdr));
}

static void req_reply(struct req *q)
{
    q->msg.msg_iovlen = 0;
    if (q->err)
        build_error(q);
    else if (q->r.type == NBD_CMD_READ)
        build_read(q);
    else if (q->r.type == NBD_CMD_BLOCK_STATUS)
        build_block_status(q);
    else
        add_iov(q, q->hdr, nbd_put_simple_reply(q->hdr, q->r.cookie, 0));
    queue_reply(q);
}

/* ---- target operations ---- */

static struct io_uring_sqe *target_sqe(struct req *q, int idx)
{
    struct io_uring_sqe *sqe = get_sqe(q->c->s);

    io_uring_sqe_set_data64(sqe, UD(OP_TARGET, q, idx));
    q->pending++;
    q->c->ops++;
    return sqe;
}

static void submit_read_extent(struct req *q, int i)
{
    const struct target_extent *e = &q->ext[i];

    target_prep_read(&q->c->s->tgt, target_sqe(q, i), q->buf + (e->offset - q->r.offset),
                     (uint32_t)e->length, e->offset);
}

static void submit_flush(struct req *q)
{
    q->step = STEP_FLUSH_AFTER;
    target_prep_flush(&q->c->s->tgt, target_sqe(q, 0));
}

static void submit_zero_write(struct req *q)
{
    struct server *s = q->c->s;
    uint64_t left = q->r.length - q->zpos;
    uint32_t n = left < ZERO_BUF_SIZE ? (uint32_t)left : ZERO_BUF_SIZE;

    q->step = STEP_ZERO_WRITES;
    target_prep_write(&s->tgt, target_sqe(q, 0), s->zero_buf, n, q->r.offset + q->zpos, false);
}

/* Zeroes by the cheapest means the target still admits: punching a hole
 * (reads back as zeroes), then ZERO_RANGE, then plain writes of zeroes. */
static void submit_zero(struct req *q)
{
    struct target *t = &q->c->s->tgt;
    bool may_punch = !(q->r.flags & NBD_CMD_FLAG_NO_HOLE) || q->r.type == NBD_CMD_TRIM;

    q->step = STEP_IO;
    if (may_punch && t->can_punch) {
        target_prep_fallocate(t, target_sqe(q, 0), FALLOC_FL_PUNCH_HOLE, q->r.offset, q->r.length);
    } else if (q->r.type == NBD_CMD_TRIM) {
        /* Trimming is advisory: with no way to punch, it does nothing. */
        if (q->r.flags & NBD_CMD_FLAG_FUA)
            submit_flush(q);
        else
            req_reply(q);
    } else if (t->can_zero_range) {
        target_prep_fallocate(t, target_sqe(q, 0), FALLOC_FL_ZERO_RANGE, q->r.offset, q->r.length);
    } else if (q->r.flags & NBD_CMD_FLAG_FAST_ZERO) {
        q->err = NBD_ENOTSUP;   /* the client asked to be told, not to wait */
        req_reply(q);
    } else {
        q->zpos = 0;
        submit_zero_write(q);
    }
}

static void req_run(struct req *q)
{
    struct server *s = q->c->s;
    struct target *t = &s->tgt;

    switch (q->r.type) {
    case NBD_CMD_READ:
        if (q->c->sess.structured && !(q->r.flags & NBD_CMD_FLAG_DF) && t->can_seek_data) {
            q->nextent = target_extents(t, q->r.offset, q->r.length, q->ext, MAX_READ_EXTENTS);
        } else {
            q->nextent = 1;
            q->ext[0] = (struct target_extent){ q->r.offset, q->r.length, false };
        }
        for (int i = 0; i < q->nextent; i++)
            if (!q->ext[i].hole)
                submit_read_extent(q, i);
        if (!q->pending)
            req_reply(q);
        break;
    case NBD_CMD_WRITE:
        target_prep_write(t, target_sqe(q, 0), q->buf, q->r.length, q->r.offset,
                          q->r.flags & NBD_CMD_FLAG_FUA);
        break;
    case NBD_CMD_FLUSH:
        submit_flush(q);
        break;
    case NBD_CMD_TRIM:
    case NBD_CMD_WRITE_ZEROES:
        submit_zero(q);
        break;
    case NBD_CMD_BLOCK_STATUS:
        req_reply(q);
        break;
    default:
        q->err = NBD_EINVAL;
        req_reply(q);
    }
}

/* One target operation of q finished with res. */
static void on_target(struct req *q, int idx, int res)
{
    struct conn *c = q->c;
    struct server *s = c->s;
    struct target *t = &s->tgt;

    q->pending--;
    c->ops--;
    if (q->step == STEP_IO && (q->r.type == NBD_CMD_READ || q->r.type == NBD_CMD_WRITE)) {
        uint64_t want = q->r.type == NBD_CMD_READ ? q->ext[idx].length : q->r.length;

        if (res >= 0 && (uint64_t)res < want && res > 0) {
            /* Short transfer: redo the whole piece, which is idempotent. */
            if (q->r.type == NBD_CMD_READ)
                submit_read_extent(q, idx);
            else
                target_prep_write(t, target_sqe(q, 0), q->buf, q->r.length, q->r.offset,
                                  q->r.flags & NBD_CMD_FLAG_FUA);
            return;
        }
        if (res == 0)
            res = -EIO;
        if (res < 0 && !q->err)
            q->err = nbd_errno_to_wire(-res);
        if (!q->pending)
            req_reply(q);
        return;
    }
    if (q->step == STEP_IO) {
        /* fallocate for TRIM or WRITE_ZEROES */
        bool punched = (!(q->r.flags & NBD_CMD_FLAG_NO_HOLE) || q->r.type == NBD_CMD_TRIM) &&
                       t->can_punch;

        if (target_zero_unsupported(t, punched ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE,
                                    res)) {
            slog(s, "target does not support %s; falling back",
                 punched ? "punching holes" : "FALLOC_FL_ZERO_RANGE");
            submit_zero(q);
            return;
        }
        if (res < 0)
            q->err = nbd_errno_to_wire(-res);
    } else if (q->step == STEP_ZERO_WRITES) {
        if (res <= 0) {
            q->err = nbd_errno_to_wire(res ? -res : EIO);
        } else {
            q->zpos += (uint64_t)res;
            if (q->zpos < q->r.length) {
                submit_zero_write(q);
                return;
            }
        }
    } else if (res < 0) {   /* STEP_FLUSH_AFTER or FLUSH */
        q->err = nbd_errno_to_wire(-res);
    }
    if (!q->err && q->step != STEP_FLUSH_AFTER && (q->r.flags & NBD_CMD_FLAG_FUA) &&
        q->r.type != NBD_CMD_WRITE) {
        submit_flush(q);
        return;
    }
    req_reply(q);
}

/* ---- handshake ---- */

static void hs_send(struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(c->s);

    io_uring_prep_send(sqe, c->fd, c->hsout->data + c->hsout_sent,
                       c->hsout->len - c->hsout_sent, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, UD(OP_SEND, c, 0));
    c->send_busy = true;
    c->ops++;
}

static void enter_transmission(struct conn *c)
{
    c->transmission = true;
    c->sess.structured = c->hs.structured;
    c->sess.meta_base = c->hs.meta_base;
    c->rx = RX_IDLE;
    free(c->hsout);
    c->hsout = NULL;
    if (c->s->cfg->verbose)
        slog(c->s, "client %s: transmission%s%s", c->peer,
             c->sess.structured ? ", structured replies" : "",
             c->sess.meta_base ? ", base:allocation" : "");
    conn_rx_next(c);
}

/* STARTTLS was acknowledged and the ACK is on the wire; nothing of ours
 * is in flight on the socket.  From here the client's socket belongs to a
 * TLS proxy thread and the connection reads and writes plaintext through
 * the socketpair it returns. */
static void conn_start_tls(struct conn *c)
{
    struct server *s = c->s;
    time_t now = time(NULL);
    int fd;

    if (c->in_len) {
        /* Bytes sent in the clear after STARTTLS would be taken as if they
         * came over TLS: the STARTTLS injection attack.  Nothing honest
         * sends them. */
        slog(s, "client %s sent data after STARTTLS before the TLS handshake; disconnecting",
             c->peer);
        conn_close(c, true);
        return;
    }
    fd = nbd_tls_proxy_start(s->tls, c->fd, c->peer,
                             c->deadline > now ? (int)(c->deadline - now) : 1);
    if (fd < 0) {
        /* The TCP socket went with the failed start. */
        slog(s, "client %s: %s; disconnecting", c->peer, err_msg());
        c->fd = -1;
        conn_close(c, true);
        return;
    }
    c->fd = fd;
    nbd_hs_tls_started(&c->hs);
    c->hs_result = NBD_HS_MORE;
    conn_hs_process(c);
}

static void conn_hs_process(struct conn *c)
{
    size_t used = 0;

    c->hs_result = nbd_hs_feed(&c->hs, c->in, c->in_len, &used, c->hsout);
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    if (c->hsout->len > c->hsout_sent) {
        hs_send(c);
        return;
    }
    if (c->hs_result == NBD_HS_CLOSE) {
        conn_close(c, true);
    } else if (c->hs_result == NBD_HS_TRANSMISSION) {
        enter_transmission(c);
    } else if (c->hs_result == NBD_HS_STARTTLS) {
        conn_start_tls(c);
    } else if (c->in_len == IN_CAP) {
        conn_close(c, true);   /* cannot happen: options are bounded */
    } else {
        submit_recv(c, c->in + c->in_len, IN_CAP - c->in_len);
    }
}

static void on_hs_send(struct conn *c, int res)
{
    c->send_busy = false;
    c->ops--;
    if (res < 0 || c->closing) {
        conn_close(c, true);
        return;
    }
    c->hsout_sent += (size_t)res;
    if (c->hsout_sent < c->hsout->len) {
        hs_send(c);
        return;
    }
    c->hsout->len = 0;
    c->hsout_sent = 0;
    if (c->hs_result == NBD_HS_CLOSE)
        conn_close(c, false);
    else if (c->hs_result == NBD_HS_TRANSMISSION)
        enter_transmission(c);
    else if (c->hs_result == NBD_HS_STARTTLS)
        conn_start_tls(c);
    else
        conn_hs_process(c);
}

/* ---- accepting ---- */

static void arm_accept(struct server *s)
{
    struct io_uring_sqe *sqe = get_sqe(s);

    io_uring_prep_accept(sqe, s->lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, UD(OP_ACCEPT, NULL, 0));
    s->accepting = true;
}

static void peer_name(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[64] = "?";
    int port = 0;

    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;

            inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
            port = ntohs(a->sin6_port);
        } else {
            snprintf(buf, len, "unix:%d", fd);
            return;
        }
    }
    snprintf(buf, len, "%s:%d", host, port);
}

static void on_accept(struct server *s, int res)
{
    struct conn *c;
    int one = 1;

    s->accepting = false;
    if (s->stopping) {
        if (res >= 0)
            close(res);
        return;
    }
    if (res < 0) {
        if (res == -EINVAL || res == -EBADF) {
            begin_stop(s, "the listening socket failed");
            return;
        }
        if (res != -EINTR && res != -ECONNABORTED)
            slog(s, "accept failed: %s", strerror(-res));
        arm_accept(s);
        return;
    }
    c = aligned_zalloc(sizeof *c);
    if (c) {
        c->hsout = malloc(sizeof *c->hsout);
        c->in = malloc(IN_CAP);
    }
    if (!c || !c->hsout || !c->in) {
        slog(s, "out of memory for a new client");
        if (c) {
            free(c->hsout);
            free(c->in);
        }
        free(c);
        close(res);
        arm_accept(s);
        return;
    }
    c->s = s;
    c->fd = res;
    setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    peer_name(res, c->peer, sizeof c->peer);
    c->deadline = time(NULL) + HANDSHAKE_SECONDS;
    c->next = s->conns;
    s->conns = c;
    s->nconns++;
    if (s->cfg->verbose)
        slog(s, "client %s connected", c->peer);
    nbd_hs_start(&c->hs, &s->exp, c->hsout);
    c->hs_result = NBD_HS_MORE;
    hs_send(c);
    arm_accept(s);
}

/* ---- stopping and the periodic tick ---- */

static void begin_stop(struct server *s, const char *why)
{
    if (s->stopping)
        return;
    s->stopping = true;
    s->stop_deadline = time(NULL) + SHUTDOWN_SECONDS;
    slog(s, "%s: finishing requests in flight, then exiting", why);
}

static void arm_tick(struct server *s)
{
    struct io_uring_sqe *sqe = get_sqe(s);

    s->tick.tv_sec = 1;
    s->tick.tv_nsec = 0;
    io_uring_prep_timeout(sqe, &s->tick, 0, 0);
    io_uring_sqe_set_data64(sqe, UD(OP_TICK, NULL, 0));
}

static void on_tick(struct server *s)
{
    time_t now = time(NULL);

    for (struct conn *c = s->conns, *n; c; c = n) {
        n = c->next;
        if (!c->transmission && !c->closing && now > c->deadline) {
            slog(s, "client %s: no handshake within %d s; disconnecting", c->peer,
                 HANDSHAKE_SECONDS);
            conn_close(c, true);
        } else if (s->stopping && now > s->stop_deadline) {
            conn_close(c, true);
        }
    }
    arm_tick(s);
}

static void arm_signal(struct server *s)
{
    struct io_uring_sqe *sqe = get_sqe(s);

    io_uring_prep_read(sqe, s->sfd, &s->siginfo, sizeof s->siginfo, 0);
    io_uring_sqe_set_data64(sqe, UD(OP_SIGNAL, NULL, 0));
}

static void stop_connections(struct server *s)
{
    if (s->lfd >= 0) {
        /* Stop taking clients: shutting the listener down fails the
         * pending accept. */
        shutdown(s->lfd, SHUT_RDWR);
    }
    for (struct conn *c = s->conns, *n; c; c = n) {
        n = c->next;
        conn_close(c, !c->transmission);
    }
}

/* ---- setup ---- */

static int listen_on(struct server *s, const char *spec)
{
    int fd, one = 1;

    if (!strncmp(spec, "unix:", 5)) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;
        mode_t old;

        if (strlen(spec + 5) >= sizeof sa.sun_path || !spec[5]) {
            err_set(0, "unix socket path '%s' is empty or too long", spec + 5);
            return -1;
        }
        strcpy(sa.sun_path, spec + 5);
        /* A stale socket from an earlier run is replaced; anything else at
         * that path is left alone. */
        if (lstat(sa.sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(sa.sun_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err_set(errno, "socket");
            return -1;
        }
        old = umask(0077);   /* only the owner may connect and write */
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            umask(old);
            err_set(errno, "bind %s", sa.sun_path);
            close(fd);
            return -1;
        }
        umask(old);
        snprintf(s->unix_path, sizeof s->unix_path, "%s", sa.sun_path);
    } else {
        char host[256], *port;
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai;
        int r;

        snprintf(host, sizeof host, "%s", spec);
        port = strrchr(host, ':');
        if (!port || port == host) {
            err_set(0, "listen address '%s' is not HOST:PORT or unix:PATH", spec);
            return -1;
        }
        *port++ = '\0';
        if (host[0] == '[' && host[strlen(host) - 1] == ']') {
            memmove(host, host + 1, strlen(host));
            host[strlen(host) - 1] = '\0';
        }
        r = getaddrinfo(host, port, &hints, &ai);
        if (r) {
            err_set(0, "listen address '%s': %s", spec, gai_strerror(r));
            return -1;
        }
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err_set(errno, "socket");
            freeaddrinfo(ai);
            return -1;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            err_set(errno, "bind %s", spec);
            close(fd);
            freeaddrinfo(ai);
            return -1;
        }
        freeaddrinfo(ai);
    }
    if (listen(fd, 128) < 0) {
        err_set(errno, "listen %s", spec);
        close(fd);
        return -1;
    }
    s->lfd = fd;
    return 0;
}

static void describe_listener(struct server *s, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[64] = "?";

    if (s->unix_path[0]) {
        snprintf(buf, len, "unix:%s", s->unix_path);
        return;
    }
    getsockname(s->lfd, (struct sockaddr *)&ss, &sl);
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        snprintf(buf, len, "[%s]:%d", host, ntohs(a->sin6_port));
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;

        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        snprintf(buf, len, "%s:%d", host, ntohs(a->sin_port));
    }
}

static int setup_ring(struct server *s)
{
    struct io_uring_params p = { 0 };
    struct iovec iov;
    int r;

    p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER;
    r = io_uring_queue_init_params(RING_ENTRIES, &s->ring, &p);
    if (r == -EINVAL) {
        memset(&p, 0, sizeof p);
        r = io_uring_queue_init_params(RING_ENTRIES, &s->ring, &p);
    }
    if (r < 0) {
        err_set(-r, "io_uring setup");
        return -1;
    }
    iov.iov_base = s->pool.base;
    iov.iov_len = s->pool.size;
    r = io_uring_register_buffers(&s->ring, &iov, 1);
    if (r == 0)
        s->tgt.fixed_index = 0;
    else
        slog(s, "registering I/O buffers failed (%s); using unregistered buffers", strerror(-r));
    return 0;
}

static int setup_export(struct server *s)
{
    const struct nbd_serve_config *cfg = s->cfg;
    struct target *t = &s->tgt;

    if (target_open(t, cfg->target, cfg->readonly, cfg->direct, cfg->size, cfg->force_share) < 0)
        return -1;
    if (t->kind == TARGET_NULL && !cfg->size) {
        err_set(0, "the null target needs --size");
        target_close(t);
        return -1;
    }
    if (cfg->size > t->size) {
        err_set(0, "--size %llu is larger than the target %s (%llu bytes)",
                (unsigned long long)cfg->size, cfg->target, (unsigned long long)t->size);
        target_close(t);
        return -1;
    }
    s->exp.name = cfg->export_name ? cfg->export_name : "";
    s->exp.description = "volmig serve";
    s->exp.size = cfg->size ? cfg->size : t->size;
    if (s->exp.size == 0) {
        err_set(0, "target %s is empty", cfg->target);
        target_close(t);
        return -1;
    }
    s->exp.min_block = t->block_size;
    s->exp.pref_block = t->block_size > 4096 ? t->block_size : 4096;
    s->exp.max_payload = NBD_MAX_PAYLOAD;
    s->exp.readonly = cfg->readonly;
    /* One process, one file descriptor: a flush on any connection covers
     * every write any connection has been answered for. */
    s->exp.multi_conn = true;
    return 0;
}

static void dispatch(struct server *s, struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    int res = cqe->res;

    switch (UD_KIND(ud)) {
    case OP_ACCEPT:
        on_accept(s, res);
        break;
    case OP_SIGNAL:
        begin_stop(s, res == (int)sizeof s->siginfo && s->siginfo.ssi_signo == SIGINT ?
                          "SIGINT" : "SIGTERM");
        break;
    case OP_TICK:
        on_tick(s);
        break;
    case OP_RECV:
    case OP_SEND:
    case OP_TARGET: {
        /* Holding an extra reference keeps the connection alive through
         * the handler, which may free requests and close the connection;
         * it is freed here, at the end, if that made it unused. */
        struct req *q = UD_KIND(ud) == OP_TARGET ? UD_PTR(ud) : NULL;
        struct conn *c = q ? q->c : UD_PTR(ud);

        c->ops++;
        if (q)
            on_target(q, UD_IDX(ud), res);
        else if (UD_KIND(ud) == OP_RECV)
            on_recv(c, res);
        else if (c->transmission)
            on_send_tx(c, res);
        else
            on_hs_send(c, res);
        c->ops--;
        conn_maybe_free(c);
        break;
    }
    case OP_IGNORE:
        break;
    }
}

static int run(struct server *s)
{
    bool stop_sent = false;

    arm_accept(s);
    arm_signal(s);
    arm_tick(s);
    while (!(s->stopping && s->nconns == 0 && !s->accepting)) {
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        int r;

        if (s->stopping && !stop_sent) {
            stop_connections(s);
            stop_sent = true;
        }
        r = io_uring_submit_and_wait(&s->ring, 1);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
            err_set(-r, "io_uring_submit_and_wait");
            return -1;
        }
        io_uring_for_each_cqe(&s->ring, head, cqe) {
            dispatch(s, cqe);
            n++;
        }
        io_uring_cq_advance(&s->ring, n);
    }
    return 0;
}

int nbd_serve(const struct nbd_serve_config *cfg, void (*log)(const char *fmt, ...))
{
    struct server *s = calloc(1, sizeof *s);
    sigset_t mask;
    char where[160];
    int rc = -1;

    if (!s) {
        err_set(ENOMEM, "server");
        return -1;
    }
    s->cfg = cfg;
    s->log = log;
    s->lfd = s->sfd = -1;
    s->tgt.fd = -1;
    if (setup_export(s) < 0)
        goto out;
    if (cfg->tls_creds || cfg->tls_psk) {
        s->tls = nbd_tls_new(cfg->tls_creds, cfg->tls_psk, cfg->verbose, log);
        if (!s->tls)
            goto out;
        s->exp.tls_required = true;
    }
    if (bufpool_init(&s->pool, POOL_SIZE) < 0)
        goto out;
    s->zero_buf = bufpool_alloc(&s->pool, ZERO_BUF_SIZE);
    s->scratch = bufpool_alloc(&s->pool, DISCARD_CHUNK);
    if (setup_ring(s) < 0)
        goto out;
    if (listen_on(s, cfg->listen ? cfg->listen : "127.0.0.1:10809") < 0)
        goto out_ring;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    s->sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (s->sfd < 0) {
        err_set(errno, "signalfd");
        goto out_ring;
    }
    describe_listener(s, where, sizeof where);
    slog(s, "listening on %s, export '%s', %llu bytes, target %s (%s%s%s, block size %u)%s%s",
         where, s->exp.name, (unsigned long long)s->exp.size, cfg->target,
         s->tgt.direct ? "O_DIRECT" : "buffered", s->tgt.why_buffered[0] ? ": " : "",
         s->tgt.why_buffered, s->exp.min_block, s->tls ? ", " : "",
         s->tls ? nbd_tls_describe(s->tls) : "");
    if (run(s) < 0)
        goto out_ring;
    rc = target_flush_sync(&s->tgt);
    if (rc == 0)
        slog(s, "served %d client%s; target flushed", s->served, s->served == 1 ? "" : "s");
out_ring:
    io_uring_queue_exit(&s->ring);
out:
    if (s->lfd >= 0)
        close(s->lfd);
    if (s->unix_path[0])
        unlink(s->unix_path);
    if (s->sfd >= 0)
        close(s->sfd);
    target_close(&s->tgt);
    bufpool_destroy(&s->pool);
    /* Every connection is closed by now, which ends its proxy thread. */
    nbd_tls_free(s->tls);
    free(s);
    return rc;
}
