/* QEMU's image locking protocol, as volmig takes part in it.
 *
 * QEMU, qemu-img and qemu-nbd hold open-file-description (OFD) read locks
 * on single bytes of every image file or block device they open: byte
 * 100 + n while they hold permission n, and byte 200 + n while they refuse
 * to share permission n with anybody else.  Before it uses an image, an
 * opener locks its own bytes and then tests, with a write-lock probe, the
 * bytes that would conflict: 200 + n for each permission it needs (someone
 * refuses to share it) and 100 + n for each permission it does not share
 * (someone holds it).  A running VM holds "write" and shares it with
 * nobody, so a second writer or a consistent reader is turned away.
 *
 * volmig opens its volumes the way qemu-img opens an image: a reader needs
 * "consistent read"; a writer needs "consistent read" and "write"; both
 * share only "consistent read" and "write unchanged".  A forced share (the
 * read-only case, like qemu-img's --force-share) needs and refuses nothing,
 * so it takes no lock and tests none.
 *
 * The locks belong to the file description of t->fd and vanish with it:
 * they are held exactly as long as the target is open, which is what keeps
 * QEMU from opening a volume volmig is writing.
 */
#include "common/target.h"
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

#define LOCK_PERM_BASE   100
#define LOCK_SHARED_BASE 200

/* QEMU's BLK_PERM_* bits, in the order of their lock bytes. */
enum {
    PERM_CONSISTENT_READ = 1u << 0,
    PERM_WRITE = 1u << 1,
    PERM_WRITE_UNCHANGED = 1u << 2,
    PERM_RESIZE = 1u << 3,
    PERM_COUNT = 4,
    PERM_ALL = (1u << PERM_COUNT) - 1,
};

static const char *const perm_names[PERM_COUNT] = {
    "consistent read", "write", "write unchanged", "resize",
};

/* The permission bits (QEMU's BLK_PERM_*) an open needs and shares. */
static void lock_perms(bool readonly, bool force_share, unsigned *perm, unsigned *shared)
{
    if (force_share) {
        *perm = 0;
        *shared = PERM_ALL;
        return;
    }
    *perm = PERM_CONSISTENT_READ | (readonly ? 0 : PERM_WRITE);
    *shared = PERM_CONSISTENT_READ | PERM_WRITE_UNCHANGED;
}

static int lock_byte(int fd, off_t byte)
{
    struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1 };

    return fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

/* 1: another open file description holds a lock on the byte; 0: nobody
 * does; -errno when the test itself failed. */
static int byte_taken(int fd, off_t byte)
{
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1 };

    if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
        return -errno;
    return fl.l_type != F_UNLCK;
}

/* Does the lock line "N: OFDLCK ADVISORY READ -1 MAJ:MIN:INO START END"
 * from /proc/PID/fdinfo cover BYTE? */
static bool lock_line_covers(const char *line, off_t byte)
{
    long long start, end;
    const char *p = strrchr(line, ':');   /* the one before the inode */
    char endtok[32];

    if (!p || sscanf(p + 1, "%*s %lld %31s", &start, endtok) != 2)
        return false;
    if (!strcmp(endtok, "EOF"))
        return byte >= start;
    end = strtoll(endtok, NULL, 10);
    return byte >= start && byte <= end;
}

/* Does this open file of process PID hold a lock covering BYTE? */
static bool fd_locks_byte(const char *pid, const char *fd, off_t byte)
{
    char path[64], line[256];
    bool found = false;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%s/fdinfo/%s", pid, fd);
    f = fopen(path, "re");
    if (!f)
        return false;
    while (!found && fgets(line, sizeof line, f))
        found = !strncmp(line, "lock:", 5) && lock_line_covers(line, byte);
    fclose(f);
    return found;
}

