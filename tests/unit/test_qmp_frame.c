/* qmp/frame.c: message boundaries over arbitrary read sizes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "qmp/qmp.h"

static const char stream[] =
    "{\"QMP\": {\"version\": {}, \"capabilities\": [\"oob\"]}}\r\n"
    "{\"return\": {}, \"id\": 1}\r\n"
    "{\"event\": \"X\", \"data\": {\"s\": \"a } ] { [ \\\" \\\\\"}}\r\n"
    "{\"return\": [1, [2, {\"k\": \"}\"}]], \"id\": 2}";

/* Feeds the stream in chunks of n bytes; returns the messages seen. */
static int feed_in_chunks(size_t n, json_t *out)
{
    struct qmp_frame f;
    size_t off = 0, len = strlen(stream);
    json_t *m;
    int rc;

    qmp_frame_init(&f, 0);
    while (off < len) {
        size_t k = len - off < n ? len - off : n;

        assert_int_equal(qmp_frame_feed(&f, stream + off, k), 0);
        off += k;
        while ((rc = qmp_frame_next(&f, &m)) == 1)
            json_array_append_new(out, m);
        assert_int_equal(rc, 0);
    }
    qmp_frame_free(&f);
    return (int)json_array_size(out);
}

static void every_chunk_size(void **state)
{
    (void)state;
    for (size_t n = 1; n <= sizeof stream; n++) {
        json_t *out = json_array();

        assert_int_equal(feed_in_chunks(n, out), 4);
        assert_non_null(json_object_get(json_array_get(out, 0), "QMP"));
        assert_string_equal(json_string_value(json_object_get(json_object_get(
            json_array_get(out, 2), "data"), "s")), "a } ] { [ \" \\");
        assert_int_equal(json_integer_value(json_object_get(json_array_get(out, 3), "id")), 2);
        json_decref(out);
    }
}

static int one_message(const char *text, size_t max, json_t **m)
{
    struct qmp_frame f;
    int rc;

    qmp_frame_init(&f, max);
    assert_int_equal(qmp_frame_feed(&f, text, strlen(text)), 0);
    rc = qmp_frame_next(&f, m);
    if (rc == -1) {
        /* Broken for good: neither more input nor more output. */
        json_t *m2;
        assert_int_equal(qmp_frame_feed(&f, "{}", 2), -1);
        assert_int_equal(qmp_frame_next(&f, &m2), -1);
    }
    qmp_frame_free(&f);
    return rc;
}

static void bad_input(void **state)
{
    json_t *m;

    (void)state;
    assert_int_equal(one_message("[1, 2]", 0, &m), -1);         /* not an object */
    assert_int_equal(one_message("garbage", 0, &m), -1);
    assert_int_equal(one_message("{\"a\": }", 0, &m), -1);       /* malformed */
    assert_int_equal(one_message("{\"a\": 1]", 0, &m), -1);      /* mismatched */
    assert_int_equal(one_message("{\"a\": 1, \"a\": 2}", 0, &m), -1);
    assert_int_equal(one_message("{\"a\": \"\\u0000\"}", 0, &m), -1);
    assert_int_equal(one_message("{\"a\": \"xxxxxxxxxxxxxxxxxxxx\"}", 16, &m), -1);
    /* Too big even before it is complete. */
    assert_int_equal(one_message("{\"a\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 16, &m), -1);
    /* Truncated: not an error yet, just incomplete. */
    assert_int_equal(one_message("{\"a\": [1, 2", 0, &m), 0);
    assert_int_equal(one_message("   \r\n ", 0, &m), 0);
    assert_int_equal(one_message("{\"a\": 1}", 0, &m), 1);
    json_decref(m);
}

static void limit_applies_per_message(void **state)
{
    struct qmp_frame f;
    json_t *m;
    int n = 0;

    (void)state;
    /* Many small messages in one read are fine even if the read is larger
     * than the limit. */
    qmp_frame_init(&f, 32);
    for (int i = 0; i < 20; i++)
        assert_int_equal(qmp_frame_feed(&f, "{\"return\": {}, \"id\": 7}\n", 24), 0);
    while (qmp_frame_next(&f, &m) == 1) {
        json_decref(m);
        n++;
    }
    assert_int_equal(n, 20);
    qmp_frame_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_chunk_size),
        cmocka_unit_test(bad_input),
        cmocka_unit_test(limit_applies_per_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
