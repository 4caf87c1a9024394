#include "common/bufpool.h"
#include "common/error.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

static size_t chunks_for(size_t len)
{
    return (len + BUFPOOL_CHUNK - 1) / BUFPOOL_CHUNK;
}

static int bit(const struct bufpool *p, size_t i)
{
    return (int)(p->used[i / 64] >> (i % 64) & 1);
}

static void set_bits(struct bufpool *p, size_t first, size_t n, int on)
{
    for (size_t i = first; i < first + n; i++) {
        if (on)
            p->used[i / 64] |= 1ULL << (i % 64);
        else
            p->used[i / 64] &= ~(1ULL << (i % 64));
    }
}

int bufpool_init(struct bufpool *p, size_t size)
{
    p->nchunks = chunks_for(size);
    p->size = p->nchunks * BUFPOOL_CHUNK;
    p->nfree = p->nchunks;
    p->used = calloc((p->nchunks + 63) / 64, sizeof *p->used);
    if (!p->used) {
        err_set(ENOMEM, "buffer pool bitmap");
        return -1;
    }
    p->base = mmap(NULL, p->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p->base == MAP_FAILED) {
        err_set(errno, "mmap of a %zu-byte buffer pool", p->size);
        free(p->used);
        return -1;
    }
    return 0;
}

void bufpool_destroy(struct bufpool *p)
{
    if (p->base && p->base != MAP_FAILED)
        munmap(p->base, p->size);
    free(p->used);
    p->base = NULL;
    p->used = NULL;
}

void *bufpool_alloc(struct bufpool *p, size_t len)
{
    size_t need = chunks_for(len ? len : 1), run = 0;

    if (need > p->nfree)
        return NULL;
    for (size_t i = 0; i < p->nchunks; i++) {
        if (bit(p, i)) {
            run = 0;
            continue;
        }
        if (++run == need) {
            size_t first = i + 1 - need;

            set_bits(p, first, need, 1);
            p->nfree -= need;
            return p->base + first * BUFPOOL_CHUNK;
        }
    }
    return NULL;
}

void bufpool_free(struct bufpool *p, void *buf, size_t len)
{
    size_t first = (size_t)((uint8_t *)buf - p->base) / BUFPOOL_CHUNK;
    size_t n = chunks_for(len ? len : 1);

    set_bits(p, first, n, 0);
    p->nfree += n;
}
