/* Bitmap mode's resume across processes: a failed run leaves what a later
 * run needs, and a later run with the same drive and destination picks it
 * up (the controller's next VirtualMachineInstanceMigration after
 * KubeVirt's backoff is such a run).
 *
 * What a failed run leaves, per volume:
 *   in QEMU   one dirty bitmap on the drive's node, named
 *             volmig-keep-EPOCH-TOKEN (EPOCH: when it was kept, in seconds;
 *             TOKEN: random), recording every guest write since, with what
 *             the run's own bitmaps had marked merged in.  The name carries
 *             no PID, so the sweep of dead runs (mig_name_pid() == 0) leaves
 *             it alone.
 *   on disk   a state file STATE_DIR/HASH.json (HASH: of the QMP address and
 *             the node, so one file per node), written atomically (temporary
 *             file, fsync, rename, fsync of the directory), naming the
 *             bitmap, the destination, both sizes and the ranges the run had
 *             set out to copy and not settled.
 * The union of the two is everything the destination may lack (the
 * invariant of migrate_bitmap_resume.c).  A later run adopts it: its own
 * first bitmap is made, in one transaction, as a copy of the kept one, its
 * pending ranges are the file's, and its first pass is the resume pass,
 * which checks the destination's size and samples it before trusting it.
 *
 * Trust: the file says which blocks need no copying, so it is read only
 * from a directory that is ours (owner, no group or world write) and only
 * if it is ours; it must name the same QMP address, node, destination and
 * source size, its bitmap must still be in QEMU (gone: QEMU restarted),
 * and it must be younger than BM_KEEP_TTL_S.  Anything else means a full
 * copy, with the reason in the resumed event, and the state is removed.
 *
 * Bounds: at most one kept bitmap and one state file per node (keeping a
 * new one removes the others on that node); the run that adopts, or
 * refuses, a state removes it when it succeeds, is cancelled, or finds
 * another destination; any bitmap-mode or mirror-mode run on the QEMU
 * removes kept bitmaps older than BM_KEEP_TTL_S (bitmap_sweep()), and any
 * bitmap-mode run removes state files that old from its state directory;
 * the bitmaps are not persistent, so they die with QEMU.  A kept bitmap
 * nobody comes back for lives until one of those.
 */
#include "engine/migrate_bitmap.h"
#include "common/error.h"
#include "qmp/qmp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define QMP_TIMEOUT_MS  RUN_QMP_TIMEOUT_MS
#define KEEP_PREFIX     MIG_NAME_PREFIX "keep-"
#define STATE_VERSION   1
#define STATE_MAX       (4 << 20)     /* bytes of a state file we read */

static int64_t dl(int64_t ms)
{
    return run_dl(ms);
}

/* ---- pure parts ---- */

int64_t bm_keep_name_epoch(const char *name)
{
    const char *p;
    char *end;
    long long t;

    if (!name || strncmp(name, KEEP_PREFIX, strlen(KEEP_PREFIX)))
        return -1;
    p = name + strlen(KEEP_PREFIX);
    if (*p < '0' || *p > '9')
        return -1;
    errno = 0;
    t = strtoll(p, &end, 10);
    if (errno || *end != '-' || t < 0)
        return -1;
    return t;
}

