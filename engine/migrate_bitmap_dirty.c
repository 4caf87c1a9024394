/* Which regions a dirty bitmap marks, read the way any NBD client can:
 * BLOCK_STATUS with QEMU's qemu:dirty-bitmap:NAME meta context, where bit 0
 * of an extent's flags means dirty.  Synchronous libnbd, one connection:
 * this runs between passes, when nothing else is in flight. */
#include "engine/migrate_bitmap.h"
#include "common/error.h"

#include <errno.h>
#include <libnbd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_WINDOW (1ULL << 30)   /* asked for at a time */

struct dirty {
    const char *ctx;
    uint64_t size, pos;          /* pos: described up to here */
    struct copy_range *r;
    size_t n, cap;
    uint64_t bytes;
    int err;
};

static int add_range(struct dirty *d, uint64_t off, uint64_t len)
{
    if (d->n && d->r[d->n - 1].off + d->r[d->n - 1].len == off) {
        d->r[d->n - 1].len += len;
    } else {
        if (d->n == d->cap) {
            size_t cap = d->cap ? 2 * d->cap : 64;
            struct copy_range *r = realloc(d->r, cap * sizeof *r);

            if (!r)
                return -1;
            d->r = r;
            d->cap = cap;
        }
        d->r[d->n++] = (struct copy_range){ off, len };
    }
    d->bytes += len;
    return 0;
}

static int extent_cb(void *opaque, const char *context, uint64_t offset, uint32_t *entries,
                     size_t n, int *error)
{
    struct dirty *d = opaque;
    uint64_t pos = offset;

    (void)error;
    if (strcmp(context, d->ctx))
        return 0;
    for (size_t i = 0; i + 1 < n && pos < d->size; i += 2) {
        uint64_t end = pos + entries[i] > d->size ? d->size : pos + entries[i];

        if ((entries[i + 1] & 1) && add_range(d, pos, end - pos) < 0) {
            d->err = ENOMEM;
            return -1;
        }
        pos = end;
    }
    if (pos > d->pos)
        d->pos = pos;
    return 0;
}

int bitmap_dirty_ranges(const char *sock, const char *export, const char *bitmap, uint64_t size,
                        struct copy_range **ranges, size_t *n, uint64_t *bytes)
{
    char ctx[256];
    struct dirty d = { .ctx = ctx, .size = size };
    struct nbd_handle *h = nbd_create();
    int rc = -1;

    snprintf(ctx, sizeof ctx, "qemu:dirty-bitmap:%s", bitmap);
    if (!h) {
        err_set(0, "libnbd: %s", nbd_get_error());
        return -1;
    }
    if (nbd_set_export_name(h, export) < 0 || nbd_add_meta_context(h, ctx) < 0 ||
        nbd_connect_unix(h, sock) < 0) {
        err_set(0, "export %s on %s: %s", export, sock, nbd_get_error());
        goto out;
    }
    if (nbd_can_meta_context(h, ctx) != 1) {
        err_set(0, "export %s does not offer %s", export, ctx);
        goto out;
    }
    while (d.pos < size) {
        uint64_t before = d.pos, len = size - d.pos;
        nbd_extent_callback cb = { .callback = extent_cb, .user_data = &d };

        if (len > STATUS_WINDOW)
            len = STATUS_WINDOW;
        if (nbd_block_status(h, len, d.pos, cb, 0) < 0) {
            err_set(d.err, "block status of %s at %llu: %s", ctx, (unsigned long long)d.pos,
                    d.err ? "out of memory" : nbd_get_error());
            goto out;
        }
        if (d.pos <= before) {
            err_set(EPROTO, "%s: the server described nothing at %llu", ctx,
                    (unsigned long long)before);
            goto out;
        }
    }
    nbd_shutdown(h, 0);
    *ranges = d.r;
    *n = d.n;
    *bytes = d.bytes;
    d.r = NULL;
    rc = 0;
out:
    free(d.r);
    nbd_close(h);
    return rc;
}
