/* volmig copy --qmp ADDR --drive NAME TARGET: pull mode.  The copy of a
 * running VM's drive is a bitmap-mode migration with switchover none (QEMU
 * exports the drive, volmig copies it and converges on dirty bitmaps, the
 * guest pauses for the last pass), so this only translates the command
 * line and runs `volmig migrate`. */
#include "cli/cli.h"

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

/* A TARGET without a scheme is a path; volmig migrate wants file:PATH. */
static bool has_scheme(const char *s)
{
    const char *p = s;

    while ((*p >= 'a' && *p <= 'z') || *p == '+')
        p++;
    return p > s && *p == ':' && (!strncmp(s, "nbd", 3) || !strncmp(s, "file:", 5));
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
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    const char *qmp = NULL, *drive = NULL;
    char *margv[32], volume[8192];
    int margc = 0, c, rc;

    margv[margc++] = "copy";
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'q': qmp = optarg; break;
        case 'd': drive = optarg; break;
        case 'o': margv[margc++] = "--output"; margv[margc++] = optarg; break;
        case 'X': margv[margc++] = "--tls-creds"; margv[margc++] = optarg; break;
        case 'P': margv[margc++] = "--tls-psk"; margv[margc++] = optarg; break;
        case 'p': margv[margc++] = "--progress-interval"; margv[margc++] = optarg; break;
        case 'S': margv[margc++] = "--speed"; margv[margc++] = optarg; break;
        case 'h':
            printf("usage: volmig copy --qmp ADDR --drive NAME TARGET [--output text|json]\n"
                   "                   [--tls-creds DIR | --tls-psk FILE] [--speed BYTES]\n"
                   "\n"
                   "Pull mode: copies drive NAME of the running QEMU at ADDR (unix:PATH or\n"
                   "libvirt:DOMAIN) onto TARGET (a path, file:PATH or an NBD URI) while the\n"
                   "guest runs.  It is `volmig migrate --mode bitmap --switchover none`: QEMU\n"
                   "exports the drive read-only, volmig copies it and then what dirty bitmaps\n"
                   "mark, and the guest pauses for the last pass (the pause is reported).\n"
                   "Exit status: 0 done, 1 failed, 2 bad usage, 3 cancelled.\n");
            return EXIT_DONE;
        default:
            return cli_usage("copy", "'%s' does not go with --qmp/--drive (pull mode takes --output, "
                                     "--tls-creds, --tls-psk, --speed and --progress-interval)",
                             argv[optind - 1]);
        }
    }
    if (!qmp || !drive)
        return cli_usage("copy", "pull mode needs both --qmp ADDR and --drive NAME");
    if (argc - optind != 1)
        return cli_usage("copy", "pull mode takes one TARGET (the source is the drive), got %d",
                         argc - optind);
    if (cli_check_qmp("copy", "--qmp", qmp))
        return EXIT_USAGE;
    snprintf(volume, sizeof volume, "%s=%s%s", drive, has_scheme(argv[optind]) ? "" : "file:",
             argv[optind]);
    margv[margc++] = "--qmp";
    margv[margc++] = (char *)qmp;
    margv[margc++] = "--volume";
    margv[margc++] = volume;
    margv[margc++] = "--mode";
    margv[margc++] = "bitmap";
    margv[margc++] = "--switchover";
    margv[margc++] = "none";
    margv[margc] = NULL;
    opterr = 1;
    rc = cmd_migrate(margc, margv);
    return rc;
}
