/* The controller loop: the store is the truth; reconcile() decides; the
 * engine moves data.  Each round loads every object, runs the reconcile
 * step to a fixed point, writes back what changed, then drives one engine
 * job per migration object and writes the job's phase into the object.
 *
 * Mapping to the running system (volmig's own conventions, documented in
 * the README):
 *   - a VMI's QEMU: annotation volmig.io/qmp (unix:PATH or libvirt:DOMAIN);
 *   - a volume's drive in QEMU: annotation volmig.io/drive.VOLUME on the
 *     VMI, else the volume's name;
 *   - a claim's storage: its PersistentVolume's spec.hostPath.path or
 *     spec.local.path (found through the claim's spec.volumeName), used as
 *     file:PATH on this host, so the switchover is pivot;
 *   - a migration object annotated volmig.io/migrate-uri: URI goes to
 *     another host with migrate:URI, each volume to the NBD URI in the
 *     VMIM annotation volmig.io/target.VOLUME.
 *
 * It stands in for KubeVirt's migration controller and virt-handler: a
 * Pending migration held by KubeVirt's backoff (k8s_migration_backoff) is
 * not started yet; a running one gets its phases, KubeVirt's
 * status.migrationState fields and volmig's progress annotation; the VMI's
 * status.migrationState follows the migration in progress.
 */
#include "k8s/controller.h"
#include "common/error.h"
#include "k8s/internal.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#define MAX_JOBS 64
#define ROUND_MS 500
#define PROGRESS_EVERY_S 2   /* how often a running migration's progress is written */

struct tracked {
    char ns[254], name[254];     /* the VMIM */
    char vmi[254];
    void *handle;
    enum k8s_engine_phase phase;
    bool cancelled;
    json_t *vols;                /* the VMI's migratedVolumes at the start (owned) */
    /* The engine's figures per job volume, and for migratedVolumes entry i
     * the job volume job_of[i] (-1: not in the job). */
    struct k8s_engine_volume_progress vp[32];
    size_t njobvols;
    int job_of[32];
    bool switching;              /* the engine said it is switching over */
    struct k8s_progress prog;
    time_t written;              /* when the progress was last written */
};

struct ctl {
    const struct k8s_controller_config *cfg;
    struct tracked jobs[MAX_JOBS];
    int njobs;
};

static void clog_(const struct ctl *c, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    if (!c->cfg->log)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    c->cfg->log("%s", buf);
}

static json_t *find(const json_t *world, const char *kind, const char *ns, const char *name)
{
    size_t i;
    json_t *o;

    json_array_foreach(world, i, o)
        if (!strcmp(k8s_kind(o), kind) && !strcmp(k8s_namespace(o), ns) &&
            !strcmp(k8s_name(o), name))
            return o;
    return NULL;
}

static const char *annotation(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(k8s_get(o, "metadata.annotations"), key));
}

/* Writes obj unless the store's copy changed since `seen` was loaded
 * (someone applied meanwhile): then the next round sees both. */
static int write_if_unchanged(const char *dir, const json_t *seen, const json_t *obj)
{
    char file[600], path[1200];
    json_t *cur;
    bool same = true;

    if (seen && k8s_store_filename(obj, file, sizeof file) == 0) {
        snprintf(path, sizeof path, "%s/%s", dir, file);
        cur = k8s_load_file(path);
        if (cur) {
            same = json_array_size(cur) == 1 && json_equal(json_array_get(cur, 0), seen);
            json_decref(cur);
        }
        err_clear();
    }
    if (!same)
        return 1;
    return k8s_store_write(dir, obj);
}

/* Writes back what the reconcile step changed, deletes what it deleted. */
static int persist(struct ctl *c, const json_t *before, const json_t *after, bool *changed)
{
    size_t i;
    json_t *o;

    json_array_foreach(after, i, o) {
        json_t *old = find(before, k8s_kind(o), k8s_namespace(o), k8s_name(o));

        if (old && json_equal(old, o))
            continue;
        *changed = true;
        if (write_if_unchanged(c->cfg->store, old, o) < 0)
            return -1;
    }
    json_array_foreach(before, i, o)
        if (!find(after, k8s_kind(o), k8s_namespace(o), k8s_name(o))) {
            *changed = true;
            if (k8s_store_delete(c->cfg->store, o) < 0)
                return -1;
        }
    return 0;
}

