/* The pure decisions of volmig migrate --mode bitmap (engine/migrate_bitmap.h):
 * when to run another live pass and when to pause the guest for the last
 * one, the threshold that decides it, and the names the events carry.
 * converge() calls bitmap_decide() with the index of the pass that just
 * ran (0 is the full copy), the bytes dirty now, and the bytes that pass
 * copied (UINT64_MAX after pass 0, which copied everything). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/migrate_bitmap.h"

#define K 1024ULL
#define M (1024ULL * 1024)
#define G (1024ULL * M)

static void test_decide_after_full_copy(void **state)
{
    (void)state;
    /* Pass 0 copied everything, so there is nothing to compare against:
     * any dirty set above the threshold earns a live pass, however large,
     * even one as large as the previous figure. */
    assert_int_equal(bitmap_decide(0, 10 * M, UINT64_MAX, M), BM_PASS);
    assert_int_equal(bitmap_decide(0, 10 * M, 10 * M, M), BM_PASS);
    assert_int_equal(bitmap_decide(0, 10 * M, 4 * M, M), BM_PASS);
    assert_int_equal(bitmap_decide(0, UINT64_MAX, UINT64_MAX, M), BM_PASS);
    /* A guest that wrote little during pass 0 goes straight to the pause. */
    assert_int_equal(bitmap_decide(0, 512 * K, UINT64_MAX, M), BM_SMALL);
}

static void test_decide_shrinking_continues(void **state)
{
    (void)state;
    /* Each pass copied less than the one before: keep going. */
    assert_int_equal(bitmap_decide(1, 8 * M, 10 * M, M), BM_PASS);
    assert_int_equal(bitmap_decide(2, 4 * M, 8 * M, M), BM_PASS);
    assert_int_equal(bitmap_decide(5, M + 1, M + 2, M), BM_PASS);
}

static void test_decide_below_threshold(void **state)
{
    (void)state;
    /* At or below the threshold the last pass runs paused, whatever the
     * trend and the pass count. */
    assert_int_equal(bitmap_decide(1, M, 10 * M, M), BM_SMALL);
    assert_int_equal(bitmap_decide(1, M - 1, 10 * M, M), BM_SMALL);
    assert_int_equal(bitmap_decide(3, M, M / 2, M), BM_SMALL);
    assert_int_equal(bitmap_decide(BITMAP_MAX_PASSES + 5, 0, 10 * M, M), BM_SMALL);
    /* One byte above is not small. */
    assert_int_equal(bitmap_decide(1, M + 1, 10 * M, M), BM_PASS);
}

static void test_decide_not_shrinking(void **state)
{
    (void)state;
    /* The guest dirtied as much as the last pass copied, or more: another
     * live pass would not get closer, so pause. */
    assert_int_equal(bitmap_decide(1, 10 * M, 10 * M, M), BM_NOT_SHRINKING);
    assert_int_equal(bitmap_decide(1, 12 * M, 10 * M, M), BM_NOT_SHRINKING);
    assert_int_equal(bitmap_decide(7, UINT64_MAX, 2 * M, M), BM_NOT_SHRINKING);
    /* Below the threshold wins over not shrinking. */
    assert_int_equal(bitmap_decide(2, M, M / 2, M), BM_SMALL);
    /* Not shrinking is told before too many passes, so the warning names
     * the cause that matters. */
    assert_int_equal(bitmap_decide(BITMAP_MAX_PASSES, 10 * M, 10 * M, M), BM_NOT_SHRINKING);
}

static void test_decide_zero_dirty(void **state)
{
    (void)state;
    /* Nothing dirty is always small, even with a threshold of 0 (the
     * --converge-below 0 that tests use to force live passes). */
    assert_int_equal(bitmap_decide(0, 0, UINT64_MAX, 0), BM_SMALL);
    assert_int_equal(bitmap_decide(1, 0, 0, 0), BM_SMALL);
    assert_int_equal(bitmap_decide(4, 0, 10 * M, M), BM_SMALL);
    /* With a threshold of 0 a single dirty byte is a live pass... */
    assert_int_equal(bitmap_decide(0, 1, UINT64_MAX, 0), BM_PASS);
    assert_int_equal(bitmap_decide(1, 1, 2, 0), BM_PASS);
    /* ...unless the set stopped shrinking. */
    assert_int_equal(bitmap_decide(1, 1, 1, 0), BM_NOT_SHRINKING);
}

