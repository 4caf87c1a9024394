/* The latency-aware copy's pure decisions: histograms in QEMU's format,
 * the budget, and the AIMD step on the copy's rate limit (engine/latency.h
 * says what QEMU reports and why the controller looks as it does). */
#include "engine/latency.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- histograms ---- */

size_t lat_hist_default_bounds(uint64_t *out, size_t max)
{
    static const uint64_t us[] = {
        50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000,
        100000, 200000, 500000, 1000000, 2000000, 5000000, 10000000,
    };
    size_t n = sizeof us / sizeof us[0];

    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++)
        out[i] = us[i] * 1000;
    return n;
}

int lat_hist_set(struct lat_hist *h, const uint64_t *bounds, size_t nbounds, const uint64_t *bins,
                 size_t nbins)
{
    h->nbounds = 0;
    h->bins[0] = 0;
    if (nbounds > LAT_HIST_MAX_BOUNDS || nbins != nbounds + 1)
        return -1;
    for (size_t i = 1; i < nbounds; i++)
        if (bounds[i] <= bounds[i - 1])
            return -1;
    h->nbounds = nbounds;
    if (nbounds)
        memcpy(h->bounds, bounds, nbounds * sizeof *bounds);
    memcpy(h->bins, bins, nbins * sizeof *bins);
    return 0;
}

void lat_hist_add(struct lat_hist *h, uint64_t ns)
{
    size_t i = 0;

    while (i < h->nbounds && ns >= h->bounds[i])
        i++;
    h->bins[i]++;
}

uint64_t lat_hist_count(const struct lat_hist *h)
{
    uint64_t n = 0;

    for (size_t i = 0; i <= h->nbounds; i++)
        n = h->bins[i] > UINT64_MAX - n ? UINT64_MAX : n + h->bins[i];
    return n;
}

static bool same_bounds(const struct lat_hist *a, const struct lat_hist *b)
{
    return a->nbounds == b->nbounds &&
           (!a->nbounds || !memcmp(a->bounds, b->bounds, a->nbounds * sizeof a->bounds[0]));
}

int lat_hist_delta(const struct lat_hist *now, const struct lat_hist *prev, struct lat_hist *out)
{
    bool reset = !same_bounds(now, prev);

    for (size_t i = 0; !reset && i <= now->nbounds; i++)
        reset = now->bins[i] < prev->bins[i];
    *out = *now;
    if (reset)
        return 1;
    for (size_t i = 0; i <= now->nbounds; i++)
        out->bins[i] -= prev->bins[i];
    return 0;
}

double lat_hist_percentile(const struct lat_hist *h, double q)
{
    double total = 0, cum = 0, rank;

    /* Written so that a NaN q fails too. */
    if (!h || !(q > 0 && q <= 1) || !h->nbounds)
        return NAN;
    for (size_t i = 0; i <= h->nbounds; i++)
        total += (double)h->bins[i];
    if (total == 0)
        return NAN;
    rank = q * total;
    for (size_t i = 0; i <= h->nbounds; i++) {
        double n = (double)h->bins[i], lo, hi;

        if (n == 0 || cum + n < rank) {
            cum += n;
            continue;
        }
        lo = i ? (double)h->bounds[i - 1] : 0;
        if (i == h->nbounds)
            return lo;
        hi = (double)h->bounds[i];
        return lo + (hi - lo) * ((rank - cum) / n);
    }
    /* Rounding left rank a hair above the total: the last non-empty bin. */
    return (double)h->bounds[h->nbounds - 1];
}

/* ---- the budget ---- */

int lat_budget_parse(const char *s, struct lat_budget *out, const char **why)
{
    static const struct { const char *unit; double ns; } units[] = {
        { "us", 1e3 }, { "ms", 1e6 }, { "s", 1e9 },
    };
    char *end;
    size_t n;
    double v;

    if (!s || !*s) {
        *why = "the latency budget is empty: give off, auto, a factor like 3x, or a time like 5ms";
        return -1;
    }
    if (!strcmp(s, "off") || !strcmp(s, "auto")) {
        out->kind = !strcmp(s, "off") ? LAT_BUDGET_OFF : LAT_BUDGET_AUTO;
        out->value = out->kind == LAT_BUDGET_AUTO ? LAT_BUDGET_FACTOR : 0;
        return 0;
    }
    /* strtod would take leading blanks, signs, exponents, "nan", "inf"
     * and hex: a budget is plain decimal digits with at most one point,
     * and strtod must stop exactly where they end. */
    n = strspn(s, "0123456789.");
    v = strtod(s, &end);
    if (!n || end != s + n || strchr(s, '.') != strrchr(s, '.') || !isfinite(v)) {
        *why = "the latency budget is not a number followed by us, ms, s or x";
        return -1;
    }
    if (!strcmp(end, "x")) {
        if (!(v > 1 && v <= 1000)) {
            *why = "a latency budget factor must be above 1x and at most 1000x";
            return -1;
        }
        out->kind = LAT_BUDGET_AUTO;
        out->value = v;
        return 0;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].unit))
            continue;
        v *= units[i].ns;
        if (!(v >= 1e4 && v <= 60e9)) {
            *why = "a latency budget must be between 10us and 60s";
            return -1;
        }
        out->kind = LAT_BUDGET_ABS;
        out->value = v;
        return 0;
    }
    *why = *end ? "the latency budget's unit is not us, ms, s or x"
                : "the latency budget needs a unit: us, ms, s, or x for a factor";
    return -1;
}

