/* TLS for volmig's own NBD client connections (libnbd), made from the same
 * options that QEMU's tls-creds objects take, so that one set of flags
 * serves QEMU's connections (mirror mode) and the native copier's (volmig
 * copy, bitmap mode) alike. */
#ifndef VOLMIG_CLIENT_TLS_H
#define VOLMIG_CLIENT_TLS_H

#include <limits.h>
#include <stdbool.h>

struct nbd_handle;

struct client_tls {
    char creds_dir[PATH_MAX];     /* absolute; "" without X.509 */
    char psk_dir[PATH_MAX];       /* absolute directory of keys.psk; "" without PSK */
    char psk_file[PATH_MAX + 16]; /* psk_dir/keys.psk */
    char psk_user[256];           /* the first user in keys.psk: ours */
    bool skip_verify;             /* the certificate names another host than
                                   * the URI, which libnbd cannot be told */
};

/* Resolves creds (a tls-creds-x509 client directory) or psk (a keys.psk
 * file, or a directory holding one): exactly one of them is non-NULL.
 * hostname: the name the server's certificate carries when it is not the
 * URI's host, or NULL.  -1 with err_msg() set when a file is missing or
 * the PSK file does not start with USERNAME:HEXKEY. */
int client_tls_init(struct client_tls *t, const char *creds, const char *psk,
                    const char *hostname);

/* Makes h require TLS with these credentials.  -1 with err_msg() set. */
int client_tls_apply(const struct client_tls *t, struct nbd_handle *h);

#endif
