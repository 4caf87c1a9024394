/* Manifests in and out: libyaml's document API to jansson and back.
 *
 * Reading types plain scalars the way YAML 1.2's core schema does, so
 * `replicas: 3` is an integer and `storage: 2Gi` a string.  Writing quotes
 * every string a reader (this one, or a YAML 1.1 reader such as the one
 * kubectl uses) would take for something else, so output reads back equal.
 */
#include "k8s/k8s.h"
#include "common/error.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

/* Aliases can make a small document expand exponentially ("billion
 * laughs"); every node converted counts against this budget. */
#define MAX_NODES  2000000
#define MAX_DEPTH  100

struct conv {
    yaml_document_t *doc;
    const char *source;
    long budget;
};

static bool match_null(const char *s)
{
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

static int match_bool(const char *s)
{
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        return 1;
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        return 0;
    return -1;
}

/* YAML 1.1 booleans, which YAML 1.2 reads as strings: quoted on output so
 * that a 1.1 reader does not turn "yes" into true. */
static bool match_bool11(const char *s)
{
    static const char *const words[] = { "y", "Y", "yes", "Yes", "YES", "n", "N", "no",
        "No", "NO", "on", "On", "ON", "off", "Off", "OFF" };

    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (!strcmp(s, words[i]))
            return true;
    return false;
}

static bool match_int(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    if (!isdigit((unsigned char)*s))
        return false;
    while (isdigit((unsigned char)*s))
        s++;
    return !*s;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? and .inf/.nan */
static bool match_float(const char *s)
{
    bool digits = false;

    if (*s == '-' || *s == '+')
        s++;
    if (!strcasecmp(s, ".inf") || !strcasecmp(s, ".nan"))
        return true;
    while (isdigit((unsigned char)*s)) {
        s++;
        digits = true;
    }
    if (*s == '.') {
        s++;
        while (isdigit((unsigned char)*s)) {
            s++;
            digits = true;
        }
    }
    if (!digits)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+')
            s++;
        if (!isdigit((unsigned char)*s))
            return false;
        while (isdigit((unsigned char)*s))
            s++;
    }
    return !*s;
}

static json_t *plain_scalar(const char *s)
{
    int b;

    if (match_null(s))
        return json_null();
    if ((b = match_bool(s)) >= 0)
        return json_boolean(b);
    if (match_int(s)) {
        char *end;
        long long v;

        errno = 0;
        v = strtoll(s, &end, 10);
        if (!errno && !*end)
            return json_integer(v);
        return json_string(s);   /* too big for 64 bits: keep the digits */
    }
    if (match_float(s) && !strchr(s, 'n') && !strchr(s, 'N') && !strchr(s, 'i') &&
        !strchr(s, 'I'))
        return json_real(strtod(s, NULL));
    return json_string(s);
}

static json_t *scalar(struct conv *c, yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;

    if (strlen(s) != n->data.scalar.length) {
        err_set(0, "%s:%zu:%zu: a NUL character in a scalar", c->source,
                n->start_mark.line + 1, n->start_mark.column + 1);
        return NULL;
    }
    /* libyaml's loader gives untagged scalars the str tag, so explicit tags
     * cannot be told apart: the style alone decides. */
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return json_string(s);
    return plain_scalar(s);
}

static json_t *convert(struct conv *c, yaml_node_t *n, int depth);

static json_t *mapping(struct conv *c, yaml_node_t *n, int depth)
{
    json_t *o = json_object();

    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        const char *key;
        json_t *jv;

        if (!k || k->type != YAML_SCALAR_NODE) {
            err_set(0, "%s:%zu:%zu: a mapping key must be a scalar", c->source,
                    n->start_mark.line + 1, n->start_mark.column + 1);
            goto fail;
        }
        key = (const char *)k->data.scalar.value;
        if (json_object_get(o, key)) {
            err_set(0, "%s:%zu:%zu: duplicate key '%s'", c->source, k->start_mark.line + 1,
                    k->start_mark.column + 1, key);
            goto fail;
        }
        if (!(jv = convert(c, v, depth + 1)))
            goto fail;
        json_object_set_new(o, key, jv);
    }
    return o;
fail:
    json_decref(o);
    return NULL;
}

