/* qmp/client.c and qmp/unix.c against a scripted peer on a socketpair:
 * ids matched to replies, events queued, errors, deadlines, and a peer
 * that breaks the protocol or goes away. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/error.h"
#include "qmp/qmp.h"

#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, " \
                 "\"micro\": 0}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n"

static int peer;    /* the test's end of the socketpair */

static void say(const char *s)
{
    assert_int_equal(write(peer, s, strlen(s)), (ssize_t)strlen(s));
}

/* Reads one command line the client sent and checks its name and id. */
static json_t *heard(const char *cmd, int id)
{
    char buf[4096];
    size_t n = 0;
    json_t *j;

    /* A byte at a time: the next command may follow in the same segment. */
    while (n < sizeof buf - 1 && read(peer, buf + n, 1) == 1 && buf[n] != '\n')
        n++;
    buf[n] = '\0';
    j = json_loads(buf, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "execute")), cmd);
    assert_int_equal(json_integer_value(json_object_get(j, "id")), id);
    return j;
}

static void *open_thread(void *fd)
{
    return qmp_open_fd((int)(intptr_t)fd, 10000);
}

/* The client opens in a thread of its own while the test plays QEMU: a
 * reply written before its command was sent would be a protocol error. */
static struct qmp *connect_client(void)
{
    int sv[2];
    pthread_t t;
    void *q;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    peer = sv[1];
    assert_int_equal(pthread_create(&t, NULL, open_thread, (void *)(intptr_t)sv[0]), 0);
    say(GREETING);
    json_decref(heard("qmp_capabilities", 1));
    say("{\"return\": {}, \"id\": 1}\r\n");
    pthread_join(t, &q);
    assert_non_null(q);
    return q;
}

static int setup(void **state)
{
    *state = connect_client();
    return 0;
}

static int teardown(void **state)
{
    qmp_close(*state);
    close(peer);
    return 0;
}

static void greeting(void **state)
{
    struct qmp *q = *state;
    const json_t *g = qmp_greeting(q);

    assert_int_equal(json_integer_value(json_object_get(json_object_get(
        json_object_get(g, "version"), "qemu"), "major")), 7);
    assert_true(qmp_is_open(q));
}

static void replies_matched_and_events_queued(void **state)
{
    struct qmp *q = *state;
    uint64_t a, b;
    json_t *ret, *ev;

    assert_int_equal(qmp_send(q, "query-status", NULL, &a), 0);
    assert_int_equal(qmp_send(q, "query-block", json_pack("{s:b}", "flat", 1), &b), 0);
    json_decref(heard("query-status", 2));
    json_decref(heard("query-block", 3));
    /* Replies out of order, one of them split across two reads. */
    say("{\"event\": \"E1\", \"data\": {\"device\": \"x\"}}\r\n{\"return\": [3], \"i");
    say("d\": 3}\r\n{\"event\": \"E2\", \"data\": {\"device\": \"m0\"}}\r\n"
        "{\"return\": {\"status\": \"running\"}, \"id\": 2}\r\n");
    assert_int_equal(qmp_wait_reply(q, a, &ret, qmp_deadline_in(1000)), 0);
    assert_string_equal(json_string_value(json_object_get(ret, "status")), "running");
    json_decref(ret);
    assert_int_equal(qmp_wait_reply(q, b, &ret, qmp_deadline_in(1000)), 0);
    assert_int_equal(json_integer_value(json_array_get(ret, 0)), 3);
    json_decref(ret);
    /* E2 matches the predicate; E1 stays queued, in order. */
    assert_int_equal(qmp_wait_event(q, NULL, qmp_match_data, "device=m0", &ev,
                                    qmp_deadline_in(1000)), 0);
    assert_string_equal(json_string_value(json_object_get(ev, "event")), "E2");
    json_decref(ev);
    ev = qmp_next_event(q);
    assert_string_equal(json_string_value(json_object_get(ev, "event")), "E1");
    json_decref(ev);
    assert_null(qmp_next_event(q));
}