uint64_t bm_keep_key(const char *qmp, const char *node)
{
    uint64_t h = 0xcbf29ce484222325ULL;     /* FNV-1a */

    for (const char *s = qmp; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    h = (h ^ 0xff) * 0x100000001b3ULL;      /* a byte no string holds */
    for (const char *s = node; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

void bm_kept_free(struct bm_kept *k)
{
    free(k->qmp);
    free(k->node);
    free(k->target);
    free(k->bitmap);
    free(k->pend);
    memset(k, 0, sizeof *k);
}

char *bm_kept_dump(const struct bm_kept *k)
{
    json_t *pend = json_array(), *o;
    char *s;

    for (size_t i = 0; i < k->npend; i++)
        json_array_append_new(pend, json_pack("[I, I]", (json_int_t)k->pend[i].off,
                                              (json_int_t)k->pend[i].len));
    o = json_pack("{s:i, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:o}", "volmig_state", STATE_VERSION,
                  "qmp", k->qmp, "node", k->node, "target", k->target, "bitmap", k->bitmap,
                  "size", (json_int_t)k->size, "target_size", (json_int_t)k->target_size,
                  "created", (json_int_t)k->created, "pending", pend);
    if (!o)
        return NULL;
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static char *dup_str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s && *s ? strdup(s) : NULL;
}

static bool get_u64(json_t *o, const char *key, uint64_t *v)
{
    json_t *j = json_object_get(o, key);

    if (!json_is_integer(j) || json_integer_value(j) < 0)
        return false;
    *v = (uint64_t)json_integer_value(j);
    return true;
}

/* The pending ranges: pairs, sorted, apart, inside [0, size). */
static int parse_pending(json_t *arr, struct bm_kept *k)
{
    json_t *e;
    size_t i;
    uint64_t end = 0;

    if (!json_is_array(arr))
        return -1;
    k->pend = malloc((json_array_size(arr) + 1) * sizeof *k->pend);
    if (!k->pend)
        return -1;
    json_array_foreach(arr, i, e) {
        json_t *o = json_array_get(e, 0), *l = json_array_get(e, 1);
        uint64_t off, len;

        if (json_array_size(e) != 2 || !json_is_integer(o) || !json_is_integer(l) ||
            json_integer_value(o) < 0 || json_integer_value(l) <= 0)
            return -1;
        off = (uint64_t)json_integer_value(o);
        len = (uint64_t)json_integer_value(l);
        if ((i && off <= end) || off > k->size || len > k->size - off)
            return -1;
        end = off + len;
        k->pend[k->npend++] = (struct copy_range){ off, len };
    }
    return 0;
}

int bm_kept_parse(const char *text, struct bm_kept *k)
{
    json_t *o = json_loads(text, 0, NULL);
    json_t *ver = json_object_get(o, "volmig_state");
    uint64_t created;
    int rc = -1;

    memset(k, 0, sizeof *k);
    if (!json_is_object(o) || !json_is_integer(ver) || json_integer_value(ver) != STATE_VERSION)
        goto out;
    k->qmp = dup_str(o, "qmp");
    k->node = dup_str(o, "node");
    k->target = dup_str(o, "target");
    k->bitmap = dup_str(o, "bitmap");
    if (!k->qmp || !k->node || !k->target || !k->bitmap || !get_u64(o, "size", &k->size) ||
        !k->size || !get_u64(o, "target_size", &k->target_size) ||
        !get_u64(o, "created", &created) || bm_keep_name_epoch(k->bitmap) < 0)
        goto out;
    k->created = (int64_t)created;
    rc = parse_pending(json_object_get(o, "pending"), k);
out:
    json_decref(o);
    if (rc < 0)
        bm_kept_free(k);
    return rc;
}

/* ---- the state directory ---- */

/* cfg->state_dir, else $VOLMIG_STATE_DIR, else $XDG_RUNTIME_DIR/volmig,
 * else /tmp/volmig-UID. */
static void state_dir(const struct bm *b, char *buf, size_t len)
{
    const char *d = b->cfg->state_dir, *x = getenv("XDG_RUNTIME_DIR");

    if (!d || !*d)
        d = getenv("VOLMIG_STATE_DIR");
    if (d && *d)
        snprintf(buf, len, "%s", d);
    else if (x && *x == '/')
        snprintf(buf, len, "%s/volmig", x);
    else
        snprintf(buf, len, "/tmp/volmig-%u", (unsigned)geteuid());
}

/* Opens the state directory, making it (0700) if create and need be; -1
 * without a message when it does not exist and !create.  Refused unless it
 * is a directory that is ours and that nobody else may write to. */
static int open_state_dir(const struct bm *b, bool create, char *path, size_t len)
{
    struct stat st;
    int fd;

    state_dir(b, path, len);
    if (!create && access(path, F_OK) < 0)
        return -1;
    if (create && mkdir(path, 0700) < 0 && errno != EEXIST) {
        err_set(errno, "state directory %s", path);
        return -1;
    }
    fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        err_set(errno, "state directory %s", path);
        return -1;
    }
    if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 022)) {
        err_set(0, "state directory %s: not ours alone (owner or mode)", path);
        close(fd);
        return -1;
    }
    return fd;
}

