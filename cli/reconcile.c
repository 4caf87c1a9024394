/* volmig reconcile: the reconcile step as a dry run over a file of
 * objects.  Reading, the clock and printing live here; the step is k8s/. */
#include "cli/cli.h"
#include "common/error.h"
#include "k8s/k8s.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STEPS 32
#define MAX_FILES 64

static void usage(FILE *f)
{
    fprintf(f,
        "usage: volmig reconcile -f FILE|DIR|- [-f ...] [-o yaml|json] [--now RFC3339]\n"
        "\n"
        "Runs the volume-migration reconcile step (updateVolumesStrategy: Migration) over\n"
        "the objects of the files until nothing changes, without an engine, and prints\n"
        "every resulting object and the Events it emitted.  The same input and --now give\n"
        "the same output.\n"
        "\n"
        "  -f, --filename F  multi-document YAML, a kind: List, or JSON (one or several\n"
        "                    objects); a directory gives its .yaml/.yml/.json files;\n"
        "                    '-' is stdin; repeat -f for more:\n"
        "                    VirtualMachine, VirtualMachineInstance, VirtualMachineInstance-\n"
        "                    Migration, KubeVirt, DataVolume, PersistentVolumeClaim, ...\n"
        "  -o, --output FMT  yaml (default; one document per object) or json (a kind: List)\n"
        "      --now TIME    the clock, e.g. 2026-08-01T10:00:00Z (default: the real time)\n"
        "\n"
        "A migration object stays in the phase the input gives it (new ones: Pending); set\n"
        "status.phase to Succeeded or Failed in the input to drive the next step.\n"
        "Exit status: 0 done, 1 invalid objects, 2 bad usage.\n");
}

/* A usage error: the line naming the flag is printed already; no help
 * text to scroll it away. */
static int usage_error(void)
{
    fprintf(stderr, "see volmig reconcile --help\n");
    return EXIT_USAGE;
}

int cmd_reconcile(int argc, char **argv)
{
    static const struct option opts[] = {
        { "file", required_argument, NULL, 'f' },
        { "filename", required_argument, NULL, 'f' },
        { "output", required_argument, NULL, 'o' },
        { "now", required_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    const char *files[MAX_FILES], *fmt = "yaml";
    size_t nfiles = 0;
    time_t now = time(NULL);
    json_t *world, *result;
    char *text;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "f:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (nfiles == MAX_FILES) {
                cli_error("reconcile", "-f: at most %d files", MAX_FILES);
                return usage_error();
            }
            files[nfiles++] = optarg;
            break;
        case 'o': fmt = optarg; break;
        case 'n':
            if (k8s_parse_time(optarg, &now) < 0) {
                cli_error("reconcile", "--now: %s", err_msg());
                return usage_error();
            }
            break;
        case 'h': usage(stdout); return EXIT_DONE;
        default: return usage_error();
        }
    }
    if (!nfiles || optind != argc) {
        cli_error("reconcile", "%s", !nfiles ? "-f FILE is required" : "unexpected argument");
        return usage_error();
    }
    if (strcmp(fmt, "yaml") && strcmp(fmt, "json")) {
        cli_error("reconcile", "-o '%s': expected yaml or json", fmt);
        return usage_error();
    }
    if (!(world = k8s_load_paths(files, nfiles))) {
        cli_error("reconcile", "%s", err_msg());
        return EXIT_FAILED;
    }
    result = k8s_reconcile_fixed_point(world, now, MAX_STEPS);
    json_decref(world);
    if (!result) {
        cli_error("reconcile", "%s", err_msg());
        return EXIT_FAILED;
    }
    text = !strcmp(fmt, "json") ? k8s_dump_json(result) : k8s_dump_yaml(result);
    json_decref(result);
    if (!text) {
        cli_error("reconcile", "%s", err_msg());
        return EXIT_FAILED;
    }
    fputs(text, stdout);
    if (!strcmp(fmt, "json"))
        fputc('\n', stdout);
    free(text);
    if (fflush(stdout) != 0) {
        cli_error("reconcile", "writing the output failed");
        return EXIT_FAILED;
    }
    return EXIT_DONE;
}
