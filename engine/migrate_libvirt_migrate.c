/* libvirt mode's migrate:URI, both ways: libvirt's own storage migration,
 * and volmig's data path (a block copy into volmig serve on the
 * destination, then a memory-only migration).  The design is in
 * engine/migrate_libvirt.h and at the top of engine/migrate_libvirt.c. */
#include "engine/migrate_libvirt_internal.h"
#include "common/clock.h"
#include "common/error.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* serve.DRIVE=NBD_URI for every volume, or for none: volmig's data path. */
int lv_take_serves(struct lv *l)
{
    int given = 0;

    for (int i = 0; i < l->cfg->nvols; i++) {
        char key[200], *val = NULL;

        snprintf(key, sizeof key, "serve.%s", l->cfg->vols[i].drive);
        if (lv_take_param(l->dest_uri, key, &val) < 0) {
            err_set(ENOMEM, "migrate:URI");
            return -1;
        }
        l->v[i].copy_dest = &l->cfg->vols[i].uri;
        if (!val)
            continue;
        given++;
        if (target_uri_parse(val, &l->v[i].serve) < 0 || l->v[i].serve.kind == URI_FILE) {
            err_set(EINVAL, "migrate:URI: %s=%s: expected the NBD URI of the volmig serve "
                    "that serves the volume on the destination host", key, val);
            free(val);
            return -1;
        }
        free(val);
        l->v[i].copy_dest = &l->v[i].serve;
    }
    if (given && given != l->cfg->nvols) {
        err_set(EINVAL, "migrate:URI: serve.DRIVE= names %d of %d volumes: volmig's data path "
                "takes one for every volume, libvirt's storage migration none", given,
                l->cfg->nvols);
        return -1;
    }
    l->via_serve = given > 0;
    return 0;
}

/* 0 when something accepted a connection at addr within 1 s, 1 when it
 * was refused, -1 when it could not be told (no answer in time). */
static int try_connect(int family, const struct sockaddr *addr, socklen_t len)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), rc = -1, err = 0;
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    socklen_t el = sizeof err;

    if (fd < 0)
        return -1;
    if (connect(fd, addr, len) == 0)
        rc = 0;
    else if (errno == EINPROGRESS && poll(&p, 1, 1000) == 1 &&
             getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0)
        rc = err ? 1 : 0;
    else if (errno != EINPROGRESS)
        rc = 1;
    close(fd);
    return rc;
}

/* True once nothing accepts connections at u's address any more (volmig
 * serve --once exited), within SERVE_EXIT_MS. */
static bool endpoint_gone(const struct target_uri *u)
{
    int64_t end = clock_ms() + SERVE_EXIT_MS;

    while (clock_ms() < end) {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
        int rc = -1;

        if (u->kind == URI_NBD_UNIX) {
            struct sockaddr_un sa = { .sun_family = AF_UNIX };

            snprintf(sa.sun_path, sizeof sa.sun_path, "%s", u->socket);
            rc = try_connect(AF_UNIX, (struct sockaddr *)&sa, sizeof sa);
        } else if (getaddrinfo(u->host, u->port[0] ? u->port : "10809", &hints, &ai) == 0) {
            rc = try_connect(ai->ai_family, ai->ai_addr, ai->ai_addrlen);
            freeaddrinfo(ai);
        }
        if (rc == 1)
            return true;
        usleep(100000);
    }
    return false;
}

/* ---- migrate:URI: libvirt's storage migration ---- */

static void migration_progress(struct lv *l)
{
    struct lvd_job_stats s;
    json_t *vols = json_array();

    if (lvd_job_stats(l->c, false, &s) < 0) {
        json_decref(vols);
        return;          /* between phases libvirt may have no job to show */
    }
    l->last = s;
    if (l->cfg->nvols == 1) {
        struct mig_volume *v = &l->cfg->vols[0];

        v->done = s.disk_done;
        v->total = s.disk_total;
        json_array_append_new(vols, json_pack("{s:s, s:I, s:I, s:I, s:s}", "drive", v->drive,
                                              "done", (json_int_t)v->done, "total",
                                              (json_int_t)v->total, "remaining",
                                              (json_int_t)(v->total - v->done), "status",
                                              s.mem_done ? "memory" : "copying"));
    }
    lv_emit_progress(l, vols, s.disk_done, s.disk_total);
}

