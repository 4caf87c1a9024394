/* The VM controller's handling of a volume update (KubeVirt's
 * handleVolumeUpdateRequest): cancel first, then by strategy; for
 * Migration, the claims that changed are validated and the update is
 * accepted: the VMI's status.migratedVolumes, the VMI spec volumes patched
 * to the destinations at once, the VM's volumeMigrationState.  The VMI
 * controller's part follows: VolumesChange=True "migrate volumes". */
#include "k8s/internal.h"

#include <stdio.h>
#include <string.h>

#define MAX_CHANGES 128

/* The claims that differ between the VM template and the VMI spec, for
 * volumes in both (KubeVirt's updatedVolumesMapping), and into OTHER the
 * volumes that changed in another way (added, removed, another type). */
static size_t changes(const json_t *vm, const json_t *vmi, struct rc_change *c, char *other,
                      size_t other_size)
{
    size_t n = 0, i;
    json_t *v;

    json_array_foreach(rc_vm_volumes(vm), i, v) {
        const char *name = k8s_get_str(v, "name");
        json_t *iv = rc_named(rc_vmi_volumes(vmi), name);
        const char *vc = rc_vol_claim(v), *ic = iv ? rc_vol_claim(iv) : NULL;

        if (iv && json_equal(v, iv))
            continue;
        if (iv && vc && ic && strcmp(vc, ic)) {
            if (n < MAX_CHANGES)
                c[n++] = (struct rc_change){ name, ic, vc, v, iv };
        } else if (!iv || !vc || !ic) {
            rc_list_add(other, other_size, name);
        }
    }
    json_array_foreach(rc_vmi_volumes(vmi), i, v)
        if (!rc_named(rc_vm_volumes(vm), k8s_get_str(v, "name")))
            rc_list_add(other, other_size, k8s_get_str(v, "name"));
    return n;
}

/* Accepts the update: migratedVolumes, the VMI spec on the destinations,
 * the VM's state, VolumesChange=True. */
static void accept(struct rc *rc, json_t *vm, json_t *vmi, const struct rc_change *c, size_t n)
{
    json_t *entries = json_array();
    char what[1024];

    for (size_t i = 0; i < n; i++) {
        json_t *e = json_object(), *iv = rc_named(rc_vmi_volumes(vmi), c[i].vol);

        rc_set_str(e, "volumeName", c[i].vol);
        json_object_set_new(e, "sourcePVCInfo", rc_pvc_info(rc, k8s_namespace(vm), c[i].src));
        json_object_set_new(e, "destinationPVCInfo", rc_pvc_info(rc, k8s_namespace(vm), c[i].dst));
        json_array_append_new(entries, e);
        /* PatchVMIVolumes: the VMI spec names the destination from now on;
         * the source is known only from migratedVolumes[].sourcePVCInfo. */
        if (iv) {
            json_t *want = json_deep_copy(c[i].vmv);

            json_object_clear(iv);
            json_object_update(iv, want);
            json_decref(want);
        }
    }
    json_object_set_new(k8s_mkpath(vmi, "status"), "migratedVolumes", json_deep_copy(entries));
    json_object_set_new(k8s_mkpath(vm, "status.volumeUpdateState.volumeMigrationState"),
                        "migratedVolumes", json_deep_copy(entries));
    rc_cond_set(rc, vmi, K8S_COND_VOLUMES_CHANGE, true, NULL, "migrate volumes");
    rc_describe(entries, what, sizeof what);
    rc_event(rc, vm, false, "VolumeMigrationStarted", "volume migration of %s", what);
    json_decref(entries);
}

/* Removes the VolumesChange=False that a missing destination left
 * (KubeVirt's UnsetVolumeChangeCondition once the volumes validate). */
static void unset_missing(json_t *vmi)
{
    json_t *c = k8s_cond_get(vmi, K8S_COND_VOLUMES_CHANGE);
    const char *m = k8s_get_str(c, "message");

    if (c && !rc_vmi_migrating(vmi) && m && !strncmp(m, RC_MSG_MISSING_DEST, strlen(RC_MSG_MISSING_DEST)))
        rc_cond_remove(vmi, K8S_COND_VOLUMES_CHANGE, NULL);
}