static void set_phase(json_t *vmim, const char *phase, const char *message, time_t now)
{
    json_t *st = k8s_mkpath(vmim, "status"), *ts = json_object_get(st, "phaseTransitionTimestamps");
    char when[32];

    k8s_format_time(now, when);
    json_object_set_new(st, "phase", json_string(phase));
    if (!json_is_array(ts)) {
        ts = json_array();
        json_object_set_new(st, "phaseTransitionTimestamps", ts);
    }
    json_array_append_new(ts, json_pack("{s:s, s:s}", "phase", phase,
                                        "phaseTransitionTimestamp", when));
    if (message && *message)
        json_object_set_new(st, "message", json_string(message));
}

/* The file path behind a claim: claim -> PersistentVolume -> hostPath or
 * local path. */
static const char *claim_path(const json_t *world, const char *ns, const char *claim)
{
    json_t *pvc = find(world, "PersistentVolumeClaim", ns, claim), *pv;
    const char *pvname = pvc ? k8s_get_str(pvc, "spec.volumeName") : NULL;
    const char *p;

    if (!pvname || !(pv = find(world, "PersistentVolume", "", pvname)))
        return NULL;
    p = k8s_get_str(pv, "spec.hostPath.path");
    return p ? p : k8s_get_str(pv, "spec.local.path");
}

/* Builds and starts the engine job for a Pending migration object.
 * Returns 0 (started), or -1 with a message for a Failed phase. */
static int start_job(struct ctl *c, const json_t *world, const json_t *vmim, struct tracked *t,
                     char *why, size_t whylen)
{
    const char *ns = k8s_namespace(vmim), *vminame = k8s_get_str(vmim, "spec.vmiName");
    json_t *vmi = vminame ? find(world, "VirtualMachineInstance", ns, vminame) : NULL;
    json_t *mv = vmi ? k8s_get(vmi, "status.migratedVolumes") : NULL, *e;
    const char *qmp = vmi ? annotation(vmi, "volmig.io/qmp") : NULL;
    const char *muri = annotation(vmim, "volmig.io/migrate-uri");
    const char *mode = vmi ? annotation(vmi, "volmig.io/mode") : NULL;
    struct k8s_engine_volume vols[32];
    char drives[32][300], targets[32][4200], sw[600];
    struct k8s_engine_job job;
    char ref[600];
    int job_of[32];
    size_t i, n = 0;

    if (!vmi || !json_array_size(mv)) {
        snprintf(why, whylen, "VMI %s/%s has no migrated volumes", ns, vminame ? vminame : "?");
        return -1;
    }
    if (!qmp) {
        snprintf(why, whylen, "VMI %s/%s has no volmig.io/qmp annotation naming its QEMU", ns,
                 vminame);
        return -1;
    }
    if (mode && strcmp(mode, "mirror") && strcmp(mode, "bitmap")) {
        snprintf(why, whylen, "VMI %s/%s: annotation volmig.io/mode '%s': use mirror or bitmap",
                 ns, vminame, mode);
        return -1;
    }
    if (mode && !strcmp(mode, "bitmap") && !muri) {
        /* Bitmap mode does not pivot (engine/migrate_bitmap.c says why). */
        snprintf(why, whylen, "VMI %s/%s: volmig.io/mode bitmap needs a migration to another "
                 "host (volmig.io/migrate-uri): on one host the VM pivots, which only mirror "
                 "mode does", ns, vminame);
        return -1;
    }
    json_array_foreach(mv, i, e) {
        const char *vol = k8s_get_str(e, "volumeName");
        const char *claim = k8s_get_str(e, "destinationPVCInfo.claimName");
        const char *d, *path;
        char key[400];

        if (i < 32)
            job_of[i] = -1;
        if (!vol || !claim || n == 32)
            continue;
        if (i < 32)
            job_of[i] = (int)n;
        snprintf(key, sizeof key, "volmig.io/drive.%s", vol);
        d = annotation(vmi, key);
        snprintf(drives[n], sizeof drives[n], "%s", d ? d : vol);
        if (muri) {
            snprintf(key, sizeof key, "volmig.io/target.%s", vol);
            path = annotation(vmim, key);
            if (!path) {
                snprintf(why, whylen, "migration to another host needs annotation %s", key);
                return -1;
            }
            snprintf(targets[n], sizeof targets[n], "%s", path);
        } else {
            path = claim_path(world, ns, claim);
            if (!path) {
                snprintf(why, whylen, "claim %s/%s is not bound to a PersistentVolume with a "
                         "hostPath or local path", ns, claim);
                return -1;
            }
            snprintf(targets[n], sizeof targets[n], "file:%s", path);
        }
        vols[n].drive = drives[n];
        vols[n].target = targets[n];
        n++;
    }
    snprintf(sw, sizeof sw, muri ? "migrate:%s" : "pivot", muri);
    snprintf(ref, sizeof ref, "%s/%s", ns, k8s_name(vmim));
    job = (struct k8s_engine_job){ ref, qmp, sw, vols, n, 0, mode };
    {
        /* KubeVirt's bandwidth limit for migrations applies to the copy. */
        json_t *kv;
        size_t k;
        long long bw;

        json_array_foreach(world, k, kv)
            if (!strcmp(k8s_kind(kv), "KubeVirt") &&
                k8s_quantity(k8s_get(kv, "spec.configuration.migrations.bandwidthPerMigration"),
                             &bw) == 0 && bw > 0)
                job.speed = (unsigned long long)bw;
        err_clear();
    }
    if (c->cfg->ops->start(c->cfg->engine, &job, &t->handle) < 0) {
        snprintf(why, whylen, "%s", err_msg());
        return -1;
    }
    snprintf(t->ns, sizeof t->ns, "%s", ns);
    snprintf(t->name, sizeof t->name, "%s", k8s_name(vmim));
    snprintf(t->vmi, sizeof t->vmi, "%s", vminame);
    t->phase = K8S_ENGINE_SCHEDULING;
    t->vols = json_deep_copy(mv);
    t->njobvols = n;
    t->switching = false;
    memset(t->vp, 0, sizeof t->vp);
    for (i = 0; i < 32; i++)
        t->job_of[i] = i < json_array_size(mv) ? job_of[i] : -1;
    clog_(c, "migration %s: started (%zu volume%s, %s)", ref, n, n == 1 ? "" : "s", sw);
    return 0;
}

