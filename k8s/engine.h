/* The controller's view of the migration engine: an ops table, so that
 * k8s/ never includes engine/ internals and the controller can be tested
 * with a fake.  k8s_engine_volmig (k8s/engine_volmig.c) runs each job as a
 * `volmig migrate` child process.
 *
 * The controller (k8s/controller.c), for every VirtualMachineInstanceMigration
 * the reconcile step creates: resolve the VMI to a QMP address (annotation
 * on the VMI) and each migrated volume to a path (PVC -> PersistentVolume
 * hostPath/local.path), call start(), poll() until a final phase, writing
 * the phase (and phaseTransitionTimestamps) into the VMIM's status, and
 * cancel() when the reconcile step deletes the VMIM.
 */
#ifndef VOLMIG_K8S_ENGINE_H
#define VOLMIG_K8S_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

/* The phases a VMIM goes through, as KubeVirt spells them. */
enum k8s_engine_phase {
    K8S_ENGINE_PENDING,     /* "Pending" */
    K8S_ENGINE_SCHEDULING,  /* "Scheduling": connecting to the target */
    K8S_ENGINE_RUNNING,     /* "Running": mirrors copying / READY */
    K8S_ENGINE_SUCCEEDED,   /* "Succeeded": switched over */
    K8S_ENGINE_FAILED,      /* "Failed": the message says why */
};

struct k8s_engine_volume {
    const char *drive;      /* the QEMU drive / node of the volume */
    const char *target;     /* TARGET as `volmig migrate --volume` takes it */
};

struct k8s_engine_job {
    const char *vmim;       /* namespace/name of the migration object */
    const char *qmp;        /* unix:PATH or libvirt:DOMAIN[?uri=URI] */
    const char *switchover; /* "pivot" on one host, "migrate:URI" across */
    const struct k8s_engine_volume *volumes;
    size_t nvolumes;
    unsigned long long speed; /* bytes/s per volume, 0: no limit (KubeVirt's
                                 migrations.bandwidthPerMigration) */
    /* "mirror" or "bitmap" (volmig migrate --mode), NULL: the engine's
     * default (mirror).  From the VMI's volmig.io/mode annotation.  In
     * bitmap mode a migration that fails keeps what it copied, and the
     * next one (KubeVirt's retry after its backoff) resumes from it. */
    const char *mode;
};

/* One volume's storage progress, as the engine last saw it. */
struct k8s_engine_volume_progress {
    long long done, total;  /* bytes (bitmap mode: of the pass under way) */
    double rate;            /* bytes/s, 0: not known yet */
    double eta;             /* seconds, -1: not known */
    bool known;             /* false: no figure for this volume yet */
};

/* What poll() reports beyond the phase.  The caller provides volumes
 * (room for nvolumes, the job's volumes in the order start() got them). */
struct k8s_engine_report {
    struct k8s_engine_volume_progress *volumes;
    size_t nvolumes;
    /* The engine is about to switch the VM over (QEMU's job-complete or
     * migrate-continue) or has: a cancel may no longer undo the switch.
     * KubeVirt's counterpart is targetNodeDomainReadyTimestamp. */
    bool switching;
};

/* Every call returns within a bounded time (poll never blocks); -1 with
 * err_msg() set on failure.  The handle is owned by the engine until
 * release(). */
struct k8s_engine_ops {
    const char *name;
    int (*start)(void *engine, const struct k8s_engine_job *job, void **handle);
    /* *lost: QEMU itself went away (the VMI is final; manual recovery).
     * report (may be NULL): per-volume progress and the switching signal;
     * an engine that has no figure for a volume leaves it !known. */
    int (*poll)(void *engine, void *handle, enum k8s_engine_phase *phase, bool *lost,
                char *message, size_t message_size, struct k8s_engine_report *report);
    int (*cancel)(void *engine, void *handle);
    void (*release)(void *engine, void *handle);
};

/* The real engine: `volmig migrate` children of the binary at
 * engine == the path of the volmig executable (a const char *). */
extern const struct k8s_engine_ops k8s_engine_volmig;

/* The phase's name in a VMIM's status.phase. */
const char *k8s_engine_phase_name(enum k8s_engine_phase p);

#endif
