/* The latency-aware copy's pure decisions (engine/latency.h): percentiles
 * of QEMU's latency histograms, the difference of two snapshots, the
 * --latency-budget values, and the AIMD step on the copy's rate limit with
 * its floor, its hard ceiling and its convergence override. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "engine/latency.h"

#define MiB (1024.0 * 1024)
#define MS 1e6

/* boundaries 1, 2, 5, 10 ms: bins [0,1) [1,2) [2,5) [5,10) [10,inf) */
static const uint64_t B4[] = { 1000000, 2000000, 5000000, 10000000 };

static struct lat_hist hist(const uint64_t *bins)
{
    struct lat_hist h;

    assert_int_equal(lat_hist_set(&h, B4, 4, bins, 5), 0);
    return h;
}

static void test_percentile_interpolates(void **state)
{
    (void)state;
    /* 100 requests: 50 under 1 ms, 40 in [1,2), 9 in [2,5), 1 in [5,10). */
    struct lat_hist h = hist((const uint64_t[]){ 50, 40, 9, 1, 0 });

    /* p50: rank 50, the end of the first bin. */
    assert_float_equal(lat_hist_percentile(&h, 0.50), 1.0 * MS, 1);
    /* p90: rank 90, the end of [1,2). */
    assert_float_equal(lat_hist_percentile(&h, 0.90), 2.0 * MS, 1);
    /* p99: rank 99, the end of [2,5). */
    assert_float_equal(lat_hist_percentile(&h, 0.99), 5.0 * MS, 1);
    /* p95: rank 95, 5 of the 9 in [2,5): 2 + 3 * 5/9 ms. */
    assert_float_equal(lat_hist_percentile(&h, 0.95), 2.0 * MS + 3.0 * MS * 5 / 9, 1);
    /* p100: the upper end of the last non-empty bin. */
    assert_float_equal(lat_hist_percentile(&h, 1.0), 10.0 * MS, 1);
    /* p25: half way through the first bin, which starts at 0. */
    assert_float_equal(lat_hist_percentile(&h, 0.25), 0.5 * MS, 1);
}

static void test_percentile_open_bin(void **state)
{
    (void)state;
    /* The quantile falls in [10 ms, inf): its lower boundary, a lower
     * bound, as Prometheus answers. */
    struct lat_hist h = hist((const uint64_t[]){ 90, 0, 0, 0, 10 });

    assert_float_equal(lat_hist_percentile(&h, 0.99), 10.0 * MS, 1);
    /* Skips empty bins: p91 is in the last one too. */
    assert_float_equal(lat_hist_percentile(&h, 0.91), 10.0 * MS, 1);
    assert_float_equal(lat_hist_percentile(&h, 0.90), 1.0 * MS, 1);
}

static void test_percentile_bad_inputs(void **state)
{
    (void)state;
    struct lat_hist empty = hist((const uint64_t[]){ 0, 0, 0, 0, 0 });
    struct lat_hist h = hist((const uint64_t[]){ 1, 0, 0, 0, 0 });
    struct lat_hist none;

    assert_true(isnan(lat_hist_percentile(&empty, 0.99)));
    assert_true(isnan(lat_hist_percentile(NULL, 0.99)));
    assert_true(isnan(lat_hist_percentile(&h, NAN)));
    assert_true(isnan(lat_hist_percentile(&h, 0)));
    assert_true(isnan(lat_hist_percentile(&h, -0.5)));
    assert_true(isnan(lat_hist_percentile(&h, 1.5)));
    /* No boundaries: one bin holding everything says nothing. */
    assert_int_equal(lat_hist_set(&none, NULL, 0, (const uint64_t[]){ 7 }, 1), 0);
    assert_int_equal(lat_hist_count(&none), 7);
    assert_true(isnan(lat_hist_percentile(&none, 0.99)));
    /* A single request. */
    assert_float_equal(lat_hist_percentile(&h, 0.99), 0.99 * MS, 1);
}

