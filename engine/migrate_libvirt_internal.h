/* Between the files of libvirt mode (engine/migrate_libvirt*.c) only:
 * the strategy's state and the steps the block copy and the migrations
 * share.  The design is in engine/migrate_libvirt.h. */
#ifndef VOLMIG_MIGRATE_LIBVIRT_INTERNAL_H
#define VOLMIG_MIGRATE_LIBVIRT_INTERNAL_H

#include "engine/migrate_libvirt.h"
#include "engine/libvirt_domain.h"
#include "engine/latency_watch.h"
#include "engine/target_tls.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define CHECK_TIMEOUT_MS  10000   /* an NBD destination to answer */
#define FINISH_TIMEOUT_MS 60000   /* a pivot or abort to end */
#define STALL_WARN_MS     10000
#define SERVE_EXIT_MS     30000   /* volmig serve --once to let go of the volume */

struct lv_vol {
    char *target;             /* libvirt's name of the disk ("vda") */
    /* What the block copy writes into: the volume's target (pivot, none),
     * or the volmig serve on the destination host that serves it
     * (migrate:URI through volmig's data path). */
    const struct target_uri *copy_dest;
    struct target_uri serve;
    struct lvd_fit fit;
    bool started;             /* a block copy of ours runs: ours to abort */
    bool ready;
    bool moved;               /* pivoted in an earlier attempt: done */
};

/* The strategy's state, for the whole run (r->state). */
struct lv {
    struct mig_run *r;
    struct mig_config *cfg;
    struct lvd *c;
    char *name, *uri;                         /* the domain, its libvirtd (NULL: system) */
    char *dest_uri, *migrate_uri, *disks_uri; /* migrate:URI */
    struct lv_vol *v;
    struct client_tls tls;                    /* for probing NBD destinations */
    bool tls_on;
    bool via_serve;                           /* migrate:URI through volmig serve */
    bool suspended;                           /* we paused the guest: ours to resume */
    struct lvd_migration *mig;                /* running: ours to abort and end */
    struct lvd_job_stats last;                /* the migration's last statistics */
    /* The latency-aware copy of the block copies (mean signal), from
     * before they start until they are READY. */
    struct lat_watch *lw;
    struct lw_counters counters;
    /* progress */
    int64_t last_progress, prev_at, stall_at;
    uint64_t prev_done, stall_done;
    double rate;
    bool stall_warned;
};

/* migrate_libvirt.c */
/* Takes parameter key=VALUE out of the query of uri (in place); *val gets
 * VALUE (malloc'd) or stays NULL. */
int lv_take_param(char *uri, const char *key, char **val);
void lv_emit_started(struct lv *l, int attempt);
/* A progress event in the mirror's format; vols (stolen) may be empty. */
void lv_emit_progress(struct lv *l, json_t *vols, uint64_t done, uint64_t total);
bool lv_progress_due(const struct lv *l);
/* The block copies' progress, from libvirt's job info. */
int lv_copy_progress(struct lv *l);
/* After a libvirt call failed: GONE when the domain or libvirtd is, else
 * if_alive. */
enum attempt lv_failed(struct lv *l, enum attempt if_alive);
/* A block copy of every volume not yet moved into its copy_dest. */
enum attempt lv_start_copies(struct lv *l, int attempt);
/* Every copy READY, with progress on the way; the latency-aware copy
 * paces them meanwhile and stops at the end. */
enum attempt lv_wait_ready(struct lv *l);
/* Stops the latency-aware copy, if it runs. */
void lv_watch_stop(struct lv *l);
/* Ends every copy without pivot: consistent copies, the domain stays. */
enum attempt lv_abort_all(struct lv *l);

/* migrate_libvirt_migrate.c */
/* serve.DRIVE=NBD_URI for every volume, or for none: volmig's data path. */
int lv_take_serves(struct lv *l);
/* migrate:URI through libvirt's storage migration. */
enum attempt lv_migrate_attempt(struct lv *l, int attempt);
/* migrate:URI through volmig serve and a memory-only migration. */
enum attempt lv_serve_attempt(struct lv *l, int attempt);

#endif
