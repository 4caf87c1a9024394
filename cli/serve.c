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

/* The form of --listen, checked before anything starts: unix:PATH (1 to
 * 107 bytes, what sun_path holds), or HOST:PORT / [IPV6]:PORT with a
 * decimal port from 0 to 65535 (a port the kernel would wrap, or a service
 * name, is a usage error rather than a surprise). */
static int check_listen(const char *l)
{
    const char *colon;

    if (!strncmp(l, "unix:", 5)) {
        if (!l[5] || strlen(l + 5) > 107)
            return cli_usage("serve", "--listen '%s': unix:PATH needs a socket path of 1 to 107 bytes", l);
        return 0;
    }
    colon = strrchr(l, ':');
    if (!colon)
        return cli_usage("serve", "--listen '%s': expected HOST:PORT, [IPV6]:PORT or unix:PATH", l);
    if (cli_parse_port(colon + 1, 0) < 0)
        return cli_usage("serve", "--listen '%s': the port must be a number from 0 to 65535", l);
    if (colon == l)
        return cli_usage("serve", "--listen '%s': HOST:PORT needs a host (0.0.0.0 for every "
                                  "interface, 127.0.0.1 for this host only)", l);
    if (l[0] == '[' && colon[-1] != ']')
        return cli_usage("serve", "--listen '%s': expected [IPV6]:PORT", l);
    return 0;
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
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":t:s:l:e:rUvh", opts, NULL)) != -1) {
        switch (c) {
        case 't': cfg.target = optarg; break;
        case 's':
            size = cli_parse_size(optarg);
            if (size <= 0)
                return cli_usage("serve", "--size '%s': a positive size in bytes (K M G T suffixes)",
                                 optarg);
            cfg.size = (uint64_t)size;
            break;
        case 'l':
            if (check_listen(optarg))
                return EXIT_USAGE;
            cfg.listen = optarg;
            break;
        case 'e':
            if (strlen(optarg) > 4096)
                return cli_usage("serve", "--export '%.32s...': longer than 4096 bytes", optarg);
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
        default: return cli_bad_option("serve", argv, c);
        }
    }
    if (optind < argc)
        return cli_usage("serve", "unexpected argument '%s'", argv[optind]);
    if (!cfg.target)
        return cli_usage("serve", "--target is required");
    if (!strcmp(cfg.target, "null:") && !cfg.size)
        return cli_usage("serve", "--target '%s' needs --size (a null target has no size of its own)",
                         cfg.target);
    if (cfg.force_share && !cfg.readonly)
        return cli_usage("serve", "--force-share is for --readonly exports only: a volume another "
                                  "process holds is never written");
    if (cfg.tls_creds && cfg.tls_psk)
        return cli_usage("serve", "--tls-creds and --tls-psk exclude each other");
    if (nbd_serve(&cfg, serve_log) < 0) {
        cli_error("serve", "%s", cli_why());
        return EXIT_FAILED;
    }
    return EXIT_DONE;
}
