/* A migration run as a child process (`volmig migrate --output json`),
 * watched without blocking.  The controller drives many of these from one
 * loop; a child also keeps a crash in one migration away from the rest.
 */
#ifndef VOLMIG_JOB_H
#define VOLMIG_JOB_H

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
 * --retries 0 --output json [--speed SPEED]` (speed 0: no limit).  NULL with err_msg() set. */
struct mig_job *mig_job_start(const char *exe, const char *qmp, const char *switchover,
                              const char *const *drives, const char *const *targets, size_t n,
                              unsigned long long speed);
/* Reads what the child said so far; never blocks.  *msg gets the last
 * error or progress line. */
enum mig_job_state mig_job_poll(struct mig_job *j, char *msg, size_t len);
/* Asks the child to cancel (SIGTERM): it cleans up and exits. */
void mig_job_cancel(struct mig_job *j);
/* Kills the child if it still runs, reaps it, frees j. */
void mig_job_free(struct mig_job *j);

#endif
