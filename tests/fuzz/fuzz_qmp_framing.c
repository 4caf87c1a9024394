/* libFuzzer target for qmp/frame.c.
 *
 * The first input byte picks a chunk size; the rest is the byte stream a
 * QMP server might send.  The stream is framed twice, fed whole and fed in
 * chunks, and both must yield the same messages and the same verdict:
 * framing must not depend on how reads happen to split the stream.  A
 * small message limit lets the fuzzer reach the too-large paths.
 *
 * fuzz-sources: qmp/frame.c common/error.c
 * fuzz-libs: jansson
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qmp/qmp.h"

#define LIMIT 4096

/* Frames data fed chunk bytes at a time; returns the messages (an array)
 * and sets *broken if the framer gave up. */
static json_t *frame_all(const uint8_t *data, size_t size, size_t chunk, int *broken)
{
    struct qmp_frame f;
    json_t *out = json_array(), *m;
    size_t off = 0;
    int rc = 0;

    *broken = 0;
    qmp_frame_init(&f, LIMIT);
    while (off < size && rc >= 0) {
        size_t n = size - off < chunk ? size - off : chunk;

        if (qmp_frame_feed(&f, data + off, n) < 0)
            abort();        /* feeding only fails once broken */
        off += n;
        while ((rc = qmp_frame_next(&f, &m)) == 1) {
            if (!json_is_object(m))
                abort();
            json_array_append_new(out, m);
        }
    }
    *broken = rc < 0;
    qmp_frame_free(&f);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *whole, *chunked;
    int bw, bc;
    size_t chunk;

    if (size < 1)
        return 0;
    chunk = data[0] % 64 + 1;
    whole = frame_all(data + 1, size - 1, size, &bw);
    chunked = frame_all(data + 1, size - 1, chunk, &bc);
    if (bw != bc || !json_equal(whole, chunked))
        abort();
    json_decref(whole);
    json_decref(chunked);
    return 0;
}
