/* The reconcile step of `updateVolumesStrategy: Migration`: objects in,
 * objects and events out, no I/O.
 *
 * It plays the parts KubeVirt splits over its VM controller, VMI controller
 * and workload updater, for every VirtualMachine in the world:
 *
 *   VM template volumes vs running VMI volumes
 *     -> refuse (RestartRequired, Failure) or accept: VMI status.migratedVolumes,
 *        VMI VolumesChange=True, VM status.volumeUpdateState
 *     -> a VirtualMachineInstanceMigration (VMIM), retried with backoff
 *     -> on Succeeded: VMI spec volumes point at the destinations
 *     -> cancellation (the original set restored) or manual recovery
 *        (the VMI gone while VolumesChange was True).
 *
 * One difference from KubeVirt, chosen for the engine's sake: KubeVirt
 * patches the VMI spec volumes when it accepts the update; here the VMI spec
 * keeps naming the volumes the guest really runs on until the migration
 * object reports Succeeded.  So during an update the VMI spec is the
 * original set, and "reverted" means the VM template agrees with it again.
 *
 * Everything the step decides is written into the objects, so it is a
 * function of its input: the VMIM of the update in flight is remembered in
 * the VMI annotation K8S_ANNOT_CURRENT_VMIM, backoff is computed from the
 * VMIMs' status.phaseTransitionTimestamps, and events that describe a
 * waiting state (MigrationBackoff, a refused start) are emitted once per
 * distinct message, by looking at the Events already in the world.
 */
#include "k8s/internal.h"
#include "common/error.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reasons volmig gives its own conditions, so it clears only what it set. */
#define REASON_RESTART        "VolumesUpdateRequiresRestart"
#define REASON_BAD_STRATEGY   "UnknownUpdateVolumesStrategy"
#define REASON_BAD_TEMPLATE   "InvalidDataVolumeTemplate"
#define REASON_INVALID_UPDATE "InvalidVolumesUpdate"
#define REASON_MISSING_DEST   "MissingDestinationVolume"

struct rc {
    json_t *w;         /* the world being built (owned) */
    json_t *events;    /* events emitted by this step (owned) */
    json_t *deleted;   /* objects deleted by this step (owned) */
    time_t now;
    char nowstr[32];
};

/* ---- small helpers ---- */

uint64_t k8s_hash(const char *const *parts, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < n; i++) {
        for (const char *p = parts[i] ? parts[i] : ""; *p; p++)
            h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
        h = (h ^ 0xff) * 0x100000001b3ULL;
    }
    return h;
}

static bool is_deleted(struct rc *rc, const json_t *obj)
{
    size_t i;
    json_t *d;

    json_array_foreach(rc->deleted, i, d)
        if (d == obj)
            return true;
    return false;
}

static json_t *find(struct rc *rc, const char *kind, const char *ns, const char *name)
{
    size_t i;
    json_t *o;

    json_array_foreach(rc->w, i, o)
        if (!strcmp(k8s_kind(o), kind) && !strcmp(k8s_namespace(o), ns) &&
            !strcmp(k8s_name(o), name) && !is_deleted(rc, o))
            return o;
    return NULL;
}

static json_t *find_kind(struct rc *rc, const char *kind)
{
    size_t i;
    json_t *o;

    json_array_foreach(rc->w, i, o)
        if (!strcmp(k8s_kind(o), kind) && !is_deleted(rc, o))
            return o;
    return NULL;
}

static bool str_eq(const char *a, const char *b)
{
    return a && b && !strcmp(a, b);
}

/* Sets KEY to a formatted string in OBJ. */
static void set_str(json_t *obj, const char *key, const char *s)
{
    json_object_set_new(obj, key, json_string(s));
}

/* "[a b]", Go's %v of a []string, which KubeVirt's messages use. */
static void list_add(char *buf, size_t size, const char *item)
{
    size_t n = strlen(buf);

    if (!n)
        snprintf(buf, size, "[%s]", item);
    else if (n + 1 < size)
        snprintf(buf + n - 1, size - n + 1, " %s]", item);
}

/* The VMIM of the update in flight (an annotation key with dots in it, so
 * not reachable through a dotted path). */
static const char *current_vmim(const json_t *vmi)
{
    return json_string_value(json_object_get(k8s_get(vmi, "metadata.annotations"),
                                             K8S_ANNOT_CURRENT_VMIM));
}

/* ---- conditions ---- */

json_t *k8s_cond_get(const json_t *obj, const char *type)
{
    size_t i;
    json_t *c;

    json_array_foreach(k8s_get(obj, "status.conditions"), i, c)
        if (str_eq(k8s_get_str(c, "type"), type))
            return c;
    return NULL;
}

bool k8s_cond_true(const json_t *obj, const char *type)
{
    return str_eq(k8s_get_str(k8s_cond_get(obj, type), "status"), "True");
}

/* Sets a condition; lastTransitionTime moves only when status does.
 * Returns true when the condition was added or its status changed. */
static bool cond_set(struct rc *rc, json_t *obj, const char *type, bool status,
                     const char *reason, const char *message)
{
    json_t *st = k8s_mkpath(obj, "status");
    json_t *list = json_object_get(st, "conditions");
    json_t *old = k8s_cond_get(obj, type), *c;
    const char *sv = status ? "True" : "False";
    bool transition = !old || !str_eq(k8s_get_str(old, "status"), sv);

    if (!json_is_array(list)) {
        list = json_array();
        json_object_set_new(st, "conditions", list);
    }
    c = json_object();
    set_str(c, "type", type);
    set_str(c, "status", sv);
    if (reason)
        set_str(c, "reason", reason);
    if (message)
        set_str(c, "message", message);
    json_object_set_new(c, "lastProbeTime", json_null());
    if (transition)
        set_str(c, "lastTransitionTime", rc->nowstr);
    else
        json_object_set(c, "lastTransitionTime", json_object_get(old, "lastTransitionTime"));
    if (old) {
        if (json_equal(old, c)) {
            json_decref(c);
            return false;
        }
        json_object_clear(old);
        json_object_update(old, c);
        json_decref(c);
    } else {
        json_array_append_new(list, c);
    }
    return transition;
}

