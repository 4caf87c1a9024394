/* volmig qmp: a QMP console (libedit) and a script runner.
 *
 *   volmig qmp ADDR                      interactive, on a terminal
 *   volmig qmp ADDR -c CMD [-c CMD]...   scripted: one JSON reply per line
 *   volmig qmp ADDR < FILE               scripted, commands from stdin
 *
 * Lines are qmp-shell shorthand or raw JSON (qmp_shell_parse()); the
 * console adds one builtin, "/wait EVENT [SECONDS]", which prints the next
 * matching event, so that scripts can wait for a job.
 */
#include "cli/cli.h"
#include "common/error.h"
#include "qmp/qmp.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <histedit.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

struct console {
    struct qmp *q;
    int64_t timeout_ms;
    bool interactive;
    json_t *commands;       /* array of command names, for completion */
    json_t *schema;         /* query-qmp-schema, for argument completion */
    EditLine *el;
    bool dead;              /* the monitor went away while editing */
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: volmig qmp unix:PATH|libvirt:DOMAIN[?uri=URI] [-c COMMAND]...\n"
        "                  [--timeout SECONDS] [-v]\n\n"
        "Talks to a QEMU's QMP monitor, directly or through libvirt.\n\n"
        "On a terminal it is a console: line editing, history, Tab completes\n"
        "command and argument names, events are printed as they arrive, Ctrl-D\n"
        "leaves.  With -c (repeatable) or commands on standard input it runs\n"
        "them in order and prints one JSON reply per line; the exit status is\n"
        "1 if any command failed.\n\n"
        "A command is raw JSON or qmp-shell shorthand:\n"
        "  query-status\n"
        "  {\"execute\": \"query-block\"}\n"
        "  blockdev-add driver=null-co node-name=tgt size=1048576\n"
        "  blockdev-mirror job-id=m0 device=disk0 target=tgt sync=full\n"
        "Values are typed: 12, 1.5, true, false, null, {JSON}, [JSON]; \"12\" is\n"
        "a string.  Dotted keys build nested objects (file.filename=/x).\n"
        "  /wait EVENT [SECONDS]   waits for an event and prints it\n\n"
        "options:\n"
        "  -c, --command CMD    run CMD (repeatable) instead of reading stdin\n"
        "  -t, --timeout S      seconds to wait for each reply (default 60)\n"
        "  -v, --verbose        trace the QMP traffic on stderr\n"
        "  -h, --help           this text\n");
}

static void trace(const char *dir, const char *json, void *opaque)
{
    (void)opaque;
    fprintf(stderr, "%s %s\n", dir, json);
}

static void print_json(const struct console *c, const json_t *j)
{
    size_t flags = JSON_PRESERVE_ORDER | JSON_ENCODE_ANY;
    char *s = json_dumps(j, c->interactive ? flags | JSON_INDENT(2) : flags);

    if (s)
        printf("%s\n", s);
    free(s);
    fflush(stdout);
}

/* On a terminal an event is one line: "event NAME {data}". */
static void print_event(const json_t *ev)
{
    char *data = json_dumps(json_object_get(ev, "data"),
                            JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);

    printf("event %s %s\n", json_string_value(json_object_get(ev, "event")),
           data ? data : "");
    free(data);
    fflush(stdout);
}

/* In a script, events are kept for /wait; on a terminal they are shown. */
static void print_events(struct console *c)
{
    json_t *ev;

    if (!c->interactive)
        return;
    while ((ev = qmp_next_event(c->q))) {
        print_event(ev);
        json_decref(ev);
    }
}

/* "/wait EVENT [SECONDS]" */
static int builtin_wait(struct console *c, const char *line)
{
    char name[128];
    double secs = c->timeout_ms / 1000.0;
    json_t *ev;

    if (sscanf(line, "/wait %127s %lf", name, &secs) < 1) {
        cli_error("qmp", "usage: /wait EVENT [SECONDS]");
        return -1;
    }
    if (qmp_wait_event(c->q, name, NULL, NULL, &ev, qmp_deadline_in(secs * 1000)) < 0) {
        cli_error("qmp", "%s", cli_why());
        return -1;
    }
    print_json(c, ev);
    json_decref(ev);
    return 0;
}