static void error_reply(void **state)
{
    struct qmp *q = *state;
    json_t *ret = (json_t *)1;

    say("{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command x has "
        "not been found\"}, \"id\": 2}\r\n");
    assert_int_equal(qmp_callf(q, &ret, qmp_deadline_in(1000), "x", "{s:i}", "a", 1), -1);
    assert_null(ret);
    assert_string_equal(qmp_error_class(q), "CommandNotFound");
    assert_string_equal(qmp_error_desc(q), "The command x has not been found");
    assert_string_equal(err_msg(), "x: CommandNotFound: The command x has not been found");
    json_t *cmd = heard("x", 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(cmd, "arguments"), "a")), 1);
    json_decref(cmd);
    assert_true(qmp_is_open(q));
    /* A success clears the class. */
    say("{\"return\": {}, \"id\": 3}\r\n");
    assert_int_equal(qmp_call(q, "y", NULL, NULL, qmp_deadline_in(1000)), 0);
    assert_null(qmp_error_class(q));
}

static void timeout_keeps_handle(void **state)
{
    struct qmp *q = *state;
    json_t *ev;

    assert_int_equal(qmp_call(q, "slow", NULL, NULL, qmp_deadline_in(50)), -1);
    assert_int_equal(err_errno(), ETIMEDOUT);
    assert_null(qmp_error_class(q));
    assert_true(qmp_is_open(q));
    assert_int_equal(qmp_wait_event(q, "NEVER", NULL, NULL, &ev, qmp_deadline_in(50)), -1);
    assert_int_equal(err_errno(), ETIMEDOUT);
    /* The late reply is kept aside and does not confuse the next call. */
    say("{\"return\": 1, \"id\": 2}\r\n{\"return\": 2, \"id\": 3}\r\n");
    json_t *ret;
    assert_int_equal(qmp_call(q, "next", NULL, &ret, qmp_deadline_in(1000)), 0);
    assert_int_equal(json_integer_value(ret), 2);
    json_decref(ret);
}

static void peer_closes(void **state)
{
    struct qmp *q = *state;
    json_t *ev;

    assert_int_equal(qmp_send(q, "query-status", NULL, NULL), 0);
    shutdown(peer, SHUT_WR);
    assert_int_equal(qmp_wait_reply(q, 2, NULL, qmp_deadline_in(10000)), -1);
    assert_int_equal(err_errno(), EPIPE);
    assert_false(qmp_is_open(q));
    assert_int_equal(qmp_call(q, "again", NULL, NULL, qmp_deadline_in(10000)), -1);
    assert_int_equal(qmp_wait_event(q, NULL, NULL, NULL, &ev, qmp_deadline_in(10000)), -1);
    assert_int_equal(qmp_fd(q), -1);
}

static void expect_broken(struct qmp *q, const char *garbage)
{
    say(garbage);
    assert_int_equal(qmp_call(q, "c", NULL, NULL, qmp_deadline_in(10000)), -1);
    assert_false(qmp_is_open(q));
}

static void garbage(void **state)
{
    expect_broken(*state, "this is not json\r\n");
}

static void unknown_id(void **state)
{
    expect_broken(*state, "{\"return\": {}, \"id\": 99}\r\n");
}

static void neither_reply_nor_event(void **state)
{
    expect_broken(*state, "{\"hello\": 1}\r\n");
}

static void second_greeting(void **state)
{
    expect_broken(*state, GREETING);
}

static void no_greeting_first(void **state)
{
    int sv[2];

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(write(sv[1], "{\"event\": \"X\"}\r\n", 16), 16);
    assert_null(qmp_open_fd(sv[0], 1000));
    close(sv[1]);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_null(qmp_open_fd(sv[0], 50));        /* silence: a timeout */
    assert_int_equal(err_errno(), ETIMEDOUT);
    close(sv[1]);
}

static void bad_addresses(void **state)
{
    (void)state;
    assert_null(qmp_open("tcp:1.2.3.4:5", 100));
    assert_null(qmp_open("unix:/nonexistent/qmp.sock", 100));
    assert_int_equal(err_errno(), ENOENT);
    assert_null(qmp_open("libvirt:", 100));
    assert_null(qmp_open("libvirt:dom?url=x", 100));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(greeting, setup, teardown),
        cmocka_unit_test_setup_teardown(replies_matched_and_events_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(error_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(timeout_keeps_handle, setup, teardown),
        cmocka_unit_test_setup_teardown(peer_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_id, setup, teardown),
        cmocka_unit_test_setup_teardown(neither_reply_nor_event, setup, teardown),
        cmocka_unit_test_setup_teardown(second_greeting, setup, teardown),
        cmocka_unit_test(no_greeting_first),
        cmocka_unit_test(bad_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
