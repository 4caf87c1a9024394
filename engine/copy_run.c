/* The copier's core: it walks the source from offset 0, asks both sides
 * for their extents a window at a time, turns them into pieces with
 * copy_plan(), and keeps up to `requests` pieces in flight, each a small
 * state machine:
 *
 *   READ --data--> WRITE ------------------------> done
 *        --all zero, target already zero---------> done
 *        --all zero--> ZERO (or ZERO_WRITE) -----> done
 *   ZERO (a source hole the target does not read as zeroes) --> done
 *
 * One thread: local I/O goes through one io_uring whose completions
 * signal an eventfd, and that eventfd is polled together with every NBD
 * socket.  Pieces are issued in offset order, so the lowest offset still
 * in flight tells how much of the volume is settled.
 *
 * Ownership: struct copy owns both endpoints, the ring and the buffer pool;
 * each request slot owns one request_size buffer of the pool for the
 * whole run.  A slot is back on the free list only when no operation of
 * it is submitted, so no completion can find a reused slot.
 */
#include "engine/copy_internal.h"
#include "common/clock.h"
#include "common/bufpool.h"
#include "common/error.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define MIN_ALIGN       512
#define DRAIN_SECONDS   30             /* after a failure or cancel */
#define STALL_SECONDS   120            /* nothing completed for this long: fail */

struct run {
    struct copy cp;
    struct bufpool pool;
    struct creq *reqs;
    struct creq *free;
    int nreq, inflight;
    uint64_t pos;                 /* next offset to plan */
    size_t ri;                    /* config ranges: the one holding pos */
    uint64_t total;               /* bytes to settle: size, or the ranges' sum */
    uint64_t lost;                /* lowest offset of a failed piece */
    uint64_t align, zero_max;
    struct extent_map smap, dmap;
    struct copy_status st;
    bool failed, stopping;
    char failmsg[512];
    int failerr;
    double t0, last_emit, last_done_t, last_progress_t;
    uint64_t last_done;
    uint64_t rate_now;            /* the rate limit in force, bytes/s (0: none) */
    double tokens;                /* bytes it allows to read now; < 0: owed */
    double tokens_t;              /* when they were counted */
};

static struct run *run_of(struct copy *cp)
{
    return (struct run *)cp;   /* struct copy is the first member */
}

/* The first failure wins; later ones are its consequences. */
static void fail_now(struct run *R)
{
    if (!R->failed) {
        R->failed = true;
        snprintf(R->failmsg, sizeof R->failmsg, "%s", err_msg());
        R->failerr = err_errno();
    }
    R->stopping = true;
}

/* ---- request state machine ---- */

/* Bytes the source lent go back to it, and the slot has its own buffer
 * again. */
static void req_unlend(struct run *R, struct creq *r)
{
    if (r->buf != r->own) {
        R->cp.src->ops->unlend(R->cp.src, r);
        r->buf = r->own;
    }
}

/* The slot goes back to the free list: nothing of it is submitted. */
static void req_release(struct run *R, struct creq *r)
{
    req_unlend(R, r);
    r->st = ST_FREE;
    r->next = R->free;
    R->free = r;
    R->inflight--;
}

/* A piece that failed is not settled: the contiguous mark stays below. */
static void req_abandon(struct run *R, struct creq *r)
{
    if (r->off < R->lost)
        R->lost = r->off;
    req_release(R, r);
}

static void req_finish(struct run *R, struct creq *r, uint64_t *counter)
{
    *counter += r->len;
    R->st.done += r->len;
    req_release(R, r);
}

static void req_start(struct run *R, struct creq *r, enum creq_state st, uint64_t from, uint64_t to)
{
    struct endpoint *ep = st == ST_READ ? R->cp.src : R->cp.dst;
    enum ep_op op = st == ST_READ ? OP_READ : st == ST_ZERO ? OP_ZERO : OP_WRITE;

    r->st = st;
    r->io_pos = from;
    r->io_end = to;
    if (ep->ops->start(ep, r, op) < 0) {
        fail_now(R);
        req_abandon(R, r);
    }
}

static void zero_write_next(struct run *R, struct creq *r)
{
    uint64_t end = r->off + r->len, n = end - r->zpos;

    if (n > R->cp.req_size)
        n = R->cp.req_size;
    r->io_base = r->zpos;
    req_start(R, r, ST_ZERO_WRITE, r->zpos, r->zpos + n);
}

