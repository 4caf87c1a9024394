/* lvd: drives engine/libvirt_domain.h from the command line, for the
 * tests/integration/libvirt-*.sh tests, until the libvirt strategy of
 * `volmig migrate` exists.
 *
 *   lvd [--uri URI] [--no-job-events] DOMAIN COMMAND [OPTIONS] [ARGS]
 *     --no-job-events: ignore libvirt's block job events, so that READY
 *     and the end are seen only by polling libvirt (an event lost)
 *     disks [--inactive]          one line per disk: target alias type source index mirror
 *     resolve NAME...             the target of each disk NAME names
 *     check NAME=DEST...          what lvd_copy_check says
 *     start NAME=DEST...          checks, then starts each copy and returns
 *     wait-ready NAME...          every copy READY
 *     progress NAME               "CUR END BANDWIDTH", or "none"
 *     finish pivot|abort NAME...  ends each copy
 *     verify NAME=DEST...         libvirt (live, persistent) names DEST
 *     copy NAME=DEST...           start all, all READY, then --switchover
 *                                 pivot (default) or none, then verify
 *     cancel NAME=DEST...         start all, abort each once it copied
 *                                 something (or is READY), then verify
 *                                 that libvirt still names the old source
 *   OPTIONS: --timeout S (60) --bandwidth BYTES --granularity BYTES
 *            --buf-size BYTES --sync-writes --format FMT --switchover pivot|none
 *   DEST: file:PATH (file or block device), nbd://H[:P]/EXPORT,
 *         nbd+unix:///EXPORT?socket=PATH
 * Exit status 0, or 1 with the error on stderr. */
#include "common/clock.h"
#include "common/error.h"
#include "engine/libvirt_domain.h"
#include "engine/target_uri.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXV 16

struct vol {
    const char *name;
    char *target;
    struct target_uri dest;
    struct lvd_fit fit;
    bool started;
    char old_text[4400];
};

static struct {
    const char *uri;
    int timeout;
    struct lvd_copy_opts copy;
    bool inactive, pivot, no_job_events;
} opt = { .timeout = 60, .pivot = true };

static int die(const char *what)
{
    fprintf(stderr, "lvd: %s%s%s\n", what ? what : "", what ? ": " : "", err_msg());
    return 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: lvd [--uri URI] [--no-job-events] DOMAIN disks|resolve|check|start|"
                    "wait-ready|progress|finish|verify|copy|cancel [OPTIONS] ARGS "
                    "(see tests/tools/lvd.c)\n");
    return 2;
}

static int64_t deadline(void)
{
    return clock_ms() + (int64_t)opt.timeout * 1000;
}

/* ---- NAME=DEST arguments ---- */

static int parse_vols(struct lvd *c, char **args, int n, bool with_dest, struct vol *v)
{
    struct lvd_disk *d;
    size_t nd;

    if (n < 1 || n > MAXV) {
        err_set(EINVAL, "between 1 and %d disks", MAXV);
        return -1;
    }
    if (lvd_disks(c, false, &d, &nd) < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        char *eq = with_dest ? strchr(args[i], '=') : NULL;
        int k;

        if (with_dest && !eq) {
            err_set(EINVAL, "%s: expected NAME=DEST", args[i]);
            goto fail;
        }
        if (eq)
            *eq = '\0';
        v[i].name = args[i];
        if (eq && target_uri_parse(eq + 1, &v[i].dest) < 0)
            goto fail;
        if ((k = lvd_disk_find(d, nd, args[i])) < 0)
            goto fail;
        v[i].target = strdup(d[k].target);
        lvd_disk_source_text(&d[k], v[i].old_text, sizeof v[i].old_text);
    }
    lvd_disks_free(d, nd);
    return 0;
fail:
    lvd_disks_free(d, nd);
    return -1;
}

/* The live (and persistent) XML still name each disk's old source. */
static int verify_unchanged(struct lvd *c, struct vol *v, int n)
{
    for (int pass = 0; pass < (lvd_persistent(c) ? 2 : 1); pass++) {
        struct lvd_disk *d;
        size_t nd;
        char now[4400];

        if (lvd_disks(c, pass == 1, &d, &nd) < 0)
            return -1;
        for (int i = 0; i < n; i++) {
            int k = lvd_disk_find(d, nd, v[i].target);

            if (k < 0) {
                lvd_disks_free(d, nd);
                return -1;
            }
            lvd_disk_source_text(&d[k], now, sizeof now);
            if (strcmp(now, v[i].old_text) || d[k].mirror) {
                err_set(0, "%s XML: disk %s is on %s%s, not %s", pass ? "persistent" : "live",
                        v[i].target, now, d[k].mirror ? " with a <mirror>" : "", v[i].old_text);
                lvd_disks_free(d, nd);
                return -1;
            }
        }
        lvd_disks_free(d, nd);
    }
    return 0;
}

