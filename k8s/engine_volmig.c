/* The controller's engine: each migration a `volmig migrate` child. */
#include "common/error.h"
#include "engine/migrate_job.h"
#include "k8s/engine.h"

#include <stdlib.h>
#include <string.h>

static int v_start(void *engine, const struct k8s_engine_job *job, void **handle)
{
    const char **d = calloc(job->nvolumes + 1, sizeof *d), **t = calloc(job->nvolumes + 1, sizeof *t);
    struct mig_job *j = NULL;

    if (d && t) {
        for (size_t i = 0; i < job->nvolumes; i++) {
            d[i] = job->volumes[i].drive;
            t[i] = job->volumes[i].target;
        }
        j = mig_job_start(engine, job->qmp, job->switchover, d, t, job->nvolumes, job->speed,
                          job->mode);
    } else {
        err_set(0, "out of memory");
    }
    free(d);
    free(t);
    *handle = j;
    return j ? 0 : -1;
}

/* The child's last progress per volume and its switching event. */
static void v_report(struct mig_job *j, struct k8s_engine_report *rep)
{
    struct mig_job_progress p[32];
    size_t n = mig_job_progress(j, p, rep->nvolumes < 32 ? rep->nvolumes : 32);

    for (size_t i = 0; i < rep->nvolumes; i++)
        rep->volumes[i] = i < n && p[i].known
            ? (struct k8s_engine_volume_progress){ p[i].done, p[i].total, p[i].rate, p[i].eta, true }
            : (struct k8s_engine_volume_progress){ .eta = -1 };
    rep->switching = mig_job_switching(j);
}

static int v_poll(void *engine, void *handle, enum k8s_engine_phase *phase, bool *lost,
                  char *message, size_t message_size, struct k8s_engine_report *report)
{
    (void)engine;
    *lost = false;
    switch (mig_job_poll(handle, message, message_size)) {
    case MIG_JOB_STARTING:  *phase = K8S_ENGINE_SCHEDULING; break;
    case MIG_JOB_RUNNING:   *phase = K8S_ENGINE_RUNNING; break;
    case MIG_JOB_SUCCEEDED: *phase = K8S_ENGINE_SUCCEEDED; break;
    case MIG_JOB_LOST:      *lost = true; *phase = K8S_ENGINE_FAILED; break;
    default:                *phase = K8S_ENGINE_FAILED; break;
    }
    if (report)
        v_report(handle, report);
    return 0;
}

static int v_cancel(void *engine, void *handle)
{
    (void)engine;
    mig_job_cancel(handle);
    return 0;
}

static void v_release(void *engine, void *handle)
{
    (void)engine;
    mig_job_free(handle);
}

const struct k8s_engine_ops k8s_engine_volmig = {
    .name = "volmig migrate",
    .start = v_start,
    .poll = v_poll,
    .cancel = v_cancel,
    .release = v_release,
};
