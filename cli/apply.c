/* volmig apply: put objects into the embedded store the way `kubectl
 * apply` puts them into a cluster.  Every object of every file is checked
 * before the first one is written, so a malformed manifest changes
 * nothing. */
#include "cli/cli.h"
#include "common/error.h"
#include "k8s/k8s.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#define MAX_FILES 64

enum validate { VALIDATE_IGNORE, VALIDATE_WARN, VALIDATE_STRICT };

static void usage(FILE *f)
{
    fprintf(f,
        "usage: volmig apply -f FILE|DIR|- [-f ...] --store DIR [--validate strict|warn|ignore]\n"
        "\n"
        "Creates or updates the objects of each FILE (multi-document YAML, a kind: List,\n"
        "or JSON, one or several objects) in the store DIR, one manifest per object named\n"
        "KIND_NAMESPACE_NAME.yaml, each written atomically.  A directory gives its .yaml,\n"
        ".yml and .json files in name order; '-' is stdin.  An existing object takes the\n"
        "applied spec, labels and annotations and keeps its status.  Objects without a\n"
        "namespace go to \"default\" (cluster-scoped kinds have none).  DIR is created\n"
        "with mode 0700 if missing.\n"
        "\n"
        "Kinds: VirtualMachine, VirtualMachineInstance, VirtualMachineInstanceMigration,\n"
        "KubeVirt, DataVolume, PersistentVolumeClaim, PersistentVolume, Event; any other\n"
        "is refused, as kubectl refuses a kind the cluster has no resource for.\n"
        "Every object is validated first (types of the fields volmig reads, names, the\n"
        "checks KubeVirt's admission webhook makes); if one fails nothing is written.\n"
        "A field the kind does not have is a warning (--validate warn, the default), an\n"
        "error (strict) or passed over (ignore), as kubectl's field validation does.\n"
        "Exit status: 0 done, 1 invalid objects or a store error, 2 bad usage.\n");
}

/* Refuses what kubectl would: a kind with no resource, an object that
 * does not validate; warns of unknown fields. */
static int check(json_t *o, enum validate validate)
{
    const struct k8s_kind_info *k;
    const char *av;
    char name[512];

    if (json_is_object(o) && json_is_object(json_object_get(o, "metadata")) &&
        !json_object_get(json_object_get(o, "metadata"), "namespace") &&
        json_is_string(json_object_get(o, "kind")) && !k8s_cluster_scoped(k8s_kind(o)))
        json_object_set_new(json_object_get(o, "metadata"), "namespace", json_string("default"));
    /* kubectl maps the kind to a resource before it looks at the object */
    k = k8s_kind_info(k8s_kind(o));
    av = k8s_get_str(o, "apiVersion");
    if (json_is_string(json_object_get(o, "kind")) && (!k || !k8s_kind_version_ok(k, av))) {
        err_set(0, "resource mapping not found for name: \"%s\" namespace: \"%s\": no matches "
                "for kind \"%s\" in version \"%s\"", k8s_name(o), k8s_namespace(o), k8s_kind(o),
                av ? av : "");
        return -1;
    }
    if (k8s_validate(o) < 0 || k8s_admit(o) < 0 || k8s_store_filename(o, name, sizeof name) < 0)
        return -1;
    if (validate != VALIDATE_IGNORE) {
        json_t *unknown = k8s_unknown_fields(o), *f;
        size_t i;
        char ref[600];

        if (validate == VALIDATE_STRICT && json_array_size(unknown)) {
            err_set(0, "%s: strict decoding error: unknown field \"%s\"",
                    k8s_ref(o, ref, sizeof ref), json_string_value(json_array_get(unknown, 0)));
            json_decref(unknown);
            return -1;
        }
        json_array_foreach(unknown, i, f)
            fprintf(stderr, "Warning: unknown field \"%s\" in %s\n", json_string_value(f),
                    k8s_ref(o, ref, sizeof ref));
        json_decref(unknown);
    }
    return 0;
}

/* A usage error: the line naming the flag is printed already; no help
 * text to scroll it away. */
static int usage_error(void)
{
    fprintf(stderr, "see volmig apply --help\n");
    return EXIT_USAGE;
}

int cmd_apply(int argc, char **argv)
{
    static const struct option opts[] = {
        { "filename", required_argument, NULL, 'f' },
        { "file", required_argument, NULL, 'f' },
        { "store", required_argument, NULL, 's' },
        { "validate", required_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    const char *files[MAX_FILES], *dir = NULL;
    enum validate validate = VALIDATE_WARN;
    size_t nfiles = 0;
    json_t *objs, *o;
    size_t i;
    int c, rc = EXIT_DONE;

    optind = 1;
    while ((c = getopt_long(argc, argv, "f:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (nfiles == MAX_FILES) {
                cli_error("apply", "-f: at most %d files", MAX_FILES);
                return usage_error();
            }
            files[nfiles++] = optarg;
            break;
        case 's': dir = optarg; break;
        case 'v':
            if (!strcmp(optarg, "strict") || !strcmp(optarg, "true"))
                validate = VALIDATE_STRICT;
            else if (!strcmp(optarg, "warn"))
                validate = VALIDATE_WARN;
            else if (!strcmp(optarg, "ignore") || !strcmp(optarg, "false"))
                validate = VALIDATE_IGNORE;
            else {
                cli_error("apply", "--validate '%s': use strict, warn or ignore", optarg);
                return usage_error();
            }
            break;
        case 'h': usage(stdout); return EXIT_DONE;
        default: return usage_error();
        }
    }
    if (!nfiles || !dir || optind != argc) {
        cli_error("apply", "%s", optind != argc ? "unexpected argument" :
                  "-f FILE and --store DIR are required");
        return usage_error();
    }
    if (!(objs = k8s_load_paths(files, nfiles))) {
        cli_error("apply", "%s", err_msg());
        return EXIT_FAILED;
    }
    json_array_foreach(objs, i, o)
        if (check(o, validate) < 0) {
            cli_error("apply", "%s", err_msg());
            json_decref(objs);
            return EXIT_FAILED;
        }
    if (!json_array_size(objs)) {
        cli_error("apply", "no objects passed to apply");
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
