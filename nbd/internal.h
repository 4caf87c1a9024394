/* nbd/ internals, sectioned by file.  The handshake and request functions
 * are pure: bytes in, bytes and decisions out, so they can be unit tested
 * and fuzzed without sockets. */
#ifndef VOLMIG_NBD_INTERNAL_H
#define VOLMIG_NBD_INTERNAL_H

#include "nbd/nbd.h"
#include "nbd/proto.h"

/* ---- handshake.c ---- */

/* Output accumulates here; the caller sends it.  A full buffer is not an
 * error: nbd_hs_feed() stops early and resumes once the caller has drained
 * it. */
#define NBD_HS_OUT_CAP (32U << 10)
struct nbd_outbuf {
    uint8_t data[NBD_HS_OUT_CAP];
    size_t len;
};

enum nbd_hs_state { HS_CLIENT_FLAGS, HS_OPTION, HS_DISCARD, HS_DONE, HS_CLOSED };

struct nbd_hs {
    enum nbd_hs_state state;
    const struct nbd_export *exp;
    bool fixed;        /* client said fixed newstyle */
    bool no_zeroes;
    bool structured;   /* structured replies negotiated */
    bool meta_base;    /* base:allocation selected */
    uint32_t discard_opt;
    uint64_t discard_left;
};

enum nbd_hs_result {
    NBD_HS_MORE,          /* send the output, then feed more input */
    NBD_HS_TRANSMISSION,  /* send the output, then start transmission */
    NBD_HS_CLOSE,         /* send the output, then close */
};

#define NBD_BASE_ALLOCATION_ID 1U   /* our metadata context id */

/* Starts a handshake: fills the greeting into out. */
void nbd_hs_start(struct nbd_hs *hs, const struct nbd_export *exp, struct nbd_outbuf *out);
/* Consumes bytes from in (sets *used) and appends replies to out. */
enum nbd_hs_result nbd_hs_feed(struct nbd_hs *hs, const uint8_t *in, size_t len,
                               size_t *used, struct nbd_outbuf *out);
/* The transmission flags this export shows to this client. */
uint16_t nbd_export_tflags(const struct nbd_export *exp, bool structured);

/* ---- request.c ---- */

struct nbd_request {
    uint16_t flags;
    uint16_t type;
    uint64_t cookie;
    uint64_t offset;
    uint32_t length;
};

/* What the session negotiated, as the transmission phase needs it. */
struct nbd_session {
    bool structured;
    bool meta_base;
};

#define NBD_VALID_DISCONNECT (-1)

/* 0 on a good magic, -1 otherwise. */
int nbd_request_decode(const uint8_t *p, struct nbd_request *r);
/* 0 when the request may run, an NBD error to reply with, or
 * NBD_VALID_DISCONNECT when the stream cannot be kept in sync. */
int nbd_request_validate(const struct nbd_request *r, const struct nbd_export *exp,
                         const struct nbd_session *s);
/* Bytes of payload that follow the request header on the wire. */
uint32_t nbd_request_payload(const struct nbd_request *r);
/* A short human text for an NBD error, for structured error chunks. */
const char *nbd_strerror(uint32_t err);
/* Maps a local errno (positive) to the NBD error on the wire. */
uint32_t nbd_errno_to_wire(int err);

size_t nbd_put_simple_reply(uint8_t *p, uint64_t cookie, uint32_t err);
size_t nbd_put_chunk(uint8_t *p, uint16_t flags, uint16_t type, uint64_t cookie, uint32_t len);
/* An error chunk with its message, flagged DONE.  p needs 26 + strlen(msg). */
size_t nbd_put_error_chunk(uint8_t *p, uint64_t cookie, uint32_t err, const char *msg);

#endif
