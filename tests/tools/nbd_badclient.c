/* nbd_badclient: a raw-socket NBD client that misbehaves on purpose, for
 * the bad-input tests of volmig serve (tests/integration/serve-badinput.sh).
 *
 *   nbd_badclient ADDRESS SCENARIO [EXPORT]
 *       ADDRESS: HOST:PORT or unix:PATH.  EXPORT: the export name ("").
 *
 * Each scenario prints one line per check ("ok ..." or "FAIL ...") and the
 * program exits 0 only if every check saw what the NBD protocol
 * specification (NetworkBlockDevice/nbd doc/proto.md) and volmig's contract
 * expect.  Every read from the server has a 10 s timeout, so a server that
 * hangs instead of answering is a failure, not a stuck test.
 *
 * The legal writes a scenario makes are listed in serve-badinput.sh, which
 * checks that the target holds them and nothing else changed. */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* Protocol constants (proto.md). */
#define NBDMAGIC            0x4e42444d41474943ULL
#define IHAVEOPT            0x49484156454F5054ULL
#define OPT_REPLY_MAGIC     0x3e889045565a9ULL
#define REQUEST_MAGIC       0x25609513U
#define SIMPLE_REPLY_MAGIC  0x67446698U
#define STRUCT_REPLY_MAGIC  0x668e33efU

#define FLAG_FIXED_NEWSTYLE 1
#define FLAG_NO_ZEROES      2

enum { OPT_EXPORT_NAME = 1, OPT_ABORT = 2, OPT_LIST = 3, OPT_INFO = 6,
       OPT_GO = 7, OPT_STRUCTURED_REPLY = 8, OPT_LIST_META_CONTEXT = 9,
       OPT_SET_META_CONTEXT = 10 };
#define REP_ACK          1U
#define REP_SERVER       2U
#define REP_INFO         3U
#define REP_META_CONTEXT 4U
#define REP_ERR(n)       (0x80000000U + (n))
#define REP_ERR_UNSUP    REP_ERR(1)
#define REP_ERR_INVALID  REP_ERR(3)
#define REP_ERR_UNKNOWN  REP_ERR(6)
#define REP_ERR_TOO_BIG  REP_ERR(9)
enum { INFO_EXPORT = 0, INFO_BLOCK_SIZE = 3 };

enum { CMD_READ = 0, CMD_WRITE = 1, CMD_DISC = 2, CMD_FLUSH = 3, CMD_TRIM = 4,
       CMD_WRITE_ZEROES = 6, CMD_BLOCK_STATUS = 7 };
#define CMD_FLAG_FUA       (1 << 0)
#define CMD_FLAG_NO_HOLE   (1 << 1)
#define CMD_FLAG_REQ_ONE   (1 << 3)
#define CMD_FLAG_FAST_ZERO (1 << 4)

#define TF_HAS_FLAGS   (1 << 0)
#define TF_READ_ONLY   (1 << 1)

enum { CHUNK_NONE = 0, CHUNK_OFFSET_DATA = 1, CHUNK_OFFSET_HOLE = 2,
       CHUNK_BLOCK_STATUS = 5 };
#define CHUNK_IS_ERROR(t) ((t) & 0x8000)
#define REPLY_FLAG_DONE 1

#define MAX_PAYLOAD (32U << 20)

enum { NBD_EPERM = 1, NBD_EIO = 5, NBD_EINVAL = 22, NBD_ENOSPC = 28,
       NBD_EOVERFLOW = 75, NBD_ENOTSUP = 95 };

static const char *address;
static const char *export_name = "";
static int failures;

static void check(bool ok, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void check(bool ok, const char *name, const char *fmt, ...)
{
    va_list ap;
    printf("%s %s: ", ok ? "ok  " : "FAIL", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    if (!ok)
        failures++;
}

static void die(const char *what)
{
    printf("FAIL %s: %s\n", what, errno ? strerror(errno) : "unexpected");
    exit(1);
}

/* ---- socket --------------------------------------------------------- */

static int connect_server(void)
{
    int fd;
    if (strncmp(address, "unix:", 5) == 0) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", address + 5);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            die("connect");
    } else {
        char host[256];
        snprintf(host, sizeof host, "%s", address);
        char *colon = strrchr(host, ':');
        if (!colon)
            die("address is not HOST:PORT");
        *colon = 0;
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
        if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
            die("getaddrinfo");
        fd = socket(ai->ai_family, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
            die("connect");
        freeaddrinfo(ai);
    }
    struct timeval tv = { .tv_sec = 10 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

/* 0 on success, 1 on a clean EOF or reset (the server hung up), -1 on a
 * timeout or another error. */
static int recv_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len) {
        ssize_t n = recv(fd, p, len, 0);
        if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
            return 1;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void must_recv(int fd, void *buf, size_t len, const char *what)
{
    int r = recv_all(fd, buf, len);
    if (r == 1) {
        errno = 0;
        printf("FAIL %s: the server hung up\n", what);
        exit(1);
    }
    if (r < 0)
        die(what);
}

static int send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void must_send(int fd, const void *buf, size_t len, const char *what)
{
    if (send_all(fd, buf, len) < 0)
        die(what);
}

/* Waits up to 10 s for the server to close the connection, discarding
 * whatever it sends first.  True if it did. */
static bool hangs_up(int fd, size_t *discarded)
{
    char buf[4096];
    *discarded = 0;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
            return true;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return false;
        *discarded += (size_t)n;
    }
}

/* ---- handshake ------------------------------------------------------ */

static void put32(unsigned char *p, uint32_t v) { v = htobe32(v); memcpy(p, &v, 4); }
static void put16(unsigned char *p, uint16_t v) { v = htobe16(v); memcpy(p, &v, 2); }
static void put64(unsigned char *p, uint64_t v) { v = htobe64(v); memcpy(p, &v, 8); }
static uint32_t get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return be32toh(v); }
static uint16_t get16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return be16toh(v); }
static uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return be64toh(v); }

