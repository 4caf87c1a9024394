/* volmig migrate: argument parsing and the progress display.  The work is
 * engine/migrate_*.c's. */
#include "cli/cli.h"
#include "common/error.h"
#include "engine/migrate.h"
#include "engine/migrate_libvirt.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_VOLUMES 64

static volatile sig_atomic_t cancel_flag;

/* The name errors go under: "migrate", or "copy" when volmig copy's pull
 * mode runs this command for the user. */
static const char *me = "migrate";

static void on_signal(int sig)
{
    (void)sig;
    cancel_flag = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: volmig migrate --qmp unix:PATH|libvirt:DOMAIN[?uri=URI]\n"
        "                      --volume DRIVE=TARGET [--volume DRIVE=TARGET ...]\n"
        "                      [--switchover pivot|none|migrate:URI]\n"
        "                      [--copy-mode background|write-blocking] [--retries N]\n"
        "                      [--backoff SECONDS] [--speed BYTES] [--buf-size BYTES]\n"
        "                      [--granularity BYTES] [--output text|json]\n"
        "                      [--progress-interval MS]\n"
        "                      [--tls-creds DIR | --tls-psk FILE] [--tls-hostname NAME]\n"
        "                      [--mode mirror|bitmap] [--converge-below BYTES]\n"
        "                      [--nbd-socket PATH] [--state-dir DIR]\n"
        "                      [--latency-budget auto|off|Nx|DURATION]\n"
        "\n"
        "Moves the disks of a running QEMU to new volumes while the guest runs.\n"
        "\n"
        "  --qmp ADDR          QEMU's monitor: unix:PATH, or libvirt:DOMAIN for a QEMU\n"
        "                      that libvirt owns\n"
        "  --volume D=TARGET   DRIVE: a block node name, drive id or device id.  TARGET:\n"
        "                      nbd://HOST:PORT/EXPORT, nbd+unix:///EXPORT?socket=PATH\n"
        "                      (nbds:// and nbds+unix:// with TLS) or file:PATH; at\n"
        "                      least as large as the drive (a file: target must exist\n"
        "                      in mirror mode; bitmap mode creates it).  Repeat for\n"
        "                      more volumes: all of them are one migration\n"
        "  --switchover MODE   pivot: the VM moves onto the targets (same host);\n"
        "                      migrate:URI: memory migration to a QEMU started with\n"
        "                      -incoming URI, volumes finished inside its pause (under\n"
        "                      libvirt, URI is the destination libvirtd's, as\n"
        "                      qemu+tcp://HOST/system, with ?migrate_uri=tcp://IP:PORT\n"
        "                      for the migration stream and, for volmig's data path,\n"
        "                      ?serve.DRIVE=NBD_URI of a volmig serve per volume);\n"
        "                      none (default): the targets become consistent copies and\n"
        "                      the VM stays on its volumes\n"
        "  --copy-mode MODE    background (default) or write-blocking: guest writes also\n"
        "                      go to the target before they complete, so the copy always\n"
        "                      converges, at the price of write latency\n"
        "  --retries N         attempts after a failed one (default 3)\n"
        "  --backoff SECONDS   delay before the first retry, doubling (default 20)\n"
        "  --buf-size BYTES    mirror buffer (default 64M)\n"
        "  --granularity BYTES mirror dirty-tracking granularity, a power of two from\n"
        "                      512 to 64M (default: QEMU's)\n"
        "  --speed BYTES       bandwidth limit per volume, bytes per second (default:\n"
        "                      none); in mirror mode the buffer then defaults to one\n"
        "                      second of it.  Zeroes of sparse regions do not count\n"
        "                      against the limit\n"
        "  --latency-budget B  the guest's p99 write latency the copy keeps under, by\n"
        "                      lowering its rate (both modes): auto (default) is twice\n"
        "                      the p99 measured for 0.5 s before the copy (at least\n"
        "                      1 ms), Nx is N times it, a duration (500us, 4ms, 0.2s)\n"
        "                      is absolute, off copies at full speed.  A copy the\n"
        "                      guest outruns speeds up again to converge (a\n"
        "                      'converging' event), and --speed stays a hard ceiling.\n"
        "                      The latency is read from the guest device's histogram,\n"
        "                      or, for a drive without a device, from small probe reads\n"
        "                      through QEMU's NBD server (see --nbd-socket).  Under\n"
        "                      libvirt: the mean write latency from the disk's block\n"
        "                      statistics, and the block copies' bandwidth (not libvirt's\n"
        "                      storage migration, which copies inside the migration)\n"
        "  --output text|json  progress as text (a bar on a terminal) or JSON lines\n"
        "  --progress-interval MS\n"
        "                      a progress event every MS milliseconds (default 500;\n"
        "                      50 to 60000); text on a pipe prints one every 2 s\n"
        "  --mode MODE         mirror (default): QEMU's mirror job pushes the data;\n"
        "                      bitmap: volmig reads QEMU's NBD export of the drive and\n"
        "                      copies in passes that converge on dirty bitmaps, with the\n"
        "                      guest paused for the last one (switchover none or migrate:)\n"
        "  --converge-below B  bitmap: pause for the last pass once at most B bytes are\n"
        "                      dirty (default: what 100 ms of copying moves; 0: only when\n"
        "                      nothing is, or the dirty set stops shrinking)\n"
        "  --nbd-socket PATH   QEMU already runs an NBD server (libvirt's, say)\n"
        "                      listening on the unix socket PATH; volmig adds its exports\n"
        "                      to it (bitmap mode's copy source, the latency probe) and\n"
        "                      removes only those, and never starts or stops the server.\n"
        "                      Without it volmig starts QEMU's one NBD server itself, on\n"
        "                      a private socket, when it needs one\n"
        "  --state-dir DIR     bitmap: where a failed run keeps what a later run with the\n"
        "                      same drive and destination resumes from (default:\n"
        "                      $VOLMIG_STATE_DIR, $XDG_RUNTIME_DIR/volmig, /tmp/volmig-UID)\n"
        "  --tls-creds DIR     NBD targets are reached over TLS with X.509 (by QEMU in\n"
        "                      mirror mode, by volmig in bitmap mode): DIR holds\n"
        "                      ca-cert.pem (the CA of the server's certificate) and, when\n"
        "                      the server checks clients, client-cert.pem and\n"
        "                      client-key.pem (QEMU's tls-creds-x509 layout)\n"
        "  --tls-psk FILE      NBD targets are reached over TLS with a pre-shared key:\n"
        "                      FILE is a keys.psk (USERNAME:HEXKEY lines; the first is\n"
        "                      used) or the directory holding it\n"
        "  --tls-hostname NAME the name in the server's certificate, when it is not the\n"
        "                      host in the target URI (mirror mode only)\n"
        "\n"
        "SIGINT/SIGTERM cancel: jobs and nodes are removed and the VM keeps running on\n"
        "its volumes.  Exit status: 0 done, 1 failed, 2 bad usage, 3 cancelled.\n");
}

