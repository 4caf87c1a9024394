/* k8s/ object model: YAML/JSON in and out, quantities, validation, store. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "k8s/k8s.h"

static json_t *parse(const char *s)
{
    return k8s_parse(s, strlen(s), "test");
}

static void test_scalar_types(void **state)
{
    json_t *a = parse("a: true\nb: null\nc: 3\nd: 2Gi\ne: \"3\"\nf: 'true'\ng: 1.5\n"
                      "h: ~\ni: yes\nj: -7\nk: 5G\nl: 99999999999999999999\nm: \"\"\n"
                      "kind: X\n");
    json_t *o;

    (void)state;
    assert_non_null(a);
    o = json_array_get(a, 0);
    assert_true(json_is_true(json_object_get(o, "a")));
    assert_true(json_is_null(json_object_get(o, "b")));
    assert_int_equal(json_integer_value(json_object_get(o, "c")), 3);
    assert_string_equal(json_string_value(json_object_get(o, "d")), "2Gi");
    assert_string_equal(json_string_value(json_object_get(o, "e")), "3");
    assert_string_equal(json_string_value(json_object_get(o, "f")), "true");
    assert_true(json_is_real(json_object_get(o, "g")));
    assert_true(json_is_null(json_object_get(o, "h")));
    assert_string_equal(json_string_value(json_object_get(o, "i")), "yes");
    assert_int_equal(json_integer_value(json_object_get(o, "j")), -7);
    assert_string_equal(json_string_value(json_object_get(o, "k")), "5G");
    assert_string_equal(json_string_value(json_object_get(o, "l")), "99999999999999999999");
    assert_string_equal(json_string_value(json_object_get(o, "m")), "");
    json_decref(a);
}

static void test_roundtrip(void **state)
{
    const char *in =
        "apiVersion: v1\nkind: Thing\nmetadata:\n  name: x\n  annotations:\n"
        "    a: \"true\"\n    b: \"yes\"\n    c: \"3\"\n    d: \"\"\n    e: 'a: b'\n"
        "    f: \"2026-01-01T00:00:00Z\"\n    g: \"null\"\n    h: \"1.5\"\n    i: \"12:30\"\n"
        "    j: \" lead\"\n    k: \"multi\\nline\"\nspec:\n  list: []\n  map: {}\n  n: 1.5\n"
        "  z: 2\n  unknown:\n    deep: [1, two, {three: 3}]\n"
        "---\napiVersion: v1\nkind: Other\nmetadata: {name: y}\n";
    json_t *a = parse(in), *b;
    char *out;

    (void)state;
    assert_non_null(a);
    assert_int_equal(json_array_size(a), 2);
    out = k8s_dump_yaml(a);
    assert_non_null(out);
    b = parse(out);
    assert_non_null(b);
    assert_true(json_equal(a, b));
    /* key order is kept: apiVersion before kind before metadata */
    assert_true(strstr(out, "apiVersion") < strstr(out, "kind: Thing"));
    assert_true(strstr(out, "kind: Thing") < strstr(out, "metadata"));
    assert_non_null(strstr(out, "a: \"true\""));
    free(out);
    out = k8s_dump_json(a);
    json_decref(b);
    b = k8s_parse(out, strlen(out), "json");
    assert_true(json_equal(a, b));
    free(out);
    json_decref(a);
    json_decref(b);
}

static void test_lists_and_json(void **state)
{
    json_t *a = parse("apiVersion: v1\nkind: List\nitems:\n- {kind: A, metadata: {name: a}}\n"
                      "- {kind: B, metadata: {name: b}}\n---\n---\nkind: C\nmetadata: {name: c}\n");

    (void)state;
    assert_int_equal(json_array_size(a), 3);
    assert_string_equal(k8s_kind(json_array_get(a, 2)), "C");
    json_decref(a);
    a = parse("  {\"kind\": \"VirtualMachineList\", \"items\": [{\"kind\": \"A\"}]}");
    assert_int_equal(json_array_size(a), 1);
    json_decref(a);
    a = parse("[{\"kind\": \"A\"}, {\"kind\": \"B\"}]");
    assert_int_equal(json_array_size(a), 2);
    json_decref(a);
}

