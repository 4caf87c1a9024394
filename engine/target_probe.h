/* Migration targets looked at before anything is written to them: their
 * size, and whether they can be written at all.  Mirror and bitmap mode
 * both refuse a target smaller than its drive before any copy starts. */
#ifndef VOLMIG_TARGET_PROBE_H
#define VOLMIG_TARGET_PROBE_H

#include "engine/target_uri.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client_tls;

/* Connects to an NBD target (with tls when not NULL: the URI is then taken
 * as nbds) and reads its size, within timeout_ms.  -1 with err_msg() set
 * when nobody answered in time or the export is read-only. */
int probe_nbd_target(const struct target_uri *u, const struct client_tls *tls, int timeout_ms,
                     uint64_t *size);

/* A connection to the NBD export at uri (libnbd's URI form), ready for
 * commands, within timeout_ms; NULL with err_msg() set.  The caller closes
 * it with nbd_close(). */
struct nbd_handle;
struct nbd_handle *probe_nbd_connect(const char *uri, const struct client_tls *tls,
                                     int timeout_ms);
/* Reads len bytes at off through h within timeout_ms.  -1 with err_msg(). */
int probe_nbd_pread(struct nbd_handle *h, void *buf, size_t len, uint64_t off, int timeout_ms);

/* The size of a file or block device target.  -1 with err_msg() and
 * err_errno() set (ENOENT when it does not exist). */
int probe_file_target(const char *path, uint64_t *size, bool *blockdev);

/* -1 with err_msg() giving both sizes when a target of target_size bytes
 * cannot hold drive's size bytes; 0 when it can. */
int probe_fits(const char *target, uint64_t target_size, const char *drive, uint64_t size);

/* The URI of an NBD target as libnbd takes it (nbds when tls). */
void nbd_uri_text(const struct target_uri *u, bool tls, char *buf, size_t len);

#endif
