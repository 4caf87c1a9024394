#include "cli/cli.h"
#include "common/error.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommands[] = {
    { "serve", cmd_serve, "export a destination volume over NBD (io_uring)" },
    { "migrate", cmd_migrate, "move a running VM's disks to new volumes (blockdev-mirror)" },
    { "copy", cmd_copy, "copy a volume: files, block devices, NBD exports (sparse-aware)" },
    { "qmp", cmd_qmp, "talk to QEMU's QMP monitor: a console and a script runner" },
    { "reconcile", cmd_reconcile, "dry-run the volume-migration controller over a file of objects" },
    { "controller", cmd_controller, "watch a store of manifests and run volume migrations" },
    { "get", cmd_get, "print objects from the controller's store, like kubectl get" },
    { "apply", cmd_apply, "put objects into the controller's store, like kubectl apply" },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: volmig SUBCOMMAND [OPTIONS]\n\n"
               "Live-migrates the disks of a running QEMU to new volumes.\n\n"
               "subcommands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(f, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(f, "\n'volmig SUBCOMMAND --help' describes each one.\n"
               "Exit status: 0 done, 1 failed, 2 bad usage, 3 cancelled.\n");
}

void cli_error(const char *sub, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "volmig %s: ", sub);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_usage(const char *sub, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "volmig %s: ", sub);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nsee volmig %s --help\n", sub);
    return EXIT_USAGE;
}

int cli_bad_option(const char *sub, char **argv, int c)
{
    const char *arg = argv[optind - 1];

    if (c == ':')
        return cli_usage(sub, "option '%s' needs a value", arg);
    /* A short option inside a cluster ("-xv"): name the letter. */
    if (arg[0] == '-' && arg[1] != '-' && optopt)
        return cli_usage(sub, "unknown option '-%c'", optopt);
    return cli_usage(sub, "unknown option '%s'", arg);
}

const char *cli_why(void)
{
    static char buf[1024];
    const char *m = err_msg();
    const char *tail = strerror(EINVAL);
    size_t n = strlen(m), t = strlen(tail);

    if (err_errno() != EINVAL || n < t + 2 || strcmp(m + n - t, tail) || strncmp(m + n - t - 2, ": ", 2))
        return m;
    snprintf(buf, sizeof buf, "%.*s", (int)(n - t - 2), m);
    return buf;
}

int cli_check_qmp(const char *sub, const char *flag, const char *addr)
{
    const char *sep = *flag ? " " : "";

    if (!strncmp(addr, "unix:", 5)) {
        if (!addr[5] || strlen(addr + 5) > 107)
            return cli_usage(sub, "%s%s'%s': unix:PATH needs a socket path of 1 to 107 bytes",
                             flag, sep, addr);
        return 0;
    }
    if (!strncmp(addr, "libvirt:", 8)) {
        const char *q = strchr(addr + 8, '?');

        if (addr[8] == '\0' || addr[8] == '?')
            return cli_usage(sub, "%s%s'%s': libvirt:DOMAIN needs a domain name", flag, sep, addr);
        if (q && (strncmp(q, "?uri=", 5) || !q[5]))
            return cli_usage(sub, "%s%s'%s': expected libvirt:DOMAIN or libvirt:DOMAIN?uri=URI",
                             flag, sep, addr);
        return 0;
    }
    return cli_usage(sub, "%s%s'%s': expected unix:PATH (QEMU's -qmp unix:PATH,server=on) or "
                     "libvirt:DOMAIN", flag, sep, addr);
}

int cli_parse_port(const char *s, int min)
{
    long v = 0;

    if (!*s || strlen(s) > 5)
        return -1;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v < min || v > 65535 ? -1 : (int)v;
}

long long cli_parse_size(const char *s)
{
    char *end;
    unsigned long long v, mul = 1;

    if (!s || !*s || *s == '-')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    switch (*end) {
    case 'T': case 't': mul <<= 10; /* fall through */
    case 'G': case 'g': mul <<= 10; /* fall through */
    case 'M': case 'm': mul <<= 10; /* fall through */
    case 'K': case 'k': mul <<= 10; end++; break;
    case '\0': break;
    default: return -1;
    }
    if (*end == 'i' && mul > 1)
        end++;
    if ((*end == 'B' || *end == 'b') && mul > 1)
        end++;
    if (*end || v > (unsigned long long)LLONG_MAX / mul)
        return -1;
    return (long long)(v * mul);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return EXIT_DONE;
    }
    if (!strcmp(argv[1], "--version")) {
        puts("volmig 0.1");
        return EXIT_DONE;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (!strcmp(argv[1], subcommands[i].name))
            return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "volmig: unknown subcommand '%s'\nsee volmig --help\n", argv[1]);
    return EXIT_USAGE;
}
