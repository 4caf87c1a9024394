/* What refuses a volume update (RestartRequired with KubeVirt's message)
 * or holds it (a destination that does not exist yet), in KubeVirt's
 * order: the rollout gate, the disk types (ValidateVolumes), the
 * destinations, then the VMI's own migratability and the RWO rule
 * (ValidateVolumesUpdateMigration).  One check is volmig's own: a
 * destination smaller than its source is refused here, with both sizes,
 * where KubeVirt fails late (kubevirt issue 12875). */
#include "k8s/internal.h"

#include <stdio.h>
#include <string.h>

/* NULL when the KubeVirt CR allows volume migration; else why not. */
const char *rc_kubevirt_gate(struct rc *rc, char *buf, size_t size)
{
    json_t *kv = rc_find_kind(rc, "KubeVirt");
    const char *rollout = k8s_get_str(kv, "spec.configuration.vmRolloutStrategy");
    bool live_migrate = false;
    size_t i;
    json_t *m;

    json_array_foreach(k8s_get(kv, "spec.workloadUpdateStrategy.workloadUpdateMethods"), i, m)
        if (rc_str_eq(json_string_value(m), "LiveMigrate"))
            live_migrate = true;
    if (kv && rc_str_eq(rollout, "LiveUpdate") && live_migrate)
        return NULL;
    snprintf(buf, size, "volume migration is not enabled: the KubeVirt CR needs "
             "spec.configuration.vmRolloutStrategy: LiveUpdate and LiveMigrate in "
             "spec.workloadUpdateStrategy.workloadUpdateMethods (%s); the new volumes are "
             "used after a restart",
             !kv ? "there is no KubeVirt CR" :
             !rc_str_eq(rollout, "LiveUpdate") && !live_migrate ? "both are missing" :
             !live_migrate ? "LiveMigrate is missing" : "vmRolloutStrategy is not LiveUpdate");
    return buf;
}

/* ValidateVolumes: refused disk types, and DataVolumes whose storage
 * class cannot be populated in place, in KubeVirt's message form. */
static bool invalid_disks(struct rc *rc, const json_t *vmi, const struct rc_change *c, size_t n,
                          char *msg, size_t size)
{
    char hot[512] = "", fs[512] = "", shr[512] = "", lun[512] = "", csi[512] = "";
    json_t *disks = k8s_get(vmi, "spec.domain.devices.disks");
    json_t *fss = k8s_get(vmi, "spec.domain.devices.filesystems");

    for (size_t i = 0; i < n; i++) {
        json_t *d = rc_named(disks, c[i].vol);
        json_t *dv = k8s_get(c[i].vmv, "dataVolume") ?
                     rc_find(rc, "DataVolume", k8s_namespace(vmi), c[i].dst) : NULL;
        json_t *pvc = rc_find(rc, "PersistentVolumeClaim", k8s_namespace(vmi), c[i].dst);

        if (rc_vol_hotplug(c[i].vmv) || rc_vol_hotplug(c[i].vmiv))
            rc_list_add(hot, sizeof hot, c[i].vol);
        else if (rc_named(fss, c[i].vol))
            rc_list_add(fs, sizeof fs, c[i].vol);
        else if (json_is_true(json_object_get(d, "shareable")))
            rc_list_add(shr, sizeof shr, c[i].vol);
        else if (json_object_get(d, "lun"))
            rc_list_add(lun, sizeof lun, c[i].vol);
        else if (dv && pvc && !rc_str_eq(k8s_get_str(dv, "status.phase"), "Succeeded") &&
                 !k8s_get(pvc, "spec.dataSourceRef"))
            rc_list_add(csi, sizeof csi, c[i].vol);
    }
    if (!*hot && !*fs && !*shr && !*lun && !*csi)
        return false;
    snprintf(msg, size, "invalid volumes to update with migration:%s%s%s%s%s%s%s%s%s%s",
             *hot ? " hotplugged: " : "", hot, *fs ? " filesystems: " : "", fs,
             *shr ? " shareable: " : "", shr, *lun ? " luns: " : "", lun,
             *csi ? " DV storage class isn't a CSI or not using volume populators: " : "", csi);
    return true;
}

/* The first destination that does not exist, as KubeVirt words it: a
 * DataVolume volume needs the DataVolume, and its PVC unless the
 * DataVolume has Succeeded. */
