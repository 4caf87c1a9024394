/* The VM's side: its DataVolumes from dataVolumeTemplates (created when
 * missing, waited for until populated), its view of the update (KubeVirt's
 * syncVolumeMigration: the VM's volumeMigrationState is kept after a
 * success and cleared on a revert, a strategy change or a cancellation),
 * manual recovery when the VMI went away mid-update, and starting a VMI,
 * which ManualRecoveryRequired refuses. */
#include "k8s/internal.h"

#include <stdio.h>
#include <string.h>

/* ---- DataVolumes (KubeVirt's handleDataVolumes) ---- */

static void create_dv(struct rc *rc, json_t *vm, const json_t *tmpl)
{
    json_t *meta = json_pack("{s:s}", "name", k8s_get_str(tmpl, "metadata.name")), *dv, *l, *spec;
    json_t *owner = json_pack("{s:s, s:s, s:s, s:b, s:b}", "apiVersion", "kubevirt.io/v1",
                              "kind", "VirtualMachine", "name", k8s_name(vm), "controller", 1,
                              "blockOwnerDeletion", 1);

    if (*k8s_namespace(vm))
        rc_set_str(meta, "namespace", k8s_namespace(vm));
    if ((l = k8s_get(tmpl, "metadata.labels")))
        json_object_set_new(meta, "labels", json_deep_copy(l));
    if ((l = k8s_get(tmpl, "metadata.annotations")))
        json_object_set_new(meta, "annotations", json_deep_copy(l));
    if (k8s_get_str(vm, "metadata.uid"))
        rc_set_str(owner, "uid", k8s_get_str(vm, "metadata.uid"));
    json_object_set_new(meta, "ownerReferences", json_pack("[o]", owner));
    rc_set_str(meta, "creationTimestamp", rc->nowstr);
    dv = json_pack("{s:s, s:s, s:o}", "apiVersion", "cdi.kubevirt.io/v1beta1",
                   "kind", "DataVolume", "metadata", meta);
    spec = k8s_get(tmpl, "spec");
    json_object_set_new(dv, "spec", spec ? json_deep_copy(spec) : json_object());
    json_array_append_new(rc->w, dv);
    rc_event(rc, vm, false, "SuccessfulDataVolumeCreate", "Created DataVolume %s",
             k8s_get_str(tmpl, "metadata.name"));
}

/* True when every templated DataVolume exists and is populated (or waits
 * for its first consumer); a missing one is created.  Until then the VM
 * controller neither starts the VMI nor handles a volume update. */
bool rc_datavolumes(struct rc *rc, json_t *vm)
{
    bool ready = true;
    size_t i;
    json_t *t;

    json_array_foreach(k8s_get(vm, "spec.dataVolumeTemplates"), i, t) {
        const char *name = k8s_get_str(t, "metadata.name");
        json_t *dv = name ? rc_find(rc, "DataVolume", k8s_namespace(vm), name) : NULL;
        const char *ph = k8s_get_str(dv, "status.phase");
        char msg[600];

        if (!name)
            continue;
        if (!dv) {
            create_dv(rc, vm, t);
            ready = false;
            continue;
        }
        if (rc_str_eq(ph, "Succeeded") || rc_str_eq(ph, "WaitForFirstConsumer") ||
            rc_str_eq(ph, "PendingPopulation"))
            continue;
        if (rc_str_eq(ph, "Failed")) {
            snprintf(msg, sizeof msg, "DataVolume %s failed to import disk image", name);
            if (!rc_event_exists(rc, vm, "FailedDataVolumeImport", msg, 0))
                rc_event(rc, vm, true, "FailedDataVolumeImport", "%s", msg);
        }
        ready = false;
    }
    return ready;
}

/* ---- the VM's view of the update (syncVolumeMigration) ---- */

static void state_clear(json_t *vm)
{
    json_t *us = k8s_get(vm, "status.volumeUpdateState");

    if (!us)
        return;
    json_object_del(us, "volumeMigrationState");
    if (!json_object_size(us))
        json_object_del(json_object_get(vm, "status"), "volumeUpdateState");
}

/* Whether the VM template points every migrated volume back at its source. */
static bool recovered(const json_t *vm, const json_t *entries)
{
    size_t i;
    json_t *e;

    json_array_foreach(entries, i, e) {
        json_t *v = rc_named(rc_vm_volumes(vm), k8s_get_str(e, "volumeName"));
        const char *src = k8s_get_str(e, "sourcePVCInfo.claimName");

        if (v && src && !rc_str_eq(rc_vol_claim(v), src))
            return false;
    }
    return true;
}

