/* Argument names from query-qmp-schema, for the console's completion.
 *
 * The schema is a flat array of entities that refer to each other by
 * (mostly numeric) name: a command names its "arg-type", an object type
 * lists "members" ({name, type}) and, for unions, "variants" whose types
 * add more members.  Nested objects are offered as dotted paths, the way
 * the shorthand writes them.
 */
#include "qmp/qmp.h"

#include <stdio.h>
#include <string.h>

static const json_t *entity(const json_t *schema, const char *name)
{
    size_t i;
    json_t *e;

    json_array_foreach(schema, i, e) {
        const char *n = json_string_value(json_object_get(e, "name"));

        if (n && !strcmp(n, name))
            return e;
    }
    return NULL;
}

static void add_unique(json_t *out, const char *s)
{
    size_t i;
    json_t *v;

    json_array_foreach(out, i, v)
        if (!strcmp(json_string_value(v), s))
            return;
    json_array_append_new(out, json_string(s));
}

static void add_members(const json_t *schema, const char *type, const char *prefix,
                        int depth, json_t *out)
{
    const json_t *obj = entity(schema, type), *m, *v;
    const char *mt = json_string_value(json_object_get(obj, "meta-type"));
    char path[256];
    size_t i;

    if (!mt || strcmp(mt, "object") || depth <= 0)
        return;
    json_array_foreach(json_object_get(obj, "members"), i, m) {
        const char *name = json_string_value(json_object_get(m, "name"));
        const char *mtype = json_string_value(json_object_get(m, "type"));

        if (!name)
            continue;
        snprintf(path, sizeof path, "%s%s", prefix, name);
        add_unique(out, path);
        if (mtype) {
            snprintf(path, sizeof path, "%s%s.", prefix, name);
            add_members(schema, mtype, path, depth - 1, out);
        }
    }
    json_array_foreach(json_object_get(obj, "variants"), i, v) {
        const char *vtype = json_string_value(json_object_get(v, "type"));

        if (vtype)
            add_members(schema, vtype, prefix, depth, out);
    }
}

json_t *qmp_schema_arg_names(const json_t *schema, const char *cmd, int depth)
{
    json_t *out = json_array();
    const json_t *c = entity(schema, cmd);
    const char *arg;

    if (!c || strcmp(json_string_value(json_object_get(c, "meta-type")) ?: "", "command"))
        return out;
    arg = json_string_value(json_object_get(c, "arg-type"));
    if (arg)
        add_members(schema, arg, "", depth, out);
    return out;
}
