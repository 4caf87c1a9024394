/* Live migration by dirty-bitmap convergence: volmig migrate --mode bitmap.
 *
 * QEMU exports the drive read-only on a private unix socket, and a dirty
 * bitmap records every guest write from before the first byte is read:
 *
 *   pass 0   copy everything (sparse-aware, engine/copy_run.c) while bitmap 0
 *            records
 *   pass k   one QMP transaction starts bitmap k and freezes bitmap k-1;
 *            an export carrying bitmap k-1 tells (NBD BLOCK_STATUS,
 *            qemu:dirty-bitmap:NAME) which regions the guest wrote during
 *            pass k-1; only those are copied; bitmap k-1 is removed.  A
 *            pass starts when every write of the one before is acknowledged
 *            and flushed, so an older copy of a block never lands after a
 *            newer one.
 *   final    when the dirty set is small enough, or stops shrinking, the
 *            guest is paused (none: QMP stop/cont; migrate:URI: the memory
 *            migration's pre-switchover pause) and passes run until a pass
 *            finds nothing new dirtied: the targets then equal the sources.
 *
 * Everything volmig adds to QEMU is named volmig-PID-... (bitmaps, exports)
 * and removed on success, failure and cancel; the NBD server is stopped if
 * volmig started it.  QEMU 7.2 runs one NBD server at most and cannot say
 * where it listens, so when someone else (libvirt, an operator) already
 * runs one, the caller names its unix socket (mig_config.nbd_socket):
 * volmig's exports then go on that server, which volmig never stops, not
 * even when sweeping what a dead run left (its names carry "ext-").
 * Without that name such a QEMU is refused, and the message says so.
 */
#ifndef VOLMIG_BITMAP_H
#define VOLMIG_BITMAP_H

#include "engine/copy.h"
#include "engine/migrate.h"
#include "engine/migrate_run.h"
#include "engine/target_tls.h"

#include <stddef.h>
#include <stdint.h>

extern const struct mig_strategy mig_bitmap;

/* Removes the bitmaps and exports of volmig runs that died, and the NBD
 * server if such a run had started it and nothing else is exported on it.
 * Returns how many things were removed. */
int bitmap_sweep(struct qmp *q);

/* ---- pure parts ---- */

enum bitmap_step {
    BM_PASS,            /* run another live pass */
    BM_SMALL,           /* dirty set at or below the threshold: pause */
    BM_NOT_SHRINKING,   /* the last pass did not shrink it: pause anyway */
    BM_MAX_PASSES,      /* too many passes: pause anyway */
};

#define BITMAP_MAX_PASSES 30

/* After pass `pass` (0 is the full copy) copied prev bytes, dirty bytes
 * are dirty now: what next. */
enum bitmap_step bitmap_decide(int pass, uint64_t dirty, uint64_t prev, uint64_t threshold);
/* The threshold: configured if >= 0, else what a pass moves in 100 ms at
 * rate bytes/s, between 1 MiB and 64 MiB. */
uint64_t bitmap_threshold(int64_t configured, double rate);
const char *bitmap_step_name(enum bitmap_step s);

/* Ranges (struct copy_range, sorted and apart) as sets of bytes, for
 * what a retry still has to copy (engine/migrate_bitmap_resume.c). */
uint64_t ranges_bytes(const struct copy_range *r, size_t n);
/* a and b merged into out (room for na + nb); returns out's count. */
size_t ranges_union(const struct copy_range *a, size_t na, const struct copy_range *b, size_t nb,
                    struct copy_range *out);
/* Drops what lies below from, in place; returns the new count. */
size_t ranges_from(struct copy_range *r, size_t n, uint64_t from);
/* What of [0, size) r does not cover, into out (room for n + 1). */
size_t ranges_complement(const struct copy_range *r, size_t n, uint64_t size,
                         struct copy_range *out);
/* Up to count offsets spread evenly over r, each rounded down to a
 * multiple of block but inside its range; returns how many. */
size_t ranges_sample(const struct copy_range *r, size_t n, size_t count, uint64_t block,
                     uint64_t *out);

/* Reads which regions of export (on unix socket sock) the dirty bitmap
 * named bitmap marks, over [0, size): sorted, merged ranges in *ranges
 * (caller frees), their count in *n and sum in *bytes.  -1 with err_msg(). */
int bitmap_dirty_ranges(const char *sock, const char *export, const char *bitmap, uint64_t size,
                        struct copy_range **ranges, size_t *n, uint64_t *bytes);

/* ---- what a failed run keeps for a later one (migrate_bitmap_keep.c) ---- */

/* Kept state older than this is removed unused: KubeVirt's backoff after
 * failed migrations doubles from 20 s without a cap, so a day covers a
 * dozen failures in a row; a failure keeps its state afresh. */
#define BM_KEEP_TTL_S   (24 * 3600)
#define BM_WHY_MAX      256

/* One volume's state file.  Strings and pend are owned (bm_kept_free()). */
struct bm_kept {
    char *qmp, *node, *target, *bitmap;
    uint64_t size, target_size;
    int64_t created;                 /* seconds since the epoch */
    struct copy_range *pend;         /* sorted, apart, inside [0, size) */
    size_t npend;
};

/* The state file's text (JSON; caller frees), and back: -1 for anything
 * but a complete, consistent state of this version. */
