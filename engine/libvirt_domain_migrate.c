/* libvirt's storage migration of a domain to another libvirtd, as
 * KubeVirt's virt-launcher starts it (pkg/virt-launcher/virtwrap/
 * live-migration-source.go): virDomainMigrateToURI3 with LIVE, PEER2PEER,
 * PERSIST_DEST, NON_SHARED_DISK and MIGRATE_DISKS naming the moving disks,
 * whose sources DEST_XML and PERSIST_XML rewrite.  See
 * engine/libvirt_domain.h.
 *
 * libvirt 9.0 facts:
 *   - virDomainMigrateToURI3 blocks until the migration ended; the job is
 *     watched meanwhile with virDomainGetJobStats (disk_processed,
 *     disk_total, memory_processed, memory_total) from another thread and
 *     stopped with virDomainAbortJob, after which the domain keeps running
 *     on the source (qemu_migration.c qemuMigrationSrcPerformPeer2Peer3
 *     cancels the destination).
 *   - with NON_SHARED_DISK the destination libvirtd starts QEMU on the
 *     disks DEST_XML names, creating missing files of the source's size
 *     (qemu_migration.c qemuMigrationDstPrecreateStorage), exports them
 *     over NBD and the source mirrors into them; a disk the destination
 *     XML gives a <slice> is exported at that size, so a larger volume
 *     takes a smaller disk.
 *   - VIR_MIGRATE_PARAM_BANDWIDTH is in MiB/s and limits the disks'
 *     mirrors and the memory migration alike.
 *   - NON_SHARED_SYNCHRONOUS_WRITES (since 8.0) makes the disks' mirrors
 *     write-blocking.
 */
#include "engine/libvirt_internal.h"
#include "common/error.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libvirt/virterror.h>

struct lvd_migration {
    pthread_t thread;
    virDomainPtr dom;                /* c's, which outlives the migration */
    char *dest_uri;
    virTypedParameterPtr params;
    int nparams;
    unsigned flags;
    atomic_bool ended;
    int rc;                          /* the call's, valid once ended */
    char err[ERR_MSG_MAX];
};

static void *migrate_thread(void *arg)
{
    struct lvd_migration *m = arg;

    m->rc = virDomainMigrateToURI3(m->dom, m->dest_uri, m->params, (unsigned)m->nparams,
                                   m->flags);
    if (m->rc < 0)
        snprintf(m->err, sizeof m->err, "%s", virGetLastErrorMessage());
    atomic_store(&m->ended, true);
    return NULL;
}

static void migration_free(struct lvd_migration *m)
{
    if (!m)
        return;
    virTypedParamsFree(m->params, m->nparams);
    free(m->dest_uri);
    free(m);
}

/* The XML (live or persistent) with the moves applied; malloc'd. */
static char *moved_xml(struct lvd *c, bool inactive, const struct lvd_migrate_opts *o)
{
    unsigned flags = VIR_DOMAIN_XML_MIGRATABLE | (inactive ? VIR_DOMAIN_XML_INACTIVE : 0);
    char *xml = virDomainGetXMLDesc(lvd_dom(c), flags), *res;

    if (!xml) {
        lvd_set_error(inactive ? "persistent XML of" : "live XML of", lvd_name(c));
        return NULL;
    }
    res = lvd_xml_move_disks(xml, o->moves, o->nmoves, o->format);
    free(xml);
    if (!res)
        err_prefix("libvirt: %s XML of %s", inactive ? "persistent" : "live", lvd_name(c));
    return res;
}

