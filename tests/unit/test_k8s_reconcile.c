/* The reconcile step, rule by rule, on the user guide's own example:
 * vm-dv running on src-dv, updated to dst-dv (template renamed with it). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "k8s/internal.h"

#define FIXTURE "tests/fixtures/k8s/guide-update.yaml"
#define T0 1785578400   /* 2026-08-01T10:00:00Z */

static json_t *obj(const json_t *w, const char *kind, const char *name)
{
    size_t i;
    json_t *o;

    json_array_foreach(w, i, o)
        if (!strcmp(k8s_kind(o), kind) && (!name || !strcmp(k8s_name(o), name)))
            return o;
    return NULL;
}

static size_t count(const json_t *w, const char *kind)
{
    size_t i, n = 0;
    json_t *o;

    json_array_foreach(w, i, o)
        n += !strcmp(k8s_kind(o), kind);
    return n;
}

/* The Event with REASON whose message contains TEXT (NULL: any). */
static json_t *event(const json_t *w, const char *reason, const char *text)
{
    size_t i;
    json_t *o;

    json_array_foreach(w, i, o)
        if (!strcmp(k8s_kind(o), "Event") && !strcmp(k8s_get_str(o, "reason"), reason) &&
            (!text || strstr(k8s_get_str(o, "message"), text)))
            return o;
    return NULL;
}

static void drop(json_t *w, const char *kind, const char *name)
{
    size_t i;
    json_t *o;

    json_array_foreach(w, i, o)
        if (!strcmp(k8s_kind(o), kind) && !strcmp(k8s_name(o), name)) {
            json_array_remove(w, i);
            return;
        }
}

static json_t *load(void)
{
    json_t *w = k8s_load_file(FIXTURE);

    if (!w)
        fail_msg("%s", err_msg());
    return w;
}

/* Runs to a fixed point at NOW, and checks that one more step is quiet. */
static json_t *run(json_t *w, time_t now)
{
    json_t *out = k8s_reconcile_fixed_point(w, now, 32);
    struct k8s_result r;

    if (!out)
        fail_msg("%s", err_msg());
    json_decref(w);
    assert_int_equal(k8s_reconcile(out, now, &r), 0);
    assert_int_equal(json_array_size(r.changed), 0);
    assert_int_equal(json_array_size(r.events), 0);
    assert_int_equal(json_array_size(r.deleted), 0);
    k8s_result_free(&r);
    return out;
}

static json_t *vm_volume(json_t *w)
{
    return json_array_get(k8s_get(obj(w, "VirtualMachine", "vm-dv"),
                                  "spec.template.spec.volumes"), 0);
}

/* Points the VM (volume and template) at CLAIM. */
static void vm_set_claim(json_t *w, const char *claim)
{
    json_t *vm = obj(w, "VirtualMachine", "vm-dv");

    json_object_set_new(k8s_get(vm_volume(w), "dataVolume"), "name", json_string(claim));
    json_object_set_new(k8s_get(json_array_get(k8s_get(vm, "spec.dataVolumeTemplates"), 0),
                                "metadata"), "name", json_string(claim));
}

static void vmim_set_phase(json_t *vmim, const char *phase, time_t when)
{
    char ts[32];

    k8s_format_time(when, ts);
    json_object_set_new(k8s_get(vmim, "status"), "phase", json_string(phase));
    json_array_append_new(k8s_get(vmim, "status.phaseTransitionTimestamps"),
                          json_pack("{s:s, s:s}", "phase", phase, "phaseTransitionTimestamp", ts));
}

static const char *cond_msg(const json_t *o, const char *type)
{
    return k8s_get_str(k8s_cond_get(o, type), "message");
}

/* ---- acceptance ---- */

static void test_guide_update_accepted(void **state)
{
    json_t *w = run(load(), T0), *vm, *vmi, *vmim, *mv;

    (void)state;
    vm = obj(w, "VirtualMachine", "vm-dv");
    vmi = obj(w, "VirtualMachineInstance", "vm-dv");
    vmim = obj(w, "VirtualMachineInstanceMigration", NULL);
    assert_non_null(vmim);
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 1);
    assert_true(!strncmp(k8s_name(vmim), "kubevirt-workload-update-", 25));
    assert_int_equal(strlen(k8s_name(vmim)), 30);
    assert_string_equal(k8s_get_str(vmim, "metadata.generateName"), "kubevirt-workload-update-");
    assert_string_equal(json_string_value(json_object_get(k8s_get(vmim, "metadata.labels"),
                        "kubevirt.io/volume-update-migration")), "vm-dv");
    assert_string_equal(json_string_value(json_object_get(k8s_get(vmim, "metadata.labels"),
                        "kubevirt.io/volume-update-in-progress")), "vm-dv");
    assert_non_null(json_object_get(k8s_get(vmim, "metadata.annotations"),
                                    "kubevirt.io/workloadUpdateMigration"));
    assert_string_equal(k8s_get_str(vmim, "spec.vmiName"), "vm-dv");
    assert_string_equal(k8s_get_str(vmim, "status.phase"), "Pending");
    assert_string_equal(k8s_get_str(vmim, "spec.priority"), "user-triggered");

    assert_true(k8s_cond_true(vmi, "VolumesChange"));
    assert_string_equal(cond_msg(vmi, "VolumesChange"), "migrate volumes");
    assert_true(k8s_cond_true(vm, "VolumesChange"));
    mv = json_array_get(k8s_get(vm, "status.volumeUpdateState.volumeMigrationState.migratedVolumes"), 0);
    assert_string_equal(k8s_get_str(mv, "volumeName"), "datavolumedisk1");
    assert_string_equal(k8s_get_str(mv, "sourcePVCInfo.claimName"), "src-dv");
    assert_string_equal(k8s_get_str(mv, "destinationPVCInfo.claimName"), "dst-dv");
    assert_string_equal(k8s_get_str(mv, "destinationPVCInfo.volumeMode"), "Block");
    assert_string_equal(k8s_get_str(mv, "destinationPVCInfo.capacity.storage"), "5Gi");
    assert_string_equal(k8s_get_str(mv, "sourcePVCInfo.requests.storage"), "2Gi");
    assert_true(json_equal(mv, json_array_get(k8s_get(vmi, "status.migratedVolumes"), 0)));
    /* KubeVirt patches the VMI spec to the destinations when it accepts */
    assert_string_equal(k8s_get_str(json_array_get(k8s_get(vmi, "spec.volumes"), 0),
                                    "dataVolume.name"), "dst-dv");
    assert_null(k8s_cond_get(vm, "RestartRequired"));
    assert_non_null(event(w, "VolumeMigrationStarted", "src-dv -> dst-dv"));
    assert_non_null(event(w, "SuccessfulCreate", "for automated workload update"));
    assert_non_null(event(w, "SuccessfulCreate", k8s_name(vmim)));
    assert_string_equal(k8s_get_str(event(w, "SuccessfulCreate", k8s_name(vmim)),
                                    "involvedObject.kind"), "VirtualMachineInstance");
    json_decref(w);
}