/* Reads the server's greeting; returns the handshake flags. */
static uint16_t greeting(int fd)
{
    unsigned char g[18];
    must_recv(fd, g, sizeof g, "greeting");
    if (get64(g) != NBDMAGIC || get64(g + 8) != IHAVEOPT)
        die("greeting magic is not NBDMAGIC IHAVEOPT");
    return get16(g + 16);
}

static int start(uint32_t client_flags)
{
    int fd = connect_server();
    uint16_t hf = greeting(fd);
    if (!(hf & FLAG_FIXED_NEWSTYLE))
        die("server does not offer fixed newstyle");
    unsigned char f[4];
    put32(f, client_flags);
    must_send(fd, f, 4, "client flags");
    return fd;
}

static void send_option(int fd, uint32_t opt, const void *data, uint32_t len)
{
    unsigned char h[16];
    put64(h, IHAVEOPT);
    put32(h + 8, opt);
    put32(h + 12, len);
    must_send(fd, h, sizeof h, "option header");
    if (len)
        must_send(fd, data, len, "option data");
}

struct opt_reply {
    uint32_t opt, type, len;
    unsigned char data[4096];
};

/* Reads one option reply.  0, or 1 if the server hung up. */
static int recv_opt_reply(int fd, struct opt_reply *r)
{
    unsigned char h[20];
    int e = recv_all(fd, h, sizeof h);
    if (e)
        return e == 1 ? 1 : (die("option reply"), 1);
    if (get64(h) != OPT_REPLY_MAGIC)
        die("option reply magic");
    r->opt = get32(h + 8);
    r->type = get32(h + 12);
    r->len = get32(h + 16);
    if (r->len > sizeof r->data)
        die("option reply longer than 4096 bytes");
    must_recv(fd, r->data, r->len, "option reply data");
    return 0;
}

/* Builds an OPT_GO/OPT_INFO payload asking for the block sizes. */
static uint32_t go_payload(unsigned char *p, const char *name)
{
    uint32_t n = (uint32_t)strlen(name);
    put32(p, n);
    memcpy(p + 4, name, n);
    put16(p + 4 + n, 1);
    put16(p + 6 + n, INFO_BLOCK_SIZE);
    return n + 8;
}

struct export_info {
    uint64_t size;
    uint16_t flags;
    uint32_t min, pref, max;
    uint32_t context_id;
};

/* Sends OPT_GO (or OPT_INFO) and reads to the final reply.  Returns the
 * final reply type (REP_ACK on success) and fills *ei from the infos. */
static uint32_t go(int fd, uint32_t opt, const char *name, struct export_info *ei)
{
    unsigned char p[4200];
    uint32_t n = go_payload(p, name);
    struct opt_reply r;
    send_option(fd, opt, p, n);
    for (;;) {
        if (recv_opt_reply(fd, &r)) {
            errno = 0;
            die("server hung up during OPT_GO");
        }
        if (r.opt != opt)
            die("option reply for another option");
        if (r.type != REP_INFO)
            return r.type;
        uint16_t t = r.len >= 2 ? get16(r.data) : 0xffff;
        if (t == INFO_EXPORT && r.len >= 12) {
            ei->size = get64(r.data + 2);
            ei->flags = get16(r.data + 10);
        } else if (t == INFO_BLOCK_SIZE && r.len >= 14) {
            ei->min = get32(r.data + 2);
            ei->pref = get32(r.data + 6);
            ei->max = get32(r.data + 10);
        }
    }
}

static uint32_t simple_option(int fd, uint32_t opt, const void *data, uint32_t len)
{
    struct opt_reply r;
    send_option(fd, opt, data, len);
    if (recv_opt_reply(fd, &r)) {
        errno = 0;
        die("server hung up after an option");
    }
    return r.type;
}

/* Structured replies, base:allocation, then OPT_GO: the state every
 * transmission scenario starts from. */
