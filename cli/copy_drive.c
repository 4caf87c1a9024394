/* volmig copy --qmp ADDR --drive NAME TARGET: pull mode.  The copy of a
 * running VM's drive is a bitmap-mode migration with switchover none (QEMU
 * exports the drive, volmig copies it and converges on dirty bitmaps, the
 * guest pauses for the last pass), so this fills that migration's config
 * and runs it with migrate's display. */
#include "cli/cli.h"
#include "common/error.h"
#include "engine/migrate.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool copy_names_drive(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--qmp") || !strncmp(argv[i], "--qmp=", 6) ||
            !strcmp(argv[i], "--drive") || !strncmp(argv[i], "--drive=", 8))
            return true;
    return false;
}

/* A TARGET without a scheme is a path; the migration wants file:PATH. */
static bool has_scheme(const char *s)
{
    const char *p = s;

    while ((*p >= 'a' && *p <= 'z') || *p == '+')
        p++;
    return p > s && *p == ':' && (!strncmp(s, "nbd", 3) || !strncmp(s, "file:", 5));
}

static void usage(void)
{
    printf("usage: volmig copy --qmp ADDR --drive NAME TARGET [--output text|json]\n"
           "                   [--tls-creds DIR | --tls-psk FILE] [--speed BYTES]\n"
           "                   [--latency-budget auto|off|Nx|DURATION] [--nbd-socket PATH]\n"
           "\n"
           "Pull mode: copies drive NAME of the running QEMU at ADDR (unix:PATH or\n"
           "libvirt:DOMAIN) onto TARGET (a path, file:PATH or an NBD URI) while the\n"
           "guest runs.  It is `volmig migrate --mode bitmap --switchover none`: QEMU\n"
           "exports the drive read-only, volmig copies it and then what dirty bitmaps\n"
           "mark, and the guest pauses for the last pass (the pause is reported).\n"
           "While it copies it keeps the guest's p99 write latency within\n"
           "--latency-budget (default auto: twice the p99 before the copy; off: full\n"
           "speed), as volmig migrate does.\n"
           "Exit status: 0 done, 1 failed, 2 bad usage, 3 cancelled.\n");
}

/* One option's value into cfg; false (after the message) when it is bad.
 * The messages are volmig migrate's for the same options. */
static bool set_option(struct mig_config *cfg, int c, const char *arg, bool *json)
{
    long long n;
    char *end;

    switch (c) {
    case 'q': cfg->qmp = arg; return true;
    case 'X': cfg->tls_creds = arg; return true;
    case 'P': cfg->tls_psk = arg; return true;
    case 'o':
        if (strcmp(arg, "json") && strcmp(arg, "text")) {
            cli_usage("copy", "--output '%s': use text or json", arg);
            return false;
        }
        *json = !strcmp(arg, "json");
        return true;
    case 'p':
        n = strtoll(arg, &end, 10);
        if (!*arg || *end || n < 50 || n > 60000) {
            cli_usage("copy", "--progress-interval '%s': milliseconds from 50 to 60000", arg);
            return false;
        }
        cfg->progress_ms = (int)n;
        return true;
    case 'S':
        n = cli_parse_size(arg);
        if (n <= 0) {
            cli_usage("copy", "--speed '%s': bytes per second, more than 0 (K M G suffixes; "
                              "leave it out for no limit)", arg);
            return false;
        }
        cfg->speed = (uint64_t)n;
        return true;
    case 'L': {
        const char *why;

        if (lat_budget_parse(arg, &cfg->latency_budget, &why) < 0) {
            cli_usage("copy", "--latency-budget '%s': %s", arg, why);
            return false;
        }
        return true;
    }
    case 'N':
        if (!arg[0] || strlen(arg) > 107) {
            cli_usage("copy", "--nbd-socket '%s': a unix socket path of 1 to 107 bytes", arg);
            return false;
        }
        cfg->nbd_socket = arg;
        return true;
    }
    return false;
}

int cmd_copy_drive(int argc, char **argv)
{
    static const struct option opts[] = {
        { "qmp", required_argument, NULL, 'q' },
        { "drive", required_argument, NULL, 'd' },
        { "output", required_argument, NULL, 'o' },
        { "tls-creds", required_argument, NULL, 'X' },
        { "tls-psk", required_argument, NULL, 'P' },
        { "progress-interval", required_argument, NULL, 'p' },
        { "speed", required_argument, NULL, 'S' },
        { "latency-budget", required_argument, NULL, 'L' },
        { "nbd-socket", required_argument, NULL, 'N' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    static char target[8192];
    struct mig_volume vol = { 0 };
    struct mig_config cfg;
    bool json = false;
    int c;

    mig_config_defaults(&cfg);
    cfg.mode = MIG_MODE_BITMAP;
    cfg.switchover = MIG_SW_NONE;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': vol.drive = optarg; break;
        case 'h': usage(); return EXIT_DONE;
        case '?':
        case ':':
            return cli_usage("copy", "'%s' does not go with --qmp/--drive (pull mode takes --output, "
                                     "--tls-creds, --tls-psk, --speed, --progress-interval, "
                                     "--latency-budget and --nbd-socket)",
                             argv[optind - 1]);
        default:
            if (!set_option(&cfg, c, optarg, &json))
                return EXIT_USAGE;
        }
    }
    opterr = 1;
    if (!cfg.qmp || !vol.drive)
        return cli_usage("copy", "pull mode needs both --qmp ADDR and --drive NAME");
    if (argc - optind != 1)
        return cli_usage("copy", "pull mode takes one TARGET (the source is the drive), got %d",
                         argc - optind);
    if (cli_check_qmp("copy", "--qmp", cfg.qmp))
        return EXIT_USAGE;
    snprintf(target, sizeof target, "%s%s", has_scheme(argv[optind]) ? "" : "file:",
             argv[optind]);
    vol.target = target;
    if (target_uri_parse(vol.target, &vol.uri) < 0)
        return cli_usage("copy", "TARGET '%s': %s", argv[optind], cli_why());
    if (cfg.tls_creds && cfg.tls_psk)
        return cli_usage("copy", "--tls-creds and --tls-psk exclude each other");
    if (vol.uri.tls && !cfg.tls_creds && !cfg.tls_psk)
        return cli_usage("copy", "TARGET '%s': an nbds URI needs --tls-creds or --tls-psk", argv[optind]);
    cfg.vols = &vol;
    cfg.nvols = 1;
    return cli_migrate_run("copy", &cfg, json);
}
