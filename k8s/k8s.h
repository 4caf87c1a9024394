/* k8s/: the KubeVirt/CDI/core object model over jansson, the pure
 * reconcile step of `updateVolumesStrategy: Migration`, and the embedded
 * directory store.
 *
 * Objects are plain jansson values with their real Kubernetes field names;
 * nothing is converted into C structs, so fields this code does not know
 * survive a read/modify/write untouched.  Every function below returns -1
 * (or NULL) with err_msg() set on failure and never prints.
 */
#ifndef VOLMIG_K8S_H
#define VOLMIG_K8S_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "k8s/engine.h"

/* ---- yaml.c: reading and writing manifests ---- */

/* Parses TEXT (multi-document YAML, or one JSON value) into a new JSON
 * array of objects.  A `kind: List` (or any kind ending in "List" with an
 * `items` array) and a top-level array are flattened into their items;
 * empty documents are skipped.  Plain YAML scalars are typed as YAML 1.2's
 * core schema does (null, true/false, integers, floats); everything else,
 * including every quoted scalar and quantities such as 2Gi, stays a string.
 * SOURCE names the input in error messages ("FILE:LINE:COL: ...").
 * Caller owns the result. */
json_t *k8s_parse(const char *text, size_t len, const char *source);
/* Reads PATH ("-" is stdin) and parses it as above. */
json_t *k8s_load_file(const char *path);
/* Reads every path as kubectl -f does: "-" is stdin (once), a directory
 * gives its *.yaml, *.yml and *.json files in name order (not its
 * subdirectories; none is an error), and the objects of all of them come
 * out in one array, in order. */
json_t *k8s_load_paths(const char *const *paths, size_t n);

/* Serialises an array of objects as a multi-document YAML stream
 * ("---" between documents), keys in insertion order; strings that would
 * read back as another type are quoted.  Caller frees the result. */
char *k8s_dump_yaml(const json_t *objects);
/* One object (or an array) as YAML, without document markers. */
char *k8s_dump_yaml_one(const json_t *object);
/* `kind: List` JSON document holding OBJECTS, indented, key order kept. */
char *k8s_dump_json(const json_t *objects);

/* ---- object.c: identity, field access, quantities, validation ---- */

/* Field access by dotted path ("spec.template.spec.volumes"); NULL when a
 * component is missing or not an object. */
json_t *k8s_get(const json_t *obj, const char *path);
const char *k8s_get_str(const json_t *obj, const char *path);
/* Like k8s_get, but creates missing objects along the way. */
json_t *k8s_mkpath(json_t *obj, const char *path);

const char *k8s_kind(const json_t *obj);
const char *k8s_name(const json_t *obj);
/* metadata.namespace, or "" when the object has none. */
const char *k8s_namespace(const json_t *obj);
/* True for kinds that are not namespaced (PersistentVolume). */
bool k8s_cluster_scoped(const char *kind);

/* ---- kinds.c: the kinds volmig knows, as kubectl names them ---- */

struct k8s_kind_info {
    const char *kind;       /* "VirtualMachine" */
    const char *plural;     /* "virtualmachines" */
    const char *singular;   /* "virtualmachine" */
    const char *shorts[2];  /* "vm", "vms" */
    const char *group;      /* "kubevirt.io"; "" for the core group */
    bool cluster;           /* not namespaced */
};

/* The kind named exactly KIND; NULL when volmig does not know it. */
const struct k8s_kind_info *k8s_kind_info(const char *kind);
/* The kind a kubectl resource argument names: kind, plural, singular or
 * short name in any case, or PLURAL.GROUP.  NULL when none. */