static int open_export(struct export_info *ei)
{
    int fd = start(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
    memset(ei, 0, sizeof *ei);
    if (simple_option(fd, OPT_STRUCTURED_REPLY, NULL, 0) != REP_ACK)
        die("NBD_OPT_STRUCTURED_REPLY not acknowledged");
    unsigned char p[300];
    uint32_t n = (uint32_t)strlen(export_name);
    const char *q = "base:allocation";
    put32(p, n);
    memcpy(p + 4, export_name, n);
    put32(p + 4 + n, 1);
    put32(p + 8 + n, (uint32_t)strlen(q));
    memcpy(p + 12 + n, q, strlen(q));
    send_option(fd, OPT_SET_META_CONTEXT, p, 12 + n + (uint32_t)strlen(q));
    struct opt_reply r;
    for (;;) {
        if (recv_opt_reply(fd, &r))
            die("hung up during SET_META_CONTEXT");
        if (r.type == REP_META_CONTEXT && r.len >= 4)
            ei->context_id = get32(r.data);
        else if (r.type == REP_ACK)
            break;
        else
            die("SET_META_CONTEXT failed");
    }
    uint32_t t = go(fd, OPT_GO, export_name, ei);
    if (t != REP_ACK) {
        printf("FAIL OPT_GO: reply type 0x%x\n", t);
        exit(1);
    }
    if (ei->min == 0)
        ei->min = 1;
    if (ei->max == 0)
        ei->max = MAX_PAYLOAD;
    static bool shown;
    if (shown)
        return fd;
    shown = true;
    printf("# export: size %llu flags 0x%x block sizes %u/%u/%u context %u\n",
           (unsigned long long)ei->size, ei->flags, ei->min, ei->pref, ei->max,
           ei->context_id);
    return fd;
}

/* ---- transmission --------------------------------------------------- */

static uint64_t next_cookie = 1;

static uint64_t send_request(int fd, uint16_t flags, uint16_t type, uint64_t off,
                             uint32_t len, const void *payload)
{
    unsigned char h[28];
    uint64_t cookie = next_cookie++;
    put32(h, REQUEST_MAGIC);
    put16(h + 4, flags);
    put16(h + 6, type);
    put64(h + 8, cookie);
    put64(h + 16, off);
    put32(h + 24, len);
    must_send(fd, h, sizeof h, "request header");
    if (payload)
        must_send(fd, payload, len, "request payload");
    return cookie;
}

struct reply {
    uint64_t cookie;
    uint32_t error;          /* 0, or the NBD error of the first error chunk */
    uint64_t data_bytes;     /* bytes covered by data and hole chunks */
    uint32_t extents, extent_sum, context;
    bool bad;                /* a chunk broke the spec's rules */
    char why[160];
};

/* Reads one whole reply (simple, or structured chunks up to DONE).  Read
 * data lands in buf (at chunk offset - base) when buf is given. */
static void recv_reply(int fd, struct reply *r, unsigned char *buf, uint64_t base,
                       uint32_t len)
{
    memset(r, 0, sizeof *r);
    for (;;) {
        unsigned char h[20];
        must_recv(fd, h, 4, "reply magic");
        uint32_t magic = get32(h);
        if (magic == SIMPLE_REPLY_MAGIC) {
            must_recv(fd, h + 4, 12, "simple reply");
            r->error = get32(h + 4);
            r->cookie = get64(h + 8);
            return;
        }
        if (magic != STRUCT_REPLY_MAGIC) {
            errno = 0;
            printf("FAIL reply: bad magic 0x%08x\n", magic);
            exit(1);
        }
        must_recv(fd, h + 4, 16, "structured reply");
        uint16_t flags = get16(h + 4), type = get16(h + 6);
        uint32_t plen = get32(h + 16);
        r->cookie = get64(h + 8);
        unsigned char *pl = malloc(plen ? plen : 1);
        if (!pl)
            die("malloc");
        must_recv(fd, pl, plen, "chunk payload");
        if (CHUNK_IS_ERROR(type)) {
            uint32_t err = plen >= 6 ? get32(pl) : 0;
            uint16_t mlen = plen >= 6 ? get16(pl + 4) : 0;
            if (plen < 6 || err == 0 || mlen > plen - 6) {
                r->bad = true;
                snprintf(r->why, sizeof r->why, "malformed error chunk");
            }
            if (!r->error)
                r->error = err;
            if (mlen && plen >= 6u + mlen)
                printf("#   server says: %.*s\n", (int)mlen, (char *)pl + 6);
        } else if (type == CHUNK_OFFSET_DATA || type == CHUNK_OFFSET_HOLE) {
            uint64_t off = plen >= 8 ? get64(pl) : 0;
            uint64_t n = type == CHUNK_OFFSET_DATA ? (plen >= 9 ? plen - 8 : 0)
                                                   : (plen == 12 ? get32(pl + 8) : 0);
            if (n == 0 || off < base || off - base + n > len) {
                r->bad = true;
                snprintf(r->why, sizeof r->why, "content chunk outside the request");
            } else if (buf) {
                if (type == CHUNK_OFFSET_DATA)
                    memcpy(buf + (off - base), pl + 8, n);
                else
                    memset(buf + (off - base), 0, n);
            }
            r->data_bytes += n;
        } else if (type == CHUNK_BLOCK_STATUS) {
            if (plen < 12 || (plen - 4) % 8) {
                r->bad = true;
                snprintf(r->why, sizeof r->why, "block status chunk length %u", plen);
            } else {
                r->context = get32(pl);
                for (uint32_t i = 4; i < plen; i += 8) {
                    uint32_t l = get32(pl + i);
                    if (l == 0) {
                        r->bad = true;
                        snprintf(r->why, sizeof r->why, "zero-length extent");
                    }
                    r->extents++;
                    r->extent_sum += l;
                }
            }
        } else if (type != CHUNK_NONE || plen != 0) {
            r->bad = true;
            snprintf(r->why, sizeof r->why, "unexpected chunk type %u", type);
        }
        free(pl);
        if (flags & REPLY_FLAG_DONE)
            return;
    }
}

/* One request, one reply; returns the NBD error (0 on success). */
static uint32_t roundtrip(int fd, uint16_t flags, uint16_t type, uint64_t off,
                          uint32_t len, const void *payload, unsigned char *rbuf,
                          struct reply *out)
{
    struct reply r;
    uint64_t c = send_request(fd, flags, type, off, len, payload);
    recv_reply(fd, &r, rbuf, off, len);
    if (r.cookie != c) {
        printf("FAIL reply cookie %llu for request %llu\n",
               (unsigned long long)r.cookie, (unsigned long long)c);
        exit(1);
    }
    if (r.bad)
        check(false, "reply format", "%s", r.why);
    if (out)
        *out = r;
    return r.error;
}

static const char *errname(uint32_t e)
{
    switch (e) {
    case 0: return "success";
    case NBD_EPERM: return "EPERM";
    case NBD_EIO: return "EIO";
    case NBD_EINVAL: return "EINVAL";
    case NBD_ENOSPC: return "ENOSPC";
    case NBD_EOVERFLOW: return "EOVERFLOW";
    case NBD_ENOTSUP: return "ENOTSUP";
    case 108: return "ESHUTDOWN";
    default: return "another error";
    }
}

static void expect(const char *name, uint32_t got, uint32_t want)
{
    check(got == want, name, "got %s (%u), want %s", errname(got), got, errname(want));
}

/* After a refused request the stream must still be in step: a read of
 * the first block works and returns whole data. */
static void still_in_sync(int fd, const struct export_info *ei, const char *after)
{
    static unsigned char buf[65536];
    uint32_t n = ei->min > 4096 ? ei->min : 4096;
    struct reply r;
    uint32_t e = roundtrip(fd, 0, CMD_READ, 0, n, NULL, buf, &r);
    char name[128];
    snprintf(name, sizeof name, "in sync after %s", after);
    check(e == 0 && r.data_bytes == n, name, "read %u bytes at 0: %s, %llu bytes",
          n, errname(e), (unsigned long long)r.data_bytes);
}

/* ---- scenarios ------------------------------------------------------ */

/* The server MUST close the connection on client flags it does not know. */
static void sc_bad_client_flags(void)
{
    int fd = start(0xfffffffcU | FLAG_FIXED_NEWSTYLE);
    size_t junk;
    bool hung = hangs_up(fd, &junk);
    check(hung, "unknown client flags", "server closed the connection");
    close(fd);
}

/* An option header whose magic is not IHAVEOPT: the stream cannot be
 * trusted any more; the server hangs up. */
static void sc_bad_option_magic(void)
{
    int fd = start(FLAG_FIXED_NEWSTYLE);
    unsigned char h[16];
    put64(h, 0x0123456789abcdefULL);
    put32(h + 8, OPT_GO);
    put32(h + 12, 0);
    must_send(fd, h, sizeof h, "bad option");
    size_t junk;
    bool hung = hangs_up(fd, &junk);
    check(hung, "garbage option magic", "server closed the connection");
    close(fd);
}

/* An option that claims 4 GiB - 1 of data.  The server may hang up, answer
 * an error at once, or (the spec lets a server skip any option by its
 * length) swallow the data and answer NBD_REP_ERR_TOO_BIG; it must never
 * allocate it or wait forever.  We keep sending until the server reacts;
 * if it swallowed everything, the negotiation must then go on. */
static void sc_huge_option(void)
{
    int fd = start(FLAG_FIXED_NEWSTYLE);
    const uint64_t len = 0xffffffffU;
    unsigned char h[16];
    put64(h, IHAVEOPT);
    put32(h + 8, OPT_GO);
    put32(h + 12, (uint32_t)len);
    must_send(fd, h, sizeof h, "huge option");
    static unsigned char zero[1 << 20];
    uint64_t sent = 0;
    while (sent < len) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN | POLLOUT };
        if (poll(&pfd, 1, 10000) <= 0)
            die("poll (server neither reads nor answers)");
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
            break;                          /* it answered or hung up early */
        uint64_t n = len - sent < sizeof zero ? len - sent : sizeof zero;
        ssize_t w = send(fd, zero, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (w < 0)
            break;                          /* reset: it hung up */
        sent += (uint64_t)w;
    }
    struct opt_reply r;
    int e = recv_opt_reply(fd, &r);
    if (e == 1)
        check(true, "option length 4 GiB", "server closed the connection after %llu bytes",
              (unsigned long long)sent);
    else
        check(r.type & 0x80000000U, "option length 4 GiB", "reply 0x%x after %llu bytes",
              r.type, (unsigned long long)sent);
    if (e == 0 && sent == len) {
        struct export_info ei = {0};
        uint32_t t = go(fd, OPT_GO, export_name, &ei);
        check(t == REP_ACK, "OPT_GO after a skipped 4 GiB option", "reply type 0x%x", t);
        send_request(fd, 0, CMD_DISC, 0, 0, NULL);
    }
    close(fd);
}

