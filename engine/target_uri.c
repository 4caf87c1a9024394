#include "engine/target_uri.h"
#include "common/error.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Percent-decodes src[0..n) into dst (cap bytes with the NUL). */
static int pct_decode(const char *src, size_t n, char *dst, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)src[i];

        if (c == '%') {
            char hex[3] = { 0 };

            if (i + 2 >= n)
                return -1;
            if (!isxdigit((unsigned char)src[i + 1]) || !isxdigit((unsigned char)src[i + 2]))
                return -1;
            hex[0] = src[i + 1];
            hex[1] = src[i + 2];
            c = (int)strtol(hex, NULL, 16);
            if (c == 0)
                return -1;
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return 0;
}

static int parse_tcp(const char *rest, struct target_uri *u, const char *text)
{
    const char *slash = strchr(rest, '/'), *end = slash ? slash : rest + strlen(rest);
    const char *hp_end = end, *colon = NULL;

    if (strchr(rest, '?') || strchr(rest, '#')) {
        err_set(0, "'%s': query and fragment are not supported in nbd:// URIs", text);
        return -1;
    }
    if (rest[0] == '[') {
        const char *rb = memchr(rest, ']', (size_t)(end - rest));

        if (!rb) {
            err_set(0, "'%s': unterminated [IPv6] host", text);
            return -1;
        }
        if ((size_t)(rb - rest - 1) >= sizeof u->host)
            goto too_long;
        memcpy(u->host, rest + 1, (size_t)(rb - rest - 1));
        u->host[rb - rest - 1] = '\0';
        if (rb + 1 < end) {
            if (rb[1] != ':') {
                err_set(0, "'%s': junk after the IPv6 host", text);
                return -1;
            }
            colon = rb + 1;
        }
    } else {
        colon = memchr(rest, ':', (size_t)(end - rest));
        hp_end = colon ? colon : end;
        if ((size_t)(hp_end - rest) >= sizeof u->host)
            goto too_long;
        memcpy(u->host, rest, (size_t)(hp_end - rest));
        u->host[hp_end - rest] = '\0';
    }
    if (!u->host[0]) {
        err_set(0, "'%s': no host", text);
        return -1;
    }
    if (colon) {
        size_t n = (size_t)(end - colon - 1);

        if (n == 0 || n >= sizeof u->port) {
            err_set(0, "'%s': bad port", text);
            return -1;
        }
        memcpy(u->port, colon + 1, n);
        u->port[n] = '\0';
        for (size_t i = 0; i < n; i++)
            if (!isdigit((unsigned char)u->port[i])) {
                err_set(0, "'%s': port '%s' is not a number", text, u->port);
                return -1;
            }
        if (atoi(u->port) < 1 || atoi(u->port) > 65535) {
            err_set(0, "'%s': port %s out of range", text, u->port);
            return -1;
        }
    } else {
        strcpy(u->port, "10809");
    }
    if (slash && pct_decode(slash + 1, strlen(slash + 1), u->export_name, sizeof u->export_name)) {
        err_set(0, "'%s': bad export name", text);
        return -1;
    }
    return 0;
too_long:
    err_set(0, "'%s': host name too long", text);
    return -1;
}

static int parse_unix(const char *rest, struct target_uri *u, const char *text)
{
    const char *q = strchr(rest, '?'), *s;
    size_t plen;

    /* nbd+unix:///EXPORT?socket=PATH: empty authority, then the path. */
    if (rest[0] != '/') {
        err_set(0, "'%s': nbd+unix URIs have no host (nbd+unix:///EXPORT?socket=PATH)", text);
        return -1;
    }
    plen = q ? (size_t)(q - rest) : strlen(rest);
    if (pct_decode(rest + 1, plen ? plen - 1 : 0, u->export_name, sizeof u->export_name)) {
        err_set(0, "'%s': bad export name", text);
        return -1;
    }
    s = q ? strstr(q, "socket=") : NULL;
    if (!s || (s != q + 1 && s[-1] != '&')) {
        err_set(0, "'%s': nbd+unix URIs need ?socket=PATH", text);
        return -1;
    }
    s += 7;
    plen = strcspn(s, "&");
    if (!plen || pct_decode(s, plen, u->socket, sizeof u->socket)) {
        err_set(0, "'%s': socket path empty or too long", text);
        return -1;
    }
    return 0;
}

int target_uri_parse(const char *text, struct target_uri *u)
{
    memset(u, 0, sizeof *u);
    if (!strncmp(text, "nbd://", 6)) {
        u->kind = URI_NBD_TCP;
        return parse_tcp(text + 6, u, text);
    }
    if (!strncmp(text, "nbd+unix://", 11)) {
        u->kind = URI_NBD_UNIX;
        return parse_unix(text + 11, u, text);
    }
    if (!strncmp(text, "file:", 5)) {
        u->kind = URI_FILE;
        if (!text[5] || strlen(text + 5) >= sizeof u->path) {
            err_set(0, "'%s': file path empty or too long", text);
            return -1;
        }
        strcpy(u->path, text + 5);
        return 0;
    }
    if (!strncmp(text, "nbds://", 7)) {
        u->kind = URI_NBD_TCP;
        u->tls = true;
        return parse_tcp(text + 7, u, text);
    }
    if (!strncmp(text, "nbds+unix://", 12)) {
        u->kind = URI_NBD_UNIX;
        u->tls = true;
        return parse_unix(text + 12, u, text);
    }
    err_set(0, "'%s' is not a target: use nbd://HOST:PORT/EXPORT, "
                   "nbd+unix:///EXPORT?socket=PATH or file:PATH", text);
    return -1;
}
