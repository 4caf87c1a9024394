/* TLS for volmig serve: GnuTLS credentials and one proxy thread per TLS
 * connection.
 *
 * The serve loop speaks plaintext over io_uring, and there is no kernel
 * TLS to lean on.  So once a client's NBD_OPT_STARTTLS has been
 * acknowledged, the loop hands the TCP socket to a thread here, which runs
 * the TLS handshake and then pumps bytes between the TLS session and one
 * end of a socketpair; the loop carries on with the other end as if it were
 * the client's socket.  The loop stays one thread and one ring; TLS costs
 * one thread per TLS client and two copies through the socketpair.
 *
 * Ownership: nbd_tls_proxy_start() takes the TCP socket; the thread closes
 * it and its own end of the socketpair when either side is done.  The
 * credentials outlive every thread: nbd_tls_free() waits for them.
 */
#include "nbd/internal.h"
#include "common/clock.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PUMP_BUF      (1U << 20)      /* per direction */
#define RECORD_ROOM   (16U << 10)     /* one TLS record's plaintext at most */
#define PAIR_SOCKBUF  (4 << 20)
#define BYE_MS        1000
#define FREE_WAIT_S   10

struct nbd_tls {
    gnutls_certificate_credentials_t x509;  /* owned; NULL with PSK */
    gnutls_psk_server_credentials_t psk;    /* owned; NULL with X.509 */
    bool verify_clients;                    /* ca-cert.pem was given */
    int verbose;
    void (*log)(const char *fmt, ...);
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int nthreads;                           /* proxies running, under mu */
};

struct proxy {
    struct nbd_tls *t;
    gnutls_session_t sess;
    int net;                 /* the client's TCP socket */
    int app;                 /* our end of the socketpair; the loop has the other */
    char peer[80];
    int64_t deadline_ms;     /* for the TLS handshake */
    uint8_t *down;           /* plaintext from the client, on its way to the loop */
    size_t down_len, down_off;
    uint8_t *up;             /* plaintext from the loop, on its way to the client */
    size_t up_len, up_off;
    bool net_eof, app_eof;
    bool app_shut;           /* the loop was told the client is done */
    bool send_blocked;       /* gnutls_record_send said EAGAIN */
    bool recv_wants_out;     /* gnutls_record_recv said EAGAIN while writing */
};

static void tlog(struct nbd_tls *t, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    if (!t->log)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    t->log("%s", buf);
}

/* ---- credentials ---- */

static int readable(const char *what, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        err_set(errno, "%s %s", what, path);
        return -1;
    }
    close(fd);
    return 0;
}

static int load_x509(struct nbd_tls *t, const char *dir)
{
    char cert[4200], key[4200], ca[4200];
    int r;

    snprintf(cert, sizeof cert, "%s/server-cert.pem", dir);
    snprintf(key, sizeof key, "%s/server-key.pem", dir);
    snprintf(ca, sizeof ca, "%s/ca-cert.pem", dir);
    if (readable("--tls-creds: server certificate", cert) < 0 ||
        readable("--tls-creds: server key", key) < 0)
        return -1;
    if (gnutls_certificate_allocate_credentials(&t->x509) < 0) {
        err_set(ENOMEM, "gnutls credentials");
        return -1;
    }
    r = gnutls_certificate_set_x509_key_file(t->x509, cert, key, GNUTLS_X509_FMT_PEM);
    if (r < 0) {
        err_set(0, "--tls-creds: %s with %s: %s", cert, key, gnutls_strerror(r));
        return -1;
    }
    if (access(ca, F_OK) < 0)
        return 0;
    /* With a CA, clients must show a certificate it signed: TLS is then
     * access control as well as encryption (QEMU's verify-peer=on). */
    r = gnutls_certificate_set_x509_trust_file(t->x509, ca, GNUTLS_X509_FMT_PEM);
    if (r <= 0) {
        err_set(0, "--tls-creds: CA certificate %s: %s", ca,
                r < 0 ? gnutls_strerror(r) : "no certificate in it");
        return -1;
    }
    t->verify_clients = true;
    return 0;
}

/* GnuTLS reads the PSK file at each handshake; checking it now turns a
 * typo into an error at start rather than a refused client later. */
