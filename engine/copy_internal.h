/* engine/copy*.c: the copier's inside.  copy.c is the core (planning, the
 * request state machine, the event loop); copy_local.c and copy_nbd.c are
 * the two endpoint backends behind struct ep_ops. */
#ifndef VOLMIG_COPY_INTERNAL_H
#define VOLMIG_COPY_INTERNAL_H

#include "engine/copy.h"
#include "common/target.h"
#include "engine/target_uri.h"

#include <libnbd.h>
#include <liburing.h>
#include <poll.h>

#define COPY_MAP_MAX 512

/* Extents are asked for this much of the volume at a time: the most one
 * NBD block status request can describe (its length is 32 bits), rounded
 * to 1 MiB so it suits every alignment.  Servers find holes with
 * SEEK_HOLE, which on tmpfs walks every page up to the next hole however
 * little was asked (20-40 ms per GiB of data here), and the copy waits for
 * each answer: a 2 GiB dense volume costs one walk of 2 GiB instead of a
 * walk of 2 GiB and one of 1 GiB with 1 GiB windows. */
#define COPY_EXTENT_WINDOW ((1ULL << 32) - (1ULL << 20))

struct copy;
struct creq;
struct endpoint;

/* A run of extents covering [start, end): each entry ends at e[i].end and
 * either reads as zeroes or not. */
struct extent_map {
    uint64_t start, end;
    int n, cur;
    struct { uint64_t end; bool zero; } e[COPY_MAP_MAX];
};

enum ep_op { OP_READ, OP_WRITE, OP_ZERO };

struct ep_ops {
    /* Fills m from off for at most len bytes (it may cover less, never
     * nothing).  -1 with err_msg() set. */
    int (*extents)(struct endpoint *ep, uint64_t off, uint64_t len, struct extent_map *m);
    /* Starts op on [r->io_pos, r->io_end) (buffer r->buf for reads and
     * writes); the completion reaches copy_complete().  -1 with err_msg()
     * set when it could not even start. */
    int (*start)(struct endpoint *ep, struct creq *r, enum ep_op op);
    /* Makes what was written durable.  -1 with err_msg() set. */
    int (*flush)(struct endpoint *ep);
    /* A zero operation failed with res: true when the backend latched the
     * method off and the zeroing should simply be started again. */
    bool (*zero_unsupported)(struct endpoint *ep, struct creq *r, int64_t res);
    void (*close)(struct endpoint *ep);
};

struct endpoint {
    const struct ep_ops *ops;
    struct copy *cp;
    const char *spec;          /* as the user wrote it */
    bool is_target;
    uint64_t size;
    uint32_t align;            /* I/O offsets and lengths want this */
    uint32_t max_io;           /* largest read or write */
    uint64_t max_zero;         /* largest zero request */
    bool can_zero;             /* has a zeroing operation at all */
    bool knows_zero;           /* its extents tell what reads as zeroes */
    char desc[160];
    /* local */
    struct target t;
    bool inline_io;            /* plain syscalls on the loop's thread: the
                                * volume lives in memory (tmpfs, ramfs) */
    /* nbd */
    struct target_uri uri;
    const struct client_tls *tls;  /* set when uri.tls */
    struct nbd_handle *h[COPY_MAX_CONNECTIONS];
    int nconn;
    int inflight[COPY_MAX_CONNECTIONS];
};

enum creq_state { ST_FREE, ST_READ, ST_WRITE, ST_ZERO, ST_ZERO_WRITE };

struct creq {
    struct copy *cp;
    struct creq *next;         /* free list or completion list */
    uint64_t off, len;         /* the piece this request settles */
    bool dst_zero;             /* the target reads zeroes over the piece */
    enum creq_state st;
    uint8_t *buf;              /* request_size bytes of the registered pool */
    uint64_t io_pos, io_end;   /* the operation in progress */
    uint64_t io_base;          /* the volume offset buf[0] stands for */
    uint64_t zpos;             /* ST_ZERO_WRITE: zeroes written up to here */
    int zmode;                 /* local zeroing: 0 punch, 1 zero range */
    int conn;                  /* NBD: which connection carries it */
    int64_t res;               /* NBD: result handed from the callback */
};

struct copy {
    const struct copy_config *cfg;
    struct endpoint src, dst;
    struct io_uring ring;
    bool ring_ok;
    int efd;                   /* eventfd the ring signals completions on */
    struct creq *done;         /* NBD and inline local completions not
                                * yet processed */
    uint32_t req_size;
};

/* Backends: open fills ep (size, align, limits, ops).  -1 with err_msg(). */
int copy_local_open(struct endpoint *ep, const char *path, bool direct, uint64_t create_size);
int copy_nbd_open(struct endpoint *ep, int connections);
/* True when connection conn of an NBD endpoint died: what is in flight on
 * it never completes. */
bool copy_nbd_conn_dead(const struct endpoint *ep, int conn);
/* NBD: the fds to poll and what for; notify after poll.  */
int copy_nbd_poll_fds(struct endpoint *ep, struct pollfd *fds, int max);
int copy_nbd_notify(struct endpoint *ep, const struct pollfd *fds);

/* A backend reports the end of an operation: res is the byte count moved
 * (reads/writes) or 0 (zeroes), or -errno. */
void copy_complete(struct creq *r, int64_t res);

#endif