const struct k8s_kind_info *k8s_kind_lookup(const char *name);
/* "virtualmachines.kubevirt.io" (core kinds: "persistentvolumeclaims"). */
const char *k8s_kind_resource(const struct k8s_kind_info *k, char *buf, size_t size);
/* Whether apiVersion belongs to the kind's group ("v1" for the core). */
bool k8s_kind_version_ok(const struct k8s_kind_info *k, const char *api_version);
/* The paths of the fields of OBJ that its kind's schema does not have
 * ("spec.updateVolumeStrategy"), as kubectl's field validation would warn
 * of them; checked down to the VMI spec and its volumes.  Caller owns the
 * array. */
json_t *k8s_unknown_fields(const json_t *obj);

/* "KIND NAMESPACE/NAME" for messages, into BUF. */
const char *k8s_ref(const json_t *obj, char *buf, size_t size);

/* Parses a Kubernetes resource quantity ("2Gi", "5G", "512Mi", "1Ti",
 * "1500M", "1e3", plain bytes, or a JSON integer) into bytes, rounding a
 * fraction up.  -1 with err_msg() set when it is not a quantity. */
int k8s_quantity(const json_t *value, long long *bytes);
int k8s_quantity_str(const char *s, long long *bytes);

/* A DNS-1123 subdomain (names) or label (namespaces): safe as a file name
 * component as well, since neither may contain '/', '_' or be "." or "..". */
bool k8s_valid_name(const char *s);
bool k8s_valid_label(const char *s);

/* Structural check of one object: apiVersion, kind, metadata.name and the
 * types of every field reconcile reads.  Errors name the object and the
 * field: "VirtualMachine default/vm-dv: spec.template.spec.volumes[0].name:
 * expected a string, got an integer". */
int k8s_validate(const json_t *obj);
/* What KubeVirt's admission webhook rejects (on top of k8s_validate): every
 * dataVolumeTemplates entry must be referenced by a volume, an
 * updateVolumesStrategy must be Migration or Replacement. */
int k8s_admit(const json_t *obj);

/* Time as RFC 3339 ("2026-08-01T10:00:00Z"), always UTC. */
int k8s_parse_time(const char *s, time_t *t);
void k8s_format_time(time_t t, char buf[32]);

/* ---- reconcile.c: the pure reconcile step ---- */

/* Condition types, reasons and messages, as KubeVirt spells them. */
#define K8S_COND_RESTART_REQUIRED  "RestartRequired"
#define K8S_COND_MANUAL_RECOVERY   "ManualRecoveryRequired"
#define K8S_COND_VOLUMES_CHANGE    "VolumesChange"
#define K8S_COND_FAILURE           "Failure"
#define K8S_REASON_CANCELLATION    "VolumesChangeCancellation"
#define K8S_REASON_MANUAL_RECOVERY "VMI was removed or was final during the volume migration"
#define K8S_MSG_RECOVERY_REQUIRED  "VM recovery required: Volume migration failed, leaving some " \
    "volumes pointing to non-consistent targets; manual intervention is needed to reassign " \
    "them to their original volumes."
#define K8S_MSG_INVALID_UPDATE     "The volume can only be reverted to the previous version during the update"
#define K8S_REASON_UPDATE_ERROR    "VolumesUpdateError"
#define K8S_LABEL_MIGRATION        "kubevirt.io/volume-update-migration"
#define K8S_LABEL_IN_PROGRESS      "kubevirt.io/volume-update-in-progress"
#define K8S_ANNOT_WORKLOAD_UPDATE  "kubevirt.io/workloadUpdateMigration"
#define K8S_VMIM_PREFIX            "kubevirt-workload-update-"
#define K8S_BACKOFF_FIRST          20  /* seconds after the first failure */

struct k8s_result {
    json_t *world;    /* every object after the step, events included */
    json_t *changed;  /* the objects this step created or modified */
    json_t *deleted;  /* the objects this step deleted (as they were) */
    json_t *events;   /* the core/v1 Events this step emitted */
};

