/* volmig migrate --mode bitmap: what volmig adds to QEMU (an NBD server,
 * exports, dirty bitmaps) and removes again, its own and what dead runs
 * left.  The passes that use them are in engine/migrate_bitmap.c.
 *
 * Names: bitmap volmig-PID-bI-G and export volmig-PID-xI-G for volume I,
 * generation G.  Generation G's bitmap records while pass G copies; pass
 * G+1 reads it.  The cleanup does not track what it added: it asks QEMU
 * for everything named volmig-PID- and removes that, so it holds after any
 * failure in between.
 *
 * With --nbd-socket the NBD server is someone else's, and the names are
 * volmig-PID-ext-bI-G and volmig-PID-ext-xI-G: QEMU 7.2 cannot say who
 * started its server, so the tag is how a later run, sweeping what a dead
 * run left, knows that the server was not the dead run's to stop.
 */
#include "engine/migrate_bitmap.h"
#include "engine/migrate_run.h"
#include "common/error.h"
#include "qmp/qmp.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libnbd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define QMP_TIMEOUT_MS    RUN_QMP_TIMEOUT_MS
#define NAME_PREFIX       MIG_NAME_PREFIX
/* Where run_nbd_server_start() makes its private socket directory,
 * SOCK_PARENT/volmig-PID.XXXXXX, and the socket's name in it. */
#define SOCK_PARENT       RUN_SOCK_PARENT
#define SOCK_NAME         RUN_SOCK_NAME
#define EXT_TAG           "ext-"    /* after "volmig-PID-": on a server not ours */

static int64_t dl(int64_t ms)
{
    return run_dl(ms);
}

static const char *tag(const struct bm *b)
{
    return b->cfg->nbd_socket ? EXT_TAG : "";
}

void bm_bitmap_name(const struct bm *b, int vol, int gen, char *buf, size_t len)
{
    run_name(buf, len, "%sb%d-%d", tag(b), vol, gen);
}

static void export_name(const struct bm *b, int vol, int gen, char *buf, size_t len)
{
    run_name(buf, len, "%sx%d-%d", tag(b), vol, gen);
}

/* True for a name of ours given by a run on a server it did not start. */
static bool ext_name(const char *name)
{
    const char *p = name + strlen(NAME_PREFIX);

    if (strncmp(name, NAME_PREFIX, strlen(NAME_PREFIX)))
        return false;
    p += strspn(p, "0123456789");
    return !strncmp(p, "-" EXT_TAG, strlen(EXT_TAG) + 1);
}

/* ---- removing what we (or a dead run) added ---- */

/* Removes every export and (unless keep_bitmaps) bitmap whose name's pid
 * passes want(); then stops the NBD server if stop_server, or if
 * stop_if_empty, nothing is exported any more and an export removed came
 * from a run that started the server itself (no ext tag).  Bitmaps do not
 * count: a run that failed an attempt keeps its bitmap for the retry with
 * its server stopped, and a server running when it died is someone
 * else's (a dead run's own server with no export on it yet is found
 * through its socket directory, stop_orphan_server()).  A server that --nbd-socket named is
 * never stopped: even when only volmig's exports were on it, its owner
 * expects to find it running.  Returns how many things were removed. */