static void state_name(const struct bm *b, int vol, char *buf, size_t len)
{
    snprintf(buf, len, "%016" PRIx64 ".json",
             bm_keep_key(b->cfg->qmp, b->cfg->vols[vol].node));
}

/* Reads volume vol's state file: 1 read, 0 none, -1 garbled (why says). */
static int state_read(struct bm *b, int dir, int vol, struct bm_kept *k, char *why, size_t wl)
{
    char name[64], *text = NULL;
    struct stat st;
    ssize_t n;
    int fd, rc = -1;

    state_name(b, vol, name, sizeof name);
    fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(why, wl, "the state a failed run kept cannot be read: %s", strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        st.st_size <= 0 || st.st_size > STATE_MAX || !(text = malloc((size_t)st.st_size + 1))) {
        snprintf(why, wl, "the state a failed run kept is not a file of ours");
        goto out;
    }
    n = pread(fd, text, (size_t)st.st_size, 0);
    if (n != st.st_size) {
        snprintf(why, wl, "the state a failed run kept cannot be read");
        goto out;
    }
    text[n] = '\0';
    if (bm_kept_parse(text, k) < 0) {
        snprintf(why, wl, "the state a failed run kept is garbled");
        goto out;
    }
    rc = 1;
out:
    free(text);
    close(fd);
    return rc;
}

/* Replaces volume vol's state file with k's, atomically. */
static int state_write(struct bm *b, int dir, int vol, const struct bm_kept *k)
{
    char name[64], tmp[96], *text = bm_kept_dump(k);
    size_t len = text ? strlen(text) : 0;
    int fd, rc = -1;

    if (!text) {
        err_set(ENOMEM, "state");
        return -1;
    }
    state_name(b, vol, name, sizeof name);
    snprintf(tmp, sizeof tmp, ".%s.%d.tmp", name, (int)getpid());
    fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        err_set(errno, "state file %s", tmp);
        free(text);
        return -1;
    }
    if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0)
        err_set(errno ? errno : EIO, "state file %s", tmp);
    else if (renameat(dir, tmp, dir, name) < 0)
        err_set(errno, "state file %s", name);
    else
        rc = fsync(dir) < 0 ? -1 : 0;
    close(fd);
    if (rc < 0)
        unlinkat(dir, tmp, 0);
    free(text);
    return rc;
}

static void state_remove(struct bm *b, int dir, int vol)
{
    char name[64];

    state_name(b, vol, name, sizeof name);
    unlinkat(dir, name, 0);
}

/* State files (and temporary ones a crash left) older than BM_KEEP_TTL_S,
 * whichever QEMU and node they were for: their bitmaps are gone or about
 * to be swept, and nothing else would ever remove them. */