static int check_psk_file(const char *path)
{
    FILE *f = fopen(path, "re");
    char line[1024];
    int n = 0, lineno = 0;

    if (!f) {
        err_set(errno, "--tls-psk %s", path);
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':'), *hex;
        size_t len;

        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0])
            continue;
        hex = colon ? colon + 1 : NULL;
        len = hex ? strlen(hex) : 0;
        if (!colon || colon == line || !len || len % 2 || strspn(hex, "0123456789abcdefABCDEF") != len) {
            err_set(0, "--tls-psk %s, line %d: not USERNAME:HEXKEY (psktool writes this format)",
                    path, lineno);
            fclose(f);
            return -1;
        }
        n++;
    }
    fclose(f);
    if (!n) {
        err_set(0, "--tls-psk %s: no keys in it", path);
        return -1;
    }
    return 0;
}

static int load_psk(struct nbd_tls *t, const char *path)
{
    int r;

    if (check_psk_file(path) < 0)
        return -1;
    if (gnutls_psk_allocate_server_credentials(&t->psk) < 0) {
        err_set(ENOMEM, "gnutls PSK credentials");
        return -1;
    }
    r = gnutls_psk_set_server_credentials_file(t->psk, path);
    if (r < 0) {
        err_set(0, "--tls-psk %s: %s", path, gnutls_strerror(r));
        return -1;
    }
    return 0;
}

struct nbd_tls *nbd_tls_new(const char *x509_dir, const char *psk_file, int verbose,
                            void (*log)(const char *fmt, ...))
{
    struct nbd_tls *t = calloc(1, sizeof *t);
    int r;

    if (!t) {
        err_set(ENOMEM, "TLS");
        return NULL;
    }
    t->verbose = verbose;
    t->log = log;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    r = x509_dir ? load_x509(t, x509_dir) : load_psk(t, psk_file);
    if (r < 0) {
        nbd_tls_free(t);
        return NULL;
    }
    return t;
}

const char *nbd_tls_describe(const struct nbd_tls *t)
{
    if (t->psk)
        return "TLS required (PSK)";
    return t->verify_clients ? "TLS required (X.509, client certificates verified)"
                             : "TLS required (X.509, server authentication only)";
}

void nbd_tls_free(struct nbd_tls *t)
{
    struct timespec until;
    bool idle;

    if (!t)
        return;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += FREE_WAIT_S;
    pthread_mutex_lock(&t->mu);
    while (t->nthreads && pthread_cond_timedwait(&t->cv, &t->mu, &until) == 0)
        ;
    idle = t->nthreads == 0;
    pthread_mutex_unlock(&t->mu);
    if (!idle) {
        /* A proxy still uses the credentials: leaking them is the safe
         * choice, and the process is about to exit anyway. */
        tlog(t, "TLS proxies still running after %d s; exiting without waiting", FREE_WAIT_S);
        return;
    }
    if (t->x509)
        gnutls_certificate_free_credentials(t->x509);
    if (t->psk)
        gnutls_psk_free_server_credentials(t->psk);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* ---- the proxy thread ---- */

static int session_new(struct proxy *p)
{
    struct nbd_tls *t = p->t;
    int r;

    r = gnutls_init(&p->sess, GNUTLS_SERVER | GNUTLS_NONBLOCK);
    if (r < 0)
        return r;
    if (t->psk) {
        /* A TLS 1.3 PSK is bound to SHA-256, which rules AES-256-GCM out;
         * clients then tend to pick ChaCha20, which is several times slower
         * than AES-128-GCM on CPUs with AES instructions.  So ChaCha20 goes
         * last, and our order wins. */
        r = gnutls_set_default_priority_append(
            p->sess, "+ECDHE-PSK:+DHE-PSK:+PSK:-CHACHA20-POLY1305:+CHACHA20-POLY1305:%SERVER_PRECEDENCE",
            NULL, 0);
        if (r == 0)
            r = gnutls_credentials_set(p->sess, GNUTLS_CRD_PSK, t->psk);
    } else {
        r = gnutls_set_default_priority(p->sess);
        if (r == 0)
            r = gnutls_credentials_set(p->sess, GNUTLS_CRD_CERTIFICATE, t->x509);
        if (r == 0 && t->verify_clients) {
            gnutls_certificate_server_set_request(p->sess, GNUTLS_CERT_REQUIRE);
            gnutls_session_set_verify_cert(p->sess, NULL, 0);
        }
    }
    if (r == 0)
        gnutls_transport_set_int(p->sess, p->net);
    return r;
}

static void log_handshake_failure(struct proxy *p, int r)
{
    gnutls_datum_t why = { NULL, 0 };

    if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR &&
        gnutls_certificate_verification_status_print(gnutls_session_get_verify_cert_status(p->sess),
                                                     GNUTLS_CRT_X509, &why, 0) == 0) {
        tlog(p->t, "client %s: TLS handshake failed: %s: %s", p->peer, gnutls_strerror(r),
             why.data);
        gnutls_free(why.data);
        return;
    }
    tlog(p->t, "client %s: TLS handshake failed: %s", p->peer, gnutls_strerror(r));
}