static bool pid_locks_byte(const char *pid, const struct stat *img, off_t byte)
{
    char path[64];
    struct dirent *d;
    bool found = false;
    DIR *fds;

    snprintf(path, sizeof path, "/proc/%s/fd", pid);
    fds = opendir(path);
    if (!fds)
        return false;
    while (!found && (d = readdir(fds))) {
        char link[128];
        struct stat st;

        if (d->d_name[0] == '.')
            continue;
        snprintf(link, sizeof link, "/proc/%s/fd/%s", pid, d->d_name);
        found = stat(link, &st) == 0 && st.st_dev == img->st_dev && st.st_ino == img->st_ino &&
                st.st_rdev == img->st_rdev && fd_locks_byte(pid, d->d_name, byte);
    }
    closedir(fds);
    return found;
}

/* Names the process that holds BYTE of the image open on FD, as
 * "COMMAND (pid N)", from /proc.  OFD locks carry no owner (F_OFD_GETLK
 * and /proc/locks say -1), but /proc/PID/fdinfo lists the locks of each
 * open file.  Falls back to "another process" when /proc shows nobody (a
 * holder in another PID namespace, or one that went away). */
static void find_holder(int fd, off_t byte, char *out, size_t outlen)
{
    struct stat img;
    struct dirent *d;
    DIR *proc;

    snprintf(out, outlen, "another process");
    if (fstat(fd, &img) < 0 || !(proc = opendir("/proc")))
        return;
    while ((d = readdir(proc))) {
        char comm_path[64], comm[64] = "?";
        FILE *f;

        if (!isdigit((unsigned char)d->d_name[0]) || !pid_locks_byte(d->d_name, &img, byte))
            continue;
        snprintf(comm_path, sizeof comm_path, "/proc/%s/comm", d->d_name);
        if ((f = fopen(comm_path, "re"))) {
            if (fgets(comm, sizeof comm, f))
                comm[strcspn(comm, "\n")] = '\0';
            fclose(f);
        }
        snprintf(out, outlen, "%s (pid %s)", comm, d->d_name);
        break;
    }
    closedir(proc);
}

static int refuse(const struct target *t, off_t byte, bool shared_lock, unsigned bit)
{
    char holder[128];

    find_holder(t->fd, byte, holder, sizeof holder);
    if (shared_lock)
        err_set(0, "%s: Failed to get shared \"%s\" lock: %s holds \"%s\" on it%s",
                t->path, perm_names[bit], holder, perm_names[bit],
                t->readonly ? " (--force-share reads it anyway, without consistency)" : "");
    else
        err_set(0, "%s: Failed to get \"%s\" lock: %s has it open and does not share \"%s\"",
                t->path, perm_names[bit], holder, perm_names[bit]);
    return -1;
}

/* Tests one conflicting byte: 0 free, -1 taken or untestable, with the
 * message set. */
static int check_byte(const struct target *t, unsigned byte, bool shared_lock, unsigned bit)
{
    int r = byte_taken(t->fd, byte);

    if (r < 0) {
        err_set(-r, "%s: test QEMU's image lock byte %u", t->path, byte);
        return -1;
    }
    return r ? refuse(t, byte, shared_lock, bit) : 0;
}

int target_lock(struct target *t, bool force_share)
{
    unsigned perm, shared, bit;
    int r = 0;

    if (t->kind == TARGET_NULL)
        return 0;
    lock_perms(t->readonly, force_share, &perm, &shared);
    /* Our own bytes first, then the test, in QEMU's order: of two openers
     * racing, at least one sees the other's bytes and backs off; never do
     * both go ahead. */
    for (bit = 0; bit < PERM_COUNT && r == 0; bit++) {
        if (perm & (1u << bit))
            r = lock_byte(t->fd, LOCK_PERM_BASE + bit);
        if (r == 0 && !(shared & (1u << bit)))
            r = lock_byte(t->fd, LOCK_SHARED_BASE + bit);
    }
    if (r < 0) {
        err_set(-r, "%s: take QEMU's image lock", t->path);
        return -1;
    }
    for (bit = 0; bit < PERM_COUNT; bit++) {
        if ((perm & (1u << bit)) && check_byte(t, LOCK_SHARED_BASE + bit, false, bit) < 0)
            return -1;
        if (!(shared & (1u << bit)) && check_byte(t, LOCK_PERM_BASE + bit, true, bit) < 0)
            return -1;
    }
    return 0;
}