struct display {
    bool json;
    bool tty;
    double last_line;
    double done, total;       /* the last progress, for the bar at `ready` */
    /* A text-mode `failed` waits for the next event: a retry follows it,
     * or the end, where the error line on stderr says it once. */
    char failed[1024];
};

/* The figures per volume after the bar: "disk0 45% 560.0 MiB left". */
static void volume_figures(json_t *ev, char *buf, size_t len)
{
    size_t i, n = 0;
    json_t *v;

    buf[0] = '\0';
    json_array_foreach(json_object_get(ev, "volumes"), i, v) {
        double vd = (double)json_integer_value(json_object_get(v, "done"));
        double vt = (double)json_integer_value(json_object_get(v, "total"));
        char l[32];

        if (n >= len)
            break;
        n += snprintf(buf + n, len - n, "%s%s %.0f%% %s left", i ? ", " : "",
                      json_string_value(json_object_get(v, "drive")), vt > 0 ? 100.0 * vd / vt : 0,
                      cli_human_bytes(vt - vd, l, sizeof l));
    }
}

/* The pending `failed` line, when a retry follows it. */
static void flush_failed(struct display *d)
{
    if (d->failed[0])
        printf("%s\n", d->failed);
    d->failed[0] = '\0';
}

static void show_progress(struct display *d, json_t *ev)
{
    double t = json_real_value(json_object_get(ev, "t"));
    double done = (double)json_integer_value(json_object_get(ev, "done"));
    double total = (double)json_integer_value(json_object_get(ev, "total"));
    double rate = json_real_value(json_object_get(ev, "rate"));
    double eta = json_real_value(json_object_get(ev, "eta"));
    double pct = total > 0 ? 100.0 * done / total : 0;
    char a[32], b[32], r[32], l[32], etas[32] = "?";

    if (eta >= 0)
        snprintf(etas, sizeof etas, "%.0fs", eta);
    d->done = done;
    d->total = total;
    if (d->tty) {
        char vols[512];

        volume_figures(ev, vols, sizeof vols);
        cli_bar(done, total, rate, eta, json_array_size(json_object_get(ev, "volumes")) ? vols : NULL);
        return;
    }
    if (t - d->last_line < 2.0 && d->last_line > 0)
        return;
    d->last_line = t;
    printf("%7.1fs copying %5.1f%%  %s of %s, %s left, %s/s, ETA %s\n", t, pct,
           cli_human_bytes(done, a, sizeof a), cli_human_bytes(total, b, sizeof b), cli_human_bytes(total - done, l, sizeof l),
           cli_human_bytes(rate, r, sizeof r), etas);
    {
        size_t i;
        json_t *v;

        json_array_foreach(json_object_get(ev, "volumes"), i, v)
            printf("          %s: %s of %s (%s)\n",
                   json_string_value(json_object_get(v, "drive")),
                   cli_human_bytes((double)json_integer_value(json_object_get(v, "done")), a, sizeof a),
                   cli_human_bytes((double)json_integer_value(json_object_get(v, "total")), b, sizeof b),
                   json_string_value(json_object_get(v, "status")));
    }
}

