// fuzz-sources: nbd/handshake.c nbd/request.c common/error.c
/* Drives the NBD handshake and then request validation with arbitrary
 * client bytes, the way the serve loop does: feed, drain the output, and
 * once in transmission decode and validate 28-byte requests, skipping
 * write payloads.  The first input byte picks how the stream is split, so
 * partial reads are exercised too. */
#include "nbd/internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const struct nbd_export exp = {
    .name = "vol", .size = 64 << 20, .min_block = 512, .pref_block = 4096,
    .max_payload = NBD_MAX_PAYLOAD, .multi_conn = true,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct nbd_outbuf out;
    static uint8_t pend[NBD_MAX_OPTION * 2 + 64];
    struct nbd_hs hs;
    size_t step, pos = 1, have = 0, used;
    enum nbd_hs_result r = NBD_HS_MORE;

    if (size < 1)
        return 0;
    step = (size_t)data[0] % 64 + 1;
    nbd_hs_start(&hs, &exp, &out);
    while (r == NBD_HS_MORE && pos < size) {
        size_t n = size - pos < step ? size - pos : step;

        if (n > sizeof pend - have)
            n = sizeof pend - have;
        memcpy(pend + have, data + pos, n);
        have += n;
        pos += n;
        do {
            out.len = 0;
            r = nbd_hs_feed(&hs, pend, have, &used, &out);
            if (used > have)
                abort();
            memmove(pend, pend + used, have - used);
            have -= used;
        } while (r == NBD_HS_MORE && used);
        if (have == sizeof pend)
            abort();   /* the machine must never stall on a full buffer */
    }
    if (r != NBD_HS_TRANSMISSION)
        return 0;
    {
        struct nbd_session s = { hs.structured, hs.meta_base };
        const uint8_t *p = pend;
        size_t left = have;
        uint8_t tail[NBD_REQUEST_SIZE];

        /* What is left of the buffer and of the input, as one stream. */
        while (left + (size - pos) >= NBD_REQUEST_SIZE) {
            struct nbd_request q;
            int v;
            size_t skip;

            for (size_t i = 0; i < NBD_REQUEST_SIZE; i++) {
                if (left) {
                    tail[i] = *p++;
                    left--;
                } else {
                    tail[i] = data[pos++];
                }
            }
            if (nbd_request_decode(tail, &q) < 0)
                break;
            v = nbd_request_validate(&q, &exp, &s);
            if (v == NBD_VALID_DISCONNECT)
                break;
            if (v == 0 && q.type != NBD_CMD_FLUSH && q.type != NBD_CMD_DISC &&
                (q.offset + q.length > exp.size || q.length > 0xffffffffu))
                abort();   /* validation let an out-of-range request through */
            skip = nbd_request_payload(&q);
            if (skip > left + (size - pos))
                break;
            if (skip <= left) {
                p += skip;
                left -= skip;
            } else {
                pos += skip - left;
                left = 0;
            }
        }
    }
    return 0;
}
