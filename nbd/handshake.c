/* The fixed-newstyle handshake as a pure state machine.
 *
 * The caller owns the socket: it feeds whatever bytes arrived, sends what
 * the machine wrote to the output buffer, and acts on the result.  An
 * option is handled only once it is complete in the input, so partial
 * reads never reach the parsers below.
 */
#include "nbd/internal.h"

#include <stdbool.h>
#include <string.h>

#define GREETING_SIZE 18
#define OPT_HEADER_SIZE 16
/* Room one option's replies may need: an INFO name reply plus a little. */
#define OPT_REPLY_ROOM (NBD_MAX_OPTION + 256)

uint16_t nbd_export_tflags(const struct nbd_export *exp, bool structured)
{
    uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH;

    if (exp->readonly)
        f |= NBD_FLAG_READ_ONLY;
    else
        f |= NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
             NBD_FLAG_SEND_FAST_ZERO;
    if (structured)
        f |= NBD_FLAG_SEND_DF;
    if (exp->multi_conn)
        f |= NBD_FLAG_CAN_MULTI_CONN;
    return f;
}

static void out_put(struct nbd_outbuf *out, const void *p, size_t n)
{
    /* Callers reserve OPT_REPLY_ROOM before handling an option, and no
     * option writes more, so this cannot overflow; the check keeps it so. */
    if (n > sizeof out->data - out->len)
        n = sizeof out->data - out->len;
    memcpy(out->data + out->len, p, n);
    out->len += n;
}

static void reply(struct nbd_outbuf *out, uint32_t opt, uint32_t type,
                  const void *data, uint32_t len)
{
    uint8_t h[20], *p = h;

    p = put_be64(p, NBD_REP_MAGIC);
    p = put_be32(p, opt);
    p = put_be32(p, type);
    put_be32(p, len);
    out_put(out, h, sizeof h);
    if (len)
        out_put(out, data, len);
}

static void reply_err(struct nbd_outbuf *out, uint32_t opt, uint32_t type, const char *msg)
{
    reply(out, opt, type, msg, (uint32_t)strlen(msg));
}