char *bm_kept_dump(const struct bm_kept *k);
int bm_kept_parse(const char *text, struct bm_kept *k);
void bm_kept_free(struct bm_kept *k);
/* The state file's key: the QMP address and the node. */
uint64_t bm_keep_key(const char *qmp, const char *node);
/* When a kept bitmap's name (volmig-keep-EPOCH-TOKEN) says it was kept;
 * -1 for any other name. */
int64_t bm_keep_name_epoch(const char *name);
/* Removes kept bitmaps older than BM_KEEP_TTL_S from every node; how many. */
int bm_keep_sweep(struct qmp *q);

/* ---- inside migrate_bitmap*.c ---- */

/* The strategy's state, for the whole run (r->state). */
struct bm {
    struct mig_run *r;
    struct mig_config *cfg;
    struct qmp *q;
    struct run_sock own;     /* the private socket of a server volmig started */
    char sock[128];          /* the NBD server's, ours or --nbd-socket */
    bool server_started;     /* ours to stop; never with --nbd-socket */
    bool stopped;            /* we paused the guest: ours to resume */
    int gen;                 /* the generation recording now */
    int pass;                /* passes run so far */
    double rate;             /* bytes/s of pass 0 */
    uint64_t pass_dirty, pass_data;   /* of the pass being run */
    uint64_t *vol_done;      /* per volume, this pass */
    uint64_t *vol_todo;
    bool paused_pass;
    /* What a retry resumes from (migrate_bitmap_resume.c): per volume, the
     * ranges a pass set out to copy and has not settled (pend, npend), and
     * the target's size the attempt saw (tsize, 0: not known).  resumable:
     * bitmap b->gen records on every node, so pend and the bitmaps hold all
     * that is still to copy; a failed attempt then keeps that bitmap. */
    struct copy_range **pend;
    size_t *npend;
    uint64_t *tsize;
    bool resumable;
    /* Across processes (migrate_bitmap_keep.c): keep_tried, the state
     * files were looked at; keep_seen, there was one; keep_adopted, the
     * first pass resumes from it; keep_why[i], why volume i does not. */
    bool keep_tried, keep_seen, keep_adopted;
    char (*keep_why)[BM_WHY_MAX];
    /* TLS to NBD targets: the copier's connections carry the data here,
     * so the credentials are ours, not a QEMU object's. */
    struct client_tls tls;
    bool tls_on;
    /* The latency-aware copy, from before the first pass until the
     * passes converge (engine/latency_watch.h): the copier's rate limit
     * (pace), the bytes copied in earlier copies of this attempt, and the
     * dirty counts of earlier generations plus the current one's last. */
    struct lat_watch *lw;
    uint64_t pace;
    uint64_t lw_copied, lw_dirty_base, lw_dirty_last;
    int lw_gen;
    int64_t last_progress;
};

/* migrate_bitmap_qemu.c: what volmig adds to QEMU.  enum attempt results
 * say, as in migrate_run.h, whether a failure is worth another attempt. */
enum attempt bm_server_start(struct bm *b);
/* Starts bitmap generation gen+1 on every node and, unless fresh (no
 * bitmap of generation gen exists), freezes generation gen, in one
 * transaction. */
enum attempt bm_switch_bitmaps(struct bm *b, bool fresh);
enum attempt bm_export_add(struct bm *b, int vol, int gen, bool with_bitmap, char *id, size_t len);
void bm_bitmap_name(const struct bm *b, int vol, int gen, char *buf, size_t len);
/* Bytes marked in the bitmaps of generation gen, over all volumes. */
int bm_dirty_count(struct bm *b, int gen, uint64_t *count);
/* Removes every export and bitmap of this run, and the server if ours. */
void bm_sweep_mine(struct bm *b);
/* Undoes what this run added; resumes the guest if we paused it.  When
 * b->resumable, each node keeps one bitmap, generation b->gen, with what
 * the others of this run marked merged into it; resumable is cleared if
 * that cannot be done. */
void bm_cleanup(struct bm *b);
/* True when bitmap generation gen of this run is on volume vol's node. */
bool bm_bitmap_exists(struct bm *b, int vol, int gen);
/* The NBD URI of this run's export id on QEMU's server, for libnbd. */
void bm_source_uri(const struct bm *b, const char *id, char *buf, size_t len);
/* migrate_bitmap_resume.c: may volume vol resume with only todo left to
 * copy?  1 yes; 0 no, with why; -1 the check could not be made, with why.
 * export: this attempt's export of the volume's node. */
int bm_resume_check(struct bm *b, int vol, const char *export, const struct copy_range *todo,
                    size_t n, char *why, size_t whylen);
/* migrate_bitmap_keep.c.  adopt: before the first pass, takes over what a
 * failed run kept for these drives and destinations: true when at least
 * one volume resumes (generation 0 then exists on every node, pend and
 * tsize are set, resumable); keep_why says why the others do not.
 * persist: at the end of a failed run that is resumable, keeps its bitmap
 * and pending ranges for a later run.  drop: at the end of any other run,
 * removes what was kept for these drives. */
bool bm_keep_adopt(struct bm *b);
void bm_keep_persist(struct bm *b);
void bm_keep_drop(struct bm *b);

#endif
