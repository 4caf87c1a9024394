/* volmig migrate --mode bitmap: the passes, the pause, and what volmig
 * adds to QEMU (an NBD server, exports, dirty bitmaps) and removes again.
 * The design is in engine/migrate_bitmap.h; the data moves through copy_run().
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
#include "engine/target_tls.h"
#include "engine/target_probe.h"
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
#define EXPORT_GONE_MS    30000     /* a deleted export to disappear */
#define TARGET_PROBE_MS   10000     /* a target to answer before pass 0 */
#define FINAL_MAX_PASSES  16        /* paused passes before giving up */
/* The copier's depth.  QEMU serves every NBD export from one thread (its
 * main loop), the guest's own export included when the guest is a client
 * of the same server, and the requests it has in hand are served roughly in
 * turn: every read of ours in flight is work queued in front of a guest
 * request, and every connection of ours one more turn in the round.  Two
 * connections and 16 x 256 KiB (4 MiB, a few ms of QEMU's work) keep QEMU
 * busy: in bench/bitmap.sh the copier's default 4 x 64 (16 MiB) copied no
 * faster, and the stand-in guest's p99 was as high or higher (a noisy
 * 2-CPU machine: the differences are within its noise, the direction is
 * not). */
#define COPY_CONNECTIONS  2
#define COPY_REQUESTS     16
#define NAME_PREFIX       MIG_NAME_PREFIX
/* Where server_start() makes its private socket directory,
 * SOCK_PARENT/volmig-PID.XXXXXX, and the socket's name in it. */
#define SOCK_PARENT       "/tmp"
#define SOCK_NAME         "nbd.sock"
#define EXT_TAG           "ext-"    /* after "volmig-PID-": on a server not ours */

enum att { A_OK = ATT_OK, A_RETRY = ATT_RETRY, A_FINAL = ATT_FINAL, A_GONE = ATT_GONE,
           A_CANCELLED = ATT_CANCELLED };

/* The strategy's state, for the whole run (r->state). */
struct bm {
    struct mig_run *r;
    struct mig_config *cfg;
    struct qmp *q;
    char dir[64], sock[128];  /* sock: the NBD server's, ours or --nbd-socket */
    bool server_started;     /* ours to stop; never with --nbd-socket */
    bool stopped;            /* we paused the guest: ours to resume */
    int gen;                 /* the generation recording now */
    int pass;                /* passes run so far */
    double rate;             /* bytes/s of pass 0 */
    uint64_t pass_dirty, pass_data;   /* of the pass being run */
    uint64_t *vol_done;      /* per volume, this pass */
    uint64_t *vol_todo;
    bool paused_pass;
    /* TLS to NBD targets: the copier's connections carry the data here,
     * so the credentials are ours, not a QEMU object's. */
    struct client_tls tls;
    bool tls_on;
};

/* ---- pure parts ---- */

enum bitmap_step bitmap_decide(int pass, uint64_t dirty, uint64_t prev, uint64_t threshold)
{
    if (dirty <= threshold)
        return BM_SMALL;
    if (pass >= 1 && dirty >= prev)
        return BM_NOT_SHRINKING;
    if (pass >= BITMAP_MAX_PASSES)
        return BM_MAX_PASSES;
    return BM_PASS;
}

uint64_t bitmap_threshold(int64_t configured, double rate)
{
    double t = rate * 0.1;

    if (configured >= 0)
        return (uint64_t)configured;
    /* Written so that a rate that is not a number lands here too: casting
     * NaN to an integer is undefined, and an unmeasured rate means the
     * smallest threshold. */
    if (!(t >= (1 << 20)))
        return 1 << 20;
    if (t > (64 << 20))
        return 64 << 20;
    return (uint64_t)t;
}

const char *bitmap_step_name(enum bitmap_step s)
{
    switch (s) {
    case BM_SMALL:         return "below-threshold";
    case BM_NOT_SHRINKING: return "not-shrinking";
    case BM_MAX_PASSES:    return "max-passes";
    default:               return "pass";
    }
}

/* ---- plumbing ---- */

static int64_t dl(int64_t ms)
{
    return qmp_deadline_in(ms);
}

static void emit(struct bm *b, json_t *ev)
{
    run_emit(b->r, ev);
}