/* ---- commands ---- */

static int cmd_disks(struct lvd *c)
{
    struct lvd_disk *d;
    size_t n;
    char src[4400];

    if (lvd_disks(c, opt.inactive, &d, &n) < 0)
        return die(NULL);
    for (size_t i = 0; i < n; i++) {
        lvd_disk_source_text(&d[i], src, sizeof src);
        printf("%s %s %s %s %d %s\n", d[i].target, d[i].alias ? d[i].alias : "-", d[i].type,
               src, d[i].index, d[i].mirror ? (d[i].mirror_ready ? "mirror-ready" : "mirror") : "-");
    }
    lvd_disks_free(d, n);
    return 0;
}

static int check_all(struct lvd *c, struct vol *v, int n)
{
    for (int i = 0; i < n; i++)
        if (lvd_copy_check(c, v[i].target, &v[i].dest, NULL, opt.timeout * 1000,
                           &v[i].fit) < 0)
            return -1;
    return 0;
}

/* On a failure after some copies started, those are aborted: the tool
 * leaves no job behind. */
static void abort_started(struct lvd *c, struct vol *v, int n)
{
    char saved[1024];
    int e = err_errno();

    snprintf(saved, sizeof saved, "%s", err_msg());
    for (int i = 0; i < n; i++)
        if (v[i].started && lvd_finish(c, v[i].target, false, deadline()) < 0)
            fprintf(stderr, "lvd: could not abort the copy of %s: %s\n", v[i].target, err_msg());
    err_restore(e, saved);
}

static int start_all(struct lvd *c, struct vol *v, int n)
{
    if (check_all(c, v, n) < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        if (lvd_copy_start(c, v[i].target, &v[i].dest, &v[i].fit, &opt.copy) < 0) {
            abort_started(c, v, n);
            return -1;
        }
        v[i].started = true;
    }
    return 0;
}

static int ready_all(struct lvd *c, struct vol *v, int n)
{
    int64_t end = deadline();

    for (int i = 0; i < n; i++) {
        for (;;) {
            int64_t step = clock_ms() + 1000;
            struct lvd_progress p;

            if (lvd_wait_ready(c, v[i].target, step < end ? step : end) == 0)
                break;
            if (err_errno() != ETIMEDOUT || clock_ms() >= end)
                return -1;
            if (lvd_job_info(c, v[i].target, &p) == 1)
                printf("progress %s %llu/%llu\n", v[i].target, (unsigned long long)p.cur,
                       (unsigned long long)p.end);
        }
        printf("ready %s\n", v[i].target);
    }
    return 0;
}

static int cmd_copy(struct lvd *c, struct vol *v, int n)
{
    if (start_all(c, v, n) < 0)
        return die("copy");
    if (ready_all(c, v, n) < 0) {
        abort_started(c, v, n);
        return die("copy");
    }
    fflush(stdout);
    /* libvirt pivots one disk at a time: all are READY before the first. */
    for (int i = 0; i < n; i++) {
        if (lvd_finish(c, v[i].target, opt.pivot, deadline()) < 0) {
            abort_started(c, v + i + 1, n - i - 1);
            return die(opt.pivot ? "pivot" : "abort");
        }
        v[i].started = false;
        printf("%s %s\n", opt.pivot ? "pivoted" : "copied", v[i].target);
    }
    for (int i = 0; i < n; i++)
        if (opt.pivot && lvd_verify(c, v[i].target, &v[i].dest) < 0)
            return die("verify");
    if (!opt.pivot && verify_unchanged(c, v, n) < 0)
        return die("verify");
    return 0;
}

static int cmd_cancel(struct lvd *c, struct vol *v, int n)
{
    int64_t end = deadline();

    if (start_all(c, v, n) < 0)
        return die("cancel");
    for (int i = 0; i < n; i++) {
        struct lvd_progress p;
        int rc;

        while ((rc = lvd_job_info(c, v[i].target, &p)) == 1 && p.cur == 0 && clock_ms() < end)
            usleep(20000);
        if (rc == 1)
            printf("cancelling %s at %llu/%llu\n", v[i].target, (unsigned long long)p.cur,
                   (unsigned long long)p.end);
        if (lvd_finish(c, v[i].target, false, deadline()) < 0) {
            abort_started(c, v + i + 1, n - i - 1);
            return die("abort");
        }
        v[i].started = false;
    }
    if (verify_unchanged(c, v, n) < 0)
        return die("verify");
    return 0;
}

