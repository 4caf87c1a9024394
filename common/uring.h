/* io_uring helpers every ring owner uses (the NBD server, the copier). */
#ifndef VOLMIG_URING_H
#define VOLMIG_URING_H

#include <liburing.h>

/* A submission entry, submitting what the ring holds when it is full.  The
 * owners size their rings for their in-flight limit, so after that submit
 * there is room: the SQ is drained into the kernel by io_uring_submit,
 * whatever the CQ holds. */
struct io_uring_sqe *uring_get_sqe(struct io_uring *ring);

#endif