static void show(void *opaque, json_t *ev)
{
    struct display *d = opaque;
    const char *name = json_string_value(json_object_get(ev, "event"));
    double t = json_real_value(json_object_get(ev, "t"));

    if (d->json) {
        cli_json_event(ev);
        return;
    }
    if (strcmp(name, "failed"))
        flush_failed(d);
    if (!strcmp(name, "progress")) {
        show_progress(d, ev);
    } else if (!strcmp(name, "latency")) {
        /* One a second: the JSON output and the bench plot them; as text
         * the progress says enough, and the converging event says when the
         * latency gives way. */
    } else {
        /* The bar ends full when the copy is: the mirrors are in sync. */
        if (d->tty && !strcmp(name, "ready") && d->total > 0)
            cli_bar(d->total, d->total, 0, 0, NULL);
        cli_bar_end();
        if (!strcmp(name, "started")) {
            size_t i;
            json_t *v;
            char a[32];

            const char *via = json_string_value(json_object_get(ev, "via"));

            printf("%7.1fs attempt %lld: %s (%s)\n", t,
                   json_integer_value(json_object_get(ev, "attempt")),
                   via ? via
                   : json_object_get(ev, "mode") ? "copying in dirty-bitmap passes" : "mirroring",
                   json_string_value(json_object_get(ev, "copy_mode")));
            json_array_foreach(json_object_get(ev, "volumes"), i, v)
                printf("          %s (node %s, %s) -> %s\n",
                       json_string_value(json_object_get(v, "drive")),
                       json_string_value(json_object_get(v, "node")),
                       cli_human_bytes((double)json_integer_value(json_object_get(v, "size")), a, sizeof a),
                       json_string_value(json_object_get(v, "target")));
        } else if (!strcmp(name, "ready")) {
            printf(json_object_get(ev, "mode")
                   ? "%7.1fs ready: one last pass, with the guest paused, to go\n"
                   : "%7.1fs every mirror is ready (source and targets in sync)\n", t);
        } else if (!strcmp(name, "switchover")) {
            printf("%7.1fs switchover: %s\n", t, json_string_value(json_object_get(ev, "mode")));
        } else if (!strcmp(name, "migrated")) {
            printf("%7.1fs memory migration completed; volumes were finished in %.3f s of pause\n",
                   t, json_real_value(json_object_get(ev, "blocks_flushed_in")));
        } else if (!strcmp(name, "pass")) {
            char a[32], b[32];

            printf("%7.1fs pass %lld%s: %s dirty, %s written as data, %.3f s\n", t,
                   json_integer_value(json_object_get(ev, "pass")),
                   json_is_true(json_object_get(ev, "paused")) ? " (guest paused)" : "",
                   cli_human_bytes((double)json_integer_value(json_object_get(ev, "dirty")), a, sizeof a),
                   cli_human_bytes((double)json_integer_value(json_object_get(ev, "data")), b, sizeof b),
                   json_real_value(json_object_get(ev, "seconds")));
        } else if (!strcmp(name, "converged")) {
            char a[32];

            printf("%7.1fs converged (%s): %s dirty after %lld passes\n", t,
                   json_string_value(json_object_get(ev, "reason")),
                   cli_human_bytes((double)json_integer_value(json_object_get(ev, "dirty")), a, sizeof a),
                   json_integer_value(json_object_get(ev, "passes")));
        } else if (!strcmp(name, "paused")) {
            printf("%7.1fs the guest was paused for %.3f s (final passes: %lld)\n", t,
                   json_real_value(json_object_get(ev, "seconds")),
                   json_integer_value(json_object_get(ev, "final_passes")));
        } else if (!strcmp(name, "completed")) {
            printf("%7.1fs done\n", t);
        } else if (!strcmp(name, "failed")) {
            snprintf(d->failed, sizeof d->failed, "%7.1fs attempt %lld failed: %s", t,
                     json_integer_value(json_object_get(ev, "attempt")),
                     json_string_value(json_object_get(ev, "error")));
        } else if (!strcmp(name, "retrying")) {
            printf("%7.1fs retrying in %.0f s (attempt %lld)\n", t,
                   json_real_value(json_object_get(ev, "delay")),
                   json_integer_value(json_object_get(ev, "attempt")));
        } else if (!strcmp(name, "resumed")) {
            char a[32], b[32];
            const char *why = json_string_value(json_object_get(ev, "why"));

            printf("%7.1fs attempt %lld resumes: %s kept, %s to copy%s%s\n", t,
                   json_integer_value(json_object_get(ev, "attempt")),
                   cli_human_bytes((double)json_integer_value(json_object_get(ev, "kept")), a, sizeof a),
                   cli_human_bytes((double)json_integer_value(json_object_get(ev, "todo")), b, sizeof b),
                   why ? "; copied in full: " : "", why ? why : "");
        } else if (!strcmp(name, "kept")) {
            printf("%7.1fs kept for a later run to resume from (%s)\n", t,
                   json_string_value(json_object_get(ev, "state_dir")));
        } else if (!strcmp(name, "cancelled")) {
            printf("%7.1fs cancelled: the VM runs on its original volumes\n", t);
        } else if (!strcmp(name, "latency-budget")) {
            const char *sig = json_string_value(json_object_get(ev, "signal"));
            bool mean = sig && !strcmp(sig, "mean");
            double base = json_real_value(
                json_object_get(ev, mean ? "baseline_mean_ms" : "baseline_p99_ms"));
            long long ceiling = json_integer_value(json_object_get(ev, "ceiling"));
            char before[64] = "no guest I/O seen before the copy", limit[64] = "";

            if (base >= 0)
                snprintf(before, sizeof before, "%.2f ms before the copy", base);
            if (ceiling) {
                char h[32];

                snprintf(limit, sizeof limit, "; at most %s/s",
                         cli_human_bytes((double)ceiling, h, sizeof h));
            }
            printf("%7.1fs latency budget: guest %s under %.2f ms (%s, from %s)%s\n", t,
                   mean ? "mean write latency" : "p99",
                   json_real_value(json_object_get(ev, "budget_ms")), before,
                   mean ? "libvirt's block statistics"
                   : sig && !strcmp(sig, "probe") ? "probe reads" : "the device's histogram",
                   limit);
        } else if (!strcmp(name, "converging")) {
            printf("%7.1fs converging: %s\n", t, json_string_value(json_object_get(ev, "message")));
        } else if (!strcmp(name, "warning")) {
            printf("%7.1fs warning: %s\n", t, json_string_value(json_object_get(ev, "message")));
        }
    }
    fflush(stdout);
    json_decref(ev);
}