/* An option header promising 100 bytes, 10 sent, then the client leaves. */
static void sc_truncated_option(void)
{
    int fd = start(FLAG_FIXED_NEWSTYLE);
    unsigned char h[26];
    put64(h, IHAVEOPT);
    put32(h + 8, OPT_GO);
    put32(h + 12, 100);
    memset(h + 16, 'x', 10);
    must_send(fd, h, sizeof h, "truncated option");
    close(fd);
    check(true, "truncated option", "sent 10 of 100 bytes and closed");
}

/* Unknown options get ERR_UNSUP and the negotiation goes on. */
static void sc_unknown_option(void)
{
    int fd = start(FLAG_FIXED_NEWSTYLE);
    uint32_t t = simple_option(fd, 0x1234, "hello", 5);
    check(t == REP_ERR_UNSUP, "unknown option 0x1234", "reply type 0x%x, want ERR_UNSUP", t);
    t = simple_option(fd, 0x7fffffff, NULL, 0);
    check(t == REP_ERR_UNSUP, "unknown option 0x7fffffff", "reply type 0x%x, want ERR_UNSUP", t);
    struct export_info ei = {0};
    t = go(fd, OPT_GO, export_name, &ei);
    check(t == REP_ACK, "OPT_GO after unknown options", "reply type 0x%x", t);
    send_request(fd, 0, CMD_DISC, 0, 0, NULL);
    close(fd);
}

/* An unknown export name: ERR_UNKNOWN on OPT_INFO and OPT_GO, the right
 * name still works after; on NBD_OPT_EXPORT_NAME, which cannot carry an
 * error, the server hangs up. */
static void sc_unknown_export(void)
{
    int fd = start(FLAG_FIXED_NEWSTYLE);
    struct export_info ei = {0};
    uint32_t t = go(fd, OPT_INFO, "no-such-export", &ei);
    check(t == REP_ERR_UNKNOWN, "OPT_INFO unknown export", "reply type 0x%x, want ERR_UNKNOWN", t);
    t = go(fd, OPT_GO, "no-such-export", &ei);
    check(t == REP_ERR_UNKNOWN, "OPT_GO unknown export", "reply type 0x%x, want ERR_UNKNOWN", t);
    t = go(fd, OPT_INFO, export_name, &ei);
    check(t == REP_ACK && ei.size > 0, "OPT_INFO right export", "reply type 0x%x size %llu",
          t, (unsigned long long)ei.size);
    t = go(fd, OPT_GO, export_name, &ei);
    check(t == REP_ACK, "OPT_GO right export after refusals", "reply type 0x%x", t);
    send_request(fd, 0, CMD_DISC, 0, 0, NULL);
    close(fd);

    fd = start(FLAG_FIXED_NEWSTYLE);
    send_option(fd, OPT_EXPORT_NAME, "no-such-export", 14);
    size_t got;
    bool hung = hangs_up(fd, &got);
    check(hung && got == 0, "OPT_EXPORT_NAME unknown export",
          "server closed the connection, %zu bytes sent first", got);
    close(fd);

    fd = start(FLAG_FIXED_NEWSTYLE);   /* without NO_ZEROES: 124 zero bytes */
    send_option(fd, OPT_EXPORT_NAME, export_name, (uint32_t)strlen(export_name));
    unsigned char x[134];
    must_recv(fd, x, sizeof x, "OPT_EXPORT_NAME reply");
    bool zeroes = true;
    for (int i = 10; i < 134; i++)
        zeroes = zeroes && x[i] == 0;
    check(get64(x) > 0 && (get16(x + 8) & TF_HAS_FLAGS) && zeroes,
          "OPT_EXPORT_NAME right export", "size %llu flags 0x%x",
          (unsigned long long)get64(x), get16(x + 8));
    send_request(fd, 0, CMD_DISC, 0, 0, NULL);
    close(fd);
}