static int run(struct lvd *c, const char *cmd, char **args, int n)
{
    struct vol v[MAXV] = { 0 };
    bool dest = !strcmp(cmd, "check") || !strcmp(cmd, "start") || !strcmp(cmd, "verify") ||
                !strcmp(cmd, "copy") || !strcmp(cmd, "cancel");
    int rc = 0;

    if (!strcmp(cmd, "disks"))
        return cmd_disks(c);
    if (!strcmp(cmd, "finish")) {
        if (n < 1 || (strcmp(args[0], "pivot") && strcmp(args[0], "abort")))
            return usage();
        opt.pivot = !strcmp(args[0], "pivot");
        args++, n--;
    }
    if (parse_vols(c, args, n, dest, v) < 0)
        return die(NULL);
    if (!strcmp(cmd, "resolve")) {
        for (int i = 0; i < n; i++)
            printf("%s\n", v[i].target);
    } else if (!strcmp(cmd, "check")) {
        rc = check_all(c, v, n) < 0 ? die("check") : 0;
    } else if (!strcmp(cmd, "start")) {
        rc = start_all(c, v, n) < 0 ? die("start") : 0;
    } else if (!strcmp(cmd, "wait-ready")) {
        rc = ready_all(c, v, n) < 0 ? die("wait-ready") : 0;
    } else if (!strcmp(cmd, "progress")) {
        struct lvd_progress p;
        int r = lvd_job_info(c, v[0].target, &p);

        if (r < 0)
            rc = die(NULL);
        else if (r == 0)
            printf("none\n");
        else
            printf("%llu %llu %llu\n", (unsigned long long)p.cur, (unsigned long long)p.end,
                   (unsigned long long)p.bandwidth);
    } else if (!strcmp(cmd, "finish")) {
        for (int i = 0; i < n && !rc; i++)
            if (lvd_finish(c, v[i].target, opt.pivot, deadline()) < 0)
                rc = die(opt.pivot ? "pivot" : "abort");
    } else if (!strcmp(cmd, "verify")) {
        for (int i = 0; i < n && !rc; i++)
            if (lvd_verify(c, v[i].target, &v[i].dest) < 0)
                rc = die("verify");
    } else if (!strcmp(cmd, "copy")) {
        rc = cmd_copy(c, v, n);
    } else if (!strcmp(cmd, "cancel")) {
        rc = cmd_cancel(c, v, n);
    } else {
        rc = usage();
    }
    for (int i = 0; i < n; i++)
        free(v[i].target);
    return rc;
}

int main(int argc, char **argv)
{
    char *args[MAXV + 2];
    const char *dom, *cmd;
    struct lvd *c;
    int i = 1, n = 0, rc;

    setvbuf(stdout, NULL, _IOLBF, 0);   /* tests watch the progress lines */
    if (i + 1 < argc && !strcmp(argv[i], "--uri")) {
        opt.uri = argv[i + 1];
        i += 2;
    }
    if (i < argc && !strcmp(argv[i], "--no-job-events")) {
        opt.no_job_events = true;
        i++;
    }
    if (argc - i < 2)
        return usage();
    dom = argv[i++];
    cmd = argv[i++];
    for (; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (!strcmp(a, "--inactive"))
            opt.inactive = true;
        else if (!strcmp(a, "--sync-writes"))
            opt.copy.sync_writes = true;
        else if (!strcmp(a, "--timeout") && val)
            opt.timeout = atoi(argv[++i]);
        else if (!strcmp(a, "--bandwidth") && val)
            opt.copy.bandwidth = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(a, "--granularity") && val)
            opt.copy.granularity = (unsigned)strtoul(argv[++i], NULL, 0);
        else if (!strcmp(a, "--buf-size") && val)
            opt.copy.buf_size = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(a, "--format") && val)
            opt.copy.format = argv[++i];
        else if (!strcmp(a, "--switchover") && val)
            opt.pivot = !strcmp(argv[++i], "pivot");
        else if (a[0] == '-' && a[1] == '-')
            return usage();
        else if (n < MAXV + 1)
            args[n++] = argv[i];
        else
            return usage();
    }
    if (!(c = lvd_open(opt.uri, dom)))
        return die(NULL);
    if (opt.no_job_events)
        lvd_deaf_to_jobs(c);
    rc = run(c, cmd, args, n);
    fflush(stdout);
    lvd_close(c);
    return rc;
}
