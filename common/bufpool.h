/* A fixed arena of I/O buffers carved into 64 KiB chunks.
 *
 * The arena is allocated once and registered with io_uring as one fixed
 * buffer, so every target read and write can use the *_FIXED opcodes; its
 * size bounds the server's memory whatever the volume size.  Allocation is
 * first fit over a bitmap, which keeps hot requests in the low chunks and
 * leaves the rest of the arena untouched (and so out of the RSS) unless a
 * burst needs it.
 */
#ifndef VOLMIG_BUFPOOL_H
#define VOLMIG_BUFPOOL_H

#include <stddef.h>
#include <stdint.h>

#define BUFPOOL_CHUNK (64U << 10)

struct bufpool {
    uint8_t *base;
    size_t size;
    size_t nchunks;
    size_t nfree;
    uint64_t *used;   /* one bit per chunk */
};

/* Maps size bytes (rounded up to whole chunks).  -1 with err_msg() set. */
int bufpool_init(struct bufpool *p, size_t size);
void bufpool_destroy(struct bufpool *p);
/* A chunk-aligned buffer of at least len bytes, or NULL when no run of
 * free chunks is long enough right now (the caller waits for a free). */
void *bufpool_alloc(struct bufpool *p, size_t len);
void bufpool_free(struct bufpool *p, void *buf, size_t len);

#endif