static void test_deterministic(void **state)
{
    json_t *a = run(load(), T0), *b = run(load(), T0), *c = run(load(), T0 + 1);
    char *sa = k8s_dump_yaml(a), *sb = k8s_dump_yaml(b);

    (void)state;
    assert_string_equal(sa, sb);
    /* another clock, another generated name */
    assert_string_not_equal(k8s_name(obj(a, "VirtualMachineInstanceMigration", NULL)),
                            k8s_name(obj(c, "VirtualMachineInstanceMigration", NULL)));
    free(sa);
    free(sb);
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

static void test_long_vmi_name_uses_uid(void **state)
{
    json_t *w = load();
    char longname[80];
    json_t *vmim;

    (void)state;
    memset(longname, 'v', 70);
    longname[70] = '\0';
    json_object_set_new(k8s_get(obj(w, "VirtualMachine", "vm-dv"), "metadata"), "name",
                        json_string(longname));
    json_object_set_new(k8s_get(obj(w, "VirtualMachineInstance", "vm-dv"), "metadata"), "name",
                        json_string(longname));
    w = run(w, T0);
    vmim = obj(w, "VirtualMachineInstanceMigration", NULL);
    assert_string_equal(json_string_value(json_object_get(k8s_get(vmim, "metadata.labels"),
                        "kubevirt.io/volume-update-migration")), "7b1a2c3d-0000-4000-8000-000000000002");
    assert_string_equal(json_string_value(json_object_get(k8s_get(vmim, "metadata.labels"),
                        "kubevirt.io/volume-update-in-progress")), "7b1a2c3d-0000-4000-8000-000000000001");
    json_decref(w);
}

/* ---- success, cancellation, sequential updates ---- */

static void test_succeeded(void **state)
{
    json_t *w = run(load(), T0), *vm, *vmi;

    (void)state;
    vmim_set_phase(obj(w, "VirtualMachineInstanceMigration", NULL), "Succeeded", T0 + 60);
    w = run(w, T0 + 61);
    vm = obj(w, "VirtualMachine", "vm-dv");
    vmi = obj(w, "VirtualMachineInstance", "vm-dv");
    assert_string_equal(k8s_get_str(json_array_get(k8s_get(vmi, "spec.volumes"), 0),
                                    "dataVolume.name"), "dst-dv");
    assert_null(k8s_cond_get(vmi, "VolumesChange"));
    assert_null(k8s_cond_get(vm, "VolumesChange"));
    assert_null(k8s_get(vmi, "status.migratedVolumes"));
    /* KubeVirt keeps the VM's record of the last migration */
    assert_string_equal(k8s_get_str(json_array_get(k8s_get(vm, "status.volumeUpdateState."
                        "volumeMigrationState.migratedVolumes"), 0), "sourcePVCInfo.claimName"),
                        "src-dv");
    /* the volume status follows the volume onto the destination */
    assert_string_equal(k8s_get_str(json_array_get(k8s_get(vmi, "status.volumeStatus"), 0),
                        "persistentVolumeClaimInfo.claimName"), "dst-dv");
    assert_string_equal(json_string_value(json_array_get(k8s_get(json_array_get(
                        k8s_get(vmi, "status.volumeStatus"), 0),
                        "persistentVolumeClaimInfo.accessModes"), 0)), "ReadWriteMany");
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 1);
    assert_non_null(event(w, "VolumeMigrationSucceeded", "src-dv -> dst-dv"));
    json_decref(w);
}

