/* The migration objects of an update, as three KubeVirt components handle
 * them:
 *   - the workload updater creates one, at once, for a running VMI whose
 *     VolumesChange is True and which has no unfinished migration; when
 *     VolumesChange is no longer True it deletes the unfinished ones it
 *     made, unless the target domain is already ready;
 *   - the migration controller holds a new one Pending while the failures
 *     before it ask for a backoff (handleMigrationBackoff);
 *   - the migration target, on success, clears migratedVolumes and
 *     VolumesChange and moves the VMI's volumeStatus to the destinations.
 * Which migration belongs to the update in flight: the newest of the VMI,
 * created no earlier than VolumesChange turned True (an unfinished one is
 * newer than every finished one, since a new one is only made when none
 * is unfinished). */
#include "k8s/internal.h"
#include "common/error.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VMIMS 256

static const char *phase(const json_t *vmim)
{
    const char *p = k8s_get_str(vmim, "status.phase");

    return p ? p : "";
}

bool rc_vmim_final(const json_t *vmim)
{
    return !strcmp(phase(vmim), "Succeeded") || !strcmp(phase(vmim), "Failed");
}

static time_t parse_or_zero(const char *s)
{
    time_t t = 0;

    if (!s || k8s_parse_time(s, &t) < 0) {
        err_clear();
        return 0;
    }
    return t;
}

static time_t created(const json_t *o)
{
    return parse_or_zero(k8s_get_str(o, "metadata.creationTimestamp"));
}

/* When VMIM turned Failed (0: unknown, as KubeVirt's zero time). */
static time_t failed_at(const json_t *vmim)
{
    size_t i;
    json_t *t;

    json_array_foreach(k8s_get(vmim, "status.phaseTransitionTimestamps"), i, t)
        if (rc_str_eq(k8s_get_str(t, "phase"), "Failed"))
            return parse_or_zero(k8s_get_str(t, "phaseTransitionTimestamp"));
    return 0;
}

static int newest_first(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    time_t cx = created(x), cy = created(y);

    if (cx != cy)
        return cx > cy ? -1 : 1;
    if (rc_vmim_final(x) != rc_vmim_final(y))
        return rc_vmim_final(x) ? 1 : -1;
    return -strcmp(k8s_name(x), k8s_name(y));
}

static bool in(const json_t *list, const json_t *o)
{
    size_t i;
    json_t *d;

    json_array_foreach(list, i, d)
        if (d == o)
            return true;
    return false;
}

size_t rc_vmims_of(const json_t *world, const json_t *deleted, const json_t *vmi, json_t **out,
                   size_t max)
{
    size_t i, n = 0;
    json_t *o;

    json_array_foreach(world, i, o)
        if (!strcmp(k8s_kind(o), "VirtualMachineInstanceMigration") && n < max &&
            !strcmp(k8s_namespace(o), k8s_namespace(vmi)) &&
            rc_str_eq(k8s_get_str(o, "spec.vmiName"), k8s_name(vmi)) &&
            !(deleted && in(deleted, o)))
            out[n++] = o;
    qsort(out, n, sizeof *out, newest_first);
    return n;
}

static bool workload_made(const json_t *vmim)
{
    return rc_annotation(vmim, K8S_ANNOT_WORKLOAD_UPDATE) ||
           rc_annotation(vmim, RC_ANNOT_EVACUATION);
}

/* ---- the migration target: success ---- */

