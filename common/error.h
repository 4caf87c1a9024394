/* Error recording shared by every layer below cli/.
 *
 * The io_uring layer returns -errno and never touches this.  Every other
 * layer returns -1 and records one message with context here; cli/ is the
 * only place that prints it.  The buffer is thread-local, so helpers that
 * run in threads keep their own last error.
 */
#ifndef VOLMIG_ERROR_H
#define VOLMIG_ERROR_H

#include <stdarg.h>

/* Records "MESSAGE: strerror(errnum)" (errnum 0: the message alone). */
void err_set(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void err_vset(int errnum, const char *fmt, va_list ap);
/* Prefixes the recorded message with more context ("CONTEXT: old"). */
void err_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Puts back a message saved from err_msg() and its err_errno(), as they
 * were (the message already holds the strerror text). */
void err_restore(int errnum, const char *msg);

/* The recorded error, kept across work that may record others (cleanups
 * that must not replace the reason they run for):
 *     struct err_saved e;  err_save(&e);  ...;  err_restore(e.errnum, e.msg); */
#define ERR_MSG_MAX 1024
struct err_saved {
    int errnum;
    char msg[ERR_MSG_MAX];
};
void err_save(struct err_saved *e);
const char *err_msg(void);
/* The errno recorded with the last message, 0 if none. */
int err_errno(void);
void err_clear(void);

#endif
