/* Buffer pool allocation and target extent mapping on a real sparse file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bufpool.h"
#include "common/target.h"

static void test_pool(void **state)
{
    struct bufpool p;
    void *a, *b, *c;

    (void)state;
    assert_int_equal(bufpool_init(&p, 4 * BUFPOOL_CHUNK), 0);
    a = bufpool_alloc(&p, 1);
    b = bufpool_alloc(&p, 2 * BUFPOOL_CHUNK);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_equal((uint8_t *)b, (uint8_t *)a + BUFPOOL_CHUNK);
    assert_null(bufpool_alloc(&p, 2 * BUFPOOL_CHUNK));   /* one chunk left */
    c = bufpool_alloc(&p, BUFPOOL_CHUNK);
    assert_non_null(c);
    assert_null(bufpool_alloc(&p, 1));
    bufpool_free(&p, a, 1);
    bufpool_free(&p, c, BUFPOOL_CHUNK);
    /* free chunks 0 and 3 are not contiguous: a two-chunk request waits */
    assert_null(bufpool_alloc(&p, 2 * BUFPOOL_CHUNK));
    bufpool_free(&p, b, 2 * BUFPOOL_CHUNK);
    assert_ptr_equal(bufpool_alloc(&p, 4 * BUFPOOL_CHUNK), a);
    bufpool_destroy(&p);
}

static void test_extents(void **state)
{
    char path[] = "/var/tmp/volmig-unit-XXXXXX";
    int fd = mkstemp(path);
    struct target t;
    struct target_extent e[8];
    char data[65536];
    int n;

    (void)state;
    assert_true(fd >= 0);
    memset(data, 0xab, sizeof data);
    /* 8 MiB file: data at [1 MiB, 1 MiB + 64 KiB), the rest holes */
    assert_int_equal(ftruncate(fd, 8 << 20), 0);
    assert_int_equal(pwrite(fd, data, sizeof data, 1 << 20), (ssize_t)sizeof data);
    close(fd);
    assert_int_equal(target_open(&t, path, true, false, 0), 0);
    assert_int_equal(t.kind, TARGET_FILE);
    assert_true(t.size == 8 << 20);
    n = target_extents(&t, 0, 8 << 20, e, 8);
    if (!t.can_seek_data) {
        skip();
    }
    assert_int_equal(n, 3);
    assert_true(e[0].hole && e[0].offset == 0 && e[0].length == 1 << 20);
    assert_true(!e[1].hole && e[1].offset == 1 << 20 && e[1].length == 65536);
    assert_true(e[2].hole && e[2].offset == (1 << 20) + 65536);
    assert_true(e[2].offset + e[2].length == 8 << 20);
    /* capped: the remainder is one data extent */
    n = target_extents(&t, 0, 8 << 20, e, 2);
    assert_int_equal(n, 2);
    assert_true(e[0].hole && !e[1].hole && e[1].offset + e[1].length == 8 << 20);
    target_close(&t);
    unlink(path);
}

static void test_open_errors(void **state)
{
    struct target t;

    (void)state;
    assert_int_equal(target_open(&t, "/nonexistent/volmig", false, true, 0), -1);
    assert_int_equal(target_open(&t, "/dev", false, true, 0), -1);
    assert_int_equal(target_open(&t, "null:", false, true, 0), 0);
    assert_int_equal(t.kind, TARGET_NULL);
    target_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_extents),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
