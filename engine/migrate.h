/* The migration orchestrator: moves the volumes of a running QEMU with
 * blockdev-mirror, driven over QMP, and switches the VM over.
 *
 *   copy:       one mirror per volume into its target (an NBD export, for
 *               instance volmig serve on the destination host, or a file)
 *   converge:   every mirror READY
 *   switchover: pivot   - job-complete: the VM now runs on the targets
 *               migrate - memory migration paused before switchover; the
 *                         mirrors finish consistent (non-forced cancel), the
 *                         targets are flushed and detached, then the
 *                         migration continues
 *               none    - the mirrors finish consistent; the VM stays put
 *
 * A failed attempt is cleaned up (jobs cancelled, nodes removed) and
 * retried after a backoff that doubles.  Cancellation at any point leaves
 * the VM running on its own volumes with nothing of ours left in QEMU.
 * The source volumes are only ever read.
 */
#ifndef VOLMIG_MIGRATE_H
#define VOLMIG_MIGRATE_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/latency.h"
#include "engine/target_uri.h"

enum mig_switchover { MIG_SW_NONE, MIG_SW_PIVOT, MIG_SW_MIGRATE };

/* mirror: QEMU's blockdev-mirror pushes (this file); bitmap: volmig's own
 * copier pulls and converges on dirty bitmaps (engine/migrate_bitmap.h). */
enum mig_mode { MIG_MODE_MIRROR, MIG_MODE_BITMAP };

enum mig_result {
    MIG_DONE = 0,
    MIG_FAILED = 1,
    MIG_CANCELLED = 3,
};

struct mig_volume {
    const char *drive;        /* node name, drive id or qdev id, as given */
    const char *target;       /* target URI, as given */
    struct target_uri uri;
    /* filled in by the orchestrator */
    char node[128];           /* the source node being mirrored */
    uint64_t size;            /* source size */
    uint64_t target_size;
    char job[64];             /* our job id */
    char proto_node[64];      /* our target protocol node */
    char top_node[64];        /* our target node the mirror writes into */
    bool added_proto, added_top, started;
    uint64_t done, total;     /* last progress seen */
    char status[24];          /* last job status seen */
};

struct mig_config {
    const char *qmp;                 /* unix:PATH or libvirt:DOMAIN */
    struct mig_volume *vols;
    int nvols;
    enum mig_switchover switchover;
    const char *migrate_uri;         /* for MIG_SW_MIGRATE */
    enum mig_mode mode;
    int64_t converge_below;          /* bitmap: pause when this little is
                                      * dirty; -1: what 100 ms of copying
                                      * moves (1 MiB to 64 MiB) */
    /* bitmap: QEMU already runs an NBD server, started by someone else
     * (libvirt, an operator), listening on this unix socket.  volmig then
     * adds its exports to that server and never starts or stops it; NULL:
     * volmig starts QEMU's one NBD server itself on a private socket. */
    const char *nbd_socket;
    /* bitmap: where a failed run keeps what a later run resumes from
     * (engine/migrate_bitmap_keep.c); NULL: $VOLMIG_STATE_DIR, else
     * $XDG_RUNTIME_DIR/volmig, else /tmp/volmig-UID. */
    const char *state_dir;
    bool write_blocking;             /* copy-mode write-blocking */
    int retries;                     /* attempts after the first */
    double backoff_s;                /* first retry delay; doubles */
    uint64_t granularity;            /* 0: QEMU's default */
    uint64_t buf_size;               /* 0: QEMU's default */
    uint64_t speed;                  /* bytes per second per mirror, 0: no limit */
    int progress_ms;                 /* progress event interval */
    int converge_warn_s;             /* warn when not converging this long */
    /* The guest's p99 write latency to keep the copy under
     * (engine/latency_watch.h): by default twice what it was before the
     * copy; --latency-budget off turns the controller off.  speed stays a
     * ceiling the controller never exceeds. */
    struct lat_budget latency_budget;
    /* TLS to NBD targets (at most one of creds and psk).  tls_creds: a
     * directory for QEMU's tls-creds-x509 endpoint=client (ca-cert.pem,
     * and client-cert.pem/client-key.pem if the server wants them).
     * tls_psk: a keys.psk file (USERNAME:HEXKEY lines; the first user is
     * ours), or a directory holding one.  tls_hostname: the name the
     * server's certificate must carry, when not the host in the URI. */
    const char *tls_creds;
    const char *tls_psk;
    const char *tls_hostname;
    volatile sig_atomic_t *cancel;   /* set by a signal handler */
    /* Receives every event (a JSON object, stolen): started, progress,
     * ready, switchover, switching (right before job-complete or
     * migrate-continue), completed, failed, retrying, cancelled, warning,
     * and in bitmap mode pass, converged, paused, resumed, kept. */
    void (*emit)(void *opaque, json_t *event);
    void *opaque;
};

/* Everything volmig adds to QEMU (jobs, nodes, exports, bitmaps, objects)
 * is named MIG_NAME_PREFIX "PID-...", so a later run can tell what a dead
 * run left behind. */
#define MIG_NAME_PREFIX "volmig-"
/* The PID in such a name; 0 if NAME is not one of ours. */
int mig_name_pid(const char *name);
/* True when PID is another process, and one that no longer exists. */
bool mig_pid_dead(int pid);

/* The defaults `volmig migrate` documents: 3 retries after 20 s doubling,
 * 64 MiB mirror buffers, progress every 500 ms, a convergence warning
 * after 30 s, bitmap mode's threshold from its copy rate, a latency
 * budget of twice the guest's p99 before the copy; mirror mode,
 * switchover none. */
void mig_config_defaults(struct mig_config *cfg);

/* Runs one migration to its end.  MIG_FAILED leaves a message in
 * err_msg(). */
enum mig_result mig_run(struct mig_config *cfg);

#endif