static struct tracked *tracked_for(struct ctl *c, const char *ns, const char *name)
{
    for (int i = 0; i < c->njobs; i++)
        if (!strcmp(c->jobs[i].ns, ns) && !strcmp(c->jobs[i].name, name))
            return &c->jobs[i];
    return NULL;
}

/* status.migrationState of the migration object, with the fields of
 * KubeVirt's VirtualMachineInstanceMigrationState that a volmig run fills. */
static void set_migration_state(json_t *vmim, enum k8s_engine_phase p, const char *msg, time_t now)
{
    json_t *ms = k8s_mkpath(vmim, "status.migrationState");
    char when[32];

    k8s_format_time(now, when);
    if (p == K8S_ENGINE_SCHEDULING || !json_object_get(ms, "startTimestamp"))
        json_object_set_new(ms, "startTimestamp", json_string(when));
    if (p == K8S_ENGINE_SUCCEEDED || p == K8S_ENGINE_FAILED) {
        json_object_set_new(ms, "endTimestamp", json_string(when));
        json_object_set_new(ms, "completed", json_boolean(p == K8S_ENGINE_SUCCEEDED));
        /* Set earlier when the engine's switching event came in a round
         * of its own (switching_over()). */
        if (p == K8S_ENGINE_SUCCEEDED && !json_object_get(ms, "targetNodeDomainReadyTimestamp"))
            json_object_set_new(ms, "targetNodeDomainReadyTimestamp", json_string(when));
        if (p == K8S_ENGINE_FAILED) {
            json_object_set_new(ms, "failed", json_true());
            if (msg && *msg)
                json_object_set_new(ms, "failureReason", json_string(msg));
        }
    }
}

/* The VMI's status.migrationState, as virt-handler keeps it for the
 * migration in progress: a new one replaces the last one's (so that an old
 * targetNodeDomainReadyTimestamp does not stop the next cancellation);
 * success marks the target domain ready, which is when the VM runs on the
 * destinations. */