static void test_cancel_restores_original(void **state)
{
    json_t *w = run(load(), T0), *vm, *vmi, *c;

    (void)state;
    vm_set_claim(w, "src-dv");
    w = run(w, T0 + 5);
    vm = obj(w, "VirtualMachine", "vm-dv");
    vmi = obj(w, "VirtualMachineInstance", "vm-dv");
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 0);   /* deleted */
    c = k8s_cond_get(vmi, "VolumesChange");
    assert_non_null(c);
    assert_string_equal(k8s_get_str(c, "status"), "False");
    assert_string_equal(k8s_get_str(c, "reason"), "VolumesChangeCancellation");
    /* the VMI spec goes back to the source */
    assert_string_equal(k8s_get_str(json_array_get(k8s_get(vmi, "spec.volumes"), 0),
                                    "dataVolume.name"), "src-dv");
    assert_null(k8s_get(vmi, "status.migratedVolumes"));
    assert_null(k8s_get(vm, "status.volumeUpdateState"));
    assert_null(k8s_cond_get(vm, "RestartRequired"));
    assert_null(k8s_cond_get(vm, "Failure"));
    assert_non_null(event(w, "VolumeMigrationCancelled", "src-dv -> dst-dv"));
    assert_non_null(event(w, "SuccessfulDelete", "kubevirt-workload-update-"));
    json_decref(w);
}

static void test_cancel_keeps_vmim_when_target_ready(void **state)
{
    json_t *w = run(load(), T0), *vmi;

    (void)state;
    vmi = obj(w, "VirtualMachineInstance", "vm-dv");
    json_object_set_new(k8s_get(vmi, "status"), "migrationState",
                        json_pack("{s:s}", "targetNodeDomainReadyTimestamp", "2026-08-01T10:00:03Z"));
    vm_set_claim(w, "src-dv");
    w = run(w, T0 + 5);
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 1);
    assert_null(k8s_get(obj(w, "VirtualMachineInstance", "vm-dv"), "status.migratedVolumes"));
    assert_non_null(event(w, "VolumeMigrationKept", "is kept"));
    json_decref(w);
}

/* Cancellation needs VolumesChange=True: once the update is over, going
 * back is a new update, not a cancel. */
static void test_revert_after_success_is_a_new_update(void **state)
{
    json_t *w = load(), *vmi;

    (void)state;
    /* src-dv as large as dst-dv, so that going back is not refused as too small */
    json_object_set_new(k8s_get(obj(w, "PersistentVolumeClaim", "src-dv"), "status.capacity"),
                        "storage", json_string("5Gi"));
    w = run(w, T0);
    vmim_set_phase(obj(w, "VirtualMachineInstanceMigration", NULL), "Succeeded", T0 + 60);
    w = run(w, T0 + 61);
    vm_set_claim(w, "src-dv");
    w = run(w, T0 + 70);
    vmi = obj(w, "VirtualMachineInstance", "vm-dv");
    assert_null(event(w, "VolumeMigrationCancelled", NULL));
    assert_true(k8s_cond_true(vmi, "VolumesChange"));
    assert_string_equal(k8s_get_str(json_array_get(k8s_get(vmi, "status.migratedVolumes"), 0),
                                    "sourcePVCInfo.claimName"), "dst-dv");
    assert_string_equal(k8s_get_str(json_array_get(k8s_get(vmi, "status.migratedVolumes"), 0),
                                    "destinationPVCInfo.claimName"), "src-dv");
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 2);
    json_decref(w);
}

static void add_claim(json_t *w, const char *name, const char *modes)
{
    json_t *dv = json_deep_copy(obj(w, "DataVolume", "dst-dv"));
    json_t *pvc = json_deep_copy(obj(w, "PersistentVolumeClaim", "dst-dv"));

    json_object_set_new(k8s_get(dv, "metadata"), "name", json_string(name));
    json_object_set_new(k8s_get(pvc, "metadata"), "name", json_string(name));
    if (modes)
        json_object_set_new(k8s_get(pvc, "spec"), "accessModes", json_pack("[s]", modes));
    json_array_append_new(w, dv);
    json_array_append_new(w, pvc);
}

static void test_other_claim_for_migrating_volume_is_invalid(void **state)
{
    json_t *w = run(load(), T0), *vm, *vmi, *vmim;

    (void)state;
    /* a third volume appears and the user points the VM at it mid-update */
    add_claim(w, "dst2", NULL);
    vm_set_claim(w, "dst2");
    w = run(w, T0 + 5);
    vm = obj(w, "VirtualMachine", "vm-dv");
    assert_true(k8s_cond_true(vm, "Failure"));
    assert_string_equal(k8s_get_str(k8s_cond_get(vm, "Failure"), "reason"), "VolumesUpdateError");
    assert_string_equal(cond_msg(vm, "Failure"), "error encountered while handling volumes "
                        "update requests: The volume can only be reverted to the previous "
                        "version during the update");
    /* the update in flight is neither cancelled nor extended */
    vmim = obj(w, "VirtualMachineInstanceMigration", NULL);
    assert_non_null(vmim);
    vmi = obj(w, "VirtualMachineInstance", "vm-dv");
    assert_true(k8s_cond_true(vmi, "VolumesChange"));
    assert_int_equal(json_array_size(k8s_get(vmi, "status.migratedVolumes")), 1);

    /* it finishes on dst-dv; the later change is a separate migration */
    vmim_set_phase(vmim, "Succeeded", T0 + 60);
    w = run(w, T0 + 61);
    vm = obj(w, "VirtualMachine", "vm-dv");
    vmi = obj(w, "VirtualMachineInstance", "vm-dv");
    assert_null(k8s_cond_get(vm, "Failure"));
    assert_string_equal(k8s_get_str(json_array_get(k8s_get(vmi, "spec.volumes"), 0),
                                    "dataVolume.name"), "dst2");
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 2);
    assert_string_equal(k8s_get_str(json_array_get(k8s_get(vmi, "status.migratedVolumes"), 0),
                                    "sourcePVCInfo.claimName"), "dst-dv");
    assert_string_equal(k8s_get_str(json_array_get(k8s_get(vmi, "status.migratedVolumes"), 0),
                                    "destinationPVCInfo.claimName"), "dst2");
    json_decref(w);
}

