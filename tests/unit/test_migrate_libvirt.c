/* The pure parts of libvirt mode (engine/migrate_libvirt.h): addresses,
 * migrate:URI with volmig's own parameters, and what is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "engine/migrate_libvirt.h"

static void test_addr(void **state)
{
    char *name, *uri;

    (void)state;
    assert_true(mig_libvirt_addr("libvirt:d"));
    assert_false(mig_libvirt_addr("unix:/x"));
    assert_false(mig_libvirt_addr(NULL));
    assert_int_equal(mig_libvirt_parse_addr("dom", &name, &uri), 0);
    assert_string_equal(name, "dom");
    assert_null(uri);
    free(name);
    assert_int_equal(mig_libvirt_parse_addr("dom?uri=qemu+unix:///system?socket=/s", &name, &uri), 0);
    assert_string_equal(name, "dom");
    assert_string_equal(uri, "qemu+unix:///system?socket=/s");
    free(name);
    free(uri);
    assert_int_equal(mig_libvirt_parse_addr("", &name, &uri), -1);
    assert_int_equal(mig_libvirt_parse_addr("?uri=x", &name, &uri), -1);
    assert_int_equal(mig_libvirt_parse_addr("dom?url=x", &name, &uri), -1);
    assert_int_equal(mig_libvirt_parse_addr("dom?uri=", &name, &uri), -1);
}

static void dest(const char *text, const char *want_dest, const char *want_mig,
                 const char *want_disks)
{
    char *d, *m, *k;

    assert_int_equal(mig_libvirt_parse_dest(text, &d, &m, &k), 0);
    assert_string_equal(d, want_dest);
    if (want_mig)
        assert_string_equal(m, want_mig);
    else
        assert_null(m);
    if (want_disks)
        assert_string_equal(k, want_disks);
    else
        assert_null(k);
    free(d);
    free(m);
    free(k);
}

static void test_dest(void **state)
{
    char *d, *m, *k;

    (void)state;
    dest("qemu+tcp://h/system", "qemu+tcp://h/system", NULL, NULL);
    dest("qemu+tcp://h/system?migrate_uri=tcp://10.0.0.2:4000", "qemu+tcp://h/system",
         "tcp://10.0.0.2:4000", NULL);
    dest("qemu+unix:///system?socket=/s&migrate_uri=tcp://a:1&disks_uri=tcp://a:2",
         "qemu+unix:///system?socket=/s", "tcp://a:1", "tcp://a:2");
    dest("qemu+unix:///system?disks_uri=unix:///d.sock&socket=/s",
         "qemu+unix:///system?socket=/s", NULL, "unix:///d.sock");
    assert_int_equal(mig_libvirt_parse_dest("qemu:///system?migrate_uri=", &d, &m, &k), -1);
    free(d);
    free(m);
    free(k);
}

static void test_refusal(void **state)
{
    struct mig_volume v = { .drive = "vda", .target = "nbd://h/e" };
    struct mig_config cfg;

    (void)state;
    mig_config_defaults(&cfg);
    cfg.vols = &v;
    cfg.nvols = 1;
    assert_int_equal(target_uri_parse(v.target, &v.uri), 0);
    assert_null(mig_libvirt_refusal(&cfg));
    cfg.mode = MIG_MODE_BITMAP;
    assert_non_null(strstr(mig_libvirt_refusal(&cfg), "checkpoints need qcow2"));
    cfg.mode = MIG_MODE_MIRROR;
    cfg.tls_psk = "/k";
    assert_non_null(strstr(mig_libvirt_refusal(&cfg), "x509"));
    cfg.tls_psk = NULL;
    cfg.switchover = MIG_SW_MIGRATE;
    assert_non_null(strstr(mig_libvirt_refusal(&cfg), "file: targets"));
    assert_int_equal(target_uri_parse("file:/x", &v.uri), 0);
    assert_null(mig_libvirt_refusal(&cfg));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr),
        cmocka_unit_test(test_dest),
        cmocka_unit_test(test_refusal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
