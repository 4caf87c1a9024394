/* Object identity, dotted-path access, quantities, times, and the
 * structural validation every object passes before reconcile reads it. */
#include "k8s/k8s.h"
#include "common/error.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *k8s_get(const json_t *obj, const char *path)
{
    char key[256];
    const char *p = path, *dot;
    json_t *cur = (json_t *)obj;

    while (cur && *p) {
        size_t n;

        dot = strchr(p, '.');
        n = dot ? (size_t)(dot - p) : strlen(p);
        if (!json_is_object(cur) || n >= sizeof key)
            return NULL;
        memcpy(key, p, n);
        key[n] = '\0';
        cur = json_object_get(cur, key);
        p += n + (dot ? 1 : 0);
    }
    return cur;
}

const char *k8s_get_str(const json_t *obj, const char *path)
{
    return json_string_value(k8s_get(obj, path));
}

json_t *k8s_mkpath(json_t *obj, const char *path)
{
    char key[256];
    const char *p = path, *dot;
    json_t *cur = obj;

    while (*p) {
        size_t n;
        json_t *next;

        dot = strchr(p, '.');
        n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof key)
            return NULL;
        memcpy(key, p, n);
        key[n] = '\0';
        next = json_object_get(cur, key);
        if (!json_is_object(next)) {
            next = json_object();
            json_object_set_new(cur, key, next);
        }
        cur = next;
        p += n + (dot ? 1 : 0);
    }
    return cur;
}

const char *k8s_kind(const json_t *obj)
{
    const char *k = k8s_get_str(obj, "kind");

    return k ? k : "";
}

const char *k8s_name(const json_t *obj)
{
    const char *n = k8s_get_str(obj, "metadata.name");

    return n ? n : "";
}

const char *k8s_namespace(const json_t *obj)
{
    const char *n = k8s_get_str(obj, "metadata.namespace");

    return n ? n : "";
}

bool k8s_cluster_scoped(const char *kind)
{
    return !strcmp(kind, "PersistentVolume") || !strcmp(kind, "StorageClass") ||
           !strcmp(kind, "Namespace") || !strcmp(kind, "Node");
}

const char *k8s_ref(const json_t *obj, char *buf, size_t size)
{
    const char *ns = k8s_namespace(obj);
    const char *name = k8s_name(obj);

    if (!*name)
        name = k8s_get_str(obj, "metadata.generateName") ? k8s_get_str(obj, "metadata.generateName") : "(unnamed)";
    snprintf(buf, size, "%s %s%s%s", *k8s_kind(obj) ? k8s_kind(obj) : "(no kind)", ns,
             *ns ? "/" : "", name);
    return buf;
}

/* ---- quantities ---- */

