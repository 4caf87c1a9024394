/* The handshake state machine, fed byte streams a client would send. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "nbd/internal.h"

static struct nbd_export exp = {
    .name = "vol", .size = 1 << 20, .min_block = 512, .pref_block = 4096,
    .max_payload = NBD_MAX_PAYLOAD, .multi_conn = true,
};

struct wire { uint8_t b[70000]; size_t n; };

static void w_u32(struct wire *w, uint32_t v) { put_be32(w->b + w->n, v); w->n += 4; }
static void w_bytes(struct wire *w, const void *p, size_t n)
{
    if (n)
        memcpy(w->b + w->n, p, n);
    w->n += n;
}
static void w_opt(struct wire *w, uint32_t opt, const void *data, uint32_t len)
{
    put_be64(w->b + w->n, NBD_OPTS_MAGIC);
    w->n += 8;
    w_u32(w, opt);
    w_u32(w, len);
    w_bytes(w, data, len);
}

/* Feeds everything, possibly one byte at a time, draining output. */
static enum nbd_hs_result feed_all(struct nbd_hs *hs, const struct wire *w, size_t step,
                                   struct nbd_outbuf *out, uint8_t *all, size_t *alllen)
{
    size_t pos = 0, have = 0, used;
    uint8_t pend[70000];
    enum nbd_hs_result r = NBD_HS_MORE;

    while (r == NBD_HS_MORE && pos < w->n) {
        size_t n = w->n - pos < step ? w->n - pos : step;

        memcpy(pend + have, w->b + pos, n);
        have += n;
        pos += n;
        do {
            r = nbd_hs_feed(hs, pend, have, &used, out);
            memmove(pend, pend + used, have - used);
            have -= used;
            memcpy(all + *alllen, out->data, out->len);
            *alllen += out->len;
            out->len = 0;
        } while (r == NBD_HS_MORE && used);
    }
    return r;
}

/* Finds the option replies of type `type` to option `opt` in a reply stream. */
static int count_replies(const uint8_t *p, size_t n, uint32_t opt, uint32_t type)
{
    int count = 0;

    for (size_t i = 0; i + 20 <= n;) {
        uint32_t len;

        assert_int_equal(get_be64(p + i), NBD_REP_MAGIC);
        len = get_be32(p + i + 16);
        if (get_be32(p + i + 8) == opt && get_be32(p + i + 12) == type)
            count++;
        i += 20 + len;
    }
    return count;
}

static void go_option(struct wire *w, const char *name, int nreq, const uint16_t *reqs)
{
    uint8_t d[512];
    size_t n = 0, l = strlen(name);

    put_be32(d, (uint32_t)l);
    memcpy(d + 4, name, l);
    n = 4 + l;
    put_be16(d + n, (uint16_t)nreq);
    n += 2;
    for (int i = 0; i < nreq; i++, n += 2)
        put_be16(d + n, reqs[i]);
    w_opt(w, NBD_OPT_GO, d, (uint32_t)n);
}

static void meta_option(struct wire *w, uint32_t opt, const char *name, const char *query)
{
    uint8_t d[512];
    size_t n, l = strlen(name);

    put_be32(d, (uint32_t)l);
    memcpy(d + 4, name, l);
    n = 4 + l;
    put_be32(d + n, query ? 1 : 0);
    n += 4;
    if (query) {
        put_be32(d + n, (uint32_t)strlen(query));
        memcpy(d + n + 4, query, strlen(query));
        n += 4 + strlen(query);
    }
    w_opt(w, opt, d, (uint32_t)n);
}