/* migratedVolumes set while the VMI spec still names a source that the VM
 * moved to its destination: the acceptance stopped between
 * PatchVMIStatusWithMigratedVolumes and PatchVMIVolumes (or a store written
 * by volmig before it kept KubeVirt's representation).  Finish it, so that
 * the update in flight is not read as an invalid change. */
static void finish_patch(json_t *vm, json_t *vmi)
{
    size_t i;
    json_t *e;

    json_array_foreach(k8s_get(vmi, "status.migratedVolumes"), i, e) {
        const char *name = k8s_get_str(e, "volumeName");
        json_t *iv = rc_named(rc_vmi_volumes(vmi), name), *v = rc_named(rc_vm_volumes(vm), name);

        if (iv && v && rc_str_eq(rc_vol_claim(iv), k8s_get_str(e, "sourcePVCInfo.claimName")) &&
            rc_str_eq(rc_vol_claim(v), k8s_get_str(e, "destinationPVCInfo.claimName"))) {
            json_t *want = json_deep_copy(v);

            json_object_clear(iv);
            json_object_update(iv, want);
            json_decref(want);
        }
    }
}

void rc_volume_update(struct rc *rc, json_t *vm, json_t *vmi)
{
    const char *strategy = k8s_get_str(vm, "spec.updateVolumesStrategy");
    struct rc_change c[MAX_CHANGES];
    char other[1024] = "", msg[600];
    size_t n;

    finish_patch(vm, vmi);
    if (rc_cancel(rc, vm, vmi))
        return;
    if (strategy && strcmp(strategy, "Migration") && strcmp(strategy, "Replacement")) {
        snprintf(msg, sizeof msg, RC_MSG_SYNC_PREFIX "updateVolumes strategy not recognized: %s",
                 strategy);
        rc_failure(rc, vm, K8S_REASON_UPDATE_ERROR, msg);
        return;
    }
    rc_failure_clear(vm, K8S_REASON_UPDATE_ERROR);

    n = changes(vm, vmi, c, other, sizeof other);
    if (!n)
        unset_missing(vmi);
    if (!n && !*other) {
        rc_restart_clear(vm);
        return;
    }
    if (*other) {
        rc_restart_required(rc, vm, "a non-live-updatable field was changed in the template "
                            "spec: volumes %s (only persistentVolumeClaim and dataVolume "
                            "volumes migrate; the others are replaced on restart)", other);
        return;
    }
    if (!rc_str_eq(strategy, "Migration")) {
        rc_restart_required(rc, vm, "the volumes replacement is effective only after restart");
        return;
    }
    /* Sequential updates: a set in flight is never extended
     * (PatchVMIStatusWithMigratedVolumes does nothing while migratedVolumes
     * is set); the next change is taken once this one is over. */
    if (json_array_size(k8s_get(vmi, "status.migratedVolumes"))) {
        rc_restart_clear(vm);
        return;
    }
    if (k8s_get(vmi, "metadata.deletionTimestamp"))
        return;
    switch (rc_validate(rc, vm, vmi, c, n)) {
    case 1:
        return;
    case 2:
        rc_restart_clear(vm);
        return;
    }
    rc_restart_clear(vm);
    unset_missing(vmi);
    accept(rc, vm, vmi, c, n);
}

/* The VMI controller's part (requireVolumesUpdate): migratedVolumes set and
 * no VolumesChange condition yet, while the VMI spec names a claim that is
 * not one of the sources: the update is under way. */
void rc_vmi_controller(struct rc *rc, json_t *vmi)
{
    json_t *entries = k8s_get(vmi, "status.migratedVolumes"), *v, *e;
    size_t i, j;

    if (!json_array_size(entries) || k8s_cond_get(vmi, K8S_COND_VOLUMES_CHANGE))
        return;
    json_array_foreach(rc_vmi_volumes(vmi), i, v) {
        const char *claim = rc_vol_claim(v);
        bool source = false;

        if (!claim)
            continue;
        json_array_foreach(entries, j, e)
            source = source || rc_str_eq(k8s_get_str(e, "sourcePVCInfo.claimName"), claim);
        if (!source) {
            rc_cond_set(rc, vmi, K8S_COND_VOLUMES_CHANGE, true, NULL, "migrate volumes");
            return;
        }
    }
}
