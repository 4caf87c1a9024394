/* The copier's null backend, `null:`: a target that takes every write and
 * zeroing at once and keeps nothing (nbdcopy's null: destination).  It
 * measures the core and the source alone, and lets a test run the core
 * without a disk.  As a source it has nothing to give. */
#include "engine/copy_internal.h"
#include "common/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static int null_extents(struct endpoint *ep, uint64_t off, uint64_t len, struct extent_map *m)
{
    (void)ep;
    m->start = off;
    m->cur = 0;
    m->n = 1;
    m->e[0].end = m->end = off + len;
    m->e[0].zero = false;       /* nothing is known: everything is written */
    return 0;
}

/* Done at once; the completion goes on the done list like an NBD reply,
 * so copy_complete() runs from the loop and never inside a start. */
static int null_start(struct endpoint *ep, struct creq *r, enum ep_op op)
{
    r->res = op == OP_ZERO ? 0 : (int64_t)(r->io_end - r->io_pos);
    r->next = ep->cp->done;
    ep->cp->done = r;
    return 0;
}

static int null_flush(struct endpoint *ep)
{
    (void)ep;
    return 0;
}

static bool null_zero_unsupported(struct endpoint *ep, struct creq *r, int64_t res)
{
    (void)ep;
    (void)r;
    (void)res;
    return false;
}

static void null_close(struct endpoint *ep)
{
    free(ep);
}

static const struct ep_ops null_ops = {
    .extents = null_extents,
    .start = null_start,
    .flush = null_flush,
    .zero_unsupported = null_zero_unsupported,
    .close = null_close,
};

struct endpoint *copy_null_open(const char *spec, bool is_target, uint64_t src_size)
{
    struct endpoint *ep;

    if (!is_target) {
        err_set(EINVAL, "%s: null: is a target only (it has nothing to read)", spec);
        return NULL;
    }
    ep = calloc(1, sizeof *ep);
    if (!ep) {
        err_set(ENOMEM, "%s", spec);
        return NULL;
    }
    ep->ops = &null_ops;
    ep->spec = spec;
    ep->is_target = true;
    ep->size = src_size;
    ep->align = 1;
    ep->max_io = COPY_MAX_REQUEST;
    ep->max_zero = 1ULL << 30;
    ep->can_zero = true;
    snprintf(ep->desc, sizeof ep->desc, "null (discards everything)");
    return ep;
}
