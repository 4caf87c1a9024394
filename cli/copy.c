/* volmig copy: argument parsing and the progress display.  The copier is
 * engine/copy.c's. */
#include "cli/cli.h"
#include "engine/target_tls.h"
#include "engine/copy.h"
#include "common/error.h"
#include "engine/target_uri.h"

#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t cancel_flag;

static void on_signal(int sig)
{
    (void)sig;
    cancel_flag = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: volmig copy SOURCE TARGET [--connections N] [--requests N]\n"
        "                   [--request-size BYTES] [--output text|json] [--no-direct]\n"
        "                   [--tls-creds DIR | --tls-psk FILE] [--speed BYTES] [--force-share]\n"
        "       volmig copy --qmp ADDR --drive NAME TARGET   (pull mode: a running VM's\n"
        "                   drive, live; see volmig copy --qmp - --help)\n"
        "\n"
        "Copies a volume offline (nothing may write to the source meanwhile): a local\n"
        "file or block device (io_uring, O_DIRECT where possible) or an NBD export\n"
        "(nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH; nbds:// and\n"
        "nbds+unix:// for TLS), on either side.\n"
        "Holes are not read, zeroes are written as zeroes, and what the target already\n"
        "reads as zeroes is not written at all.  The source is only ever read.  A\n"
        "TARGET path that does not exist is created as a sparse file; a target smaller\n"
        "than the source is refused before anything is written.\n"
        "Local volumes are locked as QEMU locks its images, for the whole copy: a\n"
        "TARGET that another process (a running VM, qemu-img) has open is refused, and\n"
        "so is a SOURCE that another process writes, as qemu-img convert refuses them.\n"
        "\n"
        "  --connections N      NBD connections per side when the server allows\n"
        "                       multi-conn (default 4, at most %d)\n"
        "  --requests N         requests in flight (default: as many as fill 16 MiB,\n"
        "                       at least 16; at most %d)\n"
        "  --request-size BYTES bytes per read and write (default 256K, 1M from a\n"
        "                       local SOURCE; at most 32M)\n"
        "  --output text|json   progress as text (a bar on a terminal) or JSON lines\n"
        "  --no-direct          do not use O_DIRECT on local volumes\n"
        "  --force-share, -U    read a local SOURCE even while another process writes it\n"
        "                       (as qemu-img's -U); the copy may then be inconsistent.\n"
        "                       The TARGET is never shared\n"
        "  --speed BYTES        read at most BYTES of data per second (suffixes K M G;\n"
        "                       default: no limit); zeroes and holes do not count\n"
        "  --tls-creds DIR      X.509 for nbds:// ends: DIR holds ca-cert.pem, and\n"
        "                       client-cert.pem/client-key.pem if the server asks\n"
        "                       (the layout of QEMU's tls-creds-x509)\n"
        "  --tls-psk FILE       a pre-shared key for nbds:// ends: FILE is keys.psk\n"
        "                       (USERNAME:HEXKEY lines; the first user is ours) or its\n"
        "                       directory\n"
        "\n"
        "SIGINT/SIGTERM stop the copy and say how far it got.\n"
        "Exit status: 0 done, 1 failed, 2 bad usage, 3 cancelled.\n",
        COPY_MAX_CONNECTIONS, COPY_MAX_REQUESTS);
}

struct display {
    bool json, tty;
    bool started;             /* the copy got as far as writing */
    double last_line;
};

static json_t *status_json(const char *event, const struct copy_status *s)
{
    return json_pack("{s:s, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f}", "event", event,
                     "t", s->t, "size", (json_int_t)s->size, "done", (json_int_t)s->done,
                     "contiguous", (json_int_t)s->contiguous, "data", (json_int_t)s->data,
                     "zeroed", (json_int_t)s->zeroed, "skipped", (json_int_t)s->skipped,
                     "read", (json_int_t)s->read, "rate", s->rate,
                     /* no rate yet and data left: the ETA is unknown (null), not 0 */
                     "eta", s->rate <= 0 && s->done < s->size ? -1.0 : s->eta);
}

static void print_json(json_t *o)
{
    if (o)
        cli_json_event(o);
}

static void show_progress(struct display *d, const struct copy_status *s)
{
    double pct = s->size ? 100.0 * (double)s->done / (double)s->size : 0;
    char a[32], b[32], r[32], etas[32] = "?";

    if (s->eta >= 0)
        snprintf(etas, sizeof etas, "%.0fs", s->eta);
    if (d->tty) {
        cli_bar((double)s->done, (double)s->size, s->rate, s->eta, NULL);
        return;
    }
    if (s->t - d->last_line < 2.0 && d->last_line > 0)
        return;
    d->last_line = s->t;
    printf("%7.1fs copying %5.1f%%  %s of %s, %s/s, ETA %s\n", s->t, pct,
           cli_human_bytes((double)s->done, a, sizeof a), cli_human_bytes((double)s->size, b, sizeof b),
           cli_human_bytes(s->rate, r, sizeof r), etas);
    fflush(stdout);
}