static bool cond_remove(json_t *obj, const char *type, const char *only_reason)
{
    json_t *list = k8s_get(obj, "status.conditions");
    size_t i;
    json_t *c;

    json_array_foreach(list, i, c)
        if (str_eq(k8s_get_str(c, "type"), type) &&
            (!only_reason || str_eq(k8s_get_str(c, "reason"), only_reason))) {
            json_array_remove(list, i);
            return true;
        }
    return false;
}

/* Copies the VMI's condition TYPE onto the VM (KubeVirt mirrors VolumesChange). */
static void cond_copy(json_t *vm, const json_t *vmi, const char *type)
{
    json_t *src = k8s_cond_get(vmi, type), *dst = k8s_cond_get(vm, type), *list;

    if (!src) {
        cond_remove(vm, type, NULL);
        return;
    }
    if (dst) {
        if (!json_equal(dst, src)) {
            json_object_clear(dst);
            json_object_update(dst, src);
        }
        return;
    }
    list = json_object_get(k8s_mkpath(vm, "status"), "conditions");
    if (!json_is_array(list)) {
        list = json_array();
        json_object_set_new(k8s_mkpath(vm, "status"), "conditions", list);
    }
    json_array_append_new(list, json_deep_copy(src));
}

/* ---- events ---- */

static bool event_exists(struct rc *rc, const json_t *about, const char *reason, const char *msg)
{
    size_t i;
    json_t *e;

    json_array_foreach(rc->w, i, e)
        if (!strcmp(k8s_kind(e), "Event") && str_eq(k8s_get_str(e, "reason"), reason) &&
            str_eq(k8s_get_str(e, "message"), msg) &&
            str_eq(k8s_get_str(e, "involvedObject.kind"), k8s_kind(about)) &&
            str_eq(k8s_get_str(e, "involvedObject.name"), k8s_name(about)) &&
            !strcmp(k8s_get_str(e, "involvedObject.namespace") ?
                    k8s_get_str(e, "involvedObject.namespace") : "", k8s_namespace(about)))
            return true;
    return false;
}

/* A core/v1 Event about ABOUT.  Its name is derived from what it says and
 * when, so the same step over the same input names it the same way. */
static void event(struct rc *rc, const json_t *about, bool warning, const char *reason,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void event(struct rc *rc, const json_t *about, bool warning, const char *reason,
                  const char *fmt, ...)
{
    char msg[2048], name[300];
    const char *parts[6];
    json_t *e, *inv;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    parts[0] = k8s_kind(about);
    parts[1] = k8s_namespace(about);
    parts[2] = k8s_name(about);
    parts[3] = reason;
    parts[4] = msg;
    parts[5] = rc->nowstr;
    snprintf(name, sizeof name, "%.200s.%016" PRIx64, k8s_name(about), k8s_hash(parts, 6));
    if (find(rc, "Event", k8s_namespace(about), name))
        return;
    inv = json_object();
    set_str(inv, "apiVersion", k8s_get_str(about, "apiVersion") ? k8s_get_str(about, "apiVersion") : "");
    set_str(inv, "kind", k8s_kind(about));
    set_str(inv, "name", k8s_name(about));
    if (*k8s_namespace(about))
        set_str(inv, "namespace", k8s_namespace(about));
    if (k8s_get_str(about, "metadata.uid"))
        set_str(inv, "uid", k8s_get_str(about, "metadata.uid"));
    e = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Event", "metadata",
                  "name", name);
    if (*k8s_namespace(about))
        set_str(json_object_get(e, "metadata"), "namespace", k8s_namespace(about));
    json_object_set_new(e, "involvedObject", inv);
    set_str(e, "reason", reason);
    set_str(e, "message", msg);
    set_str(e, "type", warning ? "Warning" : "Normal");
    json_object_set_new(e, "count", json_integer(1));
    set_str(e, "firstTimestamp", rc->nowstr);
    set_str(e, "lastTimestamp", rc->nowstr);
    json_object_set_new(e, "source", json_pack("{s:s}", "component", "volmig"));
    json_array_append(rc->w, e);
    json_array_append_new(rc->events, e);
}

/* ---- volumes ---- */

/* The claim a volume names: a DataVolume, a PVC or a memory dump; NULL for
 * every other volume type (containerDisk, cloudInitNoCloud, ...). */
static const char *vol_claim(const json_t *v)
{
    const char *c = k8s_get_str(v, "dataVolume.name");

    if (!c)
        c = k8s_get_str(v, "persistentVolumeClaim.claimName");
    if (!c)
        c = k8s_get_str(v, "memoryDump.claimName");
    return c;
}

static bool vol_hotplug(const json_t *v)
{
    return json_is_true(k8s_get(v, "dataVolume.hotpluggable")) ||
           json_is_true(k8s_get(v, "persistentVolumeClaim.hotpluggable")) ||
           json_is_true(k8s_get(v, "memoryDump.hotpluggable"));
}

static json_t *named(const json_t *list, const char *name)
{
    size_t i;
    json_t *v;

    json_array_foreach(list, i, v)
        if (str_eq(k8s_get_str(v, "name"), name))
            return v;
    return NULL;
}

static json_t *vm_volumes(const json_t *vm)
{
    return k8s_get(vm, "spec.template.spec.volumes");
}

static json_t *vmi_volumes(const json_t *vmi)
{
    return k8s_get(vmi, "spec.volumes");
}

/* The PVC, or failing that the DataVolume's storage spec, of CLAIM. */
static const json_t *claim_spec(struct rc *rc, const char *ns, const char *claim, bool *is_pvc)
{
    json_t *pvc = find(rc, "PersistentVolumeClaim", ns, claim), *dv, *s;

    *is_pvc = pvc != NULL;
    if (pvc)
        return k8s_get(pvc, "spec");
    dv = find(rc, "DataVolume", ns, claim);
    if (!dv)
        return NULL;
    s = k8s_get(dv, "spec.storage");
    return s ? s : k8s_get(dv, "spec.pvc");
}

/* PersistentVolumeClaimInfo: claimName, accessModes, volumeMode, requests,
 * capacity, from the PVC (or the DataVolume that will make it). */
