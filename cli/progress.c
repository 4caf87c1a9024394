/* Progress display shared by the subcommands that move data. */
#include "cli/cli.h"

#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static bool bar_shown;

const char *cli_human_bytes(double bytes, char *buf, size_t len)
{
    const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    int u = 0;

    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
    return buf;
}

void cli_bar(double done, double total, double rate, double eta, const char *extra)
{
    double pct = total > 0 ? 100.0 * done / total : 0;
    int filled = (int)(pct / 5);
    char a[32], b[32], r[32], etas[32] = "?";

    if (eta >= 0)
        snprintf(etas, sizeof etas, "%.0fs", eta);
    /* \033[K clears what a longer line before left on the right. */
    fprintf(stderr, "\r[%.*s%*s] %5.1f%% %s / %s  %s/s  ETA %s%s%s\033[K", filled,
            "####################", 20 - filled, "", pct, cli_human_bytes(done, a, sizeof a),
            cli_human_bytes(total, b, sizeof b), cli_human_bytes(rate, r, sizeof r), etas,
            extra ? "  " : "", extra ? extra : "");
    bar_shown = true;
}

void cli_bar_end(void)
{
    if (bar_shown) {
        fputc('\n', stderr);
        bar_shown = false;
    }
}

void cli_json_event(json_t *ev)
{
    json_t *t = json_object_get(ev, "t");
    json_t *eta = json_object_get(ev, "eta");
    char *s;

    if (json_is_real(t))
        json_real_set(t, (double)(long long)(json_real_value(t) * 1000 + 0.5) / 1000);
    if (json_is_number(eta) && json_number_value(eta) < 0)
        json_object_set_new(ev, "eta", json_null());
    /* 15 significant digits: every double prints as its shortest decimal
     * that reads back the same at that precision. */
    s = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    if (s)
        printf("%s\n", s);
    free(s);
    fflush(stdout);
    json_decref(ev);
}