static int parse_volume(char *arg, struct mig_volume *v)
{
    char *eq = strchr(arg, '=');

    if (!eq || eq == arg || !eq[1]) {
        cli_usage(me, "--volume '%s' is not DRIVE=TARGET", arg);
        return -1;
    }
    *eq = '\0';
    v->drive = arg;
    v->target = eq + 1;
    if (target_uri_parse(v->target, &v->uri) < 0) {
        cli_usage(me, "--volume %s=%s: %s", arg, v->target, cli_why());
        return -1;
    }
    return 0;
}

/* Under libvirt, migrate:URI names the destination libvirtd by its
 * connection URI, DRIVER[+TRANSPORT]://[HOST][/PATH][?PARAMS]
 * (qemu+tcp://host/system, qemu+unix:///system?socket=PATH).  Only the
 * form is checked: whether that libvirtd answers is known when it is asked. */
static int check_libvirt_migrate_uri(const char *arg)
{
    const char *u = arg + 8;   /* after "migrate:" */
    size_t scheme = strspn(u, "abcdefghijklmnopqrstuvwxyz0123456789+.-");

    if (scheme == 0 || strncmp(u + scheme, "://", 3))
        return cli_usage(me, "--switchover '%s': under libvirt, expected migrate: and the "
                         "destination libvirtd's URI (qemu+tcp://HOST/system, "
                         "qemu+unix:///system?socket=PATH)", arg);
    return 0;
}