/* LIST, LIST_META_CONTEXT, SET_META_CONTEXT before structured replies,
 * ABORT. */
static void sc_options(void)
{
    int fd = start(FLAG_FIXED_NEWSTYLE);
    struct opt_reply r;
    send_option(fd, OPT_LIST, NULL, 0);
    int servers = 0;
    bool named = false;
    do {
        if (recv_opt_reply(fd, &r))
            die("hung up during LIST");
        if (r.type == REP_SERVER && r.len >= 4) {
            servers++;
            uint32_t n = get32(r.data);
            named = named || (n == strlen(export_name) && n <= r.len - 4 &&
                              memcmp(r.data + 4, export_name, n) == 0);
        }
    } while (r.type == REP_SERVER);
    check(r.type == REP_ACK && named, "OPT_LIST", "%d exports, ours listed: %s",
          servers, named ? "yes" : "no");

    /* LIST_META_CONTEXT with no query lists every context. */
    unsigned char p[300];
    uint32_t n = (uint32_t)strlen(export_name);
    put32(p, n);
    memcpy(p + 4, export_name, n);
    put32(p + 4 + n, 0);
    /* The spec lets a server refuse meta contexts before structured replies
     * (ERR_INVALID); negotiate them first, as clients do. */
    uint32_t t = simple_option(fd, OPT_STRUCTURED_REPLY, NULL, 0);
    check(t == REP_ACK, "OPT_STRUCTURED_REPLY", "reply type 0x%x", t);
    send_option(fd, OPT_LIST_META_CONTEXT, p, 8 + n);
    bool base = false;
    do {
        if (recv_opt_reply(fd, &r))
            die("hung up during LIST_META_CONTEXT");
        if (r.type == REP_META_CONTEXT && r.len > 4)
            base = base || (r.len - 4 == 15 && memcmp(r.data + 4, "base:allocation", 15) == 0);
    } while (r.type == REP_META_CONTEXT);
    check(r.type == REP_ACK && base, "OPT_LIST_META_CONTEXT", "base:allocation listed: %s",
          base ? "yes" : "no");

    /* SET with an unknown namespace selects nothing, but succeeds. */
    const char *q = "nosuch:context";
    put32(p + 4 + n, 1);
    put32(p + 8 + n, (uint32_t)strlen(q));
    memcpy(p + 12 + n, q, strlen(q));
    send_option(fd, OPT_SET_META_CONTEXT, p, 12 + n + (uint32_t)strlen(q));
    int contexts = 0;
    do {
        if (recv_opt_reply(fd, &r))
            die("hung up during SET_META_CONTEXT");
        contexts += r.type == REP_META_CONTEXT;
    } while (r.type == REP_META_CONTEXT);
    check(r.type == REP_ACK && contexts == 0, "SET_META_CONTEXT nosuch:context",
          "%d contexts, final reply 0x%x", contexts, r.type);

    t = simple_option(fd, OPT_ABORT, NULL, 0);
    check(t == REP_ACK, "OPT_ABORT", "reply type 0x%x", t);
    close(fd);

    /* SET_META_CONTEXT without structured replies: ERR_INVALID. */
    fd = start(FLAG_FIXED_NEWSTYLE);
    q = "base:allocation";
    put32(p + 8 + n, (uint32_t)strlen(q));
    memcpy(p + 12 + n, q, strlen(q));
    send_option(fd, OPT_SET_META_CONTEXT, p, 12 + n + (uint32_t)strlen(q));
    if (recv_opt_reply(fd, &r))
        die("hung up during SET_META_CONTEXT");
    check(r.type == REP_ERR_INVALID, "SET_META_CONTEXT before STRUCTURED_REPLY",
          "reply type 0x%x, want ERR_INVALID", r.type);
    close(fd);
}

static void fill(unsigned char *b, size_t n, unsigned char v) { memset(b, v, n); }

static bool all(const unsigned char *b, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != v)
            return false;
    return true;
}

/* Requests out of range, misaligned, too big, with unknown flags or type,
 * between legal ones whose effect the shell test checks:
 *   1 MiB + i*64 KiB, 64 KiB of byte 0x40+i, i = 0..15 (pipelined)
 *   2 MiB, 192 KiB of zeroes; 3 MiB, 64 KiB of 0xc4 (after a trim) */