/* Runs the handshake on the non-blocking socket until it is done, fails,
 * the deadline passes, or the loop gives up on the client (its end of the
 * socketpair closes; it sends nothing before TLS is up). */
static int handshake(struct proxy *p)
{
    for (;;) {
        struct pollfd pfd[2];
        int64_t left;
        int r = gnutls_handshake(p->sess);

        if (r == 0)
            return 0;
        if (gnutls_error_is_fatal(r)) {
            log_handshake_failure(p, r);
            return -1;
        }
        left = p->deadline_ms - clock_ms();
        if (left <= 0) {
            tlog(p->t, "client %s: no TLS handshake in time; disconnecting", p->peer);
            return -1;
        }
        pfd[0].fd = p->net;
        pfd[0].events = gnutls_record_get_direction(p->sess) ? POLLOUT : POLLIN;
        pfd[1].fd = p->app;
        pfd[1].events = POLLIN;
        if (poll(pfd, 2, (int)(left < 1000 ? left : 1000)) < 0 && errno != EINTR)
            return -1;
        if (pfd[1].revents)
            return -1;
    }
}

/* One step of each direction that can go without waiting.  Returns 1 if
 * something moved, 0 if everything must wait, -1 when the proxy is done. */
static int pump_step(struct proxy *p)
{
    int moved = 0;
    ssize_t n;

    /* client -> loop: decrypt as much as there is room for, then write. */
    while (!p->net_eof && p->down_len + RECORD_ROOM <= PUMP_BUF) {
        n = gnutls_record_recv(p->sess, p->down + p->down_len, PUMP_BUF - p->down_len);
        if (n > 0) {
            p->down_len += (size_t)n;
            moved = 1;
        } else if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION) {
            p->net_eof = true;   /* a client that hangs up has said all it will */
            moved = 1;
        } else if (n == GNUTLS_E_AGAIN) {
            p->recv_wants_out = gnutls_record_get_direction(p->sess) == 1;
            break;
        } else if (n != GNUTLS_E_INTERRUPTED && gnutls_error_is_fatal((int)n)) {
            if (p->t->verbose)
                tlog(p->t, "client %s: TLS receive failed: %s", p->peer, gnutls_strerror((int)n));
            return -1;
        }
    }
    if (p->down_off < p->down_len) {
        n = write(p->app, p->down + p->down_off, p->down_len - p->down_off);
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -1;   /* the loop closed the connection */
        if (n > 0) {
            p->down_off += (size_t)n;
            moved = 1;
        }
        if (p->down_off == p->down_len)
            p->down_off = p->down_len = 0;
    }
    if (p->net_eof && p->down_len == 0 && !p->app_shut) {
        /* The loop sees the client's end as it would over plain TCP, and
         * replies it still owes go out until it closes its end. */
        shutdown(p->app, SHUT_WR);
        p->app_shut = true;
        moved = 1;
    }
    /* loop -> client: read a batch, then encrypt it record by record. */
    if (!p->app_eof && p->up_len == 0) {
        n = read(p->app, p->up, PUMP_BUF);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            p->app_eof = true;
        if (n > 0) {
            p->up_len = (size_t)n;
            p->up_off = 0;
        }
        if (n >= 0)
            moved = 1;
    }
    while (p->up_off < p->up_len) {
        /* After EAGAIN GnuTLS wants the same arguments again: they are. */
        n = gnutls_record_send(p->sess, p->up + p->up_off, p->up_len - p->up_off);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
            p->send_blocked = true;
            break;
        }
        if (n < 0)
            return -1;
        p->send_blocked = false;
        p->up_off += (size_t)n;
        moved = 1;
    }
    if (p->up_off == p->up_len)
        p->up_len = p->up_off = 0;
    if (p->app_eof && p->up_len == 0)
        return -1;
    return moved;
}