/* A VM with two volumes: the second one changes while the first migrates.
 * Not an error; it waits, and goes as its own migration after. */
static void test_sequential_update_of_another_volume(void **state)
{
    json_t *w = load(), *vm, *vmi, *vmim, *st;

    (void)state;
    add_claim(w, "data-a", "ReadWriteMany");
    add_claim(w, "data-b", "ReadWriteMany");
    json_array_append_new(k8s_get(obj(w, "VirtualMachine", "vm-dv"), "spec.template.spec.volumes"),
                          json_pack("{s:s, s:{s:s}}", "name", "disk2", "persistentVolumeClaim",
                                    "claimName", "data-a"));
    json_array_append_new(k8s_get(obj(w, "VirtualMachineInstance", "vm-dv"), "spec.volumes"),
                          json_pack("{s:s, s:{s:s}}", "name", "disk2", "persistentVolumeClaim",
                                    "claimName", "data-a"));
    st = json_pack("{s:s, s:{s:s, s:[s]}}", "name", "disk2", "persistentVolumeClaimInfo",
                   "claimName", "data-a", "accessModes", "ReadWriteMany");
    json_array_append_new(k8s_get(obj(w, "VirtualMachineInstance", "vm-dv"), "status.volumeStatus"), st);
    w = run(w, T0);
    json_object_set_new(k8s_get(json_array_get(k8s_get(obj(w, "VirtualMachine", "vm-dv"),
                        "spec.template.spec.volumes"), 1), "persistentVolumeClaim"), "claimName",
                        json_string("data-b"));
    w = run(w, T0 + 5);
    vm = obj(w, "VirtualMachine", "vm-dv");
    vmi = obj(w, "VirtualMachineInstance", "vm-dv");
    assert_null(k8s_cond_get(vm, "Failure"));
    assert_null(k8s_cond_get(vm, "RestartRequired"));
    assert_int_equal(json_array_size(k8s_get(vmi, "status.migratedVolumes")), 1);
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 1);
    assert_string_equal(k8s_get_str(json_array_get(k8s_get(vmi, "spec.volumes"), 1),
                                    "persistentVolumeClaim.claimName"), "data-a");
    vmim = obj(w, "VirtualMachineInstanceMigration", NULL);
    vmim_set_phase(vmim, "Succeeded", T0 + 60);
    w = run(w, T0 + 61);
    vmi = obj(w, "VirtualMachineInstance", "vm-dv");
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 2);
    assert_int_equal(json_array_size(k8s_get(vmi, "status.migratedVolumes")), 1);
    assert_string_equal(k8s_get_str(json_array_get(k8s_get(vmi, "status.migratedVolumes"), 0),
                                    "volumeName"), "disk2");
    assert_string_equal(k8s_get_str(json_array_get(k8s_get(vmi, "spec.volumes"), 1),
                                    "persistentVolumeClaim.claimName"), "data-b");
    json_decref(w);
}

/* A VMI whose spec still names the source while migratedVolumes is set
 * (an acceptance cut short, or a store from an older volmig): the patch is
 * finished, and the update goes on. */
static void test_unfinished_patch_is_finished(void **state)
{
    json_t *w = run(load(), T0), *vmi, *vmim;

    (void)state;
    vmi = obj(w, "VirtualMachineInstance", "vm-dv");
    json_object_set_new(k8s_get(json_array_get(k8s_get(vmi, "spec.volumes"), 0), "dataVolume"),
                        "name", json_string("src-dv"));
    vmim = obj(w, "VirtualMachineInstanceMigration", NULL);
    vmim_set_phase(vmim, "Running", T0 + 2);
    w = run(w, T0 + 5);
    vmi = obj(w, "VirtualMachineInstance", "vm-dv");
    assert_string_equal(k8s_get_str(json_array_get(k8s_get(vmi, "spec.volumes"), 0),
                                    "dataVolume.name"), "dst-dv");
    assert_null(k8s_cond_get(obj(w, "VirtualMachine", "vm-dv"), "Failure"));
    assert_true(k8s_cond_true(vmi, "VolumesChange"));
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 1);
    assert_null(event(w, "VolumeMigrationCancelled", NULL));
    json_decref(w);
}

/* ---- failure and backoff ---- */

/* The unfinished migration of the VMI: the one the engine would run. */
static json_t *pending_vmim(json_t *w)
{
    size_t i;
    json_t *o, *found = NULL;

    json_array_foreach(w, i, o)
        if (!strcmp(k8s_kind(o), "VirtualMachineInstanceMigration") &&
            !strcmp(k8s_get_str(o, "status.phase"), "Pending")) {
            assert_null(found);
            found = o;
        }
    assert_non_null(found);
    return found;
}

static bool held(json_t *w, time_t now, time_t want_until)
{
    time_t until = 0;
    bool b = k8s_migration_backoff(w, pending_vmim(w), now, &until);

    if (want_until)
        assert_int_equal(until, want_until);
    return b;
}