static void sc_transmission(void)
{
    struct export_info ei;
    int fd = open_export(&ei);
    const uint64_t size = ei.size;
    const uint32_t K64 = 65536;
    unsigned char *buf = malloc(MAX_PAYLOAD + 65536), *rb = malloc(MAX_PAYLOAD + 65536);
    if (!buf || !rb)
        die("malloc");
    struct reply r;
    uint32_t e;

    if (size < (4 << 20))
        die("export smaller than 4 MiB");
    check(ei.max == MAX_PAYLOAD, "maximum payload advertised", "%u", ei.max);
    check((ei.flags & TF_READ_ONLY) == 0, "not read-only", "flags 0x%x", ei.flags);

    /* Out of range. */
    e = roundtrip(fd, 0, CMD_READ, size, 4096, NULL, rb, &r);
    expect("read at the end", e, NBD_EINVAL);
    check(r.data_bytes == 0, "read at the end: no data", "%llu bytes", (unsigned long long)r.data_bytes);
    e = roundtrip(fd, 0, CMD_READ, size - 4096, 8192, NULL, rb, &r);
    expect("read across the end", e, NBD_EINVAL);
    e = roundtrip(fd, 0, CMD_READ, UINT64_MAX - 4095, 8192, NULL, rb, NULL);
    expect("read with offset+length overflowing 64 bits", e, NBD_EINVAL);
    still_in_sync(fd, &ei, "reads out of range");
    fill(buf, 8192, 0xee);
    e = roundtrip(fd, 0, CMD_WRITE, size, 4096, buf, NULL, NULL);
    expect("write at the end", e, NBD_ENOSPC);
    e = roundtrip(fd, 0, CMD_WRITE, size - 4096, 8192, buf, NULL, NULL);
    expect("write across the end", e, NBD_ENOSPC);
    e = roundtrip(fd, 0, CMD_WRITE, UINT64_MAX - 4095, 8192, buf, NULL, NULL);
    check(e == NBD_ENOSPC || e == NBD_EINVAL, "write with offset+length overflowing 64 bits",
          "got %s, want ENOSPC or EINVAL", errname(e));
    still_in_sync(fd, &ei, "writes out of range (payloads consumed)");
    e = roundtrip(fd, 0, CMD_TRIM, size - 4096, 8192, NULL, NULL, NULL);
    expect("trim across the end", e, NBD_ENOSPC);
    e = roundtrip(fd, 0, CMD_WRITE_ZEROES, size - 4096, 8192, NULL, NULL, NULL);
    expect("write zeroes across the end", e, NBD_ENOSPC);
    e = roundtrip(fd, 0, CMD_BLOCK_STATUS, size, 4096, NULL, NULL, NULL);
    expect("block status at the end", e, NBD_EINVAL);
    still_in_sync(fd, &ei, "trim/zeroes/block status out of range");

    /* Misaligned to the advertised minimum block size. */
    if (ei.min > 1) {
        uint32_t h = ei.min / 2;
        e = roundtrip(fd, 0, CMD_READ, h, ei.min, NULL, rb, NULL);
        expect("misaligned read offset", e, NBD_EINVAL);
        e = roundtrip(fd, 0, CMD_READ, 0, ei.min + h, NULL, rb, NULL);
        expect("misaligned read length", e, NBD_EINVAL);
        e = roundtrip(fd, 0, CMD_WRITE, h, ei.min, buf, NULL, NULL);
        expect("misaligned write offset", e, NBD_EINVAL);
        e = roundtrip(fd, 0, CMD_WRITE, 0, 100, buf, NULL, NULL);
        expect("misaligned write length", e, NBD_EINVAL);
        e = roundtrip(fd, 0, CMD_WRITE_ZEROES, h, ei.min, NULL, NULL, NULL);
        expect("misaligned write zeroes", e, NBD_EINVAL);
        e = roundtrip(fd, 0, CMD_TRIM, h, ei.min, NULL, NULL, NULL);
        expect("misaligned trim", e, NBD_EINVAL);
        still_in_sync(fd, &ei, "misaligned requests");
    } else {
        printf("# minimum block size 1: no misaligned requests to send\n");
    }

    /* Over the maximum payload: a read is refused with EOVERFLOW. */
    e = roundtrip(fd, 0, CMD_READ, 0, MAX_PAYLOAD + 65536, NULL, rb, &r);
    expect("read over 32 MiB", e, NBD_EOVERFLOW);
    if (size >= MAX_PAYLOAD) {
        e = roundtrip(fd, 0, CMD_READ, 0, MAX_PAYLOAD, NULL, rb, &r);
        check(e == 0 && r.data_bytes == MAX_PAYLOAD, "read of exactly 32 MiB",
              "%s, %llu bytes", errname(e), (unsigned long long)r.data_bytes);
    }

    /* Unknown flags and commands. */
    e = roundtrip(fd, 0x8000, CMD_READ, 0, 4096, NULL, rb, NULL);
    expect("read with unknown flag 0x8000", e, NBD_EINVAL);
    e = roundtrip(fd, 0x0400, CMD_WRITE, 0, 4096, buf, NULL, NULL);
    expect("write with unknown flag 0x0400", e, NBD_EINVAL);
    e = roundtrip(fd, CMD_FLAG_REQ_ONE, CMD_WRITE, 0, 4096, buf, NULL, NULL);
    expect("write with REQ_ONE (a block status flag)", e, NBD_EINVAL);
    e = roundtrip(fd, 0, 42, 0, 4096, NULL, NULL, NULL);
    expect("unknown command 42", e, NBD_EINVAL);
    e = roundtrip(fd, 0, 5 /* CACHE, not advertised */, 0, 4096, NULL, NULL, NULL);
    check(e == NBD_EINVAL || e == 0, "NBD_CMD_CACHE (not advertised)", "%s", errname(e));
    still_in_sync(fd, &ei, "unknown flags and commands");

    /* Legal: 16 pipelined writes, replies matched by cookie in any order. */
    uint64_t cookies[16];
    bool seen[16] = {0};
    for (int i = 0; i < 16; i++) {
        fill(buf + i * K64, K64, (unsigned char)(0x40 + i));
        cookies[i] = send_request(fd, i == 3 ? CMD_FLAG_FUA : 0, CMD_WRITE,
                                  (1 << 20) + (uint64_t)i * K64, K64, buf + i * K64);
    }
    int okc = 0;
    for (int n = 0; n < 16; n++) {
        recv_reply(fd, &r, NULL, 0, 0);
        for (int i = 0; i < 16; i++)
            if (r.cookie == cookies[i] && !seen[i] && r.error == 0) {
                seen[i] = true;
                okc++;
            }
    }
    check(okc == 16, "16 pipelined writes", "%d replied with success", okc);
    /* 16 pipelined reads of the same blocks: every reply's data chunks
     * carry their own offsets, so all land in place in one buffer. */
    for (int i = 0; i < 16; i++)
        cookies[i] = send_request(fd, 0, CMD_READ, (1 << 20) + (uint64_t)i * K64, K64, NULL);
    memset(rb, 0, 16 * K64);
    okc = 0;
    uint64_t got_bytes = 0;
    for (int n = 0; n < 16; n++) {
        recv_reply(fd, &r, rb, 1 << 20, 16 * K64);
        if (r.bad)
            check(false, "reply format", "%s", r.why);
        okc += r.error == 0;
        got_bytes += r.data_bytes;
    }
    for (int i = 0; i < 16; i++)
        okc += all(rb + i * K64, K64, (unsigned char)(0x40 + i));
    check(okc == 32 && got_bytes == 16 * K64, "16 pipelined reads of the pipelined writes",
          "%d of 16 replies ok and blocks matching, %llu bytes", okc - 16,
          (unsigned long long)got_bytes);
    okc = 0;
    for (int i = 0; i < 16; i++) {
        memset(rb, 0, K64);
        e = roundtrip(fd, 0, CMD_READ, (1 << 20) + (uint64_t)i * K64, K64, NULL, rb, &r);
        okc += e == 0 && r.data_bytes == K64 && all(rb, K64, (unsigned char)(0x40 + i));
    }
    check(okc == 16, "read back the pipelined writes", "%d of 16 match", okc);

    /* Write zeroes: NO_HOLE, may punch, FAST_ZERO (ENOTSUP allowed). */
    fill(buf, 3 * K64, 0x99);
    e = roundtrip(fd, 0, CMD_WRITE, 2 << 20, 3 * K64, buf, NULL, NULL);
    expect("write before zeroing", e, 0);
    e = roundtrip(fd, CMD_FLAG_NO_HOLE, CMD_WRITE_ZEROES, 2 << 20, K64, NULL, NULL, NULL);
    expect("write zeroes NO_HOLE", e, 0);
    e = roundtrip(fd, CMD_FLAG_FUA, CMD_WRITE_ZEROES, (2 << 20) + K64, K64, NULL, NULL, NULL);
    expect("write zeroes FUA", e, 0);
    e = roundtrip(fd, CMD_FLAG_FAST_ZERO, CMD_WRITE_ZEROES, (2 << 20) + 2 * K64, K64, NULL, NULL, NULL);
    check(e == 0 || e == NBD_ENOTSUP, "write zeroes FAST_ZERO", "%s", errname(e));
    if (e == NBD_ENOTSUP)
        roundtrip(fd, 0, CMD_WRITE_ZEROES, (2 << 20) + 2 * K64, K64, NULL, NULL, NULL);
    memset(rb, 0xff, 3 * K64);
    e = roundtrip(fd, 0, CMD_READ, 2 << 20, 3 * K64, NULL, rb, &r);
    check(e == 0 && r.data_bytes == 3 * K64 && all(rb, 3 * K64, 0), "zeroes read back",
          "%s", errname(e));

    /* Trim then rewrite; then flush. */
    e = roundtrip(fd, 0, CMD_TRIM, 3 << 20, K64, NULL, NULL, NULL);
    expect("trim", e, 0);
    fill(buf, K64, 0xc4);
    e = roundtrip(fd, 0, CMD_WRITE, 3 << 20, K64, buf, NULL, NULL);
    expect("write after trim", e, 0);
    e = roundtrip(fd, 0, CMD_FLUSH, 0, 0, NULL, NULL, NULL);
    expect("flush", e, 0);

    /* Block status over the whole export (capped at 4 GiB - 64 KiB). */
    uint32_t bl = size > 0xffff0000ULL ? 0xffff0000U : (uint32_t)size;
    e = roundtrip(fd, 0, CMD_BLOCK_STATUS, 0, bl, NULL, NULL, &r);
    check(e == 0 && r.extents >= 1 && r.extent_sum <= bl && r.context == ei.context_id,
          "block status", "%s, %u extents covering %u of %u bytes, context %u",
          errname(e), r.extents, r.extent_sum, bl, r.context);
    e = roundtrip(fd, CMD_FLAG_REQ_ONE, CMD_BLOCK_STATUS, 0, bl, NULL, NULL, &r);
    check(e == 0 && r.extents == 1, "block status REQ_ONE", "%s, %u extents",
          errname(e), r.extents);

    /* A soft disconnect: the server closes. */
    send_request(fd, 0, CMD_DISC, 0, 0, NULL);
    size_t junk;
    bool hung = hangs_up(fd, &junk);
    check(hung && junk == 0, "NBD_CMD_DISC", "server closed, %zu bytes after", junk);
    close(fd);
    free(buf);
    free(rb);
}