/* Zeroes the piece on the target: its zero operation, or writes of a
 * zeroed buffer when it has none (or it turned out not to work). */
static void req_zero(struct run *R, struct creq *r)
{
    req_unlend(R, r);
    if (R->cp.dst->can_zero) {
        req_start(R, r, ST_ZERO, r->off, r->off + r->len);
        return;
    }
    memset(r->buf, 0, R->cp.req_size);
    r->zpos = r->off;
    zero_write_next(R, r);
}

void copy_complete(struct creq *r, int64_t res)
{
    struct run *R = run_of(r->cp);

    if (res < 0) {
        if (r->st == ST_ZERO && R->cp.dst->ops->zero_unsupported(R->cp.dst, r, res)) {
            req_zero(R, r);
            return;
        }
        err_set((int)-res, "%s at offset %llu (%llu bytes) on %s",
                r->st == ST_READ ? "read" : r->st == ST_ZERO ? "zeroing" : "write",
                (unsigned long long)r->io_pos, (unsigned long long)(r->io_end - r->io_pos),
                r->st == ST_READ ? R->cp.src->spec : R->cp.dst->spec);
        fail_now(R);
        req_abandon(R, r);
        return;
    }
    if (r->st == ST_ZERO)
        res = (int64_t)(r->io_end - r->io_pos);
    if (res == 0) {
        err_set(EIO, "%s ends at %llu: it shrank during the copy",
                r->st == ST_READ ? R->cp.src->spec : R->cp.dst->spec,
                (unsigned long long)r->io_pos);
        fail_now(R);
        req_abandon(R, r);
        return;
    }
    r->io_pos += (uint64_t)res;
    if (r->io_pos < r->io_end) {          /* short transfer: the rest */
        req_start(R, r, r->st, r->io_pos, r->io_end);
        return;
    }
    switch (r->st) {
    case ST_READ:
        R->st.read += r->len;
        if (!copy_is_zero(r->buf, r->len)) {
            r->io_base = r->off;
            req_start(R, r, ST_WRITE, r->off, r->off + r->len);
        } else if (r->dst_zero) {
            req_finish(R, r, &R->st.skipped);
        } else {
            req_zero(R, r);
        }
        break;
    case ST_WRITE:
        req_finish(R, r, &R->st.data);
        break;
    case ST_ZERO:
        req_finish(R, r, &R->st.zeroed);
        break;
    case ST_ZERO_WRITE:
        r->zpos = r->io_end;
        if (r->zpos < r->off + r->len)
            zero_write_next(R, r);
        else
            req_finish(R, r, &R->st.zeroed);
        break;
    case ST_FREE:
        break;
    }
}

/* ---- planning ---- */

static int map_at(struct endpoint *ep, struct extent_map *m, uint64_t pos, uint64_t size,
                  uint64_t *end, bool *zero)
{
    if (pos >= m->end || pos < m->start) {
        uint64_t len = size - pos < COPY_EXTENT_WINDOW ? size - pos : COPY_EXTENT_WINDOW;

        if (ep->ops->extents(ep, pos, len, m) < 0)
            return -1;
        if (m->end <= pos) {   /* a server that described nothing: data */
            m->n = 1;
            m->cur = 0;
            m->e[0].end = m->end = pos + len;
            m->e[0].zero = false;
        }
    }
    while (m->cur < m->n - 1 && m->e[m->cur].end <= pos)
        m->cur++;
    *end = m->e[m->cur].end;
    *zero = m->e[m->cur].zero;
    return 0;
}

/* With config ranges: moves pos into the next range still to do and
 * returns where that range ends; pos goes to the end of the volume when
 * none is left.  Without: the end of the volume. */
static uint64_t range_end(struct run *R)
{
    const struct copy_config *cfg = R->cp.cfg;

    if (!cfg->ranges)
        return R->st.size;
    while (R->ri < cfg->nranges &&
           cfg->ranges[R->ri].off + cfg->ranges[R->ri].len <= R->pos)
        R->ri++;
    if (R->ri == cfg->nranges) {
        R->pos = R->st.size;
        return R->st.size;
    }
    if (R->pos < cfg->ranges[R->ri].off)
        R->pos = cfg->ranges[R->ri].off;
    return cfg->ranges[R->ri].off + cfg->ranges[R->ri].len;
}

