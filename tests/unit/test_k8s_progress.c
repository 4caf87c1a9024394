/* The storage progress written on migration objects (volmig.io/progress). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "k8s/k8s.h"

static void test_parse(void **state)
{
    long long d, t;

    (void)state;
    assert_true(k8s_progress_parse("copied 5 of 10 bytes", &d, &t));
    assert_int_equal(d, 5);
    assert_int_equal(t, 10);
    assert_false(k8s_progress_parse("copied 5 of 10 bytes, then", &d, &t));
    assert_false(k8s_progress_parse("mirror failed", &d, &t));
    assert_false(k8s_progress_parse("copied -5 of 10 bytes", &d, &t));
    assert_false(k8s_progress_parse("", &d, &t));
    assert_false(k8s_progress_parse(NULL, &d, &t));
}

static json_t *migrated(int n)
{
    json_t *a = json_array();

    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:s, s:{s:s}, s:{s:s}}", "volumeName",
                                           i ? "disk1" : "disk0", "sourcePVCInfo", "claimName",
                                           "src", "destinationPVCInfo", "claimName", "dst"));
    return a;
}

static void test_rate_and_eta(void **state)
{
    struct k8s_progress p = { 0 };
    json_t *m = migrated(1), *j;

    (void)state;
    k8s_progress_sample(&p, 0, 100 << 20, 1000);
    j = k8s_progress_json(&p, NULL, m, 1000);
    assert_true(json_is_null(json_object_get(j, "etaSeconds")));   /* no rate yet */
    assert_int_equal(json_integer_value(json_object_get(j, "bytesPerSecond")), 0);
    json_decref(j);
    k8s_progress_sample(&p, 10 << 20, 100 << 20, 1000);   /* same second: no rate sample */
    assert_true(p.rate == 0);
    k8s_progress_sample(&p, 20 << 20, 100 << 20, 1002);   /* 10 MiB/s */
    j = k8s_progress_json(&p, NULL, m, 1002);
    assert_int_equal(json_integer_value(json_object_get(j, "bytesPerSecond")), 10 << 20);
    assert_int_equal(json_integer_value(json_object_get(j, "etaSeconds")), 8);
    assert_int_equal(json_integer_value(json_object_get(j, "percent")), 20);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(j, "volumes"), 0),
                                                        "doneBytes")), 20 << 20);
    assert_string_equal(json_string_value(json_object_get(j, "updated")), "1970-01-01T00:16:42Z");
    json_decref(j);
    k8s_progress_sample(&p, 50 << 20, 100 << 20, 1003);   /* 30 MiB/s: smoothed to 20 */
    assert_int_equal((long long)p.rate, 20 << 20);
    k8s_progress_sample(&p, 100 << 20, 100 << 20, 1004);
    j = k8s_progress_json(&p, NULL, m, 1004);
    assert_int_equal(json_integer_value(json_object_get(j, "etaSeconds")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "percent")), 100);
    json_decref(j);
    json_decref(m);
}

static void test_several_volumes(void **state)
{
    struct k8s_progress p = { 0 };
    json_t *m = migrated(2), *j, *v;

    (void)state;
    k8s_progress_sample(&p, 3, 7, 5);
    j = k8s_progress_json(&p, NULL, m, 5);
    v = json_array_get(json_object_get(j, "volumes"), 1);
    assert_string_equal(json_string_value(json_object_get(v, "volume")), "disk1");
    assert_true(json_is_null(json_object_get(v, "doneBytes")));   /* no figure of its own */
    assert_int_equal(json_integer_value(json_object_get(j, "doneBytes")), 3);
    json_decref(j);
    {
        /* The engine's figures per volume: each its own; one not known yet
         * stays null. */
        struct k8s_engine_volume_progress per[2] = {
            { 1, 3, 0, -1, true },
            { 2, 4, 2, 1, true },
        };

        j = k8s_progress_json(&p, per, m, 5);
        v = json_array_get(json_object_get(j, "volumes"), 0);
        assert_int_equal(json_integer_value(json_object_get(v, "doneBytes")), 1);
        assert_int_equal(json_integer_value(json_object_get(v, "totalBytes")), 3);
        assert_true(json_is_null(json_object_get(v, "bytesPerSecond")));
        assert_true(json_is_null(json_object_get(v, "etaSeconds")));
        v = json_array_get(json_object_get(j, "volumes"), 1);
        assert_int_equal(json_integer_value(json_object_get(v, "doneBytes")), 2);
        assert_int_equal(json_integer_value(json_object_get(v, "bytesPerSecond")), 2);
        assert_int_equal(json_integer_value(json_object_get(v, "etaSeconds")), 1);
        json_decref(j);
        per[0].known = false;
        j = k8s_progress_json(&p, per, m, 5);
        v = json_array_get(json_object_get(j, "volumes"), 0);
        assert_true(json_is_null(json_object_get(v, "doneBytes")));
        json_decref(j);
    }
    json_decref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_rate_and_eta),
        cmocka_unit_test(test_several_volumes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