static void pump(struct proxy *p)
{
    for (;;) {
        struct pollfd pfd[2] = { { .fd = p->net }, { .fd = p->app } };
        int r = pump_step(p);

        if (r < 0)
            return;
        if (r > 0)
            continue;
        if (!p->net_eof && p->down_len + RECORD_ROOM <= PUMP_BUF)
            pfd[0].events |= p->recv_wants_out ? POLLOUT : POLLIN;
        if (p->up_len && p->send_blocked)
            pfd[0].events |= POLLOUT;
        if (!p->app_eof && p->up_len == 0)
            pfd[1].events |= POLLIN;
        if (p->down_len)
            pfd[1].events |= POLLOUT;
        /* Idle clients may stay idle: as long as over plain TCP. */
        if (poll(pfd, 2, -1) < 0 && errno != EINTR)
            return;
    }
}

/* Says goodbye within a short time; a client that does not read its
 * close_notify does not hold the thread. */
static void bye(struct proxy *p)
{
    int64_t until = clock_ms() + BYE_MS;

    while (gnutls_bye(p->sess, GNUTLS_SHUT_WR) == GNUTLS_E_AGAIN && clock_ms() < until) {
        struct pollfd pfd = { .fd = p->net, .events = POLLOUT };

        poll(&pfd, 1, BYE_MS);
    }
}

static void *proxy_main(void *arg)
{
    struct proxy *p = arg;
    struct nbd_tls *t = p->t;
    int r = session_new(p);

    if (r < 0) {
        tlog(t, "client %s: TLS session: %s", p->peer, gnutls_strerror(r));
    } else if (handshake(p) == 0) {
        if (t->verbose) {
            char *desc = gnutls_session_get_desc(p->sess);

            tlog(t, "client %s: TLS established %s", p->peer, desc ? desc : "");
            gnutls_free(desc);
        }
        pump(p);
        if (!p->net_eof)
            bye(p);
    }
    if (p->sess)
        gnutls_deinit(p->sess);
    close(p->net);
    close(p->app);
    free(p->down);
    free(p->up);
    free(p);
    pthread_mutex_lock(&t->mu);
    t->nthreads--;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int nbd_tls_proxy_start(struct nbd_tls *t, int net, const char *peer, int timeout_s)
{
    struct proxy *p = calloc(1, sizeof *p);
    int sv[2] = { -1, -1 }, sz = PAIR_SOCKBUF;
    pthread_attr_t attr;
    pthread_t th;
    int r;

    if (!p || !(p->down = malloc(PUMP_BUF)) || !(p->up = malloc(PUMP_BUF))) {
        err_set(ENOMEM, "TLS proxy");
        goto fail;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        err_set(errno, "socketpair");
        goto fail;
    }
    for (int i = 0; i < 2; i++) {
        setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    }
    if (fcntl(net, F_SETFL, fcntl(net, F_GETFL) | O_NONBLOCK) < 0 ||
        fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK) < 0) {
        err_set(errno, "fcntl O_NONBLOCK");
        goto fail;
    }
    p->t = t;
    p->net = net;
    p->app = sv[1];
    snprintf(p->peer, sizeof p->peer, "%s", peer);
    p->deadline_ms = clock_ms() + (int64_t)timeout_s * 1000;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&t->mu);
    r = pthread_create(&th, &attr, proxy_main, p);
    if (r == 0)
        t->nthreads++;
    pthread_mutex_unlock(&t->mu);
    pthread_attr_destroy(&attr);
    if (r) {
        err_set(r, "TLS proxy thread");
        goto fail;
    }
    /* From here the thread owns net, sv[1] and p; sv[0] is the caller's. */
    return sv[0];
fail:
    if (sv[0] >= 0) {
        close(sv[0]);
        close(sv[1]);
    }
    if (p) {
        free(p->down);
        free(p->up);
        free(p);
    }
    close(net);
    return -1;
}
