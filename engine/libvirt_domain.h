/* A domain that libvirt owns, moved through libvirt's own APIs, so that
 * libvirt's record (live and persistent XML) always names the disk the VM
 * really uses.  Primitives only: the libvirt strategy over the migration
 * run core strings them together.
 *
 * What these rely on, checked in libvirt 9.0's source (Debian bookworm,
 * 9.0.0-4+deb12u2), is written next to the code that relies on it in
 * libvirt_domain.c and libvirt_domain_xml.c.
 *
 * Two halves:
 *   - pure functions over XML text (libvirt_domain_xml.c): parse a domain's
 *     disks, find a disk by any name a libvirt user gives it, build the
 *     <disk> XML of a block copy destination, compare a disk with a
 *     destination.  Unit-tested without libvirtd.
 *   - a connection to one domain (libvirt_domain.c): its disks, block copy,
 *     READY from the BLOCK_JOB_2 event, progress, pivot or abort, and a
 *     check of the live and persistent XML afterwards.  Every wait takes a
 *     deadline (clock_ms() milliseconds).
 * Errors: -1 (or NULL) with err_msg() set, as in the rest of engine/.
 */
#ifndef VOLMIG_LIBVIRT_DOMAIN_H
#define VOLMIG_LIBVIRT_DOMAIN_H

#include "engine/target_uri.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client_tls;

/* One <disk> of a domain's XML.  Every string is malloc'd or NULL. */
struct lvd_disk {
    char *target;          /* <target dev>: "vda" (libvirt's own name) */
    char *alias;           /* <alias name>: "virtio-disk0", "ua-..." (live only) */
    char *device;          /* disk, cdrom, lun, floppy */
    char *type;            /* file, block, network, volume, ... */
    char *format;          /* <driver type>: raw, qcow2 */
    char *path;            /* file and block: the path */
    char *protocol;        /* network: nbd, iscsi, ... */
    char *export_name;     /* network: <source name> */
    char *host, *port;     /* network over TCP: the first <host> */
    char *socket;          /* network over a unix socket */
    bool tls;              /* <source tls='yes'> */
    int index;             /* <source index>, -1 without: QEMU's nodes are
                              libvirt-INDEX-format and libvirt-INDEX-storage */
    bool readonly;
    bool mirror;           /* a <mirror>: a block copy is under way */
    bool mirror_ready;     /* <mirror ready='yes'> */
};

/* ---- pure (libvirt_domain_xml.c) ---- */

/* The <disk> elements of a domain XML, in order.  *v is malloc'd (free
 * with lvd_disks_free); *n may be 0. */
int lvd_parse_disks(const char *xml, struct lvd_disk **v, size_t *n);
void lvd_disks_free(struct lvd_disk *v, size_t n);

/* The disk that name names, as libvirt users name it: target ("vda"),
 * source path (must be unambiguous), alias ("virtio-disk0", "ua-x"), or a
 * QEMU node name of its top image ("libvirt-1-format").  Index into v, or
 * -1 with err_msg() listing what the domain has. */
int lvd_disk_find(const struct lvd_disk *v, size_t n, const char *name);

/* True when d's source is dest: file and block by path; NBD by protocol,
 * export name, host and port (10809 when absent) or socket.  domblklist
 * prints only an NBD export's name, so the whole source is compared. */
bool lvd_disk_is(const struct lvd_disk *d, const struct target_uri *dest);

/* True when a and b have the same source (what libvirt calls the same
 * location). */
bool lvd_disk_same_source(const struct lvd_disk *a, const struct lvd_disk *b);

/* The <disk> XML of a block copy destination: type='file', type='block'
 * (blockdev) or type='network' protocol='nbd' (TCP or unix socket; tls='yes'
 * for nbds, with libvirt's x509 certificates, else tls='no').  format NULL means raw.  slice, when not 0, limits the
 * destination to its first slice bytes (<slice type='storage'>).
 * malloc'd, or NULL with err_msg(). */
char *lvd_dest_xml(const struct target_uri *dest, bool blockdev, const char *format,
                   uint64_t slice);

/* The source as one line: "file:PATH", "nbd://H:P/EXPORT", ... into buf. */
void lvd_disk_source_text(const struct lvd_disk *d, char *buf, size_t len);

