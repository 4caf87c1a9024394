/* The reconcile step of `updateVolumesStrategy: Migration`: objects in,
 * objects and events out, no I/O.
 *
 * It plays the parts KubeVirt splits over its VM controller, VMI
 * controller, workload updater, migration controller and the migration
 * target's handler, on KubeVirt's own object state, so that a snapshot of
 * a real cluster taken in the middle of a volume migration reads the way
 * KubeVirt reads it (semantics of KubeVirt v1.9, see the README):
 *
 *   VM template volumes vs VMI spec volumes
 *     -> refuse (RestartRequired), hold (destination missing), or accept:
 *        VMI status.migratedVolumes, VMI spec volumes patched to the
 *        destinations at once, VMI VolumesChange=True, VM
 *        status.volumeUpdateState.volumeMigrationState
 *     -> a VirtualMachineInstanceMigration (VMIM) at once, held Pending by
 *        the backoff after failures, recreated after each failure
 *     -> on Succeeded: migratedVolumes and VolumesChange cleared,
 *        volumeStatus on the destinations (the VM's state is kept)
 *     -> cancellation (the sources restored while VolumesChange is True):
 *        the VMI spec reverted, unfinished migrations deleted
 *     -> manual recovery (the VMI gone or final while VolumesChange).
 *
 * Everything the step decides is written into the objects, so it is a
 * function of its input: which migration belongs to the update is read
 * from the migrations' creation times and phases, backoff from their
 * status.phaseTransitionTimestamps, and events that describe a waiting
 * state are emitted once, by looking at the Events already in the world.
 *
 * The parts live in rc_*.c (see internal.h); this file holds what they
 * share and the order in which they run.
 */
#include "k8s/internal.h"
#include "common/error.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

bool rc_is_deleted(struct rc *rc, const json_t *obj)
{
    size_t i;
    json_t *d;

    json_array_foreach(rc->deleted, i, d)
        if (d == obj)
            return true;
    return false;
}

void rc_delete(struct rc *rc, json_t *obj)
{
    if (!rc_is_deleted(rc, obj))
        json_array_append(rc->deleted, obj);
}

json_t *rc_find(struct rc *rc, const char *kind, const char *ns, const char *name)
{
    size_t i;
    json_t *o;

    json_array_foreach(rc->w, i, o)
        if (!strcmp(k8s_kind(o), kind) && !strcmp(k8s_namespace(o), ns) &&
            !strcmp(k8s_name(o), name) && !rc_is_deleted(rc, o))
            return o;
    return NULL;
}

json_t *rc_find_kind(struct rc *rc, const char *kind)
{
    size_t i;
    json_t *o;

    json_array_foreach(rc->w, i, o)
        if (!strcmp(k8s_kind(o), kind) && !rc_is_deleted(rc, o))
            return o;
    return NULL;
}

bool rc_str_eq(const char *a, const char *b)
{
    return a && b && !strcmp(a, b);
}

void rc_set_str(json_t *obj, const char *key, const char *s)
{
    json_object_set_new(obj, key, json_string(s));
}

/* "[a b]", Go's %v of a []string, which KubeVirt's messages use. */
void rc_list_add(char *buf, size_t size, const char *item)
{
    size_t n = strlen(buf);

    if (!n)
        snprintf(buf, size, "[%s]", item);
    else if (n + 1 < size)
        snprintf(buf + n - 1, size - n + 1, " %s]", item);
}

/* An annotation (keys have dots in them, so no dotted path reaches them). */
const char *rc_annotation(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(k8s_get(obj, "metadata.annotations"), key));
}

/* ---- conditions ---- */

json_t *k8s_cond_get(const json_t *obj, const char *type)
{
    size_t i;
    json_t *c;

    json_array_foreach(k8s_get(obj, "status.conditions"), i, c)
        if (rc_str_eq(k8s_get_str(c, "type"), type))
            return c;
    return NULL;
}

bool k8s_cond_true(const json_t *obj, const char *type)
{
    return rc_str_eq(k8s_get_str(k8s_cond_get(obj, type), "status"), "True");
}