static void test_hist_set_validates(void **state)
{
    (void)state;
    struct lat_hist h;
    uint64_t bins[LAT_HIST_MAX_BOUNDS + 2] = { 0 };
    uint64_t many[LAT_HIST_MAX_BOUNDS + 1];

    /* bins must be boundaries + 1 */
    assert_int_equal(lat_hist_set(&h, B4, 4, bins, 4), -1);
    assert_int_equal(lat_hist_count(&h), 0);
    assert_int_equal(lat_hist_set(&h, B4, 4, bins, 6), -1);
    /* strictly increasing */
    assert_int_equal(lat_hist_set(&h, (const uint64_t[]){ 5, 5 }, 2, bins, 3), -1);
    assert_int_equal(lat_hist_set(&h, (const uint64_t[]){ 5, 4 }, 2, bins, 3), -1);
    /* too many */
    for (size_t i = 0; i < LAT_HIST_MAX_BOUNDS + 1; i++)
        many[i] = i + 1;
    assert_int_equal(lat_hist_set(&h, many, LAT_HIST_MAX_BOUNDS + 1, bins, LAT_HIST_MAX_BOUNDS + 2),
                     -1);
    assert_int_equal(lat_hist_set(&h, many, LAT_HIST_MAX_BOUNDS, bins, LAT_HIST_MAX_BOUNDS + 1), 0);
}

/* A request lands in the bin whose range [lower, upper) holds it: a
 * latency equal to a boundary belongs to the bin above, as in QEMU. */
static void test_hist_add(void **state)
{
    (void)state;
    struct lat_hist h = hist((const uint64_t[]){ 0, 0, 0, 0, 0 });

    lat_hist_add(&h, 0);
    lat_hist_add(&h, MS - 1);
    lat_hist_add(&h, MS);
    lat_hist_add(&h, 5 * MS);
    lat_hist_add(&h, 10 * MS);
    lat_hist_add(&h, UINT64_MAX);
    assert_int_equal(h.bins[0], 2);
    assert_int_equal(h.bins[1], 1);
    assert_int_equal(h.bins[2], 0);
    assert_int_equal(h.bins[3], 1);
    assert_int_equal(h.bins[4], 2);
    assert_int_equal(lat_hist_count(&h), 6);
}

static void test_hist_delta(void **state)
{
    (void)state;
    struct lat_hist prev = hist((const uint64_t[]){ 10, 5, 1, 0, 0 });
    struct lat_hist now = hist((const uint64_t[]){ 10, 8, 3, 1, 0 });
    struct lat_hist d, other;

    assert_int_equal(lat_hist_delta(&now, &prev, &d), 0);
    assert_int_equal(lat_hist_count(&d), 6);
    assert_int_equal(d.bins[0], 0);
    assert_int_equal(d.bins[1], 3);
    assert_int_equal(d.bins[3], 1);
    /* A bin went down: reset in between, the new snapshot is the window. */
    assert_int_equal(lat_hist_delta(&prev, &now, &d), 1);
    assert_int_equal(lat_hist_count(&d), 16);
    /* Other boundaries: set anew in between. */
    assert_int_equal(lat_hist_set(&other, (const uint64_t[]){ 1, 2 }, 2,
                                  (const uint64_t[]){ 1, 1, 1 }, 3), 0);
    assert_int_equal(lat_hist_delta(&other, &prev, &d), 1);
    assert_int_equal(d.nbounds, 2);
    assert_int_equal(lat_hist_count(&d), 3);
    /* Nothing new: an empty window, whose p99 is NaN. */
    assert_int_equal(lat_hist_delta(&now, &now, &d), 0);
    assert_int_equal(lat_hist_count(&d), 0);
    assert_true(isnan(lat_hist_percentile(&d, 0.99)));
}

static void test_default_bounds(void **state)
{
    (void)state;
    uint64_t b[LAT_HIST_MAX_BOUNDS];
    size_t n = lat_hist_default_bounds(b, LAT_HIST_MAX_BOUNDS);
    struct lat_hist h;
    uint64_t bins[LAT_HIST_MAX_BOUNDS + 1] = { 0 };

    assert_true(n >= 10 && n <= LAT_HIST_MAX_BOUNDS);
    assert_int_equal(b[0], 50000);
    assert_int_equal(b[n - 1], 10000000000ULL);
    /* Usable as they are. */
    assert_int_equal(lat_hist_set(&h, b, n, bins, n + 1), 0);
    assert_int_equal(lat_hist_default_bounds(b, 3), 3);
}