static void test_decide_max_passes(void **state)
{
    (void)state;
    /* pass is an index: pass 0 is the full copy, then at most
     * BITMAP_MAX_PASSES live dirty passes (1..BITMAP_MAX_PASSES) before
     * the guest is paused anyway. */
    assert_int_equal(bitmap_decide(BITMAP_MAX_PASSES - 1, 2 * M, 3 * M, M), BM_PASS);
    assert_int_equal(bitmap_decide(BITMAP_MAX_PASSES, 2 * M, 3 * M, M), BM_MAX_PASSES);
    assert_int_equal(bitmap_decide(BITMAP_MAX_PASSES + 100, 2 * M, 3 * M, M), BM_MAX_PASSES);
    /* A sequence that shrinks by one byte a pass stops at the limit. */
    {
        uint64_t prev = UINT64_MAX, dirty = 100 * M;
        int pass = 0;
        enum bitmap_step s;

        while ((s = bitmap_decide(pass, dirty, prev, M)) == BM_PASS) {
            prev = dirty;
            dirty--;
            pass++;
            assert_true(pass <= BITMAP_MAX_PASSES);
        }
        assert_int_equal(s, BM_MAX_PASSES);
        assert_int_equal(pass, BITMAP_MAX_PASSES);
    }
}

static void test_threshold_configured(void **state)
{
    (void)state;
    /* A configured value is taken as it is, with no clamping to the
     * 1 MiB..64 MiB range of the measured default, whatever the rate. */
    assert_true(bitmap_threshold(0, 1e9) == 0);
    assert_true(bitmap_threshold(1, 0) == 1);
    assert_true(bitmap_threshold(4096, 1e12) == 4096);
    assert_true(bitmap_threshold(8 * (int64_t)M, 0) == 8 * M);
    assert_true(bitmap_threshold(100 * (int64_t)G, 10.0 * M) == 100 * G);
    assert_true(bitmap_threshold(INT64_MAX, 10.0 * M) == (uint64_t)INT64_MAX);
}

static void test_threshold_from_rate(void **state)
{
    (void)state;
    /* -1 (no --converge-below) and any other negative: what 100 ms of
     * pass 0's rate moves. */
    assert_true(bitmap_threshold(-1, 100.0 * M) == 10 * M);
    assert_true(bitmap_threshold(-1, 200.0 * M) == 20 * M);
    assert_true(bitmap_threshold(-2, 100.0 * M) == 10 * M);
    assert_true(bitmap_threshold(INT64_MIN, 100.0 * M) == 10 * M);
    /* The bounds themselves. */
    assert_true(bitmap_threshold(-1, 10.0 * M) == M);
    assert_true(bitmap_threshold(-1, 640.0 * M) == 64 * M);
}

static void test_threshold_clamped(void **state)
{
    (void)state;
    /* Slow or unmeasured (a pass 0 under a millisecond reports rate 0):
     * at least 1 MiB, so a trickle of writes cannot keep the guest
     * running pass after pass. */
    assert_true(bitmap_threshold(-1, 0) == M);
    assert_true(bitmap_threshold(-1, 1.0) == M);
    assert_true(bitmap_threshold(-1, 5.0 * M) == M);
    assert_true(bitmap_threshold(-1, -1e9) == M);
    /* Fast: at most 64 MiB, which bounds the paused pass. */
    assert_true(bitmap_threshold(-1, 10.0 * G) == 64 * M);
    assert_true(bitmap_threshold(-1, 1e300) == 64 * M);
    assert_true(bitmap_threshold(-1, INFINITY) == 64 * M);
    /* A rate that is not a number must not reach the cast to an integer
     * (undefined behaviour); it is treated as unmeasured. */
    assert_true(bitmap_threshold(-1, NAN) == M);
}

static void test_step_names(void **state)
{
    (void)state;
    /* These are the "reason" of the converged event: users and scripts
     * read them. */
    assert_string_equal(bitmap_step_name(BM_PASS), "pass");
    assert_string_equal(bitmap_step_name(BM_SMALL), "below-threshold");
    assert_string_equal(bitmap_step_name(BM_NOT_SHRINKING), "not-shrinking");
    assert_string_equal(bitmap_step_name(BM_MAX_PASSES), "max-passes");
    /* Every step has its own name. */
    assert_true(strcmp(bitmap_step_name(BM_SMALL), bitmap_step_name(BM_NOT_SHRINKING)));
    assert_true(strcmp(bitmap_step_name(BM_MAX_PASSES), bitmap_step_name(BM_PASS)));
}

/* ---- what a retry still has to copy ---- */

#define R(o, l) { (o), (l) }

static void test_ranges_union(void **state)
{
    struct copy_range a[] = { R(0, 10), R(50, 10), R(100, 5) };
    struct copy_range b[] = { R(5, 10), R(60, 5), R(80, 0), R(200, 1) };
    struct copy_range out[8];
    size_t n;

    (void)state;
    n = ranges_union(a, 3, b, 4, out);
    assert_int_equal(n, 4);
    assert_true(out[0].off == 0 && out[0].len == 15);      /* overlapping */
    assert_true(out[1].off == 50 && out[1].len == 15);     /* adjacent */
    assert_true(out[2].off == 100 && out[2].len == 5);
    assert_true(out[3].off == 200 && out[3].len == 1);
    assert_int_equal(ranges_bytes(out, n), 36);
    assert_int_equal(ranges_union(NULL, 0, b, 2, out), 2);
    assert_int_equal(ranges_union(NULL, 0, NULL, 0, out), 0);
}