/* The destination's live and persistent XML name the new volumes. */
static int verify_dest(struct lv *l)
{
    struct lvd *d = lvd_open(l->dest_uri, l->name);
    struct lvd_job_stats done;
    int rc = d ? 0 : -1;

    /* The destination keeps the incoming migration's statistics: the
     * guest's downtime is measured there. */
    if (d && lvd_job_stats(d, true, &done) == 0 && done.downtime_ms)
        l->last.downtime_ms = done.downtime_ms;
    for (int i = 0; d && rc == 0 && i < l->cfg->nvols; i++)
        rc = lvd_verify(d, l->v[i].target, &l->cfg->vols[i].uri);
    lvd_close(d);
    if (rc < 0)
        err_prefix("the domain migrated, but on the destination");
    return rc;
}

/* The moves of a migration: every volume onto its target (malloc'd). */
static struct lvd_move *make_moves(struct lv *l)
{
    size_t n = l->cfg->nvols > 0 ? (size_t)l->cfg->nvols : 1;
    struct lvd_move *moves = calloc(n, sizeof *moves);

    if (!moves) {
        err_set(ENOMEM, "libvirt migration");
        return NULL;
    }
    for (int i = 0; i < l->cfg->nvols; i++)
        moves[i] = (struct lvd_move){ .target = l->v[i].target, .dest = &l->cfg->vols[i].uri,
                                      .fit = l->v[i].fit };
    return moves;
}

enum attempt lv_migrate_attempt(struct lv *l, int attempt)
{
    struct lvd_move *moves = make_moves(l);
    struct lvd_migrate_opts o = {
        .dest_uri = l->dest_uri, .migrate_uri = l->migrate_uri, .disks_uri = l->disks_uri,
        .moves = moves, .nmoves = (size_t)l->cfg->nvols, .bandwidth = l->cfg->speed,
        .sync_writes = l->cfg->write_blocking, .storage = true,
    };
    bool switched = false;

    if (!moves)
        return ATT_FINAL;
    l->last_progress = l->prev_at = l->stall_at = 0;
    l->rate = 0;
    memset(&l->last, 0, sizeof l->last);
    l->mig = lvd_migrate_start(l->c, &o);
    free(moves);
    if (!l->mig)
        return lv_failed(l, ATT_RETRY);
    lv_emit_started(l, attempt);
    while (!lvd_migrate_ended(l->mig)) {
        if (run_cancelled(l->r))
            return ATT_CANCELLED;       /* cleanup aborts the job */
        if (lv_progress_due(l))
            migration_progress(l);
        /* The disks are in sync once the memory moves. */
        if (!switched && l->last.mem_done) {
            switched = true;
            run_emit(l->r, json_pack("{s:s}", "event", "ready"));
            run_emit(l->r, json_pack("{s:s, s:s}", "event", "switchover", "mode", "migrate"));
        }
        run_nap(l->r, 50);
    }
    if (lvd_migrate_end(l->mig, NULL) < 0) {
        l->mig = NULL;
        return lv_failed(l, ATT_RETRY);
    }
    l->mig = NULL;
    for (int i = 0; i < l->cfg->nvols; i++) {
        l->v[i].moved = true;
        snprintf(l->cfg->vols[i].status, sizeof l->cfg->vols[i].status, "migrated");
    }
    if (!switched)
        run_emit(l->r, json_pack("{s:s, s:s}", "event", "switchover", "mode", "migrate"));
    if (verify_dest(l) < 0)
        return ATT_FINAL;
    run_emit(l->r, json_pack("{s:s, s:f}", "event", "migrated", "blocks_flushed_in",
                             (double)l->last.downtime_ms / 1000.0));
    return ATT_OK;
}