void rc_sync_vm_state(struct rc *rc, json_t *vm, json_t *vmi)
{
    json_t *state = k8s_get(vm, "status.volumeUpdateState.volumeMigrationState");
    json_t *entries = k8s_get(state, "migratedVolumes");
    bool live = vmi && !rc_vmi_final(vmi);
    bool migration = rc_str_eq(k8s_get_str(vm, "spec.updateVolumesStrategy"), "Migration");
    json_t *c;
    char what[1024];

    if (state) {
        bool back = recovered(vm, entries);

        rc_describe(entries, what, sizeof what);
        if (back || !migration) {
            state_clear(vm);
            rc_cond_remove(vm, K8S_COND_VOLUMES_CHANGE, NULL);
            if (rc_cond_remove(vm, K8S_COND_MANUAL_RECOVERY, NULL))
                rc_event(rc, vm, false, "ManualRecoveryCleared", back ?
                         "the original volumes were restored (%s undone); the VM can start" :
                         "updateVolumesStrategy is no longer Migration: the new volumes (%s) "
                         "are kept as a replacement; the VM can start", what);
        } else if (!live) {
            if (k8s_cond_true(vm, K8S_COND_VOLUMES_CHANGE) &&
                rc_cond_set(rc, vm, K8S_COND_MANUAL_RECOVERY, true, K8S_REASON_MANUAL_RECOVERY,
                            NULL))
                rc_event(rc, vm, true, "ManualRecoveryRequired", "VMI %s was %s during the "
                         "volume migration (%s): restore the original volumes, or remove "
                         "updateVolumesStrategy to keep the new ones", k8s_name(vm),
                         vmi ? "final" : "removed", what);
        } else if ((c = k8s_cond_get(vmi, K8S_COND_VOLUMES_CHANGE)) &&
                   rc_str_eq(k8s_get_str(c, "status"), "False") &&
                   rc_str_eq(k8s_get_str(c, "reason"), K8S_REASON_CANCELLATION)) {
            state_clear(vm);
        }
    }
    if (live)
        rc_cond_copy(vm, vmi, K8S_COND_VOLUMES_CHANGE);
}

/* ---- starting the VM ---- */

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
        rc_set_str(meta, "namespace", k8s_namespace(vm));
    if ((l = k8s_get(vm, "spec.template.metadata.labels")))
        json_object_set_new(meta, "labels", json_deep_copy(l));
    if ((l = k8s_get(vm, "spec.template.metadata.annotations")))
        json_object_set_new(meta, "annotations", json_deep_copy(l));
    owner = json_pack("{s:s, s:s, s:s, s:b, s:b}", "apiVersion", "kubevirt.io/v1",
                      "kind", "VirtualMachine", "name", k8s_name(vm), "controller", 1,
                      "blockOwnerDeletion", 1);
    if (k8s_get_str(vm, "metadata.uid"))
        rc_set_str(owner, "uid", k8s_get_str(vm, "metadata.uid"));
    json_object_set_new(meta, "ownerReferences", json_pack("[o]", owner));
    rc_set_str(meta, "creationTimestamp", rc->nowstr);
    vmi = json_pack("{s:s, s:s, s:o, s:O, s:{s:s}}", "apiVersion", "kubevirt.io/v1",
                    "kind", "VirtualMachineInstance", "metadata", meta,
                    "spec", k8s_get(vm, "spec.template.spec"), "status", "phase", "Pending");
    json_object_set_new(vmi, "spec", json_deep_copy(json_object_get(vmi, "spec")));
    json_array_append_new(rc->w, vmi);
    rc_event(rc, vm, false, "SuccessfulCreate", "Started the virtual machine by creating the "
             "new virtual machine instance %s", k8s_name(vm));
}

void rc_start(struct rc *rc, json_t *vm, json_t *vmi)
{
    if (vmi || !wants_running(vm))
        return;
    if (k8s_cond_true(vm, K8S_COND_MANUAL_RECOVERY)) {
        if (!rc_event_exists(rc, vm, "FailedCreate", K8S_MSG_RECOVERY_REQUIRED, 0))
            rc_event(rc, vm, true, "FailedCreate", "%s", K8S_MSG_RECOVERY_REQUIRED);
        return;
    }
    start_vmi(rc, vm);
}