/* Runs one line. 0 done, -1 the command failed, -2 the monitor is gone. */
static int run_line(struct console *c, const char *line)
{
    json_t *cmd, *ret, *reply;
    const char *name;
    int rc;

    while (isspace((unsigned char)*line))
        line++;
    if (!*line || *line == '#')
        return 0;
    if (*line == '/')
        return builtin_wait(c, line) < 0 ? (qmp_is_open(c->q) ? -1 : -2) : 0;
    cmd = qmp_shell_parse(line);
    if (!cmd) {
        cli_error("qmp", "%s", cli_why());
        return -1;
    }
    name = json_string_value(json_object_get(cmd, "execute"));
    rc = qmp_call(c->q, name, json_incref(json_object_get(cmd, "arguments")), &ret,
                  qmp_deadline_in(c->timeout_ms));
    print_events(c);
    if (rc == 0) {
        reply = json_pack("{s:o}", "return", ret);
    } else if (qmp_error_class(c->q)) {
        reply = json_pack("{s:{s:s, s:s}}", "error", "class", qmp_error_class(c->q),
                          "desc", qmp_error_desc(c->q));
    } else {
        cli_error("qmp", "%s", cli_why());
        json_decref(cmd);
        return qmp_is_open(c->q) ? -1 : -2;
    }
    print_json(c, reply);
    json_decref(reply);
    json_decref(cmd);
    return rc;
}

static int run_script(struct console *c, char **cmds, int ncmds)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int failed = 0, rc = 0;

    for (int i = 0; i < ncmds && rc != -2; i++)
        if ((rc = run_line(c, cmds[i])) < 0)
            failed = 1;
    if (ncmds)
        return failed;
    while (rc != -2 && (n = getline(&line, &cap, stdin)) >= 0) {
        if (n && line[n - 1] == '\n')
            line[n - 1] = '\0';
        if ((rc = run_line(c, line)) < 0)
            failed = 1;
    }
    free(line);
    return failed;
}

/* ---- the interactive console ---- */

/* Prints events that arrived while the user is typing: the half-typed
 * line is wiped, the events printed, and libedit redraws the line below. */
static void show_events(struct console *c)
{
    json_t *ev;
    bool any = false;

    while ((ev = qmp_next_event(c->q))) {
        printf("%s", any ? "" : "\r\033[K");
        print_event(ev);
        json_decref(ev);
        any = true;
    }
    if (any)
        el_set(c->el, EL_REFRESH);
}

/* Reads one character for libedit while also watching the monitor, so
 * that events show up while the user types. */
static int console_getc(EditLine *el, wchar_t *wc)
{
    struct console *c;
    mbstate_t st;
    char ch;

    el_get(el, EL_CLIENTDATA, &c);
    memset(&st, 0, sizeof st);
    for (;;) {
        struct pollfd p[2] = {
            { .fd = STDIN_FILENO, .events = POLLIN },
            { .fd = qmp_fd(c->q), .events = POLLIN },
        };
        int n = poll(p, p[1].fd >= 0 ? 2 : 1, 1000);

        if (n < 0 && errno != EINTR)
            return -1;
        if (n > 0 && p[1].revents) {
            if (qmp_pump(c->q, qmp_now_ms()) < 0) {
                printf("\r\n");
                cli_error("qmp", "%s", cli_why());
                c->dead = true;
                return 0;
            }
            show_events(c);
            continue;
        }
        if (n > 0 && p[0].revents) {
            ssize_t r = read(STDIN_FILENO, &ch, 1);
            size_t k;

            if (r <= 0)
                return r == 0 ? 0 : -1;
            k = mbrtowc(wc, &ch, 1, &st);
            if (k == (size_t)-2)
                continue;           /* the middle of a multibyte character */
            if (k == (size_t)-1) {
                memset(&st, 0, sizeof st);
                *wc = (unsigned char)ch;
            }
            return 1;
        }
    }
}

static const char *prompt(EditLine *el)
{
    (void)el;
    return "(QEMU) ";
}

/* Completion candidates for the word being typed: command names for the
 * first word, argument names of that command after it. */