/* The rate limit is a token bucket: it fills at the rate, holds at most
 * RATE_BURST_S of it (the head start a copy begins with, and all that a
 * pause in planning saves up), and each read takes its length, going into
 * debt when it is longer than what is there.  A new limit (config->pace,
 * the latency-aware copy's) keeps a debt and drops what it would not
 * allow as a burst, so that however often the limit changes, the copy
 * never runs faster than the limits it was given. */
#define RATE_BURST_S 0.1

static void rate_refill(struct run *R)
{
    const struct copy_config *cfg = R->cp.cfg;
    uint64_t want = cfg->pace ? *cfg->pace : cfg->max_rate;
    double now = clock_seconds(), burst = (double)want * RATE_BURST_S;

    if (R->rate_now)
        R->tokens += (double)R->rate_now * (now - R->tokens_t);
    else
        R->tokens = burst;
    R->rate_now = want;
    if (R->tokens > burst)
        R->tokens = burst;
    R->tokens_t = now;
}

/* Seconds until the rate limit allows another read; 0 when it does now
 * (or there is no limit). */
static double rate_wait(struct run *R)
{
    rate_refill(R);
    if (!R->rate_now || R->tokens >= 0)
        return 0;
    return -R->tokens / (double)R->rate_now + 0.001;
}

/* Pieces remain and a slot is free: only max_rate may hold them back. */
static bool has_work(const struct run *R)
{
    return !R->stopping && R->pos < R->st.size && R->free;
}

/* Issues pieces while slots are free.  Skips cost nothing and are
 * settled here. */
static void plan(struct run *R)
{
    struct copy *cp = &R->cp;

    while (has_work(R)) {
        if (rate_wait(R) > 0) {
            /* Waiting on our own limit is not a stalled server. */
            if (!R->inflight)
                R->last_progress_t = clock_seconds();
            break;
        }
        uint64_t se, de, rend = range_end(R);
        bool sz, dz;
        struct copy_piece p;
        struct creq *r;

        if (R->pos >= R->st.size)
            break;
        if (map_at(cp->src, &R->smap, R->pos, R->st.size, &se, &sz) < 0 ||
            map_at(cp->dst, &R->dmap, R->pos, R->st.size, &de, &dz) < 0) {
            fail_now(R);
            return;
        }
        /* A piece never crosses the end of its range: what lies after it
         * is not ours to copy (it may be mid-write by the guest). */
        if (se > rend)
            se = rend;
        if (de > rend)
            de = rend;
        p = copy_plan(R->pos, R->st.size, R->align, cp->req_size, R->zero_max, se, sz, de, dz);
        R->pos += p.len;
        if (p.act == COPY_SKIP) {
            R->st.skipped += p.len;
            R->st.done += p.len;
            continue;
        }
        r = R->free;
        R->free = r->next;
        R->inflight++;
        r->off = p.off;
        r->len = p.len;
        r->dst_zero = p.dst_zero;
        r->io_base = p.off;
        if (p.act == COPY_READ) {
            R->tokens -= (double)p.len;
            req_start(R, r, ST_READ, p.off, p.off + p.len);
        }
        else
            req_zero(R, r);
    }
}

/* ---- the loop ---- */

/* Requests on a connection that died never complete (libnbd keeps them
 * until the handle is closed at teardown).  They are settled here as
 * failed, so that the run does not wait out its drain time for them; the
 * run is stopping, so their buffers are not used again before that. */
static void abandon_dead(struct run *R)
{
    for (int i = 0; i < R->nreq; i++) {
        struct creq *r = &R->reqs[i];
        struct endpoint *ep = r->st == ST_READ ? R->cp.src : R->cp.dst;

        if (r->st != ST_FREE && ep->ops->lost && ep->ops->lost(ep, r))
            req_abandon(R, r);
    }
}

static int reap(struct run *R)
{
    struct io_uring_cqe *cqe;
    int n = 0;

    while (io_uring_peek_cqe(&R->cp.ring, &cqe) == 0) {
        struct creq *r = io_uring_cqe_get_data(cqe);
        int64_t res = cqe->res;

        io_uring_cqe_seen(&R->cp.ring, cqe);
        copy_complete(r, res);
        n++;
    }
    while (R->cp.done) {
        struct creq *r = R->cp.done;

        R->cp.done = r->next;
        copy_complete(r, r->res);
        n++;
    }
    return n;
}