static void finish(struct rc *rc, json_t *vm, json_t *vmi, const json_t *vmim)
{
    json_t *entries = k8s_get(vmi, "status.migratedVolumes"), *e, *s;
    char what[1024];
    size_t i, j;

    /* replaceMigratedVolumesStatus: the volumes now run on the destinations */
    json_array_foreach(entries, i, e) {
        const char *src = k8s_get_str(e, "sourcePVCInfo.claimName");
        json_t *dst = k8s_get(e, "destinationPVCInfo");

        json_array_foreach(k8s_get(vmi, "status.volumeStatus"), j, s)
            if (dst && rc_str_eq(k8s_get_str(s, "persistentVolumeClaimInfo.claimName"), src))
                json_object_set_new(s, "persistentVolumeClaimInfo", json_deep_copy(dst));
    }
    rc_describe(entries, what, sizeof what);
    json_object_del(k8s_get(vmi, "status"), "migratedVolumes");
    rc_cond_remove(vmi, K8S_COND_VOLUMES_CHANGE, NULL);
    rc_event(rc, vm, false, "VolumeMigrationSucceeded", "migration %s succeeded: %s",
             k8s_name(vmim), what);
}

void rc_target_done(struct rc *rc, json_t *vm, json_t *vmi)
{
    json_t *list[MAX_VMIMS], *m;
    time_t since = parse_or_zero(k8s_get_str(k8s_cond_get(vmi, K8S_COND_VOLUMES_CHANGE),
                                             "lastTransitionTime"));
    const char *why;
    char msg[1024];

    if (!rc_vmi_migrating(vmi) || !json_array_size(k8s_get(vmi, "status.migratedVolumes")) ||
        !rc_vmims_of(rc->w, rc->deleted, vmi, list, MAX_VMIMS) || created(list[0]) < since)
        return;
    m = list[0];
    if (!strcmp(phase(m), "Succeeded")) {
        finish(rc, vm, vmi, m);
    } else if (!strcmp(phase(m), "Failed")) {
        why = k8s_get_str(m, "status.migrationState.failureReason");
        if (!why)
            why = k8s_get_str(m, "status.message");
        snprintf(msg, sizeof msg, "migration %s failed%s%s; the volume migration is retried "
                 "until it is cancelled", k8s_name(m), why ? ": " : "", why ? why : "");
        if (!rc_event_exists(rc, vm, "VolumeMigrationFailed", msg, 0))
            rc_event(rc, vm, true, "VolumeMigrationFailed", "%s", msg);
    }
}

/* ---- the workload updater ---- */

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

/* A migration object as the workload updater writes it: generateName
 * kubevirt-workload-update- (the random part derived from the VMI and the
 * time), label kubevirt.io/volume-update-migration: VMI (and the guide's
 * kubevirt.io/volume-update-in-progress: VM), the workload-update
 * annotation, priority user-triggered. */
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
    } while (rc_find(rc, "VirtualMachineInstanceMigration", k8s_namespace(vmi), name));

    label_value(vmi, lv_vmi);
    label_value(vm, lv_vm);
    labels = json_pack("{s:s, s:s}", K8S_LABEL_MIGRATION, lv_vmi, K8S_LABEL_IN_PROGRESS, lv_vm);
    ann = json_pack("{s:s}", K8S_ANNOT_WORKLOAD_UPDATE, "");
    m = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s, s:o, s:o}, s:{s:s, s:s},"
                  " s:{s:s, s:[{s:s, s:s}]}}",
                  "apiVersion", "kubevirt.io/v1", "kind", "VirtualMachineInstanceMigration",
                  "metadata", "name", name, "generateName", K8S_VMIM_PREFIX,
                  "namespace", k8s_namespace(vmi), "creationTimestamp", rc->nowstr,
                  "labels", labels, "annotations", ann,
                  "spec", "vmiName", k8s_name(vmi), "priority", "user-triggered",
                  "status", "phase", "Pending", "phaseTransitionTimestamps",
                  "phase", "Pending", "phaseTransitionTimestamp", rc->nowstr);
    if (!*k8s_namespace(vmi))
        json_object_del(json_object_get(m, "metadata"), "namespace");
    json_array_append_new(rc->w, m);
    rc_event(rc, vmi, false, "SuccessfulCreate", "Created Migration %s for automated workload "
             "update", name);
}

