/* Transmission-phase requests: decoding, the one validation every request
 * passes before it may touch the target, and reply encoding. */
#include "nbd/internal.h"

#include <errno.h>
#include <string.h>

int nbd_request_decode(const uint8_t *p, struct nbd_request *r)
{
    if (get_be32(p) != NBD_REQUEST_MAGIC)
        return -1;
    r->flags = get_be16(p + 4);
    r->type = get_be16(p + 6);
    r->cookie = get_be64(p + 8);
    r->offset = get_be64(p + 16);
    r->length = get_be32(p + 24);
    return 0;
}

uint32_t nbd_request_payload(const struct nbd_request *r)
{
    return r->type == NBD_CMD_WRITE ? r->length : 0;
}

static uint16_t allowed_flags(uint16_t type, const struct nbd_session *s)
{
    switch (type) {
    case NBD_CMD_READ:         return s->structured ? NBD_CMD_FLAG_DF : 0;
    case NBD_CMD_WRITE:        return NBD_CMD_FLAG_FUA;
    case NBD_CMD_TRIM:         return NBD_CMD_FLAG_FUA;
    case NBD_CMD_WRITE_ZEROES: return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE |
                                      NBD_CMD_FLAG_FAST_ZERO;
    case NBD_CMD_BLOCK_STATUS: return NBD_CMD_FLAG_REQ_ONE;
    default:                   return 0;
    }
}

static bool is_write_like(uint16_t type)
{
    return type == NBD_CMD_WRITE || type == NBD_CMD_TRIM || type == NBD_CMD_WRITE_ZEROES;
}

int nbd_request_validate(const struct nbd_request *r, const struct nbd_export *exp,
                         const struct nbd_session *s)
{
    /* A write payload we will not hold cannot be skipped safely either:
     * its length is whatever the peer claims.  Hang up instead. */
    if (r->type == NBD_CMD_WRITE && r->length > exp->max_payload)
        return NBD_VALID_DISCONNECT;

    switch (r->type) {
    case NBD_CMD_READ: case NBD_CMD_WRITE: case NBD_CMD_DISC: case NBD_CMD_FLUSH:
    case NBD_CMD_TRIM: case NBD_CMD_WRITE_ZEROES: case NBD_CMD_BLOCK_STATUS:
        break;
    default:
        return NBD_EINVAL;
    }
    if (r->flags & ~allowed_flags(r->type, s))
        return NBD_EINVAL;
    if (r->type == NBD_CMD_DISC)
        return 0;
    if (exp->readonly && is_write_like(r->type))
        return NBD_EPERM;
    if (r->type == NBD_CMD_FLUSH)
        return r->offset || r->length ? NBD_EINVAL : 0;
    if (r->length == 0)
        return NBD_EINVAL;
    if (r->offset > exp->size || r->length > exp->size - r->offset)
        return is_write_like(r->type) ? NBD_ENOSPC : NBD_EINVAL;
    if (r->offset % exp->min_block || r->length % exp->min_block)
        return NBD_EINVAL;
    if (r->type == NBD_CMD_READ && r->length > exp->max_payload)
        return NBD_EOVERFLOW;
    if (r->type == NBD_CMD_BLOCK_STATUS && !s->meta_base)
        return NBD_EINVAL;
    return 0;
}

uint32_t nbd_errno_to_wire(int err)
{
    switch (err) {
    case 0:         return 0;
    case EPERM: case EROFS: return NBD_EPERM;
    case ENOMEM:    return NBD_ENOMEM;
    case EINVAL:    return NBD_EINVAL;
    case ENOSPC: case EDQUOT: case EFBIG: return NBD_ENOSPC;
    case EOVERFLOW: return NBD_EOVERFLOW;
    case EOPNOTSUPP: return NBD_ENOTSUP;
    case ESHUTDOWN: return NBD_ESHUTDOWN;
    default:        return NBD_EIO;
    }
}

const char *nbd_strerror(uint32_t err)
{
    switch (err) {
    case NBD_EPERM:     return "export is read-only";
    case NBD_EIO:       return "I/O error on the target";
    case NBD_ENOMEM:    return "out of memory";
    case NBD_EINVAL:    return "invalid request";
    case NBD_ENOSPC:    return "request beyond the end of the export or no space";
    case NBD_EOVERFLOW: return "request larger than the maximum payload";
    case NBD_ENOTSUP:   return "operation not supported";
    case NBD_ESHUTDOWN: return "server is shutting down";
    default:            return "error";
    }
}

size_t nbd_put_simple_reply(uint8_t *p, uint64_t cookie, uint32_t err)
{
    p = put_be32(p, NBD_SIMPLE_REPLY_MAGIC);
    p = put_be32(p, err);
    put_be64(p, cookie);
    return NBD_SIMPLE_REPLY_SIZE;
}

size_t nbd_put_chunk(uint8_t *p, uint16_t flags, uint16_t type, uint64_t cookie, uint32_t len)
{
    p = put_be32(p, NBD_STRUCTURED_REPLY_MAGIC);
    p = put_be16(p, flags);
    p = put_be16(p, type);
    p = put_be64(p, cookie);
    put_be32(p, len);
    return NBD_CHUNK_HEADER_SIZE;
}

size_t nbd_put_error_chunk(uint8_t *p, uint64_t cookie, uint32_t err, const char *msg)
{
    size_t n = strlen(msg);

    p += nbd_put_chunk(p, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, cookie, (uint32_t)(6 + n));
    p = put_be32(p, err);
    p = put_be16(p, (uint16_t)n);
    memcpy(p, msg, n);
    return NBD_CHUNK_HEADER_SIZE + 6 + n;
}
