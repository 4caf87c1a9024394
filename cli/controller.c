/* volmig controller: argument parsing; the loop is k8s/controller.c. */
#include "cli/cli.h"
#include "common/error.h"
#include "k8s/controller.h"

#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t stop_flag;

/* A whole number of seconds, 1 to a day; -1 for anything else ("5x"). */
static int cli_parse_seconds(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);

    return end != s && !*end && v > 0 && v <= 86400 ? (int)v : -1;
}

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void ctl_log(const char *fmt, ...)
{
    char when[32];
    time_t now = time(NULL);
    va_list ap;

    strftime(when, sizeof when, "%H:%M:%S", localtime(&now));
    printf("%s ", when);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: volmig controller --store DIR [--create-store] [--once [--timeout SECONDS]]\n"
        "\n"
        "Watches a directory of manifests (written by 'volmig apply'), runs the\n"
        "volume-migration reconcile step on every change, writes status back, and runs\n"
        "each migration object through 'volmig migrate'.\n"
        "\n"
        "  --store DIR        the store directory; it must exist (volmig apply makes it)\n"
        "  --create-store     start with an empty store if DIR does not exist\n"
        "  --once             stop once nothing is left to do (no change, no migration);\n"
        "                     exit 1 if a migration failed on the way\n"
        "  --timeout SECONDS  with --once: fail if the store is not at rest by then\n"
        "\n"
        "A VMI names its QEMU with the annotation volmig.io/qmp (unix:PATH or\n"
        "libvirt:DOMAIN); a claim's storage is its PersistentVolume's hostPath or local\n"
        "path.  SIGINT/SIGTERM: running migrations are cancelled, then it exits.\n");
}

/* A usage error: the line naming the flag is printed already; no help
 * text to scroll it away. */
static int usage_error(void)
{
    fprintf(stderr, "see volmig controller --help\n");
    return EXIT_USAGE;
}

int cmd_controller(int argc, char **argv)
{
    static const struct option opts[] = {
        { "store", required_argument, NULL, 's' },
        { "once", no_argument, NULL, '1' },
        { "timeout", required_argument, NULL, 't' },
        { "create-store", no_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    static char exe[PATH_MAX];
    struct k8s_controller_config cfg = { .ops = &k8s_engine_volmig, .stop = &stop_flag,
                                         .log = ctl_log };
    struct sigaction sa = { .sa_handler = on_signal };
    ssize_t n;
    int c, failed = 0;
    bool create = false;
    struct stat st;

    optind = 1;
    while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
        switch (c) {
        case 's': cfg.store = optarg; break;
        case '1': cfg.once = true; break;
        case 'c': create = true; break;
        case 't':
            cfg.timeout_s = cli_parse_seconds(optarg);
            if (cfg.timeout_s <= 0) {
                cli_error("controller", "--timeout '%s': a positive number of seconds", optarg);
                return usage_error();
            }
            break;
        case 'h': usage(stdout); return EXIT_DONE;
        default: return usage_error();
        }
    }
    if (!cfg.store || optind < argc) {
        cli_error("controller", optind < argc ? "unexpected argument" : "--store is required");
        return usage_error();
    }
    if (cfg.timeout_s && !cfg.once) {
        cli_error("controller", "--timeout %d: only with --once (the controller otherwise runs "
                  "until SIGINT or SIGTERM)", cfg.timeout_s);
        return usage_error();
    }
    if (!create && stat(cfg.store, &st) < 0) {
        cli_error("controller", "store %s: %s (volmig apply creates it; --create-store starts "
                  "with an empty one)", cfg.store, strerror(errno));
        return EXIT_FAILED;
    }
    cfg.failed = &failed;
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        cli_error("controller", "cannot find the volmig executable");
        return EXIT_FAILED;
    }
    exe[n] = '\0';
    cfg.engine = exe;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (k8s_controller_run(&cfg) < 0) {
        cli_error("controller", "%s", err_msg());
        return EXIT_FAILED;
    }
    if (stop_flag)
        return EXIT_CANCELLED;
    if (cfg.once && failed) {
        cli_error("controller", "%d migration%s failed (see the migration objects' status)",
                  failed, failed == 1 ? "" : "s");
        return EXIT_FAILED;
    }
    return EXIT_DONE;
}