static void test_backoff(void **state)
{
    json_t *w = run(load(), T0), *vmi;

    (void)state;
    assert_false(held(w, T0, 0));              /* the first migration never waits */
    vmim_set_phase(obj(w, "VirtualMachineInstanceMigration", NULL), "Failed", T0 + 30);
    w = run(w, T0 + 40);
    /* KubeVirt creates the next migration at once and holds it Pending */
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 2);
    assert_non_null(event(w, "VolumeMigrationFailed", NULL));
    vmi = obj(w, "VirtualMachineInstance", "vm-dv");
    assert_true(k8s_cond_true(vmi, "VolumesChange"));
    assert_non_null(event(w, "MigrationBackoff", "backoff migrating vmi default/vm-dv"));
    assert_string_equal(k8s_get_str(event(w, "MigrationBackoff", NULL), "type"), "Warning");
    assert_string_equal(k8s_get_str(event(w, "MigrationBackoff", NULL), "involvedObject.kind"),
                        "VirtualMachineInstance");
    assert_true(held(w, T0 + 49, T0 + 50));     /* 20 s from the Failed timestamp */
    assert_false(held(w, T0 + 50, T0 + 50));
    {
        size_t events = count(w, "Event");

        w = run(w, T0 + 49);                   /* no second event for the same wait */
        assert_int_equal(count(w, "Event"), events);
    }

    /* the second failure doubles the wait, from its own Failed time */
    vmim_set_phase(pending_vmim(w), "Failed", T0 + 100);
    w = run(w, T0 + 101);
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 3);
    assert_true(held(w, T0 + 139, T0 + 140));
    assert_false(held(w, T0 + 140, 0));

    /* the third: 80 s */
    vmim_set_phase(pending_vmim(w), "Failed", T0 + 200);
    w = run(w, T0 + 201);
    assert_true(held(w, T0 + 279, T0 + 280));
    assert_false(held(w, T0 + 280, 0));
    json_decref(w);
}

static void test_backoff_resets_after_success(void **state)
{
    json_t *w = run(load(), T0), *old;

    (void)state;
    /* an older migration of this VMI succeeded before the current failure */
    old = json_deep_copy(obj(w, "VirtualMachineInstanceMigration", NULL));
    json_object_set_new(k8s_get(old, "metadata"), "name", json_string("older-ok"));
    json_object_set_new(k8s_get(old, "metadata"), "creationTimestamp",
                        json_string("2026-07-01T00:00:00Z"));
    vmim_set_phase(old, "Succeeded", T0 - 86400);
    json_array_append_new(w, old);
    /* and a failure before that success does not count */
    old = json_deep_copy(old);
    json_object_set_new(k8s_get(old, "metadata"), "name", json_string("older-failed"));
    json_object_set_new(k8s_get(old, "metadata"), "creationTimestamp",
                        json_string("2026-06-01T00:00:00Z"));
    json_object_set_new(k8s_get(old, "status"), "phase", json_string("Failed"));
    json_array_append_new(w, old);
    vmim_set_phase(pending_vmim(w), "Failed", T0 + 30);
    w = run(w, T0 + 40);
    assert_true(held(w, T0 + 49, T0 + 50));    /* 20 s, not 40 */
    json_decref(w);
}

/* Only migrations with the workload-update (or evacuation) annotation
 * count, and one a user made never waits. */
static void test_backoff_ignores_user_migrations(void **state)
{
    json_t *w = run(load(), T0), *m;
    time_t until;

    (void)state;
    m = obj(w, "VirtualMachineInstanceMigration", NULL);
    json_object_del(k8s_get(m, "metadata.annotations"), K8S_ANNOT_WORKLOAD_UPDATE);
    vmim_set_phase(m, "Failed", T0 + 30);
    w = run(w, T0 + 40);
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 2);
    assert_false(held(w, T0 + 41, 0));
    assert_null(event(w, "MigrationBackoff", NULL));
    /* a user's own Pending migration after a failed workload one: no wait */
    m = pending_vmim(w);
    json_object_set_new(k8s_get(m, "metadata"), "annotations", json_object());
    assert_false(k8s_migration_backoff(w, m, T0 + 41, &until));
    json_decref(w);
}

/* ---- manual recovery ---- */

static json_t *vmi_removed_mid_update(void)
{
    json_t *w = run(load(), T0), *vm;

    drop(w, "VirtualMachineInstance", "vm-dv");
    w = run(w, T0 + 30);
    vm = obj(w, "VirtualMachine", "vm-dv");
    assert_true(k8s_cond_true(vm, "ManualRecoveryRequired"));
    assert_string_equal(k8s_get_str(k8s_cond_get(vm, "ManualRecoveryRequired"), "reason"),
                        "VMI was removed or was final during the volume migration");
    assert_null(obj(w, "VirtualMachineInstance", "vm-dv"));   /* runStrategy Always, yet no start */
    assert_non_null(event(w, "FailedCreate", "VM recovery required: "));
    assert_non_null(event(w, "ManualRecoveryRequired", NULL));
    assert_non_null(k8s_get(vm, "status.volumeUpdateState.volumeMigrationState"));
    return w;
}

static void test_manual_recovery_restore(void **state)
{
    json_t *w = vmi_removed_mid_update(), *vm, *vmi;

    (void)state;
    vm_set_claim(w, "src-dv");
    w = run(w, T0 + 60);
    vm = obj(w, "VirtualMachine", "vm-dv");
    assert_null(k8s_cond_get(vm, "ManualRecoveryRequired"));
    assert_null(k8s_cond_get(vm, "VolumesChange"));
    assert_null(k8s_get(vm, "status.volumeUpdateState"));
    assert_non_null(event(w, "ManualRecoveryCleared", "original volumes were restored"));
    vmi = obj(w, "VirtualMachineInstance", "vm-dv");   /* now it starts, on the source */
    assert_non_null(vmi);
    assert_string_equal(k8s_get_str(json_array_get(k8s_get(vmi, "spec.volumes"), 0),
                                    "dataVolume.name"), "src-dv");
    json_decref(w);
}

