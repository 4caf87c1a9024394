/* The copier's local backend: a file or block device through io_uring,
 * built on common/target.c (O_DIRECT probing, SEEK_DATA extents, the
 * fallocate capability latches). */
#include "engine/copy_internal.h"
#include "common/error.h"
#include "common/target.h"
#include "common/uring.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define LOCAL_MAX_ZERO (1ULL << 30)

struct local_ep {
    struct endpoint ep;        /* first: the core's view */
    struct target t;
    bool inline_io;            /* plain syscalls on the loop's thread: the
                                * volume lives in memory (tmpfs, ramfs) */
};

#define LOCAL(e) ((struct local_ep *)(e))

static int local_extents(struct endpoint *ep, uint64_t off, uint64_t len, struct extent_map *m)
{
    static struct target_extent te[COPY_MAP_MAX];   /* one thread, one copier */
    int n = target_extents(&LOCAL(ep)->t, off, len, te, COPY_MAP_MAX);

    /* A full answer ends in one extent that stands for everything not
     * looked at, as data: leave it out, so that the copier asks again
     * from there instead of reading holes. */
    if (n == COPY_MAP_MAX)
        n--;
    m->start = off;
    m->n = m->cur = 0;
    for (int i = 0; i < n; i++) {
        bool zero = ep->knows_zero && te[i].hole;

        if (m->n && m->e[m->n - 1].zero == zero)
            m->e[m->n - 1].end = te[i].offset + te[i].length;
        else
            m->e[m->n++] = (typeof(m->e[0])){ te[i].offset + te[i].length, zero };
    }
    m->end = m->n ? m->e[m->n - 1].end : off + len;
    return 0;
}

/* The operation done at once with a plain system call.  The result goes
 * on the completion list like an NBD reply, so copy_complete() still runs
 * from the loop and never inside the start of another operation. */
static void local_do_inline(struct endpoint *ep, struct creq *r, enum ep_op op, uint8_t *buf,
                            uint64_t len)
{
    int fd = LOCAL(ep)->t.fd;
    ssize_t n;

    do {
        switch (op) {
        case OP_READ:
            n = pread(fd, buf, len, (off_t)r->io_pos);
            break;
        case OP_WRITE:
            n = pwrite(fd, buf, len, (off_t)r->io_pos);
            break;
        default:
            n = fallocate(fd, (r->zmode ? FALLOC_FL_ZERO_RANGE : FALLOC_FL_PUNCH_HOLE) |
                                  FALLOC_FL_KEEP_SIZE, (off_t)r->io_pos, (off_t)len);
            break;
        }
    } while (n < 0 && errno == EINTR);
    r->res = n < 0 ? -errno : n;
    r->next = ep->cp->done;
    ep->cp->done = r;
}

/* A read of a range the page cache holds in full lends the pages
 * themselves, mapped, instead of copying them into the slot's buffer:
 * the target sends or writes them from there.  Copying 1 GiB out of the
 * cache costs about 0.15 s of CPU here, as much again as sending it to an
 * NBD server, and on two CPUs that the server needs as well it is time
 * taken from the server.  Only a whole piece is lent, never the rest of a
 * short read. */
static bool local_lend(struct endpoint *ep, struct creq *r)
{
    const uint8_t *p;

    if (r->buf != r->own || r->io_pos != r->io_base)
        return false;
    p = target_cache_lend(&LOCAL(ep)->t, r->io_pos, r->io_end - r->io_pos);
    if (!p)
        return false;
    /* The mapping is read-only, and the core only reads lent bytes (it
     * looks for zeroes in them and writes them to the target). */
    r->buf = (uint8_t *)(uintptr_t)p;
    r->res = (int64_t)(r->io_end - r->io_pos);
    r->next = ep->cp->done;
    ep->cp->done = r;
    return true;
}

static void local_unlend(struct endpoint *ep, struct creq *r)
{
    target_cache_unlend(&LOCAL(ep)->t, r->off, r->len);
}

static int local_start(struct endpoint *ep, struct creq *r, enum ep_op op)
{
    struct io_uring_sqe *sqe;
    uint8_t *buf = r->buf + (r->io_pos - r->io_base);
    uint64_t len = r->io_end - r->io_pos;

    if (op == OP_READ && local_lend(ep, r))
        return 0;

    /* O_DIRECT wants whole blocks; a read past the end of the file comes
     * back short, with exactly the bytes that exist. */
    if (op == OP_READ)
        len = (len + LOCAL(ep)->t.block_size - 1) / LOCAL(ep)->t.block_size * LOCAL(ep)->t.block_size;
    /* Punching leaves the target sparse; ZERO_RANGE allocates.  Both read
     * back as zeroes, on files and on block devices alike. */
    if (op == OP_ZERO)
        r->zmode = LOCAL(ep)->t.can_punch ? 0 : 1;
    if (LOCAL(ep)->inline_io) {
        local_do_inline(ep, r, op, buf, len);
        return 0;
    }
    sqe = uring_get_sqe(&ep->cp->ring);
    switch (op) {
    case OP_READ:
        if (target_cache_holds(&LOCAL(ep)->t, r->io_pos, len))
            target_cache_prep_read(&LOCAL(ep)->t, sqe, buf, (uint32_t)len, r->io_pos);
        else
            target_prep_read(&LOCAL(ep)->t, sqe, buf, (uint32_t)len, r->io_pos);
        break;
    case OP_WRITE:
        /* Bytes the source lent are not in the registered buffers. */
        if (r->buf != r->own)
            io_uring_prep_write(sqe, LOCAL(ep)->t.fd, buf, (unsigned)len, r->io_pos);
        else
            target_prep_write(&LOCAL(ep)->t, sqe, buf, (uint32_t)len, r->io_pos, false);
        break;
    case OP_ZERO:
        target_prep_fallocate(&LOCAL(ep)->t, sqe, r->zmode ? FALLOC_FL_ZERO_RANGE : FALLOC_FL_PUNCH_HOLE,
                              r->io_pos, len);
        break;
    }
    io_uring_sqe_set_data(sqe, r);
    return 0;
}

