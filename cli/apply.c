/* volmig apply: put objects into the embedded store the way `kubectl
 * apply` puts them into a cluster.  Every object of the file is checked
 * before the first one is written, so a malformed manifest changes
 * nothing. */
#include "cli/cli.h"
#include "common/error.h"
#include "k8s/k8s.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: volmig apply -f FILE --store DIR\n"
        "\n"
        "Creates or updates the objects of FILE (multi-document YAML, a kind: List, or JSON;\n"
        "'-' is stdin) in the store DIR, one manifest per object named\n"
        "KIND_NAMESPACE_NAME.yaml, each written atomically.  An existing object takes the\n"
        "applied spec, labels and annotations and keeps its status.  Objects without a\n"
        "namespace go to \"default\" (cluster-scoped kinds have none).  DIR is created\n"
        "with mode 0700 if missing.\n"
        "\n"
        "Every object is validated first (types of the fields volmig reads, names, the\n"
        "checks KubeVirt's admission webhook makes); if one fails nothing is written.\n"
        "Exit status: 0 done, 1 invalid objects or a store error, 2 bad usage.\n");
}

int cmd_apply(int argc, char **argv)
{
    static const struct option opts[] = {
        { "file", required_argument, NULL, 'f' },
        { "store", required_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    const char *file = NULL, *dir = NULL;
    json_t *objs, *o;
    size_t i;
    int c, rc = EXIT_DONE;

    optind = 1;
    while ((c = getopt_long(argc, argv, "f:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f': file = optarg; break;
        case 's': dir = optarg; break;
        case 'h': usage(stdout); return EXIT_DONE;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (!file || !dir || optind != argc) {
        cli_error("apply", "%s", optind != argc ? "unexpected argument" :
                  "-f FILE and --store DIR are required");
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!(objs = k8s_load_file(file))) {
        cli_error("apply", "%s", err_msg());
        return EXIT_FAILED;
    }
    json_array_foreach(objs, i, o) {
        char name[512];

        if (json_is_object(o) && json_is_object(json_object_get(o, "metadata")) &&
            !json_object_get(json_object_get(o, "metadata"), "namespace") &&
            json_is_string(json_object_get(o, "kind")) &&
            !k8s_cluster_scoped(k8s_kind(o)))
            json_object_set_new(json_object_get(o, "metadata"), "namespace",
                                json_string("default"));
        if (k8s_admit(o) < 0 || k8s_store_filename(o, name, sizeof name) < 0) {
            cli_error("apply", "%s: %s", file, err_msg());
            json_decref(objs);
            return EXIT_FAILED;
        }
    }
    if (!json_array_size(objs)) {
        cli_error("apply", "%s: no objects", file);
        json_decref(objs);
        return EXIT_FAILED;
    }
    if (k8s_store_open(dir) < 0) {
        cli_error("apply", "%s", err_msg());
        json_decref(objs);
        return EXIT_FAILED;
    }
    json_array_foreach(objs, i, o) {
        bool created, changed;
        char ref[600];

        if (k8s_store_apply(dir, o, time(NULL), &created, &changed) < 0) {
            cli_error("apply", "%s", err_msg());
            rc = EXIT_FAILED;
            break;
        }
        printf("%s %s\n", k8s_ref(o, ref, sizeof ref),
               created ? "created" : changed ? "configured" : "unchanged");
    }
    json_decref(objs);
    return rc;
}