static void update_status(struct run *R, double t)
{
    uint64_t low = R->pos < R->lost ? R->pos : R->lost;

    for (int i = 0; i < R->nreq; i++)
        if (R->reqs[i].st != ST_FREE && R->reqs[i].off < low)
            low = R->reqs[i].off;
    R->st.contiguous = low;
    R->st.t = t - R->t0;
    if (t > R->last_emit) {
        double rate = (double)(R->st.done - R->last_done) / (t - R->last_emit);

        R->st.rate = R->last_emit == R->t0 ? rate : 0.5 * R->st.rate + 0.5 * rate;
    }
    R->st.eta = R->st.rate > 0 ? (double)(R->total - R->st.done) / R->st.rate : -1;
    R->last_emit = t;
    R->last_done = R->st.done;
}

static void maybe_emit(struct run *R, double t)
{
    const struct copy_config *cfg = R->cp.cfg;

    if (t - R->last_emit < cfg->progress_ms / 1000.0)
        return;
    update_status(R, t);
    if (cfg->emit)
        cfg->emit(cfg->opaque, COPY_EV_PROGRESS, &R->st);
}

static int ep_poll_fds(struct endpoint *ep, struct pollfd *fds, int max)
{
    return ep->ops->poll_fds ? ep->ops->poll_fds(ep, fds, max) : 0;
}

static int ep_notify(struct endpoint *ep, const struct pollfd *fds)
{
    return ep->ops->notify ? ep->ops->notify(ep, fds) : 0;
}

static int wait_events(struct run *R)
{
    struct pollfd fds[1 + 2 * COPY_MAX_CONNECTIONS];
    struct copy *cp = &R->cp;
    int n = 1, ns = 0, r, rs, rd, timeout = 100;
    uint64_t v;
    struct err_saved saved;

    io_uring_submit(&cp->ring);
    fds[0] = (struct pollfd){ .fd = cp->efd, .events = POLLIN };
    n += ns = ep_poll_fds(cp->src, fds + n, COPY_MAX_CONNECTIONS);
    n += ep_poll_fds(cp->dst, fds + n, COPY_MAX_CONNECTIONS);
    /* A completion that arrived after reap() has already bumped the
     * eventfd, so this poll cannot sleep through it. */
    if (io_uring_cq_ready(&cp->ring) || cp->done)
        return 0;
    /* Held back by max_rate with nothing else to wait for: wake when the
     * budget allows the next read rather than at the next tick. */
    if (has_work(R)) {
        double w = rate_wait(R);

        if (w > 0 && w < 0.1)
            timeout = (int)(w * 1000) + 1;
    }
    r = poll(fds, (nfds_t)n, timeout);
    if (r < 0) {
        if (errno == EINTR)
            return 0;
        err_set(errno, "poll");
        return -1;
    }
    if (fds[0].revents & POLLIN && read(cp->efd, &v, sizeof v) < 0 && errno != EAGAIN) {
        err_set(errno, "eventfd");
        return -1;
    }
    /* Both sides hear from the poll, also when one of them failed: the
     * other's requests must still complete for the run to drain.  The
     * first failure's message is the one kept. */
    rs = ep_notify(cp->src, fds + 1);
    if (rs < 0)
        err_save(&saved);
    rd = ep_notify(cp->dst, fds + 1 + ns);
    if (rs < 0 && rd < 0)
        err_restore(saved.errnum, saved.msg);
    return rs < 0 || rd < 0 ? -1 : 0;
}