static json_t *pvc_info(struct rc *rc, const char *ns, const char *claim)
{
    json_t *info = json_pack("{s:s}", "claimName", claim), *v;
    json_t *pvc = find(rc, "PersistentVolumeClaim", ns, claim);
    bool is_pvc;
    const json_t *spec = claim_spec(rc, ns, claim, &is_pvc);

    if ((v = k8s_get(spec, "accessModes")))
        json_object_set(info, "accessModes", v);
    if ((v = k8s_get(spec, "volumeMode")))
        json_object_set(info, "volumeMode", v);
    if ((v = k8s_get(spec, "resources.requests")))
        json_object_set(info, "requests", v);
    if (pvc && (v = k8s_get(pvc, "status.capacity")))
        json_object_set(info, "capacity", v);
    return info;
}

/* Size of a claim: the PVC's capacity, else its request, else the
 * DataVolume's request.  -1 when unknown. */
static long long claim_size(struct rc *rc, const char *ns, const char *claim, const char **text)
{
    json_t *pvc = find(rc, "PersistentVolumeClaim", ns, claim);
    const json_t *q = pvc ? k8s_get(pvc, "status.capacity.storage") : NULL;
    bool is_pvc;
    long long b;

    if (!q)
        q = k8s_get(claim_spec(rc, ns, claim, &is_pvc), "resources.requests.storage");
    if (!q || k8s_quantity(q, &b) < 0)
        return -1;
    *text = json_is_string(q) ? json_string_value(q) : NULL;
    return b;
}

static bool claim_rwo(struct rc *rc, const json_t *vmi, const char *volname, const char *claim)
{
    json_t *st = named(k8s_get(vmi, "status.volumeStatus"), volname);
    const json_t *modes = k8s_get(st, "persistentVolumeClaimInfo.accessModes");
    bool is_pvc;
    size_t i;
    json_t *m;

    if (!modes)
        modes = k8s_get(claim_spec(rc, k8s_namespace(vmi), claim, &is_pvc), "accessModes");
    json_array_foreach(modes, i, m)
        if (str_eq(json_string_value(m), "ReadWriteOnce"))
            return true;
    return false;
}

/* ---- the VM's migration state ---- */

static json_t *vm_state(const json_t *vm)
{
    json_t *m = k8s_get(vm, "status.volumeUpdateState.volumeMigrationState.migratedVolumes");

    return json_array_size(m) ? m : NULL;
}

static void vm_state_clear(json_t *vm)
{
    json_t *us = k8s_get(vm, "status.volumeUpdateState");

    if (!us)
        return;
    json_object_del(us, "volumeMigrationState");
    if (!json_object_size(us))
        json_object_del(json_object_get(vm, "status"), "volumeUpdateState");
}

static void vm_state_set(json_t *vm, const json_t *entries)
{
    json_t *s = k8s_mkpath(vm, "status.volumeUpdateState.volumeMigrationState");

    json_object_set_new(s, "migratedVolumes", json_deep_copy(entries));
}

/* "datavolumedisk1: src-dv -> dst-dv, ..." */
static void describe(const json_t *entries, char *buf, size_t size)
{
    size_t i, n = 0;
    json_t *e;

    buf[0] = '\0';
    json_array_foreach(entries, i, e) {
        int k = snprintf(buf + n, size - n, "%s%s: %s -> %s", i ? ", " : "",
                         k8s_get_str(e, "volumeName"),
                         k8s_get_str(e, "sourcePVCInfo.claimName") ? k8s_get_str(e, "sourcePVCInfo.claimName") : "?",
                         k8s_get_str(e, "destinationPVCInfo.claimName") ? k8s_get_str(e, "destinationPVCInfo.claimName") : "?");
        if (k < 0 || (size_t)k >= size - n)
            break;
        n += (size_t)k;
    }
}

/* Whether the VM template points every migrated volume back at its source. */
static bool vm_reverted(const json_t *vm, const json_t *entries)
{
    size_t i;
    json_t *e;

    json_array_foreach(entries, i, e) {
        json_t *v = named(vm_volumes(vm), k8s_get_str(e, "volumeName"));

        if (v && !str_eq(vol_claim(v), k8s_get_str(e, "sourcePVCInfo.claimName")))
            return false;
    }
    return true;
}

/* ---- restart-required and failure conditions ---- */