static void test_parse_errors(void **state)
{
    (void)state;
    assert_null(parse("a: b\n  c: d\n"));
    assert_non_null(strstr(err_msg(), "test:"));
    assert_null(parse("a: 1\na: 2\n"));
    assert_non_null(strstr(err_msg(), "duplicate key 'a'"));
    assert_null(parse("- just\n- a list of strings\n"));
    assert_non_null(strstr(err_msg(), "not an object"));
    assert_null(parse("{\"a\": }"));
    assert_null(parse("a: &x [*x]\n"));   /* an alias cycle: too deep, not a crash */
    assert_null(parse("? [a]\n: b\n"));
    assert_non_null(strstr(err_msg(), "mapping key must be a scalar"));
}

static void test_quantity(void **state)
{
    long long b;

    (void)state;
    assert_int_equal(k8s_quantity_str("2Gi", &b), 0);
    assert_true(b == 2LL << 30);
    assert_int_equal(k8s_quantity_str("5G", &b), 0);
    assert_true(b == 5000000000LL);
    assert_int_equal(k8s_quantity_str("512Mi", &b), 0);
    assert_true(b == 512LL << 20);
    assert_int_equal(k8s_quantity_str("1Ti", &b), 0);
    assert_true(b == 1LL << 40);
    assert_int_equal(k8s_quantity_str("1500", &b), 0);
    assert_true(b == 1500);
    assert_int_equal(k8s_quantity_str("1.5Gi", &b), 0);
    assert_true(b == 3LL << 29);
    assert_int_equal(k8s_quantity_str("100m", &b), 0);
    assert_true(b == 1);
    assert_int_equal(k8s_quantity_str("1e3", &b), 0);
    assert_true(b == 1000);
    assert_int_equal(k8s_quantity_str("2GB", &b), -1);
    assert_int_equal(k8s_quantity_str("-1", &b), -1);
    assert_int_equal(k8s_quantity_str("Gi", &b), -1);
    assert_int_equal(k8s_quantity_str("99999Ei", &b), -1);
    {
        json_t *n = json_integer(4096);

        assert_int_equal(k8s_quantity(n, &b), 0);
        assert_true(b == 4096);
        json_decref(n);
    }
}

static void test_validate(void **state)
{
    json_t *a = parse("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\n"
                      "  name: vm1\n  namespace: ns\nspec:\n  template:\n    spec:\n"
                      "      volumes:\n      - name: 3\n");
    json_t *b = parse("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: ../x}\n"
                      "spec: {}\n");
    json_t *c = parse("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: p}\n"
                      "spec: {resources: {requests: {storage: lots}}}\n");
    json_t *d = parse("apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstanceMigration\n"
                      "metadata: {name: m}\nspec: {}\n");

    (void)state;
    assert_int_equal(k8s_validate(json_array_get(a, 0)), -1);
    assert_string_equal(err_msg(), "VirtualMachine ns/vm1: spec.template.spec.volumes[0].name: "
                        "expected a string, got an integer");
    assert_int_equal(k8s_validate(json_array_get(b, 0)), -1);
    assert_non_null(strstr(err_msg(), "metadata.name: '../x' is not a valid name"));
    assert_int_equal(k8s_validate(json_array_get(c, 0)), -1);
    assert_non_null(strstr(err_msg(), "PersistentVolumeClaim p: spec.resources.requests.storage: "
                           "'lots' is not a quantity"));
    assert_int_equal(k8s_validate(json_array_get(d, 0)), -1);
    assert_non_null(strstr(err_msg(), "spec.vmiName: missing"));
    json_decref(a);
    /* the reconcile step makes a DataVolume of a template's spec */
    a = parse("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: v}\n"
              "spec:\n  dataVolumeTemplates:\n  - {metadata: {name: d}, spec: oops}\n"
              "  template: {spec: {}}\n");
    assert_int_equal(k8s_validate(json_array_get(a, 0)), -1);
    assert_string_equal(err_msg(), "VirtualMachine v: spec.dataVolumeTemplates[0].spec: expected "
                        "an object, got a string");
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(d);
}

static void test_admit_templates(void **state)
{
    json_t *a = parse("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: vm-dv}\n"
                      "spec:\n  dataVolumeTemplates:\n  - metadata: {name: src-dv}\n"
                      "  template:\n    spec:\n      volumes:\n"
                      "      - {name: d1, dataVolume: {name: dst-dv}}\n");
    json_t *vm = json_array_get(a, 0);

    (void)state;
    assert_int_equal(k8s_validate(vm), 0);
    assert_int_equal(k8s_admit(vm), -1);
    assert_non_null(strstr(err_msg(), "DataVolumeTemplate entry src-dv must be referenced in the "
                           "VMI template's 'volumes' list"));
    json_object_set_new(k8s_get(vm, "spec"), "updateVolumesStrategy", json_string("Sideways"));
    assert_int_equal(k8s_admit(vm), -1);
    assert_non_null(strstr(err_msg(), "updateVolumes strategy not recognized: Sideways"));
    json_decref(a);
}