static int loop(struct run *R)
{
    const struct copy_config *cfg = R->cp.cfg;
    double drain_until = 0;

    R->last_progress_t = clock_seconds();
    for (;;) {
        double t;

        if (!R->stopping && cfg->cancel && *cfg->cancel)
            R->stopping = true;
        plan(R);
        if (reap(R) > 0)
            R->last_progress_t = clock_seconds();
        if (R->inflight == 0 && (R->stopping || R->pos >= R->st.size))
            return 0;
        /* Slots that reap() freed are filled before any wait: with inline
         * local I/O on both sides nothing else would end the wait.  What
         * the ring holds is submitted either way.  Slots held back by
         * max_rate are not: the wait is what paces them. */
        if (has_work(R) && rate_wait(R) == 0)
            io_uring_submit(&R->cp.ring);
        else if (wait_events(R) < 0)
            fail_now(R);
        if (reap(R) > 0)
            R->last_progress_t = clock_seconds();
        if (R->failed)
            abandon_dead(R);
        t = clock_seconds();
        maybe_emit(R, t);
        if (R->stopping && drain_until == 0)
            drain_until = t + DRAIN_SECONDS;
        if ((drain_until && t > drain_until) || t - R->last_progress_t > STALL_SECONDS) {
            /* Requests still out belong to a server that stopped answering;
             * closing the connections abandons them. */
            if (!R->failed) {
                err_set(ETIMEDOUT, "%d request%s got no answer", R->inflight,
                        R->inflight == 1 ? "" : "s");
                fail_now(R);
            }
            return -1;
        }
    }
}

/* ---- setup ---- */

static int setup_buffers(struct run *R)
{
    struct copy *cp = &R->cp;
    struct iovec iov;

    /* Without a count, the buffers hold 16 MiB: 64 requests of 256 KiB,
     * 16 of 1 MiB. */
    R->nreq = cp->cfg->requests > 0 ? cp->cfg->requests : (int)((16U << 20) / cp->req_size);
    if (R->nreq < 16 && cp->cfg->requests <= 0)
        R->nreq = 16;
    if ((uint64_t)R->nreq * cp->req_size > COPY_MAX_BUFFERS) {
        err_set(EINVAL, "%d requests of %u bytes need more than %llu bytes of buffers", R->nreq,
                cp->req_size, COPY_MAX_BUFFERS);
        return -1;
    }
    if (bufpool_init(&R->pool, (size_t)R->nreq * cp->req_size) < 0)
        return -1;
    R->reqs = calloc((size_t)R->nreq, sizeof *R->reqs);
    if (!R->reqs) {
        err_set(ENOMEM, "request slots");
        return -1;
    }
    for (int i = R->nreq - 1; i >= 0; i--) {
        R->reqs[i].cp = cp;
        R->reqs[i].buf = R->reqs[i].own = bufpool_alloc(&R->pool, cp->req_size);
        R->reqs[i].next = R->free;
        R->free = &R->reqs[i];
    }
    if (io_uring_queue_init((unsigned)(2 * R->nreq), &cp->ring, 0) < 0) {
        err_set(ENOMEM, "io_uring with %d entries", 2 * R->nreq);
        return -1;
    }
    cp->ring_ok = true;
    cp->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (cp->efd < 0 || io_uring_register_eventfd(&cp->ring, cp->efd) < 0) {
        err_set(errno, "eventfd for io_uring");
        return -1;
    }
    /* Registered buffers spare the kernel a page walk per I/O; without
     * them (RLIMIT_MEMLOCK) the copy still works.  Registering pins the
     * whole pool (10 ms for 16 MiB here), so it is skipped when no local
     * side goes through the ring: NBD ends and files in memory. */
    if (!cp->src->uses_ring && !cp->dst->uses_ring)
        return 0;
    iov = (struct iovec){ R->pool.base, R->pool.size };
    if (io_uring_register_buffers(&cp->ring, &iov, 1) == 0) {
        for (int i = 0; i < 2; i++) {
            struct endpoint *ep = i ? cp->dst : cp->src;

            if (ep->uses_ring && ep->ops->use_fixed)
                ep->ops->use_fixed(ep, 0);
        }
    }
    return 0;
}

static uint32_t choose_req_size(const struct copy_config *cfg, struct run *R)
{
    uint64_t rs = cfg->request_size ? cfg->request_size : 256U << 10;

    /* Without a size, a source that does better with larger requests
     * gets them (a local file or device, see copy_local_open). */
    if (!cfg->request_size && R->cp.src->pref_io > rs)
        rs = R->cp.src->pref_io;

    if (rs > R->cp.src->max_io)
        rs = R->cp.src->max_io;
    if (rs > R->cp.dst->max_io)
        rs = R->cp.dst->max_io;
    rs = rs / R->align * R->align;
    return (uint32_t)(rs ? rs : R->align);
}