static int bm_sweep_qemu(struct qmp *q, bool (*want)(int pid), bool stop_server,
                         bool stop_if_empty, bool keep_bitmaps)
{
    json_t *ex = NULL, *nodes = NULL, *e, *bm;
    size_t i, j;
    int n = 0, left = 0, owned = 0;
    struct err_saved saved;

    err_save(&saved);
    if (!qmp_is_open(q))
        return 0;
    if (qmp_call(q, "query-block-exports", NULL, &ex, dl(QMP_TIMEOUT_MS)) == 0) {
        json_array_foreach(ex, i, e) {
            const char *id = json_string_value(json_object_get(e, "id"));

            if (id && want(mig_name_pid(id)) && run_export_del(q, id) == 0) {
                n++;
                owned += !ext_name(id);
            } else {
                left++;
            }
        }
    }
    if (!keep_bitmaps &&
        qmp_callf(q, &nodes, dl(QMP_TIMEOUT_MS), "query-named-block-nodes", "{s:b}", "flat",
                  1) == 0) {
        json_array_foreach(nodes, i, e) {
            const char *node = json_string_value(json_object_get(e, "node-name"));

            json_array_foreach(json_object_get(e, "dirty-bitmaps"), j, bm) {
                const char *name = json_string_value(json_object_get(bm, "name"));

                if (node && name && want(mig_name_pid(name)) &&
                    qmp_callf(q, NULL, dl(QMP_TIMEOUT_MS), "block-dirty-bitmap-remove",
                              "{s:s, s:s}", "node", node, "name", name) == 0)
                    n++;
            }
        }
    }
    if (stop_server || (stop_if_empty && owned && !left)) {
        if (qmp_call(q, "nbd-server-stop", NULL, NULL, dl(QMP_TIMEOUT_MS)) == 0 && !stop_server)
            n++;
    }
    json_decref(ex);
    json_decref(nodes);
    err_restore(saved.errnum, saved.msg);
    return n;
}

static bool is_mine(int pid)
{
    return pid == getpid();
}

static bool is_dead(int pid)
{
    return mig_pid_dead(pid);
}

/* The pid in the name of a socket directory bm_server_start() made:
 * NAME_PREFIX, the pid in decimal, '.', and the six letters or digits
 * mkdtemp() put in place of XXXXXX.  0 for any other name, so that nothing
 * else in /tmp (volmig's test directories, say) is ever taken for one. */
static int sock_dir_pid(const char *name)
{
    const char *p = name + strlen(NAME_PREFIX);
    char *end;
    long pid;

    if (strncmp(name, NAME_PREFIX, strlen(NAME_PREFIX)) || !isdigit((unsigned char)*p))
        return 0;
    errno = 0;
    pid = strtol(p, &end, 10);
    if (errno || pid <= 0 || pid > INT_MAX || *end != '.')
        return 0;
    for (int i = 1; i <= 6; i++)
        if (!isalnum((unsigned char)end[i]))
            return 0;
    return end[7] ? 0 : (int)pid;
}

/* True when something accepts connections on the unix socket at path (a
 * full backlog counts as accepting).  QEMU's NBD server of a dead run is
 * still listening when the sweep could not stop it, and its socket is then
 * not ours to remove. */
static bool sock_in_use(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    bool in_use;
    int fd;

    if (strlen(path) >= sizeof sa.sun_path)
        return true;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return true;
    in_use = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 || errno == EAGAIN ||
             errno == EINPROGRESS;
    close(fd);
    return in_use;
}

/* Removes SOCK_PARENT/name, a dead run's socket directory: the socket in
 * it if nothing listens there any more, then the directory if that left
 * it empty.  Anything else in it stays, and so does the directory.  It
 * works relative to the directory it opened without following links, so a
 * name swapped for a link in between leads nowhere else. */