void rc_workload_updater(struct rc *rc, json_t *vm, json_t *vmi)
{
    json_t *list[MAX_VMIMS];
    size_t n, i;
    bool unfinished = false;
    const char *ready = k8s_get_str(vmi, "status.migrationState.targetNodeDomainReadyTimestamp");
    char gate[512];

    if (!rc_str_eq(k8s_get_str(vmi, "status.phase"), "Running") ||
        k8s_get(vmi, "metadata.deletionTimestamp"))
        return;
    n = rc_vmims_of(rc->w, rc->deleted, vmi, list, MAX_VMIMS);
    for (i = 0; i < n; i++)
        unfinished = unfinished || !rc_vmim_final(list[i]);
    if (rc_vmi_migrating(vmi)) {
        if (!unfinished && json_array_size(k8s_get(vmi, "status.migratedVolumes")) &&
            !rc_kubevirt_gate(rc, gate, sizeof gate))
            create_vmim(rc, vm, vmi, n);
        return;
    }
    for (i = 0; i < n; i++) {
        char msg[600];

        if (rc_vmim_final(list[i]) || !workload_made(list[i]))
            continue;
        if (!ready) {
            rc_delete(rc, list[i]);
            rc_event(rc, vmi, false, "SuccessfulDelete", "Deleted migration %s: the volume "
                     "update it was made for is over", k8s_name(list[i]));
            continue;
        }
        snprintf(msg, sizeof msg, "migration %s is kept: the target domain was ready at %s; "
                 "check which volumes hold the data before changing the volumes again",
                 k8s_name(list[i]), ready);
        if (!rc_event_exists(rc, vm, "VolumeMigrationKept", msg, 0))
            rc_event(rc, vm, true, "VolumeMigrationKept", "%s", msg);
    }
}

/* ---- the migration controller: backoff ---- */

static bool backoff(const json_t *world, const json_t *deleted, const json_t *vmim, time_t now,
                    time_t *until)
{
    json_t *list[MAX_VMIMS], *eligible[MAX_VMIMS];
    json_t *vmi;
    size_t n, k = 0;
    long long delay = 0;
    const char *vminame = k8s_get_str(vmim, "spec.vmiName");

    *until = 0;
    if (!workload_made(vmim) || !vminame || strcmp(phase(vmim), "Pending"))
        return false;
    vmi = json_pack("{s:{s:s, s:s}}", "metadata", "name", vminame, "namespace",
                    k8s_namespace(vmim));
    n = rc_vmims_of(world, deleted, vmi, list, MAX_VMIMS);
    json_decref(vmi);
    for (size_t i = 0; i < n; i++)
        if (workload_made(list[i]))
            eligible[k++] = list[i];
    if (k < 2 || eligible[0] != vmim)
        return false;
    for (size_t i = 1; i < k; i++) {
        if (!strcmp(phase(eligible[i]), "Succeeded"))
            break;
        if (k8s_get(eligible[i], "metadata.deletionTimestamp"))
            continue;
        if (!strcmp(phase(eligible[i]), "Failed"))
            delay = !delay ? K8S_BACKOFF_FIRST : delay > (1LL << 40) ? delay : delay * 2;
    }
    if (!delay)
        return false;
    *until = failed_at(eligible[1]) + (time_t)delay;
    return now < *until;
}

bool k8s_migration_backoff(const json_t *world, const json_t *vmim, time_t now, time_t *until)
{
    return backoff(world, NULL, vmim, now, until);
}

void rc_migration_backoff(struct rc *rc, json_t *vmi)
{
    json_t *list[MAX_VMIMS];
    size_t n = rc_vmims_of(rc->w, rc->deleted, vmi, list, MAX_VMIMS);
    char msg[600];
    time_t until;

    for (size_t i = 0; i < n; i++) {
        if (!backoff(rc->w, rc->deleted, list[i], rc->now, &until))
            continue;
        snprintf(msg, sizeof msg, "backoff migrating vmi %s/%s", k8s_namespace(vmi),
                 k8s_name(vmi));
        if (!rc_event_exists(rc, vmi, "MigrationBackoff", msg, created(list[i])))
            rc_event(rc, vmi, true, "MigrationBackoff", "%s", msg);
    }
}
