/* The pure half of engine/libvirt_domain.h: libvirt's domain XML (as
 * libvirt 9.0 prints it) to disks, disk names, destination XML. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "engine/libvirt_domain.h"
#include "engine/target_uri.h"

/* Abridged from `virsh dumpxml` of a running domain: a file disk with a
 * block copy READY, a block disk, an NBD disk over TCP, one over a unix
 * socket, a cdrom with no source. */
static const char *live_xml =
    "<domain type='qemu' id='3'><name>d</name><devices>"
    "<emulator>/usr/bin/qemu-system-x86_64</emulator>"
    "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
    "<source file='/var/a.img' index='1'/><backingStore/>"
    "<mirror type='file' file='/var/new.img' format='raw' job='copy' ready='yes'>"
    "<format type='raw'/><source file='/var/new.img' index='4'/></mirror>"
    "<target dev='vda' bus='virtio'/><alias name='virtio-disk0'/></disk>"
    "<disk type='block' device='disk'><driver name='qemu' type='raw'/>"
    "<source dev='/dev/loop7' index='2'/><target dev='vdb' bus='virtio'/>"
    "<alias name='ua-data'/></disk>"
    "<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
    "<source protocol='nbd' name='exp' index='3'><host name='10.0.0.2' port='10810'/></source>"
    "<target dev='vdc' bus='virtio'/><alias name='virtio-disk2'/></disk>"
    "<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
    "<source protocol='nbd' index='5'><host transport='unix' socket='/run/s.sock'/></source>"
    "<target dev='vdd' bus='virtio'/><alias name='virtio-disk3'/></disk>"
    "<disk type='file' device='cdrom'><driver name='qemu'/>"
    "<target dev='hdc' bus='ide'/><readonly/><alias name='ide0-1-0'/></disk>"
    "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
    "<source file='/var/a.img' index='6'/><target dev='vde' bus='virtio'/>"
    "<shareable/><alias name='virtio-disk4'/></disk>"
    "</devices></domain>";

static void test_parse(void **state)
{
    struct lvd_disk *v;
    size_t n;

    (void)state;
    assert_int_equal(lvd_parse_disks(live_xml, &v, &n), 0);
    assert_int_equal(n, 6);
    assert_string_equal(v[0].target, "vda");
    assert_string_equal(v[0].alias, "virtio-disk0");
    assert_string_equal(v[0].type, "file");
    assert_string_equal(v[0].path, "/var/a.img");
    assert_string_equal(v[0].format, "raw");
    assert_int_equal(v[0].index, 1);
    assert_true(v[0].mirror);
    assert_true(v[0].mirror_ready);
    assert_string_equal(v[1].path, "/dev/loop7");
    assert_false(v[1].mirror);
    assert_string_equal(v[2].protocol, "nbd");
    assert_string_equal(v[2].export_name, "exp");
    assert_string_equal(v[2].host, "10.0.0.2");
    assert_string_equal(v[2].port, "10810");
    assert_null(v[2].socket);
    assert_string_equal(v[3].socket, "/run/s.sock");
    assert_null(v[3].export_name);
    assert_null(v[3].host);
    assert_null(v[4].path);
    assert_true(v[4].readonly);
    assert_int_equal(v[4].index, -1);
    lvd_disks_free(v, n);

    assert_int_equal(lvd_parse_disks("<domain><devices/></domain>", &v, &n), 0);
    assert_int_equal(n, 0);
    lvd_disks_free(v, n);
    assert_int_equal(lvd_parse_disks("<domain><devices>", &v, &n), -1);
    assert_int_equal(lvd_parse_disks("<pool/>", &v, &n), -1);
}

static void test_find(void **state)
{
    struct lvd_disk *v;
    size_t n;

    (void)state;
    assert_int_equal(lvd_parse_disks(live_xml, &v, &n), 0);
    assert_int_equal(lvd_disk_find(v, n, "vdb"), 1);
    assert_int_equal(lvd_disk_find(v, n, "ua-data"), 1);
    assert_int_equal(lvd_disk_find(v, n, "virtio-disk2"), 2);
    assert_int_equal(lvd_disk_find(v, n, "libvirt-3-format"), 2);
    assert_int_equal(lvd_disk_find(v, n, "libvirt-5-storage"), 3);
    assert_int_equal(lvd_disk_find(v, n, "/dev/loop7"), 1);
    /* Two disks share /var/a.img: ambiguous, as libvirt says too. */
    assert_int_equal(lvd_disk_find(v, n, "/var/a.img"), -1);
    assert_non_null(strstr(err_msg(), "vda and vde"));
    assert_int_equal(lvd_disk_find(v, n, "vdz"), -1);
    assert_non_null(strstr(err_msg(), "no disk vdz"));
    assert_non_null(strstr(err_msg(), "vdb (ua-data)"));
    /* The mirror's index is not the disk's node. */
    assert_int_equal(lvd_disk_find(v, n, "libvirt-4-format"), -1);
    lvd_disks_free(v, n);
}

