/* qmp/: a client for QEMU's QMP monitor, for code that runs without threads.
 *
 * Two transports behind one handle:
 *   unix:PATH                    QEMU's own -qmp unix:PATH socket
 *   libvirt:DOMAIN[?uri=URI]     a QEMU that libvirt owns, through
 *                                virDomainQemuMonitorCommand and the QEMU
 *                                monitor event API (default uri qemu:///system)
 *
 * Every call that waits takes an absolute deadline (qmp_deadline_in()), so
 * nothing here blocks for longer than its caller allowed.  A monitor that
 * closes, dies, or sends something that is not QMP is an error, after which
 * the handle is closed for good (qmp_is_open() says so) and every later call
 * fails at once.  Errors follow common/error.h: -1 and a message in err_msg().
 *
 * JSON is jansson's json_t.  Ownership: arguments passed in are stolen
 * (the library drops the reference); replies and events handed out belong
 * to the caller, who json_decref()s them.
 */
#ifndef VOLMIG_QMP_H
#define VOLMIG_QMP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct qmp;

/* Deadlines are CLOCK_MONOTONIC milliseconds. */
int64_t qmp_now_ms(void);
int64_t qmp_deadline_in(int64_t timeout_ms);

/* Connects, reads the greeting and negotiates capabilities (unix), or finds
 * the running domain (libvirt).  NULL on failure, with err_msg() set. */
struct qmp *qmp_open(const char *addr, int64_t timeout_ms);
/* Same over an already connected stream socket; the handle owns fd from
 * here on, also on failure.  Used by tests and by callers that connect
 * themselves. */
struct qmp *qmp_open_fd(int fd, int64_t timeout_ms);
void qmp_close(struct qmp *q);

/* The greeting's "QMP" object ({"version":…, "capabilities":…}).  For the
 * libvirt transport, which has no greeting of its own, the version comes
 * from query-version.  Borrowed: valid until qmp_close(). */
const json_t *qmp_greeting(const struct qmp *q);
bool qmp_is_open(const struct qmp *q);

/* Sends one command; *id (if not NULL) receives the id to wait on.
 * args: an object or NULL, stolen. */
int qmp_send(struct qmp *q, const char *cmd, json_t *args, uint64_t *id);
/* Waits for the reply to id.  0: *ret is the "return" value (caller owns).
 * -1: an error.  If QEMU replied with an error, qmp_error_class() names
 * its class and err_msg() reads "CMD: CLASS: DESC"; otherwise the error is
 * local (timeout, closed monitor) and qmp_error_class() is NULL.  Events
 * that arrive while waiting are queued for qmp_wait_event(). */
int qmp_wait_reply(struct qmp *q, uint64_t id, json_t **ret, int64_t deadline);
/* qmp_send() then qmp_wait_reply(); ret may be NULL to drop the value. */
int qmp_call(struct qmp *q, const char *cmd, json_t *args, json_t **ret,
             int64_t deadline);
/* As qmp_call(), with the arguments built by json_pack(fmt, ...), e.g.
 *   qmp_callf(q, NULL, dl, "block-job-cancel", "{s:s, s:b}",
 *             "device", "m0", "force", false);
 * fmt NULL means no arguments. */
int qmp_callf(struct qmp *q, json_t **ret, int64_t deadline, const char *cmd,
              const char *fmt, ...);
/* The class of the error in the last failed reply ("GenericError",
 * "CommandNotFound", …), or NULL if the last failure was not QEMU's. */
const char *qmp_error_class(const struct qmp *q);
/* Its description, as QEMU wrote it; NULL like qmp_error_class(). */
const char *qmp_error_desc(const struct qmp *q);

/* Event matching: name NULL matches any event; pred NULL accepts all.
 * The predicate sees the whole event ({"event", "data", "timestamp"}). */
typedef bool (*qmp_event_pred)(const json_t *event, void *opaque);

/* Waits for the first queued or arriving event that matches, removes it
 * from the queue and hands it over (*event, caller owns).  Events that do
 * not match stay queued, in order.  -1 on timeout or a dead monitor. */
int qmp_wait_event(struct qmp *q, const char *name, qmp_event_pred pred,
                   void *opaque, json_t **event, int64_t deadline);
/* Pops the oldest queued event without waiting; NULL if none. */
json_t *qmp_next_event(struct qmp *q);
/* A predicate for the common case: event data[key] is the string *opaque
 * is compared against, given as "KEY=VALUE". */
bool qmp_match_data(const json_t *event, void *key_eq_value);

/* For a caller's own poll loop (the console waits on this and a terminal):
 * readable means qmp_pump() has something to do.  */
int qmp_fd(const struct qmp *q);
/* Reads whatever the monitor sent, without waiting past deadline: queues
 * events and replies.  1 if anything arrived, 0 if nothing did by the
 * deadline, -1 if the monitor is gone. */
int qmp_pump(struct qmp *q, int64_t deadline);

/* The wire trace hook: called with every message sent ("->") and
 * received ("<-") as compact JSON.  fn NULL turns it off; q NULL sets the
 * default for handles opened afterwards (to see the handshake too). */
typedef void (*qmp_trace_fn)(const char *dir, const char *json, void *opaque);
void qmp_set_trace(struct qmp *q, qmp_trace_fn fn, void *opaque);

/* ---- framing: bytes in, complete JSON messages out (pure; fuzzed) ---- */

/* The largest message accepted; QEMU's own replies stay far below this
 * (query-qmp-schema, the largest, is a few hundred KiB). */
#define QMP_MAX_MESSAGE (16u << 20)

struct qmp_frame {
    char *buf;          /* bytes received and not yet handed out */
    size_t len, cap;
    size_t scan;        /* bytes of buf already scanned */
    size_t max;         /* largest message accepted */
    int depth;          /* nesting of the message being scanned */
    bool in_string, escape;
    bool broken;        /* an error was reported; nothing more comes out */
};

void qmp_frame_init(struct qmp_frame *f, size_t max);
void qmp_frame_free(struct qmp_frame *f);
/* Appends bytes. -1 (err_msg set) if out of memory or already broken. */
int qmp_frame_feed(struct qmp_frame *f, const void *data, size_t n);
/* 1: *msg is the next complete JSON object (caller owns); 0: more bytes
 * are needed; -1: the stream is not QMP (not an object, malformed, larger
 * than max) and the frame is broken for good. */
int qmp_frame_next(struct qmp_frame *f, json_t **msg);

/* ---- the qmp-shell shorthand (pure; used by the console) ---- */

/* Parses one console line into a command object {"execute", "arguments"}:
 *   - raw JSON: {"execute": "query-status"}
 *   - shorthand: blockdev-mirror job-id=m0 device=disk0 sync=full
 *     target.driver=null-co speed=0 force=true opts={"a": [1]}
 *     values: integers, reals, true/false/null, JSON objects and arrays,
 *     "quoted strings" (to keep spaces or stop typing, e.g. "123"),
 *     anything else is a string; dotted keys build nested objects.
 * NULL on a syntax error, with err_msg() set. */
json_t *qmp_shell_parse(const char *line);

/* ---- the schema, for completion ---- */

/* Names of arguments of cmd, as dotted paths for nested objects (up to
 * depth levels deep), from a query-qmp-schema reply.  A new array of
 * strings (caller owns); empty if cmd is unknown. */
json_t *qmp_schema_arg_names(const json_t *schema, const char *cmd, int depth);

#endif