static void test_budget_parse(void **state)
{
    (void)state;
    struct lat_budget b;
    const char *why = NULL;

    assert_int_equal(lat_budget_parse("off", &b, &why), 0);
    assert_int_equal(b.kind, LAT_BUDGET_OFF);
    assert_int_equal(lat_budget_parse("auto", &b, &why), 0);
    assert_int_equal(b.kind, LAT_BUDGET_AUTO);
    assert_float_equal(b.value, LAT_BUDGET_FACTOR, 0);
    assert_int_equal(lat_budget_parse("3x", &b, &why), 0);
    assert_int_equal(b.kind, LAT_BUDGET_AUTO);
    assert_float_equal(b.value, 3, 0);
    assert_int_equal(lat_budget_parse("1.5x", &b, &why), 0);
    assert_float_equal(b.value, 1.5, 0);
    assert_int_equal(lat_budget_parse("5ms", &b, &why), 0);
    assert_int_equal(b.kind, LAT_BUDGET_ABS);
    assert_float_equal(b.value, 5e6, 0);
    assert_int_equal(lat_budget_parse("250us", &b, &why), 0);
    assert_float_equal(b.value, 250e3, 0);
    assert_int_equal(lat_budget_parse("0.5s", &b, &why), 0);
    assert_float_equal(b.value, 0.5e9, 0);
    assert_int_equal(lat_budget_parse("10x", &b, &why), 0);
}

static void test_budget_parse_rejects(void **state)
{
    (void)state;
    static const char *bad[] = {
        "", "5", "ms", "-5ms", "+5ms", " 5ms", "5 ms", "5ms ", "5msx", "nan", "nanms", "infms",
        "inf", "1e3us", "0x10ms", "0ms", "5us", "61s", "1x", "0.5x", "1001x", "3xx", "3X",
        "1..5ms", ".ms", "5m", "5h", "OFF", "offx", "x",
    };
    struct lat_budget b;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;

        if (lat_budget_parse(bad[i], &b, &why) != -1)
            fail_msg("'%s' was accepted", bad[i]);
        assert_non_null(why);
    }
    {
        const char *why = NULL;

        assert_int_equal(lat_budget_parse(NULL, &b, &why), -1);
        assert_non_null(why);
    }
}

static void test_budget_ns(void **state)
{
    (void)state;
    struct lat_budget a = { LAT_BUDGET_AUTO, 2.0 };
    struct lat_budget abs = { LAT_BUDGET_ABS, 7e6 };
    struct lat_budget off = { LAT_BUDGET_OFF, 0 };

    assert_float_equal(lat_budget_ns(&a, 5e6), 10e6, 0);
    /* Never under the minimum. */
    assert_float_equal(lat_budget_ns(&a, 100e3), LAT_BUDGET_MIN_NS, 0);
    /* No p99 before the copy: the guest was idle. */
    assert_float_equal(lat_budget_ns(&a, NAN), LAT_BUDGET_IDLE_NS, 0);
    assert_float_equal(lat_budget_ns(&a, 0), LAT_BUDGET_IDLE_NS, 0);
    assert_float_equal(lat_budget_ns(&a, -1), LAT_BUDGET_IDLE_NS, 0);
    assert_float_equal(lat_budget_ns(&a, INFINITY), LAT_BUDGET_IDLE_NS, 0);
    assert_float_equal(lat_budget_ns(&abs, 5e6), 7e6, 0);
    assert_float_equal(lat_budget_ns(&off, 5e6), 0, 0);
}

/* ---- the step ---- */

#define L(mib) ((uint64_t)((mib) * MiB))

static struct lat_ctl_out step(const struct lat_ctl_cfg *c, double p99_ms, uint64_t samples,
                               uint64_t limit, double copy_mib, double dirty_mib)
{
    struct lat_ctl_in in = {
        .p99_ns = p99_ms * MS, .samples = samples, .limit = limit,
        .copy_rate = copy_mib * MiB, .dirty_rate = dirty_mib * MiB,
    };

    return lat_ctl_step(c, &in);
}