static void test_manual_recovery_remove_strategy(void **state)
{
    json_t *w = vmi_removed_mid_update(), *vm, *vmi;

    (void)state;
    json_object_del(k8s_get(obj(w, "VirtualMachine", "vm-dv"), "spec"), "updateVolumesStrategy");
    w = run(w, T0 + 60);
    vm = obj(w, "VirtualMachine", "vm-dv");
    assert_null(k8s_cond_get(vm, "ManualRecoveryRequired"));
    assert_null(k8s_get(vm, "status.volumeUpdateState"));
    assert_non_null(event(w, "ManualRecoveryCleared", "kept as a replacement"));
    vmi = obj(w, "VirtualMachineInstance", "vm-dv");   /* starts on the destination */
    assert_string_equal(k8s_get_str(json_array_get(k8s_get(vmi, "spec.volumes"), 0),
                                    "dataVolume.name"), "dst-dv");
    json_decref(w);
}

static void test_manual_recovery_vmi_final(void **state)
{
    json_t *w = run(load(), T0);

    (void)state;
    json_object_set_new(k8s_get(obj(w, "VirtualMachineInstance", "vm-dv"), "status"), "phase",
                        json_string("Failed"));
    w = run(w, T0 + 30);
    assert_true(k8s_cond_true(obj(w, "VirtualMachine", "vm-dv"), "ManualRecoveryRequired"));
    json_decref(w);
}

/* ---- refusals ---- */

static json_t *disk(json_t *w)
{
    return json_array_get(k8s_get(obj(w, "VirtualMachineInstance", "vm-dv"),
                                  "spec.domain.devices.disks"), 0);
}

static void assert_restart(json_t *w, const char *msg)
{
    json_t *vm = obj(w, "VirtualMachine", "vm-dv");

    assert_true(k8s_cond_true(vm, "RestartRequired"));
    if (!strstr(cond_msg(vm, "RestartRequired"), msg))
        fail_msg("RestartRequired says '%s', wanted '%s'", cond_msg(vm, "RestartRequired"), msg);
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 0);
    assert_null(k8s_get(obj(w, "VirtualMachineInstance", "vm-dv"), "status.migratedVolumes"));
    assert_non_null(event(w, "RestartRequired", msg));
}

static void test_refused_shareable(void **state)
{
    json_t *w = load();

    (void)state;
    json_object_set_new(disk(w), "shareable", json_true());
    w = run(w, T0);
    assert_restart(w, "invalid volumes to update with migration: shareable: [datavolumedisk1]");
    json_decref(w);
}

static void test_refused_lun(void **state)
{
    json_t *w = load();

    (void)state;
    json_object_del(disk(w), "disk");
    json_object_set_new(disk(w), "lun", json_object());
    w = run(w, T0);
    assert_restart(w, "invalid volumes to update with migration: luns: [datavolumedisk1]");
    json_decref(w);
}

static void test_refused_filesystem(void **state)
{
    json_t *w = load();
    json_t *dev = k8s_get(obj(w, "VirtualMachineInstance", "vm-dv"), "spec.domain.devices");

    (void)state;
    json_object_set_new(dev, "filesystems", json_pack("[{s:s, s:{}}]", "name",
                                                      "datavolumedisk1", "virtiofs"));
    w = run(w, T0);
    assert_restart(w, "invalid volumes to update with migration: filesystems: [datavolumedisk1]");
    json_decref(w);
}

static void test_refused_hotplug(void **state)
{
    json_t *w = load();

    (void)state;
    json_object_set_new(k8s_get(vm_volume(w), "dataVolume"), "hotpluggable", json_true());
    w = run(w, T0);
    assert_restart(w, "invalid volumes to update with migration: hotplugged: [datavolumedisk1]");
    json_decref(w);
}

static void test_replacement_strategy(void **state)
{
    json_t *w = load();

    (void)state;
    json_object_del(k8s_get(obj(w, "VirtualMachine", "vm-dv"), "spec"), "updateVolumesStrategy");
    w = run(w, T0);
    assert_restart(w, "the volumes replacement is effective only after restart");
    json_decref(w);
    w = load();
    json_object_set_new(k8s_get(obj(w, "VirtualMachine", "vm-dv"), "spec"), "updateVolumesStrategy",
                        json_string("Replacement"));
    w = run(w, T0);
    assert_restart(w, "the volumes replacement is effective only after restart");
    json_decref(w);
}

static void test_unknown_strategy(void **state)
{
    json_t *w = load(), *vm;

    (void)state;
    json_object_set_new(k8s_get(obj(w, "VirtualMachine", "vm-dv"), "spec"), "updateVolumesStrategy",
                        json_string("Teleport"));
    w = run(w, T0);
    vm = obj(w, "VirtualMachine", "vm-dv");
    assert_true(k8s_cond_true(vm, "Failure"));
    assert_string_equal(k8s_get_str(k8s_cond_get(vm, "Failure"), "reason"), "VolumesUpdateError");
    assert_string_equal(cond_msg(vm, "Failure"), "error encountered while handling volumes "
                        "update requests: updateVolumes strategy not recognized: Teleport");
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 0);
    json_decref(w);
}

