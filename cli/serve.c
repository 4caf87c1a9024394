/* volmig serve: the destination end of a migration, an NBD export of a
 * volume.  Argument parsing only; the server lives in nbd/. */
#include "cli/cli.h"
#include "engine/error.h"
#include "nbd/nbd.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: volmig serve --target PATH [--size BYTES] [--listen HOST:PORT | --listen unix:PATH]\n"
        "                    [--export NAME] [--readonly] [--once] [--no-direct] [--verbose]\n"
        "\n"
        "Exports a destination volume over NBD, for QEMU's mirror (or any NBD client) to\n"
        "write into.  I/O goes through io_uring, with O_DIRECT where the target allows it.\n"
        "\n"
        "  --target PATH     a regular file or block device (\"null:\" discards writes, for\n"
        "                    benchmarks; it needs --size)\n"
        "  --size BYTES      size to advertise (default: the target's size); may be smaller\n"
        "                    than the target, never larger.  Suffixes K M G T (powers of 1024)\n"
        "  --listen ADDR     HOST:PORT, [IPV6]:PORT or unix:PATH (default 127.0.0.1:10809);\n"
        "                    port 0 picks a free port, printed when listening\n"
        "  --export NAME     export name clients must ask for (default: \"\")\n"
        "  --readonly        refuse writes\n"
        "  --once            exit after the first client disconnects\n"
        "  --no-direct       do not use O_DIRECT\n"
        "  --verbose, -v     log every connection\n"
        "\n"
        "SIGTERM or SIGINT: stop accepting, finish requests in flight, flush, exit 0.\n");
}

static void serve_log(const char *fmt, ...)
{
    va_list ap;

    fputs("volmig serve: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        { "target", required_argument, NULL, 't' },
        { "size", required_argument, NULL, 's' },
        { "listen", required_argument, NULL, 'l' },
        { "export", required_argument, NULL, 'e' },
        { "readonly", no_argument, NULL, 'r' },
        { "once", no_argument, NULL, '1' },
        { "no-direct", no_argument, NULL, 'D' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    struct nbd_serve_config cfg = { .export_name = "", .direct = true,
                                    .listen = "127.0.0.1:10809" };
    long long size;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "t:s:l:e:rvh", opts, NULL)) != -1) {
        switch (c) {
        case 't': cfg.target = optarg; break;
        case 's':
            size = cli_parse_size(optarg);
            if (size <= 0) {
                cli_error("serve", "--size '%s' is not a positive size in bytes", optarg);
                return EXIT_USAGE;
            }
            cfg.size = (uint64_t)size;
            break;
        case 'l': cfg.listen = optarg; break;
        case 'e':
            if (strlen(optarg) > 4096) {
                cli_error("serve", "--export name is longer than 4096 bytes");
                return EXIT_USAGE;
            }
            cfg.export_name = optarg;
            break;
        case 'r': cfg.readonly = true; break;
        case '1': cfg.once = true; break;
        case 'D': cfg.direct = false; break;
        case 'v': cfg.verbose++; break;
        case 'h': usage(stdout); return EXIT_DONE;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("serve", "unexpected argument '%s'", argv[optind]);
        return EXIT_USAGE;
    }
    if (!cfg.target) {
        cli_error("serve", "--target is required");
        usage(stderr);
        return EXIT_USAGE;
    }
    if (nbd_serve(&cfg, serve_log) < 0) {
        cli_error("serve", "%s", err_msg());
        return EXIT_FAILED;
    }
    return EXIT_DONE;
}