static void expire_files(int dir)
{
    int fd = dup(dir);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;
    time_t now = time(NULL);

    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while ((e = readdir(d))) {
        struct stat st;
        size_t n = strlen(e->d_name);

        if ((n > 5 && !strcmp(e->d_name + n - 5, ".json")) ||
            (n > 4 && !strcmp(e->d_name + n - 4, ".tmp")))
            if (fstatat(dir, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
                now - st.st_mtime > BM_KEEP_TTL_S)
                unlinkat(dir, e->d_name, 0);
    }
    closedir(d);
}

/* ---- kept bitmaps in QEMU ---- */

/* Removes the kept bitmaps on volume vol's node, but the one named except
 * (may be NULL). */
static void drop_kept_bitmaps(struct bm *b, int vol, const char *except)
{
    const char *node = b->cfg->vols[vol].node;
    json_t *nodes = NULL, *e, *bmj;
    size_t i, j;

    if (qmp_callf(b->q, &nodes, dl(QMP_TIMEOUT_MS), "query-named-block-nodes", "{s:b}", "flat",
                  1) < 0)
        return;
    json_array_foreach(nodes, i, e) {
        const char *n = json_string_value(json_object_get(e, "node-name"));

        if (!n || strcmp(n, node))
            continue;
        json_array_foreach(json_object_get(e, "dirty-bitmaps"), j, bmj) {
            const char *name = json_string_value(json_object_get(bmj, "name"));

            if (bm_keep_name_epoch(name) >= 0 && (!except || strcmp(name, except)))
                qmp_callf(b->q, NULL, dl(QMP_TIMEOUT_MS), "block-dirty-bitmap-remove",
                          "{s:s, s:s}", "node", node, "name", name);
        }
    }
    json_decref(nodes);
}

static bool bitmap_on_node(struct bm *b, int vol, const char *want)
{
    json_t *nodes = NULL, *e, *bmj;
    size_t i, j;
    bool found = false;

    if (qmp_callf(b->q, &nodes, dl(QMP_TIMEOUT_MS), "query-named-block-nodes", "{s:b}", "flat",
                  1) < 0)
        return false;
    json_array_foreach(nodes, i, e) {
        const char *n = json_string_value(json_object_get(e, "node-name"));

        if (!n || strcmp(n, b->cfg->vols[vol].node))
            continue;
        json_array_foreach(json_object_get(e, "dirty-bitmaps"), j, bmj) {
            const char *name = json_string_value(json_object_get(bmj, "name"));

            found |= name && !strcmp(name, want);
        }
    }
    json_decref(nodes);
    return found;
}

int bm_keep_sweep(struct qmp *q)
{
    json_t *nodes = NULL, *e, *bmj;
    size_t i, j;
    int64_t now = (int64_t)time(NULL);
    int n = 0;

    if (!qmp_is_open(q) ||
        qmp_callf(q, &nodes, dl(QMP_TIMEOUT_MS), "query-named-block-nodes", "{s:b}", "flat",
                  1) < 0)
        return 0;
    json_array_foreach(nodes, i, e) {
        const char *node = json_string_value(json_object_get(e, "node-name"));

        json_array_foreach(json_object_get(e, "dirty-bitmaps"), j, bmj) {
            const char *name = json_string_value(json_object_get(bmj, "name"));
            int64_t t = bm_keep_name_epoch(name);

            if (node && t >= 0 && (now - t > BM_KEEP_TTL_S || t - now > BM_KEEP_TTL_S) &&
                qmp_callf(q, NULL, dl(QMP_TIMEOUT_MS), "block-dirty-bitmap-remove",
                          "{s:s, s:s}", "node", node, "name", name) == 0)
                n++;
        }
    }
    json_decref(nodes);
    return n;
}

/* ---- adopting what a failed run kept ---- */

/* Whether volume vol may take over k: NULL yes, else why not. */
static const char *refuse(struct bm *b, int vol, const struct bm_kept *k, char *why, size_t wl)
{
    const struct mig_volume *v = &b->cfg->vols[vol];
    int64_t age = (int64_t)time(NULL) - k->created;

    if (strcmp(k->qmp, b->cfg->qmp) || strcmp(k->node, v->node))
        snprintf(why, wl, "the state a failed run kept is for another drive (%s on %s)",
                 k->node, k->qmp);
    else if (strcmp(k->target, v->target))
        snprintf(why, wl, "a failed run kept state for another destination (%s)", k->target);
    else if (k->size != v->size)
        snprintf(why, wl, "the drive's size changed since a failed run kept its state (%llu "
                          "bytes, it was %llu)", (unsigned long long)v->size,
                 (unsigned long long)k->size);
    else if (age > BM_KEEP_TTL_S || age < -BM_KEEP_TTL_S)
        snprintf(why, wl, "the state a failed run kept has expired (%lld s old)",
                 (long long)age);
    else if (!bitmap_on_node(b, vol, k->bitmap))
        snprintf(why, wl, "the dirty bitmap a failed run kept is gone from QEMU (QEMU "
                          "restarted, or someone removed it)");
    else
        return NULL;
    return why;
}

/* Starts bitmap generation 0 on every node, for the volumes in take as a
 * copy of the bitmap a failed run kept, in one transaction, so that no
 * write falls between the kept bitmap and ours. */
static int start_from_kept(struct bm *b, struct bm_kept *k, const bool *take)
{
    json_t *actions = json_array();
    char name[96];

    for (int i = 0; i < b->cfg->nvols; i++) {
        const char *node = b->cfg->vols[i].node;

        bm_bitmap_name(b, i, 0, name, sizeof name);
        json_array_append_new(actions, json_pack("{s:s, s:{s:s, s:s, s:b}}", "type",
                                                 "block-dirty-bitmap-add", "data", "node", node,
                                                 "name", name, "persistent", 0));
        if (take[i])
            json_array_append_new(actions, json_pack("{s:s, s:{s:s, s:s, s:[s]}}", "type",
                                                     "block-dirty-bitmap-merge", "data", "node",
                                                     node, "target", name, "bitmaps",
                                                     k[i].bitmap));
    }
    return qmp_callf(b->q, NULL, dl(QMP_TIMEOUT_MS), "transaction", "{s:o}", "actions", actions);
}

/* Reads and judges every volume's state: take[i] when volume i may
 * resume from k[i]; a state refused is removed, with its bitmaps, and
 * keep_why[i] says why.  True when some volume may resume. */
static bool read_kept(struct bm *b, int dir, struct bm_kept *k, bool *take)
{
    bool any = false;

    for (int i = 0; i < b->cfg->nvols; i++) {
        char *why = b->keep_why[i];
        int rc = state_read(b, dir, i, &k[i], why, BM_WHY_MAX);

        if (rc == 0)
            continue;
        b->keep_seen = true;
        if (rc > 0 && !refuse(b, i, &k[i], why, BM_WHY_MAX)) {
            take[i] = any = true;
            continue;
        }
        /* Refused: nothing of it is any use to a later run either. */
        state_remove(b, dir, i);
        drop_kept_bitmaps(b, i, NULL);
    }
    return any;
}

/* Volume i's pending ranges and target size: the state's when it resumes,
 * else all of it (a full copy, for the reason in keep_why[i]).  -1 on no
 * memory. */
static int take_pending(struct bm *b, int i, const struct bm_kept *k, bool take)
{
    struct copy_range whole = { 0, b->cfg->vols[i].size };
    size_t n = take ? k->npend : 1;
    struct copy_range *p = malloc((n ? n : 1) * sizeof *p);

    if (!p)
        return -1;
    memcpy(p, take ? k->pend : &whole, n * sizeof *p);
    free(b->pend[i]);
    b->pend[i] = p;
    b->npend[i] = n;
    b->tsize[i] = take ? k->target_size : 0;
    if (!take && !b->keep_why[i][0])
        snprintf(b->keep_why[i], BM_WHY_MAX, "no failed run kept state for it");
    return 0;
}

bool bm_keep_adopt(struct bm *b)
{
    int nv = b->cfg->nvols, dir;
    struct bm_kept *k = calloc((size_t)nv, sizeof *k);
    bool *take = calloc((size_t)nv, sizeof *take), any;
    char path[PATH_MAX];

    dir = k && take ? open_state_dir(b, false, path, sizeof path) : -1;
    if (dir >= 0)
        expire_files(dir);
    any = dir >= 0 && read_kept(b, dir, k, take);
    if (any && start_from_kept(b, k, take) < 0) {
        for (int i = 0; i < nv; i++)
            if (take[i])
                snprintf(b->keep_why[i], BM_WHY_MAX, "the dirty bitmap a failed run kept "
                         "could not be taken over: %s", err_msg());
        any = false;
    }
    for (int i = 0; any && i < nv; i++)
        if (take_pending(b, i, &k[i], take[i]) < 0) {
            /* pass_full() starts afresh, and makes generation 0 itself. */
            for (int j = 0; j < nv; j++) {
                char name[96];

                bm_bitmap_name(b, j, 0, name, sizeof name);
                qmp_callf(b->q, NULL, dl(QMP_TIMEOUT_MS), "block-dirty-bitmap-remove",
                          "{s:s, s:s}", "node", b->cfg->vols[j].node, "name", name);
            }
            any = false;
        }
    if (any) {
        b->gen = 0;
        b->resumable = true;
    }
    for (int i = 0; k && i < nv; i++)
        bm_kept_free(&k[i]);
    free(k);
    free(take);
    if (dir >= 0)
        close(dir);
    return any;
}

/* ---- keeping state for a later run ---- */

/* keep, a fresh kept bitmap on every node, as a copy of this run's one
 * bitmap there (generation b->gen), in one transaction. */
static int add_kept_bitmaps(struct bm *b, const char *keep)
{
    json_t *actions = json_array();
    char mine[96];

    for (int i = 0; i < b->cfg->nvols; i++) {
        const char *node = b->cfg->vols[i].node;

        bm_bitmap_name(b, i, b->gen, mine, sizeof mine);
        json_array_append_new(actions, json_pack("{s:s, s:{s:s, s:s, s:b}}", "type",
                                                 "block-dirty-bitmap-add", "data", "node", node,
                                                 "name", keep, "persistent", 0));
        json_array_append_new(actions, json_pack("{s:s, s:{s:s, s:s, s:[s]}}", "type",
                                                 "block-dirty-bitmap-merge", "data", "node",
                                                 node, "target", keep, "bitmaps", mine));
    }
    return qmp_callf(b->q, NULL, dl(QMP_TIMEOUT_MS), "transaction", "{s:o}", "actions", actions);
}

/* volmig-keep-EPOCH-TOKEN, TOKEN random. */
static void kept_name(char *buf, size_t len)
{
    unsigned token = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

    if (fd < 0 || read(fd, &token, sizeof token) != sizeof token)
        token = (unsigned)getpid() ^ (unsigned)time(NULL);
    if (fd >= 0)
        close(fd);
    snprintf(buf, len, KEEP_PREFIX "%lld-%08x", (long long)time(NULL), token);
}

void bm_keep_persist(struct bm *b)
{
    char path[PATH_MAX], keep[96], msg[ERR_MSG_MAX + 64];
    json_t *vols;
    int dir;

    kept_name(keep, sizeof keep);
    dir = open_state_dir(b, true, path, sizeof path);
    if (dir < 0 || add_kept_bitmaps(b, keep) < 0) {
        snprintf(msg, sizeof msg, "nothing was kept for a later run to resume from: %s",
                 err_msg());
        run_emit(b->r, json_pack("{s:s, s:s}", "event", "warning", "message", msg));
        if (dir >= 0)
            close(dir);
        return;
    }
    vols = json_array();
    for (int i = 0; i < b->cfg->nvols; i++) {
        const struct mig_volume *v = &b->cfg->vols[i];
        struct bm_kept k = {
            .qmp = (char *)b->cfg->qmp, .node = (char *)v->node, .target = (char *)v->target,
            .bitmap = keep, .size = v->size, .target_size = b->tsize[i],
            .created = (int64_t)time(NULL), .pend = b->pend[i], .npend = b->npend[i],
        };

        if (state_write(b, dir, i, &k) < 0) {
            run_emit(b->r, json_pack("{s:s, s:s}", "event", "warning", "message", err_msg()));
            state_remove(b, dir, i);
            drop_kept_bitmaps(b, i, NULL);
            continue;
        }
        /* At most one kept bitmap per node: the newest. */
        drop_kept_bitmaps(b, i, keep);
        json_array_append_new(vols, json_pack("{s:s, s:s, s:I}", "drive", v->drive, "bitmap",
                                              keep, "pending",
                                              (json_int_t)ranges_bytes(k.pend, k.npend)));
    }
    close(dir);
    run_emit(b->r, json_pack("{s:s, s:s, s:o}", "event", "kept", "state_dir", path, "volumes",
                             vols));
}

void bm_keep_drop(struct bm *b)
{
    char path[PATH_MAX];
    int dir = open_state_dir(b, false, path, sizeof path);

    for (int i = 0; i < b->cfg->nvols; i++) {
        if (dir >= 0)
            state_remove(b, dir, i);
        if (qmp_is_open(b->q))
            drop_kept_bitmaps(b, i, NULL);
    }
    if (dir >= 0)
        close(dir);
}
