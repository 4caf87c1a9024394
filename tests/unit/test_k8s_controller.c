/* The controller loop against a fake engine: what it writes into the
 * migration objects and the VMI, the backoff it obeys, the exit it reports,
 * and a cancellation that comes after the switchover. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "k8s/controller.h"
#include "k8s/k8s.h"

#define T0 1785578400   /* 2026-08-01T10:00:00Z */

static const char world[] =
    "apiVersion: kubevirt.io/v1\nkind: KubeVirt\nmetadata: {name: kubevirt, namespace: kubevirt}\n"
    "spec:\n  configuration: {vmRolloutStrategy: LiveUpdate}\n"
    "  workloadUpdateStrategy: {workloadUpdateMethods: [LiveMigrate]}\n"
    "---\napiVersion: v1\nkind: PersistentVolume\nmetadata: {name: src-pv}\n"
    "spec: {hostPath: {path: /nowhere/src.img}}\n"
    "---\napiVersion: v1\nkind: PersistentVolume\nmetadata: {name: dst-pv}\n"
    "spec: {hostPath: {path: /nowhere/dst.img}}\n"
    "---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: src-pvc, namespace: default}\n"
    "spec: {accessModes: [ReadWriteOnce], volumeName: src-pv, resources: {requests: {storage: 1Mi}}}\n"
    "---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: dst-pvc, namespace: default}\n"
    "spec: {accessModes: [ReadWriteOnce], volumeName: dst-pv, resources: {requests: {storage: 1Mi}}}\n"
    "---\napiVersion: kubevirt.io/v1\nkind: VirtualMachineInstance\n"
    "metadata: {name: vm1, namespace: default, annotations: {volmig.io/qmp: 'unix:/nowhere/q'}}\n"
    "spec:\n  domain: {devices: {disks: [{name: disk0, disk: {}}]}}\n"
    "  volumes: [{name: disk0, persistentVolumeClaim: {claimName: src-pvc}}]\n"
    "status:\n  phase: Running\n"
    "  volumeStatus: [{name: disk0, persistentVolumeClaimInfo: {claimName: src-pvc, accessModes: [ReadWriteOnce]}}]\n";

static const char vm_fmt[] =
    "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: vm1, namespace: default}\n"
    "spec:\n  runStrategy: Always\n  updateVolumesStrategy: Migration\n"
    "  template:\n    spec:\n      domain: {devices: {disks: [{name: disk0, disk: {}}]}}\n"
    "      volumes: [{name: disk0, persistentVolumeClaim: {claimName: %s}}]\n";

enum mode { SUCCEED, FAIL, HANG_THEN_LATE, SWITCH_THEN_REVERT };

struct fake {
    enum mode mode;
    int starts, cancels;
    bool ready_seen;     /* targetNodeDomainReadyTimestamp written before success */
    char job_mode[16];   /* the job's mode, "" for none */
    char dir[64];
    char target[256];
};

struct fake_job {
    struct fake *f;
    int polls;
    bool cancelled;
};

static time_t clock_now = T0;
static bool switched(const char *dir);
static time_t fake_now(void)
{
    return clock_now;
}

static void apply_text(const char *dir, const char *text)
{
    json_t *objs = k8s_parse(text, strlen(text), "test"), *o;
    size_t i;
    bool created, changed;

    assert_non_null(objs);
    json_array_foreach(objs, i, o)
        assert_int_equal(k8s_store_apply(dir, o, T0, &created, &changed), 0);
    json_decref(objs);
}

static void apply_vm(const char *dir, const char *claim)
{
    char text[1024];

    snprintf(text, sizeof text, vm_fmt, claim);
    apply_text(dir, text);
}

static int f_start(void *engine, const struct k8s_engine_job *job, void **handle)
{
    struct fake *f = engine;
    struct fake_job *j = calloc(1, sizeof *j);

    f->starts++;
    assert_int_equal(job->nvolumes, 1);
    assert_string_equal(job->qmp, "unix:/nowhere/q");
    assert_string_equal(job->switchover, "pivot");
    assert_string_equal(job->volumes[0].drive, "disk0");
    snprintf(f->target, sizeof f->target, "%s", job->volumes[0].target);
    snprintf(f->job_mode, sizeof f->job_mode, "%s", job->mode ? job->mode : "");
    j->f = f;
    *handle = j;
    return 0;
}