static json_t *candidates(struct console *c, const char *line, const char *word,
                          bool first)
{
    json_t *all, *out = json_array(), *v;
    size_t i, wl = strlen(word);
    char cmd[128];

    if (first) {
        all = json_incref(c->commands);
    } else {
        if (sscanf(line, "%127s", cmd) != 1 || strchr(word, '='))
            return out;
        all = qmp_schema_arg_names(c->schema, cmd, 4);
    }
    json_array_foreach(all, i, v) {
        const char *s = json_string_value(v);

        if (s && !strncmp(s, word, wl))
            json_array_append(out, v);
    }
    json_decref(all);
    return out;
}

static unsigned char complete(EditLine *el, int ch)
{
    const LineInfo *li = el_line(el);
    struct console *c;
    char line[1024], *word;
    json_t *cands;
    size_t n = li->cursor - li->buffer, common, i;
    unsigned char rc = CC_REFRESH;
    bool first_word;
    json_t *v;

    (void)ch;
    el_get(el, EL_CLIENTDATA, &c);
    if (n >= sizeof line)
        return CC_ERROR;
    memcpy(line, li->buffer, n);
    line[n] = '\0';
    word = strrchr(line, ' ');
    word = word ? word + 1 : line;
    first_word = line + strspn(line, " ") == word;
    cands = candidates(c, line, word, first_word);
    if (json_array_size(cands) == 0) {
        json_decref(cands);
        return CC_ERROR;
    }
    /* The longest prefix all candidates share. */
    const char *first = json_string_value(json_array_get(cands, 0));
    common = strlen(first);
    json_array_foreach(cands, i, v) {
        const char *s = json_string_value(v);
        size_t k = 0;

        while (k < common && s[k] == first[k])
            k++;
        common = k;
    }
    if (json_array_size(cands) == 1) {
        char add[256];
        snprintf(add, sizeof add, "%s%s", first + strlen(word), first_word ? " " : "=");
        el_insertstr(el, add);
    } else if (common > strlen(word)) {
        char add[256];

        snprintf(add, sizeof add, "%.*s", (int)(common - strlen(word)), first + strlen(word));
        el_insertstr(el, add);
    } else {
        printf("\n");
        json_array_foreach(cands, i, v)
            printf("%s%s", json_string_value(v), i + 1 < json_array_size(cands) ? "  " : "\n");
        rc = CC_REDISPLAY;
    }
    json_decref(cands);
    return rc;
}

static void load_completion(struct console *c)
{
    int64_t dl = qmp_deadline_in(c->timeout_ms);
    json_t *cmds = NULL, *v;
    size_t i;

    c->commands = json_array();
    if (qmp_call(c->q, "query-commands", NULL, &cmds, dl) == 0)
        json_array_foreach(cmds, i, v)
            json_array_append(c->commands, json_object_get(v, "name"));
    json_decref(cmds);
    if (qmp_call(c->q, "query-qmp-schema", NULL, &c->schema, dl) < 0)
        c->schema = json_array();
}

static int run_console(struct console *c, const char *addr)
{
    const json_t *qv = json_object_get(json_object_get(qmp_greeting(c->q), "version"), "qemu");
    HistEvent he;
    History *hist;
    const char *line;
    int count;

    load_completion(c);
    printf("Connected to QEMU %lld.%lld.%lld at %s.  Tab completes, Ctrl-D leaves.\n",
           (long long)json_integer_value(json_object_get(qv, "major")),
           (long long)json_integer_value(json_object_get(qv, "minor")),
           (long long)json_integer_value(json_object_get(qv, "micro")), addr);
    hist = history_init();
    history(hist, &he, H_SETSIZE, 1000);
    history(hist, &he, H_SETUNIQUE, 1);
    c->el = el_init("volmig", stdin, stdout, stderr);
    el_set(c->el, EL_CLIENTDATA, c);
    el_set(c->el, EL_EDITOR, "emacs");
    el_set(c->el, EL_SIGNAL, 1);
    el_set(c->el, EL_PROMPT, prompt);
    el_set(c->el, EL_HIST, history, hist);
    el_set(c->el, EL_GETCFN, console_getc);
    /* el_set() would wcsdup() these names and never free them. */
    el_wset(c->el, EL_ADDFN, L"qmp-complete", L"complete a QMP name", complete);
    el_set(c->el, EL_BIND, "^I", "qmp-complete", NULL);
    el_source(c->el, NULL);     /* the user's ~/.editrc, if any */
    while ((line = el_gets(c->el, &count)) && count > 0) {
        char *l = strdup(line);
        int rc;

        l[strcspn(l, "\n")] = '\0';
        if (*l)
            history(hist, &he, H_ENTER, l);
        rc = run_line(c, l);
        free(l);
        if (rc == -2)
            break;
    }
    if (!line && !c->dead)
        printf("\n");
    el_end(c->el);
    history_end(hist);
    /* A command that failed was shown; only a lost monitor fails here. */
    return c->dead || !qmp_is_open(c->q);
}

