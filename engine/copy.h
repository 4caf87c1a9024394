/* The native copier behind `volmig copy SOURCE TARGET`.
 *
 * SOURCE and TARGET are each a local file or block device (io_uring, O_DIRECT
 * where the volume takes it, registered buffers) or an NBD export (libnbd's
 * asynchronous API, several connections when the server advertises
 * multi-conn).  One thread drives both sides: an io_uring for local I/O and
 * the sockets of every NBD connection, all waited on by one poll().
 *
 * The copy is sparse-aware.  Regions the source reports as reading zeroes
 * (SEEK_HOLE on files, base:allocation on NBD) are never read; data that
 * turns out to be all zeroes is written as zeroes (WRITE_ZEROES, fallocate),
 * never as data; and regions the target already reads as zeroes (its own
 * extents, for instance a fresh sparse file) are not zeroed again.  The
 * source is opened read-only and only ever read.
 */
#ifndef VOLMIG_COPY_H
#define VOLMIG_COPY_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

struct client_tls;

enum copy_result { COPY_DONE = 0, COPY_FAILED = 1, COPY_CANCELLED = 3 };

enum copy_event { COPY_EV_STARTED, COPY_EV_PROGRESS };

/* What the copier has done so far; every event carries it. */
struct copy_status {
    double t;                 /* seconds since the start */
    uint64_t size;            /* bytes to copy: the source size */
    uint64_t target_size;
    uint64_t todo;            /* bytes to settle: size, or the ranges' sum */
    uint64_t done;            /* bytes settled on the target */
    uint64_t contiguous;      /* everything below this offset is settled */
    uint64_t data;            /* written as data */
    uint64_t zeroed;          /* written as zeroes (no payload) */
    uint64_t skipped;         /* the target already read zeroes there */
    uint64_t read;            /* bytes read from the source */
    double rate;              /* bytes/s over the last interval */
    double eta;               /* seconds, -1 when unknown */
    char source_desc[160];    /* "file, O_DIRECT" / "nbd, 4 connections" ... */
    char target_desc[160];
    uint32_t request_size;
    int requests;
};

/* A region of the volume, for copies of only part of it. */
struct copy_range {
    uint64_t off, len;
};

struct copy_config {
    const char *source;       /* path, file:PATH or NBD URI */
    const char *target;       /* same, or null: (discards what it gets); a
                               * path that does not exist is created as a
                               * sparse file of the source's size */
    int connections;          /* per NBD side, when multi-conn (default 4) */
    int requests;             /* requests in flight (default 64) */
    uint32_t request_size;    /* bytes per read/write (default 256 KiB) */
    bool no_direct;           /* do not use O_DIRECT on local volumes */
    /* Read a local source even while another process holds it with a
     * permission that makes a consistent read impossible (a running VM
     * writing it), as qemu-img's --force-share; the target is always
     * locked for writing. */
    bool force_share;
    /* Credentials for the ends whose URI is nbds:// or nbds+unix://; NULL
     * refuses such ends.  Plain nbd:// ends never use TLS. */
    const struct client_tls *tls;
    int progress_ms;          /* COPY_EV_PROGRESS interval (default 500) */
    uint64_t max_rate;        /* bytes of data read per second, 0: no limit;
                               * zeroes and skipped regions move nothing and
                               * do not count */
    /* The limit now, when the caller changes it while the copy runs (from
     * its emit callback: the latency-aware copy): read before each read,
     * in place of max_rate (bytes/s, 0: no limit).  NULL: max_rate. */
    const uint64_t *pace;
    /* Only these regions, sorted and apart, on multiples of 512 bytes (or
     * ending at the source's end); NULL: the whole source.  Borrowed for
     * the run.  done then counts towards their sum, not the size. */
    const struct copy_range *ranges;
    size_t nranges;
    volatile sig_atomic_t *cancel;  /* set by a signal handler */
    void (*emit)(void *opaque, enum copy_event ev, const struct copy_status *st);
    void *opaque;
};

#define COPY_MAX_CONNECTIONS 16
#define COPY_MAX_REQUESTS    1024
#define COPY_MAX_REQUEST     (32U << 20)
#define COPY_MAX_BUFFERS     (1ULL << 30)   /* requests * request_size */

/* Copies config->source onto config->target.  st (may be NULL) receives
 * the final status.  COPY_FAILED leaves a message in err_msg(); nothing is
 * written when the target is too small or cannot be opened. */
enum copy_result copy_run(const struct copy_config *config, struct copy_status *st);

/* ---- pure parts, exposed for the unit tests ---- */

enum copy_action { COPY_READ, COPY_ZERO, COPY_SKIP };

struct copy_piece {
    uint64_t off, len;
    enum copy_action act;
    bool dst_zero;            /* COPY_READ: the target reads zeroes over it */
};

/* The next piece of work at pos.  src_end/src_zero: the end of the source
 * extent holding pos and whether it reads as zeroes; dst_end/dst_zero the
 * same for the target.  Pieces end on multiples of align (or at size);
 * reads are at most req_size long, zeroes and skips at most zero_max. */
struct copy_piece copy_plan(uint64_t pos, uint64_t size, uint64_t align, uint64_t req_size,
                            uint64_t zero_max, uint64_t src_end, bool src_zero,
                            uint64_t dst_end, bool dst_zero);

/* True when buf[0..len) is all zero bytes. */
bool copy_is_zero(const void *buf, uint64_t len);

enum copy_spec_kind { COPY_SPEC_LOCAL, COPY_SPEC_NBD, COPY_SPEC_NULL };
/* Tells a local path (plain or file:PATH) from an NBD URI and from null:
 * (a target that discards everything); for URIs the parsed form goes to
 * *uri (a struct target_uri).  -1 with err_msg() set
 * for an URI volmig does not take. */
int copy_spec_kind(const char *spec, enum copy_spec_kind *kind, const char **path, void *uri);

#endif
