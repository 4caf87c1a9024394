/* libFuzzer target for manifest parsing and validation (k8s/yaml.c,
 * k8s/object.c): any bytes give objects or an error, never a crash; valid
 * objects survive a YAML round trip unchanged; and the reconcile step over
 * whatever parsed and validated never crashes.
 *
 * fuzz-sources: k8s/yaml.c k8s/object.c k8s/reconcile.c k8s/rc_cancel.c k8s/rc_recovery.c k8s/rc_track.c k8s/rc_update.c k8s/rc_validate.c common/error.c
 * fuzz-libs: jansson yaml-0.1
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "k8s/k8s.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *objs = k8s_parse((const char *)data, size, "fuzz"), *o, *again, *world;
    size_t i;
    char *text;

    if (!objs)
        return 0;
    text = k8s_dump_yaml(objs);
    if (text) {
        again = k8s_parse(text, strlen(text), "round-trip");
        if (!again || !json_equal(objs, again))
            abort();   /* what we write must read back the same */
        json_decref(again);
        free(text);
    }
    world = json_array();
    json_array_foreach(objs, i, o)
        if (k8s_validate(o) == 0)
            json_array_append(world, o);
    json_decref(k8s_reconcile_fixed_point(world, (time_t)1800000000, 8));
    json_decref(world);
    json_decref(objs);
    return 0;
}