int k8s_quantity_str(const char *s, long long *bytes)
{
    static const struct { const char *sfx; unsigned __int128 mul; int exp10; } sfx[] = {
        { "Ki", (unsigned __int128)1 << 10, 0 }, { "Mi", (unsigned __int128)1 << 20, 0 },
        { "Gi", (unsigned __int128)1 << 30, 0 }, { "Ti", (unsigned __int128)1 << 40, 0 },
        { "Pi", (unsigned __int128)1 << 50, 0 }, { "Ei", (unsigned __int128)1 << 60, 0 },
        { "k", 1, 3 }, { "M", 1, 6 }, { "G", 1, 9 }, { "T", 1, 12 }, { "P", 1, 15 },
        { "E", 1, 18 }, { "m", 1, -3 }, { "u", 1, -6 }, { "n", 1, -9 }, { "", 1, 0 },
    };
    const char *p = s;
    unsigned __int128 mant = 0, mul = 1, div = 1, v;
    int digits = 0, exp10 = 0;
    size_t i;

    if (!s)
        goto bad;
    if (*p == '+')
        p++;
    for (; isdigit((unsigned char)*p); p++, digits++) {
        if (digits > 30)
            goto bad;
        mant = mant * 10 + (unsigned)(*p - '0');
    }
    if (*p == '.') {
        for (p++; isdigit((unsigned char)*p); p++, digits++) {
            if (digits > 30)
                goto bad;
            mant = mant * 10 + (unsigned)(*p - '0');
            div *= 10;
        }
    }
    if (!digits)
        goto bad;
    if ((*p == 'e' || *p == 'E') && p[1]) {
        char *end;
        long e = strtol(p + 1, &end, 10);

        if (*end || e > 30 || e < -30)
            goto bad;
        exp10 = (int)e;
        p = end;
    } else {
        for (i = 0; i < sizeof sfx / sizeof sfx[0]; i++)
            if (!strcmp(p, sfx[i].sfx))
                break;
        if (i == sizeof sfx / sizeof sfx[0])
            goto bad;
        mul = sfx[i].mul;
        exp10 = sfx[i].exp10;
    }
    for (; exp10 > 0; exp10--)
        mul *= 10;
    for (; exp10 < 0; exp10++)
        div *= 10;
    if (mant && mul > ((unsigned __int128)1 << 100) / mant)
        goto bad;
    v = (mant * mul + div - 1) / div;   /* a fraction of a byte rounds up */
    if (v > (unsigned __int128)LLONG_MAX)
        goto bad;
    *bytes = (long long)v;
    return 0;
bad:
    err_set(0, "'%s' is not a quantity (like 2Gi, 5G, 512Mi or a number of bytes)", s ? s : "");
    return -1;
}

int k8s_quantity(const json_t *value, long long *bytes)
{
    if (json_is_integer(value) && json_integer_value(value) >= 0) {
        *bytes = json_integer_value(value);
        return 0;
    }
    if (json_is_real(value) && json_real_value(value) >= 0 && json_real_value(value) < 9e18) {
        double d = json_real_value(value);

        *bytes = (long long)d + ((double)(long long)d < d);
        return 0;
    }
    if (json_is_string(value))
        return k8s_quantity_str(json_string_value(value), bytes);
    err_set(0, "expected a quantity (like 2Gi or a number of bytes)");
    return -1;
}

/* ---- names ---- */

static bool valid_dns(const char *s, size_t max, bool dots)
{
    size_t n = s ? strlen(s) : 0;

    if (!n || n > max || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!(islower(c) || isdigit(c) || c == '-' || (dots && c == '.')))
            return false;
        if (c == '.' && s[i + 1] == '.')
            return false;
    }
    return true;
}

bool k8s_valid_name(const char *s)
{
    return valid_dns(s, 253, true);
}

bool k8s_valid_label(const char *s)
{
    return valid_dns(s, 63, false);
}

/* ---- times ---- */

int k8s_parse_time(const char *s, time_t *t)
{
    struct tm tm = { 0 };
    const char *p;
    long off = 0;

    if (!s || !(p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)))
        goto bad;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            goto bad;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
               isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
               isdigit((unsigned char)p[5])) {
        off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 + ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
        if (*p == '-')
            off = -off;
        p += 6;
    } else {
        goto bad;
    }
    if (*p)
        goto bad;
    *t = timegm(&tm) - off;
    return 0;
bad:
    err_set(0, "'%s' is not an RFC 3339 time (like 2026-08-01T10:00:00Z)", s ? s : "");
    return -1;
}

void k8s_format_time(time_t t, char buf[32])
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- validation ---- */

enum ftype { T_OBJ, T_ARR, T_STR, T_BOOL, T_INT, T_QTY, T_TIME, T_STRS };

static const char *type_word(enum ftype t)
{
    switch (t) {
    case T_OBJ: return "an object";
    case T_ARR: return "a list";
    case T_STR: return "a string";
    case T_BOOL: return "a boolean";
    case T_INT: return "an integer";
    case T_QTY: return "a quantity (like 2Gi)";
    case T_TIME: return "an RFC 3339 time";
    case T_STRS: return "a list of strings";
    }
    return "?";
}