static void restart_required(struct rc *rc, json_t *vm, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void restart_required(struct rc *rc, json_t *vm, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    const char *old;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    old = k8s_get_str(k8s_cond_get(vm, K8S_COND_RESTART_REQUIRED), "message");
    if (k8s_cond_true(vm, K8S_COND_RESTART_REQUIRED) && str_eq(old, msg))
        return;
    cond_set(rc, vm, K8S_COND_RESTART_REQUIRED, true, REASON_RESTART, msg);
    event(rc, vm, true, "RestartRequired", "%s", msg);
}

static void restart_clear(json_t *vm)
{
    cond_remove(vm, K8S_COND_RESTART_REQUIRED, REASON_RESTART);
}

static void failure(struct rc *rc, json_t *vm, const char *reason, const char *msg)
{
    json_t *old = k8s_cond_get(vm, K8S_COND_FAILURE);

    if (old && str_eq(k8s_get_str(old, "reason"), reason) &&
        str_eq(k8s_get_str(old, "message"), msg))
        return;
    cond_set(rc, vm, K8S_COND_FAILURE, true, reason, msg);
    event(rc, vm, true, reason, "%s", msg);
}

static void failure_clear(json_t *vm, const char *reason)
{
    cond_remove(vm, K8S_COND_FAILURE, reason);
}

/* ---- migration objects ---- */

/* The label value KubeVirt uses for an object: its name, or its UID when
 * the name is too long for a label (or a hash of the name without a UID). */
static void label_value(const json_t *obj, char buf[64])
{
    const char *name = k8s_name(obj), *uid = k8s_get_str(obj, "metadata.uid");

    if (strlen(name) <= 63)
        snprintf(buf, 64, "%s", name);
    else if (uid && strlen(uid) <= 63)
        snprintf(buf, 64, "%s", uid);
    else
        snprintf(buf, 64, "h%016" PRIx64, k8s_hash(&name, 1));
}

static const char *phase(const json_t *vmim)
{
    const char *p = k8s_get_str(vmim, "status.phase");

    return p ? p : "";
}

static bool vmim_final(const json_t *vmim)
{
    return !strcmp(phase(vmim), "Succeeded") || !strcmp(phase(vmim), "Failed");
}

/* When the VMIM entered PHASE: status.phaseTransitionTimestamps, else
 * status.migrationState.endTimestamp, else metadata.creationTimestamp. */
static time_t vmim_time(const json_t *vmim, const char *ph)
{
    size_t i;
    json_t *t;
    time_t when = 0;

    json_array_foreach(k8s_get(vmim, "status.phaseTransitionTimestamps"), i, t)
        if (str_eq(k8s_get_str(t, "phase"), ph) &&
            !k8s_parse_time(k8s_get_str(t, "phaseTransitionTimestamp"), &when))
            return when;
    if (k8s_parse_time(k8s_get_str(vmim, "status.migrationState.endTimestamp"), &when) == 0)
        return when;
    if (k8s_parse_time(k8s_get_str(vmim, "metadata.creationTimestamp"), &when) == 0)
        return when;
    err_clear();
    return 0;
}

static int vmim_cmp_newest_first(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    const char *tx = k8s_get_str(x, "metadata.creationTimestamp");
    const char *ty = k8s_get_str(y, "metadata.creationTimestamp");
    time_t ax = 0, ay = 0;

    if (tx)
        k8s_parse_time(tx, &ax);
    if (ty)
        k8s_parse_time(ty, &ay);
    if (ax != ay)
        return ax > ay ? -1 : 1;
    return -strcmp(k8s_name(x), k8s_name(y));
}

/* The VMIMs of VMI, newest first.  Returns how many (at most MAX). */
static size_t vmims_of(struct rc *rc, const json_t *vmi, json_t **out, size_t max)
{
    size_t i, n = 0;
    json_t *o;

    json_array_foreach(rc->w, i, o)
        if (!strcmp(k8s_kind(o), "VirtualMachineInstanceMigration") && n < max &&
            !strcmp(k8s_namespace(o), k8s_namespace(vmi)) &&
            str_eq(k8s_get_str(o, "spec.vmiName"), k8s_name(vmi)) && !is_deleted(rc, o))
            out[n++] = o;
    qsort(out, n, sizeof *out, vmim_cmp_newest_first);
    return n;
}

static void create_vmim(struct rc *rc, json_t *vm, json_t *vmi, size_t attempt)
{
    static const char alnum[] = "bcdfghjklmnpqrstvwxz2456789";
    char name[64], lv_vmi[64], lv_vm[64], num[32];
    const char *parts[5];
    json_t *m, *labels, *ann;
    uint64_t h;

    snprintf(num, sizeof num, "%zu", attempt);
    parts[0] = k8s_namespace(vmi);
    parts[1] = k8s_name(vmi);
    parts[2] = k8s_get_str(vmi, "metadata.uid");
    parts[3] = rc->nowstr;
    parts[4] = num;
    h = k8s_hash(parts, 5);
    do {
        size_t n = strlen(K8S_VMIM_PREFIX);

        memcpy(name, K8S_VMIM_PREFIX, n);
        for (int i = 0; i < 5; i++, h /= 27)
            name[n++] = alnum[h % 27];
        name[n] = '\0';
        h = h * 0x100000001b3ULL + 1;   /* a collision picks the next name */
    } while (find(rc, "VirtualMachineInstanceMigration", k8s_namespace(vmi), name));

    label_value(vmi, lv_vmi);
    label_value(vm, lv_vm);
    labels = json_pack("{s:s, s:s}", K8S_LABEL_MIGRATION, lv_vmi, K8S_LABEL_IN_PROGRESS, lv_vm);
    ann = json_pack("{s:s}", K8S_ANNOT_WORKLOAD_UPDATE, "");
    m = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s, s:o, s:o}, s:{s:s}, s:{s:s, s:[{s:s, s:s}]}}",
                  "apiVersion", "kubevirt.io/v1", "kind", "VirtualMachineInstanceMigration",
                  "metadata", "name", name, "generateName", K8S_VMIM_PREFIX,
                  "namespace", k8s_namespace(vmi), "creationTimestamp", rc->nowstr,
                  "labels", labels, "annotations", ann,
                  "spec", "vmiName", k8s_name(vmi),
                  "status", "phase", "Pending", "phaseTransitionTimestamps",
                  "phase", "Pending", "phaseTransitionTimestamp", rc->nowstr);
    if (!*k8s_namespace(vmi))
        json_object_del(json_object_get(m, "metadata"), "namespace");
    json_array_append_new(rc->w, m);
    json_object_set_new(k8s_mkpath(vmi, "metadata.annotations"), K8S_ANNOT_CURRENT_VMIM,
                        json_string(name));
    event(rc, vm, false, "SuccessfulCreate", "Created migration %s to migrate the volumes of "
          "VMI %s", name, k8s_name(vmi));
}

/* Creates the next VMIM of the update in flight, unless one is already
 * running for the VMI or the failures since the last success ask to wait:
 * 20 s after the first, doubling with each further one, counted from the
 * moment the newest one failed. */
static void next_vmim(struct rc *rc, json_t *vm, json_t *vmi)
{
    json_t *list[256];
    size_t n = vmims_of(rc, vmi, list, 256), failures = 0;
    time_t failed_at = 0;
    long long delay;

    for (size_t i = 0; i < n; i++)
        if (!vmim_final(list[i]))
            return;   /* one at a time per VMI */
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(phase(list[i]), "Succeeded"))
            break;
        if (!failures++)
            failed_at = vmim_time(list[i], "Failed");
    }
    if (failures) {
        size_t shift = failures - 1 > 40 ? 40 : failures - 1;

        delay = (long long)K8S_BACKOFF_FIRST << shift;
        if (rc->now < failed_at + delay) {
            char at[32], fat[32], msg[512];

            k8s_format_time(failed_at + delay, at);
            k8s_format_time(failed_at, fat);
            snprintf(msg, sizeof msg, "backing off %llds after %zu failed volume migration(s) "
                     "(the last, %s, failed at %s): the next one starts at %s", delay, failures,
                     k8s_name(list[0]), fat, at);
            if (!event_exists(rc, vm, "MigrationBackoff", msg))
                event(rc, vm, true, "MigrationBackoff", "%s", msg);
            return;
        }
    }
    create_vmim(rc, vm, vmi, n);
}

