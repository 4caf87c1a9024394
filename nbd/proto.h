/* NBD wire constants (the NBD protocol specification, fixed newstyle) and
 * big-endian packing helpers.  Everything on the wire is network order. */
#ifndef VOLMIG_NBD_PROTO_H
#define VOLMIG_NBD_PROTO_H

#include <stdint.h>
#include <string.h>

#define NBD_MAGIC                0x4e42444d41474943ULL /* "NBDMAGIC" */
#define NBD_OPTS_MAGIC           0x49484156454F5054ULL /* "IHAVEOPT" */
#define NBD_REP_MAGIC            0x0003e889045565a9ULL
#define NBD_REQUEST_MAGIC        0x25609513U
#define NBD_SIMPLE_REPLY_MAGIC   0x67446698U
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efU

/* Handshake flags (server) and client flags. */
#define NBD_FLAG_FIXED_NEWSTYLE  (1U << 0)
#define NBD_FLAG_NO_ZEROES       (1U << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1U << 0)
#define NBD_FLAG_C_NO_ZEROES     (1U << 1)

/* Transmission flags. */
#define NBD_FLAG_HAS_FLAGS        (1U << 0)
#define NBD_FLAG_READ_ONLY        (1U << 1)
#define NBD_FLAG_SEND_FLUSH       (1U << 2)
#define NBD_FLAG_SEND_FUA         (1U << 3)
#define NBD_FLAG_ROTATIONAL       (1U << 4)
#define NBD_FLAG_SEND_TRIM        (1U << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1U << 6)
#define NBD_FLAG_SEND_DF          (1U << 7)
#define NBD_FLAG_CAN_MULTI_CONN   (1U << 8)
#define NBD_FLAG_SEND_FAST_ZERO   (1U << 11)

/* Options. */
#define NBD_OPT_EXPORT_NAME       1
#define NBD_OPT_ABORT             2
#define NBD_OPT_LIST              3
#define NBD_OPT_STARTTLS          5
#define NBD_OPT_INFO              6
#define NBD_OPT_GO                7
#define NBD_OPT_STRUCTURED_REPLY  8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT  10

/* Option replies. */
#define NBD_REP_ACK               1U
#define NBD_REP_SERVER            2U
#define NBD_REP_INFO              3U
#define NBD_REP_META_CONTEXT      4U
#define NBD_REP_ERR_UNSUP         (0x80000000U + 1)
#define NBD_REP_ERR_POLICY        (0x80000000U + 2)
#define NBD_REP_ERR_INVALID       (0x80000000U + 3)
#define NBD_REP_ERR_PLATFORM      (0x80000000U + 4)
#define NBD_REP_ERR_TLS_REQD      (0x80000000U + 5)
#define NBD_REP_ERR_UNKNOWN       (0x80000000U + 6)
#define NBD_REP_ERR_SHUTDOWN      (0x80000000U + 7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD (0x80000000U + 8)
#define NBD_REP_ERR_TOO_BIG       (0x80000000U + 9)

/* NBD_REP_INFO types. */
#define NBD_INFO_EXPORT           0
#define NBD_INFO_NAME             1
#define NBD_INFO_DESCRIPTION      2
#define NBD_INFO_BLOCK_SIZE       3

/* Commands and command flags. */
#define NBD_CMD_READ              0
#define NBD_CMD_WRITE             1
#define NBD_CMD_DISC              2
#define NBD_CMD_FLUSH             3
#define NBD_CMD_TRIM              4
#define NBD_CMD_CACHE             5
#define NBD_CMD_WRITE_ZEROES      6
#define NBD_CMD_BLOCK_STATUS      7

#define NBD_CMD_FLAG_FUA          (1U << 0)
#define NBD_CMD_FLAG_NO_HOLE      (1U << 1)
#define NBD_CMD_FLAG_DF           (1U << 2)
#define NBD_CMD_FLAG_REQ_ONE      (1U << 3)
#define NBD_CMD_FLAG_FAST_ZERO    (1U << 4)

/* Structured reply chunks. */
#define NBD_REPLY_FLAG_DONE       (1U << 0)
#define NBD_REPLY_TYPE_NONE       0
#define NBD_REPLY_TYPE_OFFSET_DATA 1
#define NBD_REPLY_TYPE_OFFSET_HOLE 2
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_ERROR      ((1U << 15) + 1)

/* base:allocation flags. */
#define NBD_STATE_HOLE            (1U << 0)
#define NBD_STATE_ZERO            (1U << 1)

/* Errors. */
#define NBD_EPERM       1
#define NBD_EIO         5
#define NBD_ENOMEM      12
#define NBD_EINVAL      22
#define NBD_ENOSPC      28
#define NBD_EOVERFLOW   75
#define NBD_ENOTSUP     95
#define NBD_ESHUTDOWN   108

#define NBD_REQUEST_SIZE          28
#define NBD_SIMPLE_REPLY_SIZE     16
#define NBD_CHUNK_HEADER_SIZE     20

static inline uint16_t get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t get_be64(const uint8_t *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}
static inline uint8_t *put_be16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v; return p + 2; }
static inline uint8_t *put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
    return p + 4;
}
static inline uint8_t *put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, v >> 32);
    return put_be32(p + 4, (uint32_t)v);
}

#endif