static int f_poll(void *engine, void *handle, enum k8s_engine_phase *phase, bool *lost,
                  char *message, size_t size, struct k8s_engine_report *rep)
{
    struct fake_job *j = handle;

    (void)engine;
    *lost = false;
    j->polls++;
    clock_now++;   /* a second per poll: rates and timestamps move */
    if (rep && rep->nvolumes)   /* the one volume: its own figures */
        rep->volumes[0] = (struct k8s_engine_volume_progress){
            j->polls < 3 ? 1024 * j->polls : 4096, 4096, 1000, j->polls < 3 ? 2 : 0, true };
    switch (j->f->mode) {
    case SUCCEED:
        *phase = j->polls < 3 ? K8S_ENGINE_RUNNING : K8S_ENGINE_SUCCEEDED;
        snprintf(message, size, "copied %d of 4096 bytes", j->polls < 3 ? 1024 * j->polls : 4096);
        if (rep)
            rep->switching = j->polls >= 2;
        if (j->polls == 3)   /* what poll 2's report made of the objects */
            j->f->ready_seen = switched(j->f->dir);
        break;
    case SWITCH_THEN_REVERT:
        /* The engine reports switching; the user reverts right after. */
        if (j->polls == 2)
            apply_vm(j->f->dir, "src-pvc");
        *phase = j->polls < 4 ? K8S_ENGINE_RUNNING : K8S_ENGINE_SUCCEEDED;
        snprintf(message, size, "copied 4096 of 4096 bytes");
        if (rep)
            rep->switching = true;
        break;
    case FAIL:
        *phase = j->polls < 2 ? K8S_ENGINE_RUNNING : K8S_ENGINE_FAILED;
        snprintf(message, size, "%s", j->polls < 2 ? "copied 0 of 4096 bytes" : "boom");
        break;
    case HANG_THEN_LATE:
        if (j->polls == 2)
            apply_vm(j->f->dir, "src-pvc");   /* the user reverts: a cancellation */
        *phase = j->cancelled ? K8S_ENGINE_SUCCEEDED : K8S_ENGINE_RUNNING;
        snprintf(message, size, "copied 2048 of 4096 bytes");
        break;
    }
    return 0;
}

static int f_cancel(void *engine, void *handle)
{
    struct fake_job *j = handle;

    ((struct fake *)engine)->cancels++;
    j->cancelled = true;
    return 0;
}

static void f_release(void *engine, void *handle)
{
    (void)engine;
    free(handle);
}

static const struct k8s_engine_ops fake_ops = { "fake", f_start, f_poll, f_cancel, f_release };

static int run(struct fake *f, int *failed)
{
    struct k8s_controller_config cfg = { .store = f->dir, .once = true, .timeout_s = 60,
                                         .ops = &fake_ops, .engine = f, .now = fake_now,
                                         .failed = failed };

    *failed = 0;
    return k8s_controller_run(&cfg);
}

static json_t *get(const char *dir, const char *kind, const char *name)
{
    json_t *all = k8s_store_load(dir), *o, *found = NULL;
    size_t i;

    assert_non_null(all);
    json_array_foreach(all, i, o)
        if (!strcmp(k8s_kind(o), kind) && (!name || !strcmp(k8s_name(o), name))) {
            json_decref(found);    /* the last one of several */
            found = json_incref(o);
        }
    json_decref(all);
    return found;
}

/* True when the migration object and the VMI carry
 * targetNodeDomainReadyTimestamp while the migration is still Running. */
static bool switched(const char *dir)
{
    json_t *m = get(dir, "VirtualMachineInstanceMigration", NULL);
    json_t *vmi = get(dir, "VirtualMachineInstance", "vm1");
    bool yes = m && vmi && k8s_get_str(m, "status.phase") &&
               !strcmp(k8s_get_str(m, "status.phase"), "Running") &&
               k8s_get_str(m, "status.migrationState.targetNodeDomainReadyTimestamp") &&
               k8s_get_str(vmi, "status.migrationState.targetNodeDomainReadyTimestamp");

    json_decref(m);
    json_decref(vmi);
    return yes;
}