/* ---- the update in flight ---- */

static void cancel_update(struct rc *rc, json_t *vm, json_t *vmi)
{
    const char *cur = current_vmim(vmi);
    json_t *vmim = cur ? find(rc, "VirtualMachineInstanceMigration", k8s_namespace(vmi), cur) : NULL;
    const char *ready = k8s_get_str(vmi, "status.migrationState.targetNodeDomainReadyTimestamp");
    char what[1024];

    describe(k8s_get(vmi, "status.migratedVolumes"), what, sizeof what);
    if (vmim && !vmim_final(vmim)) {
        if (ready) {
            event(rc, vm, true, "VolumeMigrationCancelled", "volume migration (%s) cancelled: "
                  "the original volumes were restored; migration %s is kept because the target "
                  "domain was ready at %s: check which volumes hold the data", what, cur, ready);
        } else {
            json_array_append(rc->deleted, vmim);
            event(rc, vm, false, "VolumeMigrationCancelled", "volume migration (%s) cancelled: "
                  "the original volumes were restored; migration %s deleted", what, cur);
        }
    } else {
        event(rc, vm, false, "VolumeMigrationCancelled", "volume migration (%s) cancelled: "
              "the original volumes were restored", what);
    }
    json_object_del(k8s_get(vmi, "metadata.annotations"), K8S_ANNOT_CURRENT_VMIM);
    json_object_del(k8s_get(vmi, "status"), "migratedVolumes");
    cond_set(rc, vmi, K8S_COND_VOLUMES_CHANGE, false, K8S_REASON_CANCELLATION, NULL);
}

/* The migration object reported Succeeded: the VMI now runs on the
 * destinations, so its spec says so. */
static void finish_update(struct rc *rc, json_t *vm, json_t *vmi, const char *cur)
{
    json_t *entries = k8s_get(vmi, "status.migratedVolumes");
    json_t *vols = vmi_volumes(vmi);
    char what[1024], vmim[256];
    size_t i;
    json_t *e;

    snprintf(vmim, sizeof vmim, "%s", cur);   /* CUR lives in the annotation deleted below */
    describe(entries, what, sizeof what);
    json_array_foreach(entries, i, e) {
        const char *name = k8s_get_str(e, "volumeName");
        const char *dst = k8s_get_str(e, "destinationPVCInfo.claimName");
        json_t *old = named(vols, name), *want = named(vm_volumes(vm), name);

        if (!old || !dst)
            continue;
        if (want && str_eq(vol_claim(want), dst)) {
            json_object_clear(old);
            json_object_update(old, want);
        } else if (k8s_get(old, "dataVolume")) {
            /* The VM moved on meanwhile (a later update waits its turn):
             * keep the volume's type and name the destination. */
            json_object_set_new(k8s_get(old, "dataVolume"), "name", json_string(dst));
        } else if (k8s_get(old, "persistentVolumeClaim")) {
            json_object_set_new(k8s_get(old, "persistentVolumeClaim"), "claimName", json_string(dst));
        }
    }
    json_object_del(k8s_get(vmi, "metadata.annotations"), K8S_ANNOT_CURRENT_VMIM);
    json_object_del(k8s_get(vmi, "status"), "migratedVolumes");
    cond_remove(vmi, K8S_COND_VOLUMES_CHANGE, NULL);
    event(rc, vm, false, "VolumeMigrationSucceeded", "migration %s succeeded: %s", vmim, what);
}

static void track_update(struct rc *rc, json_t *vm, json_t *vmi)
{
    json_t *entries = k8s_get(vmi, "status.migratedVolumes");
    const char *cur = current_vmim(vmi);
    json_t *vmim, *v;
    bool reverted = true, targets = true;
    size_t i;

    /* What does the VM template say now, compared to the VMI (the sources)? */
    json_array_foreach(vm_volumes(vm), i, v) {
        json_t *iv = named(vmi_volumes(vmi), k8s_get_str(v, "name"));
        const char *vc = vol_claim(v), *ic = iv ? vol_claim(iv) : NULL;
        json_t *e = NULL, *x;
        size_t j;

        if (!vc || !ic || !strcmp(vc, ic))
            continue;
        reverted = false;
        json_array_foreach(entries, j, x)
            if (str_eq(k8s_get_str(x, "volumeName"), k8s_get_str(v, "name")))
                e = x;
        if (!e || !str_eq(k8s_get_str(e, "destinationPVCInfo.claimName"), vc))
            targets = false;
    }
    json_array_foreach(entries, i, v) {
        json_t *mv = named(vm_volumes(vm), k8s_get_str(v, "volumeName"));

        if (!mv || !str_eq(vol_claim(mv), k8s_get_str(v, "destinationPVCInfo.claimName")))
            targets = false;
    }
    if (reverted) {
        failure_clear(vm, REASON_INVALID_UPDATE);
        cancel_update(rc, vm, vmi);
        return;
    }
    if (!targets)
        failure(rc, vm, REASON_INVALID_UPDATE, K8S_MSG_INVALID_UPDATE);
    else
        failure_clear(vm, REASON_INVALID_UPDATE);

    vmim = cur ? find(rc, "VirtualMachineInstanceMigration", k8s_namespace(vmi), cur) : NULL;
    if (vmim && !strcmp(phase(vmim), "Succeeded")) {
        finish_update(rc, vm, vmi, cur);
        return;
    }
    if (vmim && !strcmp(phase(vmim), "Failed")) {
        event(rc, vm, true, "VolumeMigrationFailed", "migration %s failed%s%s; the volume "
              "migration is retried until it is cancelled", cur,
              k8s_get_str(vmim, "status.migrationState.failureReason") ? ": " : "",
              k8s_get_str(vmim, "status.migrationState.failureReason") ?
              k8s_get_str(vmim, "status.migrationState.failureReason") : "");
        vmim = NULL;
    }
    if (vmim)
        return;   /* Pending, Scheduling, Running: the engine moves it on */
    if (cur)
        json_object_del(k8s_get(vmi, "metadata.annotations"), K8S_ANNOT_CURRENT_VMIM);
    next_vmim(rc, vm, vmi);
}