/* A read-only export refuses writes, trims and zeroes with EPERM and stays
 * in step (the write's payload is consumed). */
static void sc_readonly(void)
{
    struct export_info ei;
    int fd = open_export(&ei);
    unsigned char buf[65536];
    fill(buf, sizeof buf, 0x77);
    check(ei.flags & TF_READ_ONLY, "READ_ONLY flag", "flags 0x%x", ei.flags);
    expect("write on read-only", roundtrip(fd, 0, CMD_WRITE, 0, 65536, buf, NULL, NULL), NBD_EPERM);
    still_in_sync(fd, &ei, "a refused write");
    expect("write FUA on read-only",
           roundtrip(fd, CMD_FLAG_FUA, CMD_WRITE, 65536, 4096, buf, NULL, NULL), NBD_EPERM);
    expect("trim on read-only", roundtrip(fd, 0, CMD_TRIM, 0, 65536, NULL, NULL, NULL), NBD_EPERM);
    expect("write zeroes on read-only",
           roundtrip(fd, 0, CMD_WRITE_ZEROES, 0, 65536, NULL, NULL, NULL), NBD_EPERM);
    still_in_sync(fd, &ei, "refused trim and zeroes");
    uint32_t e = roundtrip(fd, 0, CMD_FLUSH, 0, 0, NULL, NULL, NULL);
    check(e == 0 || e == NBD_EPERM, "flush on read-only", "%s", errname(e));
    send_request(fd, 0, CMD_DISC, 0, 0, NULL);
    close(fd);
}