static int add_params(struct lvd *c, struct lvd_migration *m, const struct lvd_migrate_opts *o)
{
    int max = 0;
    char *dest = NULL, *persist = NULL;
    int rc = -1;

    if (!(dest = moved_xml(c, false, o)))
        return -1;
    if (lvd_persistent(c) && !(persist = moved_xml(c, true, o)))
        goto out;
    if (virTypedParamsAddString(&m->params, &m->nparams, &max, VIR_MIGRATE_PARAM_DEST_XML,
                                dest) < 0 ||
        (persist && virTypedParamsAddString(&m->params, &m->nparams, &max,
                                            VIR_MIGRATE_PARAM_PERSIST_XML, persist) < 0) ||
        (o->migrate_uri && virTypedParamsAddString(&m->params, &m->nparams, &max,
                                                   VIR_MIGRATE_PARAM_URI, o->migrate_uri) < 0) ||
        (o->disks_uri && virTypedParamsAddString(&m->params, &m->nparams, &max,
                                                 VIR_MIGRATE_PARAM_DISKS_URI, o->disks_uri) < 0) ||
        (o->bandwidth && virTypedParamsAddULLong(&m->params, &m->nparams, &max,
                                                 VIR_MIGRATE_PARAM_BANDWIDTH,
                                                 (o->bandwidth + (1 << 20) - 1) >> 20) < 0))
        goto oom;
    for (size_t i = 0; o->storage && i < o->nmoves; i++)
        if (virTypedParamsAddString(&m->params, &m->nparams, &max,
                                    VIR_MIGRATE_PARAM_MIGRATE_DISKS, o->moves[i].target) < 0)
            goto oom;
    rc = 0;
    goto out;
oom:
    err_set(ENOMEM, "libvirt: migration parameters");
out:
    free(dest);
    free(persist);
    return rc;
}

struct lvd_migration *lvd_migrate_start(struct lvd *c, const struct lvd_migrate_opts *o)
{
    struct lvd_migration *m = calloc(1, sizeof *m);

    if (!m || !(m->dest_uri = strdup(o->dest_uri))) {
        err_set(ENOMEM, "libvirt: migration");
        migration_free(m);
        return NULL;
    }
    m->dom = lvd_dom(c);
    m->flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_PERSIST_DEST;
    /* Memory only: libvirt refuses a disk on local storage that it does
     * not copy ("Migration without shared storage is unsafe",
     * qemu_migration.c qemuMigrationSrcIsSafe); the caller made the
     * destination a complete copy with the guest paused. */
    m->flags |= o->storage ? VIR_MIGRATE_NON_SHARED_DISK : VIR_MIGRATE_UNSAFE;
    if (lvd_persistent(c))
        m->flags |= VIR_MIGRATE_UNDEFINE_SOURCE;
    if (o->storage && o->sync_writes)
        m->flags |= VIR_MIGRATE_NON_SHARED_SYNCHRONOUS_WRITES;
    if (add_params(c, m, o) < 0) {
        migration_free(m);
        return NULL;
    }
    /* From here the thread uses m until it ended; lvd_migrate_end joins
     * it and frees m. */
    if (pthread_create(&m->thread, NULL, migrate_thread, m) != 0) {
        err_set(errno, "libvirt: migration thread");
        migration_free(m);
        return NULL;
    }
    return m;
}

bool lvd_migrate_ended(struct lvd_migration *m)
{
    return atomic_load(&m->ended);
}

int lvd_job_stats(struct lvd *c, bool completed, struct lvd_job_stats *s)
{
    virTypedParameterPtr p = NULL;
    int n = 0, type;
    unsigned long long v;

    memset(s, 0, sizeof *s);
    if (virDomainGetJobStats(lvd_dom(c), &type, &p, &n,
                             completed ? VIR_DOMAIN_JOB_STATS_COMPLETED : 0) < 0) {
        lvd_set_error("job statistics of", lvd_name(c));
        return -1;
    }
    if (virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_DISK_PROCESSED, &v) == 1)
        s->disk_done = v;
    if (virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_DISK_TOTAL, &v) == 1)
        s->disk_total = v;
    if (virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_MEMORY_PROCESSED, &v) == 1)
        s->mem_done = v;
    if (virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_MEMORY_TOTAL, &v) == 1)
        s->mem_total = v;
    if (virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_DOWNTIME, &v) == 1)
        s->downtime_ms = v;
    virTypedParamsFree(p, n);
    return 0;
}

int lvd_migrate_abort(struct lvd *c)
{
    if (virDomainAbortJob(lvd_dom(c)) < 0) {
        lvd_set_error("aborting the migration of", lvd_name(c));
        return -1;
    }
    return 0;
}

int lvd_migrate_end(struct lvd_migration *m, struct lvd_job_stats *stats)
{
    int rc;

    pthread_join(m->thread, NULL);
    rc = m->rc;
    if (rc < 0)
        err_set(0, "libvirt: migration: %s", m->err);
    if (stats)
        memset(stats, 0, sizeof *stats);
    migration_free(m);
    return rc < 0 ? -1 : 0;
}