/* ---- a new update ---- */

struct change {
    const char *vol, *src, *dst;
    const json_t *vmv, *vmiv;
};

static const char *kubevirt_gate(struct rc *rc, char *buf, size_t size)
{
    json_t *kv = find_kind(rc, "KubeVirt");
    const char *rollout = k8s_get_str(kv, "spec.configuration.vmRolloutStrategy");
    bool live_migrate = false;
    size_t i;
    json_t *m;

    json_array_foreach(k8s_get(kv, "spec.workloadUpdateStrategy.workloadUpdateMethods"), i, m)
        if (str_eq(json_string_value(m), "LiveMigrate"))
            live_migrate = true;
    if (kv && str_eq(rollout, "LiveUpdate") && live_migrate)
        return NULL;
    snprintf(buf, size, "volume migration is not enabled: the KubeVirt CR needs "
             "spec.configuration.vmRolloutStrategy: LiveUpdate and LiveMigrate in "
             "spec.workloadUpdateStrategy.workloadUpdateMethods (%s); the new volumes are "
             "used after a restart",
             !kv ? "there is no KubeVirt CR" :
             !str_eq(rollout, "LiveUpdate") && !live_migrate ? "both are missing" :
             !live_migrate ? "LiveMigrate is missing" : "vmRolloutStrategy is not LiveUpdate");
    return buf;
}

/* Refused disk types: KubeVirt's message form. */
static bool invalid_disks(const json_t *vmi, const struct change *c, size_t n, char *msg,
                          size_t size)
{
    char hot[512] = "", fs[512] = "", shr[512] = "", lun[512] = "";
    json_t *disks = k8s_get(vmi, "spec.domain.devices.disks");
    json_t *fss = k8s_get(vmi, "spec.domain.devices.filesystems");

    for (size_t i = 0; i < n; i++) {
        json_t *d = named(disks, c[i].vol);

        if (vol_hotplug(c[i].vmv) || vol_hotplug(c[i].vmiv))
            list_add(hot, sizeof hot, c[i].vol);
        else if (named(fss, c[i].vol))
            list_add(fs, sizeof fs, c[i].vol);
        else if (json_is_true(json_object_get(d, "shareable")))
            list_add(shr, sizeof shr, c[i].vol);
        else if (json_object_get(d, "lun"))
            list_add(lun, sizeof lun, c[i].vol);
    }
    if (!*hot && !*fs && !*shr && !*lun)
        return false;
    snprintf(msg, size, "invalid volumes to update with migration:%s%s%s%s%s%s%s%s",
             *hot ? " hotplugged: " : "", hot, *fs ? " filesystems: " : "", fs,
             *shr ? " shareable: " : "", shr, *lun ? " luns: " : "", lun);
    return true;
}

static bool missing_destination(struct rc *rc, const char *ns, const struct change *c, size_t n,
                                char *msg, size_t size)
{
    for (size_t i = 0; i < n; i++) {
        if (k8s_get(c[i].vmv, "dataVolume")) {
            if (!find(rc, "DataVolume", ns, c[i].dst)) {
                snprintf(msg, size, "One of the destination volumes doesn't exist: the "
                         "datavolume %s doesn't exist", c[i].dst);
                return true;
            }
        } else if (!find(rc, "PersistentVolumeClaim", ns, c[i].dst)) {
            snprintf(msg, size, "One of the destination volumes doesn't exist: the pvc %s "
                     "doesn't exist", c[i].dst);
            return true;
        }
    }
    return false;
}

static bool too_small(struct rc *rc, const char *ns, const struct change *c, size_t n,
                      char *msg, size_t size)
{
    size_t len = 0;

    msg[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *st = NULL, *dt = NULL;
        long long s = claim_size(rc, ns, c[i].src, &st);
        long long d = claim_size(rc, ns, c[i].dst, &dt);
        char sb[64] = "", db[64] = "";
        int k;

        if (s < 0 || d < 0 || d >= s)
            continue;
        if (st)
            snprintf(sb, sizeof sb, "%s, ", st);
        if (dt)
            snprintf(db, sizeof db, "%s, ", dt);
        k = snprintf(msg + len, size - len, "%scannot migrate volume %s: the destination %s "
                     "(%s%lld bytes) is smaller than the source %s (%s%lld bytes)",
                     len ? "; " : "", c[i].vol, c[i].dst, db, d, c[i].src, sb, s);
        if (k < 0 || (size_t)k >= size - len)
            break;
        len += (size_t)k;
    }
    return len > 0;
}

static void accept_update(struct rc *rc, json_t *vm, json_t *vmi, const struct change *c,
                          size_t n)
{
    json_t *entries = json_array();
    char what[1024];

    for (size_t i = 0; i < n; i++) {
        json_t *e = json_object();

        set_str(e, "volumeName", c[i].vol);
        json_object_set_new(e, "sourcePVCInfo", pvc_info(rc, k8s_namespace(vm), c[i].src));
        json_object_set_new(e, "destinationPVCInfo", pvc_info(rc, k8s_namespace(vm), c[i].dst));
        json_array_append_new(entries, e);
    }
    json_object_set_new(k8s_mkpath(vmi, "status"), "migratedVolumes", json_deep_copy(entries));
    cond_set(rc, vmi, K8S_COND_VOLUMES_CHANGE, true, NULL, "migrate volumes");
    vm_state_set(vm, entries);
    describe(entries, what, sizeof what);
    event(rc, vm, false, "VolumeMigrationStarted", "volume migration of %s", what);
    json_decref(entries);
    next_vmim(rc, vm, vmi);
}