static void test_ranges_from(void **state)
{
    struct copy_range r[] = { R(0, 10), R(20, 10), R(40, 10) };

    (void)state;
    /* A copy killed with everything below 25 settled. */
    assert_int_equal(ranges_from(r, 3, 25), 2);
    assert_true(r[0].off == 25 && r[0].len == 5);
    assert_true(r[1].off == 40 && r[1].len == 10);
    assert_int_equal(ranges_from(r, 2, 0), 2);
    assert_int_equal(ranges_from(r, 2, 1000), 0);
}

static void test_ranges_complement(void **state)
{
    struct copy_range r[] = { R(10, 10), R(30, 70) }, out[4];
    size_t n;

    (void)state;
    n = ranges_complement(r, 2, 100, out);
    assert_int_equal(n, 2);
    assert_true(out[0].off == 0 && out[0].len == 10);
    assert_true(out[1].off == 20 && out[1].len == 10);
    n = ranges_complement(NULL, 0, 100, out);
    assert_int_equal(n, 1);
    assert_true(out[0].off == 0 && out[0].len == 100);
    r[0] = (struct copy_range)R(0, 100);
    assert_int_equal(ranges_complement(r, 1, 100, out), 0);
}

static void test_ranges_sample(void **state)
{
    struct copy_range r[] = { R(0, 1 << 20), R(10 << 20, 1 << 20) };
    uint64_t off[8];
    size_t n;

    (void)state;
    n = ranges_sample(r, 2, 8, 65536, off);
    assert_int_equal(n, 8);
    for (size_t i = 0; i < n; i++) {
        bool inside = off[i] < (1 << 20) || (off[i] >= (10 << 20) && off[i] < (11 << 20));

        assert_true(inside);
        assert_int_equal(off[i] % 65536, 0);
        if (i)
            assert_true(off[i] > off[i - 1]);
    }
    assert_true(off[0] < (1 << 20) && off[7] >= (10 << 20));   /* spread over both */
    assert_int_equal(ranges_sample(r, 0, 8, 65536, off), 0);
    /* A range smaller than a block still gives its own start. */
    r[0] = (struct copy_range)R(1000, 10);
    n = ranges_sample(r, 1, 4, 65536, off);
    assert_true(n >= 1 && off[0] == 1000);
}

/* What a failed run keeps for a later one (engine/migrate_bitmap_keep.c):
 * the state file's text round-trips, and anything incomplete or
 * inconsistent is refused rather than trusted. */
static void test_kept_round_trip(void **state)
{
    struct copy_range pend[] = { R(0, 4096), R(1 << 20, 1 << 20) };
    struct bm_kept k = {
        .qmp = "unix:/run/q.qmp", .node = "disk0", .target = "nbd://h:1/", .bitmap =
        "volmig-keep-1700000000-0badf00d", .size = 8 << 20, .target_size = 8 << 20,
        .created = 1700000000, .pend = pend, .npend = 2,
    }, back;
    char *text = bm_kept_dump(&k);

    (void)state;
    assert_non_null(text);
    assert_int_equal(bm_kept_parse(text, &back), 0);
    assert_string_equal(back.qmp, k.qmp);
    assert_string_equal(back.node, k.node);
    assert_string_equal(back.target, k.target);
    assert_string_equal(back.bitmap, k.bitmap);
    assert_true(back.size == k.size && back.target_size == k.target_size);
    assert_true(back.created == k.created && back.npend == 2);
    assert_true(back.pend[1].off == (1 << 20) && back.pend[1].len == (1 << 20));
    bm_kept_free(&back);
    /* Nothing pending (a pass had settled all it set out to copy). */
    k.npend = 0;
    free(text);
    text = bm_kept_dump(&k);
    assert_int_equal(bm_kept_parse(text, &back), 0);
    assert_int_equal(back.npend, 0);
    bm_kept_free(&back);
    free(text);
}

