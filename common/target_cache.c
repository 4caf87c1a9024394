/* Reads that use the page cache where it already holds the data.
 *
 * A source read with O_DIRECT never profits from the page cache: a volume
 * that was just written (or read) is read again from the device, after
 * the kernel has written back whatever of it was dirty.  A buffered read
 * profits from a warm cache but, with a cold one, fills the cache with
 * the whole volume and evicts what the host needed, and is slower.  So a
 * source keeps both: its O_DIRECT descriptor, and a buffered twin for the
 * ranges that cachestat(2) says are resident in full.  The twin never
 * brings a page in that was not there (readahead is off on it, and it is
 * only asked for resident ranges), so the copy leaves the cache as it found
 * it.
 *
 * cachestat(2) arrived in Linux 6.5; Debian 12's headers predate it, so
 * the call goes through syscall(2) with its number and structures here.
 * Where the kernel lacks it, the twin is closed and every read stays
 * O_DIRECT, as before.
 */
#include "common/target.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_cachestat
#define __NR_cachestat 451     /* the same on every architecture */
#endif

struct cs_range {
    uint64_t off, len;
};

struct cs_stat {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

static int cachestat(int fd, uint64_t off, uint64_t len, struct cs_stat *cs)
{
    struct cs_range r = { off, len };

    return (int)syscall(__NR_cachestat, fd, &r, cs, 0);
}

void target_cache_open(struct target *t)
{
    struct cs_stat cs;
    int fd;

    t->cache_fd = -1;
    if (!t->direct || !t->readonly || t->kind == TARGET_NULL)
        return;
    if (cachestat(t->fd, 0, 4096, &cs) < 0) {
        snprintf(t->why_uncached, sizeof t->why_uncached, "no cachestat(2): %s",
                 errno == ENOSYS ? "kernel older than 6.5" : "refused");
        return;
    }
    fd = open(t->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(t->why_uncached, sizeof t->why_uncached, "buffered open failed");
        return;
    }
    /* No readahead: a read of resident pages must not pull in the pages
     * after them. */
    posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
    t->cache_fd = fd;
    t->page_size = (uint32_t)sysconf(_SC_PAGESIZE);
}

bool target_cache_holds(const struct target *t, uint64_t off, uint64_t len)
{
    struct cs_stat cs;
    uint64_t first, pages;

    if (t->cache_fd < 0 || !len)
        return false;
    /* Past the end of the volume nothing is cached, and nothing needs to
     * be: count only the pages that exist. */
    if (off >= t->size)
        return false;
    if (len > t->size - off)
        len = t->size - off;
    first = off / t->page_size;
    pages = (off + len + t->page_size - 1) / t->page_size - first;
    if (cachestat(t->cache_fd, first * t->page_size, pages * t->page_size, &cs) < 0)
        return false;
    return cs.nr_cache >= pages;
}

void target_cache_close(struct target *t)
{
    if (t->cache_fd >= 0)
        close(t->cache_fd);
    t->cache_fd = -1;
}