/* QEMU's migration URIs (QEMU 7.2): tcp:HOST:PORT, rdma:HOST:PORT,
 * unix:PATH, exec:COMMAND, fd:NAME.  Only the form is checked: whether the
 * other end listens is known when QEMU tries. */
static int check_migrate_uri(const char *arg)
{
    const char *u = arg + 8;   /* after "migrate:" */
    const char *colon;

    if (!strncmp(u, "tcp:", 4) || !strncmp(u, "rdma:", 5)) {
        const char *hp = strchr(u, ':') + 1;

        colon = strrchr(hp, ':');
        if (!colon || colon == hp || cli_parse_port(colon + 1, 1) < 0)
            return cli_usage(me, "--switchover '%s': expected migrate:%.*s:HOST:PORT, the port "
                             "a number from 1 to 65535", arg, (int)(hp - u - 1), u);
        return 0;
    }
    if (!strncmp(u, "unix:", 5) || !strncmp(u, "exec:", 5) || !strncmp(u, "fd:", 3)) {
        if (!strchr(u, ':')[1])
            return cli_usage(me, "--switchover '%s': nothing after '%.*s'", arg,
                             (int)(strchr(u, ':') - u + 1), u);
        return 0;
    }
    return cli_usage(me, "--switchover '%s': expected migrate:tcp:HOST:PORT (or QEMU's other "
                     "migration URIs: unix:PATH, rdma:HOST:PORT, exec:CMD, fd:NAME)", arg);
}