static const char *json_word(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "a list";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

struct vctx {
    const json_t *obj;
    int failed;
};

static void vfail(struct vctx *c, const char *path, const char *fmt, const char *a, const char *b)
{
    char ref[600], msg[400];

    if (c->failed++)
        return;
    snprintf(msg, sizeof msg, fmt, a, b);
    err_set(0, "%s: %s: %s", k8s_ref(c->obj, ref, sizeof ref), path, msg);
}

static void check_leaf(struct vctx *c, const json_t *v, const char *path, enum ftype t)
{
    long long q;
    time_t tt;
    size_t i;
    json_t *it;
    bool ok;

    switch (t) {
    case T_OBJ: ok = json_is_object(v); break;
    case T_ARR: ok = json_is_array(v); break;
    case T_STR: ok = json_is_string(v); break;
    case T_BOOL: ok = json_is_boolean(v); break;
    case T_INT: ok = json_is_integer(v); break;
    case T_STRS:
        ok = json_is_array(v);
        json_array_foreach(v, i, it)
            ok = ok && json_is_string(it);
        break;
    case T_QTY:
        if (json_is_string(v) || json_is_number(v)) {
            if (k8s_quantity(v, &q) < 0)
                vfail(c, path, "%s%s", err_msg(), "");
            return;
        }
        ok = false;
        break;
    case T_TIME:
        if (json_is_string(v)) {
            if (k8s_parse_time(json_string_value(v), &tt) < 0)
                vfail(c, path, "%s%s", err_msg(), "");
            return;
        }
        ok = false;
        break;
    default:
        ok = false;
    }
    if (!ok)
        vfail(c, path, "expected %s, got %s", type_word(t), json_word(v));
}

/* Walks SPEC ("a.b[].c") from CUR; PATH is what has been walked so far.
 * Missing parents are fine; a missing leaf is an error only if REQUIRED. */
static void walk(struct vctx *c, const json_t *cur, const char *spec, const char *path,
                 enum ftype t, bool required)
{
    char seg[128], sub[512];
    const char *dot = strchr(spec, '.');
    size_t n = dot ? (size_t)(dot - spec) : strlen(spec);
    bool arr = n > 2 && spec[n - 2] == '[' && spec[n - 1] == ']';
    json_t *v, *it;
    size_t i;

    memcpy(seg, spec, n - (arr ? 2 : 0));
    seg[n - (arr ? 2 : 0)] = '\0';
    snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", seg);
    v = json_object_get(cur, seg);
    if (!v || (json_is_null(v) && (dot || arr || !required))) {
        if (required && !dot && !arr)
            vfail(c, sub, "missing (%s is required)%s", type_word(t), "");
        return;
    }
    if (!dot && !arr) {
        check_leaf(c, v, sub, t);
        return;
    }
    if (arr) {
        if (!json_is_array(v)) {
            vfail(c, sub, "expected a list, got %s%s", json_word(v), "");
            return;
        }
        json_array_foreach(v, i, it) {
            char elem[600];

            snprintf(elem, sizeof elem, "%s[%zu]", sub, i);
            if (!dot) {
                check_leaf(c, it, elem, t);
            } else if (!json_is_object(it)) {
                vfail(c, elem, "expected an object, got %s%s", json_word(it), "");
            } else {
                walk(c, it, dot + 1, elem, t, required);
            }
        }
        return;
    }
    if (!json_is_object(v)) {
        vfail(c, sub, "expected an object, got %s%s", json_word(v), "");
        return;
    }
    walk(c, v, dot + 1, sub, t, required);
}

#define OPT(p, t) walk(&c, obj, p, "", t, false)
#define REQ(p, t) walk(&c, obj, p, "", t, true)

static void check_volumes(struct vctx *c, const json_t *obj, const char *spec)
{
    static const struct { const char *p; enum ftype t; bool req; } f[] = {
        { "volumes[].name", T_STR, true },
        { "volumes[].dataVolume.name", T_STR, true },
        { "volumes[].dataVolume.hotpluggable", T_BOOL, false },
        { "volumes[].persistentVolumeClaim.claimName", T_STR, true },
        { "volumes[].persistentVolumeClaim.hotpluggable", T_BOOL, false },
        { "domain.devices.disks[].name", T_STR, true },
        { "domain.devices.disks[].shareable", T_BOOL, false },
        { "domain.devices.filesystems[].name", T_STR, true },
    };
    char p[256];

    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        snprintf(p, sizeof p, "%s.%s", spec, f[i].p);
        walk(c, obj, p, "", f[i].t, f[i].req);
    }
}

