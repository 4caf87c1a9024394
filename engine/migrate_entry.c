/* volmig migrate's entry, mig_run(): the monitor, the sweep of what dead
 * runs left, the drives resolved to their nodes, then the strategy the
 * mode names runs over the core (engine/migrate_run.h).  The one file
 * that knows every strategy by name. */
#include "engine/migrate_run.h"
#include "engine/migrate_mirror.h"
#include "engine/migrate_bitmap.h"
#include "engine/migrate_libvirt.h"
#include "common/error.h"
#include "qmp/qmp.h"

#include <stdio.h>
#include <string.h>

#define QMP_TIMEOUT_MS RUN_QMP_TIMEOUT_MS

/* ---- the volumes ---- */

/* A device id as users know it ("virtio-disk0") against QEMU's qdev path
 * ("/machine/peripheral/virtio-disk0/virtio-backend"). */
static bool qdev_matches(const char *qdev, const char *id)
{
    static const char prefix[] = "/machine/peripheral/";
    size_t n = strlen(id);

    if (!strcmp(qdev, id))
        return true;
    if (strncmp(qdev, prefix, sizeof prefix - 1))
        return false;
    qdev += sizeof prefix - 1;
    return !strncmp(qdev, id, n) && (qdev[n] == '\0' || qdev[n] == '/');
}

/* The node an earlier pivot moved the drive named drive onto (named
 * drive.mPID by migrate_mirror.c), NULL if none.  The device went with it,
 * so the name the user gave still means the disk the VM uses; a node of
 * that name left behind (one the user added) is no longer it. */
static const char *pivoted_to(json_t *nodes, const char *drive)
{
    size_t i, n = strlen(drive);
    json_t *e;
    const char *found = NULL;

    json_array_foreach(nodes, i, e) {
        const char *name = json_string_value(json_object_get(e, "node-name"));

        if (name && !strncmp(name, drive, n) && name[n] == '.' && mig_pivot_base(name) == n)
            found = name;
    }
    return found;
}

/* Resolves vol->drive (node name, then drive id or qdev id) to its node. */
static int resolve(struct mig_run *m, struct mig_volume *v)
{
    json_t *nodes = NULL, *blocks = NULL, *n;
    const char *node = NULL;
    int rc = -1;

    if (qmp_callf(m->q, &nodes, run_dl(QMP_TIMEOUT_MS), "query-named-block-nodes", "{s:b}",
                  "flat", 1) < 0)
        return -1;
    if ((node = pivoted_to(nodes, v->drive))) {
        /* found through the pivot */
    } else if (run_find_by(nodes, "node-name", v->drive)) {
        node = v->drive;
    } else {
        size_t i;
        json_t *b;

        if (qmp_call(m->q, "query-block", NULL, &blocks, run_dl(QMP_TIMEOUT_MS)) < 0)
            goto out;
        json_array_foreach(blocks, i, b) {
            const char *dev = json_string_value(json_object_get(b, "device"));
            const char *qdev = json_string_value(json_object_get(b, "qdev"));

            if ((dev && !strcmp(dev, v->drive)) || (qdev && qdev_matches(qdev, v->drive))) {
                node = json_string_value(json_object_get(json_object_get(b, "inserted"),
                                                         "node-name"));
                if (!node) {
                    err_set(0, "drive '%s' has no medium inserted", v->drive);
                    goto out;
                }
                break;
            }
        }
    }
    if (!node || !(n = run_find_by(nodes, "node-name", node))) {
        err_set(0, "drive '%s' not found: no block node, drive id or device id of that name",
                v->drive);
        goto out;
    }
    if (!strncmp(node, MIG_NAME_PREFIX, strlen(MIG_NAME_PREFIX))) {
        err_set(0, "drive '%s' is a node of an earlier migration (%s); refusing to mirror it",
                v->drive, node);
        goto out;
    }
    if (json_is_true(json_object_get(n, "ro"))) {
        err_set(0, "drive '%s' (node %s) is read-only: nothing to migrate safely", v->drive, node);
        goto out;
    }
    snprintf(v->node, sizeof v->node, "%s", node);
    v->size = (uint64_t)json_integer_value(json_object_get(json_object_get(n, "image"),
                                                           "virtual-size"));
    if (!v->size) {
        err_set(0, "drive '%s' (node %s) reports no size", v->drive, node);
        goto out;
    }
    rc = 0;
out:
    json_decref(nodes);
    json_decref(blocks);
    return rc;
}

/* ---- the entry ---- */

/* What runs that died left in QEMU, every strategy's kind of it: a run
 * that is a bitmap-mode one now may follow a mirror-mode one that died. */
static void sweep_dead_runs(struct mig_run *r)
{
    int found = mirror_sweep(r->q);

    found += bitmap_sweep(r->q);
    if (found)
        run_emit(r, json_pack("{s:s, s:s, s:i}", "event", "warning", "message",
                              "removed jobs, nodes and objects left in QEMU by a migration "
                              "that died", "count", found));
}

static int resolve_all(struct mig_run *r)
{
    struct mig_config *cfg = r->cfg;

    for (int i = 0; i < cfg->nvols; i++) {
        if (resolve(r, &cfg->vols[i]) < 0)
            return -1;
        for (int j = 0; j < i; j++)
            if (!strcmp(cfg->vols[j].node, cfg->vols[i].node)) {
                err_set(0, "drives '%s' and '%s' are the same node (%s)", cfg->vols[j].drive,
                        cfg->vols[i].drive, cfg->vols[i].node);
                return -1;
            }
    }
    return 0;
}

void mig_config_defaults(struct mig_config *cfg)
{
    *cfg = (struct mig_config){
        .retries = 3, .backoff_s = 20, .buf_size = 64 << 20, .progress_ms = 500,
        .converge_warn_s = 30, .converge_below = -1,
        .latency_budget = { LAT_BUDGET_AUTO, LAT_BUDGET_FACTOR },
    };
}

enum mig_result mig_run(struct mig_config *cfg)
{
    struct mig_run r = {
        .cfg = cfg, .t0 = qmp_now_ms(),
        .strategy = cfg->mode == MIG_MODE_BITMAP ? &mig_bitmap : &mig_mirror,
    };
    enum mig_result res = MIG_FAILED;

    /* A QEMU that libvirt owns is moved by libvirt: no monitor is opened
     * (a raw QMP command would taint the domain and leave libvirt's
     * record behind), nothing is swept, and libvirt resolves the disks. */
    if (mig_libvirt_addr(cfg->qmp)) {
        r.strategy = &mig_libvirt;
        if (r.strategy->init(&r) == 0)
            res = run_attempts(&r);
        r.strategy->finish(&r, res);
        return res;
    }
    r.q = qmp_open(cfg->qmp, QMP_TIMEOUT_MS);
    if (!r.q) {
        err_prefix("cannot reach QEMU's monitor at %s", cfg->qmp);
        return MIG_FAILED;
    }
    sweep_dead_runs(&r);
    if (resolve_all(&r) == 0 && r.strategy->init(&r) == 0)
        res = run_attempts(&r);
    if (r.strategy->finish)
        r.strategy->finish(&r, res);
    qmp_close(r.q);
    return res;
}