/* A file: target must exist in mirror mode (QEMU opens it, and volmig
 * cannot know the drive's size before it asks QEMU); bitmap mode creates
 * it.  Checked only for a QEMU on this host: through libvirt?uri= the
 * path is another host's. */
static int check_file_targets(const struct mig_config *cfg)
{
    if (cfg->mode == MIG_MODE_BITMAP || strstr(cfg->qmp, "?uri="))
        return 0;
    for (int i = 0; i < cfg->nvols; i++) {
        const struct mig_volume *v = &cfg->vols[i];

        if (v->uri.kind == URI_FILE && access(v->uri.path, F_OK) < 0 && errno == ENOENT) {
            cli_error(me, "--volume %s=%s: %s does not exist; create it as large as the drive "
                      "first (truncate -s SIZE %s), or use --mode bitmap, which creates it",
                      v->drive, v->target, v->uri.path, v->uri.path);
            return -1;
        }
    }
    return 0;
}

int cmd_migrate(int argc, char **argv)
{
    static const struct option opts[] = {
        { "qmp", required_argument, NULL, 'q' },
        { "volume", required_argument, NULL, 'V' },
        { "switchover", required_argument, NULL, 's' },
        { "copy-mode", required_argument, NULL, 'c' },
        { "retries", required_argument, NULL, 'r' },
        { "backoff", required_argument, NULL, 'b' },
        { "buf-size", required_argument, NULL, 'B' },
        { "granularity", required_argument, NULL, 'g' },
        { "speed", required_argument, NULL, 'S' },
        { "output", required_argument, NULL, 'o' },
        { "progress-interval", required_argument, NULL, 'p' },
        { "tls-creds", required_argument, NULL, 'X' },
        { "tls-psk", required_argument, NULL, 'P' },
        { "tls-hostname", required_argument, NULL, 'H' },
        { "mode", required_argument, NULL, 'M' },
        { "converge-below", required_argument, NULL, 'C' },
        { "nbd-socket", required_argument, NULL, 'N' },
        { "state-dir", required_argument, NULL, 'D' },
        { "latency-budget", required_argument, NULL, 'L' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    static struct mig_volume vols[MAX_VOLUMES];
    struct display d = { 0 };
    struct mig_config cfg = {
        .vols = vols, .retries = 3, .backoff_s = 20, .buf_size = 64 << 20,
        .progress_ms = 500, .converge_warn_s = 30, .cancel = &cancel_flag, .converge_below = -1,
        .emit = show, .opaque = &d,
        .latency_budget = { LAT_BUDGET_AUTO, LAT_BUDGET_FACTOR },
    };
    long long n;
    bool buf_size_given = false, budget_given = false;
    const char *why;
    const char *switchover_arg = NULL;   /* migrate:URI, checked after --qmp */
    char *end;
    int c;

    me = argv[0];
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":q:V:s:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'q':
            if (cli_check_qmp(me, "--qmp", optarg))
                return EXIT_USAGE;
            cfg.qmp = optarg;
            break;
        case 'V':
            if (cfg.nvols == MAX_VOLUMES)
                return cli_usage(me, "--volume: at most %d volumes in one migration", MAX_VOLUMES);
            if (parse_volume(optarg, &vols[cfg.nvols]) < 0)
                return EXIT_USAGE;
            cfg.nvols++;
            break;
        case 's':
            if (!strcmp(optarg, "pivot")) {
                cfg.switchover = MIG_SW_PIVOT;
            } else if (!strcmp(optarg, "none")) {
                cfg.switchover = MIG_SW_NONE;
            } else if (!strncmp(optarg, "migrate:", 8)) {
                /* Its form is checked once --qmp is known: under libvirt
                 * it names the destination libvirtd. */
                cfg.switchover = MIG_SW_MIGRATE;
                cfg.migrate_uri = optarg + 8;
                switchover_arg = optarg;
            } else {
                return cli_usage(me, "--switchover '%s': use pivot, none or migrate:URI", optarg);
            }
            break;
        case 'c':
            if (!strcmp(optarg, "write-blocking")) {
                cfg.write_blocking = true;
            } else if (strcmp(optarg, "background")) {
                return cli_usage(me, "--copy-mode '%s': use background or write-blocking", optarg);
            }
            break;
        case 'r':
            n = strtoll(optarg, &end, 10);
            if (!*optarg || *end || n < 0 || n > 1000)
                return cli_usage(me, "--retries '%s': a number from 0 to 1000", optarg);
            cfg.retries = (int)n;
            break;
        case 'b':
            cfg.backoff_s = strtod(optarg, &end);
            if (!*optarg || *end || !(cfg.backoff_s >= 0) || cfg.backoff_s > 86400)
                return cli_usage(me, "--backoff '%s': seconds, from 0 to 86400", optarg);
            break;
        case 'B':
        case 'g':
        case 'S':
            n = cli_parse_size(optarg);
            if (n <= 0)
                return cli_usage(me, "%s '%s': %s", c == 'S' ? "--speed" : c == 'B' ? "--buf-size" : "--granularity",
                                 optarg, c == 'S' ? "bytes per second, more than 0 (K M G suffixes; "
                                                    "leave it out for no limit)"
                                                  : "a size in bytes, more than 0 (K M G suffixes)");
            /* QEMU takes a power of two from 512 B to 64 MiB, and says so
             * only once the job starts. */
            if (c == 'g' && (n < 512 || n > (64 << 20) || (n & (n - 1))))
                return cli_usage(me, "--granularity '%s': a power of two from 512 to 64M", optarg);
            if (c == 'S') {
                cfg.speed = (uint64_t)n;
            } else if (c == 'B') {
                cfg.buf_size = (uint64_t)n;
                buf_size_given = true;
            }
            else
                cfg.granularity = (uint64_t)n;
            break;
        case 'p':
            n = strtoll(optarg, &end, 10);
            if (!*optarg || *end || n < 50 || n > 60000)
                return cli_usage(me, "--progress-interval '%s': milliseconds from 50 to 60000", optarg);
            cfg.progress_ms = (int)n;
            break;
        case 'o':
            if (!strcmp(optarg, "json")) {
                d.json = true;
            } else if (strcmp(optarg, "text")) {
                return cli_usage(me, "--output '%s': use text or json", optarg);
            }
            break;
        case 'M':
            if (!strcmp(optarg, "bitmap")) {
                cfg.mode = MIG_MODE_BITMAP;
            } else if (strcmp(optarg, "mirror")) {
                return cli_usage(me, "--mode '%s': use mirror or bitmap", optarg);
            }
            break;
        case 'C':
            n = strcmp(optarg, "0") ? cli_parse_size(optarg) : 0;
            if (n < 0)
                return cli_usage(me, "--converge-below '%s': a size in bytes (K M G suffixes)", optarg);
            cfg.converge_below = n;
            break;
        case 'N':
            /* sun_path holds 108 bytes with the NUL. */
            if (!optarg[0] || strlen(optarg) > 107)
                return cli_usage(me, "--nbd-socket '%s': a unix socket path of 1 to 107 bytes", optarg);
            cfg.nbd_socket = optarg;
            break;
        case 'D': cfg.state_dir = optarg; break;
        case 'L':
            if (lat_budget_parse(optarg, &cfg.latency_budget, &why) < 0)
                return cli_usage(me, "--latency-budget '%s': %s", optarg, why);
            budget_given = true;
            break;
        case 'X': cfg.tls_creds = optarg; break;
        case 'P': cfg.tls_psk = optarg; break;
        case 'H': cfg.tls_hostname = optarg; break;
        case 'h': usage(stdout); return EXIT_DONE;
        default: return cli_bad_option(me, argv, c);
        }
    }
    if (optind < argc)
        return cli_usage(me, "unexpected argument '%s'", argv[optind]);
    if (!cfg.qmp || !cfg.nvols)
        return cli_usage(me, "%s", !cfg.qmp ? "--qmp ADDR is required" : "at least one --volume DRIVE=TARGET is required");
    if (cfg.tls_creds && cfg.tls_psk)
        return cli_usage(me, "--tls-creds and --tls-psk exclude each other");
    if (switchover_arg && (mig_libvirt_addr(cfg.qmp) ? check_libvirt_migrate_uri(switchover_arg)
                                                     : check_migrate_uri(switchover_arg)))
        return EXIT_USAGE;
    for (int i = 0; i < cfg.nvols; i++)
        if (cfg.vols[i].uri.tls && !cfg.tls_creds && !cfg.tls_psk)
            return cli_usage(me, "--volume %s=%s: an nbds URI needs --tls-creds or --tls-psk",
                             cfg.vols[i].drive, cfg.vols[i].target);
    /* Under libvirt volmig paces block copies; libvirt's storage migration
     * (migrate:URI without serve.DRIVE=) copies inside the migration. */
    if (mig_libvirt_addr(cfg.qmp) && budget_given &&
        cfg.latency_budget.kind != LAT_BUDGET_OFF && cfg.switchover == MIG_SW_MIGRATE &&
        !strstr(switchover_arg, "?serve.") && !strstr(switchover_arg, "&serve."))
        return cli_usage(me, "--latency-budget: libvirt's storage migration copies the disks "
                             "inside the migration, which volmig does not pace (use --speed, "
                             "or volmig's data path: serve.DRIVE= in the URI)");
    if (cfg.tls_hostname && !cfg.tls_creds)
        return cli_usage(me, "--tls-hostname goes with --tls-creds (certificates carry names)");
    if (cfg.mode == MIG_MODE_BITMAP && cfg.switchover == MIG_SW_PIVOT)
        return cli_usage(me, "--switchover pivot goes with --mode mirror only (QEMU would have to "
                             "reopen the drive on the target): use none or migrate:URI with bitmap");
    if (mig_libvirt_addr(cfg.qmp) && mig_libvirt_refusal(&cfg))
        return cli_usage(me, "%s", mig_libvirt_refusal(&cfg));
    if (check_file_targets(&cfg) < 0)
        return EXIT_FAILED;
    /* QEMU's mirror issues up to a whole buffer before its rate limit
     * applies, so a large buffer would overrun a small --speed: size the
     * buffer to about one second of the allowed rate. */
    if (cfg.speed && !buf_size_given)
        cfg.buf_size = cfg.speed < (1 << 20) ? 1 << 20 : cfg.speed > (64 << 20) ? 64 << 20 : cfg.speed;
    return cli_migrate_run(me, &cfg, d.json);
}

int cli_migrate_run(const char *name, struct mig_config *cfg, bool json)
{
    struct display d = { .json = json };
    struct sigaction sa = { .sa_handler = on_signal };
    enum mig_result r;

    cfg->cancel = &cancel_flag;
    cfg->emit = show;
    cfg->opaque = &d;
    d.tty = !d.json && isatty(STDERR_FILENO) && isatty(STDOUT_FILENO);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    r = mig_run(cfg);
    cli_bar_end();
    /* A last failed attempt is said once, by the error line; its own line
     * only when the error says something else. */
    if (r != MIG_FAILED || !strstr(d.failed, err_msg()))
        flush_failed(&d);
    if (r == MIG_FAILED) {
        cli_error(name, "%s", cli_why());
        return EXIT_FAILED;
    }
    return r == MIG_CANCELLED ? EXIT_CANCELLED : EXIT_DONE;
}
