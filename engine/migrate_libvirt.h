/* libvirt mode, a strategy over the run core (engine/migrate_run.h), for a
 * QEMU that libvirt owns (--qmp libvirt:DOMAIN[?uri=URI]): libvirt does the
 * moving, through its own APIs (engine/libvirt_domain.h), so that its
 * record of the domain (live and persistent XML) always names the disk the
 * VM uses.  No QMP is sent: a raw monitor command would move QEMU behind
 * libvirt's back and taint the domain.
 *
 *   pivot, none   virDomainBlockCopy of every volume (REUSE_EXT,
 *                 TRANSIENT_JOB on a persistent domain, SYNCHRONOUS_WRITES
 *                 for write-blocking, bandwidth from --speed), every copy
 *                 READY (BLOCK_JOB_2 event), then virDomainBlockJobAbort
 *                 with PIVOT (pivot) or without (none: consistent copies,
 *                 the VM stays).  libvirt pivots one disk at a time.
 *   migrate:URI   libvirt's own storage migration to the libvirtd at URI
 *                 (virDomainMigrateToURI3, as KubeVirt's virt-launcher
 *                 does), the moving disks rewritten in the destination's
 *                 live and persistent XML; the default.  With
 *                 serve.DRIVE=NBD_URI for every volume in URI's query:
 *                 volmig's data path instead, a block copy into volmig
 *                 serve on the destination, then, with the guest paused,
 *                 a memory-only migration onto the local volumes.
 *
 * Bitmap mode is refused: libvirt's checkpoint and backup API cannot serve
 * it for raw disks (mig_libvirt_refusal).
 */
#ifndef VOLMIG_MIGRATE_LIBVIRT_H
#define VOLMIG_MIGRATE_LIBVIRT_H

#include "engine/migrate_run.h"

extern const struct mig_strategy mig_libvirt;

/* True when addr (mig_config.qmp) names a domain libvirt owns. */
bool mig_libvirt_addr(const char *addr);

/* Why cfg cannot run under libvirt (a constant message), NULL when it
 * can.  Checked by the strategy's init, and by the CLI to refuse early. */
const char *mig_libvirt_refusal(const struct mig_config *cfg);

/* ---- pure parts ---- */

/* "DOMAIN[?uri=URI]" (what follows "libvirt:") into name and uri
 * (malloc'd; *uri NULL when absent).  -1 with err_msg(). */
int mig_libvirt_parse_addr(const char *spec, char **name, char **uri);

/* migrate:URI under libvirt: URI is the destination libvirtd's, and may
 * carry volmig's own query parameters migrate_uri=U (where QEMU's memory
 * migration connects, VIR_MIGRATE_PARAM_URI) and disks_uri=U (where the
 * disks go, VIR_MIGRATE_PARAM_DISKS_URI), which are taken out; the rest
 * goes to libvirt as it was.  All malloc'd; absent ones NULL. */
int mig_libvirt_parse_dest(const char *text, char **dest_uri, char **migrate_uri,
                           char **disks_uri);

#endif
