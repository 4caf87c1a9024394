/* The copier's pure parts (planning, zero detection, SOURCE/TARGET
 * parsing) and one real file-to-file copy through copy_run(). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/copy.h"
#include "common/error.h"
#include "engine/target_uri.h"

#define K 1024ULL
#define M (1024ULL * 1024)
#define G (1024ULL * M)

static void test_plan_data(void **state)
{
    struct copy_piece p;

    (void)state;
    /* Data is read request_size at a time. */
    p = copy_plan(0, 10 * M, 4096, 256 * K, G, 10 * M, false, 10 * M, false);
    assert_int_equal(p.act, COPY_READ);
    assert_true(p.off == 0 && p.len == 256 * K);
    assert_false(p.dst_zero);
    /* The last piece ends at the unaligned end of the volume. */
    p = copy_plan(10 * M, 10 * M + 1234, 4096, 256 * K, G, 10 * M + 1234, false,
                  10 * M + 1234, false);
    assert_int_equal(p.act, COPY_READ);
    assert_true(p.len == 1234);
    /* A data extent ending mid-block is read up to the block boundary. */
    p = copy_plan(0, 10 * M, 4096, 256 * K, G, 5000, false, 10 * M, true);
    assert_int_equal(p.act, COPY_READ);
    assert_true(p.len == 8192);
    assert_true(p.dst_zero);
    /* dst_zero only when the target reads zeroes over the whole piece. */
    p = copy_plan(0, 10 * M, 4096, 256 * K, G, 10 * M, false, 4096, true);
    assert_false(p.dst_zero);
}

static void test_plan_holes(void **state)
{
    struct copy_piece p;

    (void)state;
    /* A hole over a target that reads zeroes: skipped, no I/O at all. */
    p = copy_plan(M, 100 * M, 4096, 256 * K, G, 50 * M, true, 100 * M, true);
    assert_int_equal(p.act, COPY_SKIP);
    assert_true(p.off == M && p.len == 49 * M);
    /* A hole over a target with data: zeroed, in one request. */
    p = copy_plan(M, 100 * M, 4096, 256 * K, G, 50 * M, true, 100 * M, false);
    assert_int_equal(p.act, COPY_ZERO);
    assert_true(p.len == 49 * M);
    /* ... capped at zero_max. */
    p = copy_plan(0, 4 * G, 4096, 256 * K, G, 4 * G, true, 4 * G, false);
    assert_int_equal(p.act, COPY_ZERO);
    assert_true(p.len == G);
    /* Zeroing stops where the target starts reading zeroes anyway. */
    p = copy_plan(0, 100 * M, 4096, 256 * K, G, 50 * M, true, 10 * M, false);
    assert_int_equal(p.act, COPY_ZERO);
    assert_true(p.len == 10 * M);
    /* Skipping stops where the target stops reading zeroes. */
    p = copy_plan(0, 100 * M, 4096, 256 * K, G, 50 * M, true, 20 * M, true);
    assert_int_equal(p.act, COPY_SKIP);
    assert_true(p.len == 20 * M);
    /* A hole extent ending mid-block stops at the block before it. */
    p = copy_plan(0, 100 * M, 4096, 256 * K, G, 12000, true, 100 * M, false);
    assert_int_equal(p.act, COPY_ZERO);
    assert_true(p.len == 8192);
    /* The rest of it, less than one block, is read as the block that
     * holds it (the zero check after the read still catches zeroes). */
    p = copy_plan(8192, 100 * M, 4096, 256 * K, G, 12000, true, 100 * M, false);
    assert_int_equal(p.act, COPY_READ);
    assert_true(p.len == 4096);
    /* A hole up to an unaligned end of the volume goes to the end. */
    p = copy_plan(M, M + 1234, 4096, 256 * K, G, M + 1234, true, M + 1234, false);
    assert_int_equal(p.act, COPY_ZERO);
    assert_true(p.len == 1234);
}

/* Walking a whole volume: pieces tile it exactly, without gaps or overlap,
 * and every boundary but the end is aligned. */
static void test_plan_tiles(void **state)
{
    uint64_t size = 10 * M + 1234, pos = 0, sends[] = { 3 * M + 100, 7 * M, size };
    bool szero[] = { false, true, false };
    int steps = 0;

    (void)state;
    while (pos < size) {
        int i = 0;
        struct copy_piece p;

        while (sends[i] <= pos)
            i++;
        p = copy_plan(pos, size, 4096, 256 * K, G, sends[i], szero[i], size, false);
        assert_true(p.off == pos);
        assert_true(p.len > 0);
        pos += p.len;
        assert_true(pos == size || pos % 4096 == 0);
        steps++;
    }
    assert_true(pos == size);
    assert_true(steps < 100);
}

static void test_is_zero(void **state)
{
    static uint8_t buf[1 << 20];

    (void)state;
    assert_true(copy_is_zero(buf, sizeof buf));
    assert_true(copy_is_zero(buf, 0));
    buf[sizeof buf - 1] = 1;
    assert_false(copy_is_zero(buf, sizeof buf));
    assert_true(copy_is_zero(buf, sizeof buf - 1));
    buf[0] = 1;
    assert_false(copy_is_zero(buf, 1));
    buf[0] = buf[sizeof buf - 1] = 0;
}

