#include "common/target.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reads one block at offset 0 with O_DIRECT to learn whether the file
 * system takes direct I/O at that alignment (tmpfs and some FUSE file
 * systems open with O_DIRECT but fail every read). */
static bool direct_read_works(int fd, uint32_t bs)
{
    void *buf;
    ssize_t r;

    if (posix_memalign(&buf, 4096, bs))
        return false;
    r = pread(fd, buf, bs, 0);
    free(buf);
    return r >= 0;
}

static int open_fd(struct target *t, bool direct)
{
    int flags = (t->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | (direct ? O_DIRECT : 0);
    int fd = open(t->path, flags);

    if (fd < 0)
        return -errno;
    if (t->fd >= 0)
        close(t->fd);
    t->fd = fd;
    t->direct = direct;
    return 0;
}

static void go_buffered(struct target *t, const char *why)
{
    if (open_fd(t, false) == 0) {
        t->block_size = 1;
        snprintf(t->why_buffered, sizeof t->why_buffered, "%s", why);
    }
}

static int probe_size(struct target *t)
{
    struct stat st;

    if (fstat(t->fd, &st) < 0) {
        err_set(errno, "stat %s", t->path);
        return -1;
    }
    if (S_ISBLK(st.st_mode)) {
        int lbs = 512;

        t->kind = TARGET_BLOCK;
        if (ioctl(t->fd, BLKGETSIZE64, &t->size) < 0) {
            err_set(errno, "BLKGETSIZE64 on %s", t->path);
            return -1;
        }
        if (ioctl(t->fd, BLKSSZGET, &lbs) == 0 && lbs > 0)
            t->block_size = (uint32_t)lbs;
        t->can_seek_data = false;
    } else if (S_ISREG(st.st_mode)) {
        t->kind = TARGET_FILE;
        t->size = (uint64_t)st.st_size;
        t->can_seek_data = true;
    } else {
        err_set(0, "%s is neither a regular file nor a block device", t->path);
        return -1;
    }
    return 0;
}

static int open_probe(struct target *t, const char *path, bool readonly, bool direct,
                      uint64_t export_size)
{
    int r;

    memset(t, 0, sizeof *t);
    t->fd = -1;
    t->cache_fd = -1;
    t->fixed_index = -1;
    t->readonly = readonly;
    t->block_size = 512;
    t->can_punch = t->can_zero_range = true;

    if (!strcmp(path, "null:")) {
        /* /dev/zero reads zeroes and swallows writes: a volume with no
         * storage cost, so benchmarks measure the server alone. */
        snprintf(t->path, sizeof t->path, "/dev/zero");
        t->kind = TARGET_NULL;
        t->size = UINT64_MAX / 2;
        t->can_punch = t->can_zero_range = false;
        if (open_fd(t, false) < 0) {
            err_set(errno, "open /dev/zero");
            return -1;
        }
        t->block_size = 1;
        return 0;
    }
    if (strlen(path) >= sizeof t->path) {
        err_set(ENAMETOOLONG, "target path");
        return -1;
    }
    snprintf(t->path, sizeof t->path, "%s", path);
    r = open_fd(t, direct);
    if (r == -EINVAL && direct) {
        r = open_fd(t, false);
        snprintf(t->why_buffered, sizeof t->why_buffered, "the file system refuses O_DIRECT");
    }
    if (r < 0) {
        err_set(-r, "open %s", path);
        return -1;
    }
    if (probe_size(t) < 0) {
        target_close(t);
        return -1;
    }
    if (!t->direct) {
        t->block_size = 1;
        return 0;
    }
    /* Regular files: the device's logical block size is not at hand, so
     * probe 512 and then 4096, the two sizes direct I/O asks for. */
    if (t->size >= 4096 && !direct_read_works(t->fd, t->block_size)) {
        if (t->kind == TARGET_FILE && direct_read_works(t->fd, 4096))
            t->block_size = 4096;
        else
            go_buffered(t, "direct reads fail on this file system");
    }
    /* No size asked for: the export is the whole volume. */
    if (!export_size)
        export_size = t->size;
    if (t->direct && export_size % t->block_size)
        go_buffered(t, "the export size is not a multiple of the block size");
    return 0;
}

int target_open(struct target *t, const char *path, bool readonly, bool direct,
                uint64_t export_size, bool force_share)
{
    if (force_share && !readonly) {
        err_set(0, "%s: a shared open is for reading only", path);
        return -1;
    }
    if (open_probe(t, path, readonly, direct, export_size) < 0)
        return -1;
    t->shared = force_share;
    /* Locked last: the probe may have reopened the file without O_DIRECT,
     * and the locks belong to the open file description that stays. */
    if (target_lock(t, force_share) < 0) {
        target_close(t);
        return -1;
    }
    return 0;
}

void target_close(struct target *t)
{
    target_cache_close(t);
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
}

int target_extents(struct target *t, uint64_t off, uint64_t len,
                   struct target_extent *e, int max)
{
    uint64_t end = off + len, pos = off;
    int n = 0;

    while (pos < end && t->can_seek_data && n < max - 1) {
        off_t data = lseek(t->fd, (off_t)pos, SEEK_DATA), hole;

        if (data < 0 && errno == ENXIO) {
            data = (off_t)end;    /* nothing but hole up to the end of file */
        } else if (data < 0) {
            if (errno == EINVAL || errno == EOPNOTSUPP)
                t->can_seek_data = false;
            break;
        }
        if ((uint64_t)data > pos) {
            uint64_t hend = (uint64_t)data < end ? (uint64_t)data : end;

            e[n++] = (struct target_extent){ pos, hend - pos, true };
            pos = hend;
            continue;
        }
        hole = lseek(t->fd, (off_t)pos, SEEK_HOLE);
        if (hole < 0)
            break;
        if ((uint64_t)hole > end)
            hole = (off_t)end;
        e[n++] = (struct target_extent){ pos, (uint64_t)hole - pos, false };
        pos = (uint64_t)hole;
    }
    if (pos < end)
        e[n++] = (struct target_extent){ pos, end - pos, false };
    return n;
}

static void prep_read(const struct target *t, int fd, struct io_uring_sqe *sqe, void *buf,
                      uint32_t len, uint64_t off)
{
    if (t->fixed_index >= 0)
        io_uring_prep_read_fixed(sqe, fd, buf, len, off, t->fixed_index);
    else
        io_uring_prep_read(sqe, fd, buf, len, off);
}

void target_prep_read(const struct target *t, struct io_uring_sqe *sqe, void *buf,
                      uint32_t len, uint64_t off)
{
    prep_read(t, t->fd, sqe, buf, len, off);
}

/* The registered buffers belong to the ring, not to a descriptor, so the
 * buffered twin reads into them as well. */
void target_cache_prep_read(const struct target *t, struct io_uring_sqe *sqe, void *buf,
                            uint32_t len, uint64_t off)
{
    prep_read(t, t->cache_fd, sqe, buf, len, off);
}

void target_prep_write(const struct target *t, struct io_uring_sqe *sqe, const void *buf,
                       uint32_t len, uint64_t off, bool fua)
{
    if (t->fixed_index >= 0)
        io_uring_prep_write_fixed(sqe, t->fd, buf, len, off, t->fixed_index);
    else
        io_uring_prep_write(sqe, t->fd, buf, len, off);
    /* FUA: the data is durable when the write completes, no flush needed. */
    if (fua)
        sqe->rw_flags = RWF_DSYNC;
}

void target_prep_fallocate(const struct target *t, struct io_uring_sqe *sqe, int mode,
                           uint64_t off, uint64_t len)
{
    io_uring_prep_fallocate(sqe, t->fd, mode | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
}

void target_prep_flush(const struct target *t, struct io_uring_sqe *sqe)
{
    if (t->kind == TARGET_NULL)
        io_uring_prep_nop(sqe);
    else
        io_uring_prep_fsync(sqe, t->fd, IORING_FSYNC_DATASYNC);
}

int target_flush_sync(struct target *t)
{
    if (t->kind == TARGET_NULL || t->readonly)
        return 0;
    if (fdatasync(t->fd) < 0) {
        err_set(errno, "fdatasync %s", t->path);
        return -1;
    }
    return 0;
}

bool target_zero_unsupported(struct target *t, int mode, int64_t res)
{
    if (res != -EOPNOTSUPP && res != -ENOTTY && !(res == -EINVAL && t->kind == TARGET_BLOCK))
        return false;
    if (mode == FALLOC_FL_PUNCH_HOLE)
        t->can_punch = false;
    else
        t->can_zero_range = false;
    return true;
}