static void consider_update(struct rc *rc, json_t *vm, json_t *vmi, const char *strategy)
{
    struct change c[128];
    char other[1024] = "", msg[2048], gate[512];
    size_t n = 0, i;
    json_t *v;

    json_array_foreach(vm_volumes(vm), i, v) {
        const char *name = k8s_get_str(v, "name");
        json_t *iv = named(vmi_volumes(vmi), name);
        const char *vc = vol_claim(v), *ic = iv ? vol_claim(iv) : NULL;

        if (iv && json_equal(v, iv))
            continue;
        if (iv && vc && ic && strcmp(vc, ic) && n < sizeof c / sizeof c[0])
            c[n++] = (struct change){ name, ic, vc, v, iv };
        else if (!iv || !vc || !ic)
            list_add(other, sizeof other, name);
    }
    json_array_foreach(vmi_volumes(vmi), i, v)
        if (!named(vm_volumes(vm), k8s_get_str(v, "name")))
            list_add(other, sizeof other, k8s_get_str(v, "name"));

    if (!n)
        cond_remove(vmi, K8S_COND_VOLUMES_CHANGE, REASON_MISSING_DEST);
    if (!n && !*other) {
        restart_clear(vm);
        return;
    }
    if (*other) {
        restart_required(rc, vm, "a non-live-updatable field was changed in the template "
                         "spec: volumes %s (only persistentVolumeClaim and dataVolume volumes "
                         "migrate; the others are replaced on restart)", other);
        return;
    }
    if (!str_eq(strategy, "Migration")) {
        restart_required(rc, vm, "the volumes replacement is effective only after restart");
        return;
    }
    if (kubevirt_gate(rc, gate, sizeof gate)) {
        restart_required(rc, vm, "%s", gate);
        return;
    }
    if (invalid_disks(vmi, c, n, msg, sizeof msg)) {
        restart_required(rc, vm, "%s", msg);
        return;
    }
    if (missing_destination(rc, k8s_namespace(vm), c, n, msg, sizeof msg)) {
        /* Not a refusal: the migration starts once the destination exists. */
        json_t *old = k8s_cond_get(vmi, K8S_COND_VOLUMES_CHANGE);
        bool same = old && !k8s_cond_true(vmi, K8S_COND_VOLUMES_CHANGE) &&
                    str_eq(k8s_get_str(old, "reason"), REASON_MISSING_DEST) &&
                    str_eq(k8s_get_str(old, "message"), msg);

        restart_clear(vm);
        if (!same) {
            cond_set(rc, vmi, K8S_COND_VOLUMES_CHANGE, false, REASON_MISSING_DEST, msg);
            event(rc, vm, true, REASON_MISSING_DEST, "%s", msg);
        }
        return;
    }
    if (too_small(rc, k8s_namespace(vm), c, n, msg, sizeof msg)) {
        restart_required(rc, vm, "%s", msg);
        return;
    }
    json_array_foreach(k8s_get(vmi, "status.conditions"), i, v)
        if (str_eq(k8s_get_str(v, "type"), "StorageLiveMigratable") &&
            str_eq(k8s_get_str(v, "status"), "False")) {
            restart_required(rc, vm, "cannot migrate the volumes as the VMI isn't migratable: %s",
                             k8s_get_str(v, "message") ? k8s_get_str(v, "message") : "");
            return;
        }
    json_array_foreach(vmi_volumes(vmi), i, v) {
        const char *name = k8s_get_str(v, "name"), *claim = vol_claim(v);
        bool moving = false;

        for (size_t j = 0; j < n; j++)
            moving = moving || !strcmp(c[j].vol, name);
        if (claim && !moving && claim_rwo(rc, vmi, name, claim)) {
            restart_required(rc, vm, "cannot migrate the VM. The volume %s is RWO and not "
                             "included in the migration volumes", name);
            return;
        }
    }
    restart_clear(vm);
    accept_update(rc, vm, vmi, c, n);
}

/* ---- the VM ---- */

static bool wants_running(const json_t *vm)
{
    const char *rs = k8s_get_str(vm, "spec.runStrategy");

    if (rs)
        return !strcmp(rs, "Always") || !strcmp(rs, "RerunOnFailure");
    return json_is_true(k8s_get(vm, "spec.running"));
}

/* KubeVirt's VM controller starting the VM: a VMI from the template. */
static void start_vmi(struct rc *rc, json_t *vm)
{
    json_t *meta = json_pack("{s:s}", "name", k8s_name(vm)), *vmi, *owner, *l;

    if (*k8s_namespace(vm))
        set_str(meta, "namespace", k8s_namespace(vm));
    if ((l = k8s_get(vm, "spec.template.metadata.labels")))
        json_object_set_new(meta, "labels", json_deep_copy(l));
    if ((l = k8s_get(vm, "spec.template.metadata.annotations")))
        json_object_set_new(meta, "annotations", json_deep_copy(l));
    owner = json_pack("{s:s, s:s, s:s, s:b, s:b}", "apiVersion", "kubevirt.io/v1",
                      "kind", "VirtualMachine", "name", k8s_name(vm), "controller", 1,
                      "blockOwnerDeletion", 1);
    if (k8s_get_str(vm, "metadata.uid"))
        set_str(owner, "uid", k8s_get_str(vm, "metadata.uid"));
    json_object_set_new(meta, "ownerReferences", json_pack("[o]", owner));
    set_str(meta, "creationTimestamp", rc->nowstr);
    vmi = json_pack("{s:s, s:s, s:o, s:O, s:{s:s}}", "apiVersion", "kubevirt.io/v1",
                    "kind", "VirtualMachineInstance", "metadata", meta,
                    "spec", k8s_get(vm, "spec.template.spec"), "status", "phase", "Pending");
    json_object_set_new(vmi, "spec", json_deep_copy(json_object_get(vmi, "spec")));
    json_array_append_new(rc->w, vmi);
    event(rc, vm, false, "SuccessfulCreate", "Started the virtual machine by creating the new "
          "virtual machine instance %s", k8s_name(vm));
}

/* The VM's view of the update (KubeVirt's syncVolumeMigration): clear the
 * state once the update is over or abandoned, or ask for manual recovery
 * when the VMI went away in the middle of it. */