static void test_is(void **state)
{
    struct lvd_disk *v;
    size_t n;
    struct target_uri u;

    (void)state;
    assert_int_equal(lvd_parse_disks(live_xml, &v, &n), 0);
    assert_int_equal(target_uri_parse("file:/var/a.img", &u), 0);
    assert_true(lvd_disk_is(&v[0], &u));
    assert_false(lvd_disk_is(&v[1], &u));
    assert_int_equal(target_uri_parse("nbd://10.0.0.2:10810/exp", &u), 0);
    assert_true(lvd_disk_is(&v[2], &u));
    assert_int_equal(target_uri_parse("nbd://10.0.0.2/exp", &u), 0);
    assert_false(lvd_disk_is(&v[2], &u));                 /* port 10809 */
    assert_int_equal(target_uri_parse("nbd://10.0.0.2:10810/other", &u), 0);
    assert_false(lvd_disk_is(&v[2], &u));
    assert_int_equal(target_uri_parse("nbd+unix:///?socket=/run/s.sock", &u), 0);
    assert_true(lvd_disk_is(&v[3], &u));
    assert_false(lvd_disk_is(&v[2], &u));
    assert_true(lvd_disk_same_source(&v[0], &v[5]));
    assert_false(lvd_disk_same_source(&v[0], &v[1]));
    assert_false(lvd_disk_same_source(&v[2], &v[3]));
    lvd_disks_free(v, n);
}

static void test_dest_xml(void **state)
{
    struct target_uri u;
    struct lvd_disk *v;
    size_t n;
    char *x, doc[8192];

    (void)state;
    assert_int_equal(target_uri_parse("file:/tmp/it's&<new>.img", &u), 0);
    x = lvd_dest_xml(&u, false, NULL, 0);
    assert_string_equal(x, "<disk type='file'><driver name='qemu' type='raw'/>"
                           "<source file='/tmp/it&apos;s&amp;&lt;new&gt;.img'></source></disk>");
    /* It reads back as a disk that is the destination. */
    snprintf(doc, sizeof doc, "<domain><devices>%s</devices></domain>", x);
    free(x);
    assert_int_equal(lvd_parse_disks(doc, &v, &n), 0);
    assert_true(lvd_disk_is(&v[0], &u));
    lvd_disks_free(v, n);

    assert_int_equal(target_uri_parse("file:/dev/sdb", &u), 0);
    x = lvd_dest_xml(&u, true, "qcow2", 1048576);
    assert_string_equal(x, "<disk type='block'><driver name='qemu' type='qcow2'/>"
                           "<source dev='/dev/sdb'><slices><slice type='storage' offset='0' "
                           "size='1048576'/></slices></source></disk>");
    free(x);

    assert_int_equal(target_uri_parse("nbds://h.example:10811/vol%201", &u), 0);
    x = lvd_dest_xml(&u, false, NULL, 0);
    assert_string_equal(x, "<disk type='network'><driver name='qemu' type='raw'/>"
                           "<source protocol='nbd' name='vol 1' tls='yes'>"
                           "<host name='h.example' port='10811'/></source></disk>");
    free(x);

    assert_int_equal(target_uri_parse("nbd+unix:///e?socket=/run/x.sock", &u), 0);
    x = lvd_dest_xml(&u, false, NULL, 4096);
    assert_string_equal(x, "<disk type='network'><driver name='qemu' type='raw'/>"
                           "<source protocol='nbd' name='e' tls='no'>"
                           "<host transport='unix' socket='/run/x.sock'/><slices><slice "
                           "type='storage' offset='0' size='4096'/></slices></source></disk>");
    snprintf(doc, sizeof doc, "<domain><devices>%s</devices></domain>", x);
    free(x);
    assert_int_equal(lvd_parse_disks(doc, &v, &n), 0);
    assert_true(lvd_disk_is(&v[0], &u));
    lvd_disks_free(v, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_is),
        cmocka_unit_test(test_dest_xml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
