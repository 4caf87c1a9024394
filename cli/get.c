/* volmig get: reads objects from the store, like kubectl get -o json. */
#include "cli/cli.h"
#include "common/error.h"
#include "k8s/k8s.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A column of the wide table: the migration object's phase, and its
 * volmig.io/progress annotation read back. */
static void vmim_columns(const json_t *o, char *buf, size_t size)
{
    const char *text = json_string_value(json_object_get(k8s_get(o, "metadata.annotations"),
                                                         K8S_ANNOT_PROGRESS));
    json_t *p = text ? json_loads(text, 0, NULL) : NULL;
    const char *phase = k8s_get_str(o, "status.phase");
    const char *vmi = k8s_get_str(o, "spec.vmiName");
    char d[32], t[32], r[32], eta[32] = "-", prog[100] = "-", rate[48] = "-";

    if (json_is_object(p)) {
        json_t *e = json_object_get(p, "etaSeconds");

        snprintf(prog, sizeof prog, "%lld%% %s/%s",
                 (long long)json_integer_value(json_object_get(p, "percent")),
                 cli_human_bytes((double)json_integer_value(json_object_get(p, "doneBytes")), d, sizeof d),
                 cli_human_bytes((double)json_integer_value(json_object_get(p, "totalBytes")), t, sizeof t));
        snprintf(rate, sizeof rate, "%s/s",
                 cli_human_bytes((double)json_integer_value(json_object_get(p, "bytesPerSecond")), r, sizeof r));
        if (json_is_integer(e))
            snprintf(eta, sizeof eta, "%llds", (long long)json_integer_value(e));
    }
    snprintf(buf, size, "%-10s %-20s %-24s %-14s %s", phase ? phase : "-", vmi ? vmi : "-", prog,
             rate, eta);
    json_decref(p);
}

/* -o wide: a table, as kubectl prints one. */
static void print_table(const json_t *sel, const struct k8s_kind_info *kind)
{
    bool vmim = kind && !strcmp(kind->kind, "VirtualMachineInstanceMigration");
    size_t i;
    json_t *o;

    if (!json_array_size(sel)) {
        fprintf(stderr, "No resources found\n");
        return;
    }
    printf("%-12s %-32s %s\n", "NAMESPACE", "NAME", vmim ?
           "PHASE      VMI                  PROGRESS                 RATE           ETA" :
           kind ? "" : "KIND");
    json_array_foreach(sel, i, o) {
        char cols[300] = "";

        if (vmim)
            vmim_columns(o, cols, sizeof cols);
        else if (!kind)
            snprintf(cols, sizeof cols, "%s", k8s_kind(o));
        printf("%-12s %-32s %s\n", *k8s_namespace(o) ? k8s_namespace(o) : "-", k8s_name(o), cols);
    }
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: volmig get --store DIR KIND [NAME...] [-n NAMESPACE] [-o json|yaml|wide]\n"
        "\n"
        "Prints the stored objects of KIND, or only those named, as a JSON List (default)\n"
        "or YAML documents, or as a table (-o wide; for migration objects with their\n"
        "phase and storage progress: done, rate, ETA).  KIND is named as kubectl names it: the kind, its plural or a\n"
        "short name, in any case (vm, vmi, vmim, pvc, pv, dv, kubevirt, events), or 'all'.\n"
        "Without -n every namespace is listed.  An unknown kind, or a NAME not in the\n"
        "store, is an error (exit 1) in kubectl's words.\n");
}

/* A usage error: the line naming the flag is printed already; no help
 * text to scroll it away. */
static int usage_error(void)
{
    fprintf(stderr, "see volmig get --help\n");
    return EXIT_USAGE;
}

int cmd_get(int argc, char **argv)
{
    static const struct option opts[] = {
        { "store", required_argument, NULL, 's' },
        { "output", required_argument, NULL, 'o' },
        { "namespace", required_argument, NULL, 'n' },
        { "all-namespaces", no_argument, NULL, 'A' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    const char *store = NULL, *ns = NULL;
    const struct k8s_kind_info *kind = NULL;
    bool yaml = false, wide = false, all;
    json_t *objs, *sel, *o;
    size_t i;
    char *text;
    int c, rc = EXIT_DONE;

    optind = 1;
    while ((c = getopt_long(argc, argv, "s:o:n:Ah", opts, NULL)) != -1) {
        switch (c) {
        case 's': store = optarg; break;
        case 'n': ns = optarg; break;
        case 'A': ns = NULL; break;
        case 'o':
            if (strcmp(optarg, "json") && strcmp(optarg, "yaml") && strcmp(optarg, "wide")) {
                cli_error("get", "-o '%s': use json, yaml or wide", optarg);
                return usage_error();
            }
            yaml = !strcmp(optarg, "yaml");
            wide = !strcmp(optarg, "wide");
            break;
        case 'h': usage(stdout); return EXIT_DONE;
        default: return usage_error();
        }
    }
    if (!store || optind >= argc) {
        cli_error("get", "usage: volmig get --store DIR KIND [NAME...]");
        return usage_error();
    }
    all = !strcmp(argv[optind], "all");
    if (!all && !(kind = k8s_kind_lookup(argv[optind]))) {
        fprintf(stderr, "error: the server doesn't have a resource type \"%s\"\n", argv[optind]);
        return EXIT_FAILED;
    }
    if (all && argc - optind > 1) {
        cli_error("get", "a NAME needs a KIND, not 'all'");
        return usage_error();
    }
    objs = k8s_store_load(store);
    if (!objs) {
        cli_error("get", "%s", err_msg());
        return EXIT_FAILED;
    }
    sel = json_array();
    if (argc - optind == 1) {
        json_array_foreach(objs, i, o)
            if ((all || !strcmp(k8s_kind(o), kind->kind)) &&
                (!ns || !strcmp(k8s_namespace(o), ns)))
                json_array_append(sel, o);
    }
    for (int a = optind + 1; a < argc; a++) {
        bool found = false;
        char res[200];

        json_array_foreach(objs, i, o)
            if (!strcmp(k8s_kind(o), kind->kind) && !strcmp(k8s_name(o), argv[a]) &&
                (!ns || !strcmp(k8s_namespace(o), ns))) {
                json_array_append(sel, o);
                found = true;
            }
        if (!found) {
            fprintf(stderr, "Error from server (NotFound): %s \"%s\" not found\n",
                    k8s_kind_resource(kind, res, sizeof res), argv[a]);
            rc = EXIT_FAILED;
        }
    }
    if (wide) {
        if (rc == EXIT_DONE || json_array_size(sel))
            print_table(sel, kind);
    } else {
        text = yaml ? k8s_dump_yaml(sel) : k8s_dump_json(sel);
        if (text && (rc == EXIT_DONE || json_array_size(sel)))
            fputs(text, stdout);
        if (!text)
            rc = EXIT_FAILED;
        free(text);
    }
    json_decref(sel);
    json_decref(objs);
    return rc;
}
