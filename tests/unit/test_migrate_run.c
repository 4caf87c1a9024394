/* The run core's attempt loop (engine/migrate_run.c) against a scripted
 * QMP peer on a socketpair: a failed attempt and its retry after the
 * backoff, a backoff that doubles, a refusal that is not retried, QEMU
 * lost during the backoff, and a cancel during the backoff.  A stand-in
 * strategy makes one QMP call per attempt and fails as the test says. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/error.h"
#include "engine/migrate_run.h"
#include "qmp/qmp.h"

#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, " \
                 "\"micro\": 0}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n"

/* ---- the peer: answers every command; "blockdev-mirror" with an error
 * when told to; hangs up 50 ms after answering `hangup_after` commands
 * (0: never) ---- */

struct peer {
    int fd;
    int commands;
    int hangup_after;
    const char *mirror_error;   /* desc of a GenericError, NULL: success */
};

static void say(int fd, const char *s)
{
    ssize_t n = write(fd, s, strlen(s));

    (void)n;
}

static void *peer_main(void *opaque)
{
    struct peer *p = opaque;
    char buf[4096];

    say(p->fd, GREETING);
    for (;;) {
        size_t n = 0;
        json_t *j;
        const char *cmd;
        char reply[1024];
        json_int_t id;

        while (n < sizeof buf - 1 && read(p->fd, buf + n, 1) == 1 && buf[n] != '\n')
            n++;
        if (n == 0)
            break;
        buf[n] = '\0';
        j = json_loads(buf, 0, NULL);
        if (!j)
            break;
        cmd = json_string_value(json_object_get(j, "execute"));
        id = json_integer_value(json_object_get(j, "id"));
        p->commands++;
        if (cmd && !strcmp(cmd, "blockdev-mirror") && p->mirror_error)
            snprintf(reply, sizeof reply, "{\"error\": {\"class\": \"GenericError\", "
                     "\"desc\": \"%s\"}, \"id\": %lld}\r\n", p->mirror_error, (long long)id);
        else
            snprintf(reply, sizeof reply, "{\"return\": {}, \"id\": %lld}\r\n", (long long)id);
        json_decref(j);
        say(p->fd, reply);
        if (p->hangup_after && p->commands == p->hangup_after) {
            usleep(50000);
            break;
        }
    }
    shutdown(p->fd, SHUT_RDWR);
    return NULL;
}

/* ---- the stand-in strategy ---- */

struct script {
    int fail_until;        /* attempts before this one fail (RETRY) */
    int attempts, cleanups;
    json_t *events;        /* every event, in order */
    volatile sig_atomic_t cancel;
    bool cancel_on_retrying;
};

static struct script S;

static enum attempt stub_attempt(struct mig_run *r, int attempt)
{
    S.attempts++;
    /* The call a real strategy would make: it may fail, or find QEMU gone. */
    if (qmp_callf(r->q, NULL, run_dl(2000), "blockdev-mirror", "{s:s}", "job-id", "x") < 0)
        return run_qmp_failed(r, ATT_RETRY);
    if (attempt < S.fail_until) {
        err_set(EIO, "attempt %d broke", attempt + 1);
        return ATT_RETRY;
    }
    return ATT_OK;
}

static void stub_cleanup(struct mig_run *r)
{
    (void)r;
    S.cleanups++;
}

static const struct mig_strategy stub = {
    .name = "stub", .attempt = stub_attempt, .cleanup = stub_cleanup,
};

static void collect(void *opaque, json_t *ev)
{
    (void)opaque;
    if (S.cancel_on_retrying &&
        !strcmp(json_string_value(json_object_get(ev, "event")), "retrying"))
        S.cancel = 1;
    json_array_append_new(S.events, ev);
}

/* The names of the events, space-separated. */
static const char *names(void)
{
    static char buf[1024];
    size_t i;
    json_t *e;

    buf[0] = '\0';
    json_array_foreach(S.events, i, e) {
        strcat(buf, json_string_value(json_object_get(e, "event")));
        strcat(buf, " ");
    }
    return buf;
}

static json_t *event(const char *name, int nth)
{
    size_t i;
    json_t *e;

    json_array_foreach(S.events, i, e)
        if (!strcmp(json_string_value(json_object_get(e, "event")), name) && nth-- == 0)
            return e;
    return NULL;
}

/* Runs the loop against a peer; returns its result and the time it took. */
static enum mig_result run(struct peer *p, int retries, double backoff, double *secs)
{
    struct mig_config cfg = {
        .retries = retries, .backoff_s = backoff, .cancel = &S.cancel, .emit = collect,
    };
    struct mig_run r = { .cfg = &cfg, .strategy = &stub };
    int sv[2];
    pthread_t t;
    enum mig_result res;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    p->fd = sv[1];
    assert_int_equal(pthread_create(&t, NULL, peer_main, p), 0);
    r.q = qmp_open_fd(sv[0], 5000);
    assert_non_null(r.q);
    r.t0 = qmp_now_ms();
    res = run_attempts(&r);
    *secs = run_secs(&r);
    qmp_close(r.q);
    pthread_join(t, NULL);
    close(sv[1]);
    return res;
}

