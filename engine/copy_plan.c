/* The pure decisions of the copier: what to do next at an offset, and
 * whether a buffer is zeroes.  No I/O here, so the unit tests can cover
 * every case. */
#include "engine/copy.h"
#include "common/error.h"
#include "engine/target_uri.h"

#include <ctype.h>
#include <string.h>

static uint64_t min64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* Rounds x up (or down) to align, never past size: the end of the volume
 * is a legal boundary whatever its alignment. */
static uint64_t up(uint64_t x, uint64_t align, uint64_t size)
{
    x = (x + align - 1) / align * align;
    return x > size ? size : x;
}

static uint64_t down(uint64_t x, uint64_t align, uint64_t size)
{
    return x >= size ? size : x / align * align;
}

struct copy_piece copy_plan(uint64_t pos, uint64_t size, uint64_t align, uint64_t req_size,
                            uint64_t zero_max, uint64_t src_end, bool src_zero,
                            uint64_t dst_end, bool dst_zero)
{
    struct copy_piece p = { .off = pos };
    uint64_t e;

    if (src_zero) {
        e = down(min64(src_end, pos + zero_max), align, size);
        if (e > pos && dst_zero) {
            uint64_t s = down(min64(e, dst_end), align, size);

            if (s > pos) {
                p.act = COPY_SKIP;
                p.len = s - pos;
                return p;
            }
        }
        if (e > pos) {
            /* Stop zeroing where the target starts reading zeroes anyway. */
            if (!dst_zero && dst_end < e && up(dst_end, align, size) < e)
                e = up(dst_end, align, size);
            p.act = COPY_ZERO;
            p.len = e - pos;
            return p;
        }
        /* A hole smaller than one aligned block: read it with its
         * neighbours; the zero check after the read still catches it. */
    }
    e = up(min64(src_end, pos + req_size), align, size);
    if (e <= pos)
        e = min64(pos + align, size);
    p.act = COPY_READ;
    p.len = e - pos;
    p.dst_zero = dst_zero && dst_end >= e;
    return p;
}

bool copy_is_zero(const void *buf, uint64_t len)
{
    const unsigned char *b = buf;

    /* Compare the buffer with itself shifted by one byte: memcmp is
     * vectorised, and b[0] == 0 with b[i] == b[i+1] for all i means all
     * zeroes. */
    return len == 0 || (b[0] == 0 && !memcmp(b, b + 1, len - 1));
}

int copy_spec_kind(const char *spec, enum copy_spec_kind *kind, const char **path, void *uri)
{
    struct target_uri *u = uri;
    const char *p = spec;

    if (!*spec) {
        err_set(0, "an empty path");
        return -1;
    }
    if (!strcmp(spec, "null:")) {
        *kind = COPY_SPEC_NULL;
        *path = NULL;
        return 0;
    }
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
        p++;
    /* SCHEME:... is an URI; anything else is a path (./nbd:x names a file). */
    if (p > spec && isalpha((unsigned char)spec[0]) && *p == ':') {
        if (target_uri_parse(spec, u) < 0)
            return -1;
        if (u->kind == URI_FILE) {
            *kind = COPY_SPEC_LOCAL;
            *path = spec + 5;
        } else {
            *kind = COPY_SPEC_NBD;
            *path = NULL;
        }
        return 0;
    }
    *kind = COPY_SPEC_LOCAL;
    *path = spec;
    return 0;
}
