/* k8s/ internals shared between its files, sectioned by file. */
#ifndef VOLMIG_K8S_INTERNAL_H
#define VOLMIG_K8S_INTERNAL_H

#include "k8s/k8s.h"

#include <stdint.h>

/* FNV-1a over NUL-separated strings, for deterministic generated names. */
uint64_t k8s_hash(const char *const *parts, size_t n);

/* Condition lists (status.conditions of a VM or VMI). */
json_t *k8s_cond_get(const json_t *obj, const char *type);
bool k8s_cond_true(const json_t *obj, const char *type);

/* ---- the reconcile step, split by concern ----
 *
 *   reconcile.c   the step itself, the order of the parts, and what they
 *                 share: the world, conditions, events, volumes
 *   rc_update.c   the VM controller's handling of a volume update: change
 *                 detection, acceptance (KubeVirt patches the VMI spec at
 *                 once), sequential updates, an unknown strategy
 *   rc_validate.c what refuses an update (RestartRequired) or holds it
 *                 (a destination that does not exist yet)
 *   rc_cancel.c   cancellation: the sources restored while VolumesChange
 *   rc_track.c    the workload updater (a migration object per update, and
 *                 deleting them on a cancel), the migration controller's
 *                 backoff, and the target's success (the VMI moves on)
 *   rc_recovery.c the VM's view (syncVolumeMigration), manual recovery,
 *                 starting a VMI, DataVolumes from dataVolumeTemplates
 */

/* Reasons volmig gives its own conditions, so it clears only what it set. */
#define RC_REASON_RESTART        "VolumesUpdateRequiresRestart"
#define RC_REASON_BAD_TEMPLATE   "InvalidDataVolumeTemplate"
#define RC_MSG_SYNC_PREFIX       "error encountered while handling volumes update requests: "
#define RC_MSG_MISSING_DEST      "One of the destination volumes doesn't exist: "
#define RC_ANNOT_EVACUATION      "kubevirt.io/evacuationMigration"

struct rc {
    json_t *w;         /* the world being built (owned) */
    json_t *events;    /* events emitted by this step (owned) */
    json_t *deleted;   /* objects deleted by this step (owned) */
    time_t now;
    char nowstr[32];
};

/* A claim change of one volume: VM template vs VMI spec. */
struct rc_change {
    const char *vol, *src, *dst;
    const json_t *vmv, *vmiv;
};

/* reconcile.c: the world */
json_t *rc_find(struct rc *rc, const char *kind, const char *ns, const char *name);
json_t *rc_find_kind(struct rc *rc, const char *kind);
bool rc_is_deleted(struct rc *rc, const json_t *obj);
void rc_delete(struct rc *rc, json_t *obj);
bool rc_str_eq(const char *a, const char *b);
void rc_set_str(json_t *obj, const char *key, const char *s);
void rc_list_add(char *buf, size_t size, const char *item);
const char *rc_annotation(const json_t *obj, const char *key);

/* reconcile.c: conditions (lastTransitionTime moves only with status) */
bool rc_cond_set(struct rc *rc, json_t *obj, const char *type, bool status, const char *reason,
                 const char *message);
bool rc_cond_remove(json_t *obj, const char *type, const char *only_reason);
void rc_cond_copy(json_t *vm, const json_t *vmi, const char *type);
void rc_restart_required(struct rc *rc, json_t *vm, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void rc_restart_clear(json_t *vm);
void rc_failure(struct rc *rc, json_t *vm, const char *reason, const char *msg);
void rc_failure_clear(json_t *vm, const char *reason);

/* reconcile.c: events (names derived from content and time) */
bool rc_event_exists(struct rc *rc, const json_t *about, const char *reason, const char *msg,
                     time_t since);
void rc_event(struct rc *rc, const json_t *about, bool warning, const char *reason,
              const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* reconcile.c: volumes */
const char *rc_vol_claim(const json_t *v);
bool rc_vol_hotplug(const json_t *v);
json_t *rc_named(const json_t *list, const char *name);
json_t *rc_vm_volumes(const json_t *vm);
json_t *rc_vmi_volumes(const json_t *vmi);
json_t *rc_pvc_info(struct rc *rc, const char *ns, const char *claim);
long long rc_claim_size(struct rc *rc, const char *ns, const char *claim, const char **text);
void rc_describe(const json_t *entries, char *buf, size_t size);
bool rc_vmi_final(const json_t *vmi);
bool rc_vmi_migrating(const json_t *vmi);   /* VolumesChange True */

/* rc_update.c */
void rc_volume_update(struct rc *rc, json_t *vm, json_t *vmi);
void rc_vmi_controller(struct rc *rc, json_t *vmi);

/* rc_validate.c: 1 refused (RestartRequired set), 2 held (destination
 * missing: VMI VolumesChange False), 0 fine. */
int rc_validate(struct rc *rc, json_t *vm, json_t *vmi, const struct rc_change *c, size_t n);
const char *rc_kubevirt_gate(struct rc *rc, char *buf, size_t size);

/* rc_cancel.c: true when the update in flight was cancelled or the change
 * was refused as an invalid one (the VM controller then stops there). */
bool rc_cancel(struct rc *rc, json_t *vm, json_t *vmi);

/* rc_track.c */
void rc_target_done(struct rc *rc, json_t *vm, json_t *vmi);
void rc_workload_updater(struct rc *rc, json_t *vm, json_t *vmi);
void rc_migration_backoff(struct rc *rc, json_t *vmi);
size_t rc_vmims_of(const json_t *world, const json_t *deleted, const json_t *vmi, json_t **out,
                   size_t max);
bool rc_vmim_final(const json_t *vmim);

/* rc_recovery.c */
bool rc_datavolumes(struct rc *rc, json_t *vm);
void rc_sync_vm_state(struct rc *rc, json_t *vm, json_t *vmi);
void rc_start(struct rc *rc, json_t *vm, json_t *vmi);

#endif
