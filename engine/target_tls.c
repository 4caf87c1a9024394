#include "engine/target_tls.h"
#include "common/error.h"

#include <errno.h>
#include <libnbd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* QEMU's tls-creds-psk reads DIR/keys.psk, so a file given by the user
 * must carry that name; libnbd wants the user name to pick a key, and the
 * first line's is ours. */
static int locate_psk(struct client_tls *t, const char *arg)
{
    const char *slash;
    char dir[PATH_MAX];
    struct stat st;
    FILE *f;
    char line[1024];

    if (stat(arg, &st) < 0) {
        err_set(errno, "--tls-psk %s", arg);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(dir, sizeof dir, "%s", arg);
    } else {
        slash = strrchr(arg, '/');
        if (strcmp(slash ? slash + 1 : arg, "keys.psk")) {
            err_set(0, "--tls-psk %s: QEMU's tls-creds-psk reads a file named keys.psk; "
                       "name the file so, or give its directory", arg);
            return -1;
        }
        if (!slash)
            snprintf(dir, sizeof dir, ".");
        else if (slash == arg)
            snprintf(dir, sizeof dir, "/");
        else
            snprintf(dir, sizeof dir, "%.*s", (int)(slash - arg), arg);
    }
    /* QEMU resolves a relative path from its own working directory. */
    if (!realpath(dir, t->psk_dir)) {
        err_set(errno, "--tls-psk %s", dir);
        return -1;
    }
    snprintf(t->psk_file, sizeof t->psk_file, "%s/keys.psk", t->psk_dir);
    f = fopen(t->psk_file, "re");
    if (!f) {
        err_set(errno, "--tls-psk %s", t->psk_file);
        return -1;
    }
    t->psk_user[0] = '\0';
    if (fgets(line, sizeof line, f) && strchr(line, ':'))
        snprintf(t->psk_user, sizeof t->psk_user, "%.*s", (int)(strchr(line, ':') - line), line);
    fclose(f);
    if (!t->psk_user[0]) {
        err_set(0, "--tls-psk %s: the first line is not USERNAME:HEXKEY", t->psk_file);
        return -1;
    }
    return 0;
}

int client_tls_init(struct client_tls *t, const char *creds, const char *psk,
                    const char *hostname)
{
    memset(t, 0, sizeof *t);
    if (!creds == !psk) {
        err_set(EINVAL, "TLS needs exactly one of --tls-creds and --tls-psk");
        return -1;
    }
    if (psk)
        return locate_psk(t, psk);
    if (!realpath(creds, t->creds_dir)) {
        err_set(errno, "--tls-creds %s", creds);
        return -1;
    }
    t->skip_verify = hostname != NULL;
    return 0;
}

int client_tls_apply(const struct client_tls *t, struct nbd_handle *h)
{
    if (nbd_set_tls(h, LIBNBD_TLS_REQUIRE) < 0 ||
        (t->creds_dir[0] && nbd_set_tls_certificates(h, t->creds_dir) < 0) ||
        (t->psk_file[0] && (nbd_set_tls_psk_file(h, t->psk_file) < 0 ||
                            nbd_set_tls_username(h, t->psk_user) < 0)) ||
        (t->skip_verify && nbd_set_tls_verify_peer(h, false) < 0)) {
        err_set(0, "libnbd TLS: %s", nbd_get_error());
        return -1;
    }
    return 0;
}