static int setup(void **state)
{
    (void)state;
    memset(&S, 0, sizeof S);
    S.events = json_array();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    json_decref(S.events);
    return 0;
}

static void retry_after_backoff(void **state)
{
    struct peer p = { 0 };
    double secs;

    (void)state;
    S.fail_until = 1;
    assert_int_equal(run(&p, 3, 0.3, &secs), MIG_DONE);
    assert_string_equal(names(), "failed retrying completed ");
    assert_int_equal(S.attempts, 2);
    assert_int_equal(S.cleanups, 1);
    assert_string_equal(json_string_value(json_object_get(event("failed", 0), "error")),
                        "attempt 1 broke: Input/output error");
    assert_int_equal(json_integer_value(json_object_get(event("retrying", 0), "attempt")), 2);
    assert_true(json_real_value(json_object_get(event("retrying", 0), "delay")) == 0.3);
    assert_true(secs >= 0.3);
    assert_true(secs < 3);
}

static void backoff_doubles_then_fails(void **state)
{
    struct peer p = { 0 };
    double secs;

    (void)state;
    S.fail_until = 100;
    assert_int_equal(run(&p, 2, 0.1, &secs), MIG_FAILED);
    assert_string_equal(names(), "failed retrying failed retrying failed ");
    assert_true(json_real_value(json_object_get(event("retrying", 0), "delay")) == 0.1);
    assert_true(json_real_value(json_object_get(event("retrying", 1), "delay")) == 0.2);
    assert_int_equal(S.cleanups, 3);
    assert_true(secs >= 0.3);
    assert_string_equal(err_msg(), "attempt 3 broke: Input/output error");
}

static void refused_arguments_not_retried(void **state)
{
    struct peer p = { .mirror_error = "Parameter 'granularity' expects a value in range "
                                      "[512B, 64MB]" };
    double secs;

    (void)state;
    assert_int_equal(run(&p, 3, 0.1, &secs), MIG_FAILED);
    assert_string_equal(names(), "failed ");
    assert_int_equal(S.attempts, 1);
    assert_non_null(strstr(err_msg(), "granularity"));
}

static void transient_error_retried(void **state)
{
    struct peer p = { .mirror_error = "Failed to connect to '127.0.0.1:1': Connection refused" };
    double secs;

    (void)state;
    assert_int_equal(run(&p, 1, 0.05, &secs), MIG_FAILED);
    assert_string_equal(names(), "failed retrying failed ");
    assert_int_equal(S.attempts, 2);
}

static void qemu_lost_during_backoff(void **state)
{
    /* The greeting's qmp_capabilities, attempt 1's call, then QEMU dies
     * while the loop waits out the 0.5 s backoff. */
    struct peer p = { .hangup_after = 2 };
    double secs;

    (void)state;
    S.fail_until = 100;
    assert_int_equal(run(&p, 3, 0.5, &secs), MIG_FAILED);
    assert_string_equal(names(), "failed retrying lost ");
    assert_int_equal(S.attempts, 2);
    assert_true(secs < 0.5);
    assert_int_equal(S.cleanups, 1);
    assert_non_null(strstr(err_msg(), "manual recovery is needed"));
    assert_non_null(strstr(json_string_value(json_object_get(event("lost", 0), "error")),
                           "QEMU's monitor went away"));
}

static void cancel_during_backoff(void **state)
{
    struct peer p = { 0 };
    double secs;

    (void)state;
    S.fail_until = 100;
    S.cancel_on_retrying = true;
    assert_int_equal(run(&p, 3, 30, &secs), MIG_CANCELLED);
    assert_string_equal(names(), "failed retrying cancelled ");
    assert_int_equal(S.attempts, 1);
    assert_true(secs < 5);
}

static void permanent_errors(void **state)
{
    (void)state;
    assert_true(mig_error_permanent("migrate", "GenericError",
                                    "Parameter 'uri' expects a valid migration protocol"));
    assert_true(mig_error_permanent("migrate", "GenericError", "error parsing address 'x'"));
    assert_true(mig_error_permanent("x", "CommandNotFound", "The command x has not been found"));
    assert_true(mig_error_permanent("blockdev-mirror", "GenericError",
                                    "Cannot find device='a' nor node-name='a'"));
    assert_false(mig_error_permanent("blockdev-add", "GenericError",
                                     "Failed to connect to '127.0.0.1:1': Connection refused"));
    assert_false(mig_error_permanent("migrate", NULL, NULL));
    assert_false(mig_error_permanent("job-complete", "GenericError",
                                     "The active block job 'm0' cannot be completed"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(retry_after_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(backoff_doubles_then_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_arguments_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(transient_error_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(qemu_lost_during_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_during_backoff, setup, teardown),
        cmocka_unit_test(permanent_errors),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
