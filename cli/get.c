/* volmig get: reads objects from the store, like kubectl get -o json. */
#include "cli/cli.h"
#include "common/error.h"
#include "k8s/k8s.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_get(int argc, char **argv)
{
    static const struct option opts[] = {
        { "store", required_argument, NULL, 's' },
        { "output", required_argument, NULL, 'o' },
        { "namespace", required_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    const char *store = NULL, *ns = NULL, *kind, *name = NULL;
    bool yaml = false;
    json_t *all, *sel, *o;
    size_t i;
    char *text;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "s:o:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 's': store = optarg; break;
        case 'n': ns = optarg; break;
        case 'o':
            if (strcmp(optarg, "json") && strcmp(optarg, "yaml")) {
                cli_error("get", "-o '%s': use json or yaml", optarg);
                return EXIT_USAGE;
            }
            yaml = !strcmp(optarg, "yaml");
            break;
        case 'h':
            printf("usage: volmig get --store DIR KIND [NAME] [-n NAMESPACE] [-o json|yaml]\n\n"
                   "Prints the stored objects of KIND (a kind such as VirtualMachine, or 'all'),\n"
                   "optionally only NAME, as a JSON List (default) or YAML documents.\n");
            return EXIT_DONE;
        default: return EXIT_USAGE;
        }
    }
    if (!store || optind >= argc || argc - optind > 2) {
        cli_error("get", "usage: volmig get --store DIR KIND [NAME]");
        return EXIT_USAGE;
    }
    kind = argv[optind];
    if (argc - optind == 2)
        name = argv[optind + 1];
    all = k8s_store_load(store);
    if (!all) {
        cli_error("get", "%s", err_msg());
        return EXIT_FAILED;
    }
    sel = json_array();
    json_array_foreach(all, i, o)
        if ((!strcmp(kind, "all") || !strcmp(k8s_kind(o), kind)) &&
            (!name || !strcmp(k8s_name(o), name)) && (!ns || !strcmp(k8s_namespace(o), ns)))
            json_array_append(sel, o);
    text = yaml ? k8s_dump_yaml(sel) : k8s_dump_json(sel);
    if (text)
        fputs(text, stdout);
    free(text);
    json_decref(sel);
    json_decref(all);
    return text ? EXIT_DONE : EXIT_FAILED;
}
