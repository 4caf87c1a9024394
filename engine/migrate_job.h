/* A migration run as a child process (`volmig migrate --output json`),
 * watched without blocking.  The controller drives many of these from one
 * loop; a child also keeps a crash in one migration away from the rest.
 */
#ifndef VOLMIG_JOB_H
#define VOLMIG_JOB_H

#include <stdbool.h>
#include <stddef.h>

enum mig_job_state {
    MIG_JOB_STARTING,   /* not copying yet: resolving, connecting */
    MIG_JOB_RUNNING,    /* mirrors started */
    MIG_JOB_SUCCEEDED,
    MIG_JOB_FAILED,
    MIG_JOB_CANCELLED,
    MIG_JOB_LOST,       /* QEMU went away: manual recovery is needed */
};

struct mig_job;

/* Starts `EXE migrate --qmp QMP --switchover SWITCHOVER --volume D=T ...
 * --retries 0 --output json [--speed SPEED] [--mode MODE]` (speed 0: no
 * limit; mode NULL: volmig migrate's default, mirror).  NULL with
 * err_msg() set. */
struct mig_job *mig_job_start(const char *exe, const char *qmp, const char *switchover,
                              const char *const *drives, const char *const *targets, size_t n,
                              unsigned long long speed, const char *mode);
/* Reads what the child said so far; never blocks.  *msg gets the last
 * error or progress line. */
enum mig_job_state mig_job_poll(struct mig_job *j, char *msg, size_t len);
/* One volume's last progress, as the child's last progress event gave it
 * (in bitmap mode done and total are those of the pass under way).  rate
 * (bytes/s, smoothed) and eta (seconds, -1: not known) are measured here,
 * per volume, from successive events. */
struct mig_job_progress {
    long long done, total;
    double rate, eta;
    bool known;              /* a progress event named this volume */
};

/* The volumes' last progress, in the order they were given to
 * mig_job_start(), into out (room for n); returns how many were filled. */
size_t mig_job_progress(const struct mig_job *j, struct mig_job_progress *out, size_t n);
/* True once the child said it is switching over (the switching event,
 * right before job-complete or migrate-continue): from then on the VM may
 * be on the targets, and a cancel may come too late to undo it. */
bool mig_job_switching(const struct mig_job *j);

/* Asks the child to cancel (SIGTERM): it cleans up and exits. */
void mig_job_cancel(struct mig_job *j);
/* Kills the child if it still runs, reaps it, frees j. */
void mig_job_free(struct mig_job *j);

#endif