/* ---- a domain through libvirtd (libvirt_domain.c) ---- */

struct lvd;

/* Connects to uri (NULL: qemu:///system) and looks up the domain by name.
 * A domain that does not exist, or is not running, is an error that says
 * so.  Starts the process-wide libvirt event loop on first use. */
struct lvd *lvd_open(const char *uri, const char *name);
void lvd_close(struct lvd *c);
const char *lvd_name(const struct lvd *c);
bool lvd_persistent(const struct lvd *c);

/* The disks of the live XML, or of the persistent definition (inactive). */
int lvd_disks(struct lvd *c, bool inactive, struct lvd_disk **v, size_t *n);

/* lvd_disk_find over the live XML; *target gets the disk's target
 * (malloc'd), the name every other call here takes. */
int lvd_resolve(struct lvd *c, const char *name, char **target);

/* The guest-visible size of a disk (virDomainGetBlockInfo capacity). */
int lvd_capacity(struct lvd *c, const char *target, uint64_t *size);

/* Everything that must hold before a block copy of target onto dest
 * starts, so that a refusal leaves the domain untouched:
 *   - the disk exists and has no block job;
 *   - a persistent domain's definition names the same source as the live
 *     XML (otherwise libvirt would not carry the pivot into it, silently);
 *   - dest exists (a file or block device, or an NBD server answering
 *     within timeout_ms; tls for nbds) and holds the disk's capacity.
 * fit gets what lvd_copy_start needs to know about dest. */
struct lvd_fit {
    bool blockdev;             /* a file: destination that is a block device */
    uint64_t slice;            /* the disk's capacity when dest is larger, else 0:
                                  QEMU's mirror wants both ends the same size,
                                  so libvirt is given a storage slice */
};
int lvd_copy_check(struct lvd *c, const char *target, const struct target_uri *dest,
                   const struct client_tls *tls, int timeout_ms, struct lvd_fit *fit);

struct lvd_copy_opts {
    uint64_t bandwidth;        /* bytes/s, 0: unlimited */
    unsigned granularity;      /* bytes, power of two, 0: QEMU's default */
    uint64_t buf_size;         /* bytes, 0: QEMU's default */
    bool sync_writes;          /* write-blocking: guest writes reach both */
    const char *format;        /* the destination's format, NULL: raw */
};

/* Starts libvirt's block copy of target onto dest (which must exist:
 * REUSE_EXT).  Returns once the job runs; lvd_wait_ready follows. */
int lvd_copy_start(struct lvd *c, const char *target, const struct target_uri *dest,
                   const struct lvd_fit *fit, const struct lvd_copy_opts *o);

/* Waits for the copy of target to be READY (the BLOCK_JOB_2 event, or
 * <mirror ready='yes'> for a job started by someone else or whose event
 * never came; the live XML is read once a second).  -1 when the
 * job ended instead, the domain stopped, the connection closed, or
 * deadline passed. */
int lvd_wait_ready(struct lvd *c, const char *target, int64_t deadline);

/* Stops listening to the domain's block job events, for tests: the waits then
 * see a job's READY and its end only by asking libvirt once a second,
 * which is their floor under an event that never arrives. */
void lvd_deaf_to_jobs(struct lvd *c);

struct lvd_progress {
    uint64_t cur, end;         /* bytes; cur == end is NOT readiness */
    uint64_t bandwidth;        /* bytes/s, 0: unlimited */
};

/* Sets the bandwidth of target's block job (bytes/s, 0: unlimited). */
int lvd_set_speed(struct lvd *c, const char *target, uint64_t bandwidth);

/* target's write requests so far and the time they took in all (ns), as
 * QEMU's device counts them (virDomainBlockStatsFlags: wr_operations,
 * wr_total_times): the guest's own writes, read without raw QMP. */
int lvd_write_stats(struct lvd *c, const char *target, uint64_t *ops, uint64_t *ns);

/* 1 and *p filled while target has a block job, 0 when it has none. */
int lvd_job_info(struct lvd *c, const char *target, struct lvd_progress *p);