static void vmi_migration_state(const char *store, json_t *world, const struct tracked *t,
                                const json_t *vmim, enum k8s_engine_phase p, time_t now)
{
    json_t *vmi = find(world, "VirtualMachineInstance", t->ns, t->vmi), *seen, *ms;
    const char *uid = k8s_get_str(vmim, "metadata.uid");
    char when[32];

    if (!vmi)
        return;
    seen = json_deep_copy(vmi);
    k8s_format_time(now, when);
    if (p == K8S_ENGINE_SCHEDULING) {
        ms = json_pack("{s:s, s:s}", "startTimestamp", when, "mode", "PreCopy");
        if (uid)
            json_object_set_new(ms, "migrationUid", json_string(uid));
        json_object_set_new(k8s_mkpath(vmi, "status"), "migrationState", ms);
    } else {
        ms = k8s_mkpath(vmi, "status.migrationState");
        json_object_set_new(ms, "endTimestamp", json_string(when));
        json_object_set_new(ms, "completed", json_true());
        if (p == K8S_ENGINE_SUCCEEDED && !json_object_get(ms, "targetNodeDomainReadyTimestamp"))
            json_object_set_new(ms, "targetNodeDomainReadyTimestamp", json_string(when));
        else
            json_object_set_new(ms, "failed", json_true());
    }
    write_if_unchanged(store, seen, vmi);
    json_decref(seen);
}

/* The engine is about to switch the VM over (job-complete,
 * migrate-continue): from here a cancel may not undo it.  KubeVirt marks
 * that point with targetNodeDomainReadyTimestamp in the VMI's (and the
 * migration object's) status.migrationState, and a revert then leaves the
 * migration object alone instead of deleting it; volmig sets it here, at
 * the last moment the engine can tell, rather than only after success. */
static void switching_over(struct ctl *c, json_t *world, const struct tracked *t, json_t *vmim,
                           time_t now)
{
    json_t *vmi = find(world, "VirtualMachineInstance", t->ns, t->vmi), *seen;
    char when[32];

    k8s_format_time(now, when);
    clog_(c, "migration %s/%s: switching over", t->ns, t->name);
    seen = json_deep_copy(vmim);
    json_object_set_new(k8s_mkpath(vmim, "status.migrationState"),
                        "targetNodeDomainReadyTimestamp", json_string(when));
    write_if_unchanged(c->cfg->store, seen, vmim);
    json_decref(seen);
    if (!vmi)
        return;
    seen = json_deep_copy(vmi);
    json_object_set_new(k8s_mkpath(vmi, "status.migrationState"),
                        "targetNodeDomainReadyTimestamp", json_string(when));
    write_if_unchanged(c->cfg->store, seen, vmi);
    json_decref(seen);
}

/* The volmig.io/progress annotation from the job's last sample. */
static void set_progress(json_t *vmim, struct tracked *t, time_t now)
{
    struct k8s_engine_volume_progress per[32] = { 0 };
    json_t *v;

    for (size_t i = 0; i < 32 && i < json_array_size(t->vols); i++)
        if (t->job_of[i] >= 0)
            per[i] = t->vp[t->job_of[i]];
    v = k8s_progress_json(&t->prog, json_array_size(t->vols) <= 32 ? per : NULL, t->vols, now);
    char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);

    if (text)
        json_object_set_new(k8s_mkpath(vmim, "metadata.annotations"), K8S_ANNOT_PROGRESS,
                            json_string(text));
    free(text);
    json_decref(v);
    t->written = now;
}

/* The migration object was deleted (a cancellation) after the engine had
 * switched the VM over: QEMU runs on the destinations while the VMI names
 * the sources.  KubeVirt guards this with targetNodeDomainReadyTimestamp,
 * which the engine's phases cannot give before the switch; say it loudly,
 * in the log and as a Warning on the VMI. */
static void cancelled_too_late(struct ctl *c, const struct tracked *t, time_t now)
{
    char when[32], name[300], msg[1024];
    const char *parts[3] = { t->ns, t->name, "too-late" };
    json_t *e;

    snprintf(msg, sizeof msg, "migration %s was cancelled after it had switched the VM over: "
             "QEMU now runs on the destination volumes of %s, while the VMI names the sources; "
             "point the VM at the destinations (or migrate back) before it restarts",
             t->name, t->vmi);
    clog_(c, "migration %s/%s: %s", t->ns, t->name, msg);
    k8s_format_time(now, when);
    snprintf(name, sizeof name, "%.200s.%016llx", t->vmi,
             (unsigned long long)k8s_hash(parts, 3));
    e = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s}, s:s, s:s, s:s, s:i, s:s,"
                  " s:s, s:{s:s}}",
                  "apiVersion", "v1", "kind", "Event", "metadata", "name", name, "namespace", t->ns,
                  "involvedObject", "apiVersion", "kubevirt.io/v1", "kind",
                  "VirtualMachineInstance", "name", t->vmi, "namespace", t->ns,
                  "reason", "VolumeMigrationCancelledTooLate", "message", msg, "type", "Warning",
                  "count", 1, "firstTimestamp", when, "lastTimestamp", when, "source",
                  "component", "volmig");
    if (e && !*t->ns) {
        json_object_del(json_object_get(e, "metadata"), "namespace");
        json_object_del(json_object_get(e, "involvedObject"), "namespace");
    }
    if (e && k8s_store_write(c->cfg->store, e) < 0)
        err_clear();
    json_decref(e);
}

