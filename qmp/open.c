/* qmp_open(): the transport an address names.  Kept apart from the
 * handle (client.c), which the transports build on, so that calls run one
 * way: open -> transports -> client. */
#include "qmp/internal.h"
#include "common/error.h"

#include <errno.h>
#include <string.h>

struct qmp *qmp_open(const char *addr, int64_t timeout_ms)
{
    int64_t deadline = qmp_deadline_in(timeout_ms);

    if (!addr) {
        err_set(EINVAL, "no QMP address");
        return NULL;
    }
    if (!strncmp(addr, "unix:", 5))
        return qmp_unix_open(addr + 5, deadline);
    if (!strncmp(addr, "libvirt:", 8))
        return qmp_libvirt_open(addr + 8, deadline);
    err_set(EINVAL, "QMP address '%s': expected unix:PATH or libvirt:DOMAIN", addr);
    return NULL;
}

struct qmp *qmp_open_fd(int fd, int64_t timeout_ms)
{
    return qmp_unix_from_fd(fd, qmp_deadline_in(timeout_ms));
}