static void test_greeting(void **state)
{
    struct nbd_hs hs;
    static struct nbd_outbuf out;

    (void)state;
    nbd_hs_start(&hs, &exp, &out);
    assert_int_equal(out.len, 18);
    assert_true(get_be64(out.data) == NBD_MAGIC);
    assert_true(get_be64(out.data + 8) == NBD_OPTS_MAGIC);
    assert_int_equal(get_be16(out.data + 16), NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
}

static void run_full(size_t step)
{
    static struct nbd_outbuf out;
    static struct wire w;
    static uint8_t all[200000];
    struct nbd_hs hs;
    size_t alllen = 0;
    uint16_t reqs[] = { NBD_INFO_BLOCK_SIZE, NBD_INFO_NAME };

    w.n = 0;
    nbd_hs_start(&hs, &exp, &out);
    out.len = 0;
    w_u32(&w, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    w_opt(&w, 99, NULL, 0);                                /* unknown */
    w_opt(&w, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    meta_option(&w, NBD_OPT_LIST_META_CONTEXT, "vol", NULL);
    meta_option(&w, NBD_OPT_SET_META_CONTEXT, "vol", "base:allocation");
    w_opt(&w, NBD_OPT_LIST, NULL, 0);
    go_option(&w, "nope", 0, NULL);                        /* unknown export */
    go_option(&w, "vol", 2, reqs);
    assert_int_equal(feed_all(&hs, &w, step, &out, all, &alllen), NBD_HS_TRANSMISSION);
    assert_int_equal(count_replies(all, alllen, 99, NBD_REP_ERR_UNSUP), 1);
    assert_int_equal(count_replies(all, alllen, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ACK), 1);
    assert_int_equal(count_replies(all, alllen, NBD_OPT_LIST_META_CONTEXT, NBD_REP_META_CONTEXT), 1);
    assert_int_equal(count_replies(all, alllen, NBD_OPT_SET_META_CONTEXT, NBD_REP_META_CONTEXT), 1);
    assert_int_equal(count_replies(all, alllen, NBD_OPT_LIST, NBD_REP_SERVER), 1);
    assert_int_equal(count_replies(all, alllen, NBD_OPT_GO, NBD_REP_ERR_UNKNOWN), 1);
    /* export info, block size and name, then ACK */
    assert_int_equal(count_replies(all, alllen, NBD_OPT_GO, NBD_REP_INFO), 3);
    assert_int_equal(count_replies(all, alllen, NBD_OPT_GO, NBD_REP_ACK), 1);
    assert_true(hs.structured);
    assert_true(hs.meta_base);
}

static void test_full_at_once(void **state) { (void)state; run_full(1 << 20); }
static void test_full_bytewise(void **state) { (void)state; run_full(1); }

static void test_meta_needs_structured(void **state)
{
    static struct nbd_outbuf out;
    static struct wire w;
    static uint8_t all[10000];
    struct nbd_hs hs;
    size_t alllen = 0;

    (void)state;
    w.n = 0;
    nbd_hs_start(&hs, &exp, &out);
    out.len = 0;
    w_u32(&w, NBD_FLAG_C_FIXED_NEWSTYLE);
    meta_option(&w, NBD_OPT_SET_META_CONTEXT, "vol", "base:allocation");
    assert_int_equal(feed_all(&hs, &w, 1000, &out, all, &alllen), NBD_HS_MORE);
    assert_int_equal(count_replies(all, alllen, NBD_OPT_SET_META_CONTEXT, NBD_REP_ERR_INVALID), 1);
    assert_false(hs.meta_base);
}

static void test_export_name(void **state)
{
    static struct nbd_outbuf out;
    static struct wire w;
    static uint8_t all[1000];
    struct nbd_hs hs;
    size_t alllen = 0;

    (void)state;
    w.n = 0;
    nbd_hs_start(&hs, &exp, &out);
    out.len = 0;
    w_u32(&w, NBD_FLAG_C_FIXED_NEWSTYLE);   /* no NO_ZEROES: 124 zero bytes follow */
    w_opt(&w, NBD_OPT_EXPORT_NAME, "vol", 3);
    assert_int_equal(feed_all(&hs, &w, 7, &out, all, &alllen), NBD_HS_TRANSMISSION);
    assert_int_equal(alllen, 8 + 2 + 124);
    assert_true(get_be64(all) == exp.size);
    assert_int_equal(get_be16(all + 8) & NBD_FLAG_HAS_FLAGS, NBD_FLAG_HAS_FLAGS);

    w.n = 0;
    alllen = 0;
    nbd_hs_start(&hs, &exp, &out);
    out.len = 0;
    w_u32(&w, NBD_FLAG_C_FIXED_NEWSTYLE);
    w_opt(&w, NBD_OPT_EXPORT_NAME, "other", 5);
    assert_int_equal(feed_all(&hs, &w, 100, &out, all, &alllen), NBD_HS_CLOSE);
    assert_int_equal(alllen, 0);
}

static void test_bad_input_closes(void **state)
{
    static struct nbd_outbuf out;
    static struct wire w;
    static uint8_t all[1000];
    struct nbd_hs hs;
    size_t alllen = 0;

    (void)state;
    /* unknown client flag */
    w.n = 0;
    nbd_hs_start(&hs, &exp, &out);
    out.len = 0;
    w_u32(&w, 0x80);
    assert_int_equal(feed_all(&hs, &w, 100, &out, all, &alllen), NBD_HS_CLOSE);
    /* bad option magic */
    w.n = 0;
    nbd_hs_start(&hs, &exp, &out);
    out.len = 0;
    w_u32(&w, NBD_FLAG_C_FIXED_NEWSTYLE);
    w_bytes(&w, "GARBAGE!GARBAGE!", 16);
    assert_int_equal(feed_all(&hs, &w, 100, &out, all, &alllen), NBD_HS_CLOSE);
}

static void test_huge_option_discarded(void **state)
{
    static struct nbd_outbuf out;
    static struct wire w;
    static uint8_t all[1000];
    struct nbd_hs hs;
    size_t alllen = 0;
    static uint8_t junk[NBD_MAX_OPTION + 100];

    (void)state;
    w.n = 0;
    nbd_hs_start(&hs, &exp, &out);
    out.len = 0;
    w_u32(&w, NBD_FLAG_C_FIXED_NEWSTYLE);
    w_opt(&w, NBD_OPT_INFO, junk, sizeof junk);
    w_opt(&w, NBD_OPT_ABORT, NULL, 0);
    assert_int_equal(feed_all(&hs, &w, 4096, &out, all, &alllen), NBD_HS_CLOSE);
    assert_int_equal(count_replies(all, alllen, NBD_OPT_INFO, NBD_REP_ERR_TOO_BIG), 1);
    assert_int_equal(count_replies(all, alllen, NBD_OPT_ABORT, NBD_REP_ACK), 1);
}

static void test_malformed_go(void **state)
{
    static struct nbd_outbuf out;
    static struct wire w;
    static uint8_t all[1000];
    struct nbd_hs hs;
    size_t alllen = 0;
    uint8_t d[16];

    (void)state;
    w.n = 0;
    nbd_hs_start(&hs, &exp, &out);
    out.len = 0;
    w_u32(&w, NBD_FLAG_C_FIXED_NEWSTYLE);
    put_be32(d, 1000);               /* name longer than the option */
    put_be16(d + 4, 0);
    w_opt(&w, NBD_OPT_GO, d, 6);
    put_be32(d, 3);
    memcpy(d + 4, "vol", 3);
    put_be16(d + 7, 5);              /* five requests promised, none sent */
    w_opt(&w, NBD_OPT_GO, d, 9);
    assert_int_equal(feed_all(&hs, &w, 100, &out, all, &alllen), NBD_HS_MORE);
    assert_int_equal(count_replies(all, alllen, NBD_OPT_GO, NBD_REP_ERR_INVALID), 2);
}

static void test_readonly_flags(void **state)
{
    struct nbd_export ro = exp;

    (void)state;
    ro.readonly = true;
    assert_true(nbd_export_tflags(&ro, false) & NBD_FLAG_READ_ONLY);
    assert_false(nbd_export_tflags(&ro, false) & NBD_FLAG_SEND_WRITE_ZEROES);
    assert_true(nbd_export_tflags(&exp, true) & NBD_FLAG_SEND_DF);
    assert_false(nbd_export_tflags(&exp, false) & NBD_FLAG_SEND_DF);
    assert_true(nbd_export_tflags(&exp, false) & NBD_FLAG_CAN_MULTI_CONN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greeting),
        cmocka_unit_test(test_full_at_once),
        cmocka_unit_test(test_full_bytewise),
        cmocka_unit_test(test_meta_needs_structured),
        cmocka_unit_test(test_export_name),
        cmocka_unit_test(test_bad_input_closes),
        cmocka_unit_test(test_huge_option_discarded),
        cmocka_unit_test(test_malformed_go),
        cmocka_unit_test(test_readonly_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