static void show(void *opaque, enum copy_event ev, const struct copy_status *s)
{
    struct display *d = opaque;
    char a[32], b[32], c[32];

    if (ev == COPY_EV_STARTED)
        d->started = true;
    if (ev == COPY_EV_STARTED && d->json) {
        json_t *o = status_json("started", s);

        json_object_set_new(o, "source", json_string(s->source_desc));
        json_object_set_new(o, "target", json_string(s->target_desc));
        json_object_set_new(o, "request_size", json_integer(s->request_size));
        json_object_set_new(o, "requests", json_integer(s->requests));
        print_json(o);
    } else if (ev == COPY_EV_STARTED) {
        printf("%7.1fs copying %s (%s) onto a %s target (%s), %d requests of %s\n", s->t,
               cli_human_bytes((double)s->size, a, sizeof a), s->source_desc,
               cli_human_bytes((double)s->target_size, b, sizeof b), s->target_desc, s->requests,
               cli_human_bytes(s->request_size, c, sizeof c));
        fflush(stdout);
    } else if (d->json) {
        print_json(status_json("progress", s));
    } else {
        show_progress(d, s);
    }
}

static void show_end(struct display *d, enum copy_result r, const struct copy_status *s)
{
    const char *ev = r == COPY_DONE ? "completed" : r == COPY_CANCELLED ? "cancelled" : "failed";
    char a[32], b[32], c[32], z[32], k[32], rt[32];

    /* The bar ends where the copy did: at 100% when it is done, whenever
     * the last progress event came. */
    if (d->tty && d->started)
        cli_bar(r == COPY_DONE ? (double)s->size : (double)s->done, (double)s->size,
                r == COPY_DONE && s->t > 0 ? (double)s->size / s->t : s->rate, r == COPY_DONE ? 0 : s->eta, NULL);
    cli_bar_end();
    if (d->json) {
        json_t *o = status_json(ev, s);

        if (r == COPY_FAILED)
            json_object_set_new(o, "error", json_string(err_msg()));
        print_json(o);
        return;
    }
    if (!d->started)   /* failed while opening: the error line says it all */
        return;
    cli_human_bytes((double)s->done, a, sizeof a);
    cli_human_bytes((double)s->size, b, sizeof b);
    cli_human_bytes((double)s->contiguous, c, sizeof c);
    if (r == COPY_DONE) {
        printf("%7.1fs done: %s in %.2f s (%s/s): %s data, %s written as zeroes, "
               "%s already zero\n", s->t, b, s->t,
               cli_human_bytes(s->t > 0 ? (double)s->size / s->t : 0, rt, sizeof rt),
               cli_human_bytes((double)s->data, k, sizeof k), cli_human_bytes((double)s->zeroed, z, sizeof z),
               cli_human_bytes((double)s->skipped, c, sizeof c));
    } else if (r == COPY_CANCELLED) {
        printf("%7.1fs %s after %s of %s: the target holds the source up to offset %llu (%s); "
               "the source is untouched\n", s->t, ev, a, b, (unsigned long long)s->contiguous, c);
    } else {
        /* A failure is said once, on stderr, with how far the copy got. */
        cli_error("copy", "%s; failed after %s of %s: the target holds the source up to offset "
                  "%llu (%s); the source is untouched", cli_why(), a, b,
                  (unsigned long long)s->contiguous, c);
    }
    fflush(stdout);
}

static int parse_count(const char *opt, const char *arg, int max, int *out)
{
    char *end;
    long n = strtol(arg, &end, 10);

    if (*end || end == arg || n < 1 || n > max) {
        cli_usage("copy", "%s '%s': a number from 1 to %d", opt, arg, max);
        return -1;
    }
    *out = (int)n;
    return 0;
}

