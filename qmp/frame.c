/* QMP framing: a byte stream in, complete JSON objects out.
 *
 * QEMU ends each message with "\r\n", but nothing in the protocol promises
 * that a message never contains a newline or that a read ends on one, so
 * the scanner finds message boundaries the way QEMU's own JSON streamer
 * does: by counting braces and brackets outside strings.  jansson then
 * parses exactly the bytes of one message.  The scanner keeps its state
 * between calls, so a message split across many reads is scanned once.
 */
#include "qmp/qmp.h"
#include "common/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void qmp_frame_init(struct qmp_frame *f, size_t max)
{
    memset(f, 0, sizeof *f);
    f->max = max ? max : QMP_MAX_MESSAGE;
}

void qmp_frame_free(struct qmp_frame *f)
{
    free(f->buf);
    f->buf = NULL;
    f->len = f->cap = f->scan = 0;
}

static int frame_fail(struct qmp_frame *f, const char *fmt, const char *detail)
{
    f->broken = true;
    err_set(0, fmt, detail);
    return -1;
}

int qmp_frame_feed(struct qmp_frame *f, const void *data, size_t n)
{
    if (f->broken) {
        err_set(0, "QMP stream already broken");
        return -1;
    }
    if (f->len + n > f->cap) {
        size_t cap = f->cap ? f->cap : 4096;
        char *p;

        while (cap < f->len + n)
            cap *= 2;
        p = realloc(f->buf, cap);
        if (!p) {
            f->broken = true;
            err_set(ENOMEM, "QMP buffer");
            return -1;
        }
        f->buf = p;
        f->cap = cap;
    }
    if (n)
        memcpy(f->buf + f->len, data, n);
    f->len += n;
    return 0;
}

/* Drops the first n bytes of the buffer (a message or whitespace). */
static void frame_consume(struct qmp_frame *f, size_t n)
{
    memmove(f->buf, f->buf + n, f->len - n);
    f->len -= n;
    f->scan = 0;
    f->depth = 0;
    f->in_string = f->escape = false;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Advances the scan; returns the length of the message once its closing
 * brace is seen, 0 if more bytes are needed. */
static size_t frame_scan(struct qmp_frame *f)
{
    while (f->scan < f->len) {
        char c = f->buf[f->scan++];

        if (f->in_string) {
            if (f->escape)
                f->escape = false;
            else if (c == '\\')
                f->escape = true;
            else if (c == '"')
                f->in_string = false;
            continue;
        }
        if (c == '"')
            f->in_string = true;
        else if (c == '{' || c == '[')
            f->depth++;
        else if (c == '}' || c == ']') {
            if (--f->depth == 0)
                return f->scan;
        }
    }
    return 0;
}

int qmp_frame_next(struct qmp_frame *f, json_t **msg)
{
    json_error_t jerr;
    size_t skip = 0, n;
    json_t *j;

    *msg = NULL;
    if (f->broken) {
        err_set(0, "QMP stream already broken");
        return -1;
    }
    if (f->scan == 0) {
        while (skip < f->len && is_space(f->buf[skip]))
            skip++;
        if (skip)
            frame_consume(f, skip);
        if (f->len == 0)
            return 0;
        if (f->buf[0] != '{')
            return frame_fail(f, "QMP: expected a JSON object, got '%s'",
                              (char[]){ f->buf[0] >= 0x20 && f->buf[0] < 0x7f
                                        ? f->buf[0] : '?', 0 });
    }
    n = frame_scan(f);
    if (n == 0) {
        if (f->len > f->max)
            return frame_fail(f, "QMP: message larger than %s", "the limit");
        return 0;
    }
    if (n > f->max)
        return frame_fail(f, "QMP: message larger than %s", "the limit");
    j = json_loadb(f->buf, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        return frame_fail(f, "QMP: malformed JSON: %s", jerr.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return frame_fail(f, "QMP: %s", "message is not an object");
    }
    frame_consume(f, n);
    *msg = j;
    return 1;
}
