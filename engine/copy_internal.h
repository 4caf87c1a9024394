/* engine/copy*.c: the copier's inside.  copy_run.c is the core (planning, the
 * request state machine, the event loop); copy_endpoint.c picks a backend
 * for a spec; copy_local.c, copy_nbd.c and copy_null.c are the backends.
 * A backend is a struct of its own with struct endpoint first (libnbd's
 * copy/ does the same), and the core sees it only through struct ep_ops,
 * polling and dead connections included. */
#ifndef VOLMIG_COPY_INTERNAL_H
#define VOLMIG_COPY_INTERNAL_H

#include "engine/copy.h"
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
    /* Closes and frees the endpoint. */
    void (*close)(struct endpoint *ep);
    /* Optional, for backends with sockets of their own: fills at most max
     * pollfds for the loop's poll() and returns how many ... */
    int (*poll_fds)(struct endpoint *ep, struct pollfd *fds, int max);
    /* ... and hears what poll() said about them.  -1 with err_msg() set
     * when a connection failed. */
    int (*notify)(struct endpoint *ep, const struct pollfd *fds);
    /* Optional: true when r's operation on ep can never complete (its
     * connection died). */
    bool (*lost)(const struct endpoint *ep, const struct creq *r);
    /* Optional: the buffer pool is registered with the copier's ring as
     * fixed buffer index; only endpoints with uses_ring hear it. */
    void (*use_fixed)(struct endpoint *ep, int index);
    /* Optional, for a source whose read may point r->buf at memory of its
     * own instead of filling the slot's buffer (a local file's page cache,
     * mapped): the core is done with those bytes. */
    void (*unlend)(struct endpoint *ep, struct creq *r);
};

/* What the core knows of an endpoint; each backend's struct starts with it. */
struct endpoint {
    const struct ep_ops *ops;
    struct copy *cp;
    const char *spec;          /* as the user wrote it */
    bool is_target;
    uint64_t size;
    uint32_t align;            /* I/O offsets and lengths want this */
    uint32_t max_io;           /* largest read or write */
    uint32_t pref_io;          /* request size it does best with; 0: any */
    uint64_t max_zero;         /* largest zero request */
    bool can_zero;             /* has a zeroing operation at all */
    bool knows_zero;           /* its extents tell what reads as zeroes */
    bool uses_ring;            /* its I/O goes through the copier's io_uring */
    char desc[160];
};

enum creq_state { ST_FREE, ST_READ, ST_WRITE, ST_ZERO, ST_ZERO_WRITE };

struct creq {
    struct copy *cp;
    struct creq *next;         /* free list or completion list */
    uint64_t off, len;         /* the piece this request settles */
    bool dst_zero;             /* the target reads zeroes over the piece */
    enum creq_state st;
    uint8_t *buf;              /* the piece's bytes: own, or lent by the
                                * source's read until the core gives them
                                * back (ep_ops.unlend) */
    uint8_t *own;              /* request_size bytes of the registered pool */
    uint64_t io_pos, io_end;   /* the operation in progress */
    uint64_t io_base;          /* the volume offset buf[0] stands for */
    uint64_t zpos;             /* ST_ZERO_WRITE: zeroes written up to here */
    int zmode;                 /* local zeroing: 0 punch, 1 zero range */
    int conn;                  /* NBD: which connection carries it */
    int64_t res;               /* result handed over through the done list */
};

struct copy {
    const struct copy_config *cfg;
    struct endpoint *src, *dst;   /* owned: closed (and freed) at teardown */
    struct io_uring ring;
    bool ring_ok;
    int efd;                   /* eventfd the ring signals completions on */
    struct creq *done;         /* completions not through the ring (NBD,
                                * inline local, null) not yet processed */
    uint32_t req_size;
};

/* copy_endpoint.c: opens the backend spec names (a path, file:PATH, an
 * NBD URI, null:).  src_size: the source's size, for a target (0 for the
 * source).  NULL with err_msg() set. */
struct endpoint *copy_endpoint_open(const struct copy_config *cfg, const char *spec,
                                    bool is_target, uint64_t src_size);

/* The backends.  Each fills its endpoint (size, align, limits, ops) or
 * returns NULL with err_msg() set. */
struct endpoint *copy_local_open(const char *spec, const char *path, bool is_target, bool direct,
                                 uint64_t create_size, bool force_share);
struct endpoint *copy_nbd_open(const char *spec, const struct target_uri *uri,
                               const struct client_tls *tls, bool is_target, int connections);
/* null: a target that takes everything and keeps nothing, src_size big;
 * for measuring the core and the source alone. */
struct endpoint *copy_null_open(const char *spec, bool is_target, uint64_t src_size);

/* A backend reports the end of an operation: res is the byte count moved
 * (reads/writes) or 0 (zeroes), or -errno. */
void copy_complete(struct creq *r, int64_t res);

#endif