static json_t *convert(struct conv *c, yaml_node_t *n, int depth)
{
    json_t *a;

    if (!n) {
        err_set(0, "%s: a dangling node reference", c->source);
        return NULL;
    }
    if (depth > MAX_DEPTH || --c->budget < 0) {
        err_set(0, "%s:%zu:%zu: document too deep or too large (aliases?)", c->source,
                n->start_mark.line + 1, n->start_mark.column + 1);
        return NULL;
    }
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return scalar(c, n);
    case YAML_MAPPING_NODE:
        return mapping(c, n, depth);
    case YAML_SEQUENCE_NODE:
        a = json_array();
        for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
            json_t *v = convert(c, yaml_document_get_node(c->doc, *i), depth + 1);

            if (!v) {
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, v);
        }
        return a;
    default:
        err_set(0, "%s: an empty node", c->source);
        return NULL;
    }
}

/* Appends V to OUT, flattening Lists and arrays. */
static int add_docs(json_t *out, json_t *v, const char *source)
{
    const char *kind;
    json_t *items;
    size_t i;
    json_t *it;

    if (json_is_null(v))
        return 0;
    if (json_is_array(v)) {
        json_array_foreach(v, i, it)
            if (add_docs(out, it, source) < 0)
                return -1;
        return 0;
    }
    if (!json_is_object(v)) {
        err_set(0, "%s: document %zu is not an object (a mapping)", source,
                json_array_size(out) + 1);
        return -1;
    }
    kind = json_string_value(json_object_get(v, "kind"));
    items = json_object_get(v, "items");
    if (kind && strlen(kind) >= 4 && !strcmp(kind + strlen(kind) - 4, "List") &&
        (json_is_array(items) || json_is_null(items)))
        return items ? add_docs(out, items, source) : 0;
    json_array_append(out, v);
    return 0;
}

/* One JSON value, or a stream of them one after the other (kubectl reads
 * `{...}{...}` or one object per line the same way). */
static json_t *parse_json(const char *text, size_t len, const char *source)
{
    json_t *out = json_array();
    size_t off = 0, line = 1, bol = 0;   /* BOL: where the current line starts */

    for (;;) {
        json_error_t e;
        json_t *v;

        for (; off < len && isspace((unsigned char)text[off]); off++)
            if (text[off] == '\n') {
                line++;
                bol = off + 1;
            }
        if (off == len)
            return out;
        v = json_loadb(text + off, len - off, JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK, &e);
        if (!v) {
            err_set(0, "%s:%zu:%zu: %s", source, line + (size_t)e.line - 1,
                    (size_t)e.column + (e.line == 1 ? off - bol : 0), e.text);
            json_decref(out);
            return NULL;
        }
        for (size_t i = 0; i < (size_t)e.position && off + i < len; i++)
            if (text[off + i] == '\n') {
                line++;
                bol = off + i + 1;
            }
        off += (size_t)e.position;
        if (add_docs(out, v, source) < 0) {
            json_decref(v);
            json_decref(out);
            return NULL;
        }
        json_decref(v);
    }
}