static void test_time(void **state)
{
    time_t t;
    char buf[32];

    (void)state;
    assert_int_equal(k8s_parse_time("2026-08-01T10:00:00Z", &t), 0);
    k8s_format_time(t + 20, buf);
    assert_string_equal(buf, "2026-08-01T10:00:20Z");
    assert_int_equal(k8s_parse_time("2026-08-01T12:00:00.123+02:00", &t), 0);
    k8s_format_time(t, buf);
    assert_string_equal(buf, "2026-08-01T10:00:00Z");
    assert_int_equal(k8s_parse_time("yesterday", &t), -1);
}

static void test_store(void **state)
{
    char dir[] = "/tmp/volmig-k8s-store.XXXXXX", sub[64], fn[128];
    json_t *a, *all, *o;
    bool created, changed;
    struct stat st;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(sub, sizeof sub, "%s/store", dir);
    assert_int_equal(k8s_store_open(sub), 0);
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    a = parse("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: p, namespace: ns}\n"
              "spec: {resources: {requests: {storage: 1Gi}}}\nstatus: {phase: Bound}\n");
    o = json_array_get(a, 0);
    assert_int_equal(k8s_store_filename(o, fn, sizeof fn), 0);
    assert_string_equal(fn, "PersistentVolumeClaim_ns_p.yaml");
    assert_int_equal(k8s_store_apply(sub, o, 1000, &created, &changed), 0);
    assert_true(created);
    /* re-apply with a new spec and another status: spec replaced, status kept */
    json_object_set_new(k8s_get(o, "spec.resources.requests"), "storage", json_string("2Gi"));
    json_object_set_new(k8s_get(o, "status"), "phase", json_string("Lost"));
    assert_int_equal(k8s_store_apply(sub, o, 2000, &created, &changed), 0);
    assert_false(created);
    assert_true(changed);
    all = k8s_store_load(sub);
    assert_int_equal(json_array_size(all), 1);
    o = json_array_get(all, 0);
    assert_string_equal(k8s_get_str(o, "spec.resources.requests.storage"), "2Gi");
    assert_string_equal(k8s_get_str(o, "status.phase"), "Bound");
    assert_int_equal(json_integer_value(k8s_get(o, "metadata.generation")), 2);
    assert_int_equal(k8s_store_delete(sub, o), 0);
    json_decref(all);
    json_decref(a);

    /* a name that would escape the directory cannot even be named */
    a = parse("apiVersion: v1\nkind: X\nmetadata: {name: ../../etc/passwd}\n");
    assert_int_equal(k8s_store_filename(json_array_get(a, 0), fn, sizeof fn), -1);
    json_decref(a);
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_concatenated_json(void **state)
{
    const char *t = "{\"kind\":\"A\"}{\"kind\":\"B\"}\n\n  [{\"kind\":\"C\"}]\n"
                    "{\"kind\":\"L\",\"items\":[{\"kind\":\"D\"}],\"apiVersion\":\"v1\"}";
    json_t *v = parse(t);

    (void)state;
    /* "L" does not end in List: kept as one object */
    assert_non_null(v);
    assert_int_equal(json_array_size(v), 4);
    assert_string_equal(k8s_kind(json_array_get(v, 1)), "B");
    assert_string_equal(k8s_kind(json_array_get(v, 2)), "C");
    json_decref(v);
    assert_null(parse("{\"kind\":\"A\"}\n{\"kind\": }"));
    assert_string_equal(err_msg(), "test:2:10: unexpected token near '}'");
    assert_null(parse("{\"kind\":\"A\"} 42"));
}

static void test_kind_lookup(void **state)
{
    static const char *const vm[] = { "vm", "vms", "VM", "virtualmachine", "VirtualMachines",
                                      "VIRTUALMACHINE", "virtualmachines.kubevirt.io" };
    char buf[100];

    (void)state;
    for (size_t i = 0; i < sizeof vm / sizeof vm[0]; i++)
        assert_string_equal(k8s_kind_lookup(vm[i])->kind, "VirtualMachine");
    assert_string_equal(k8s_kind_lookup("vmi")->kind, "VirtualMachineInstance");
    assert_string_equal(k8s_kind_lookup("vmims")->kind, "VirtualMachineInstanceMigration");
    assert_string_equal(k8s_kind_lookup("pvc")->kind, "PersistentVolumeClaim");
    assert_string_equal(k8s_kind_lookup("pv")->kind, "PersistentVolume");
    assert_string_equal(k8s_kind_lookup("dv")->kind, "DataVolume");
    assert_string_equal(k8s_kind_lookup("kubevirt")->kind, "KubeVirt");
    assert_null(k8s_kind_lookup("Bogus"));
    assert_null(k8s_kind_lookup("virtualmachines.cdi.kubevirt.io"));
    assert_string_equal(k8s_kind_resource(k8s_kind_info("DataVolume"), buf, sizeof buf),
                        "datavolumes.cdi.kubevirt.io");
    assert_string_equal(k8s_kind_resource(k8s_kind_info("PersistentVolume"), buf, sizeof buf),
                        "persistentvolumes");
    assert_true(k8s_kind_version_ok(k8s_kind_info("VirtualMachine"), "kubevirt.io/v1"));
    assert_false(k8s_kind_version_ok(k8s_kind_info("VirtualMachine"), "v1"));
    assert_false(k8s_kind_version_ok(k8s_kind_info("VirtualMachine"), "cdi.kubevirt.io/v1beta1"));
    assert_true(k8s_kind_version_ok(k8s_kind_info("PersistentVolumeClaim"), "v1"));
    assert_false(k8s_kind_version_ok(k8s_kind_info("PersistentVolumeClaim"), "kubevirt.io/v1"));
    assert_null(k8s_kind_info("virtualmachine"));
}

static void test_unknown_fields(void **state)
{
    json_t *v = parse("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\n"
                      "metadata: {name: a, labelz: {}}\n"
                      "spec:\n  updateVolumeStrategy: Migration\n  runStrategy: Always\n"
                      "  dataVolumeTemplates:\n  - apiVersion: cdi.kubevirt.io/v1beta1\n    kind: DataVolume\n"
                      "    metadata: {name: d}\n    spec: {storage: {}, sorce: {}}\n"
                      "  template:\n    spec:\n      domain: {}\n"
                      "      volumes:\n      - {name: x, dataVolume: {name: d}, persistentVolumeClam: {}}\n"
                      "stauts: {}\n");
    json_t *u = k8s_unknown_fields(json_array_get(v, 0));
    char *s = json_dumps(u, JSON_COMPACT);

    (void)state;
    assert_string_equal(s, "[\"stauts\",\"metadata.labelz\",\"spec.updateVolumeStrategy\","
                        "\"spec.template.spec.volumes[0].persistentVolumeClam\","
                        "\"spec.dataVolumeTemplates[0].spec.sorce\"]");
    free(s);
    json_decref(u);
    json_decref(v);
}

static void test_load_paths(void **state)
{
    char dir[] = "/tmp/volmig-paths.XXXXXX", p[300];
    const char *paths[2];
    json_t *v;
    FILE *f;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(p, sizeof p, "%s/b.yaml", dir);
    f = fopen(p, "w");
    fputs("kind: B\n---\nkind: C\n", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/a.json", dir);
    f = fopen(p, "w");
    fputs("{\"kind\":\"A\"}", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/z.txt", dir);
    f = fopen(p, "w");
    fputs("not: read\n", f);
    fclose(f);
    paths[0] = dir;
    paths[1] = p;   /* a file named on its own is read whatever its name */
    v = k8s_load_paths(paths, 2);
    assert_non_null(v);
    assert_int_equal(json_array_size(v), 4);
    assert_string_equal(k8s_kind(json_array_get(v, 0)), "A");
    assert_string_equal(k8s_kind(json_array_get(v, 2)), "C");
    json_decref(v);
    unlink(p);
    snprintf(p, sizeof p, "%s/a.json", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/b.yaml", dir);
    unlink(p);
    v = k8s_load_paths(paths, 1);
    assert_null(v);
    assert_non_null(strstr(err_msg(), "recognized file extensions are [.json .yaml .yml]"));
    rmdir(dir);
    paths[0] = "-";
    paths[1] = "-";
    assert_null(k8s_load_paths(paths, 2));
    assert_non_null(strstr(err_msg(), "only once"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_types),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_lists_and_json),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_quantity),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_admit_templates),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_store),
        cmocka_unit_test(test_concatenated_json),
        cmocka_unit_test(test_kind_lookup),
        cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test(test_load_paths),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