static bool missing_destination(struct rc *rc, const char *ns, const struct rc_change *c,
                                size_t n, char *msg, size_t size)
{
    for (size_t i = 0; i < n; i++) {
        json_t *dv = NULL;

        if (k8s_get(c[i].vmv, "dataVolume")) {
            dv = rc_find(rc, "DataVolume", ns, c[i].dst);
            if (!dv) {
                snprintf(msg, size, RC_MSG_MISSING_DEST "the datavolume %s doesn't exist",
                         c[i].dst);
                return true;
            }
            if (rc_str_eq(k8s_get_str(dv, "status.phase"), "Succeeded"))
                continue;
        }
        if (!rc_find(rc, "PersistentVolumeClaim", ns, c[i].dst)) {
            snprintf(msg, size, RC_MSG_MISSING_DEST "the pvc %s doesn't exist", c[i].dst);
            return true;
        }
    }
    return false;
}

static bool too_small(struct rc *rc, const char *ns, const struct rc_change *c, size_t n,
                      char *msg, size_t size)
{
    size_t len = 0;

    msg[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *st = NULL, *dt = NULL;
        long long s = rc_claim_size(rc, ns, c[i].src, &st);
        long long d = rc_claim_size(rc, ns, c[i].dst, &dt);
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

/* KubeVirt's IsReadWriteOnceAccessMode: anything that is neither
 * ReadWriteMany nor ReadOnlyMany, an empty list included. */
static bool rwo(const json_t *modes)
{
    size_t i;
    json_t *m;

    json_array_foreach(modes, i, m)
        if (rc_str_eq(json_string_value(m), "ReadWriteMany") ||
            rc_str_eq(json_string_value(m), "ReadOnlyMany"))
            return false;
    return true;
}

/* ValidateVolumesUpdateMigration: the VMI must be storage-migratable, and
 * every RWO volume in its status.volumeStatus must be in the set. */
static bool not_migratable(const json_t *vmi, const struct rc_change *c, size_t n, char *msg,
                           size_t size)
{
    size_t i;
    json_t *v;

    json_array_foreach(k8s_get(vmi, "status.conditions"), i, v)
        if (rc_str_eq(k8s_get_str(v, "type"), "StorageLiveMigratable") &&
            rc_str_eq(k8s_get_str(v, "status"), "False")) {
            snprintf(msg, size, "cannot migrate the volumes as the VMI isn't migratable: %s",
                     k8s_get_str(v, "message") ? k8s_get_str(v, "message") : "");
            return true;
        }
    json_array_foreach(k8s_get(vmi, "status.volumeStatus"), i, v) {
        const char *name = k8s_get_str(v, "name");
        json_t *info = k8s_get(v, "persistentVolumeClaimInfo");
        bool moving = false;

        if (!info || !name || !strncmp(name, "persistent-state-for", 20))
            continue;   /* the backend storage (TPM, EFI) moves its own way */
        for (size_t j = 0; j < n; j++)
            moving = moving || !strcmp(c[j].vol, name);
        if (!moving && rwo(json_object_get(info, "accessModes"))) {
            snprintf(msg, size, "cannot migrate the VM. The volume %s is RWO and not included "
                     "in the migration volumes", name);
            return true;
        }
    }
    return false;
}

int rc_validate(struct rc *rc, json_t *vm, json_t *vmi, const struct rc_change *c, size_t n)
{
    char msg[2048], gate[512];

    if (rc_kubevirt_gate(rc, gate, sizeof gate)) {
        rc_restart_required(rc, vm, "%s", gate);
        return 1;
    }
    if (invalid_disks(rc, vmi, c, n, msg, sizeof msg)) {
        rc_restart_required(rc, vm, "%s", msg);
        return 1;
    }
    if (missing_destination(rc, k8s_namespace(vm), c, n, msg, sizeof msg)) {
        /* Not a refusal: the migration starts once the destination exists. */
        json_t *old = k8s_cond_get(vmi, K8S_COND_VOLUMES_CHANGE);

        if (!old || rc_vmi_migrating(vmi) || !rc_str_eq(k8s_get_str(old, "message"), msg)) {
            rc_cond_set(rc, vmi, K8S_COND_VOLUMES_CHANGE, false, NULL, msg);
            rc_event(rc, vm, true, "MissingDestinationVolume", "%s", msg);
        }
        return 2;
    }
    if (too_small(rc, k8s_namespace(vm), c, n, msg, sizeof msg) ||
        not_migratable(vmi, c, n, msg, sizeof msg)) {
        rc_restart_required(rc, vm, "%s", msg);
        return 1;
    }
    return 0;
}
