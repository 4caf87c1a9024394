/* The embedded store: a directory of YAML manifests, one object per file,
 * KIND_NAMESPACE_NAME.yaml.  Names are validated as DNS-1123 names before
 * they become file names, so no object can name a file outside the
 * directory ('/' and ".." are not valid names, '_' cannot appear in one).
 * Every write is atomic: a crash leaves the old file or the new one. */
#include "k8s/internal.h"
#include "common/error.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int k8s_store_filename(const json_t *obj, char *buf, size_t size)
{
    const char *kind = k8s_kind(obj), *ns = k8s_namespace(obj), *name = k8s_name(obj);
    char ref[600];
    int n;

    for (const char *k = kind; *k; k++)
        if (!isalnum((unsigned char)*k))
            kind = "";
    if (!*kind || !k8s_valid_name(name) || (*ns && !k8s_valid_label(ns)) ||
        (k8s_cluster_scoped(kind) && *ns)) {
        err_set(0, "%s: cannot be stored: invalid kind, name or namespace",
                k8s_ref(obj, ref, sizeof ref));
        return -1;
    }
    n = snprintf(buf, size, "%s_%s_%s.yaml", kind, ns, name);
    if (n < 0 || (size_t)n >= size) {
        err_set(ENAMETOOLONG, "%s", k8s_ref(obj, ref, sizeof ref));
        return -1;
    }
    return 0;
}

int k8s_store_open(const char *dir)
{
    struct stat st;

    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        err_set(errno, "store %s", dir);
        return -1;
    }
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        err_set(errno ? errno : ENOTDIR, "store %s", dir);
        return -1;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

json_t *k8s_store_load(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    json_t *out = json_array();

    if (!d) {
        err_set(errno, "store %s", dir);
        json_decref(out);
        return NULL;
    }
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);

        if (e->d_name[0] == '.' || l < 6 || strcmp(e->d_name + l - 5, ".yaml"))
            continue;   /* dot files are temporaries of an unfinished write */
        if (n == cap) {
            char **nn = realloc(names, (cap = cap * 2 + 16) * sizeof *names);

            if (!nn)
                goto oom;
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name)))
            goto oom;
        n++;
    }
    closedir(d);
    d = NULL;
    if (n)   /* qsort may not be given NULL, even for nothing */
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        json_t *docs, *o;
        size_t j;

        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (!(docs = k8s_load_file(path)))
            goto fail;
        json_array_foreach(docs, j, o)
            json_array_append(out, o);
        json_decref(docs);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return out;
oom:
    err_set(ENOMEM, "store %s", dir);
fail:
    if (d)
        closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    json_decref(out);
    return NULL;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t w = write(fd, p, len);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int k8s_store_write(const char *dir, const json_t *obj)
{
    char file[512], path[4096], tmp[4096];
    char *text;
    int fd, dfd;

    if (k8s_validate(obj) < 0 || k8s_store_filename(obj, file, sizeof file) < 0)
        return -1;
    if (!(text = k8s_dump_yaml_one(obj)))
        return -1;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", dir, file);
    /* The temporary is created 0600 by mkstemp and owned until the rename. */
    if ((fd = mkstemp(tmp)) < 0) {
        err_set(errno, "store: create %s", tmp);
        free(text);
        return -1;
    }
    if (write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0) {
        err_set(errno, "store: write %s", tmp);
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        err_set(errno, "store: close %s", tmp);
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        err_set(errno, "store: rename to %s", path);
        goto fail;
    }
    free(text);
    if ((dfd = open(dir, O_RDONLY | O_DIRECTORY)) >= 0) {
        fsync(dfd);   /* makes the rename durable; failure here loses nothing */
        close(dfd);
    }
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    free(text);
    return -1;
}

int k8s_store_delete(const char *dir, const json_t *obj)
{
    char file[512], path[4096];

    if (k8s_store_filename(obj, file, sizeof file) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (unlink(path) < 0 && errno != ENOENT) {
        err_set(errno, "store: delete %s", path);
        return -1;
    }
    return 0;
}

/* The stored version of LIKE: 0 with *OUT set, 1 when there is none. */
static int read_one(const char *dir, const json_t *like, json_t **out)
{
    char file[512], path[4096];
    json_t *docs;

    *out = NULL;
    if (k8s_store_filename(like, file, sizeof file) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (access(path, F_OK) < 0)
        return 1;
    if (!(docs = k8s_load_file(path)))
        return -1;
    if (json_array_size(docs) != 1) {
        err_set(0, "store: %s holds %zu objects, not one", path, json_array_size(docs));
        json_decref(docs);
        return -1;
    }
    *out = json_incref(json_array_get(docs, 0));
    json_decref(docs);
    return 0;
}

/* The uid of a new object: random, in the 8-4-4-4-12 form of a UUID. */
static void new_uid(char buf[37])
{
    unsigned char r[16] = { 0 };
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

    if (fd >= 0) {
        if (read(fd, r, sizeof r) != sizeof r)
            memset(r, 0, sizeof r);
        close(fd);
    }
    r[6] = (r[6] & 0x0f) | 0x40;
    r[8] = (r[8] & 0x3f) | 0x80;
    snprintf(buf, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
             r[13], r[14], r[15]);
}

int k8s_store_apply(const char *dir, const json_t *applied, time_t now, bool *created,
                    bool *changed)
{
    static const char *const server_meta[] = { "uid", "creationTimestamp", "resourceVersion",
                                               "generation" };
    json_t *old, *obj, *meta, *v;
    const char *key;
    char ts[32], uid[37];
    long long gen;
    int rc;

    if (k8s_admit(applied) < 0 || read_one(dir, applied, &old) < 0)
        return -1;
    obj = json_deep_copy(applied);
    meta = json_object_get(obj, "metadata");
    *created = !old;
    if (!old) {
        k8s_format_time(now, ts);
        new_uid(uid);
        if (!json_object_get(meta, "uid"))
            json_object_set_new(meta, "uid", json_string(uid));
        if (!json_is_string(json_object_get(meta, "creationTimestamp")))
            json_object_set_new(meta, "creationTimestamp", json_string(ts));
        json_object_set_new(meta, "generation", json_integer(1));
        json_object_set_new(meta, "resourceVersion", json_string("1"));
        *changed = true;
    } else {
        /* Keep what the server owns: status and server-set metadata. */
        json_object_del(obj, "status");
        if ((v = json_object_get(old, "status")))
            json_object_set(obj, "status", v);
        for (size_t i = 0; i < sizeof server_meta / sizeof server_meta[0]; i++) {
            json_object_del(meta, server_meta[i]);
            if ((v = k8s_get(old, "metadata")) && (v = json_object_get(v, server_meta[i])))
                json_object_set(meta, server_meta[i], v);
        }
        *changed = !json_equal(obj, old);
        if (!*changed) {
            json_decref(obj);
            json_decref(old);
            return 0;
        }
        gen = json_integer_value(k8s_get(old, "metadata.generation"));
        if (!json_equal(json_object_get(obj, "spec"), json_object_get(old, "spec")))
            json_object_set_new(meta, "generation", json_integer(gen + 1));
        key = k8s_get_str(old, "metadata.resourceVersion");
        snprintf(ts, sizeof ts, "%lld", (key ? atoll(key) : 0) + 1);
        json_object_set_new(meta, "resourceVersion", json_string(ts));
    }
    rc = k8s_store_write(dir, obj);
    json_decref(obj);
    json_decref(old);
    return rc;
}