double lat_budget_ns(const struct lat_budget *b, double pre_p99_ns)
{
    double v;

    switch (b->kind) {
    case LAT_BUDGET_OFF:
        return 0;
    case LAT_BUDGET_ABS:
        return b->value;
    case LAT_BUDGET_AUTO:
        break;
    }
    if (!(pre_p99_ns > 0) || !isfinite(pre_p99_ns))
        return LAT_BUDGET_IDLE_NS;
    v = b->value * pre_p99_ns;
    return v < LAT_BUDGET_MIN_NS ? LAT_BUDGET_MIN_NS : v;
}

/* ---- the rate controller ---- */

struct lat_ctl_cfg lat_ctl_defaults(double budget_ns, uint64_t ceiling)
{
    return (struct lat_ctl_cfg){
        .budget_ns = budget_ns,
        .floor = 8ULL << 20,
        .ceiling = ceiling,
        .increase = 16ULL << 20,
        .grow = 1.5,
        .decrease = 0.5,
        .converge = 1.5,
        .start = 128ULL << 20,
    };
}

/* A measured rate as the controller uses it: not a number, negative or
 * infinite counts as not measured (0). */
static double rate_or_zero(double r)
{
    return r > 0 && isfinite(r) ? r : 0;
}

/* Casting a double above UINT64_MAX to an integer is undefined. */
static uint64_t to_limit(double v)
{
    if (!(v >= 1))
        return 1;
    if (v >= 0x1p63)
        return 1ULL << 63;
    return (uint64_t)v;
}

/* The AIMD part: the next limit (INFINITY: unlimited) and why. */
static double aimd(const struct lat_ctl_cfg *cfg, const struct lat_ctl_in *in, double lim,
                   enum lat_ctl_why *why)
{
    double copy = rate_or_zero(in->copy_rate), base;
    double dec = cfg->decrease > 0 && cfg->decrease < 1 ? cfg->decrease : 0.5;
    bool idle = in->samples == 0;

    *why = LAT_HOLD;
    if (!idle && !(in->p99_ns >= 0))
        return lim;
    if (!idle && in->p99_ns > cfg->budget_ns) {
        base = copy > 0 && copy < lim ? copy : lim;
        if (isinf(base))
            return lim;
        *why = LAT_DECREASE;
        return base * dec;
    }
    if (isinf(lim) || !(idle || copy >= LAT_BIND * lim))
        return lim;
    *why = LAT_INCREASE;
    /* Far under the budget (or no guest request at all), the limit grows
     * by a factor: a copy that started low, or was cut hard, regains its
     * speed in a few steps instead of dozens. */
    if (cfg->grow > 1 && (idle || in->p99_ns < LAT_HEADROOM * cfg->budget_ns))
    {
        double grown = lim * cfg->grow, added = lim + (double)cfg->increase;

        return grown > added ? grown : added;
    }
    return lim + (double)cfg->increase;
}

struct lat_ctl_out lat_ctl_step(const struct lat_ctl_cfg *cfg, const struct lat_ctl_in *in)
{
    struct lat_ctl_out out = { .limit = in->limit, .why = LAT_HOLD, .flags = 0 };
    double ceiling = cfg->ceiling ? (double)cfg->ceiling : INFINITY;
    double floor = cfg->floor ? (double)cfg->floor : 1;
    double conv = cfg->converge >= 1 ? cfg->converge : 1;
    double lim, next, need;

    if (!(cfg->budget_ns > 0)) {
        out.limit = cfg->ceiling;
        out.why = LAT_OFF;
        return out;
    }
    /* A hard ceiling beats a floor set above it. */
    if (floor > ceiling)
        floor = ceiling;
    /* Unlimited under a ceiling is the ceiling. */
    lim = in->limit ? (double)in->limit : ceiling;
    next = aimd(cfg, in, lim, &out.why);
    need = rate_or_zero(in->dirty_rate) * conv;
    if (need > next) {
        next = need;
        out.flags |= LAT_F_CONVERGE;
    }
    if (next < floor) {
        next = floor;
        out.flags |= LAT_F_FLOOR;
    }
    if (next > ceiling) {
        next = ceiling;
        out.flags |= LAT_F_CEILING;
    }
    out.limit = isinf(next) ? 0 : to_limit(next);
    return out;
}

const char *lat_ctl_why_name(enum lat_ctl_why w)
{
    switch (w) {
    case LAT_OFF:      return "off";
    case LAT_HOLD:     return "hold";
    case LAT_DECREASE: return "decrease";
    case LAT_INCREASE: return "increase";
    }
    return "?";
}

unsigned lat_ctl_depth(uint64_t limit, double req_latency_s, uint64_t req_size, unsigned max)
{
    double d;

    if (max < 1)
        max = 1;
    if (!req_size)
        return 1;
    if (!limit || !(req_latency_s > 0) || !isfinite(req_latency_s))
        return max;
    d = ceil((double)limit * req_latency_s * LAT_DEPTH_HEADROOM / (double)req_size);
    if (d < 1)
        return 1;
    return d >= (double)max ? max : (unsigned)d;
}
