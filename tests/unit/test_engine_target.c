/* Buffer pool allocation, target extent mapping on a real sparse file, and
 * QEMU's image locks between two opens of one file. */
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
#include "common/error.h"
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
    assert_int_equal(target_open(&t, path, true, false, 0, false), 0);
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

/* Is BYTE of PATH locked by some open file description?  Tested from a
 * fresh one, as QEMU tests (a write-lock probe with F_OFD_GETLK). */
static bool byte_locked(const char *path, off_t byte)
{
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1 };
    int fd = open(path, O_RDONLY);

    assert_true(fd >= 0);
    assert_int_equal(fcntl(fd, F_OFD_GETLK, &fl), 0);
    close(fd);
    return fl.l_type != F_UNLCK;
}

/* The bytes held are QEMU's for the same permissions: a writer holds
 * "consistent read" and "write" (100, 101) and refuses "write" and
 * "resize" (201, 203); a reader holds 100 and refuses the same. */
static void assert_lock_bytes(const char *path, bool writer)
{
    static const off_t held_always[] = { 100, 201, 203 };
    static const off_t free_always[] = { 102, 103, 200, 202 };
    size_t i;

    for (i = 0; i < sizeof held_always / sizeof held_always[0]; i++)
        assert_true(byte_locked(path, held_always[i]));
    for (i = 0; i < sizeof free_always / sizeof free_always[0]; i++)
        assert_false(byte_locked(path, free_always[i]));
    assert_int_equal(byte_locked(path, 101), writer);
}

static void test_locks(void **state)
{
    char path[] = "/var/tmp/volmig-unit-XXXXXX", self[32];
    int fd = mkstemp(path);
    struct target w, w2, r, r2, shared;

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 1 << 20), 0);
    close(fd);
    snprintf(self, sizeof self, "(pid %d)", (int)getpid());

    /* A writer excludes a second writer and a consistent reader, and the
     * refusal names the permission and the process holding it. */
    assert_int_equal(target_open(&w, path, false, false, 0, false), 0);
    assert_lock_bytes(path, true);
    assert_int_equal(target_open(&w2, path, false, false, 0, false), -1);
    assert_non_null(strstr(err_msg(), "Failed to get \"write\" lock"));
    assert_non_null(strstr(err_msg(), self));
    assert_int_equal(target_open(&r, path, true, false, 0, false), -1);
    assert_non_null(strstr(err_msg(), "Failed to get shared \"write\" lock"));
    /* A forced share reads anyway, and holds nothing a writer minds. */
    assert_int_equal(target_open(&shared, path, true, false, 0, true), 0);
    target_close(&w);
    assert_int_equal(target_open(&w, path, false, false, 0, false), 0);
    target_close(&w);
    target_close(&shared);

    /* Readers share with readers; a writer waits until the last is gone. */
    assert_int_equal(target_open(&r, path, true, false, 0, false), 0);
    assert_int_equal(target_open(&r2, path, true, false, 0, false), 0);
    assert_lock_bytes(path, false);
    assert_int_equal(target_open(&w, path, false, false, 0, false), -1);
    target_close(&r);
    assert_int_equal(target_open(&w, path, false, false, 0, false), -1);
    target_close(&r2);
    assert_false(byte_locked(path, 100));
    assert_int_equal(target_open(&w, path, false, false, 0, false), 0);
    target_close(&w);

    /* A shared open is for reading only. */
    assert_int_equal(target_open(&w, path, false, false, 0, true), -1);
    unlink(path);
}

/* A range the page cache holds is lent as a pointer into the mapping,
 * with the file's bytes; once the cache has dropped it, it is not, and
 * a shared (force_share) source is never mapped.  Skipped where the kernel
 * cannot tell what the cache holds (no cachestat(2)). */
static void test_cache_lend(void **state)
{
    char path[] = "/var/tmp/volmig-unit-XXXXXX";
    int fd = mkstemp(path);
    struct target t;
    static uint8_t data[1 << 20];
    const uint8_t *p;

    (void)state;
    assert_true(fd >= 0);
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + (i >> 12));
    /* Just written: every page is in the cache. */
    assert_int_equal(pwrite(fd, data, sizeof data, 0), (ssize_t)sizeof data);
    assert_int_equal(fdatasync(fd), 0);
    assert_int_equal(target_open(&t, path, true, true, 0, false), 0);
    target_cache_open(&t);
    if (t.cache_fd < 0) {
        target_close(&t);
        close(fd);
        unlink(path);
        skip();
    }
    assert_non_null(t.map);
    p = target_cache_lend(&t, 256 << 10, 256 << 10);
    assert_non_null(p);
    assert_memory_equal(p, data + (256 << 10), 256 << 10);
    target_cache_unlend(&t, 256 << 10, 256 << 10);
    /* The last bytes of the file, asked for with a length past its end. */
    p = target_cache_lend(&t, sizeof data - 4096, 8192);
    assert_non_null(p);
    assert_memory_equal(p, data + sizeof data - 4096, 4096);
    target_cache_unlend(&t, sizeof data - 4096, 8192);
    assert_null(target_cache_lend(&t, sizeof data, 4096));
    target_close(&t);
    assert_null(t.map);
    /* Out of the cache (clean, and unmapped since the close): read it. */
    assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    assert_int_equal(target_open(&t, path, true, true, 0, false), 0);
    target_cache_open(&t);
    assert_non_null(t.map);
    assert_null(target_cache_lend(&t, 0, 256 << 10));
    target_close(&t);

    assert_int_equal(target_open(&t, path, true, true, 0, true), 0);
    target_cache_open(&t);
    assert_null(t.map);
    assert_null(target_cache_lend(&t, 0, 4096));
    target_close(&t);
    close(fd);
    unlink(path);
}

static void test_open_errors(void **state)
{
    struct target t;

    (void)state;
    assert_int_equal(target_open(&t, "/nonexistent/volmig", false, true, 0, false), -1);
    assert_int_equal(target_open(&t, "/dev", false, true, 0, false), -1);
    assert_int_equal(target_open(&t, "null:", false, true, 0, false), 0);
    assert_int_equal(t.kind, TARGET_NULL);
    target_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_extents),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_locks),
        cmocka_unit_test(test_cache_lend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