static bool cancelled(const struct bm *b)
{
    return run_cancelled(b->r);
}

static enum att qmp_att(const struct bm *b, enum att if_open)
{
    return (enum att)run_qmp_failed(b->r, (enum attempt)if_open);
}

static const char *tag(const struct bm *b)
{
    return b->cfg->nbd_socket ? EXT_TAG : "";
}

static void bitmap_name(const struct bm *b, int vol, int gen, char *buf, size_t len)
{
    snprintf(buf, len, NAME_PREFIX "%d-%sb%d-%d", (int)getpid(), tag(b), vol, gen);
}

static void export_name(const struct bm *b, int vol, int gen, char *buf, size_t len)
{
    snprintf(buf, len, NAME_PREFIX "%d-%sx%d-%d", (int)getpid(), tag(b), vol, gen);
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

static bool export_exists(struct qmp *q, const char *id)
{
    json_t *ex = NULL, *e;
    size_t i;
    bool found = false;

    if (qmp_call(q, "query-block-exports", NULL, &ex, dl(QMP_TIMEOUT_MS)) < 0)
        return false;
    json_array_foreach(ex, i, e) {
        const char *s = json_string_value(json_object_get(e, "id"));

        found |= s && !strcmp(s, id);
    }
    json_decref(ex);
    return found;
}

/* Deletes an export and waits until it is gone: until then its bitmap is
 * busy and cannot be removed. */
static int export_del(struct qmp *q, const char *id)
{
    int64_t deadline = dl(EXPORT_GONE_MS);

    if (qmp_callf(q, NULL, dl(QMP_TIMEOUT_MS), "block-export-del", "{s:s, s:s}", "id", id,
                  "mode", "hard") < 0 &&
        export_exists(q, id))
        return -1;
    while (export_exists(q, id)) {
        json_t *ev = NULL;

        if (qmp_now_ms() > deadline) {
            err_set(ETIMEDOUT, "export %s did not go away", id);
            return -1;
        }
        if (qmp_wait_event(q, "BLOCK_EXPORT_DELETED", NULL, NULL, &ev, dl(50)) == 0)
            json_decref(ev);
        if (!qmp_is_open(q))
            return -1;
    }
    return 0;
}

/* Removes every export and bitmap whose name's pid passes want(); then
 * stops the NBD server if stop_server, or if stop_if_empty, nothing is
 * exported any more and something removed came from a run that started
 * the server itself (no ext tag).  A server that --nbd-socket named is
 * never stopped: even when only volmig's exports were on it, its owner
 * expects to find it running.  Returns how many things were removed. */
static int sweep(struct qmp *q, bool (*want)(int pid), bool stop_server, bool stop_if_empty)
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

            if (id && want(mig_name_pid(id)) && export_del(q, id) == 0) {
                n++;
                owned += !ext_name(id);
            } else {
                left++;
            }
        }
    }
    if (qmp_callf(q, &nodes, dl(QMP_TIMEOUT_MS), "query-named-block-nodes", "{s:b}", "flat",
                  1) == 0) {
        json_array_foreach(nodes, i, e) {
            const char *node = json_string_value(json_object_get(e, "node-name"));

            json_array_foreach(json_object_get(e, "dirty-bitmaps"), j, bm) {
                const char *name = json_string_value(json_object_get(bm, "name"));

                if (node && name && want(mig_name_pid(name)) &&
                    qmp_callf(q, NULL, dl(QMP_TIMEOUT_MS), "block-dirty-bitmap-remove",
                              "{s:s, s:s}", "node", node, "name", name) == 0) {
                    n++;
                    owned += !ext_name(name);
                }
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

/* The pid in the name of a socket directory server_start() made:
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


/* The socket directory lives on this host: it is removed whatever became
 * of QEMU, also when the monitor is gone. */
static void remove_own_sock_dir(struct bm *b)
{
    if (!b->dir[0])
        return;
    unlink(b->sock);
    rmdir(b->dir);
    b->dir[0] = '\0';
}

/* Undoes what this run added; resumes the guest if we paused it. */
static void cleanup(struct bm *b)
{
    struct err_saved saved;

    err_save(&saved);
    if (!qmp_is_open(b->q)) {
        remove_own_sock_dir(b);
        return;
    }
    sweep(b->q, is_mine, b->server_started, false);
    b->server_started = false;
    if (b->stopped) {
        qmp_call(b->q, "cont", NULL, NULL, dl(QMP_TIMEOUT_MS));
        b->stopped = false;
    }
    remove_own_sock_dir(b);
    err_restore(saved.errnum, saved.msg);
}

/* ---- the NBD server, exports, bitmaps ---- */

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

/* A read-only export of node named id, whose only use is to show up (or
 * not) in the export list of the server on some socket: that tells whether
 * the server there is this QEMU's. */
static int probe_add(struct qmp *q, const char *id, const char *node)
{
    return qmp_callf(q, NULL, dl(QMP_TIMEOUT_MS), "block-export-add", "{s:s, s:s, s:s, s:s, s:b}",
                     "type", "nbd", "id", id, "node-name", node, "name", id, "writable", 0);
}

/* --nbd-socket: the server is someone else's.  Before anything is copied,
 * a probe export proves both that QEMU runs an NBD server and that the
 * server on the socket is that one (an export added through QMP shows up
 * there).  Neither failure goes away by retrying, so both are final. */
static enum att server_attach(struct bm *b)
{
    const char *path = b->cfg->nbd_socket;
    char id[96];
    int listed;

    if (strlen(path) >= sizeof b->sock) {
        err_set(ENAMETOOLONG, "--nbd-socket %s: path too long", path);
        return A_FINAL;
    }
    snprintf(b->sock, sizeof b->sock, "%s", path);
    snprintf(id, sizeof id, NAME_PREFIX "%d-" EXT_TAG "probe", (int)getpid());
    if (probe_add(b->q, id, b->cfg->vols[0].node) < 0) {
        if (!qmp_is_open(b->q))
            return A_GONE;
        if (strstr(err_msg(), "not running")) {
            err_set(0, "--nbd-socket %s: QEMU runs no NBD server (start one listening there "
                       "with nbd-server-start, or leave --nbd-socket out and volmig starts "
                       "its own)", path);
            return A_FINAL;
        }
        err_prefix("--nbd-socket %s: a probe export of %s", path, b->cfg->vols[0].node);
        return A_RETRY;
    }
    listed = export_listed(b->sock, id, NULL);
    if (export_del(b->q, id) < 0)
        return qmp_att(b, A_RETRY);
    if (listed < 0) {
        err_prefix("--nbd-socket %s: cannot reach an NBD server there", path);
        return A_FINAL;
    }
    if (!listed) {
        err_set(0, "--nbd-socket %s: the NBD server there is not QEMU's (QEMU's export %s "
                   "does not show up on it)", path, id);
        return A_FINAL;
    }
    return A_OK;
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
    snprintf(id, sizeof id, NAME_PREFIX "%d-" EXT_TAG "orphan-probe", (int)getpid());
    if (qmp_callf(q, &nodes, dl(QMP_TIMEOUT_MS), "query-named-block-nodes", "{s:b}", "flat",
                  1) < 0)
        return 0;
    /* Any node takes a read-only export; the first few are tried in case
     * one is held in a way that refuses it. */
    json_array_foreach(nodes, i, e) {
        const char *node = json_string_value(json_object_get(e, "node-name"));

        if (i >= 8 || added)
            break;
        added = node && probe_add(q, id, node) == 0;
    }
    json_decref(nodes);
    if (!added)
        return 0;     /* no server running at all, most likely */
    listed = export_listed(sock, id, &count);
    if (export_del(q, id) == 0 && listed == 1 && count == 1 &&
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
    int n = sweep(q, is_dead, false, true);

    err_save(&saved);
    n += stop_orphan_server(q);
    err_restore(saved.errnum, saved.msg);
    remove_dead_sock_dirs();
    return n;
}

static enum att server_start(struct bm *b)
{
    json_t *addr;

    if (b->cfg->nbd_socket)
        return server_attach(b);
    snprintf(b->dir, sizeof b->dir, SOCK_PARENT "/" NAME_PREFIX "%d.XXXXXX", (int)getpid());
    if (!mkdtemp(b->dir)) {
        err_set(errno, "mkdtemp %s", b->dir);
        b->dir[0] = '\0';
        return A_FINAL;
    }
    snprintf(b->sock, sizeof b->sock, "%s/" SOCK_NAME, b->dir);
    /* QEMU 7.2 takes the legacy SocketAddress form here. */
    addr = json_pack("{s:s, s:{s:s}}", "type", "unix", "data", "path", b->sock);
    if (qmp_callf(b->q, NULL, dl(QMP_TIMEOUT_MS), "nbd-server-start", "{s:o}", "addr",
                  addr) < 0) {
        if (!qmp_is_open(b->q))
            return A_GONE;
        /* QEMU 7.2 runs one NBD server at most and cannot say where it
         * listens: only the caller can know that. */
        if (strstr(err_msg(), "already running"))
            err_prefix("QEMU already runs an NBD server and --mode bitmap needs one: if it "
                       "listens on a unix socket, name it with --nbd-socket PATH and volmig "
                       "adds its exports there; otherwise stop it (nbd-server-stop) or use "
                       "--mode mirror");
        else
            err_prefix("--mode bitmap starts an NBD server in QEMU");
        return A_FINAL;
    }
    b->server_started = true;
    return A_OK;
}

/* One transaction for every volume: a fresh bitmap gen+1 starts recording
 * and (gen >= 0) bitmap gen stops, at the same instant, so a write lands
 * in exactly one of them. */
static enum att switch_bitmaps(struct bm *b)
{
    json_t *actions = json_array();
    char name[96];

    for (int i = 0; i < b->cfg->nvols; i++) {
        const char *node = b->cfg->vols[i].node;

        bitmap_name(b, i, b->gen + 1, name, sizeof name);
        json_array_append_new(actions,
                              json_pack("{s:s, s:{s:s, s:s, s:b}}", "type",
                                        "block-dirty-bitmap-add", "data", "node", node, "name",
                                        name, "persistent", 0));
        if (b->gen < 0)
            continue;
        bitmap_name(b, i, b->gen, name, sizeof name);
        json_array_append_new(actions, json_pack("{s:s, s:{s:s, s:s}}", "type",
                                                 "block-dirty-bitmap-disable", "data", "node",
                                                 node, "name", name));
    }
    if (qmp_callf(b->q, NULL, dl(QMP_TIMEOUT_MS), "transaction", "{s:o}", "actions",
                  actions) < 0) {
        err_prefix("switching dirty bitmaps");
        return qmp_att(b, A_RETRY);
    }
    b->gen++;
    return A_OK;
}

/* Bytes marked in the bitmaps of generation gen, over all volumes. */
static int dirty_count(struct bm *b, int gen, uint64_t *count)
{
    json_t *nodes = NULL, *e, *bm;
    size_t i, j;
    char name[96];

    *count = 0;
    if (qmp_callf(b->q, &nodes, dl(QMP_TIMEOUT_MS), "query-named-block-nodes", "{s:b}", "flat",
                  1) < 0)
        return -1;
    for (int v = 0; v < b->cfg->nvols; v++) {
        bitmap_name(b, v, gen, name, sizeof name);
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

static enum att export_add(struct bm *b, int vol, int gen, bool with_bitmap, char *id, size_t len)
{
    json_t *args;
    char bname[96];

    export_name(b, vol, gen, id, len);
    args = json_pack("{s:s, s:s, s:s, s:s, s:b}", "type", "nbd", "id", id, "node-name",
                     b->cfg->vols[vol].node, "name", id, "writable", 0);
    if (with_bitmap) {
        bitmap_name(b, vol, gen, bname, sizeof bname);
        json_object_set_new(args, "bitmaps", json_pack("[s]", bname));
    }
    if (qmp_call(b->q, "block-export-add", args, NULL, dl(QMP_TIMEOUT_MS)) < 0) {
        err_prefix("exporting %s", b->cfg->vols[vol].node);
        return qmp_att(b, A_RETRY);
    }
    return A_OK;
}

/* ---- passes ---- */

struct progress_ctx {
    struct bm *b;
    int vol;
};

static void copy_progress(void *opaque, enum copy_event ev, const struct copy_status *st)
{
    struct progress_ctx *p = opaque;
    struct bm *b = p->b;
    json_t *vols;
    uint64_t done = 0, total = 0;
    char status[32];

    if (ev != COPY_EV_PROGRESS)
        return;
    vols = json_array();
    b->vol_done[p->vol] = st->done;
    snprintf(status, sizeof status, "pass %d", b->pass);
    for (int i = 0; i < b->cfg->nvols; i++) {
        json_array_append_new(vols, json_pack("{s:s, s:I, s:I, s:I, s:s}", "drive",
                                              b->cfg->vols[i].drive, "done",
                                              (json_int_t)b->vol_done[i], "total",
                                              (json_int_t)b->vol_todo[i], "remaining",
                                              (json_int_t)(b->vol_todo[i] - b->vol_done[i]),
                                              "status", status));
        done += b->vol_done[i];
        total += b->vol_todo[i];
    }
    emit(b, json_pack("{s:s, s:i, s:I, s:o, s:I, s:I, s:I, s:f, s:f}", "event", "progress",
                      "pass", b->pass, "dirty", (json_int_t)b->pass_dirty, "volumes", vols,
                      "done", (json_int_t)done, "total", (json_int_t)total, "remaining",
                      (json_int_t)(total - done), "rate", st->rate, "eta", st->eta));
}

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

/* Copies volume vol through export id: all of it (ranges NULL) or the
 * ranges. */
static enum att copy_volume(struct bm *b, int vol, const char *id, const struct copy_range *ranges,
                            size_t n, struct copy_status *st)
{
    char src[512], sock[3 * sizeof b->sock], tls_target[4200];
    const struct mig_volume *v = &b->cfg->vols[vol];
    struct progress_ctx pc = { b, vol };
    struct copy_config cc = {
        .source = src, .target = v->target, .connections = COPY_CONNECTIONS,
        .requests = COPY_REQUESTS, .tls = b->tls_on ? &b->tls : NULL,
        .max_rate = b->cfg->speed,
        .progress_ms = b->cfg->progress_ms, .cancel = b->cfg->cancel, .ranges = ranges,
        .nranges = n, .emit = copy_progress, .opaque = &pc,
    };
    enum copy_result r;

    uri_escape(b->sock, sock, sizeof sock);
    snprintf(src, sizeof src, "nbd+unix:///%s?socket=%s", id, sock);
    /* With TLS options every NBD target uses TLS, as in mirror mode: the
     * copier takes that from the URI's scheme (nbd:// becomes nbds://). */
    if (b->tls_on && v->uri.kind != URI_FILE && !v->uri.tls) {
        snprintf(tls_target, sizeof tls_target, "nbds%s", v->target + 3);
        cc.target = tls_target;
    }
    memset(st, 0, sizeof *st);
    r = copy_run(&cc, st);
    if (r == COPY_CANCELLED)
        return A_CANCELLED;
    if (r == COPY_FAILED) {
        struct err_saved saved;

        err_prefix("pass %d of drive '%s'", b->pass, b->cfg->vols[vol].drive);
        /* The export's connections die with QEMU: ask the monitor, so that
         * a dead QEMU is reported as such and not retried. */
        err_save(&saved);
        qmp_call(b->q, "query-status", NULL, NULL, dl(QMP_TIMEOUT_MS));
        err_restore(saved.errnum, saved.msg);
        return qmp_att(b, A_RETRY);
    }
    return A_OK;
}

/* Pass 0: everything, while bitmap generation 0 records. */
static enum att pass_full(struct bm *b)
{
    enum att a = switch_bitmaps(b);
    char id[96];
    struct copy_status st;
    uint64_t settled = 0;
    int64_t t = qmp_now_ms();

    if (a != A_OK)
        return a;
    b->pass_dirty = 0;
    for (int i = 0; i < b->cfg->nvols; i++) {
        b->vol_todo[i] = b->cfg->vols[i].size;
        b->vol_done[i] = 0;
        b->pass_dirty += b->cfg->vols[i].size;
    }
    for (int i = 0; i < b->cfg->nvols; i++) {
        a = export_add(b, i, b->gen, false, id, sizeof id);
        if (a != A_OK)
            return a;
        a = copy_volume(b, i, id, NULL, 0, &st);
        if (export_del(b->q, id) < 0 && a == A_OK)
            a = qmp_att(b, A_RETRY);
        if (a != A_OK)
            return a;
        settled += st.done;
        b->pass_data += st.data;
    }
    t = qmp_now_ms() - t;
    b->rate = t > 0 ? (double)settled * 1000.0 / (double)t : 0;
    emit(b, json_pack("{s:s, s:i, s:I, s:I, s:f, s:b}", "event", "pass", "pass", b->pass,
                      "dirty", (json_int_t)settled, "data", (json_int_t)b->pass_data, "seconds",
                      (double)t / 1000.0, "paused", 0));
    b->pass++;
    return A_OK;
}

/* Pass k: freeze the bitmap of the last pass, copy what it marks. */
static enum att pass_dirty(struct bm *b)
{
    enum att a = switch_bitmaps(b);
    int old = b->gen - 1;
    char id[96], bname[96];
    int64_t t = qmp_now_ms();

    if (a != A_OK)
        return a;
    b->pass_dirty = b->pass_data = 0;
    for (int i = 0; i < b->cfg->nvols; i++) {
        struct copy_range *r = NULL;
        size_t n = 0;
        uint64_t bytes = 0;
        struct copy_status st;

        a = export_add(b, i, old, true, id, sizeof id);
        if (a != A_OK)
            return a;
        bitmap_name(b, i, old, bname, sizeof bname);
        if (bitmap_dirty_ranges(b->sock, id, bname, b->cfg->vols[i].size, &r, &n, &bytes) < 0) {
            export_del(b->q, id);
            return qmp_att(b, A_RETRY);
        }
        b->vol_todo[i] = bytes;
        b->vol_done[i] = 0;
        b->pass_dirty += bytes;
        a = n ? copy_volume(b, i, id, r, n, &st) : A_OK;
        if (n)
            b->pass_data += st.data;
        free(r);
        if (export_del(b->q, id) < 0 && a == A_OK)
            a = qmp_att(b, A_RETRY);
        if (a != A_OK)
            return a;
        if (qmp_callf(b->q, NULL, dl(QMP_TIMEOUT_MS), "block-dirty-bitmap-remove", "{s:s, s:s}",
                      "node", b->cfg->vols[i].node, "name", bname) < 0)
            return qmp_att(b, A_RETRY);
    }
    t = qmp_now_ms() - t;
    emit(b, json_pack("{s:s, s:i, s:I, s:I, s:f, s:b}", "event", "pass", "pass", b->pass,
                      "dirty", (json_int_t)b->pass_dirty, "data", (json_int_t)b->pass_data,
                      "seconds", (double)t / 1000.0, "paused", b->paused_pass));
    b->pass++;
    return A_OK;
}

/* Live passes until the dirty set is small or stops shrinking. */
static enum att converge(struct bm *b)
{
    uint64_t threshold = bitmap_threshold(b->cfg->converge_below, b->rate);
    uint64_t prev = UINT64_MAX, dirty;

    for (;;) {
        enum bitmap_step s;
        enum att a;

        if (cancelled(b))
            return A_CANCELLED;
        if (dirty_count(b, b->gen, &dirty) < 0)
            return qmp_att(b, A_RETRY);
        s = bitmap_decide(b->pass - 1, dirty, prev, threshold);
        if (s != BM_PASS) {
            emit(b, json_pack("{s:s, s:s, s:I, s:I, s:i}", "event", "converged", "reason",
                              bitmap_step_name(s), "dirty", (json_int_t)dirty, "threshold",
                              (json_int_t)threshold, "passes", b->pass));
            if (s == BM_NOT_SHRINKING || s == BM_MAX_PASSES)
                emit(b, json_pack("{s:s, s:s}", "event", "warning", "message",
                                  s == BM_NOT_SHRINKING
                                  ? "the dirty set stopped shrinking: the guest writes as fast "
                                    "as the copy goes; pausing it for the last pass anyway"
                                  : "too many passes; pausing the guest for the last one"));
            return A_OK;
        }
        a = pass_dirty(b);
        if (a != A_OK)
            return a;
        prev = b->pass_dirty;
    }
}

/* With the guest paused: passes until one finds nothing new dirtied.  A
 * paused guest writes nothing, so that is normally one pass; more mean
 * something outside the guest still writes. */
static enum att final_passes(struct bm *b, int *n)
{
    uint64_t dirty = 0;

    b->paused_pass = true;
    for (*n = 0; *n < FINAL_MAX_PASSES; (*n)++) {
        enum att a = pass_dirty(b);

        if (a != A_OK)
            return a;
        if (dirty_count(b, b->gen, &dirty) < 0)
            return qmp_att(b, A_RETRY);
        if (dirty == 0) {
            (*n)++;
            return A_OK;
        }
    }
    err_set(0, "the drives were still written while the guest was paused (%llu bytes after %d "
               "passes): something outside the guest writes to them",
            (unsigned long long)dirty, FINAL_MAX_PASSES);
    return A_FINAL;
}

static const char *status_of(struct bm *b, const char *cmd, json_t **holder)
{
    if (qmp_call(b->q, cmd, NULL, holder, dl(QMP_TIMEOUT_MS)) < 0)
        return NULL;
    return json_string_value(json_object_get(*holder, "status"));
}

static void emit_paused(struct bm *b, int64_t from, int passes, json_t *extra)
{
    json_t *ev = json_pack("{s:s, s:f, s:i}", "event", "paused", "seconds",
                           (double)(qmp_now_ms() - from) / 1000.0, "final_passes", passes);

    if (extra)
        json_object_update(ev, extra);
    json_decref(extra);
    emit(b, ev);
}

static enum att switch_none(struct bm *b)
{
    json_t *h = NULL;
    const char *st = status_of(b, "query-status", &h);
    bool running = st && !strcmp(st, "running");
    int64_t from;
    int n = 0;
    enum att a;

    json_decref(h);
    if (!st)
        return qmp_att(b, A_RETRY);
    emit(b, json_pack("{s:s, s:s}", "event", "switchover", "mode", "none"));
    from = qmp_now_ms();
    if (running) {
        if (qmp_call(b->q, "stop", NULL, NULL, dl(QMP_TIMEOUT_MS)) < 0)
            return qmp_att(b, A_RETRY);
        b->stopped = true;
    }
    a = final_passes(b, &n);
    if (a != A_OK)
        return a;
    /* Nothing of ours is needed any more: remove it while paused, so the
     * guest resumes without our bitmaps slowing its writes. */
    sweep(b->q, is_mine, b->server_started, false);
    b->server_started = false;
    if (b->stopped) {
        if (qmp_call(b->q, "cont", NULL, NULL, dl(QMP_TIMEOUT_MS)) < 0)
            return qmp_att(b, A_RETRY);
        b->stopped = false;
    }
    emit_paused(b, from, n, running ? NULL : json_pack("{s:s}", "note",
                                                       "the VM was not running: no pause"));
    return A_OK;
}

static enum att switch_migrate(struct bm *b)
{
    json_t *last = NULL, *extra;
    enum att a;
    int64_t from;
    int n = 0;

    emit(b, json_pack("{s:s, s:s}", "event", "switchover", "mode", "migrate"));
    a = (enum att)run_migration_start(b->r, NULL);
    if (a != A_OK)
        return a;
    /* The guest is paused from here until the migration completes. */
    from = qmp_now_ms();
    a = final_passes(b, &n);
    if (a != A_OK)
        return a;
    sweep(b->q, is_mine, b->server_started, false);
    b->server_started = false;
    extra = json_pack("{s:f}", "blocks_finished_in", (double)(qmp_now_ms() - from) / 1000.0);
    a = (enum att)run_migration_continue(b->r, &last);
    if (a != A_OK) {
        json_decref(extra);
        return a;
    }
    /* QEMU's own figure for the whole stop-and-copy phase, memory included. */
    if (json_object_get(last, "downtime"))
        json_object_set(extra, "qemu_downtime_ms", json_object_get(last, "downtime"));
    json_decref(last);
    emit_paused(b, from, n, extra);
    return A_OK;
}

/* Every target is looked at before anything is copied, so that a bad
 * second volume fails the run before the first one is written.  A file
 * target that does not exist yet is created by the copier, at the drive's
 * size. */
static enum att check_targets(struct bm *b)
{
    for (int i = 0; i < b->cfg->nvols; i++) {
        struct mig_volume *v = &b->cfg->vols[i];
        bool blockdev;

        if (v->uri.kind == URI_FILE) {
            if (probe_file_target(v->uri.path, &v->target_size, &blockdev) < 0) {
                if (err_errno() == ENOENT)
                    continue;
                err_prefix("drive '%s'", v->drive);
                return A_FINAL;
            }
        } else if (probe_nbd_target(&v->uri, b->tls_on ? &b->tls : NULL, TARGET_PROBE_MS,
                                    &v->target_size) < 0) {
            err_prefix("drive '%s'", v->drive);
            return A_RETRY;     /* as in mirror mode: it may be on its way */
        }
        if (probe_fits(v->target, v->target_size, v->drive, v->size) < 0)
            return A_FINAL;
    }
    return A_OK;
}

static enum att attempt_once(struct bm *b, int attempt)
{
    json_t *vols = json_array();
    enum att a;

    b->gen = -1;
    b->pass = 0;
    b->paused_pass = false;
    b->pass_data = 0;
    for (int i = 0; i < b->cfg->nvols; i++) {
        struct mig_volume *v = &b->cfg->vols[i];

        json_array_append_new(vols, json_pack("{s:s, s:s, s:s, s:I}", "drive", v->drive, "node",
                                              v->node, "target", v->target, "size",
                                              (json_int_t)v->size));
    }
    a = check_targets(b);
    if (a == A_OK)
        a = server_start(b);
    if (a != A_OK) {
        json_decref(vols);
        return a;
    }
    emit(b, json_pack("{s:s, s:i, s:o, s:s, s:s}", "event", "started", "attempt", attempt + 1,
                      "volumes", vols, "copy_mode", "bitmap", "mode", "bitmap"));
    a = pass_full(b);
    if (a == A_OK)
        a = converge(b);
    if (a == A_OK && cancelled(b))
        a = A_CANCELLED;
    if (a != A_OK)
        return a;
    emit(b, json_pack("{s:s, s:s}", "event", "ready", "mode", "bitmap"));
    return b->cfg->switchover == MIG_SW_MIGRATE ? switch_migrate(b) : switch_none(b);
}

/* ---- the strategy ---- */

static int bitmap_init(struct mig_run *r)
{
    struct mig_config *cfg = r->cfg;
    struct bm *b;

    if (cfg->switchover == MIG_SW_PIVOT) {
        err_set(0, "--mode bitmap does not pivot (QEMU would have to reopen the drive on the "
                   "target): use --switchover none or migrate:URI, or --mode mirror");
        return -1;
    }
    if (cfg->tls_hostname) {
        /* libnbd checks the certificate against the URI's host and cannot
         * be told another name; skipping the check would send the data to
         * whoever answers. */
        err_set(0, "--mode bitmap cannot check a certificate against --tls-hostname: name the "
                   "certificate's host in the target URI, or use --mode mirror");
        return -1;
    }
    b = calloc(1, sizeof *b);
    if (!b) {
        err_set(ENOMEM, "bitmap state");
        return -1;
    }
    r->state = b;
    b->r = r;
    b->cfg = cfg;
    b->q = r->q;
    if (cfg->tls_creds || cfg->tls_psk) {
        if (client_tls_init(&b->tls, cfg->tls_creds, cfg->tls_psk, NULL) < 0)
            return -1;
        b->tls_on = true;
    }
    b->vol_done = calloc((size_t)cfg->nvols, sizeof *b->vol_done);
    b->vol_todo = calloc((size_t)cfg->nvols, sizeof *b->vol_todo);
    if (!b->vol_done || !b->vol_todo) {
        err_set(ENOMEM, "volume state");
        return -1;
    }
    return 0;
}

static enum attempt bitmap_attempt(struct mig_run *r, int attempt)
{
    return (enum attempt)attempt_once(r->state, attempt);
}

static void bitmap_cleanup(struct mig_run *r)
{
    cleanup(r->state);
}

static void bitmap_complete(struct mig_run *r, json_t *completed)
{
    struct bm *b = r->state;

    cleanup(b);
    json_object_set_new(completed, "passes", json_integer(b->pass));
}

static void bitmap_finish(struct mig_run *r, enum mig_result res)
{
    struct bm *b = r->state;

    (void)res;
    if (!b)
        return;
    remove_own_sock_dir(b);
    free(b->vol_done);
    free(b->vol_todo);
    free(b);
    r->state = NULL;
}

const struct mig_strategy mig_bitmap = {
    .name = "bitmap",
    .init = bitmap_init,
    .attempt = bitmap_attempt,
    .cleanup = bitmap_cleanup,
    .complete = bitmap_complete,
    .finish = bitmap_finish,
};
