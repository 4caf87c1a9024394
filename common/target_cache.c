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
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  /* Linux 5.14 */
#endif

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

/* Maps the whole volume read-only, for target_cache_lend().  A source
 * that another process may truncate (force_share) is not mapped: touching
 * a page past its new end would kill the copy with SIGBUS, where a read
 * only comes back short. */
static void target_cache_map(struct target *t)
{
    void *p;

    if (t->shared || t->size == 0 || t->size > SIZE_MAX)
        return;
    p = mmap(NULL, (size_t)t->size, PROT_READ, MAP_SHARED, t->cache_fd, 0);
    if (p == MAP_FAILED)
        return;
    /* A page that left the cache between cachestat(2) and the fault is
     * read alone, without readahead around it. */
    madvise(p, (size_t)t->size, MADV_RANDOM);
    t->map = p;
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
    target_cache_map(t);
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

const uint8_t *target_cache_lend(const struct target *t, uint64_t off, uint64_t len)
{
    uint64_t start;

    if (!t->map || off >= t->size || !target_cache_holds(t, off, len))
        return NULL;
    if (len > t->size - off)
        len = t->size - off;
    /* The page tables are filled in one call instead of one fault per few
     * pages while the bytes are sent. */
    start = off / t->page_size * t->page_size;
    madvise((void *)(t->map + start), (size_t)(off + len - start), MADV_POPULATE_READ);
    return t->map + off;
}

void target_cache_unlend(const struct target *t, uint64_t off, uint64_t len)
{
    uint64_t start;

    if (!t->map || off >= t->size)
        return;
    if (len > t->size - off)
        len = t->size - off;
    /* Only the page table entries go, the pages stay in the cache.  A
     * page mapped by a process is one the kernel is slow to reclaim, so
     * leaving them all mapped until the end would make the copy weigh on
     * the cache more than a read does.  (Populating may map a large folio
     * whole, so a few pages next to the range can stay mapped until the
     * mapping goes at the end.) */
    start = off / t->page_size * t->page_size;
    madvise((void *)(t->map + start), (size_t)(off + len - start), MADV_DONTNEED);
}

void target_cache_close(struct target *t)
{
    if (t->map)
        munmap((void *)t->map, (size_t)t->size);
    t->map = NULL;
    if (t->cache_fd >= 0)
        close(t->cache_fd);
    t->cache_fd = -1;
}
