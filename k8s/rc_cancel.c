/* Cancellation (KubeVirt's VolumeMigrationCancel): only while the VMI's
 * VolumesChange is True and the VM changed a volume that is migrating.
 * If every migrating volume points back at its source and nothing else
 * changed, the VMI spec goes back to the sources, migratedVolumes is
 * cleared and VolumesChange turns False with reason
 * VolumesChangeCancellation; the workload updater then deletes the
 * unfinished migrations (rc_track.c).  Any other change to a migrating
 * volume is refused with KubeVirt's sync error. */
#include "k8s/internal.h"

#include <string.h>

/* KubeVirt's updatedVolumesMapping entry for volume NAME: the VM's claim
 * when it differs from the VMI's, else NULL. */
static const char *updated_claim(const json_t *vm, const json_t *vmi, const char *name)
{
    json_t *v = rc_named(rc_vm_volumes(vm), name), *iv = rc_named(rc_vmi_volumes(vmi), name);
    const char *vc = v ? rc_vol_claim(v) : NULL, *ic = iv ? rc_vol_claim(iv) : NULL;

    return vc && ic && strcmp(vc, ic) ? vc : NULL;
}

static size_t count_updated(const json_t *vm, const json_t *vmi)
{
    size_t i, n = 0;
    json_t *v;

    json_array_foreach(rc_vmi_volumes(vmi), i, v)
        n += updated_claim(vm, vmi, k8s_get_str(v, "name")) != NULL;
    return n;
}

bool rc_cancel(struct rc *rc, json_t *vm, json_t *vmi)
{
    json_t *entries = k8s_get(vmi, "status.migratedVolumes"), *e;
    bool touched = false, reverted = true;
    char what[1024];
    size_t i;

    if (!rc_vmi_migrating(vmi))
        return false;
    json_array_foreach(entries, i, e) {
        const char *claim = updated_claim(vm, vmi, k8s_get_str(e, "volumeName"));

        touched = touched || claim;
        if (!claim || !rc_str_eq(claim, k8s_get_str(e, "sourcePVCInfo.claimName")))
            reverted = false;
    }
    if (!touched)
        return false;
    if (!reverted || count_updated(vm, vmi) != json_array_size(entries)) {
        rc_failure(rc, vm, K8S_REASON_UPDATE_ERROR, RC_MSG_SYNC_PREFIX K8S_MSG_INVALID_UPDATE);
        return true;
    }
    /* PatchVMIVolumes: the VMI spec takes the VM's (source) volumes back. */
    json_array_foreach(entries, i, e) {
        const char *name = k8s_get_str(e, "volumeName");
        json_t *iv = rc_named(rc_vmi_volumes(vmi), name), *v = rc_named(rc_vm_volumes(vm), name);
        json_t *want = json_deep_copy(v);

        json_object_clear(iv);
        json_object_update(iv, want);
        json_decref(want);
    }
    rc_describe(entries, what, sizeof what);
    json_object_del(k8s_get(vmi, "status"), "migratedVolumes");
    rc_cond_set(rc, vmi, K8S_COND_VOLUMES_CHANGE, false, K8S_REASON_CANCELLATION, NULL);
    rc_failure_clear(vm, K8S_REASON_UPDATE_ERROR);
    rc_event(rc, vm, false, "VolumeMigrationCancelled", "volume migration (%s) cancelled: the "
             "original volumes were restored", what);
    return true;
}