/* True when the file lives in memory.  There a read or write is a copy
 * between the page cache and the buffer that never waits for a device,
 * and io_uring gains nothing: it hands such writes (and on some kernels
 * reads) to an io-wq worker thread, because tmpfs cannot promise not to
 * block while it allocates pages.  Measured on a 2 GiB copy from NBD
 * into /dev/shm (kernel 6.18, 2 cores): the worker hand-offs cost about
 * three times the context switches and 15-25% more CPU than doing the
 * same pwrite() on the loop's thread. */
static bool in_memory(int fd)
{
    struct statfs sf;

    return fstatfs(fd, &sf) == 0 && (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC);
}

static bool local_zero_unsupported(struct endpoint *ep, struct creq *r, int64_t res)
{
    if (!target_zero_unsupported(&LOCAL(ep)->t, r->zmode ? FALLOC_FL_ZERO_RANGE : FALLOC_FL_PUNCH_HOLE,
                                 res))
        return false;
    ep->can_zero = LOCAL(ep)->t.can_punch || LOCAL(ep)->t.can_zero_range;
    return true;
}

static int local_flush(struct endpoint *ep)
{
    return target_flush_sync(&LOCAL(ep)->t);
}

static void local_close(struct endpoint *ep)
{
    target_close(&LOCAL(ep)->t);
    free(ep);
}

static void local_use_fixed(struct endpoint *ep, int index)
{
    LOCAL(ep)->t.fixed_index = index;
}

static const struct ep_ops local_ops = {
    .extents = local_extents,
    .start = local_start,
    .flush = local_flush,
    .zero_unsupported = local_zero_unsupported,
    .close = local_close,
    .use_fixed = local_use_fixed,
    .unlend = local_unlend,
};

/* A target path that does not exist yet becomes a sparse file of the
 * source's size: it reads as zeroes, so the copy writes only data. */
static int create_sparse(const char *path, uint64_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

    if (fd < 0) {
        err_set(errno, "create %s", path);
        return -1;
    }
    if (ftruncate(fd, (off_t)size) < 0) {
        err_set(errno, "size %s to %llu bytes", path, (unsigned long long)size);
        close(fd);
        unlink(path);
        return -1;
    }
    close(fd);
    return 0;
}

struct endpoint *copy_local_open(const char *spec, const char *path, bool is_target, bool direct,
                                 uint64_t create_size, bool force_share)
{
    struct local_ep *l = calloc(1, sizeof *l);
    struct endpoint *ep = &l->ep;
    struct stat st;

    if (!l) {
        err_set(ENOMEM, "%s", spec);
        return NULL;
    }
    ep->spec = spec;
    ep->is_target = is_target;
    if (is_target && stat(path, &st) < 0 && errno == ENOENT && create_sparse(path, create_size) < 0)
        goto fail;
    /* The target's export size is the source's: target_open drops O_DIRECT
     * when the copy would end mid-block. */
    if (target_open(&l->t, path, !is_target, direct, is_target ? create_size : 0, force_share) < 0)
        goto fail;
    if (!is_target)
        target_cache_open(&l->t);
    ep->ops = &local_ops;
    ep->size = l->t.size;
    ep->align = l->t.block_size;
    ep->max_io = COPY_MAX_REQUEST;
    /* A local source prefers 1 MiB requests.  Into an NBD
     * server (nbdkit's file plugin, 1 GiB, 16 MiB in flight either way),
     * 1 MiB instead of 256 KiB takes a warm source from 0.72-0.77 s to
     * 0.61-0.66 s, the server's CPU from 0.84 s to 0.73 s and volmig's
     * from 0.30 s to 0.25 s, and a cold one (O_DIRECT) from 1.48-1.89 s
     * to 1.31-1.71 s: each request costs the server the same whatever
     * its size. */
    if (!is_target)
        ep->pref_io = 1U << 20;
    ep->max_zero = LOCAL_MAX_ZERO;
    ep->can_zero = is_target;
    ep->knows_zero = l->t.kind == TARGET_FILE && l->t.can_seek_data;
    l->inline_io = l->t.kind == TARGET_FILE && in_memory(l->t.fd);
    ep->uses_ring = !l->inline_io;
    snprintf(ep->desc, sizeof ep->desc, "%s, %s%s%s%s%s",
             l->t.kind == TARGET_BLOCK ? "block device" : "file",
             l->t.direct ? "O_DIRECT" : "buffered",
             l->t.cache_fd >= 0 ? " (the page cache where it holds the data)" : "",
             direct && !l->t.direct ? ": " : "", direct && !l->t.direct ? l->t.why_buffered : "",
             l->inline_io ? ", in memory: plain syscalls" : "");
    return ep;
fail:
    free(l);
    return NULL;
}