static void check_conditions(struct vctx *c, const json_t *obj)
{
    walk(c, obj, "status.conditions[].type", "", T_STR, true);
    walk(c, obj, "status.conditions[].status", "", T_STR, false);
}

static void check_pvc_info(struct vctx *c, const json_t *obj, const char *list)
{
    static const char *const f[] = { "volumeName", "sourcePVCInfo.claimName",
                                     "destinationPVCInfo.claimName" };
    char p[256];

    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s[].%s", list, f[i]);
        walk(c, obj, p, "", T_STR, i == 0);
    }
}

int k8s_validate(const json_t *obj)
{
    struct vctx c = { .obj = obj };
    const char *kind, *name;

    if (!json_is_object(obj)) {
        err_set(0, "an object must be a mapping, not %s", json_word(obj));
        return -1;
    }
    REQ("apiVersion", T_STR);
    REQ("kind", T_STR);
    REQ("metadata", T_OBJ);
    if (c.failed)
        return -1;
    REQ("metadata.name", T_STR);
    OPT("metadata.namespace", T_STR);
    OPT("metadata.labels", T_OBJ);
    OPT("metadata.annotations", T_OBJ);
    OPT("metadata.creationTimestamp", T_TIME);
    OPT("status", T_OBJ);
    if (c.failed)
        return -1;
    kind = k8s_kind(obj);
    name = k8s_name(obj);
    if (!k8s_valid_name(name)) {
        vfail(&c, "metadata.name", "'%s' is not a valid name (lower case letters, digits, "
              "'-' and '.', at most 253)%s", name, "");
        return -1;
    }
    if (k8s_get(obj, "metadata.namespace") && !k8s_valid_label(k8s_namespace(obj))) {
        vfail(&c, "metadata.namespace", "'%s' is not a valid namespace%s", k8s_namespace(obj), "");
        return -1;
    }
    for (const char *k = kind; *k; k++)
        if (!isalnum((unsigned char)*k)) {
            vfail(&c, "kind", "'%s' is not a kind%s", kind, "");
            return -1;
        }

    if (!strcmp(kind, "VirtualMachine")) {
        REQ("spec", T_OBJ);
        OPT("spec.updateVolumesStrategy", T_STR);
        OPT("spec.runStrategy", T_STR);
        OPT("spec.running", T_BOOL);
        REQ("spec.dataVolumeTemplates[].metadata.name", T_STR);
        OPT("spec.dataVolumeTemplates[].spec", T_OBJ);
        REQ("spec.template", T_OBJ);
        REQ("spec.template.spec", T_OBJ);
        check_volumes(&c, obj, "spec.template.spec");
        check_conditions(&c, obj);
        check_pvc_info(&c, obj, "status.volumeUpdateState.volumeMigrationState.migratedVolumes");
    } else if (!strcmp(kind, "VirtualMachineInstance")) {
        REQ("spec", T_OBJ);
        check_volumes(&c, obj, "spec");
        OPT("status.phase", T_STR);
        check_conditions(&c, obj);
        check_pvc_info(&c, obj, "status.migratedVolumes");
        REQ("status.volumeStatus[].name", T_STR);
        OPT("status.volumeStatus[].persistentVolumeClaimInfo.accessModes", T_STRS);
        OPT("status.migrationState.targetNodeDomainReadyTimestamp", T_TIME);
    } else if (!strcmp(kind, "VirtualMachineInstanceMigration")) {
        REQ("spec", T_OBJ);
        REQ("spec.vmiName", T_STR);
        OPT("status.phase", T_STR);
        REQ("status.phaseTransitionTimestamps[].phase", T_STR);
        REQ("status.phaseTransitionTimestamps[].phaseTransitionTimestamp", T_TIME);
    } else if (!strcmp(kind, "PersistentVolumeClaim")) {
        REQ("spec", T_OBJ);
        OPT("spec.accessModes", T_STRS);
        OPT("spec.volumeMode", T_STR);
        OPT("spec.resources.requests.storage", T_QTY);
        OPT("status.capacity.storage", T_QTY);
    } else if (!strcmp(kind, "DataVolume")) {
        REQ("spec", T_OBJ);
        OPT("spec.storage.accessModes", T_STRS);
        OPT("spec.storage.resources.requests.storage", T_QTY);
        OPT("spec.pvc.accessModes", T_STRS);
        OPT("spec.pvc.resources.requests.storage", T_QTY);
        OPT("status.phase", T_STR);
    } else if (!strcmp(kind, "KubeVirt")) {
        OPT("spec.configuration.vmRolloutStrategy", T_STR);
        OPT("spec.workloadUpdateStrategy.workloadUpdateMethods", T_STRS);
    } else if (!strcmp(kind, "PersistentVolume")) {
        OPT("spec.capacity.storage", T_QTY);
        OPT("spec.hostPath.path", T_STR);
        OPT("spec.local.path", T_STR);
    }
    return c.failed ? -1 : 0;
}

