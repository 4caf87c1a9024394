#include "common/error.h"

#include <stdio.h>
#include <string.h>

static __thread char err_buf[ERR_MSG_MAX];
static __thread int err_num;

void err_vset(int errnum, const char *fmt, va_list ap)
{
    int n = vsnprintf(err_buf, sizeof err_buf, fmt, ap);

    if (errnum && n >= 0 && (size_t)n < sizeof err_buf)
        snprintf(err_buf + n, sizeof err_buf - n, ": %s", strerror(errnum));
    err_num = errnum;
}

void err_set(int errnum, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    err_vset(errnum, fmt, ap);
    va_end(ap);
}

void err_prefix(const char *fmt, ...)
{
    char old[sizeof err_buf];
    va_list ap;
    int n;

    memcpy(old, err_buf, sizeof old);
    va_start(ap, fmt);
    n = vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    /* Copied by hand: the old message may not fit, and a truncating
     * snprintf() is an error at -O1 under -Werror=format-truncation. */
    if (n >= 0 && (size_t)n + 3 <= sizeof err_buf) {
        size_t len = strnlen(old, sizeof err_buf - n - 3);

        memcpy(err_buf + n, ": ", 2);
        memcpy(err_buf + n + 2, old, len);
        err_buf[n + 2 + len] = '\0';
    }
}

void err_restore(int errnum, const char *msg)
{
    snprintf(err_buf, sizeof err_buf, "%s", msg);
    err_num = errnum;
}

void err_save(struct err_saved *e)
{
    memcpy(e->msg, err_buf, sizeof e->msg);
    e->errnum = err_num;
}

const char *err_msg(void)
{
    return err_buf[0] ? err_buf : "unknown error";
}

int err_errno(void)
{
    return err_num;
}

void err_clear(void)
{
    err_buf[0] = '\0';
    err_num = 0;
}