static void test_containerdisk_change(void **state)
{
    json_t *w = load();

    (void)state;
    json_array_append_new(k8s_get(obj(w, "VirtualMachine", "vm-dv"), "spec.template.spec.volumes"),
                          json_pack("{s:s, s:{s:s}}", "name", "cd", "containerDisk", "image", "b"));
    json_array_append_new(k8s_get(obj(w, "VirtualMachineInstance", "vm-dv"), "spec.volumes"),
                          json_pack("{s:s, s:{s:s}}", "name", "cd", "containerDisk", "image", "a"));
    w = run(w, T0);
    assert_restart(w, "a non-live-updatable field was changed in the template spec: volumes [cd]");
    json_decref(w);
}

static void test_destination_smaller(void **state)
{
    json_t *w = load();

    (void)state;
    json_object_set_new(k8s_get(obj(w, "PersistentVolumeClaim", "dst-dv"), "status.capacity"),
                        "storage", json_string("1Gi"));
    w = run(w, T0);
    assert_restart(w, "the destination dst-dv (1Gi, 1073741824 bytes) is smaller than the "
                   "source src-dv (2Gi, 2147483648 bytes)");
    json_decref(w);
}

static void test_destination_missing_then_appears(void **state)
{
    json_t *w = load(), *saved_dv, *saved_pvc, *vmi, *c;

    (void)state;
    saved_dv = json_incref(obj(w, "DataVolume", "dst-dv"));
    saved_pvc = json_incref(obj(w, "PersistentVolumeClaim", "dst-dv"));
    /* no template for the destination: nobody creates it but the user */
    json_object_del(k8s_get(obj(w, "VirtualMachine", "vm-dv"), "spec"), "dataVolumeTemplates");
    drop(w, "DataVolume", "dst-dv");
    drop(w, "PersistentVolumeClaim", "dst-dv");
    w = run(w, T0);
    vmi = obj(w, "VirtualMachineInstance", "vm-dv");
    c = k8s_cond_get(vmi, "VolumesChange");
    assert_string_equal(k8s_get_str(c, "status"), "False");
    assert_string_equal(k8s_get_str(c, "message"), "One of the destination volumes doesn't "
                        "exist: the datavolume dst-dv doesn't exist");
    assert_null(k8s_cond_get(obj(w, "VirtualMachine", "vm-dv"), "RestartRequired"));
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 0);

    json_array_append_new(w, saved_dv);
    json_array_append_new(w, saved_pvc);
    w = run(w, T0 + 10);
    assert_true(k8s_cond_true(obj(w, "VirtualMachineInstance", "vm-dv"), "VolumesChange"));
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 1);
    json_decref(w);
}

/* A second volume, left out of the update, with ACCESS in the VMI's
 * volumeStatus (NULL: an empty list). */
static json_t *with_left_out(const char *access)
{
    json_t *w = load(), *pvc, *st;

    pvc = json_deep_copy(obj(w, "PersistentVolumeClaim", "src-dv"));
    json_object_set_new(k8s_get(pvc, "metadata"), "name", json_string("data"));
    json_array_append_new(w, pvc);
    json_array_append_new(k8s_get(obj(w, "VirtualMachine", "vm-dv"), "spec.template.spec.volumes"),
                          json_pack("{s:s, s:{s:s}}", "name", "disk2", "persistentVolumeClaim",
                                    "claimName", "data"));
    json_array_append_new(k8s_get(obj(w, "VirtualMachineInstance", "vm-dv"), "spec.volumes"),
                          json_pack("{s:s, s:{s:s}}", "name", "disk2", "persistentVolumeClaim",
                                    "claimName", "data"));
    st = json_pack("{s:s, s:{s:s, s:[]}}", "name", "disk2", "persistentVolumeClaimInfo",
                   "claimName", "data", "accessModes");
    if (access)
        json_array_append_new(k8s_get(st, "persistentVolumeClaimInfo.accessModes"),
                              json_string(access));
    json_array_append_new(k8s_get(obj(w, "VirtualMachineInstance", "vm-dv"), "status.volumeStatus"), st);
    return run(w, T0);
}

static void test_rwo_volume_left_out(void **state)
{
    static const char *const rwo[] = { "ReadWriteOnce", "ReadWriteOncePod", NULL };
    json_t *w;

    (void)state;
    for (size_t i = 0; i < 3; i++) {
        w = with_left_out(rwo[i]);
        assert_restart(w, "cannot migrate the VM. The volume disk2 is RWO and not included in "
                       "the migration volumes");
        json_decref(w);
    }
    w = with_left_out("ReadWriteMany");
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 1);
    json_decref(w);
    w = with_left_out("ReadOnlyMany");
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 1);
    json_decref(w);
}

/* A deletionTimestamp alone does not make the VMI final: no manual recovery. */
static void test_vmi_terminating_is_not_final(void **state)
{
    json_t *w = run(load(), T0);

    (void)state;
    json_object_set_new(k8s_get(obj(w, "VirtualMachineInstance", "vm-dv"), "metadata"),
                        "deletionTimestamp", json_string("2026-08-01T10:00:20Z"));
    w = run(w, T0 + 30);
    assert_null(k8s_cond_get(obj(w, "VirtualMachine", "vm-dv"), "ManualRecoveryRequired"));
    assert_true(k8s_cond_true(obj(w, "VirtualMachine", "vm-dv"), "VolumesChange"));
    json_decref(w);
}

/* KubeVirt's VM controller creates a DataVolume missing for a template,
 * and handles nothing else of the VM until it is populated. */
