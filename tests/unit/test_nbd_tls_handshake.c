/* The handshake of a server with TLS credentials (FORCEDTLS in the NBD
 * spec's words): before STARTTLS only STARTTLS and ABORT are answered, the
 * machine stops right after acknowledging STARTTLS so that nothing sent in
 * the clear behind it is taken as sent over TLS, and after TLS the usual
 * negotiation runs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "nbd/internal.h"

static struct nbd_export tls_exp = {
    .name = "vol", .size = 1 << 20, .min_block = 512, .pref_block = 4096,
    .max_payload = NBD_MAX_PAYLOAD, .multi_conn = true, .tls_required = true,
};

struct wire { uint8_t b[4096]; size_t n; };

static void w_opt(struct wire *w, uint32_t opt, const void *data, uint32_t len)
{
    put_be64(w->b + w->n, NBD_OPTS_MAGIC);
    put_be32(w->b + w->n + 8, opt);
    put_be32(w->b + w->n + 12, len);
    if (len)
        memcpy(w->b + w->n + 16, data, len);
    w->n += 16 + len;
}

static void w_go(struct wire *w, uint32_t opt, const char *name)
{
    uint8_t d[64];
    size_t l = strlen(name);

    put_be32(d, (uint32_t)l);
    memcpy(d + 4, name, l);
    put_be16(d + 4 + l, 0);
    w_opt(w, opt, d, (uint32_t)(6 + l));
}

/* The reply types, in order, that out holds; returns how many. */
static int replies(const struct nbd_outbuf *out, uint32_t *opt, uint32_t *type, int max)
{
    int n = 0;

    for (size_t i = 0; i + 20 <= out->len && n < max; n++) {
        assert_true(get_be64(out->data + i) == NBD_REP_MAGIC);
        opt[n] = get_be32(out->data + i + 8);
        type[n] = get_be32(out->data + i + 12);
        i += 20 + get_be32(out->data + i + 16);
    }
    return n;
}

static void start(struct nbd_hs *hs, const struct nbd_export *e, struct nbd_outbuf *out)
{
    uint8_t flags[4];
    size_t used;

    nbd_hs_start(hs, e, out);
    out->len = 0;
    put_be32(flags, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    assert_int_equal(nbd_hs_feed(hs, flags, 4, &used, out), NBD_HS_MORE);
    assert_int_equal(used, 4);
}

static void test_options_refused_before_tls(void **state)
{
    static struct nbd_outbuf out;
    struct nbd_hs hs;
    struct wire w = { .n = 0 };
    uint32_t opt[8], type[8];
    size_t used;

    (void)state;
    start(&hs, &tls_exp, &out);
    w_opt(&w, NBD_OPT_LIST, NULL, 0);
    w_opt(&w, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    w_go(&w, NBD_OPT_INFO, "vol");
    w_go(&w, NBD_OPT_GO, "vol");
    assert_int_equal(nbd_hs_feed(&hs, w.b, w.n, &used, &out), NBD_HS_MORE);
    assert_int_equal(used, w.n);
    assert_int_equal(replies(&out, opt, type, 8), 4);
    for (int i = 0; i < 4; i++)
        assert_true(type[i] == NBD_REP_ERR_TLS_REQD);
    assert_false(hs.structured);
    assert_int_equal(hs.state, HS_OPTION);
}

static void test_starttls_stops_the_machine(void **state)
{
    static struct nbd_outbuf out;
    struct nbd_hs hs;
    struct wire w = { .n = 0 };
    uint32_t opt[8], type[8];
    size_t used, before;

    (void)state;
    start(&hs, &tls_exp, &out);
    w_opt(&w, NBD_OPT_STARTTLS, NULL, 0);
    before = w.n;
    /* An injected option behind STARTTLS must not be consumed. */
    w_opt(&w, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    assert_int_equal(nbd_hs_feed(&hs, w.b, w.n, &used, &out), NBD_HS_STARTTLS);
    assert_int_equal(used, before);
    assert_int_equal(replies(&out, opt, type, 8), 1);
    assert_int_equal(opt[0], NBD_OPT_STARTTLS);
    assert_int_equal(type[0], NBD_REP_ACK);
    assert_false(hs.structured);

    /* Over TLS: negotiation as usual, and a second STARTTLS is invalid. */
    nbd_hs_tls_started(&hs);
    out.len = 0;
    w.n = 0;
    w_opt(&w, NBD_OPT_STARTTLS, NULL, 0);
    w_opt(&w, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    w_go(&w, NBD_OPT_GO, "vol");
    assert_int_equal(nbd_hs_feed(&hs, w.b, w.n, &used, &out), NBD_HS_TRANSMISSION);
    assert_int_equal(used, w.n);
    assert_true(replies(&out, opt, type, 8) >= 3);
    assert_true(type[0] == NBD_REP_ERR_INVALID);
    assert_int_equal(type[1], NBD_REP_ACK);
    assert_true(hs.structured);
}

static void test_starttls_with_data(void **state)
{
    static struct nbd_outbuf out;
    struct nbd_hs hs;
    struct wire w = { .n = 0 };
    uint32_t opt[4], type[4];
    size_t used;

    (void)state;
    start(&hs, &tls_exp, &out);
    w_opt(&w, NBD_OPT_STARTTLS, "x", 1);
    assert_int_equal(nbd_hs_feed(&hs, w.b, w.n, &used, &out), NBD_HS_MORE);
    assert_int_equal(replies(&out, opt, type, 4), 1);
    assert_true(type[0] == NBD_REP_ERR_INVALID);
}

static void test_export_name_and_abort_before_tls(void **state)
{
    static struct nbd_outbuf out;
    struct nbd_hs hs;
    struct wire w = { .n = 0 };
    uint32_t opt[4], type[4];
    size_t used;

    (void)state;
    start(&hs, &tls_exp, &out);
    w_opt(&w, NBD_OPT_EXPORT_NAME, "vol", 3);
    assert_int_equal(nbd_hs_feed(&hs, w.b, w.n, &used, &out), NBD_HS_CLOSE);
    assert_int_equal(out.len, 0);   /* no export size, no flags in the clear */

    start(&hs, &tls_exp, &out);
    w.n = 0;
    w_opt(&w, NBD_OPT_ABORT, NULL, 0);
    assert_int_equal(nbd_hs_feed(&hs, w.b, w.n, &used, &out), NBD_HS_CLOSE);
    assert_int_equal(replies(&out, opt, type, 4), 1);
    assert_int_equal(type[0], NBD_REP_ACK);
}

static void test_no_credentials(void **state)
{
    static struct nbd_outbuf out;
    struct nbd_export plain = tls_exp;
    struct nbd_hs hs;
    struct wire w = { .n = 0 };
    uint32_t opt[4], type[4];
    size_t used;

    (void)state;
    plain.tls_required = false;
    start(&hs, &plain, &out);
    w_opt(&w, NBD_OPT_STARTTLS, NULL, 0);
    w_go(&w, NBD_OPT_GO, "vol");
    assert_int_equal(nbd_hs_feed(&hs, w.b, w.n, &used, &out), NBD_HS_TRANSMISSION);
    assert_true(replies(&out, opt, type, 4) >= 2);
    assert_true(type[0] == NBD_REP_ERR_UNSUP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_refused_before_tls),
        cmocka_unit_test(test_starttls_stops_the_machine),
        cmocka_unit_test(test_starttls_with_data),
        cmocka_unit_test(test_export_name_and_abort_before_tls),
        cmocka_unit_test(test_no_credentials),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
