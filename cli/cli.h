/* cli/: main(), argument parsing, one file per subcommand.  Only this layer
 * prints errors and chooses exit codes. */
#ifndef VOLMIG_CLI_H
#define VOLMIG_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum {
    EXIT_DONE = 0,       /* the job finished */
    EXIT_FAILED = 1,     /* the job failed; the message says why */
    EXIT_USAGE = 2,      /* bad command line */
    EXIT_CANCELLED = 3,  /* SIGINT/SIGTERM before the job finished */
};

/* Each subcommand: argv[0] is the subcommand's name. */
int cmd_serve(int argc, char **argv);
int cmd_qmp(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_reconcile(int argc, char **argv);
int cmd_apply(int argc, char **argv);
int cmd_controller(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_copy(int argc, char **argv);
/* migrate.c: runs the migration cfg describes (cancel, emit and opaque
 * are set here) with migrate's display, errors under `volmig NAME:`;
 * returns the exit status. */
struct mig_config;
int cli_migrate_run(const char *name, struct mig_config *cfg, bool json);
/* copy_drive.c: volmig copy --qmp ADDR --drive NAME TARGET (pull mode). */
bool copy_names_drive(int argc, char **argv);
int cmd_copy_drive(int argc, char **argv);

/* Prints "volmig SUBCOMMAND: MESSAGE" to stderr. */
void cli_error(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A usage error: "volmig SUBCOMMAND: MESSAGE" (one line, naming the flag
 * and the value), then "see volmig SUBCOMMAND --help"; not the whole help,
 * which would scroll the message away.  Returns EXIT_USAGE. */
int cli_usage(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The usage error for what getopt_long refused (it runs with opterr = 0
 * and an optstring that starts with ':'): C is '?' or ':'. */
int cli_bad_option(const char *sub, char **argv, int c);
/* err_msg() without a trailing strerror(EINVAL): "Invalid argument" adds
 * nothing to a message that already says what is wrong with the value. */
const char *cli_why(void);
/* Checks the form of a QMP address (unix:PATH, libvirt:DOMAIN[?uri=URI])
 * given with FLAG ("--qmp", or "" for a positional one): 0, or a usage
 * error is printed and EXIT_USAGE returned. */
int cli_check_qmp(const char *sub, const char *flag, const char *addr);
/* A TCP port: decimal, 0 to 65535 (MIN: the smallest allowed).  -1 if not. */
int cli_parse_port(const char *s, int min);
/* progress.c: "1.5 GiB"; a progress bar on stderr (a terminal), and the
 * newline that ends it before other output. */
const char *cli_human_bytes(double bytes, char *buf, size_t len);
/* The bar; EXTRA (may be NULL) follows it on the same line: the figures
 * per volume of a migration. */
void cli_bar(double done, double total, double rate, double eta, const char *extra);
void cli_bar_end(void);
/* Prints one JSON event as a line on stdout and drops the reference: "t"
 * to the millisecond, an unknown (negative) "eta" as null, and reals
 * without binary noise (0.091, not 0.090999999999999998). */
void cli_json_event(json_t *ev);

/* Parses "123", "4k", "10M", "2G", "1T" (powers of 1024). -1 if invalid. */
long long cli_parse_size(const char *s);

#endif