static void test_datavolume_from_template(void **state)
{
    json_t *w = load(), *dv;

    (void)state;
    drop(w, "DataVolume", "dst-dv");
    w = run(w, T0);
    dv = obj(w, "DataVolume", "dst-dv");
    assert_non_null(dv);
    assert_string_equal(k8s_get_str(dv, "apiVersion"), "cdi.kubevirt.io/v1beta1");
    assert_string_equal(k8s_get_str(dv, "metadata.namespace"), "default");
    assert_string_equal(k8s_get_str(json_array_get(k8s_get(dv, "metadata.ownerReferences"), 0),
                                    "name"), "vm-dv");
    assert_string_equal(k8s_get_str(dv, "spec.storage.resources.requests.storage"), "2Gi");
    assert_non_null(event(w, "SuccessfulDataVolumeCreate", "Created DataVolume dst-dv"));
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 0);
    assert_null(k8s_get(obj(w, "VirtualMachineInstance", "vm-dv"), "status.migratedVolumes"));
    json_object_set_new(k8s_mkpath(dv, "status"), "phase", json_string("Succeeded"));
    w = run(w, T0 + 10);
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 1);
    json_decref(w);
}

static void test_template_must_be_referenced(void **state)
{
    json_t *w = load(), *vm;

    (void)state;
    /* volume renamed, template left behind: KubeVirt's webhook message */
    json_object_set_new(k8s_get(json_array_get(k8s_get(obj(w, "VirtualMachine", "vm-dv"),
                        "spec.dataVolumeTemplates"), 0), "metadata"), "name", json_string("src-dv"));
    w = run(w, T0);
    vm = obj(w, "VirtualMachine", "vm-dv");
    assert_true(k8s_cond_true(vm, "Failure"));
    assert_string_equal(cond_msg(vm, "Failure"), "DataVolumeTemplate entry src-dv must be "
                        "referenced in the VMI template's 'volumes' list");
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 0);
    json_decref(w);
}

static void test_kubevirt_cr_requirements(void **state)
{
    json_t *w = load();

    (void)state;
    json_array_clear(k8s_get(obj(w, "KubeVirt", NULL), "spec.workloadUpdateStrategy.workloadUpdateMethods"));
    w = run(w, T0);
    assert_restart(w, "LiveMigrate is missing");
    json_decref(w);
    w = load();
    json_object_set_new(k8s_get(obj(w, "KubeVirt", NULL), "spec.configuration"),
                        "vmRolloutStrategy", json_string("Stage"));
    w = run(w, T0);
    assert_restart(w, "vmRolloutStrategy is not LiveUpdate");
    json_decref(w);
    w = load();
    drop(w, "KubeVirt", "kubevirt");
    w = run(w, T0);
    assert_restart(w, "there is no KubeVirt CR");
    json_decref(w);
}

static void test_refusal_cleared_when_fixed(void **state)
{
    json_t *w = load();

    (void)state;
    json_object_set_new(disk(w), "shareable", json_true());
    w = run(w, T0);
    assert_true(k8s_cond_true(obj(w, "VirtualMachine", "vm-dv"), "RestartRequired"));
    json_object_del(disk(w), "shareable");
    w = run(w, T0 + 10);
    assert_null(k8s_cond_get(obj(w, "VirtualMachine", "vm-dv"), "RestartRequired"));
    assert_int_equal(count(w, "VirtualMachineInstanceMigration"), 1);
    json_decref(w);
}

static void test_bad_world(void **state)
{
    json_t *w = load();
    struct k8s_result r;

    (void)state;
    json_object_set_new(k8s_get(obj(w, "VirtualMachineInstance", "vm-dv"), "spec"), "volumes",
                        json_string("oops"));
    assert_int_equal(k8s_reconcile(w, T0, &r), -1);
    assert_string_equal(err_msg(), "VirtualMachineInstance default/vm-dv: spec.volumes: "
                        "expected a list, got a string");
    json_decref(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guide_update_accepted),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_long_vmi_name_uses_uid),
        cmocka_unit_test(test_succeeded),
        cmocka_unit_test(test_cancel_restores_original),
        cmocka_unit_test(test_cancel_keeps_vmim_when_target_ready),
        cmocka_unit_test(test_revert_after_success_is_a_new_update),
        cmocka_unit_test(test_other_claim_for_migrating_volume_is_invalid),
        cmocka_unit_test(test_sequential_update_of_another_volume),
        cmocka_unit_test(test_unfinished_patch_is_finished),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_backoff_resets_after_success),
        cmocka_unit_test(test_backoff_ignores_user_migrations),
        cmocka_unit_test(test_vmi_terminating_is_not_final),
        cmocka_unit_test(test_datavolume_from_template),
        cmocka_unit_test(test_manual_recovery_restore),
        cmocka_unit_test(test_manual_recovery_remove_strategy),
        cmocka_unit_test(test_manual_recovery_vmi_final),
        cmocka_unit_test(test_refused_shareable),
        cmocka_unit_test(test_refused_lun),
        cmocka_unit_test(test_refused_filesystem),
        cmocka_unit_test(test_refused_hotplug),
        cmocka_unit_test(test_replacement_strategy),
        cmocka_unit_test(test_unknown_strategy),
        cmocka_unit_test(test_containerdisk_change),
        cmocka_unit_test(test_destination_smaller),
        cmocka_unit_test(test_destination_missing_then_appears),
        cmocka_unit_test(test_rwo_volume_left_out),
        cmocka_unit_test(test_template_must_be_referenced),
        cmocka_unit_test(test_kubevirt_cr_requirements),
        cmocka_unit_test(test_refusal_cleared_when_fixed),
        cmocka_unit_test(test_bad_world),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