json_t *k8s_parse(const char *text, size_t len, const char *source)
{
    struct conv c = { .source = source, .budget = MAX_NODES };
    yaml_parser_t p;
    json_t *out;
    size_t i = 0;

    while (i < len && isspace((unsigned char)text[i]))
        i++;
    if (i < len && (text[i] == '{' || text[i] == '['))
        return parse_json(text, len, source);

    if (!yaml_parser_initialize(&p)) {
        err_set(ENOMEM, "%s: yaml parser", source);
        return NULL;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    out = json_array();
    for (;;) {
        yaml_document_t doc;
        yaml_node_t *root;
        json_t *v;
        int rc;

        if (!yaml_parser_load(&p, &doc)) {
            err_set(0, "%s:%zu:%zu: %s%s%s", source, p.problem_mark.line + 1,
                    p.problem_mark.column + 1, p.problem ? p.problem : "invalid YAML",
                    p.context ? " " : "", p.context ? p.context : "");
            goto fail;
        }
        root = yaml_document_get_root_node(&doc);
        if (!root) {             /* end of the stream */
            yaml_document_delete(&doc);
            break;
        }
        c.doc = &doc;
        v = convert(&c, root, 0);
        yaml_document_delete(&doc);
        if (!v)
            goto fail;
        rc = add_docs(out, v, source);
        json_decref(v);
        if (rc < 0)
            goto fail;
    }
    yaml_parser_delete(&p);
    return out;
fail:
    yaml_parser_delete(&p);
    json_decref(out);
    return NULL;
}

json_t *k8s_load_file(const char *path)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    json_t *v;

    if (!f) {
        err_set(errno, "%s", path);
        return NULL;
    }
    do {
        if (cap - len < 65536) {
            char *nb = realloc(buf, cap = cap * 2 + 65536);

            if (!nb) {
                free(buf);
                if (f != stdin)
                    fclose(f);
                err_set(ENOMEM, "%s", path);
                return NULL;
            }
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    if (ferror(f)) {
        err_set(errno, "%s: read", path);
        free(buf);
        if (f != stdin)
            fclose(f);
        return NULL;
    }
    if (f != stdin)
        fclose(f);
    v = k8s_parse(buf, len, path);
    free(buf);
    return v;
}

/* ---- writing ---- */

struct sink {
    char *buf;
    size_t len, cap;
    bool oom;
};

static int sink_write(void *data, unsigned char *b, size_t n)
{
    struct sink *s = data;

    if (s->len + n + 1 > s->cap) {
        size_t cap = (s->len + n + 1) * 2;
        char *nb = realloc(s->buf, cap);

        if (!nb) {
            s->oom = true;
            return 0;
        }
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, b, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return 1;
}

/* Whether the string S, written plain, reads back as the same string (in
 * YAML 1.2 core and in YAML 1.1). */
static bool plain_is_string(const char *s)
{
    json_t *v;
    bool str;

    if (match_bool11(s) || strchr(s, '\n'))
        return false;   /* multi-line strings read best double-quoted */
    if (isdigit((unsigned char)s[0]) && strchr(s, ':'))
        return false;   /* YAML 1.1 sexagesimal numbers and times */
    v = plain_scalar(s);
    str = json_is_string(v);
    json_decref(v);
    return str;
}

static int emit_scalar(yaml_emitter_t *em, const char *s, yaml_scalar_style_t style)
{
    yaml_event_t ev;

    if (!yaml_scalar_event_initialize(&ev, NULL, (yaml_char_t *)YAML_STR_TAG,
                                      (yaml_char_t *)s, (int)strlen(s), 1, 1, style))
        return -1;
    return yaml_emitter_emit(em, &ev) ? 0 : -1;
}

static int emit_value(yaml_emitter_t *em, const json_t *v)
{
    yaml_event_t ev;
    char num[64];
    const char *key;
    json_t *it;
    size_t i;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                json_object_size(v) ? YAML_BLOCK_MAPPING_STYLE : YAML_FLOW_MAPPING_STYLE) ||
            !yaml_emitter_emit(em, &ev))
            return -1;
        json_object_foreach((json_t *)v, key, it) {
            if (emit_scalar(em, key, plain_is_string(key) ? YAML_ANY_SCALAR_STYLE
                                                          : YAML_DOUBLE_QUOTED_SCALAR_STYLE) < 0 ||
                emit_value(em, it) < 0)
                return -1;
        }
        if (!yaml_mapping_end_event_initialize(&ev) || !yaml_emitter_emit(em, &ev))
            return -1;
        return 0;
    case JSON_ARRAY:
        if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                json_array_size(v) ? YAML_BLOCK_SEQUENCE_STYLE : YAML_FLOW_SEQUENCE_STYLE) ||
            !yaml_emitter_emit(em, &ev))
            return -1;
        json_array_foreach(v, i, it)
            if (emit_value(em, it) < 0)
                return -1;
        if (!yaml_sequence_end_event_initialize(&ev) || !yaml_emitter_emit(em, &ev))
            return -1;
        return 0;
    case JSON_STRING:
        return emit_scalar(em, json_string_value(v),
                           plain_is_string(json_string_value(v)) ? YAML_ANY_SCALAR_STYLE
                                                                 : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return emit_scalar(em, num, YAML_PLAIN_SCALAR_STYLE);
    case JSON_REAL: {
        double d = json_real_value(v);

        if (isnan(d))
            snprintf(num, sizeof num, ".nan");
        else if (isinf(d))
            snprintf(num, sizeof num, d < 0 ? "-.inf" : ".inf");
        else {
            snprintf(num, sizeof num, "%.17g", d);
            if (!strpbrk(num, ".eE"))
                strcat(num, ".0");
        }
        return emit_scalar(em, num, YAML_PLAIN_SCALAR_STYLE);
    }
    case JSON_TRUE:
        return emit_scalar(em, "true", YAML_PLAIN_SCALAR_STYLE);
    case JSON_FALSE:
        return emit_scalar(em, "false", YAML_PLAIN_SCALAR_STYLE);
    default:
        return emit_scalar(em, "null", YAML_PLAIN_SCALAR_STYLE);
    }
}

