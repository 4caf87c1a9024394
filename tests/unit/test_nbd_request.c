/* Request validation: the one gate every request passes before I/O. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "nbd/internal.h"

static const struct nbd_export rw = {
    .name = "", .size = 1 << 20, .min_block = 512, .pref_block = 4096,
    .max_payload = NBD_MAX_PAYLOAD,
};
static const struct nbd_session plain = { false, false };
static const struct nbd_session sr = { true, true };

static int v(const struct nbd_export *e, const struct nbd_session *s, uint16_t type,
             uint16_t flags, uint64_t off, uint32_t len)
{
    struct nbd_request r = { .type = type, .flags = flags, .offset = off, .length = len };

    return nbd_request_validate(&r, e, s);
}

static void test_decode(void **state)
{
    uint8_t b[28], *p = b;
    struct nbd_request r;

    (void)state;
    p = put_be32(p, NBD_REQUEST_MAGIC);
    p = put_be16(p, NBD_CMD_FLAG_FUA);
    p = put_be16(p, NBD_CMD_WRITE);
    p = put_be64(p, 0x1122334455667788ULL);
    p = put_be64(p, 4096);
    put_be32(p, 512);
    assert_int_equal(nbd_request_decode(b, &r), 0);
    assert_int_equal(r.type, NBD_CMD_WRITE);
    assert_int_equal(r.flags, NBD_CMD_FLAG_FUA);
    assert_true(r.cookie == 0x1122334455667788ULL);
    assert_int_equal(r.offset, 4096);
    assert_int_equal(r.length, 512);
    assert_int_equal(nbd_request_payload(&r), 512);
    b[0] ^= 1;
    assert_int_equal(nbd_request_decode(b, &r), -1);
}

static void test_ranges(void **state)
{
    (void)state;
    assert_int_equal(v(&rw, &plain, NBD_CMD_READ, 0, 0, 4096), 0);
    assert_int_equal(v(&rw, &plain, NBD_CMD_READ, 0, (1 << 20) - 512, 512), 0);
    assert_int_equal(v(&rw, &plain, NBD_CMD_READ, 0, (1 << 20) - 512, 1024), NBD_EINVAL);
    assert_int_equal(v(&rw, &plain, NBD_CMD_WRITE, 0, (1 << 20), 512), NBD_ENOSPC);
    assert_int_equal(v(&rw, &plain, NBD_CMD_WRITE_ZEROES, 0, (1 << 20) - 512, 1024), NBD_ENOSPC);
    assert_int_equal(v(&rw, &plain, NBD_CMD_TRIM, 0, UINT64_MAX - 100, 512), NBD_ENOSPC);
    /* offset + length overflowing 64 bits is out of range, not wrapped */
    assert_int_equal(v(&rw, &plain, NBD_CMD_READ, 0, UINT64_MAX - 511, 1024), NBD_EINVAL);
    assert_int_equal(v(&rw, &plain, NBD_CMD_READ, 0, 0, 0), NBD_EINVAL);
}

static void test_alignment(void **state)
{
    (void)state;
    assert_int_equal(v(&rw, &plain, NBD_CMD_READ, 0, 100, 512), NBD_EINVAL);
    assert_int_equal(v(&rw, &plain, NBD_CMD_WRITE, 0, 512, 100), NBD_EINVAL);
    assert_int_equal(v(&rw, &plain, NBD_CMD_WRITE_ZEROES, 0, 512, 513), NBD_EINVAL);
}

static void test_flags_and_types(void **state)
{
    (void)state;
    assert_int_equal(v(&rw, &plain, NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 0, 512), 0);
    assert_int_equal(v(&rw, &plain, NBD_CMD_WRITE, NBD_CMD_FLAG_NO_HOLE, 0, 512), NBD_EINVAL);
    assert_int_equal(v(&rw, &plain, NBD_CMD_WRITE, 0x8000, 0, 512), NBD_EINVAL);
    assert_int_equal(v(&rw, &plain, NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, 512), NBD_EINVAL);
    assert_int_equal(v(&rw, &sr, NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, 512), 0);
    assert_int_equal(v(&rw, &plain, NBD_CMD_WRITE_ZEROES,
                       NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO | NBD_CMD_FLAG_FUA, 0, 512), 0);
    assert_int_equal(v(&rw, &plain, 42, 0, 0, 512), NBD_EINVAL);
    assert_int_equal(v(&rw, &plain, NBD_CMD_CACHE, 0, 0, 512), NBD_EINVAL);
    assert_int_equal(v(&rw, &plain, NBD_CMD_FLUSH, 0, 0, 0), 0);
    assert_int_equal(v(&rw, &plain, NBD_CMD_FLUSH, 0, 0, 512), NBD_EINVAL);
    assert_int_equal(v(&rw, &plain, NBD_CMD_DISC, 0, 0, 0), 0);
}

static void test_sizes(void **state)
{
    (void)state;
    assert_int_equal(v(&rw, &plain, NBD_CMD_WRITE, 0, 0, NBD_MAX_PAYLOAD + 512), NBD_VALID_DISCONNECT);
    {
        struct nbd_export big = rw;

        big.size = 1ULL << 40;
        assert_int_equal(v(&big, &plain, NBD_CMD_READ, 0, 0, NBD_MAX_PAYLOAD + 512), NBD_EOVERFLOW);
        assert_int_equal(v(&big, &plain, NBD_CMD_READ, 0, 0, NBD_MAX_PAYLOAD), 0);
        /* zeroing has no payload, so no payload limit */
        assert_int_equal(v(&big, &plain, NBD_CMD_WRITE_ZEROES, 0, 0, 0xfffffe00), 0);
    }
}

static void test_readonly_and_status(void **state)
{
    struct nbd_export ro = rw;

    (void)state;
    ro.readonly = true;
    assert_int_equal(v(&ro, &plain, NBD_CMD_WRITE, 0, 0, 512), NBD_EPERM);
    assert_int_equal(v(&ro, &plain, NBD_CMD_TRIM, 0, 0, 512), NBD_EPERM);
    assert_int_equal(v(&ro, &plain, NBD_CMD_WRITE_ZEROES, 0, 0, 512), NBD_EPERM);
    assert_int_equal(v(&ro, &plain, NBD_CMD_READ, 0, 0, 512), 0);
    assert_int_equal(v(&rw, &plain, NBD_CMD_BLOCK_STATUS, 0, 0, 512), NBD_EINVAL);
    assert_int_equal(v(&rw, &sr, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, 512), 0);
}

static void test_replies(void **state)
{
    uint8_t b[128];

    (void)state;
    assert_int_equal(nbd_put_simple_reply(b, 7, NBD_EIO), 16);
    assert_int_equal(get_be32(b), NBD_SIMPLE_REPLY_MAGIC);
    assert_int_equal(get_be32(b + 4), NBD_EIO);
    assert_int_equal(nbd_put_error_chunk(b, 9, NBD_EINVAL, "bad"), 20 + 6 + 3);
    assert_int_equal(get_be16(b + 4), NBD_REPLY_FLAG_DONE);
    assert_int_equal(get_be16(b + 6), NBD_REPLY_TYPE_ERROR);
    assert_int_equal(get_be32(b + 16), 9);
    assert_int_equal(get_be32(b + 20), NBD_EINVAL);
    assert_int_equal(nbd_errno_to_wire(ENOSPC), NBD_ENOSPC);
    assert_int_equal(nbd_errno_to_wire(EROFS), NBD_EPERM);
    assert_int_equal(nbd_errno_to_wire(EBADF), NBD_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_flags_and_types),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_readonly_and_status),
        cmocka_unit_test(test_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