/* QEMU serves one client per monitor socket: a second one is accepted by
 * the kernel but gets no greeting until the first leaves.  Rather than
 * wait silently, try for a second, then say what is going on and wait for
 * the rest of the timeout. */
static struct qmp *open_monitor(const char *addr, int64_t timeout_ms)
{
    const int64_t quick = 1000;
    struct qmp *q;

    if (strncmp(addr, "unix:", 5) || timeout_ms <= quick)
        return qmp_open(addr, timeout_ms);
    q = qmp_open(addr, quick);
    if (q || err_errno() != ETIMEDOUT)
        return q;
    cli_error("qmp", "waiting for the monitor at %s: another client holds it, and QEMU answers "
                     "one client per monitor socket (up to %.0f s more; --timeout)",
              addr, (timeout_ms - quick) / 1000.0);
    return qmp_open(addr, timeout_ms - quick);
}

int cmd_qmp(int argc, char **argv)
{
    static const struct option opts[] = {
        { "command", required_argument, NULL, 'c' },
        { "timeout", required_argument, NULL, 't' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct console c = { .timeout_ms = 60000 };
    char **cmds = calloc(argc, sizeof *cmds);
    int ncmds = 0, opt, rc;
    bool verbose = false;
    char *end;

    /* GNU getopt permutes, so options may come before or after ADDR. */
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":c:t:vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': cmds[ncmds++] = optarg; break;
        case 't':
            c.timeout_ms = (int64_t)(strtod(optarg, &end) * 1000);
            if (!*optarg || *end || c.timeout_ms <= 0) {
                free(cmds);
                return cli_usage("qmp", "--timeout '%s': seconds, more than 0", optarg);
            }
            break;
        case 'v': verbose = true; break;
        case 'h': usage(stdout); free(cmds); return EXIT_DONE;
        default: free(cmds); return cli_bad_option("qmp", argv, opt);
        }
    }
    if (optind != argc - 1) {
        free(cmds);
        if (optind == argc)
            return cli_usage("qmp", "no QMP address (unix:PATH or libvirt:DOMAIN)");
        return cli_usage("qmp", "one QMP address only, got '%s' and '%s'", argv[optind], argv[optind + 1]);
    }
    if (cli_check_qmp("qmp", "", argv[optind])) {
        free(cmds);
        return EXIT_USAGE;
    }
    if (verbose)
        qmp_set_trace(NULL, trace, NULL);
    /* Said once, before anything is sent: libvirt marks a domain that
     * received a raw monitor command, and does not follow what it did. */
    if (!strncmp(argv[optind], "libvirt:", 8))
        fprintf(stderr, "volmig qmp: warning: raw QMP through libvirt taints the domain "
                        "(custom-monitor), and libvirt does not learn what a command changes: "
                        "use this as a debug console, and volmig migrate (which goes through "
                        "libvirt's own APIs) to move disks\n");
    c.q = open_monitor(argv[optind], c.timeout_ms);
    if (!c.q) {
        cli_error("qmp", "%s", cli_why());
        free(cmds);
        return EXIT_FAILED;
    }
    c.interactive = ncmds == 0 && isatty(STDIN_FILENO);
    rc = c.interactive ? run_console(&c, argv[optind]) : run_script(&c, cmds, ncmds);
    qmp_close(c.q);
    json_decref(c.commands);
    json_decref(c.schema);
    free(cmds);
    return rc ? EXIT_FAILED : EXIT_DONE;
}