static char *dump(const json_t *docs, bool markers)
{
    struct sink s = { 0 };
    yaml_emitter_t em;
    yaml_event_t ev;
    json_t *it;
    size_t i;
    int ok = 0;

    if (!yaml_emitter_initialize(&em)) {
        err_set(ENOMEM, "yaml emitter");
        return NULL;
    }
    yaml_emitter_set_output(&em, sink_write, &s);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_width(&em, -1);
    yaml_emitter_set_indent(&em, 2);
    if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) || !yaml_emitter_emit(&em, &ev))
        goto out;
    json_array_foreach(docs, i, it) {
        if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, markers ? 0 : 1) ||
            !yaml_emitter_emit(&em, &ev) || emit_value(&em, it) < 0 ||
            !yaml_document_end_event_initialize(&ev, 1) || !yaml_emitter_emit(&em, &ev))
            goto out;
    }
    if (!yaml_stream_end_event_initialize(&ev) || !yaml_emitter_emit(&em, &ev) ||
        !yaml_emitter_flush(&em))
        goto out;
    ok = 1;
out:
    if (!ok || s.oom) {
        err_set(s.oom ? ENOMEM : 0, "yaml emitter: %s", em.problem ? em.problem : "failed");
        free(s.buf);
        s.buf = NULL;
    } else if (!s.buf) {
        s.buf = strdup("");
    } else if (s.len && s.buf[s.len - 1] != '\n') {
        unsigned char nl = '\n';

        sink_write(&s, &nl, 1);
    }
    yaml_emitter_delete(&em);
    return s.buf;
}

char *k8s_dump_yaml(const json_t *objects)
{
    return dump(objects, true);
}

char *k8s_dump_yaml_one(const json_t *object)
{
    json_t *a = json_array();
    char *s;

    json_array_append((json_t *)a, (json_t *)object);
    s = dump(a, false);
    json_decref(a);
    return s;
}

char *k8s_dump_json(const json_t *objects)
{
    json_t *list = json_pack("{s:s, s:s, s:O, s:{}}", "apiVersion", "v1", "kind", "List",
                             "items", objects, "metadata");
    char *s = json_dumps(list, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

    json_decref(list);
    if (!s)
        err_set(ENOMEM, "json dump");
    return s;
}

/* ---- several inputs, as kubectl -f takes them ---- */

static bool manifest_name(const char *n)
{
    size_t l = strlen(n);

    if (n[0] == '.')
        return false;
    return (l > 5 && !strcmp(n + l - 5, ".yaml")) || (l > 4 && !strcmp(n + l - 4, ".yml")) ||
           (l > 5 && !strcmp(n + l - 5, ".json"));
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int append_file(json_t *out, const char *path)
{
    json_t *objs = k8s_load_file(path);

    if (!objs)
        return -1;
    json_array_extend(out, objs);
    json_decref(objs);
    return 0;
}

/* The manifests of directory DIR (not its subdirectories), by name. */
static int append_dir(json_t *out, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    if (!d) {
        err_set(errno, "%s", dir);
        return -1;
    }
    while ((e = readdir(d))) {
        if (!manifest_name(e->d_name))
            continue;
        if (n == cap) {
            char **nn = realloc(names, (cap = cap * 2 + 16) * sizeof *nn);

            if (!nn) {
                rc = -1;
                err_set(ENOMEM, "%s", dir);
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = -1;
            err_set(ENOMEM, "%s", dir);
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == 0 && !n) {
        err_set(0, "error reading %s: recognized file extensions are [.json .yaml .yml]", dir);
        rc = -1;
    }
    if (rc == 0)
        qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        char path[4096];

        if (rc == 0) {
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            rc = append_file(out, path);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

json_t *k8s_load_paths(const char *const *paths, size_t n)
{
    json_t *out;
    size_t dashes = 0;

    for (size_t i = 0; i < n; i++)
        dashes += !strcmp(paths[i], "-");
    if (dashes > 1) {
        err_set(0, "-f -: standard input can be read only once");
        return NULL;
    }
    out = json_array();
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        int rc;

        if (!strcmp(paths[i], "-")) {
            rc = append_file(out, "-");
        } else if (stat(paths[i], &st) < 0) {
            err_set(errno, "%s", paths[i]);
            rc = -1;
        } else {
            rc = S_ISDIR(st.st_mode) ? append_dir(out, paths[i]) : append_file(out, paths[i]);
        }
        if (rc < 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}
