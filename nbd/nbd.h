/* nbd/: the NBD protocol (pure state machines over bytes) and the
 * `volmig serve` connection loop.  Knows nothing of QMP or Kubernetes. */
#ifndef VOLMIG_NBD_H
#define VOLMIG_NBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NBD_MAX_PAYLOAD   (32U << 20)   /* largest READ/WRITE we accept */
#define NBD_MAX_OPTION    (16U << 10)   /* larger options get ERR_TOO_BIG */

/* What one export offers.  Filled by the caller, read by the protocol. */
struct nbd_export {
    const char *name;        /* "" is the default export */
    const char *description; /* may be NULL */
    uint64_t size;
    uint32_t min_block;      /* requests must be aligned to this */
    uint32_t pref_block;
    uint32_t max_payload;
    bool readonly;
    bool multi_conn;         /* every connection sees one coherent volume */
    bool tls_required;       /* FORCEDTLS: before STARTTLS only STARTTLS and
                              * ABORT are answered (the server has credentials) */
};

struct nbd_serve_config {
    const char *target;      /* file, block device, or "null:" */
    uint64_t size;           /* 0: the target's size */
    const char *listen;      /* "HOST:PORT", "[V6]:PORT", "unix:PATH" */
    const char *export_name;
    bool readonly;
    bool once;               /* exit after the first client has gone */
    bool direct;             /* try O_DIRECT (default true) */
    bool force_share;        /* readonly only: serve a volume another
                              * process writes (qemu-img's --force-share) */
    /* TLS (at most one of the two; either makes TLS required):
     * tls_creds: a directory in the layout of QEMU's tls-creds-x509,
     *   server-cert.pem and server-key.pem, and ca-cert.pem which, when
     *   present, makes a client certificate signed by that CA required;
     * tls_psk: a file of "username:hexkey" lines (psktool's, QEMU's
     *   keys.psk, nbdkit's --tls-psk). */
    const char *tls_creds;
    const char *tls_psk;
    int verbose;
};

/* Runs the server until SIGTERM/SIGINT (or --once).  Returns 0 after a
 * clean shutdown with every acknowledged write flushed, -1 with err_msg()
 * set when it could not start or the target failed to flush.  log (may be
 * NULL) receives one line per event worth telling an operator. */
int nbd_serve(const struct nbd_serve_config *cfg, void (*log)(const char *fmt, ...));

#endif