/* Ends target's copy: pivot moves the domain onto the destination (the
 * job must be READY); otherwise the job is aborted and the domain stays
 * on its source (after READY the destination is then a consistent copy;
 * before, a partial one).  Waits for the job's end event (or, should it
 * not come, libvirt showing neither job nor <mirror>, with the pivot's
 * outcome read from the disk's source) and for libvirt to show no job and
 * no <mirror>. */
int lvd_finish(struct lvd *c, const char *target, bool pivot, int64_t deadline);

/* After a pivot: the live XML, and a persistent domain's definition,
 * name dest for target, with no <mirror>.  Also usable after an abort
 * with the old source as dest. */
int lvd_verify(struct lvd *c, const char *target, const struct target_uri *dest);

/* ---- migration to another libvirtd (libvirt_domain_migrate.c) ---- */

/* A disk that moves with the domain, onto dest on the destination host. */
struct lvd_move {
    const char *target;              /* "vda" */
    const struct target_uri *dest;   /* file: (a path on the destination host) or NBD */
    struct lvd_fit fit;
};

/* The domain XML xml with each moving disk's source replaced by its
 * destination (type, <driver type>, <source> as lvd_dest_xml makes them).
 * malloc'd, or NULL with err_msg() (a disk xml does not have, say). */
char *lvd_xml_move_disks(const char *xml, const struct lvd_move *m, size_t n,
                         const char *format);

struct lvd_migrate_opts {
    const char *dest_uri;            /* the destination libvirtd */
    const char *migrate_uri;         /* VIR_MIGRATE_PARAM_URI, NULL: libvirt's choice */
    const char *disks_uri;           /* VIR_MIGRATE_PARAM_DISKS_URI, NULL: libvirt's */
    const struct lvd_move *moves;
    size_t nmoves;
    uint64_t bandwidth;              /* bytes/s, 0: unlimited (libvirt takes MiB/s) */
    bool sync_writes;                /* NON_SHARED_SYNCHRONOUS_WRITES */
    const char *format;              /* the destinations' format, NULL: raw */
    /* false: memory only, the destinations already hold the disks' data
     * (no NON_SHARED_DISK, no MIGRATE_DISKS; UNSAFE, since libvirt cannot
     * know that the guest is paused and the copies are complete). */
    bool storage;
};

struct lvd_job_stats {
    uint64_t disk_done, disk_total;  /* the storage copy */
    uint64_t mem_done, mem_total;
    uint64_t downtime_ms;            /* after the end */
};

struct lvd_migration;

/* Starts libvirt's storage migration of the domain to o->dest_uri (LIVE,
 * PEER2PEER, PERSIST_DEST, NON_SHARED_DISK, MIGRATE_DISKS = the moves,
 * DEST_XML and, for a persistent domain, PERSIST_XML and UNDEFINE_SOURCE)
 * in a thread of its own, since virDomainMigrateToURI3 blocks until the
 * end.  NULL with err_msg() when the XML cannot be made or the thread not
 * started. */
struct lvd_migration *lvd_migrate_start(struct lvd *c, const struct lvd_migrate_opts *o);
/* True once the migration call returned. */
bool lvd_migrate_ended(struct lvd_migration *m);
/* The running job's statistics (virDomainGetJobStats), or with completed
 * the last completed job's (on a migration's destination: the incoming
 * migration, downtime included); 0, or -1 with err_msg(). */
int lvd_job_stats(struct lvd *c, bool completed, struct lvd_job_stats *s);
/* Asks libvirt to abort the migration (virDomainAbortJob): the domain
 * stays on the source, on its own disks. */
int lvd_migrate_abort(struct lvd *c);
/* Waits for the call to return and frees m: 0 when the domain now runs on
 * the destination, -1 with libvirt's error.  *stats (may be NULL) gets
 * the completed job's statistics when libvirt has them. */
int lvd_migrate_end(struct lvd_migration *m, struct lvd_job_stats *stats);

/* Pauses or resumes the guest (virDomainSuspend, virDomainResume). */
int lvd_suspend(struct lvd *c);
int lvd_resume(struct lvd *c);
/* True when the domain is paused. */
bool lvd_paused(struct lvd *c);

/* False once the domain stopped, left, or libvirtd's connection closed. */
bool lvd_alive(struct lvd *c);

#endif