static int setup(struct run *R, const struct copy_config *cfg)
{
    struct copy *cp = &R->cp;

    if (!(cp->src = copy_endpoint_open(cfg, cfg->source, false, 0))) {
        err_prefix("source");
        return -1;
    }
    cp->src->cp = cp;
    if (cp->src->size == 0) {
        err_set(0, "source %s is empty", cfg->source);
        return -1;
    }
    if (!(cp->dst = copy_endpoint_open(cfg, cfg->target, true, cp->src->size))) {
        err_prefix("target");
        return -1;
    }
    cp->dst->cp = cp;
    R->st.size = cp->src->size;
    R->st.target_size = cp->dst->size;
    /* Checked before anything is written. */
    if (cp->dst->size < cp->src->size) {
        err_set(0, "target %s is smaller than source %s: %llu < %llu bytes", cfg->target,
                cfg->source, (unsigned long long)cp->dst->size, (unsigned long long)cp->src->size);
        return -1;
    }
    R->align = MIN_ALIGN;
    if (cp->src->align > R->align)
        R->align = cp->src->align;
    if (cp->dst->align > R->align)
        R->align = cp->dst->align;
    cp->req_size = choose_req_size(cfg, R);
    R->zero_max = cp->dst->max_zero / R->align * R->align;
    if (setup_buffers(R) < 0)
        return -1;
    R->total = R->st.size;
    if (cfg->ranges) {
        R->total = 0;
        for (size_t i = 0; i < cfg->nranges; i++) {
            const struct copy_range *g = &cfg->ranges[i];

            if (g->off + g->len > R->st.size || g->len == 0 ||
                (i && g->off < cfg->ranges[i - 1].off + cfg->ranges[i - 1].len)) {
                err_set(EINVAL, "range %zu (%llu+%llu) is empty, unsorted or past the end", i,
                        (unsigned long long)g->off, (unsigned long long)g->len);
                return -1;
            }
            R->total += g->len;
        }
    }
    R->st.todo = R->total;
    snprintf(R->st.source_desc, sizeof R->st.source_desc, "%s", cp->src->desc);
    snprintf(R->st.target_desc, sizeof R->st.target_desc, "%s", cp->dst->desc);
    R->st.request_size = cp->req_size;
    R->st.requests = R->nreq;
    return 0;
}

static void teardown(struct run *R)
{
    struct copy *cp = &R->cp;

    /* The target first: a write still in flight (a server that stopped
     * answering) may hold bytes the source lent, which closing the source
     * unmaps. */
    if (cp->dst)
        cp->dst->ops->close(cp->dst);
    if (cp->src)
        cp->src->ops->close(cp->src);
    if (cp->ring_ok)
        io_uring_queue_exit(&cp->ring);
    if (cp->efd >= 0)
        close(cp->efd);
    free(R->reqs);
    bufpool_destroy(&R->pool);
    free(R);
}

enum copy_result copy_run(const struct copy_config *cfg, struct copy_status *st)
{
    struct run *R = calloc(1, sizeof *R);
    enum copy_result res;

    if (!R) {
        err_set(ENOMEM, "copy state");
        return COPY_FAILED;
    }
    R->cp.cfg = cfg;
    R->cp.efd = -1;
    R->lost = UINT64_MAX;
    R->t0 = R->last_emit = clock_seconds();
    rate_refill(R);     /* the head start: a full bucket */
    if (setup(R, cfg) < 0) {
        if (st)
            *st = R->st;
        teardown(R);
        return COPY_FAILED;
    }
    if (cfg->emit)
        cfg->emit(cfg->opaque, COPY_EV_STARTED, &R->st);
    loop(R);
    /* What was written is made durable whether the copy finished or not:
     * the report of how far it got must hold after a crash too. */
    if (!R->failed && R->cp.dst->ops->flush(R->cp.dst) < 0)
        fail_now(R);
    update_status(R, clock_seconds());
    if (st)
        *st = R->st;
    res = R->failed ? COPY_FAILED : R->pos < R->st.size || R->st.done < R->total ? COPY_CANCELLED
                                                                                  : COPY_DONE;
    if (R->failed)
        err_restore(R->failerr, R->failmsg);
    teardown(R);
    return res;
}