static void test_step_over_budget_decreases(void **state)
{
    (void)state;
    struct lat_ctl_cfg c = lat_ctl_defaults(10 * MS, 0);
    struct lat_ctl_out o = step(&c, 20, 500, L(200), 200, 0);

    assert_int_equal(o.why, LAT_DECREASE);
    assert_int_equal(o.limit, L(100));
    assert_int_equal(o.flags, 0);
    /* The copy ran below its limit: the decrease starts from what it
     * reached, so that it bites at once. */
    o = step(&c, 20, 500, L(400), 100, 0);
    assert_int_equal(o.why, LAT_DECREASE);
    assert_int_equal(o.limit, L(50));
    /* Unlimited: from the measured rate. */
    o = step(&c, 20, 500, 0, 300, 0);
    assert_int_equal(o.limit, L(150));
    /* Unlimited and nothing measured: nothing to start from, it holds. */
    o = step(&c, 20, 500, 0, 0, 0);
    assert_int_equal(o.why, LAT_HOLD);
    assert_int_equal(o.limit, 0);
    /* Exactly at the budget is within it. */
    o = step(&c, 10, 500, L(100), 100, 0);
    assert_int_equal(o.why, LAT_INCREASE);
}

static void test_step_under_budget_increases(void **state)
{
    (void)state;
    struct lat_ctl_cfg c = lat_ctl_defaults(10 * MS, 0);
    /* Under budget but within the headroom: additive. */
    struct lat_ctl_out o = step(&c, 6, 500, L(100), 99, 0);

    assert_int_equal(o.why, LAT_INCREASE);
    assert_int_equal(o.limit, L(100) + c.increase);
    assert_int_equal(o.flags, 0);
    /* A limit the copy does not reach is not grown. */
    o = step(&c, 6, 500, L(100), 40, 0);
    assert_int_equal(o.why, LAT_HOLD);
    assert_int_equal(o.limit, L(100));
    o = step(&c, 1, 500, L(100), 40, 0);
    assert_int_equal(o.why, LAT_HOLD);
    assert_int_equal(o.limit, L(100));
    /* The guest idle (no requests, so no p99): grow by the factor. */
    o = step(&c, NAN, 0, L(100), 10, 0);
    assert_int_equal(o.why, LAT_INCREASE);
    assert_int_equal(o.limit, L(150));
    /* Unlimited stays unlimited. */
    o = step(&c, 5, 500, 0, 300, 0);
    assert_int_equal(o.limit, 0);
    /* Repeated increases within the headroom climb linearly. */
    uint64_t lim = c.floor;
    for (int i = 0; i < 10; i++)
        lim = step(&c, 6, 100, lim, (double)lim / MiB, 0).limit;
    assert_int_equal(lim, c.floor + 10 * c.increase);
}

static void test_step_far_under_budget_grows(void **state)
{
    (void)state;
    struct lat_ctl_cfg c = lat_ctl_defaults(10 * MS, 0);
    /* Under half the budget: x1.5. */
    struct lat_ctl_out o = step(&c, 4.9, 500, L(100), 99, 0);

    assert_int_equal(o.why, LAT_INCREASE);
    assert_int_equal(o.limit, L(150));
    /* At least the additive step, from a low limit. */
    o = step(&c, 1, 500, L(10), 10, 0);
    assert_int_equal(o.limit, L(10) + c.increase);
    /* Exactly half the budget is not far under. */
    o = step(&c, 5, 500, L(100), 99, 0);
    assert_int_equal(o.limit, L(100) + c.increase);
    /* The slow start: from start to 700 MiB/s in five steps. */
    uint64_t lim = c.start;
    int steps = 0;
    while (lim < L(700) && steps < 100) {
        lim = step(&c, 1, 100, lim, (double)lim / MiB, 0).limit;
        steps++;
    }
    assert_int_equal(steps, 5);
    /* No growth: the additive step alone. */
    c.grow = 1;
    o = step(&c, 1, 500, L(100), 99, 0);
    assert_int_equal(o.limit, L(100) + c.increase);
}

static void test_step_floor(void **state)
{
    (void)state;
    struct lat_ctl_cfg c = lat_ctl_defaults(10 * MS, 0);
    struct lat_ctl_out o = step(&c, 50, 500, c.floor + 1, 20, 0);

    assert_int_equal(o.why, LAT_DECREASE);
    assert_int_equal(o.limit, c.floor);
    assert_true(o.flags & LAT_F_FLOOR);
    /* However long it stays over budget. */
    uint64_t lim = L(500);
    for (int i = 0; i < 50; i++)
        lim = step(&c, 50, 500, lim, (double)lim / MiB, 0).limit;
    assert_int_equal(lim, c.floor);
    /* A zero floor still never yields 0, which would mean unlimited. */
    c.floor = 0;
    o = step(&c, 50, 500, 1, 0, 0);
    assert_int_equal(o.limit, 1);
}