static void test_spec(void **state)
{
    struct target_uri u;
    enum copy_spec_kind k;
    const char *path;

    (void)state;
    assert_int_equal(copy_spec_kind("null:", &k, &path, &u), 0);
    assert_int_equal(k, COPY_SPEC_NULL);
    assert_int_equal(copy_spec_kind("/dev/sda", &k, &path, &u), 0);
    assert_int_equal(k, COPY_SPEC_LOCAL);
    assert_string_equal(path, "/dev/sda");
    assert_int_equal(copy_spec_kind("file:/x/y", &k, &path, &u), 0);
    assert_int_equal(k, COPY_SPEC_LOCAL);
    assert_string_equal(path, "/x/y");
    assert_int_equal(copy_spec_kind("./nbd:x", &k, &path, &u), 0);
    assert_int_equal(k, COPY_SPEC_LOCAL);
    assert_int_equal(copy_spec_kind("nbd://h:1234/exp", &k, &path, &u), 0);
    assert_int_equal(k, COPY_SPEC_NBD);
    assert_string_equal(u.host, "h");
    assert_string_equal(u.export_name, "exp");
    assert_int_equal(copy_spec_kind("nbd+unix:///e?socket=/s", &k, &path, &u), 0);
    assert_int_equal(k, COPY_SPEC_NBD);
    assert_string_equal(u.socket, "/s");
    assert_int_equal(copy_spec_kind("nbd://h:99999/", &k, &path, &u), -1);
    assert_false(u.tls);
    assert_int_equal(copy_spec_kind("nbds://h/", &k, &path, &u), 0);
    assert_int_equal(k, COPY_SPEC_NBD);
    assert_true(u.tls);
    assert_string_equal(u.port, "10809");
    assert_int_equal(copy_spec_kind("nbds+unix:///e?socket=/s", &k, &path, &u), 0);
    assert_true(u.tls);
    assert_string_equal(u.socket, "/s");
    assert_int_equal(copy_spec_kind("nbds+unix://h/e?socket=/s", &k, &path, &u), -1);
    assert_int_equal(copy_spec_kind("http://h/x", &k, &path, &u), -1);
    assert_int_equal(copy_spec_kind("", &k, &path, &u), -1);
}

static void fill(int fd, uint64_t off, uint64_t len, int seed)
{
    static uint8_t buf[1 << 16];

    for (uint64_t done = 0; done < len;) {
        size_t n = len - done < sizeof buf ? (size_t)(len - done) : sizeof buf;

        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)(seed + (off + done + i) * 7 + ((off + done + i) >> 12));
        assert_int_equal(pwrite(fd, buf, n, (off_t)(off + done)), (ssize_t)n);
        done += n;
    }
}

static bool same_files(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int ca, cb;
    bool same = fa && fb;

    while (same) {
        ca = fgetc(fa);
        cb = fgetc(fb);
        if (ca != cb)
            same = false;
        if (ca == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

/* A sparse, unaligned source onto a dirty target, and onto a target that
 * does not exist yet; then a too-small target, which is refused. */
static void test_run_files(void **state)
{
    char dir[] = "/var/tmp/volmig-unit-copy-XXXXXX", src[128], dst[128], fresh[128], small[128];
    uint64_t size = 10 * M + 1234;
    struct copy_config cfg = { .requests = 8, .request_size = 64 * K, .progress_ms = 500 };
    struct copy_status st;
    int fd;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(src, sizeof src, "%s/src", dir);
    snprintf(dst, sizeof dst, "%s/dst", dir);
    snprintf(fresh, sizeof fresh, "%s/fresh", dir);
    snprintf(small, sizeof small, "%s/small", dir);
    fd = open(src, O_CREAT | O_RDWR, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    fill(fd, 0, 64 * K, 1);
    fill(fd, 3 * M, 2 * M, 2);
    fill(fd, size - 1000, 1000, 3);
    close(fd);
    fd = open(dst, O_CREAT | O_RDWR, 0644);
    fill(fd, 0, size, 9);                       /* garbage everywhere */
    close(fd);

    cfg.source = src;
    cfg.target = dst;
    assert_int_equal(copy_run(&cfg, &st), COPY_DONE);
    assert_true(same_files(src, dst));
    assert_true(st.done == size);
    assert_true(st.zeroed > 5 * M);             /* holes became zeroes */
    assert_true(st.read < 3 * M);               /* holes were not read */

    cfg.target = fresh;
    assert_int_equal(copy_run(&cfg, &st), COPY_DONE);
    assert_true(same_files(src, fresh));
    assert_true(st.zeroed == 0);                /* a fresh file is zeroes */
    assert_true(st.skipped > 5 * M);

    fd = open(small, O_CREAT | O_RDWR, 0644);
    assert_int_equal(ftruncate(fd, (off_t)(size - 1)), 0);
    close(fd);
    /* The null endpoint: everything is written (it knows no zeroes), the
     * holes as zeroes, and nothing is kept. */
    cfg.target = "null:";
    assert_int_equal(copy_run(&cfg, &st), COPY_DONE);
    assert_true(st.done == size);
    assert_true(st.zeroed > 5 * M);
    assert_true(st.data + st.zeroed == size);
    assert_non_null(strstr(st.target_desc, "null"));
    cfg.source = "null:";
    cfg.target = dst;
    assert_int_equal(copy_run(&cfg, &st), COPY_FAILED);
    assert_non_null(strstr(err_msg(), "target only"));
    cfg.source = src;

    cfg.target = small;
    assert_int_equal(copy_run(&cfg, &st), COPY_FAILED);
    assert_non_null(strstr(err_msg(), "smaller"));
    {
        struct stat sb;

        assert_int_equal(stat(small, &sb), 0);
        assert_int_equal(sb.st_blocks, 0);      /* nothing was written */
    }
    unlink(src);
    unlink(dst);
    unlink(fresh);
    unlink(small);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_data),
        cmocka_unit_test(test_plan_holes),
        cmocka_unit_test(test_plan_tiles),
        cmocka_unit_test(test_is_zero),
        cmocka_unit_test(test_spec),
        cmocka_unit_test(test_run_files),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