static void test_kept_refused(void **state)
{
    static const char *const bad[] = {
        "",
        "{",
        "[]",
        /* a cut file */
        "{\"volmig_state\":1,\"qmp\":\"unix:/q\",\"node\":\"d\"",
        /* another version */
        "{\"volmig_state\":2,\"qmp\":\"q\",\"node\":\"d\",\"target\":\"t\",\"bitmap\":"
        "\"volmig-keep-1-a\",\"size\":100,\"target_size\":100,\"created\":1,\"pending\":[]}",
        /* no target */
        "{\"volmig_state\":1,\"qmp\":\"q\",\"node\":\"d\",\"bitmap\":"
        "\"volmig-keep-1-a\",\"size\":100,\"target_size\":100,\"created\":1,\"pending\":[]}",
        /* a bitmap that is not a kept one (a live run's) */
        "{\"volmig_state\":1,\"qmp\":\"q\",\"node\":\"d\",\"target\":\"t\",\"bitmap\":"
        "\"volmig-77-b0-1\",\"size\":100,\"target_size\":100,\"created\":1,\"pending\":[]}",
        /* pending past the end, overlapping, unsorted, empty, negative */
        "{\"volmig_state\":1,\"qmp\":\"q\",\"node\":\"d\",\"target\":\"t\",\"bitmap\":"
        "\"volmig-keep-1-a\",\"size\":100,\"target_size\":100,\"created\":1,\"pending\":[[90,20]]}",
        "{\"volmig_state\":1,\"qmp\":\"q\",\"node\":\"d\",\"target\":\"t\",\"bitmap\":"
        "\"volmig-keep-1-a\",\"size\":100,\"target_size\":100,\"created\":1,"
        "\"pending\":[[0,20],[10,5]]}",
        "{\"volmig_state\":1,\"qmp\":\"q\",\"node\":\"d\",\"target\":\"t\",\"bitmap\":"
        "\"volmig-keep-1-a\",\"size\":100,\"target_size\":100,\"created\":1,"
        "\"pending\":[[50,5],[0,5]]}",
        "{\"volmig_state\":1,\"qmp\":\"q\",\"node\":\"d\",\"target\":\"t\",\"bitmap\":"
        "\"volmig-keep-1-a\",\"size\":100,\"target_size\":100,\"created\":1,\"pending\":[[0,0]]}",
        "{\"volmig_state\":1,\"qmp\":\"q\",\"node\":\"d\",\"target\":\"t\",\"bitmap\":"
        "\"volmig-keep-1-a\",\"size\":100,\"target_size\":100,\"created\":1,\"pending\":[[-1,5]]}",
        /* no size */
        "{\"volmig_state\":1,\"qmp\":\"q\",\"node\":\"d\",\"target\":\"t\",\"bitmap\":"
        "\"volmig-keep-1-a\",\"size\":0,\"target_size\":100,\"created\":1,\"pending\":[]}",
    };
    struct bm_kept k;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(bm_kept_parse(bad[i], &k), -1);
        assert_null(k.qmp);
        assert_null(k.pend);
    }
}

static void test_keep_names(void **state)
{
    (void)state;
    assert_int_equal(bm_keep_name_epoch("volmig-keep-1700000000-0badf00d"), 1700000000);
    assert_int_equal(bm_keep_name_epoch("volmig-keep-0-x"), 0);
    assert_int_equal(bm_keep_name_epoch("volmig-keep-x-1"), -1);
    assert_int_equal(bm_keep_name_epoch("volmig-keep-17"), -1);
    assert_int_equal(bm_keep_name_epoch("volmig-1234-b0-0"), -1);
    assert_int_equal(bm_keep_name_epoch(NULL), -1);
    /* The sweep of dead runs reads no pid from a kept bitmap's name. */
    assert_int_equal(mig_name_pid("volmig-keep-1700000000-0badf00d"), 0);
    /* The key tells the QMP address and the node apart, not only their
     * concatenation. */
    assert_true(bm_keep_key("unix:/q", "disk0") != bm_keep_key("unix:/q", "disk1"));
    assert_true(bm_keep_key("unix:/qd", "isk0") != bm_keep_key("unix:/q", "disk0"));
    assert_true(bm_keep_key("unix:/q", "disk0") == bm_keep_key("unix:/q", "disk0"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide_after_full_copy),
        cmocka_unit_test(test_decide_shrinking_continues),
        cmocka_unit_test(test_decide_below_threshold),
        cmocka_unit_test(test_decide_not_shrinking),
        cmocka_unit_test(test_decide_zero_dirty),
        cmocka_unit_test(test_decide_max_passes),
        cmocka_unit_test(test_threshold_configured),
        cmocka_unit_test(test_threshold_from_rate),
        cmocka_unit_test(test_threshold_clamped),
        cmocka_unit_test(test_step_names),
        cmocka_unit_test(test_ranges_union),
        cmocka_unit_test(test_ranges_from),
        cmocka_unit_test(test_ranges_complement),
        cmocka_unit_test(test_ranges_sample),
        cmocka_unit_test(test_kept_round_trip),
        cmocka_unit_test(test_kept_refused),
        cmocka_unit_test(test_keep_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
