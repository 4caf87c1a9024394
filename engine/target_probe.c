#include "engine/target_probe.h"
#include "engine/target_tls.h"
#include "common/clock.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

void nbd_uri_text(const struct target_uri *u, bool tls, char *buf, size_t len)
{
    const char *s = tls ? "s" : "";

    if (u->kind == URI_NBD_UNIX)
        snprintf(buf, len, "nbd%s+unix:///%s?socket=%s", s, u->export_name, u->socket);
    else if (strchr(u->host, ':'))
        snprintf(buf, len, "nbd%s://[%s]:%s/%s", s, u->host, u->port, u->export_name);
    else
        snprintf(buf, len, "nbd%s://%s:%s/%s", s, u->host, u->port, u->export_name);
}

struct nbd_handle *probe_nbd_connect(const char *uri, const struct client_tls *tls,
                                     int timeout_ms)
{
    struct nbd_handle *h = nbd_create();
    int64_t deadline = clock_ms() + timeout_ms;

    if (!h) {
        err_set(0, "libnbd: %s", nbd_get_error());
        return NULL;
    }
    if (tls && client_tls_apply(tls, h) < 0)
        goto fail;
    if (nbd_aio_connect_uri(h, uri) < 0) {
        err_set(0, "cannot reach the target %s: %s", uri, nbd_get_error());
        goto fail;
    }
    while (!nbd_aio_is_ready(h)) {
        int64_t left = deadline - clock_ms();

        if (nbd_aio_is_dead(h) || nbd_aio_is_closed(h) || left <= 0 ||
            nbd_poll(h, (int)(left < 1000 ? left : 1000)) < 0) {
            if (left <= 0)
                err_set(0, "cannot reach the target %s: no answer within %d s", uri,
                        timeout_ms / 1000);
            else
                err_set(0, "cannot reach the target %s: %s", uri, nbd_get_error());
            goto fail;
        }
    }
    return h;
fail:
    nbd_close(h);
    return NULL;
}

static int pread_done(void *opaque, int *error)
{
    int *res = opaque;

    *res = *error ? -*error : 1;
    return 1;
}

int probe_nbd_pread(struct nbd_handle *h, void *buf, size_t len, uint64_t off, int timeout_ms)
{
    int res = 0;
    nbd_completion_callback cb = { .callback = pread_done, .user_data = &res };
    int64_t deadline = clock_ms() + timeout_ms;

    if (nbd_aio_pread(h, buf, len, off, cb, 0) < 0) {
        err_set(0, "read at %llu: %s", (unsigned long long)off, nbd_get_error());
        return -1;
    }
    while (!res) {
        int64_t left = deadline - clock_ms();

        if (left <= 0) {
            err_set(ETIMEDOUT, "read at %llu", (unsigned long long)off);
            return -1;
        }
        if (nbd_poll(h, (int)(left < 1000 ? left : 1000)) < 0) {
            err_set(0, "read at %llu: %s", (unsigned long long)off, nbd_get_error());
            return -1;
        }
    }
    if (res < 0) {
        err_set(-res, "read at %llu", (unsigned long long)off);
        return -1;
    }
    return 0;
}

int probe_nbd_target(const struct target_uri *u, const struct client_tls *tls, int timeout_ms,
                     uint64_t *size)
{
    char uri[4500];
    struct nbd_handle *h;
    int64_t s;
    int rc = -1;

    /* nbds:// and nbds+unix:// make libnbd require TLS. */
    nbd_uri_text(u, tls != NULL, uri, sizeof uri);
    if (!(h = probe_nbd_connect(uri, tls, timeout_ms)))
        return -1;
    s = nbd_get_size(h);
    if (s < 0) {
        err_set(0, "target %s: %s", uri, nbd_get_error());
        goto out;
    }
    if (nbd_is_read_only(h) == 1) {
        err_set(0, "target %s is read-only", uri);
        goto out;
    }
    *size = (uint64_t)s;
    rc = 0;
    nbd_shutdown(h, 0);
out:
    nbd_close(h);
    return rc;
}

int probe_file_target(const char *path, uint64_t *size, bool *blockdev)
{
    struct stat st;

    if (stat(path, &st) < 0) {
        err_set(errno, "target %s", path);
        return -1;
    }
    *blockdev = S_ISBLK(st.st_mode);
    if (*blockdev) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        int r = fd < 0 ? -1 : ioctl(fd, BLKGETSIZE64, size);

        if (fd >= 0)
            close(fd);
        if (r < 0) {
            err_set(errno, "size of %s", path);
            return -1;
        }
    } else if (S_ISREG(st.st_mode)) {
        *size = (uint64_t)st.st_size;
    } else {
        err_set(0, "target %s is neither a file nor a block device", path);
        return -1;
    }
    return 0;
}

int probe_fits(const char *target, uint64_t target_size, const char *drive, uint64_t size)
{
    if (target_size >= size)
        return 0;
    err_set(0, "target %s is %llu bytes, smaller than drive '%s' (%llu bytes)", target,
            (unsigned long long)target_size, drive, (unsigned long long)size);
    return -1;
}