static void test_step_ceiling(void **state)
{
    (void)state;
    struct lat_ctl_cfg c = lat_ctl_defaults(10 * MS, L(64));
    struct lat_ctl_out o = step(&c, 1, 500, L(60), 60, 0);

    /* 60 + 16 would pass 64. */
    assert_int_equal(o.why, LAT_INCREASE);
    assert_int_equal(o.limit, L(64));
    assert_true(o.flags & LAT_F_CEILING);
    /* Unlimited under a ceiling is the ceiling. */
    o = step(&c, 1, 500, 0, 64, 0);
    assert_int_equal(o.limit, L(64));
    o = step(&c, 20, 500, 0, 64, 0);
    assert_int_equal(o.limit, L(32));
    /* Not even convergence passes it; both flags say so. */
    o = step(&c, 20, 500, L(32), 32, 100);
    assert_int_equal(o.limit, L(64));
    assert_true(o.flags & LAT_F_CONVERGE);
    assert_true(o.flags & LAT_F_CEILING);
    /* A floor above the ceiling: the ceiling wins. */
    c.floor = L(128);
    o = step(&c, 50, 500, L(64), 64, 0);
    assert_int_equal(o.limit, L(64));
    /* Off: the ceiling, or unlimited without one. */
    c = lat_ctl_defaults(0, L(64));
    o = step(&c, 50, 500, L(10), 10, 0);
    assert_int_equal(o.why, LAT_OFF);
    assert_int_equal(o.limit, L(64));
    c = lat_ctl_defaults(NAN, 0);
    o = step(&c, 50, 500, L(10), 10, 0);
    assert_int_equal(o.why, LAT_OFF);
    assert_int_equal(o.limit, 0);
    c = lat_ctl_defaults(-1, 0);
    assert_int_equal(step(&c, 50, 500, L(10), 10, 0).why, LAT_OFF);
    /* Any random walk stays inside [floor, ceiling]. */
    c = lat_ctl_defaults(10 * MS, L(100));
    uint64_t lim = L(100);
    for (int i = 0; i < 200; i++) {
        double p99 = (i * 7919) % 30;
        double dirty = (i * 104729) % 180;

        lim = step(&c, p99, 100, lim, (double)lim / MiB, dirty).limit;
        assert_true(lim >= c.floor && lim <= L(100));
    }
}

static void test_step_convergence_override(void **state)
{
    (void)state;
    struct lat_ctl_cfg c = lat_ctl_defaults(10 * MS, 0);
    /* Over budget, throttled to 20 MiB/s, while the guest dirties 40:
     * the copy would never catch up.  It goes to 1.5 x 40 and says so. */
    struct lat_ctl_out o = step(&c, 30, 500, L(20), 20, 40);

    assert_int_equal(o.why, LAT_DECREASE);
    assert_int_equal(o.limit, L(60));
    assert_true(o.flags & LAT_F_CONVERGE);
    /* A decrease never goes under what converges... */
    o = step(&c, 30, 500, L(100), 100, 40);
    assert_int_equal(o.limit, L(60));
    assert_true(o.flags & LAT_F_CONVERGE);
    /* ...and is not flagged when it did not need lifting. */
    o = step(&c, 30, 500, L(200), 200, 40);
    assert_int_equal(o.limit, L(100));
    assert_false(o.flags & LAT_F_CONVERGE);
    /* Holding below what converges (no signal) is lifted too. */
    o = step(&c, NAN, 500, L(20), 20, 40);
    assert_int_equal(o.why, LAT_HOLD);
    assert_int_equal(o.limit, L(60));
    assert_true(o.flags & LAT_F_CONVERGE);
    /* A bad dirty rate is no dirty rate. */
    o = step(&c, 30, 500, L(200), 200, NAN);
    assert_int_equal(o.limit, L(100));
    assert_false(o.flags & LAT_F_CONVERGE);
    o = step(&c, 30, 500, L(200), 200, -5);
    assert_false(o.flags & LAT_F_CONVERGE);
    o = step(&c, 30, 500, L(200), 200, INFINITY);
    assert_int_equal(o.limit, L(100));
    /* A converge factor under 1 counts as 1. */
    c.converge = 0.2;
    o = step(&c, 30, 500, L(20), 20, 40);
    assert_int_equal(o.limit, L(40));
}