void nbd_hs_start(struct nbd_hs *hs, const struct nbd_export *exp, struct nbd_outbuf *out)
{
    uint8_t g[GREETING_SIZE], *p = g;

    memset(hs, 0, sizeof *hs);
    hs->exp = exp;
    hs->state = HS_CLIENT_FLAGS;
    p = put_be64(p, NBD_MAGIC);
    p = put_be64(p, NBD_OPTS_MAGIC);
    put_be16(p, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    out->len = 0;
    out_put(out, g, sizeof g);
}

static bool name_matches(const struct nbd_export *exp, const uint8_t *name, uint32_t len)
{
    return strlen(exp->name) == len && memcmp(exp->name, name, len) == 0;
}

static void info_export(struct nbd_hs *hs, struct nbd_outbuf *out, uint32_t opt)
{
    uint8_t b[12], *p = b;

    p = put_be16(p, NBD_INFO_EXPORT);
    p = put_be64(p, hs->exp->size);
    put_be16(p, nbd_export_tflags(hs->exp, hs->structured));
    reply(out, opt, NBD_REP_INFO, b, sizeof b);
}

static void info_block_size(struct nbd_hs *hs, struct nbd_outbuf *out, uint32_t opt)
{
    uint8_t b[14], *p = b;

    p = put_be16(p, NBD_INFO_BLOCK_SIZE);
    p = put_be32(p, hs->exp->min_block);
    p = put_be32(p, hs->exp->pref_block);
    put_be32(p, hs->exp->max_payload);
    reply(out, opt, NBD_REP_INFO, b, sizeof b);
}

static void info_string(struct nbd_outbuf *out, uint32_t opt, uint16_t type, const char *s)
{
    uint8_t b[2 + 4096];
    size_t n = strlen(s);

    if (n > 4096)
        n = 4096;
    put_be16(b, type);
    memcpy(b + 2, s, n);
    reply(out, opt, NBD_REP_INFO, b, (uint32_t)(2 + n));
}

/* NBD_OPT_INFO and NBD_OPT_GO: name, then a list of requested info types. */
static enum nbd_hs_result opt_info_go(struct nbd_hs *hs, uint32_t opt, const uint8_t *d,
                                      uint32_t len, struct nbd_outbuf *out)
{
    uint32_t namelen;
    uint16_t nreq;
    bool want_name = false, want_desc = false;

    if (len < 6 || (namelen = get_be32(d)) > len - 6) {
        reply_err(out, opt, NBD_REP_ERR_INVALID, "malformed INFO/GO option");
        return NBD_HS_MORE;
    }
    nreq = get_be16(d + 4 + namelen);
    if (len != 6 + namelen + 2U * nreq) {
        reply_err(out, opt, NBD_REP_ERR_INVALID, "INFO/GO option length does not match its requests");
        return NBD_HS_MORE;
    }
    if (!name_matches(hs->exp, d + 4, namelen)) {
        reply_err(out, opt, NBD_REP_ERR_UNKNOWN, "no export of that name here");
        return NBD_HS_MORE;
    }
    for (uint16_t i = 0; i < nreq; i++) {
        uint16_t t = get_be16(d + 6 + namelen + 2U * i);
        want_name |= t == NBD_INFO_NAME;
        want_desc |= t == NBD_INFO_DESCRIPTION;
    }
    info_export(hs, out, opt);
    /* Block sizes go out whether asked or not: with O_DIRECT the minimum
     * is a real constraint, and clients that did not ask may ignore it. */
    info_block_size(hs, out, opt);
    if (want_name)
        info_string(out, opt, NBD_INFO_NAME, hs->exp->name);
    if (want_desc && hs->exp->description)
        info_string(out, opt, NBD_INFO_DESCRIPTION, hs->exp->description);
    reply(out, opt, NBD_REP_ACK, NULL, 0);
    if (opt == NBD_OPT_GO) {
        hs->state = HS_DONE;
        return NBD_HS_TRANSMISSION;
    }
    return NBD_HS_MORE;
}

static void meta_reply(struct nbd_outbuf *out, uint32_t opt, uint32_t id)
{
    static const char name[] = "base:allocation";
    uint8_t b[4 + sizeof name], *p = b;

    p = put_be32(p, id);
    memcpy(p, name, sizeof name - 1);
    reply(out, opt, NBD_REP_META_CONTEXT, b, (uint32_t)(4 + sizeof name - 1));
}

/* LIST_META_CONTEXT and SET_META_CONTEXT share one layout: export name,
 * then a counted list of queries.  Only base:allocation exists here. */
static void opt_meta(struct nbd_hs *hs, uint32_t opt, const uint8_t *d, uint32_t len,
                     struct nbd_outbuf *out)
{
    static const char base[] = "base:allocation";
    bool list = opt == NBD_OPT_LIST_META_CONTEXT, match = false;
    uint32_t namelen, nq, pos;

    if (!hs->structured) {
        reply_err(out, opt, NBD_REP_ERR_INVALID, "negotiate structured replies first");
        return;
    }
    if (len < 8 || (namelen = get_be32(d)) > len - 8) {
        reply_err(out, opt, NBD_REP_ERR_INVALID, "malformed metadata context option");
        return;
    }
    nq = get_be32(d + 4 + namelen);
    pos = 8 + namelen;
    for (uint32_t i = 0; i < nq; i++) {
        uint32_t ql;

        if (len - pos < 4 || (ql = get_be32(d + pos)) > len - pos - 4) {
            reply_err(out, opt, NBD_REP_ERR_INVALID, "malformed metadata context query");
            return;
        }
        if ((ql == sizeof base - 1 && !memcmp(d + pos + 4, base, ql)) ||
            (list && ql == 5 && !memcmp(d + pos + 4, "base:", 5)))
            match = true;
        pos += 4 + ql;
    }
    if (pos != len) {
        reply_err(out, opt, NBD_REP_ERR_INVALID, "trailing bytes after metadata context queries");
        return;
    }
    if (!name_matches(hs->exp, d + 4, namelen)) {
        reply_err(out, opt, NBD_REP_ERR_UNKNOWN, "no export of that name here");
        return;
    }
    if (list && nq == 0)
        match = true;
    if (!list)
        hs->meta_base = match;
    if (match)
        meta_reply(out, opt, list ? 0 : NBD_BASE_ALLOCATION_ID);
    reply(out, opt, NBD_REP_ACK, NULL, 0);
}

static enum nbd_hs_result opt_export_name(struct nbd_hs *hs, const uint8_t *d, uint32_t len,
                                          struct nbd_outbuf *out)
{
    static const uint8_t zeroes[124];
    uint8_t b[10], *p = b;

    /* This option cannot carry an error: an unknown name ends the session. */
    if (!name_matches(hs->exp, d, len)) {
        hs->state = HS_CLOSED;
        return NBD_HS_CLOSE;
    }
    p = put_be64(p, hs->exp->size);
    put_be16(p, nbd_export_tflags(hs->exp, hs->structured));
    out_put(out, b, sizeof b);
    if (!hs->no_zeroes)
        out_put(out, zeroes, sizeof zeroes);
    hs->state = HS_DONE;
    return NBD_HS_TRANSMISSION;
}

static enum nbd_hs_result handle_option(struct nbd_hs *hs, uint32_t opt, const uint8_t *d,
                                        uint32_t len, struct nbd_outbuf *out)
{
    if (!hs->fixed && opt != NBD_OPT_EXPORT_NAME) {
        /* Plain newstyle knows no replies: all we can do is hang up. */
        hs->state = HS_CLOSED;
        return NBD_HS_CLOSE;
    }
    switch (opt) {
    case NBD_OPT_EXPORT_NAME:
        return opt_export_name(hs, d, len, out);
    case NBD_OPT_ABORT:
        reply(out, opt, NBD_REP_ACK, NULL, 0);
        hs->state = HS_CLOSED;
        return NBD_HS_CLOSE;
    case NBD_OPT_LIST:
        if (len) {
            reply_err(out, opt, NBD_REP_ERR_INVALID, "LIST takes no data");
        } else {
            uint8_t b[4 + 4096];
            size_t n = strlen(hs->exp->name);

            if (n > 4096)
                n = 4096;
            put_be32(b, (uint32_t)n);
            memcpy(b + 4, hs->exp->name, n);
            reply(out, opt, NBD_REP_SERVER, b, (uint32_t)(4 + n));
            reply(out, opt, NBD_REP_ACK, NULL, 0);
        }
        return NBD_HS_MORE;
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
        return opt_info_go(hs, opt, d, len, out);
    case NBD_OPT_STRUCTURED_REPLY:
        if (len) {
            reply_err(out, opt, NBD_REP_ERR_INVALID, "STRUCTURED_REPLY takes no data");
        } else {
            hs->structured = true;
            reply(out, opt, NBD_REP_ACK, NULL, 0);
        }
        return NBD_HS_MORE;
    case NBD_OPT_LIST_META_CONTEXT:
    case NBD_OPT_SET_META_CONTEXT:
        opt_meta(hs, opt, d, len, out);
        return NBD_HS_MORE;
    case NBD_OPT_STARTTLS:
        reply_err(out, opt, NBD_REP_ERR_UNSUP, "this server has no TLS credentials");
        return NBD_HS_MORE;
    default:
        reply_err(out, opt, NBD_REP_ERR_UNSUP, "option not supported");
        return NBD_HS_MORE;
    }
}

enum nbd_hs_result nbd_hs_feed(struct nbd_hs *hs, const uint8_t *in, size_t len,
                               size_t *used, struct nbd_outbuf *out)
{
    size_t pos = 0;
    enum nbd_hs_result r = NBD_HS_MORE;

    while (r == NBD_HS_MORE) {
        if (hs->state == HS_CLIENT_FLAGS) {
            uint32_t f;

            if (len - pos < 4)
                break;
            f = get_be32(in + pos);
            pos += 4;
            /* The spec requires dropping a client that sets unknown flags. */
            if (f & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
                hs->state = HS_CLOSED;
                r = NBD_HS_CLOSE;
                break;
            }
            hs->fixed = f & NBD_FLAG_C_FIXED_NEWSTYLE;
            hs->no_zeroes = f & NBD_FLAG_C_NO_ZEROES;
            hs->state = HS_OPTION;
        } else if (hs->state == HS_DISCARD) {
            size_t n = len - pos;

            if (n > hs->discard_left)
                n = (size_t)hs->discard_left;
            pos += n;
            hs->discard_left -= n;
            if (hs->discard_left)
                break;
            if (sizeof out->data - out->len < OPT_REPLY_ROOM)
                break;
            reply_err(out, hs->discard_opt, NBD_REP_ERR_TOO_BIG, "option too large");
            hs->state = HS_OPTION;
        } else if (hs->state == HS_OPTION) {
            uint32_t opt, olen;

            if (len - pos < OPT_HEADER_SIZE || sizeof out->data - out->len < OPT_REPLY_ROOM)
                break;
            if (get_be64(in + pos) != NBD_OPTS_MAGIC) {
                hs->state = HS_CLOSED;
                r = NBD_HS_CLOSE;
                break;
            }
            opt = get_be32(in + pos + 8);
            olen = get_be32(in + pos + 12);
            if (olen > NBD_MAX_OPTION) {
                if (!hs->fixed || opt == NBD_OPT_EXPORT_NAME) {
                    hs->state = HS_CLOSED;
                    r = NBD_HS_CLOSE;
                    break;
                }
                pos += OPT_HEADER_SIZE;
                hs->discard_opt = opt;
                hs->discard_left = olen;
                hs->state = HS_DISCARD;
                continue;
            }
            if (len - pos < OPT_HEADER_SIZE + (size_t)olen)
                break;
            r = handle_option(hs, opt, in + pos + OPT_HEADER_SIZE, olen, out);
            pos += OPT_HEADER_SIZE + olen;
        } else {
            r = hs->state == HS_DONE ? NBD_HS_TRANSMISSION : NBD_HS_CLOSE;
        }
    }
    *used = pos;
    return r;
}
