/* engine/migrate_*.c: one migration run, and the strategies that move the
 * data under it.
 *
 * The run core (migrate_run.c) owns what every way of moving a disk shares:
 * the monitor, the clock, events, cancel, the attempt loop with its
 * doubling backoff and the classing of errors, the names of volmig's
 * objects, and the memory migration of a migrate:URI switchover.
 * migrate_entry.c (mig_run()) opens the monitor, has every strategy sweep
 * what dead runs left in QEMU, resolves the drives and picks the strategy
 * the mode names.  A strategy (struct mig_strategy,
 * with a header of its own) owns one attempt: what it adds to QEMU,
 * how it copies, how it undoes an attempt.  Mirror mode (migrate_mirror.c:
 * QEMU's blockdev-mirror pushes) and bitmap mode (migrate_bitmap*.c:
 * volmig's copier pulls from QEMU's NBD export, converging on dirty
 * bitmaps) are the two.  The model is QEMU's block/mirror.c, where the
 * mirror and commit drivers share mirror_run and differ in a few
 * callbacks.
 */
#ifndef VOLMIG_MIGRATE_RUN_H
#define VOLMIG_MIGRATE_RUN_H

#include "engine/migrate.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qmp;

#define RUN_QMP_TIMEOUT_MS 30000

/* How an attempt ended.  RETRY: the attempt was cleaned up and another may
 * succeed; FINAL: no attempt can (bad input, a refusal that repeats); GONE:
 * QEMU itself vanished; CANCELLED: the user asked. */
enum attempt { ATT_OK, ATT_RETRY, ATT_FINAL, ATT_GONE, ATT_CANCELLED };

struct mig_run;

struct mig_strategy {
    const char *name;
    /* Once, before the first attempt: checks and state.  -1 with err_msg():
     * the run fails without an attempt. */
    int (*init)(struct mig_run *r);
    /* One attempt, numbered from 0: from nothing of ours in QEMU to the
     * switchover done.  Everything but ATT_OK is followed by cleanup(),
     * except ATT_GONE. */
    enum attempt (*attempt)(struct mig_run *r, int attempt);
    /* Undoes what a failed attempt added; keeps err_msg() as it found it.
     * The core has already cancelled a memory migration it started. */
    void (*cleanup)(struct mig_run *r);
    /* After a successful attempt, before the completed event, which it may
     * add fields to. */
    void (*complete)(struct mig_run *r, json_t *completed);
    /* At the very end, whatever the result (the monitor may be closed). */
    void (*finish)(struct mig_run *r, enum mig_result res);
};

struct mig_run {
    struct mig_config *cfg;
    struct qmp *q;                   /* NULL for a strategy that needs no
                                      * monitor (libvirt's: run_nap sleeps) */
    int64_t t0;                      /* qmp_now_ms() at the start */
    const struct mig_strategy *strategy;
    void *state;                     /* the strategy's; it frees it in finish() */
    bool migration_started;          /* ours to cancel if the attempt fails */
};

/* ---- for strategies ---- */

int64_t run_dl(int64_t ms);                       /* a deadline ms from now */
double run_secs(const struct mig_run *r);         /* since the start */
/* Sends an event (stolen), stamped with "t". */
void run_emit(struct mig_run *r, json_t *ev);
bool run_cancelled(const struct mig_run *r);
/* Sleeps up to ms, waking early on any QMP event (events only wake us:
 * job and migration state is read by polling, which cannot miss one).
 * -1 when the monitor is gone. */
int run_nap(struct mig_run *r, int ms);
/* After a failed QMP call: GONE when the monitor went away, FINAL when
 * QEMU refused the command's arguments (mig_error_permanent()), else
 * if_open. */
enum attempt run_qmp_failed(const struct mig_run *r, enum attempt if_open);

/* The element of a JSON array of objects whose key is the string val. */
json_t *run_find_by(json_t *arr, const char *key, const char *val);

/* The name of an object of this run: MIG_NAME_PREFIX "PID-" what. */
void run_name(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* QEMU's NBD server and exports, as both modes use them: bitmap mode
 * copies through its exports, and the latency-aware copy probes through
 * one.  A server volmig starts listens on a private socket,
 * RUN_SOCK_PARENT/volmig-PID.XXXXXX/RUN_SOCK_NAME: a later run's sweep
 * (bitmap_sweep()) finds a dead run's server by that directory. */
#define RUN_SOCK_PARENT "/tmp"
#define RUN_SOCK_NAME   "nbd.sock"

struct run_sock {
    char dir[64];                    /* "" when none was made */
    char path[128];                  /* dir/RUN_SOCK_NAME */
};

/* Makes the private socket directory and starts QEMU's NBD server there.
 * -1 with err_msg() (QEMU's own words when it refused); the directory is
 * then already removed. */
int run_nbd_server_start(struct mig_run *r, struct run_sock *s);
/* Removes the socket and its directory, if made.  It lives on this host,
 * so this is done whatever became of QEMU. */
void run_sock_remove(struct run_sock *s);
/* Adds a read-only NBD export of node, with id as its name too. */
int run_export_ro_add(struct qmp *q, const char *id, const char *node);
/* Deletes an export and waits until it is gone (until then a bitmap it
 * exports is busy and cannot be removed).  -1 with err_msg(). */
int run_export_del(struct qmp *q, const char *id);

/* migrate:URI: memory migration with pause-before-switchover, up to the
 * pause.  watch (may be NULL) is called while waiting: non-zero ends the
 * wait with that attempt result. */
enum attempt run_migration_start(struct mig_run *r, enum attempt (*watch)(struct mig_run *r));
/* The switching event, right before the step after which the VM may run
 * on the targets (step: "job-complete", "migrate-continue"): a cancel that
 * arrives later may not undo the switch.  The controller records it (as
 * KubeVirt's targetNodeDomainReadyTimestamp).  run_migration_continue()
 * sends it itself. */
void run_switching(struct mig_run *r, const char *step);
/* In the pause, after the strategy finished the volumes: continues the
 * migration and waits for it to complete; *last (may be NULL) receives
 * query-migrate's last answer. */
enum attempt run_migration_continue(struct mig_run *r, json_t **last);

/* The retry loop: attempts until one succeeds, fails for good, QEMU goes,
 * the retries run out or the user cancels; events failed, retrying,
 * cancelled, lost, completed.  r->cfg, r->q, r->t0 and r->strategy set. */
enum mig_result run_attempts(struct mig_run *r);

/* ---- pure parts ---- */

/* The length of node's base name: without the ".mPID" suffix a pivot gives
 * the node the VM moves onto (strlen(node) when it has none). */
size_t mig_pivot_base(const char *node);

/* True when QEMU's answer to cmd (error class cls, description desc) will
 * be the same however often it is asked: it refused the arguments
 * (an invalid parameter or address, a command it does not have). */
bool mig_error_permanent(const char *cmd, const char *cls, const char *desc);

#endif