static void test_step_no_signal(void **state)
{
    (void)state;
    struct lat_ctl_cfg c = lat_ctl_defaults(10 * MS, 0);
    struct lat_ctl_out o;

    /* The guest did I/O but the p99 is not a number: hold. */
    o = step(&c, NAN, 500, L(100), 100, 0);
    assert_int_equal(o.why, LAT_HOLD);
    assert_int_equal(o.limit, L(100));
    o = step(&c, -1, 500, L(100), 100, 0);
    assert_int_equal(o.why, LAT_HOLD);
    /* An infinite p99 is over any budget. */
    o = step(&c, INFINITY, 500, L(100), 100, 0);
    assert_int_equal(o.why, LAT_DECREASE);
    /* Bad measured copy rates count as not measured. */
    o = step(&c, 30, 500, L(100), NAN, 0);
    assert_int_equal(o.limit, L(50));
    o = step(&c, 30, 500, L(100), INFINITY, 0);
    assert_int_equal(o.limit, L(50));
    /* A decrease factor outside (0, 1) is taken as 0.5. */
    c.decrease = 1.5;
    o = step(&c, 30, 500, L(100), 100, 0);
    assert_int_equal(o.limit, L(50));
    c.decrease = NAN;
    o = step(&c, 30, 500, L(100), 100, 0);
    assert_int_equal(o.limit, L(50));
    assert_string_equal(lat_ctl_why_name(LAT_DECREASE), "decrease");
    assert_string_equal(lat_ctl_why_name(LAT_OFF), "off");
}

static void test_depth(void **state)
{
    (void)state;
    /* 100 MiB/s of 1 MiB requests taking 10 ms: 1 in flight, 1.25 with
     * the headroom, so 2. */
    assert_int_equal(lat_ctl_depth(L(100), 0.010, 1 << 20, 64), 2);
    /* 400 MiB/s of 256 KiB requests taking 20 ms: 32, 40 with headroom. */
    assert_int_equal(lat_ctl_depth(L(400), 0.020, 256 << 10, 64), 40);
    /* Capped at max, and at least 1. */
    assert_int_equal(lat_ctl_depth(L(4000), 0.1, 64 << 10, 64), 64);
    assert_int_equal(lat_ctl_depth(1, 1e-6, 1 << 20, 64), 1);
    /* Unlimited, or no latency measured: max. */
    assert_int_equal(lat_ctl_depth(0, 0.010, 1 << 20, 16), 16);
    assert_int_equal(lat_ctl_depth(L(100), NAN, 1 << 20, 16), 16);
    assert_int_equal(lat_ctl_depth(L(100), 0, 1 << 20, 16), 16);
    assert_int_equal(lat_ctl_depth(L(100), -1, 1 << 20, 16), 16);
    assert_int_equal(lat_ctl_depth(L(100), INFINITY, 1 << 20, 16), 16);
    /* Bad sizes. */
    assert_int_equal(lat_ctl_depth(L(100), 0.010, 0, 16), 1);
    assert_int_equal(lat_ctl_depth(L(100), 0.010, 1 << 20, 0), 1);
    /* A huge limit does not overflow. */
    assert_int_equal(lat_ctl_depth(UINT64_MAX, 10, 1, 64), 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percentile_interpolates),
        cmocka_unit_test(test_percentile_open_bin),
        cmocka_unit_test(test_percentile_bad_inputs),
        cmocka_unit_test(test_hist_set_validates),
        cmocka_unit_test(test_hist_add),
        cmocka_unit_test(test_hist_delta),
        cmocka_unit_test(test_default_bounds),
        cmocka_unit_test(test_budget_parse),
        cmocka_unit_test(test_budget_parse_rejects),
        cmocka_unit_test(test_budget_ns),
        cmocka_unit_test(test_step_over_budget_decreases),
        cmocka_unit_test(test_step_under_budget_increases),
        cmocka_unit_test(test_step_far_under_budget_grows),
        cmocka_unit_test(test_step_floor),
        cmocka_unit_test(test_step_ceiling),
        cmocka_unit_test(test_step_convergence_override),
        cmocka_unit_test(test_step_no_signal),
        cmocka_unit_test(test_depth),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