static void release_job(struct ctl *c, struct tracked *t)
{
    c->cfg->ops->release(c->cfg->engine, t->handle);
    json_decref(t->vols);
    t->vols = NULL;
}

/* Starts jobs for new migration objects, moves phases of running ones into
 * their objects, cancels jobs whose object is gone.  *busy: work remains. */
static int drive_engine(struct ctl *c, json_t *world, time_t now, bool *busy)
{
    size_t i;
    json_t *o;

    json_array_foreach(world, i, o) {
        const char *ph = k8s_get_str(o, "status.phase");
        json_t *seen;
        struct tracked *t;
        char why[1024] = "";

        time_t until;

        if (strcmp(k8s_kind(o), "VirtualMachineInstanceMigration") ||
            (ph && strcmp(ph, "Pending")) || tracked_for(c, k8s_namespace(o), k8s_name(o)))
            continue;
        if (k8s_migration_backoff(world, o, now, &until)) {
            /* KubeVirt's migration backoff holds it Pending; a round after
             * UNTIL starts it.  With --once that wait is rest: the run
             * ends, and says that a migration failed. */
            *busy = *busy || !c->cfg->once;
            continue;
        }
        if (c->njobs == MAX_JOBS) {
            *busy = true;
            break;
        }
        seen = json_deep_copy(o);
        t = &c->jobs[c->njobs];
        memset(t, 0, sizeof *t);
        if (start_job(c, world, o, t, why, sizeof why) == 0) {
            c->njobs++;
            set_phase(o, "Scheduling", NULL, now);
            set_migration_state(o, K8S_ENGINE_SCHEDULING, NULL, now);
            vmi_migration_state(c->cfg->store, world, t, o, K8S_ENGINE_SCHEDULING, now);
        } else {
            clog_(c, "migration %s/%s: cannot start: %s", k8s_namespace(o), k8s_name(o), why);
            set_phase(o, "Failed", why, now);
            set_migration_state(o, K8S_ENGINE_FAILED, why, now);
            if (c->cfg->failed)
                (*c->cfg->failed)++;
        }
        if (write_if_unchanged(c->cfg->store, seen, o) < 0) {
            json_decref(seen);
            return -1;
        }
        json_decref(seen);
        *busy = true;
    }
    for (int j = 0; j < c->njobs; j++) {
        struct tracked *t = &c->jobs[j];
        json_t *vmim = find(world, "VirtualMachineInstanceMigration", t->ns, t->name);
        enum k8s_engine_phase p;
        struct k8s_engine_report rep;
        bool lost = false;
        char msg[512] = "";

        *busy = true;
        if (!vmim && !t->cancelled) {
            clog_(c, "migration %s/%s: its object is gone: cancelling", t->ns, t->name);
            c->cfg->ops->cancel(c->cfg->engine, t->handle);
            t->cancelled = true;
        }
        rep = (struct k8s_engine_report){ t->vp, t->njobvols, false };
        if (c->cfg->ops->poll(c->cfg->engine, t->handle, &p, &lost, msg, sizeof msg, &rep) < 0)
            p = K8S_ENGINE_FAILED;
        if (vmim && rep.switching && !t->switching && p == K8S_ENGINE_RUNNING) {
            t->switching = true;
            switching_over(c, world, t, vmim, now);
        }
        if (!vmim && t->cancelled && p == K8S_ENGINE_SUCCEEDED)
            cancelled_too_late(c, t, now);
        {
            long long done, total;

            if (k8s_progress_parse(msg, &done, &total))
                k8s_progress_sample(&t->prog, done, total, now);
        }
        if (vmim && p == t->phase && p == K8S_ENGINE_RUNNING && t->prog.known &&
            now - t->written >= PROGRESS_EVERY_S) {
            json_t *seen = json_deep_copy(vmim);

            set_progress(vmim, t, now);
            write_if_unchanged(c->cfg->store, seen, vmim);
            json_decref(seen);
        }
        if (vmim && p != t->phase) {
            json_t *seen = json_deep_copy(vmim);

            /* A job quicker than one round still ran: say so in order. */
            if (p == K8S_ENGINE_SUCCEEDED && t->phase < K8S_ENGINE_RUNNING)
                set_phase(vmim, k8s_engine_phase_name(K8S_ENGINE_RUNNING), NULL, now);
            set_phase(vmim, k8s_engine_phase_name(p), p == K8S_ENGINE_FAILED ? msg : NULL, now);
            if (p == K8S_ENGINE_SUCCEEDED || p == K8S_ENGINE_FAILED) {
                set_migration_state(vmim, p, msg, now);
                if (!lost)
                    vmi_migration_state(c->cfg->store, world, t, vmim, p, now);
            }
            if (t->prog.known)
                set_progress(vmim, t, now);
            if (lost) {
                /* QEMU itself is gone: the VMI is final.  The reconcile step
                 * then asks for manual recovery. */
                json_t *vmi = find(world, "VirtualMachineInstance", t->ns, t->vmi);

                if (vmi) {
                    json_t *vseen = json_deep_copy(vmi);

                    json_object_set_new(k8s_mkpath(vmi, "status"), "phase", json_string("Failed"));
                    write_if_unchanged(c->cfg->store, vseen, vmi);
                    json_decref(vseen);
                }
            }
            clog_(c, "migration %s/%s: %s%s%s", t->ns, t->name, k8s_engine_phase_name(p),
                  msg[0] ? ": " : "", msg);
            if (p == K8S_ENGINE_FAILED && c->cfg->failed)
                (*c->cfg->failed)++;
            write_if_unchanged(c->cfg->store, seen, vmim);
            json_decref(seen);
        }
        t->phase = p;
        if (p == K8S_ENGINE_SUCCEEDED || p == K8S_ENGINE_FAILED) {
            release_job(c, t);
            c->jobs[j] = c->jobs[--c->njobs];
            j--;
        }
    }
    return 0;
}