static void sync_vm_state(struct rc *rc, json_t *vm, json_t *vmi, bool live, bool migration)
{
    json_t *state = vm_state(vm);

    if (state) {
        bool reverted = vm_reverted(vm, state);
        char what[1024];

        describe(state, what, sizeof what);
        if (reverted || !migration) {
            vm_state_clear(vm);
            if (!live)
                cond_remove(vm, K8S_COND_VOLUMES_CHANGE, NULL);
            if (cond_remove(vm, K8S_COND_MANUAL_RECOVERY, NULL))
                event(rc, vm, false, "ManualRecoveryCleared", reverted ?
                      "the original volumes were restored (%s undone); the VM can start" :
                      "updateVolumesStrategy is no longer Migration: the new volumes (%s) are "
                      "kept as a replacement; the VM can start", what);
        } else if (!live) {
            if (k8s_cond_true(vm, K8S_COND_VOLUMES_CHANGE) &&
                cond_set(rc, vm, K8S_COND_MANUAL_RECOVERY, true, K8S_REASON_MANUAL_RECOVERY,
                         K8S_MSG_RECOVERY_REQUIRED))
                event(rc, vm, true, "ManualRecoveryRequired", "VMI %s was %s during the volume "
                      "migration (%s): restore the original volumes, or remove "
                      "updateVolumesStrategy to keep the new ones", k8s_name(vm),
                      vmi ? "final" : "removed", what);
        } else if (!k8s_cond_get(vmi, K8S_COND_VOLUMES_CHANGE) ||
                   !k8s_cond_true(vmi, K8S_COND_VOLUMES_CHANGE)) {
            vm_state_clear(vm);   /* the update finished or was cancelled */
        }
    }
    if (live)
        cond_copy(vm, vmi, K8S_COND_VOLUMES_CHANGE);
}

static void reconcile_vm(struct rc *rc, json_t *vm)
{
    const char *strategy = k8s_get_str(vm, "spec.updateVolumesStrategy");
    json_t *vmi = find(rc, "VirtualMachineInstance", k8s_namespace(vm), k8s_name(vm));
    const char *ph = vmi ? k8s_get_str(vmi, "status.phase") : NULL;
    bool live = vmi && !k8s_get(vmi, "metadata.deletionTimestamp") &&
                !str_eq(ph, "Succeeded") && !str_eq(ph, "Failed");
    bool migration = str_eq(strategy, "Migration");
    char msg[600];

    if (strategy && !migration && strcmp(strategy, "Replacement")) {
        snprintf(msg, sizeof msg, "updateVolumes strategy not recognized: %s", strategy);
        failure(rc, vm, REASON_BAD_STRATEGY, msg);
        return;
    }
    failure_clear(vm, REASON_BAD_STRATEGY);
    if (k8s_admit(vm) < 0) {
        const char *m = strstr(err_msg(), "DataVolumeTemplate entry");

        failure(rc, vm, REASON_BAD_TEMPLATE, m ? m : err_msg());
        err_clear();
        return;
    }
    failure_clear(vm, REASON_BAD_TEMPLATE);

    if (live) {
        if (json_array_size(k8s_get(vmi, "status.migratedVolumes")))
            track_update(rc, vm, vmi);
        else
            consider_update(rc, vm, vmi, strategy);
    }
    sync_vm_state(rc, vm, vmi, live, migration);
    if (!vmi && wants_running(vm)) {
        if (k8s_cond_true(vm, K8S_COND_MANUAL_RECOVERY)) {
            if (!event_exists(rc, vm, "FailedCreate", K8S_MSG_RECOVERY_REQUIRED))
                event(rc, vm, true, "FailedCreate", "%s", K8S_MSG_RECOVERY_REQUIRED);
        } else {
            start_vmi(rc, vm);
        }
    }
}

/* ---- the step ---- */

static int same_object(const json_t *a, const json_t *b)
{
    return !strcmp(k8s_kind(a), k8s_kind(b)) && !strcmp(k8s_namespace(a), k8s_namespace(b)) &&
           !strcmp(k8s_name(a), k8s_name(b));
}

int k8s_reconcile(const json_t *world, time_t now, struct k8s_result *out)
{
    struct rc rc = { .now = now };
    size_t i, j, n;
    json_t *o, *p;

    memset(out, 0, sizeof *out);
    if (!json_is_array(world)) {
        err_set(0, "reconcile: the world is not a list of objects");
        return -1;
    }
    json_array_foreach(world, i, o) {
        if (k8s_validate(o) < 0)
            return -1;
        for (j = 0; j < i; j++)
            if (same_object(o, json_array_get(world, j))) {
                char ref[600];

                err_set(0, "%s: defined twice", k8s_ref(o, ref, sizeof ref));
                return -1;
            }
    }
    k8s_format_time(now, rc.nowstr);
    rc.w = json_deep_copy(world);
    rc.events = json_array();
    rc.deleted = json_array();

    n = json_array_size(rc.w);   /* objects created during the step are not VMs */
    for (i = 0; i < n; i++) {
        o = json_array_get(rc.w, i);
        if (!strcmp(k8s_kind(o), "VirtualMachine"))
            reconcile_vm(&rc, o);
    }

    out->world = json_array();
    out->changed = json_array();
    out->deleted = json_array();
    out->events = rc.events;
    json_array_foreach(rc.w, i, o) {
        bool found = false;

        if (is_deleted(&rc, o)) {
            json_array_append(out->deleted, o);
            continue;
        }
        json_array_append(out->world, o);
        json_array_foreach(world, j, p)
            if (same_object(o, p)) {
                found = true;
                if (!json_equal(o, p))
                    json_array_append(out->changed, o);
                break;
            }
        if (!found && strcmp(k8s_kind(o), "Event"))
            json_array_append(out->changed, o);
    }
    json_decref(rc.w);
    json_decref(rc.deleted);
    return 0;
}

void k8s_result_free(struct k8s_result *r)
{
    json_decref(r->world);
    json_decref(r->changed);
    json_decref(r->deleted);
    json_decref(r->events);
    memset(r, 0, sizeof *r);
}

json_t *k8s_reconcile_fixed_point(const json_t *world, time_t now, int max_steps)
{
    json_t *cur = json_incref((json_t *)world);

    for (int step = 0; step < max_steps; step++) {
        struct k8s_result r;
        bool quiet;

        if (k8s_reconcile(cur, now, &r) < 0) {
            json_decref(cur);
            return NULL;
        }
        quiet = !json_array_size(r.changed) && !json_array_size(r.deleted) &&
                !json_array_size(r.events);
        json_decref(cur);
        cur = json_incref(r.world);
        k8s_result_free(&r);
        if (quiet)
            return cur;
    }
    json_decref(cur);
    err_set(0, "reconcile: no fixed point after %d steps", max_steps);
    return NULL;
}
