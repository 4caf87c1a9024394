/* Target volumes for io_uring I/O: a regular file, a block device, or the
 * null target (reads zeroes, discards writes) for benchmarks.
 *
 * Opening probes what the volume can do (O_DIRECT and its alignment,
 * SEEK_DATA, hole punching, zeroing) and later I/O latches off what the
 * kernel turns out not to support, so each fallback is paid once.
 */
#ifndef VOLMIG_TARGET_H
#define VOLMIG_TARGET_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

enum target_kind { TARGET_FILE, TARGET_BLOCK, TARGET_NULL };

struct target {
    enum target_kind kind;
    int fd;
    char path[4096];
    uint64_t size;        /* bytes the volume holds */
    uint32_t block_size;  /* alignment O_DIRECT needs; 1 when buffered */
    bool direct;
    bool readonly;
    char why_buffered[128]; /* when direct was wanted but not used */
    /* Capability latches, cleared on the first EOPNOTSUPP. */
    bool can_punch;       /* FALLOC_FL_PUNCH_HOLE reads back as zeroes */
    bool can_zero_range;  /* FALLOC_FL_ZERO_RANGE */
    bool can_seek_data;   /* SEEK_DATA/SEEK_HOLE find holes */
    int fixed_index;      /* registered buffer index, -1 if none */
    /* A buffered twin of an O_DIRECT source, for the ranges the page cache
     * holds in full (target_cache_open); -1 when there is none, and then
     * why_uncached says why. */
    int cache_fd;
    uint32_t page_size;
    char why_uncached[64];
    /* The whole volume mapped read-only from the twin, so that resident
     * ranges can be lent without a copy (target_cache_lend); NULL when
     * there is no twin, or the volume is shared with a writer. */
    const uint8_t *map;
    bool shared;          /* opened with force_share */
};

struct target_extent {
    uint64_t offset;
    uint64_t length;
    bool hole;            /* reads as zeroes and is not allocated */
};

/* Opens PATH ("null:" for the null target).  export_size (0: unknown yet)
 * lets it drop O_DIRECT when the export would end mid-block.  The volume is
 * locked as QEMU locks its images (target_lock) for as long as it is open:
 * a volume another process holds with a conflicting permission is refused.
 * force_share (read-only only) reads it anyway, as qemu-img's
 * --force-share does.  -1 with err_msg() set. */
int target_open(struct target *t, const char *path, bool readonly, bool direct,
                uint64_t export_size, bool force_share);
void target_close(struct target *t);

/* Opens the buffered twin of an O_DIRECT read-only target, when the
 * kernel can tell what the page cache holds (cachestat, Linux 6.5).
 * Never fails: without it every read stays O_DIRECT. */
void target_cache_open(struct target *t);
/* True when every page of [off, off+len) within the volume is in the page
 * cache, so a buffered read of it costs no device I/O. */
bool target_cache_holds(const struct target *t, uint64_t off, uint64_t len);
void target_cache_prep_read(const struct target *t, struct io_uring_sqe *sqe, void *buf,
                            uint32_t len, uint64_t off);
/* The bytes of [off, off+len) as the page cache holds them, without a
 * copy: a pointer into the read-only mapping when every page of the range
 * is resident, NULL otherwise (read it then).  The pages stay mapped until
 * target_cache_unlend() of the same range. */
const uint8_t *target_cache_lend(const struct target *t, uint64_t off, uint64_t len);
void target_cache_unlend(const struct target *t, uint64_t off, uint64_t len);
void target_cache_close(struct target *t);

/* Takes part in QEMU's image locking on t->fd: a reader needs "consistent
 * read", a writer that and "write", and both share only "consistent read"
 * and "write unchanged", as qemu-img does; force_share needs and refuses
 * nothing.  -1 with err_msg() naming the permission and the process that
 * holds it (as "COMMAND (pid N)" when /proc shows it). */
int target_lock(struct target *t, bool force_share);

/* Describes [off, off+len) in at most max extents that cover it exactly;
 * past max, the rest is reported as one data extent.  Never fails: what it
 * cannot tell is data. */
int target_extents(struct target *t, uint64_t off, uint64_t len,
                   struct target_extent *e, int max);

void target_prep_read(const struct target *t, struct io_uring_sqe *sqe, void *buf,
                      uint32_t len, uint64_t off);
void target_prep_write(const struct target *t, struct io_uring_sqe *sqe, const void *buf,
                       uint32_t len, uint64_t off, bool fua);
/* mode: FALLOC_FL_PUNCH_HOLE or FALLOC_FL_ZERO_RANGE (KEEP_SIZE is added). */
void target_prep_fallocate(const struct target *t, struct io_uring_sqe *sqe, int mode,
                           uint64_t off, uint64_t len);
/* The one zero-fallback latch: a fallocate of mode (FALLOC_FL_PUNCH_HOLE or
 * FALLOC_FL_ZERO_RANGE) ended with res.  When res says the volume cannot
 * do it (EOPNOTSUPP, ENOTTY; EINVAL only from a block device, whose
 * drivers say so that way, while on a file it is a real error), the
 * method is latched off for good and true is returned: zero again with
 * what is left (the other method, or writing zeroes). */
bool target_zero_unsupported(struct target *t, int mode, int64_t res);
void target_prep_flush(const struct target *t, struct io_uring_sqe *sqe);
/* Synchronous fdatasync, for shutdown.  -1 with err_msg() set. */
int target_flush_sync(struct target *t);

#endif
