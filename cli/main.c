#include "cli/cli.h"

#include <errno.h>
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
    fprintf(stderr, "volmig: unknown subcommand '%s'\n\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