int cmd_copy(int argc, char **argv)
{
    static const struct option opts[] = {
        { "connections", required_argument, NULL, 'c' },
        { "requests", required_argument, NULL, 'r' },
        { "request-size", required_argument, NULL, 's' },
        { "output", required_argument, NULL, 'o' },
        { "no-direct", no_argument, NULL, 'D' },
        { "force-share", no_argument, NULL, 'U' },
        { "progress-interval", required_argument, NULL, 'p' },
        { "speed", required_argument, NULL, 'S' },
        { "tls-creds", required_argument, NULL, 'X' },
        { "tls-psk", required_argument, NULL, 'P' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    struct display d = { 0 };
    struct copy_config cfg = { .connections = 4,
                               .progress_ms = 500, .cancel = &cancel_flag, .emit = show,
                               .opaque = &d };
    struct copy_status st = { 0 };
    struct client_tls tls;
    const char *tls_creds = NULL, *tls_psk = NULL;
    bool any_tls = false;
    struct sigaction sa = { .sa_handler = on_signal };
    enum copy_result r;
    long long n;
    int c, ms;

    if (copy_names_drive(argc, argv))
        return cmd_copy_drive(argc, argv);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:Uh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (parse_count("--connections", optarg, COPY_MAX_CONNECTIONS, &cfg.connections) < 0)
                return EXIT_USAGE;
            break;
        case 'r':
            if (parse_count("--requests", optarg, COPY_MAX_REQUESTS, &cfg.requests) < 0)
                return EXIT_USAGE;
            break;
        case 's':
            n = cli_parse_size(optarg);
            if (n < 4096 || n > COPY_MAX_REQUEST || n % 4096)
                return cli_usage("copy", "--request-size '%s': a multiple of 4K from 4K to 32M", optarg);
            cfg.request_size = (uint32_t)n;
            break;
        case 'p':
            if (parse_count("--progress-interval", optarg, 60000, &ms) < 0)
                return EXIT_USAGE;
            cfg.progress_ms = ms;
            break;
        case 'o':
            if (!strcmp(optarg, "json")) {
                d.json = true;
            } else if (strcmp(optarg, "text")) {
                return cli_usage("copy", "--output '%s': use text or json", optarg);
            }
            break;
        case 'D': cfg.no_direct = true; break;
        case 'U': cfg.force_share = true; break;
        case 'S':
            n = cli_parse_size(optarg);
            if (n < 1)
                return cli_usage("copy", "--speed '%s': bytes per second, more than 0 (K M G "
                                         "suffixes; leave it out for no limit)", optarg);
            cfg.max_rate = (uint64_t)n;
            break;
        case 'X': tls_creds = optarg; break;
        case 'P': tls_psk = optarg; break;
        case 'h': usage(stdout); return EXIT_DONE;
        default: return cli_bad_option("copy", argv, c);
        }
    }
    if (argc - optind < 2)
        return cli_usage("copy", "SOURCE and TARGET are required");
    if (argc - optind > 2)
        return cli_usage("copy", "unexpected argument '%s'", argv[optind + 2]);
    cfg.source = argv[optind];
    cfg.target = argv[optind + 1];
    for (int i = 0; i < 2; i++) {
        struct target_uri u;
        enum copy_spec_kind kind;
        const char *path;

        if (copy_spec_kind(argv[optind + i], &kind, &path, &u) < 0)
            return cli_usage("copy", "%s '%s': %s", i ? "TARGET" : "SOURCE", argv[optind + i], cli_why());
        any_tls |= u.tls && kind == COPY_SPEC_NBD;
    }
    if (tls_creds && tls_psk)
        return cli_usage("copy", "--tls-creds and --tls-psk exclude each other");
    if ((tls_creds || tls_psk) && !any_tls)
        return cli_usage("copy", "%s given, but neither SOURCE nor TARGET is an nbds:// or "
                                 "nbds+unix:// URI", tls_creds ? "--tls-creds" : "--tls-psk");
    if (any_tls && !tls_creds && !tls_psk)
        return cli_usage("copy", "an nbds URI needs --tls-creds or --tls-psk");
    if (any_tls) {
        if (client_tls_init(&tls, tls_creds, tls_psk, NULL) < 0)
            return cli_usage("copy", "%s '%s': %s", tls_creds ? "--tls-creds" : "--tls-psk",
                             tls_creds ? tls_creds : tls_psk, cli_why());
        cfg.tls = &tls;
    }
    if ((uint64_t)cfg.requests * cfg.request_size > COPY_MAX_BUFFERS)
        return cli_usage("copy", "--requests times --request-size is more than 1 GiB of buffers");
    d.tty = !d.json && isatty(STDERR_FILENO) && isatty(STDOUT_FILENO);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    r = copy_run(&cfg, &st);
    show_end(&d, r, &st);
    if (r == COPY_FAILED) {
        if (!d.started || d.json)    /* else show_end said it */
            cli_error("copy", "%s", cli_why());
        return EXIT_FAILED;
    }
    return r == COPY_CANCELLED ? EXIT_CANCELLED : EXIT_DONE;
}