/* Returns true when the condition was added or its status changed. */
bool rc_cond_set(struct rc *rc, json_t *obj, const char *type, bool status, const char *reason,
                 const char *message)
{
    json_t *st = k8s_mkpath(obj, "status");
    json_t *list = json_object_get(st, "conditions");
    json_t *old = k8s_cond_get(obj, type), *c;
    const char *sv = status ? "True" : "False";
    bool transition = !old || !rc_str_eq(k8s_get_str(old, "status"), sv);

    if (!json_is_array(list)) {
        list = json_array();
        json_object_set_new(st, "conditions", list);
    }
    c = json_object();
    rc_set_str(c, "type", type);
    rc_set_str(c, "status", sv);
    if (reason)
        rc_set_str(c, "reason", reason);
    if (message)
        rc_set_str(c, "message", message);
    json_object_set_new(c, "lastProbeTime", json_null());
    if (transition)
        rc_set_str(c, "lastTransitionTime", rc->nowstr);
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

bool rc_cond_remove(json_t *obj, const char *type, const char *only_reason)
{
    json_t *list = k8s_get(obj, "status.conditions");
    size_t i;
    json_t *c;

    json_array_foreach(list, i, c)
        if (rc_str_eq(k8s_get_str(c, "type"), type) &&
            (!only_reason || rc_str_eq(k8s_get_str(c, "reason"), only_reason))) {
            json_array_remove(list, i);
            return true;
        }
    return false;
}

/* Copies the VMI's condition TYPE onto the VM (KubeVirt mirrors VolumesChange). */
void rc_cond_copy(json_t *vm, const json_t *vmi, const char *type)
{
    json_t *src = k8s_cond_get(vmi, type), *dst = k8s_cond_get(vm, type), *list;

    if (!src) {
        rc_cond_remove(vm, type, NULL);
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

void rc_restart_required(struct rc *rc, json_t *vm, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    const char *old;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    old = k8s_get_str(k8s_cond_get(vm, K8S_COND_RESTART_REQUIRED), "message");
    if (k8s_cond_true(vm, K8S_COND_RESTART_REQUIRED) && rc_str_eq(old, msg))
        return;
    rc_cond_set(rc, vm, K8S_COND_RESTART_REQUIRED, true, RC_REASON_RESTART, msg);
    rc_event(rc, vm, true, "RestartRequired", "%s", msg);
}

void rc_restart_clear(json_t *vm)
{
    rc_cond_remove(vm, K8S_COND_RESTART_REQUIRED, RC_REASON_RESTART);
}

/* The VM's Failure condition, as KubeVirt's VM controller sets it from a
 * sync error: REASON, the error as the message. */
void rc_failure(struct rc *rc, json_t *vm, const char *reason, const char *msg)
{
    json_t *old = k8s_cond_get(vm, K8S_COND_FAILURE);

    if (old && rc_str_eq(k8s_get_str(old, "reason"), reason) &&
        rc_str_eq(k8s_get_str(old, "message"), msg))
        return;
    rc_cond_set(rc, vm, K8S_COND_FAILURE, true, reason, msg);
    rc_event(rc, vm, true, reason, "%s", msg);
}

void rc_failure_clear(json_t *vm, const char *reason)
{
    rc_cond_remove(vm, K8S_COND_FAILURE, reason);
}

/* ---- events ---- */

/* Whether an Event about ABOUT with REASON and MSG was seen at or after
 * SINCE (0: ever). */
bool rc_event_exists(struct rc *rc, const json_t *about, const char *reason, const char *msg,
                     time_t since)
{
    size_t i;
    json_t *e;

    json_array_foreach(rc->w, i, e) {
        const char *ns = k8s_get_str(e, "involvedObject.namespace");
        time_t last = 0;

        if (strcmp(k8s_kind(e), "Event") || !rc_str_eq(k8s_get_str(e, "reason"), reason) ||
            !rc_str_eq(k8s_get_str(e, "message"), msg) ||
            !rc_str_eq(k8s_get_str(e, "involvedObject.kind"), k8s_kind(about)) ||
            !rc_str_eq(k8s_get_str(e, "involvedObject.name"), k8s_name(about)) ||
            strcmp(ns ? ns : "", k8s_namespace(about)))
            continue;
        if (!since)
            return true;
        if (k8s_parse_time(k8s_get_str(e, "lastTimestamp"), &last) < 0)
            err_clear();
        if (last >= since)
            return true;
    }
    return false;
}

/* A core/v1 Event about ABOUT.  Its name is derived from what it says and
 * when, so the same step over the same input names it the same way. */
void rc_event(struct rc *rc, const json_t *about, bool warning, const char *reason,
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
    if (rc_find(rc, "Event", k8s_namespace(about), name))
        return;
    inv = json_object();
    rc_set_str(inv, "apiVersion", k8s_get_str(about, "apiVersion") ? k8s_get_str(about, "apiVersion") : "");
    rc_set_str(inv, "kind", k8s_kind(about));
    rc_set_str(inv, "name", k8s_name(about));
    if (*k8s_namespace(about))
        rc_set_str(inv, "namespace", k8s_namespace(about));
    if (k8s_get_str(about, "metadata.uid"))
        rc_set_str(inv, "uid", k8s_get_str(about, "metadata.uid"));
    e = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Event", "metadata",
                  "name", name);
    if (*k8s_namespace(about))
        rc_set_str(json_object_get(e, "metadata"), "namespace", k8s_namespace(about));
    json_object_set_new(e, "involvedObject", inv);
    rc_set_str(e, "reason", reason);
    rc_set_str(e, "message", msg);
    rc_set_str(e, "type", warning ? "Warning" : "Normal");
    json_object_set_new(e, "count", json_integer(1));
    rc_set_str(e, "firstTimestamp", rc->nowstr);
    rc_set_str(e, "lastTimestamp", rc->nowstr);
    json_object_set_new(e, "source", json_pack("{s:s}", "component", "volmig"));
    json_array_append(rc->w, e);
    json_array_append_new(rc->events, e);
}

/* ---- volumes ---- */

/* The claim a volume names: a DataVolume, a PVC or a memory dump; NULL for
 * every other volume type (containerDisk, cloudInitNoCloud, ...). */
const char *rc_vol_claim(const json_t *v)
{
    const char *c = k8s_get_str(v, "dataVolume.name");

    if (!c)
        c = k8s_get_str(v, "persistentVolumeClaim.claimName");
    if (!c)
        c = k8s_get_str(v, "memoryDump.claimName");
    return c;
}

bool rc_vol_hotplug(const json_t *v)
{
    return json_is_true(k8s_get(v, "dataVolume.hotpluggable")) ||
           json_is_true(k8s_get(v, "persistentVolumeClaim.hotpluggable")) ||
           json_is_true(k8s_get(v, "memoryDump.hotpluggable"));
}

json_t *rc_named(const json_t *list, const char *name)
{
    size_t i;
    json_t *v;

    json_array_foreach(list, i, v)
        if (rc_str_eq(k8s_get_str(v, "name"), name))
            return v;
    return NULL;
}

json_t *rc_vm_volumes(const json_t *vm)
{
    return k8s_get(vm, "spec.template.spec.volumes");
}

json_t *rc_vmi_volumes(const json_t *vmi)
{
    return k8s_get(vmi, "spec.volumes");
}

/* The PVC, or failing that the DataVolume's storage spec, of CLAIM. */
static const json_t *claim_spec(struct rc *rc, const char *ns, const char *claim)
{
    json_t *pvc = rc_find(rc, "PersistentVolumeClaim", ns, claim), *dv, *s;

    if (pvc)
        return k8s_get(pvc, "spec");
    dv = rc_find(rc, "DataVolume", ns, claim);
    if (!dv)
        return NULL;
    s = k8s_get(dv, "spec.storage");
    return s ? s : k8s_get(dv, "spec.pvc");
}

/* PersistentVolumeClaimInfo: claimName, accessModes, volumeMode, requests,
 * capacity, from the PVC (or the DataVolume that will make it). */
json_t *rc_pvc_info(struct rc *rc, const char *ns, const char *claim)
{
    json_t *info = json_pack("{s:s}", "claimName", claim), *v;
    json_t *pvc = rc_find(rc, "PersistentVolumeClaim", ns, claim);
    const json_t *spec = claim_spec(rc, ns, claim);

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
long long rc_claim_size(struct rc *rc, const char *ns, const char *claim, const char **text)
{
    json_t *pvc = rc_find(rc, "PersistentVolumeClaim", ns, claim);
    const json_t *q = pvc ? k8s_get(pvc, "status.capacity.storage") : NULL;
    long long b;

    if (!q)
        q = k8s_get(claim_spec(rc, ns, claim), "resources.requests.storage");
    if (!q || k8s_quantity(q, &b) < 0) {
        err_clear();
        return -1;
    }
    *text = json_is_string(q) ? json_string_value(q) : NULL;
    return b;
}

/* "datavolumedisk1: src-dv -> dst-dv, ..." */
void rc_describe(const json_t *entries, char *buf, size_t size)
{
    size_t i, n = 0;
    json_t *e;

    buf[0] = '\0';
    json_array_foreach(entries, i, e) {
        const char *s = k8s_get_str(e, "sourcePVCInfo.claimName");
        const char *d = k8s_get_str(e, "destinationPVCInfo.claimName");
        int k = snprintf(buf + n, size - n, "%s%s: %s -> %s", i ? ", " : "",
                         k8s_get_str(e, "volumeName"), s ? s : "?", d ? d : "?");

        if (k < 0 || (size_t)k >= size - n)
            break;
        n += (size_t)k;
    }
}

/* KubeVirt's IsFinal: Succeeded or Failed.  A deletionTimestamp alone is
 * not final: the VMI still runs until its pod is gone. */
bool rc_vmi_final(const json_t *vmi)
{
    const char *ph = k8s_get_str(vmi, "status.phase");

    return rc_str_eq(ph, "Succeeded") || rc_str_eq(ph, "Failed");
}

bool rc_vmi_migrating(const json_t *vmi)
{
    return k8s_cond_true(vmi, K8S_COND_VOLUMES_CHANGE);
}

/* ---- one VM ---- */

/* The parts in the order KubeVirt's controllers would act on one change:
 * the VMI controller marking an accepted update, the target finishing a
 * migration, the VM controller (its validation of
 * the dataVolumeTemplates, the DataVolumes, the volume update), the
 * workload updater and the migration controller, the VM's status, and
 * last starting a VMI, so that a VMI lost mid-update is never restarted
 * before ManualRecoveryRequired is set.  The fixed point runs them again
 * until nothing moves. */
static void reconcile_vm(struct rc *rc, json_t *vm)
{
    json_t *vmi = rc_find(rc, "VirtualMachineInstance", k8s_namespace(vm), k8s_name(vm));
    bool ready;

    /* The admission webhook's dataVolumeTemplates rule; an unknown
     * strategy is left to the VM controller's sync error below. */
    if (k8s_admit(vm) < 0 && strstr(err_msg(), "spec.dataVolumeTemplates")) {
        const char *m = strstr(err_msg(), "DataVolumeTemplate entry");

        rc_failure(rc, vm, RC_REASON_BAD_TEMPLATE, m ? m : err_msg());
        err_clear();
        return;
    }
    err_clear();
    rc_failure_clear(vm, RC_REASON_BAD_TEMPLATE);
    if (vmi && !rc_vmi_final(vmi))
        rc_vmi_controller(rc, vmi);
    if (vmi)
        rc_target_done(rc, vm, vmi);
    ready = rc_datavolumes(rc, vm);
    if (ready && vmi && !rc_vmi_final(vmi))
        rc_volume_update(rc, vm, vmi);
    if (ready && vmi) {
        rc_workload_updater(rc, vm, vmi);
        rc_migration_backoff(rc, vmi);
    }
    rc_sync_vm_state(rc, vm, vmi);
    if (ready)
        rc_start(rc, vm, vmi);
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

        if (rc_is_deleted(&rc, o)) {
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
