/* The qmp-shell shorthand: "CMD key=value key.sub=value ..." to a QMP
 * command object.  Pure: a line in, JSON out. */
#include "qmp/qmp.h"
#include "common/error.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Finds the end of one token starting at s: a run of non-blank characters
 * in which "..." and '...' quote blanks, and {...} or [...] (JSON values)
 * may contain blanks too.  NULL if a quote or bracket is left open. */
static const char *token_end(const char *s)
{
    int depth = 0;
    char quote = 0;

    for (; *s; s++) {
        if (quote) {
            if (*s == '\\' && s[1])
                s++;
            else if (*s == quote)
                quote = 0;
            continue;
        }
        if (*s == '"' || *s == '\'')
            quote = *s;
        else if (*s == '{' || *s == '[')
            depth++;
        else if ((*s == '}' || *s == ']') && depth > 0)
            depth--;
        else if (isspace((unsigned char)*s) && depth == 0)
            return s;
    }
    return quote || depth ? NULL : s;
}

/* A quoted value: the text between the quotes, backslash escapes undone. */
static json_t *unquote(const char *v, size_t n)
{
    char *out = malloc(n), *o = out;
    json_t *j;
    size_t i;

    if (!out)
        return NULL;
    for (i = 1; i + 1 < n; i++) {
        if (v[i] == '\\' && i + 2 < n)
            i++;
        *o++ = v[i];
    }
    j = json_stringn(out, o - out);
    free(out);
    return j;
}

static json_t *parse_value(const char *v, size_t n)
{
    char buf[64], *end;

    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0])
        return unquote(v, n);
    if (n && (v[0] == '{' || v[0] == '[')) {
        json_error_t jerr;
        json_t *j = json_loadb(v, n, JSON_DECODE_ANY, &jerr);

        if (!j)
            err_set(EINVAL, "bad JSON value '%.*s': %s", (int)n, v, jerr.text);
        return j;
    }
    if (n == 4 && !strncmp(v, "true", 4))
        return json_true();
    if (n == 5 && !strncmp(v, "false", 5))
        return json_false();
    if (n == 4 && !strncmp(v, "null", 4))
        return json_null();
    if (n && n < sizeof buf) {
        memcpy(buf, v, n);
        buf[n] = '\0';
        errno = 0;
        long long i = strtoll(buf, &end, 10);
        if (!*end && !errno && (isdigit((unsigned char)buf[0]) || buf[0] == '-'))
            return json_integer(i);
        double d = strtod(buf, &end);
        /* Only decimal notation: strtod would also take "0x1p3" or "inf". */
        if (!*end && !errno && isfinite(d) && strspn(buf, "0123456789.eE+-") == n
            && (isdigit((unsigned char)buf[0]) || buf[0] == '-' || buf[0] == '.'))
            return json_real(d);
    }
    return json_stringn(v, n);
}

/* Sets obj[a][b][c] = val for the key "a.b.c", creating the objects on
 * the way; steals val. */
static int set_path(json_t *obj, const char *key, size_t klen, json_t *val)
{
    const char *dot = memchr(key, '.', klen);
    size_t n = dot ? (size_t)(dot - key) : klen;
    char *k = strndup(key, n);
    json_t *child;
    int rc = -1;

    if (!k || n == 0) {
        err_set(EINVAL, "empty key in '%.*s'", (int)klen, key);
        goto out;
    }
    child = json_object_get(obj, k);
    if (!dot) {
        if (child)
            err_set(EINVAL, "key '%s' given twice", k);
        else
            rc = json_object_set(obj, k, val);
        goto out;
    }
    if (!child) {
        child = json_object();
        json_object_set_new(obj, k, child);
    } else if (!json_is_object(child)) {
        err_set(EINVAL, "key '%s' is both a value and an object", k);
        goto out;
    }
    rc = set_path(child, dot + 1, klen - n - 1, json_incref(val));
out:
    free(k);
    json_decref(val);
    return rc;
}

static json_t *parse_raw(const char *line)
{
    json_error_t jerr;
    json_t *j = json_loads(line, 0, &jerr);

    if (!j) {
        err_set(EINVAL, "bad JSON: %s", jerr.text);
        return NULL;
    }
    if (!json_is_string(json_object_get(j, "execute"))) {
        json_decref(j);
        err_set(EINVAL, "a JSON command needs \"execute\"");
        return NULL;
    }
    return j;
}

json_t *qmp_shell_parse(const char *line)
{
    const char *s = line, *e, *eq;
    json_t *cmd, *args;

    while (isspace((unsigned char)*s))
        s++;
    if (*s == '{')
        return parse_raw(s);
    e = token_end(s);
    if (!e || e == s) {
        err_set(EINVAL, e ? "empty command" : "unbalanced quote or bracket");
        return NULL;
    }
    cmd = json_pack("{s:s%}", "execute", s, (size_t)(e - s));
    args = json_object();
    for (s = e;; s = e) {
        while (isspace((unsigned char)*s))
            s++;
        if (!*s)
            break;
        e = token_end(s);
        if (!e) {
            err_set(EINVAL, "unbalanced quote or bracket in '%s'", s);
            goto fail;
        }
        eq = memchr(s, '=', e - s);
        if (!eq) {
            err_set(EINVAL, "expected KEY=VALUE, got '%.*s'", (int)(e - s), s);
            goto fail;
        }
        json_t *v = parse_value(eq + 1, e - eq - 1);
        if (!v || set_path(args, s, eq - s, v) < 0)
            goto fail;
    }
    if (json_object_size(args))
        json_object_set(cmd, "arguments", args);
    json_decref(args);
    return cmd;
fail:
    json_decref(args);
    json_decref(cmd);
    return NULL;
}