/* One reconcile step over WORLD (an array of objects, not modified) at time
 * NOW.  Pure: no I/O, no clock, no randomness; the same input gives the
 * same output, byte for byte.  Decisions are stored in the objects, as
 * KubeVirt stores them (nothing private), so a step over its own output changes
 * nothing more once the world is at rest.  Returns 0, or -1 when WORLD is
 * not an array of valid objects.  Free the result with k8s_result_free. */
int k8s_reconcile(const json_t *world, time_t now, struct k8s_result *out);
void k8s_result_free(struct k8s_result *r);

/* KubeVirt's migration backoff for the migration object VMIM in WORLD:
 * true when it must stay Pending until *UNTIL.  Only the newest migration
 * of its VMI that carries the workload-update (or evacuation) annotation
 * waits: 20 s after the Failed timestamp of the one before it, doubled for
 * every further Failed one back to the last Succeeded.  A migration a user
 * created never waits. */
bool k8s_migration_backoff(const json_t *world, const json_t *vmim, time_t now, time_t *until);

/* Runs k8s_reconcile until nothing changes (at most MAX_STEPS steps).
 * Returns the final world (caller owns it), or NULL with err_msg() set. */
json_t *k8s_reconcile_fixed_point(const json_t *world, time_t now, int max_steps);

/* ---- progress.c: storage progress on the migration object ---- */

/* The annotation, on a VirtualMachineInstanceMigration the controller runs,
 * holding JSON: {"volumes":[{"volume","source","destination","doneBytes",
 * "totalBytes","bytesPerSecond","etaSeconds"}], "doneBytes", "totalBytes",
 * "percent", "bytesPerSecond", "etaSeconds", "updated"}.  A figure not known
 * yet is null.  Per volume the figures are the engine's last report for
 * that volume (in bitmap mode, of the pass under way); without one, a
 * single volume shows the totals. */
#define K8S_ANNOT_PROGRESS "volmig.io/progress"

struct k8s_progress {
    long long done, total;      /* bytes, all volumes */
    double rate;                /* bytes/s, smoothed; 0: not known yet */
    time_t started, sampled;    /* first sample, last rate sample */
    long long sampled_done;
    bool known;                 /* a sample was taken */
};

/* "copied DONE of TOTAL bytes", the engine's progress message. */
bool k8s_progress_parse(const char *msg, long long *done, long long *total);
/* Takes a sample at NOW; the rate moves once a second at most. */
void k8s_progress_sample(struct k8s_progress *p, long long done, long long total, time_t now);
/* The annotation's value for MIGRATED (the VMI's migratedVolumes); per
 * (may be NULL) holds the engine's figures for migratedVolumes[i] at i. */
json_t *k8s_progress_json(const struct k8s_progress *p, const struct k8s_engine_volume_progress *per,
                          const json_t *migrated, time_t now);

/* ---- store.c: the embedded store, a directory of manifests ---- */

/* File name of an object in the store: KIND_NAMESPACE_NAME.yaml
 * (KIND__NAME.yaml for cluster-scoped kinds).  -1 if a part is invalid. */
int k8s_store_filename(const json_t *obj, char *buf, size_t size);
/* Creates DIR (mode 0700) if missing. */
int k8s_store_open(const char *dir);
/* Every object in DIR, sorted by file name.  Caller owns the array. */
json_t *k8s_store_load(const char *dir);
/* Writes OBJ to its file in DIR atomically: temporary file, fsync, rename,
 * fsync of the directory.  A crash leaves the old or the new file. */
int k8s_store_write(const char *dir, const json_t *obj);
int k8s_store_delete(const char *dir, const json_t *obj);
/* Merges APPLIED into the store like `kubectl apply`: a new object is
 * stored as given (uid, creationTimestamp, generation added); an existing
 * one gets the applied top-level fields, labels and annotations, keeps its
 * status and server-set metadata, and its generation goes up when spec
 * changed.  *CREATED tells which.  NOW stamps creationTimestamp. */
int k8s_store_apply(const char *dir, const json_t *applied, time_t now, bool *created,
                    bool *changed);

#endif