/* ---- migrate:URI through volmig serve ---- */

/* The guest resumed on the destination, whose XML names the volumes. */
static int resume_on_dest(struct lv *l)
{
    struct lvd *d = lvd_open(l->dest_uri, l->name);
    int rc = d ? 0 : -1;

    if (d && lvd_paused(d))
        rc = lvd_resume(d);
    for (int i = 0; d && rc == 0 && i < l->cfg->nvols; i++)
        rc = lvd_verify(d, l->v[i].target, &l->cfg->vols[i].uri);
    lvd_close(d);
    if (rc < 0)
        err_prefix("the domain migrated, but on the destination");
    return rc;
}

static enum attempt memory_migration(struct lv *l)
{
    struct lvd_move *moves = make_moves(l);
    struct lvd_migrate_opts o = {
        .dest_uri = l->dest_uri, .migrate_uri = l->migrate_uri, .moves = moves,
        .nmoves = (size_t)l->cfg->nvols, .storage = false,   /* the guest waits: no limit */
    };

    if (!moves)
        return ATT_FINAL;
    run_switching(l->r, "memory-migration");
    l->mig = lvd_migrate_start(l->c, &o);
    free(moves);
    if (!l->mig)
        return lv_failed(l, ATT_RETRY);
    while (!lvd_migrate_ended(l->mig)) {
        if (run_cancelled(l->r))
            return ATT_CANCELLED;
        run_nap(l->r, 20);
    }
    if (lvd_migrate_end(l->mig, NULL) < 0) {
        l->mig = NULL;
        return lv_failed(l, ATT_RETRY);
    }
    l->mig = NULL;
    return ATT_OK;
}

enum attempt lv_serve_attempt(struct lv *l, int attempt)
{
    enum attempt a;
    int64_t paused;

    l->last_progress = l->prev_at = l->stall_at = 0;
    l->rate = 0;
    if ((a = lv_start_copies(l, attempt)) != ATT_OK)
        return a;
    lv_emit_started(l, attempt);
    if ((a = lv_wait_ready(l)) != ATT_OK)
        return a;
    lv_copy_progress(l);
    run_emit(l->r, json_pack("{s:s}", "event", "ready"));
    run_emit(l->r, json_pack("{s:s, s:s}", "event", "switchover", "mode", "migrate"));
    /* From here to the resume on the destination the guest is paused: the
     * copies end complete, and volmig serve lets go of the volumes. */
    paused = clock_ms();
    if (lvd_suspend(l->c) < 0)
        return lv_failed(l, ATT_RETRY);
    l->suspended = true;
    if ((a = lv_abort_all(l)) != ATT_OK)
        return a;
    for (int i = 0; i < l->cfg->nvols; i++)
        if (!endpoint_gone(&l->v[i].serve)) {
            err_set(0, "the volmig serve of drive '%s' still runs after the copy ended: run "
                    "it with --once, so that it lets go of the volume before the "
                    "destination's QEMU opens it", l->cfg->vols[i].drive);
            return ATT_FINAL;
        }
    if ((a = memory_migration(l)) != ATT_OK)
        return a;
    l->suspended = false;     /* the source domain is gone */
    for (int i = 0; i < l->cfg->nvols; i++) {
        l->v[i].moved = true;
        snprintf(l->cfg->vols[i].status, sizeof l->cfg->vols[i].status, "migrated");
    }
    if (resume_on_dest(l) < 0)
        return ATT_FINAL;
    run_emit(l->r, json_pack("{s:s, s:f}", "event", "migrated", "blocks_flushed_in",
                             (double)(clock_ms() - paused) / 1000.0));
    return ATT_OK;
}
