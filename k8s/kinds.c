/* The kinds volmig knows, with the names kubectl accepts for them, and the
 * fields of each that kubectl's field validation would recognise. */
#include "k8s/k8s.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct k8s_kind_info kinds[] = {
    { "VirtualMachine", "virtualmachines", "virtualmachine", { "vm", "vms" }, "kubevirt.io", false },
    { "VirtualMachineInstance", "virtualmachineinstances", "virtualmachineinstance",
      { "vmi", "vmis" }, "kubevirt.io", false },
    { "VirtualMachineInstanceMigration", "virtualmachineinstancemigrations",
      "virtualmachineinstancemigration", { "vmim", "vmims" }, "kubevirt.io", false },
    { "KubeVirt", "kubevirts", "kubevirt", { "kv", "kvs" }, "kubevirt.io", false },
    { "DataVolume", "datavolumes", "datavolume", { "dv", "dvs" }, "cdi.kubevirt.io", false },
    { "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", { "pvc" }, "",
      false },
    { "PersistentVolume", "persistentvolumes", "persistentvolume", { "pv" }, "", true },
    { "Event", "events", "event", { "ev" }, "", false },
};

const struct k8s_kind_info *k8s_kind_info(const char *kind)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kind && !strcmp(kinds[i].kind, kind))
            return &kinds[i];
    return NULL;
}

/* kubectl matches resource names without regard to case, and takes the
 * plural qualified by its group ("virtualmachines.kubevirt.io"). */
const struct k8s_kind_info *k8s_kind_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        const struct k8s_kind_info *k = &kinds[i];
        size_t pl = strlen(k->plural);

        if (!strcasecmp(name, k->kind) || !strcasecmp(name, k->plural) ||
            !strcasecmp(name, k->singular))
            return k;
        for (size_t j = 0; j < 2; j++)
            if (k->shorts[j] && !strcasecmp(name, k->shorts[j]))
                return k;
        if (*k->group && !strncasecmp(name, k->plural, pl) && name[pl] == '.' &&
            !strcasecmp(name + pl + 1, k->group))
            return k;
    }
    return NULL;
}

const char *k8s_kind_resource(const struct k8s_kind_info *k, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s%s", k->plural, *k->group ? "." : "", k->group);
    return buf;
}

bool k8s_kind_version_ok(const struct k8s_kind_info *k, const char *api_version)
{
    const char *slash = api_version ? strchr(api_version, '/') : NULL;

    if (!api_version)
        return false;
    if (!*k->group)
        return !slash;
    return slash && (size_t)(slash - api_version) == strlen(k->group) &&
           !strncmp(api_version, k->group, strlen(k->group));
}

/* ---- unknown fields ---- */

#define F(...) (const char *const[]){ __VA_ARGS__, NULL }

static const char *const *const object_fields = F("apiVersion", "kind", "metadata", "spec", "status");
static const char *const *const event_fields = F("apiVersion", "kind", "metadata", "involvedObject",
    "reason", "message", "source", "firstTimestamp", "lastTimestamp", "count", "type", "eventTime",
    "series", "action", "related", "reportingComponent", "reportingInstance");
static const char *const *const meta_fields = F("name", "generateName", "namespace", "selfLink",
    "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
    "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers",
    "managedFields");
static const char *const *const vm_spec = F("running", "runStrategy", "instancetype", "preference",
    "template", "dataVolumeTemplates", "updateVolumesStrategy");
static const char *const *const template_fields = F("metadata", "spec");
static const char *const *const dv_template_fields = F("apiVersion", "kind", "metadata", "spec",
    "status");
static const char *const *const vmi_spec = F("priorityClassName", "domain", "nodeSelector",
    "affinity", "schedulerName", "serviceAccountName", "tolerations", "topologySpreadConstraints",
    "evictionStrategy", "startStrategy", "terminationGracePeriodSeconds", "volumes",
    "livenessProbe", "readinessProbe", "hostname", "subdomain", "networks", "dnsPolicy",
    "dnsConfig", "accessCredentials", "architecture", "resourceClaims", "utilityVolumes");
static const char *const *const volume_fields = F("name", "hostDisk", "persistentVolumeClaim",
    "cloudInitNoCloud", "cloudInitConfigDrive", "sysprep", "containerDisk", "ephemeral",
    "emptyDisk", "dataVolume", "configMap", "secret", "downwardAPI", "serviceAccount",
    "downwardMetrics", "memoryDump", "containerPath");
static const char *const *const vmim_spec = F("vmiName", "addedNodeSelector", "sendTo", "receive",
    "priority");
static const char *const *const pvc_spec = F("accessModes", "selector", "resources", "volumeName",
    "storageClassName", "volumeMode", "dataSource", "dataSourceRef", "volumeAttributesClassName");
static const char *const *const dv_spec = F("source", "sourceRef", "pvc", "storage",
    "priorityClassName", "contentType", "checkpoints", "finalCheckpoint", "preallocation");

static bool known(const char *const *list, const char *key)
{
    for (; *list; list++)
        if (!strcmp(*list, key))
            return true;
    return false;
}

/* Appends to OUT the keys of OBJ (at PATH) that LIST does not know. */
static void check(const json_t *obj, const char *path, const char *const *list, json_t *out)
{
    const char *key;
    json_t *v;
    char p[512];

    if (!json_is_object(obj))
        return;
    json_object_foreach((json_t *)obj, key, v) {
        (void)v;
        if (known(list, key))
            continue;
        snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", key);
        json_array_append_new(out, json_string(p));
    }
}

static void check_vmi_spec(const json_t *spec, const char *path, json_t *out)
{
    char p[300];
    size_t i;
    json_t *v;

    check(spec, path, vmi_spec, out);
    json_array_foreach(json_object_get(spec, "volumes"), i, v) {
        snprintf(p, sizeof p, "%s.volumes[%zu]", path, i);
        check(v, p, volume_fields, out);
    }
}

json_t *k8s_unknown_fields(const json_t *obj)
{
    json_t *out = json_array(), *t;
    const char *kind = k8s_kind(obj);
    size_t i;
    char p[300];

    if (!strcmp(kind, "Event")) {
        check(obj, "", event_fields, out);
    } else {
        check(obj, "", object_fields, out);
    }
    check(json_object_get(obj, "metadata"), "metadata", meta_fields, out);
    if (!strcmp(kind, "VirtualMachine")) {
        check(k8s_get(obj, "spec"), "spec", vm_spec, out);
        check(k8s_get(obj, "spec.template"), "spec.template", template_fields, out);
        check_vmi_spec(k8s_get(obj, "spec.template.spec"), "spec.template.spec", out);
        json_array_foreach(k8s_get(obj, "spec.dataVolumeTemplates"), i, t) {
            snprintf(p, sizeof p, "spec.dataVolumeTemplates[%zu]", i);
            check(t, p, dv_template_fields, out);
            snprintf(p, sizeof p, "spec.dataVolumeTemplates[%zu].spec", i);
            check(json_object_get(t, "spec"), p, dv_spec, out);
        }
    } else if (!strcmp(kind, "VirtualMachineInstance")) {
        check_vmi_spec(k8s_get(obj, "spec"), "spec", out);
    } else if (!strcmp(kind, "VirtualMachineInstanceMigration")) {
        check(k8s_get(obj, "spec"), "spec", vmim_spec, out);
    } else if (!strcmp(kind, "PersistentVolumeClaim")) {
        check(k8s_get(obj, "spec"), "spec", pvc_spec, out);
    } else if (!strcmp(kind, "DataVolume")) {
        check(k8s_get(obj, "spec"), "spec", dv_spec, out);
    }
    return out;
}