/* One round.  *busy: something changed or a job is running. */
static int round_once(struct ctl *c, bool *busy)
{
    json_t *world = k8s_store_load(c->cfg->store), *after;
    time_t now = c->cfg->now ? c->cfg->now() : time(NULL);
    int rc = -1;

    *busy = false;
    if (!world)
        return -1;
    after = k8s_reconcile_fixed_point(world, now, 32);
    if (!after)
        goto out;
    if (persist(c, world, after, busy) < 0)
        goto out;
    if (drive_engine(c, after, now, busy) < 0)
        goto out;
    rc = 0;
out:
    json_decref(after);
    json_decref(world);
    return rc;
}

int k8s_controller_run(const struct k8s_controller_config *cfg)
{
    struct ctl c = { .cfg = cfg };
    int in = -1, idle = 0, rc = -1;
    time_t start = time(NULL);

    if (k8s_store_open(cfg->store) < 0)
        return -1;
    in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (in < 0 || inotify_add_watch(in, cfg->store, IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE) < 0) {
        err_set(errno, "inotify on %s", cfg->store);
        goto out;
    }
    clog_(&c, "watching %s", cfg->store);
    for (;;) {
        struct pollfd pfd = { .fd = in, .events = POLLIN };
        char buf[8192];
        bool busy;

        if (round_once(&c, &busy) < 0) {
            err_prefix("store %s", cfg->store);
            goto out;
        }
        if (cfg->stop && *cfg->stop)
            break;
        /* --once: run until the world is at rest and no job is left. */
        idle = busy ? 0 : idle + 1;
        if (cfg->once && idle >= 2)
            break;
        if (cfg->once && cfg->timeout_s && time(NULL) - start > cfg->timeout_s) {
            err_set(0, "the store did not come to rest within %d s", cfg->timeout_s);
            goto out;
        }
        if (poll(&pfd, 1, ROUND_MS) > 0)
            while (read(in, buf, sizeof buf) > 0)
                ;
    }
    rc = 0;
out:
    for (int j = 0; j < c.njobs; j++) {
        cfg->ops->cancel(cfg->engine, c.jobs[j].handle);
        release_job(&c, &c.jobs[j]);
    }
    if (in >= 0)
        close(in);
    return rc;
}
