/* volmig serve: the destination end of a migration, an NBD export of a
 * volume.  Argument parsing only; the server lives in nbd/. */
#include "cli/cli.h"
#include "common/error.h"
#include "nbd/nbd.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: volmig serve --target PATH [--size BYTES] [--listen HOST:PORT | --listen unix:PATH]\n"
        "                    [--export NAME] [--readonly [--force-share]] [--once] [--no-direct]\n"
        "                    [--verbose]\n"
        "                    [--tls-creds DIR | --tls-psk FILE]\n"
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
        "  --force-share, -U with --readonly: serve a volume that another process (a running\n"
        "                    VM) holds for writing; what clients read may be inconsistent.\n"
        "                    Without it such a volume is refused, as qemu-img refuses it\n"
        "  --once            exit after the first client disconnects\n"
        "  --no-direct       do not use O_DIRECT\n"
        "  --verbose, -v     log every connection\n"
        "  --tls-creds DIR   require TLS with X.509 certificates, in the layout of QEMU's\n"
        "                    tls-creds-x509: DIR/server-cert.pem and DIR/server-key.pem;\n"
        "                    if DIR/ca-cert.pem exists, clients must also present a\n"
        "                    certificate signed by that CA (without it, any client that\n"
        "                    completes TLS may connect: encryption, not access control)\n"
        "  --tls-psk FILE    require TLS with pre-shared keys: FILE holds USERNAME:HEXKEY\n"
        "                    lines (psktool's format; QEMU's keys.psk); only clients that\n"
        "                    know a key may connect\n"
        "                    With either, clients must send NBD_OPT_STARTTLS first; before\n"
        "                    TLS nothing but STARTTLS and ABORT is answered\n"
        "\n"
        "The target is locked as QEMU locks its images, for as long as it is served: a\n"
        "volume a running VM (or qemu-img) holds is refused, and QEMU cannot open the\n"
        "target while volmig serves it.\n"
        "\n"
        "SIGTERM or SIGINT: stop accepting, finish requests in flight, flush, exit 0.\n");
}

static void serve_log(const char *fmt, ...)
{
    va_list ap;

    /* TLS proxy threads log too: one line stays one line. */
    flockfile(stderr);
    fputs("volmig serve: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    funlockfile(stderr);
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        { "target", required_argument, NULL, 't' },
        { "size", required_argument, NULL, 's' },
        { "listen", required_argument, NULL, 'l' },
        { "export", required_argument, NULL, 'e' },
        { "readonly", no_argument, NULL, 'r' },
        { "force-share", no_argument, NULL, 'U' },
        { "once", no_argument, NULL, '1' },
        { "no-direct", no_argument, NULL, 'D' },
        { "verbose", no_argument, NULL, 'v' },
        { "tls-creds", required_argument, NULL, 'X' },
        { "tls-psk", required_argument, NULL, 'P' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    struct nbd_serve_config cfg = { .export_name = "", .direct = true,
                                    .listen = "127.0.0.1:10809" };
    long long size;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "t:s:l:e:rUvh", opts, NULL)) != -1) {
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
        case 'U': cfg.force_share = true; break;
        case '1': cfg.once = true; break;
        case 'D': cfg.direct = false; break;
        case 'v': cfg.verbose++; break;
        case 'X': cfg.tls_creds = optarg; break;
        case 'P': cfg.tls_psk = optarg; break;
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
    if (cfg.force_share && !cfg.readonly) {
        cli_error("serve", "--force-share is for --readonly exports only: a volume another "
                  "process holds is never written");
        return EXIT_USAGE;
    }
    if (cfg.tls_creds && cfg.tls_psk) {
        cli_error("serve", "--tls-creds and --tls-psk exclude each other");
        return EXIT_USAGE;
    }
    if (nbd_serve(&cfg, serve_log) < 0) {
        cli_error("serve", "%s", err_msg());
        return EXIT_FAILED;
    }
    return EXIT_DONE;
}