int k8s_admit(const json_t *obj)
{
    const json_t *tmpls, *vols, *t, *v;
    const char *strategy;
    char ref[600];
    size_t i, j;

    if (k8s_validate(obj) < 0)
        return -1;
    if (strcmp(k8s_kind(obj), "VirtualMachine"))
        return 0;
    strategy = k8s_get_str(obj, "spec.updateVolumesStrategy");
    if (strategy && strcmp(strategy, "Migration") && strcmp(strategy, "Replacement")) {
        err_set(0, "%s: spec.updateVolumesStrategy: updateVolumes strategy not recognized: %s",
                k8s_ref(obj, ref, sizeof ref), strategy);
        return -1;
    }
    tmpls = k8s_get(obj, "spec.dataVolumeTemplates");
    vols = k8s_get(obj, "spec.template.spec.volumes");
    json_array_foreach(tmpls, i, t) {
        const char *tn = k8s_get_str(t, "metadata.name");
        bool found = false;

        if (!tn) {
            err_set(0, "%s: spec.dataVolumeTemplates[%zu]: metadata.name is required",
                    k8s_ref(obj, ref, sizeof ref), i);
            return -1;
        }

        json_array_foreach(vols, j, v) {
            const char *dv = k8s_get_str(v, "dataVolume.name");
            const char *pvc = k8s_get_str(v, "persistentVolumeClaim.claimName");

            if ((dv && !strcmp(dv, tn)) || (pvc && !strcmp(pvc, tn)))
                found = true;
        }
        if (!found) {
            err_set(0, "%s: spec.dataVolumeTemplates[%zu]: DataVolumeTemplate entry %s must be "
                    "referenced in the VMI template's 'volumes' list",
                    k8s_ref(obj, ref, sizeof ref), i, tn);
            return -1;
        }
    }
    return 0;
}

/* ---- engine.h ---- */

#include "k8s/engine.h"

const char *k8s_engine_phase_name(enum k8s_engine_phase p)
{
    static const char *const names[] = { "Pending", "Scheduling", "Running", "Succeeded",
                                         "Failed" };

    return (unsigned)p < sizeof names / sizeof names[0] ? names[p] : "Unknown";
}
