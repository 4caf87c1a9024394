/* Progress display shared by the subcommands that move data. */
#include "cli/cli.h"

#include <stdbool.h>
#include <stdio.h>

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

void cli_bar(double done, double total, double rate, double eta)
{
    double pct = total > 0 ? 100.0 * done / total : 0;
    int filled = (int)(pct / 5);
    char a[32], b[32], r[32], etas[32] = "?";

    if (eta >= 0)
        snprintf(etas, sizeof etas, "%.0fs", eta);
    fprintf(stderr, "\r[%.*s%*s] %5.1f%% %s / %s  %s/s  ETA %s   ", filled,
            "####################", 20 - filled, "", pct, cli_human_bytes(done, a, sizeof a),
            cli_human_bytes(total, b, sizeof b), cli_human_bytes(rate, r, sizeof r), etas);
    bar_shown = true;
}

void cli_bar_end(void)
{
    if (bar_shown) {
        fputc('\n', stderr);
        bar_shown = false;
    }
}