static size_t count(const char *dir, const char *kind, const char *phase)
{
    json_t *all = k8s_store_load(dir), *o;
    size_t i, n = 0;

    json_array_foreach(all, i, o)
        n += !strcmp(k8s_kind(o), kind) &&
             (!phase || (k8s_get_str(o, "status.phase") &&
                         !strcmp(k8s_get_str(o, "status.phase"), phase)));
    json_decref(all);
    return n;
}

static char current_dir[64];   /* the store of the test running, for the teardown */

static void setup_store(struct fake *f, enum mode mode)
{
    memset(f, 0, sizeof *f);
    f->mode = mode;
    snprintf(f->dir, sizeof f->dir, "/tmp/volmig-ctl.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(current_dir, sizeof current_dir, "%s", f->dir);
    apply_text(f->dir, world);
    apply_vm(f->dir, "dst-pvc");
    clock_now = T0;
}

/* Runs after each test, also one that failed half way. */
static int remove_store(void **state)
{
    char cmd[128];

    (void)state;
    if (!current_dir[0])
        return 0;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", current_dir);
    current_dir[0] = '\0';
    return system(cmd) == 0 ? 0 : -1;
}

static void test_success(void **state)
{
    struct fake f;
    int failed;
    json_t *m, *vmi, *p;
    const char *text;

    (void)state;
    setup_store(&f, SUCCEED);
    assert_int_equal(run(&f, &failed), 0);
    assert_int_equal(failed, 0);
    assert_int_equal(f.starts, 1);
    assert_string_equal(f.target, "file:/nowhere/dst.img");
    m = get(f.dir, "VirtualMachineInstanceMigration", NULL);
    assert_string_equal(k8s_get_str(m, "status.phase"), "Succeeded");
    assert_true(json_is_true(k8s_get(m, "status.migrationState.completed")));
    text = json_string_value(json_object_get(k8s_get(m, "metadata.annotations"),
                                             K8S_ANNOT_PROGRESS));
    assert_non_null(text);
    p = json_loads(text, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(p, "doneBytes")), 4096);
    assert_int_equal(json_integer_value(json_object_get(p, "percent")), 100);
    {
        json_t *v = json_array_get(json_object_get(p, "volumes"), 0);

        /* The engine's own figures for the volume. */
        assert_int_equal(json_integer_value(json_object_get(v, "doneBytes")), 4096);
        assert_int_equal(json_integer_value(json_object_get(v, "totalBytes")), 4096);
        assert_int_equal(json_integer_value(json_object_get(v, "bytesPerSecond")), 1000);
        assert_int_equal(json_integer_value(json_object_get(v, "etaSeconds")), 0);
    }
    json_decref(p);
    /* The switching signal reached the objects before the success. */
    assert_true(f.ready_seen);
    vmi = get(f.dir, "VirtualMachineInstance", "vm1");
    assert_non_null(k8s_get_str(vmi, "status.migrationState.targetNodeDomainReadyTimestamp"));
    assert_null(k8s_get(vmi, "status.migratedVolumes"));
    json_decref(m);
    json_decref(vmi);
}

static void test_failure_and_backoff(void **state)
{
    struct fake f;
    int failed;

    (void)state;
    setup_store(&f, FAIL);
    assert_int_equal(run(&f, &failed), 0);
    assert_int_equal(failed, 1);
    assert_int_equal(f.starts, 1);   /* the retry waits for the backoff */
    assert_int_equal(count(f.dir, "VirtualMachineInstanceMigration", "Failed"), 1);
    assert_int_equal(count(f.dir, "VirtualMachineInstanceMigration", "Pending"), 1);
    clock_now += 25;                 /* past the 20 s */
    f.mode = SUCCEED;
    assert_int_equal(run(&f, &failed), 0);
    assert_int_equal(failed, 0);
    assert_int_equal(f.starts, 2);
    assert_int_equal(count(f.dir, "VirtualMachineInstanceMigration", "Succeeded"), 1);
}