/* A write over the maximum payload: the server hangs up (it cannot be
 * expected to swallow an arbitrary payload), or at least refuses it. */
static void sc_oversized_write(void)
{
    struct export_info ei;
    int fd = open_export(&ei);
    const uint32_t len = MAX_PAYLOAD + 65536;
    send_request(fd, 0, CMD_WRITE, 0, len, NULL);
    unsigned char *buf = calloc(1, 1 << 20);
    if (!buf)
        die("calloc");
    memset(buf, 0x66, 1 << 20);
    uint32_t sent = 0;
    while (sent < len) {
        uint32_t n = len - sent < (1u << 20) ? len - sent : (1u << 20);
        if (send_all(fd, buf, n) < 0)
            break;
        sent += n;
    }
    struct reply r;
    unsigned char m[4];
    int e = recv_all(fd, m, 4);
    if (e == 1 || e < 0) {
        check(e == 1, "write over 32 MiB", "server hung up after %u payload bytes", sent);
    } else {
        /* A reply: only an error is acceptable; read it whole. */
        uint32_t magic = get32(m);
        if (magic == SIMPLE_REPLY_MAGIC) {
            unsigned char h[12];
            must_recv(fd, h, 12, "reply");
            r.error = get32(h);
        } else {
            r.error = 0;
            printf("# structured reply 0x%08x\n", magic);
            unsigned char h[16];
            must_recv(fd, h, 16, "reply");
            uint32_t pl = get32(h + 12);
            unsigned char p[256] = {0};
            if (pl >= 4 && pl <= sizeof p) {
                must_recv(fd, p, pl, "payload");
                r.error = CHUNK_IS_ERROR(get16(h + 2)) ? get32(p) : 0;
            }
        }
        check(r.error != 0, "write over 32 MiB", "server replied %s instead of hanging up",
              errname(r.error));
    }
    free(buf);
    close(fd);
}

/* A request with a bad magic: the server hangs up. */
static void sc_bad_magic(void)
{
    struct export_info ei;
    int fd = open_export(&ei);
    unsigned char h[28] = {0};
    put32(h, 0xdeadbeefU);
    put16(h + 6, CMD_READ);
    put32(h + 24, 4096);
    must_send(fd, h, sizeof h, "bad magic request");
    size_t junk;
    bool hung = hangs_up(fd, &junk);
    check(hung, "request with bad magic", "server closed (%zu bytes first)", junk);
    close(fd);
}

/* One client vanishes half-way through a write's payload (and another
 * right after a read request), while a second client keeps working: the
 * second one is served throughout and after.  The half-sent write covers
 * 8 MiB..9 MiB, which must stay as it was (the shell test checks). */
static void sc_vanish(void)
{
    struct export_info ei;
    int good = open_export(&ei);
    unsigned char *buf = malloc(1 << 20), *rb = malloc(1 << 20);
    if (!buf || !rb)
        die("malloc");
    int ok = 0;
    for (int round = 0; round < 8; round++) {
        struct export_info e2;
        int bad = open_export(&e2);
        fill(buf, 1 << 20, 0xbd);
        send_request(bad, 0, CMD_WRITE, 8 << 20, 1 << 20, NULL);
        must_send(bad, buf, 100000 + round * 4096, "part of the payload");
        if (round & 1) {
            struct linger l = { .l_onoff = 1, .l_linger = 0 };   /* RST */
            setsockopt(bad, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        close(bad);
        bad = open_export(&e2);
        send_request(bad, 0, CMD_READ, 0, 1 << 20, NULL);
        close(bad);                         /* gone before its reply */

        /* The good client writes and reads back its own block. */
        fill(buf, 65536, (unsigned char)(0x10 + round));
        uint32_t e = roundtrip(good, 0, CMD_WRITE, (10 << 20) + round * 65536ULL, 65536, buf, NULL, NULL);
        struct reply r;
        memset(rb, 0, 65536);
        uint32_t e2r = roundtrip(good, 0, CMD_READ, (10 << 20) + round * 65536ULL, 65536, NULL, rb, &r);
        ok += e == 0 && e2r == 0 && all(rb, 65536, (unsigned char)(0x10 + round));
    }
    check(ok == 8, "other client served while clients vanish", "%d of 8 rounds", ok);
    uint32_t e = roundtrip(good, 0, CMD_FLUSH, 0, 0, NULL, NULL, NULL);
    expect("flush after vanished clients", e, 0);
    send_request(good, 0, CMD_DISC, 0, 0, NULL);
    close(good);
    /* And a new client is accepted. */
    int fresh = open_export(&ei);
    still_in_sync(fresh, &ei, "vanished clients (new connection)");
    send_request(fresh, 0, CMD_DISC, 0, 0, NULL);
    close(fresh);
    free(buf);
    free(rb);
}

static const struct {
    const char *name;
    void (*run)(void);
} scenarios[] = {
    { "bad-client-flags", sc_bad_client_flags },
    { "bad-option-magic", sc_bad_option_magic },
    { "huge-option", sc_huge_option },
    { "truncated-option", sc_truncated_option },
    { "unknown-option", sc_unknown_option },
    { "unknown-export", sc_unknown_export },
    { "options", sc_options },
    { "transmission", sc_transmission },
    { "readonly", sc_readonly },
    { "oversized-write", sc_oversized_write },
    { "bad-magic", sc_bad_magic },
    { "vanish", sc_vanish },
};

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s HOST:PORT|unix:PATH SCENARIO [EXPORT]\nscenarios:", argv[0]);
        for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
            fprintf(stderr, " %s", scenarios[i].name);
        fputc('\n', stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    address = argv[1];
    if (argc > 3)
        export_name = argv[3];
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        if (strcmp(argv[2], scenarios[i].name) == 0) {
            scenarios[i].run();
            return failures ? 1 : 0;
        }
    }
    fprintf(stderr, "unknown scenario %s\n", argv[2]);
    return 2;
}