static void remove_sock_dir(int parent, const char *name)
{
    char path[PATH_MAX];
    struct stat st;
    int d = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    if (d < 0)
        return;
    if (fstat(d, &st) < 0 || st.st_uid != geteuid()) {
        close(d);
        return;
    }
    snprintf(path, sizeof path, SOCK_PARENT "/%s/" SOCK_NAME, name);
    if (fstatat(d, SOCK_NAME, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(st.st_mode) &&
        !sock_in_use(path))
        unlinkat(d, SOCK_NAME, 0);
    close(d);
    /* Fails, as it should, when anything else is in it. */
    unlinkat(parent, name, AT_REMOVEDIR);
}

/* A volmig killed with SIGKILL leaves its socket directory behind (the
 * socket too, unless QEMU removed it when its server stopped).  Only
 * directories of our own pattern, owned by us, whose pid is gone. */
static void remove_dead_sock_dirs(void)
{
    DIR *dir = opendir(SOCK_PARENT);
    struct dirent *e;

    if (!dir)
        return;
    while ((e = readdir(dir)))
        if (mig_pid_dead(sock_dir_pid(e->d_name)))
            remove_sock_dir(dirfd(dir), e->d_name);
    closedir(dir);
}


/* Removes this run's exports and bitmaps, and the NBD server if it is
 * ours; the guest stays as it is. */
void bm_sweep_mine(struct bm *b)
{
    bm_sweep_qemu(b->q, is_mine, b->server_started, false, false);
    b->server_started = false;
    b->resumable = false;
}

/* Undoes what this run added; resumes the guest if we paused it. */
/* The names of this run's bitmaps on node, in a JSON array (caller
 * frees); NULL if QEMU cannot be asked. */
static json_t *my_bitmaps(struct qmp *q, const char *node)
{
    json_t *nodes = NULL, *names, *e, *bm;
    size_t i, j;

    if (qmp_callf(q, &nodes, dl(QMP_TIMEOUT_MS), "query-named-block-nodes", "{s:b}", "flat",
                  1) < 0)
        return NULL;
    names = json_array();
    json_array_foreach(nodes, i, e) {
        const char *n = json_string_value(json_object_get(e, "node-name"));

        if (!n || strcmp(n, node))
            continue;
        json_array_foreach(json_object_get(e, "dirty-bitmaps"), j, bm) {
            const char *name = json_string_value(json_object_get(bm, "name"));

            if (name && is_mine(mig_name_pid(name)))
                json_array_append_new(names, json_string(name));
        }
    }
    json_decref(nodes);
    return names;
}

bool bm_bitmap_exists(struct bm *b, int vol, int gen)
{
    json_t *names = my_bitmaps(b->q, b->cfg->vols[vol].node), *e;
    char want[96];
    size_t i;
    bool found = false;

    bm_bitmap_name(b, vol, gen, want, sizeof want);
    json_array_foreach(names, i, e)
        found |= !strcmp(json_string_value(e), want);
    json_decref(names);
    return found;
}

/* Every node keeps bitmap generation b->gen, the one recording, with what
 * this run's other bitmaps on it mark merged in (a frozen generation that
 * a failed pass had not reached yet).  -1 when that cannot be done. */
static int keep_one_bitmap(struct bm *b)
{
    for (int v = 0; v < b->cfg->nvols; v++) {
        const char *node = b->cfg->vols[v].node;
        json_t *names = my_bitmaps(b->q, node), *e;
        char keep[96];
        size_t i;

        if (!names)
            return -1;
        if (!bm_bitmap_exists(b, v, b->gen)) {
            json_decref(names);
            return -1;
        }
        bm_bitmap_name(b, v, b->gen, keep, sizeof keep);
        json_array_foreach(names, i, e) {
            const char *name = json_string_value(e);

            if (!strcmp(name, keep))
                continue;
            if (qmp_callf(b->q, NULL, dl(QMP_TIMEOUT_MS), "block-dirty-bitmap-merge",
                          "{s:s, s:s, s:[s]}", "node", node, "target", keep, "bitmaps",
                          name) < 0 ||
                qmp_callf(b->q, NULL, dl(QMP_TIMEOUT_MS), "block-dirty-bitmap-remove",
                          "{s:s, s:s}", "node", node, "name", name) < 0) {
                json_decref(names);
                return -1;
            }
        }
        json_decref(names);
    }
    return 0;
}

void bm_cleanup(struct bm *b)
{
    struct err_saved saved;

    err_save(&saved);
    if (!qmp_is_open(b->q)) {
        run_sock_remove(&b->own);
        return;
    }
    bm_sweep_qemu(b->q, is_mine, b->server_started, false, b->resumable);
    b->server_started = false;
    if (b->resumable && keep_one_bitmap(b) < 0) {
        b->resumable = false;
        bm_sweep_qemu(b->q, is_mine, false, false, false);
    }
    if (b->stopped) {
        qmp_call(b->q, "cont", NULL, NULL, dl(QMP_TIMEOUT_MS));
        b->stopped = false;
    }
    run_sock_remove(&b->own);
    err_restore(saved.errnum, saved.msg);
}

/* ---- the NBD server, exports, bitmaps ---- */

/* The socket path as an NBD URI's query value: a path that --nbd-socket
 * names may hold '&', '%', '#' or spaces, which the URI parser would take
 * for syntax. */
static void uri_escape(const char *in, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (; *in && o + 4 <= len; in++) {
        unsigned char c = (unsigned char)*in;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("/-._~", c)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

void bm_source_uri(const struct bm *b, const char *id, char *buf, size_t len)
{
    char sock[3 * sizeof b->sock];

    uri_escape(b->sock, sock, sizeof sock);
    snprintf(buf, len, "nbd+unix:///%s?socket=%s", id, sock);
}



/* NBD_OPT_LIST's answer, one export at a time. */
struct listing {
    const char *want;
    bool found;
    int count;
};

static int listed_cb(void *opaque, const char *name, const char *description)
{
    struct listing *l = opaque;

    (void)description;
    l->found |= !strcmp(name, l->want);
    l->count++;
    return 0;
}

/* 1 if the NBD server on sock lists the export name, 0 if not, -1 (with
 * err_msg()) if it cannot be asked; *count (may be NULL) receives how many
 * exports it lists.  The handshake ends with NBD_OPT_ABORT, which QEMU
 * takes as a polite goodbye and does not log as an error. */
static int export_listed(const char *sock, const char *name, int *count)
{
    struct listing l = { .want = name };
    nbd_list_callback cb = { .callback = listed_cb, .user_data = &l };
    struct nbd_handle *h = nbd_create();
    int rc = -1;

    if (!h) {
        err_set(0, "libnbd: %s", nbd_get_error());
        return -1;
    }
    if (nbd_set_opt_mode(h, true) < 0 || nbd_connect_unix(h, sock) < 0 ||
        nbd_opt_list(h, cb) < 0) {
        err_set(0, "%s", nbd_get_error());
    } else {
        nbd_opt_abort(h);
        rc = l.found;
        if (count)
            *count = l.count;
    }
    nbd_close(h);
    return rc;
}

/* --nbd-socket: the server is someone else's.  Before anything is copied,
 * a probe export proves both that QEMU runs an NBD server and that the
 * server on the socket is that one (an export added through QMP shows up
 * there).  Neither failure goes away by retrying, so both are final. */
static enum attempt server_attach(struct bm *b)
{
    const char *path = b->cfg->nbd_socket;
    char id[96];
    int listed;

    if (strlen(path) >= sizeof b->sock) {
        err_set(ENAMETOOLONG, "--nbd-socket %s: path too long", path);
        return ATT_FINAL;
    }
    snprintf(b->sock, sizeof b->sock, "%s", path);
    run_name(id, sizeof id, EXT_TAG "probe");
    if (run_export_ro_add(b->q, id, b->cfg->vols[0].node) < 0) {
        if (!qmp_is_open(b->q))
            return ATT_GONE;
        if (strstr(err_msg(), "not running")) {
            err_set(0, "--nbd-socket %s: QEMU runs no NBD server (start one listening there "
                       "with nbd-server-start, or leave --nbd-socket out and volmig starts "
                       "its own)", path);
            return ATT_FINAL;
        }
        err_prefix("--nbd-socket %s: a probe export of %s", path, b->cfg->vols[0].node);
        return ATT_RETRY;
    }
    listed = export_listed(b->sock, id, NULL);
    if (run_export_del(b->q, id) < 0)
        return run_qmp_failed(b->r, ATT_RETRY);
    if (listed < 0) {
        err_prefix("--nbd-socket %s: cannot reach an NBD server there", path);
        return ATT_FINAL;
    }
    if (!listed) {
        err_set(0, "--nbd-socket %s: the NBD server there is not QEMU's (QEMU's export %s "
                   "does not show up on it)", path, id);
        return ATT_FINAL;
    }
    return ATT_OK;
}

/* The socket of a dead run's directory that something still listens on,
 * in path; false when there is none. */
static bool dead_sock_listening(char *path, size_t len)
{
    DIR *dir = opendir(SOCK_PARENT);
    struct dirent *e;
    bool found = false;

    if (!dir)
        return false;
    while (!found && (e = readdir(dir)))
        if (mig_pid_dead(sock_dir_pid(e->d_name))) {
            snprintf(path, len, SOCK_PARENT "/%s/" SOCK_NAME, e->d_name);
            found = sock_in_use(path);
        }
    closedir(dir);
    return found;
}

/* A run killed between nbd-server-start and its first export or bitmap
 * leaves a server that nothing in QEMU names as a volmig run's, and every
 * later bitmap-mode run would be refused.  Its socket directory still
 * tells: when the server listening in a dead run's directory is this
 * QEMU's (an export added now shows up there) and exports nothing else, it
 * is that run's, and it is stopped.  The probe carries the ext tag, so a
 * run killed during it never makes a later sweep stop a server. */
static int stop_orphan_server(struct qmp *q)
{
    char sock[PATH_MAX], id[96];
    json_t *nodes = NULL, *e;
    size_t i;
    bool added = false;
    int listed = 0, count = 0, n = 0;

    if (!dead_sock_listening(sock, sizeof sock))
        return 0;
    run_name(id, sizeof id, EXT_TAG "orphan-probe");
    if (qmp_callf(q, &nodes, dl(QMP_TIMEOUT_MS), "query-named-block-nodes", "{s:b}", "flat",
                  1) < 0)
        return 0;
    /* Any node takes a read-only export; the first few are tried in case
     * one is held in a way that refuses it. */
    json_array_foreach(nodes, i, e) {
        const char *node = json_string_value(json_object_get(e, "node-name"));

        if (i >= 8 || added)
            break;
        added = node && run_export_ro_add(q, id, node) == 0;
    }
    json_decref(nodes);
    if (!added)
        return 0;     /* no server running at all, most likely */
    listed = export_listed(sock, id, &count);
    if (run_export_del(q, id) == 0 && listed == 1 && count == 1 &&
        qmp_call(q, "nbd-server-stop", NULL, NULL, dl(QMP_TIMEOUT_MS)) == 0)
        n = 1;
    return n;
}

int bitmap_sweep(struct qmp *q)
{
    /* QEMU first: stopping a dead run's NBD server frees its socket.  The
     * directories are not counted: the count feeds a warning about what
     * was left in QEMU, and an empty directory in /tmp is no news. */
    struct err_saved saved;
    int n = bm_sweep_qemu(q, is_dead, false, true, false) + bm_keep_sweep(q);

    err_save(&saved);
    n += stop_orphan_server(q);
    err_restore(saved.errnum, saved.msg);
    remove_dead_sock_dirs();
    return n;
}

enum attempt bm_server_start(struct bm *b)
{
    if (b->cfg->nbd_socket)
        return server_attach(b);
    if (run_nbd_server_start(b->r, &b->own) < 0) {
        if (!qmp_is_open(b->q))
            return ATT_GONE;
        /* QEMU 7.2 runs one NBD server at most and cannot say where it
         * listens: only the caller can know that. */
        if (strstr(err_msg(), "already running"))
            err_prefix("QEMU already runs an NBD server and --mode bitmap needs one: if it "
                       "listens on a unix socket, name it with --nbd-socket PATH and volmig "
                       "adds its exports there; otherwise stop it (nbd-server-stop) or use "
                       "--mode mirror");
        else
            err_prefix("--mode bitmap starts an NBD server in QEMU");
        return ATT_FINAL;
    }
    snprintf(b->sock, sizeof b->sock, "%s", b->own.path);
    b->server_started = true;
    return ATT_OK;
}

/* One transaction for every volume: a fresh bitmap gen+1 starts recording
 * and (gen >= 0) bitmap gen stops, at the same instant, so a write lands
 * in exactly one of them. */
enum attempt bm_switch_bitmaps(struct bm *b, bool fresh)
{
    json_t *actions = json_array();
    char name[96];

    for (int i = 0; i < b->cfg->nvols; i++) {
        const char *node = b->cfg->vols[i].node;

        bm_bitmap_name(b, i, b->gen + 1, name, sizeof name);
        json_array_append_new(actions,
                              json_pack("{s:s, s:{s:s, s:s, s:b}}", "type",
                                        "block-dirty-bitmap-add", "data", "node", node, "name",
                                        name, "persistent", 0));
        if (fresh || b->gen < 0)
            continue;
        bm_bitmap_name(b, i, b->gen, name, sizeof name);
        json_array_append_new(actions, json_pack("{s:s, s:{s:s, s:s}}", "type",
                                                 "block-dirty-bitmap-disable", "data", "node",
                                                 node, "name", name));
    }
    if (qmp_callf(b->q, NULL, dl(QMP_TIMEOUT_MS), "transaction", "{s:o}", "actions",
                  actions) < 0) {
        err_prefix("switching dirty bitmaps");
        return run_qmp_failed(b->r, ATT_RETRY);
    }
    b->gen++;
    return ATT_OK;
}

/* Bytes marked in the bitmaps of generation gen, over all volumes. */
int bm_dirty_count(struct bm *b, int gen, uint64_t *count)
{
    json_t *nodes = NULL, *e, *bm;
    size_t i, j;
    char name[96];

    *count = 0;
    if (qmp_callf(b->q, &nodes, dl(QMP_TIMEOUT_MS), "query-named-block-nodes", "{s:b}", "flat",
                  1) < 0)
        return -1;
    for (int v = 0; v < b->cfg->nvols; v++) {
        bm_bitmap_name(b, v, gen, name, sizeof name);
        json_array_foreach(nodes, i, e) {
            const char *node = json_string_value(json_object_get(e, "node-name"));

            if (!node || strcmp(node, b->cfg->vols[v].node))
                continue;
            json_array_foreach(json_object_get(e, "dirty-bitmaps"), j, bm) {
                const char *n = json_string_value(json_object_get(bm, "name"));

                if (n && !strcmp(n, name))
                    *count += (uint64_t)json_integer_value(json_object_get(bm, "count"));
            }
        }
    }
    json_decref(nodes);
    return 0;
}

enum attempt bm_export_add(struct bm *b, int vol, int gen, bool with_bitmap, char *id, size_t len)
{
    json_t *args;
    char bname[96];

    export_name(b, vol, gen, id, len);
    args = json_pack("{s:s, s:s, s:s, s:s, s:b}", "type", "nbd", "id", id, "node-name",
                     b->cfg->vols[vol].node, "name", id, "writable", 0);
    if (with_bitmap) {
        bm_bitmap_name(b, vol, gen, bname, sizeof bname);
        json_object_set_new(args, "bitmaps", json_pack("[s]", bname));
    }
    if (qmp_call(b->q, "block-export-add", args, NULL, dl(QMP_TIMEOUT_MS)) < 0) {
        err_prefix("exporting %s", b->cfg->vols[vol].node);
        return run_qmp_failed(b->r, ATT_RETRY);
    }
    return ATT_OK;
}