static void test_cancelled_after_switchover(void **state)
{
    struct fake f;
    int failed;
    json_t *e, *vmi;

    (void)state;
    setup_store(&f, HANG_THEN_LATE);
    assert_int_equal(run(&f, &failed), 0);
    assert_int_equal(f.cancels, 1);
    assert_int_equal(count(f.dir, "VirtualMachineInstanceMigration", NULL), 0);
    vmi = get(f.dir, "VirtualMachineInstance", "vm1");
    assert_string_equal(k8s_get_str(json_array_get(k8s_get(vmi, "spec.volumes"), 0),
                                    "persistentVolumeClaim.claimName"), "src-pvc");
    json_decref(vmi);
    e = NULL;
    {
        json_t *all = k8s_store_load(f.dir), *o;
        size_t i;

        json_array_foreach(all, i, o)
            if (!strcmp(k8s_kind(o), "Event") &&
                !strcmp(k8s_get_str(o, "reason"), "VolumeMigrationCancelledTooLate"))
                e = json_incref(o);
        json_decref(all);
    }
    assert_non_null(e);
    assert_string_equal(k8s_get_str(e, "type"), "Warning");
    assert_non_null(strstr(k8s_get_str(e, "message"), "QEMU now runs on the destination volumes"));
    json_decref(e);
}

/* The VMI's volmig.io/mode annotation set to mode. */
static void annotate_mode(const char *dir, const char *mode)
{
    json_t *vmi = get(dir, "VirtualMachineInstance", "vm1");

    json_object_set_new(k8s_mkpath(vmi, "metadata.annotations"), "volmig.io/mode",
                        json_string(mode));
    assert_int_equal(k8s_store_write(dir, vmi), 0);
    json_decref(vmi);
}

/* volmig.io/mode reaches the engine; bitmap mode on one host (a pivot) is
 * refused with a reason on the migration object. */
static void test_mode_annotation(void **state)
{
    struct fake f;
    int failed;
    json_t *m;

    (void)state;
    setup_store(&f, SUCCEED);
    annotate_mode(f.dir, "mirror");
    assert_int_equal(run(&f, &failed), 0);
    assert_string_equal(f.job_mode, "mirror");
    remove_store(NULL);
    setup_store(&f, SUCCEED);
    annotate_mode(f.dir, "bitmap");
    assert_int_equal(run(&f, &failed), 0);
    assert_int_equal(f.starts, 0);
    assert_int_equal(count(f.dir, "VirtualMachineInstanceMigration", "Failed"), 1);
    m = NULL;
    {
        json_t *all = k8s_store_load(f.dir), *o;
        size_t i;

        json_array_foreach(all, i, o)
            if (!strcmp(k8s_kind(o), "VirtualMachineInstanceMigration") &&
                !strcmp(k8s_get_str(o, "status.phase"), "Failed"))
                m = json_incref(o);
        json_decref(all);
    }
    assert_non_null(m);
    assert_non_null(strstr(k8s_get_str(m, "status.migrationState.failureReason"),
                           "only mirror mode"));
    json_decref(m);
}

/* A revert after the engine said it is switching over: as in KubeVirt,
 * targetNodeDomainReadyTimestamp keeps the migration object, so volmig
 * does not cancel a switch it could no longer undo. */
static void test_revert_while_switching(void **state)
{
    struct fake f;
    int failed;
    json_t *m;

    (void)state;
    setup_store(&f, SWITCH_THEN_REVERT);
    assert_int_equal(run(&f, &failed), 0);
    assert_int_equal(f.cancels, 0);
    m = get(f.dir, "VirtualMachineInstanceMigration", NULL);
    assert_non_null(m);
    assert_string_equal(k8s_get_str(m, "status.phase"), "Succeeded");
    assert_non_null(k8s_get_str(m, "status.migrationState.targetNodeDomainReadyTimestamp"));
    json_decref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_success, remove_store),
        cmocka_unit_test_teardown(test_failure_and_backoff, remove_store),
        cmocka_unit_test_teardown(test_cancelled_after_switchover, remove_store),
        cmocka_unit_test_teardown(test_revert_while_switching, remove_store),
        cmocka_unit_test_teardown(test_mode_annotation, remove_store),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
