/* The unix socket transport: QEMU's -qmp unix:PATH. */
#include "qmp/internal.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct unix_tp {
    int fd;                 /* owned */
    struct qmp_frame frame;
};

static int unix_fd(const struct qmp *q)
{
    return ((struct unix_tp *)q->tp)->fd;
}

static void unix_close(struct qmp *q)
{
    struct unix_tp *t = q->tp;

    close(t->fd);
    qmp_frame_free(&t->frame);
    free(t);
    q->tp = NULL;
}

/* Waits for events on fd: 1 ready, 0 deadline passed, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd p = { .fd = fd, .events = events };

    for (;;) {
        int n = poll(&p, 1, qmp_poll_ms(deadline));

        if (n > 0)
            return 1;
        if (n == 0)
            return qmp_now_ms() >= deadline ? 0 : 1;
        if (errno != EINTR) {
            err_set(errno, "poll QMP socket");
            return -1;
        }
    }
}

static int unix_send(struct qmp *q, json_t *msg, int64_t deadline)
{
    struct unix_tp *t = q->tp;
    char *s = json_dumps(msg, JSON_COMPACT);
    size_t len, off = 0;
    int rc = -1;

    if (!s) {
        err_set(ENOMEM, "encoding QMP command");
        return -1;
    }
    len = strlen(s);
    s[len++] = '\n';    /* json_dumps's NUL is not sent; a newline is */
    while (off < len) {
        ssize_t n = send(t->fd, s + off, len - off, MSG_NOSIGNAL);

        if (n >= 0) {
            off += n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EPIPE || errno == ECONNRESET) {
            err_set(errno, "QMP monitor closed the connection");
            goto out;
        }
        if (errno != EAGAIN) {
            err_set(errno, "writing to QMP socket");
            goto out;
        }
        int w = wait_fd(t->fd, POLLOUT, deadline);
        if (w <= 0) {
            if (w == 0)
                err_set(ETIMEDOUT, "QMP socket not writable");
            goto out;
        }
    }
    rc = 0;
out:
    free(s);
    return rc;
}

static int unix_pump(struct qmp *q, int64_t deadline)
{
    struct unix_tp *t = q->tp;
    char buf[65536];
    int got = 0;

    for (;;) {
        ssize_t n = read(t->fd, buf, sizeof buf);
        json_t *msg;
        int rc;

        if (n == 0) {
            err_set(EPIPE, "QMP monitor closed the connection");
            qmp_shutdown(q);
            return -1;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ECONNRESET) {
                /* QEMU died with our command still unread. */
                err_set(errno, "QMP monitor closed the connection");
                qmp_shutdown(q);
                return -1;
            }
            if (errno != EAGAIN) {
                err_set(errno, "reading QMP socket");
                qmp_shutdown(q);
                return -1;
            }
            rc = wait_fd(t->fd, POLLIN, deadline);
            if (rc <= 0) {
                if (rc < 0)
                    qmp_shutdown(q);
                return rc;
            }
            continue;
        }
        if (qmp_frame_feed(&t->frame, buf, n) < 0) {
            qmp_shutdown(q);
            return -1;
        }
        while ((rc = qmp_frame_next(&t->frame, &msg)) == 1) {
            if (qmp_deliver(q, msg) < 0)
                return -1;
            got = 1;
        }
        if (rc < 0) {
            qmp_shutdown(q);
            return -1;
        }
        /* Return with what came rather than read on: a monitor that
         * never stops talking must not keep the caller past its deadline. */
        if (got)
            return 1;
    }
}

static const struct qmp_ops unix_ops = {
    .name = "unix",
    .send = unix_send,
    .pump = unix_pump,
    .fd = unix_fd,
    .close = unix_close,
};

/* The greeting comes first and alone; then capabilities are negotiated.
 * No capability is asked for: volmig needs neither oob nor anything else. */
static int unix_handshake(struct qmp *q, int64_t deadline)
{
    while (!q->greeting) {
        int rc = qmp_pump(q, deadline);

        if (rc < 0)
            return -1;
        if (rc == 0) {
            err_set(ETIMEDOUT, "no QMP greeting (is another client connected?)");
            return -1;
        }
        if (!q->greeting || json_array_size(q->events) || json_object_size(q->replies)) {
            err_set(EPROTO, "QMP: the monitor did not start with a greeting");
            return -1;
        }
    }
    return qmp_call(q, "qmp_capabilities", NULL, NULL, deadline);
}

struct qmp *qmp_unix_from_fd(int fd, int64_t deadline)
{
    struct unix_tp *t = calloc(1, sizeof *t);
    struct qmp *q;

    if (!t) {
        err_set(ENOMEM, "QMP transport");
        close(fd);
        return NULL;
    }
    t->fd = fd;
    qmp_frame_init(&t->frame, QMP_MAX_MESSAGE);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    q = qmp_new(&unix_ops, t);      /* from here q owns t and fd */
    if (!q) {
        close(fd);
        free(t);
        return NULL;
    }
    if (unix_handshake(q, deadline) < 0) {
        qmp_close(q);
        return NULL;
    }
    return q;
}

struct qmp *qmp_unix_open(const char *path, int64_t deadline)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct qmp *q;
    int fd;

    if (strlen(path) >= sizeof sa.sun_path) {
        err_set(ENAMETOOLONG, "QMP socket path %s", path);
        return NULL;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        err_set(errno, "socket");
        return NULL;
    }
    /* A non-blocking unix connect succeeds or fails at once, except that a
     * full listen backlog says EAGAIN and never completes by itself: try
     * again until the deadline. */
    while (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN || qmp_now_ms() >= deadline) {
            err_set(errno, "connecting to QMP socket %s", path);
            close(fd);
            return NULL;
        }
        usleep(10000);
    }
    q = qmp_unix_from_fd(fd, deadline);
    if (!q)
        err_prefix("%s", path);
    return q;
}
