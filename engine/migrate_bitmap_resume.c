/* Bitmap mode's retry resumes: what a failed attempt copied is kept when
 * the destination is still the one it wrote.
 *
 * The invariant the passes keep (migrate_bitmap.c): what volume i still
 * needs is its pending ranges (what a pass set out to copy and did not
 * settle) together with whatever this run's dirty bitmaps on its node
 * mark.  A failed attempt keeps one bitmap per node recording, so a retry
 * copies that union and nothing else.  Before it trusts the destination
 * it checks that it is the same (same size as the failed attempt saw) and
 * that a sample of the blocks it believes copied, and the guest has not
 * written since, reads back equal to the source; otherwise the volume is
 * copied in full, and the resumed event says why.
 *
 * The check errs one way only.  A block the guest writes between the
 * bitmap's freeze and the sample's read differs for a good reason and
 * costs a full copy; a destination that lost writes it had acknowledged
 * (its host crashed; volmig did not flush) outside the sample goes
 * unnoticed: the sample keeps going (up to 32 blocks) until eight blocks
 * that hold data matched, since a zero block matches an empty volume too.
 */
#include "engine/migrate_bitmap.h"
#include "engine/target_probe.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SAMPLE_BLOCK      (64U << 10)
#define SAMPLE_CANDIDATES 32     /* blocks looked at ... */
#define SAMPLE_DATA       8      /* ... until this many held data */
#define SAMPLE_TIMEOUT_MS 10000

/* ---- pure parts ---- */

uint64_t ranges_bytes(const struct copy_range *r, size_t n)
{
    uint64_t sum = 0;

    for (size_t i = 0; i < n; i++)
        sum += r[i].len;
    return sum;
}

size_t ranges_union(const struct copy_range *a, size_t na, const struct copy_range *b, size_t nb,
                    struct copy_range *out)
{
    size_t i = 0, j = 0, n = 0;

    while (i < na || j < nb) {
        const struct copy_range *next = j >= nb || (i < na && a[i].off <= b[j].off) ? &a[i++]
                                                                                     : &b[j++];
        uint64_t end = next->off + next->len;

        if (!next->len)
            continue;
        if (n && out[n - 1].off + out[n - 1].len >= next->off) {
            if (end > out[n - 1].off + out[n - 1].len)
                out[n - 1].len = end - out[n - 1].off;
        } else {
            out[n++] = *next;
        }
    }
    return n;
}

size_t ranges_from(struct copy_range *r, size_t n, uint64_t from)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        uint64_t end = r[i].off + r[i].len;

        if (end <= from)
            continue;
        r[k].off = r[i].off > from ? r[i].off : from;
        r[k].len = end - r[k].off;
        k++;
    }
    return k;
}

size_t ranges_complement(const struct copy_range *r, size_t n, uint64_t size,
                         struct copy_range *out)
{
    uint64_t pos = 0;
    size_t k = 0;

    for (size_t i = 0; i < n && pos < size; i++) {
        if (r[i].off > pos)
            out[k++] = (struct copy_range){ pos, r[i].off - pos };
        if (r[i].off + r[i].len > pos)
            pos = r[i].off + r[i].len;
    }
    if (pos < size)
        out[k++] = (struct copy_range){ pos, size - pos };
    return k;
}

size_t ranges_sample(const struct copy_range *r, size_t n, size_t count, uint64_t block,
                     uint64_t *out)
{
    uint64_t total = ranges_bytes(r, n), step;
    size_t k = 0, i = 0;
    uint64_t seen = 0;

    if (!total || !count)
        return 0;
    step = total / count ? total / count : 1;
    for (uint64_t at = step / 2; at < total && k < count; at += step) {
        uint64_t off;

        while (i < n && seen + r[i].len <= at)
            seen += r[i++].len;
        if (i == n)
            break;
        off = r[i].off + (at - seen);
        off -= off % block;
        if (off < r[i].off)
            off = r[i].off;
        if (!k || out[k - 1] != off)
            out[k++] = off;
    }
    return k;
}

/* ---- the destination's check ---- */

/* One end of the comparison: an NBD connection or a file descriptor. */
struct end {
    struct nbd_handle *h;
    int fd;
};

static int end_read(struct end *e, void *buf, size_t len, uint64_t off)
{
    ssize_t n;

    if (e->h)
        return probe_nbd_pread(e->h, buf, len, off, SAMPLE_TIMEOUT_MS);
    n = pread(e->fd, buf, len, (off_t)off);
    if (n != (ssize_t)len) {
        err_set(n < 0 ? errno : EIO, "read at %llu", (unsigned long long)off);
        return -1;
    }
    return 0;
}

static void end_close(struct end *e)
{
    if (e->h) {
        nbd_shutdown(e->h, 0);
        nbd_close(e->h);
    }
    if (e->fd >= 0)
        close(e->fd);
}

static int open_target(struct bm *b, const struct mig_volume *v, struct end *e)
{
    char uri[4500];

    if (v->uri.kind == URI_FILE) {
        e->fd = open(v->uri.path, O_RDONLY | O_CLOEXEC);
        if (e->fd < 0)
            err_set(errno, "open %s", v->uri.path);
        return e->fd < 0 ? -1 : 0;
    }
    nbd_uri_text(&v->uri, b->tls_on, uri, sizeof uri);
    e->h = probe_nbd_connect(uri, b->tls_on ? &b->tls : NULL, SAMPLE_TIMEOUT_MS);
    return e->h ? 0 : -1;
}

/* Compares the sample blocks of clean (copied, and not written since) on
 * the source (QEMU's export `export`) and the destination.  1 when they
 * are equal, 0 when one differs (why says where), -1 when they could not
 * be read (why says so). */
static int samples_equal(struct bm *b, int vol, const char *export, const struct copy_range *clean,
                         size_t n, char *why, size_t whylen)
{
    const struct mig_volume *v = &b->cfg->vols[vol];
    struct end src = { .fd = -1 }, dst = { .fd = -1 };
    uint64_t offs[SAMPLE_CANDIDATES];
    size_t k = ranges_sample(clean, n, SAMPLE_CANDIDATES, SAMPLE_BLOCK, offs);
    char uri[1024];
    uint8_t *a = malloc(SAMPLE_BLOCK), *d = malloc(SAMPLE_BLOCK);
    int rc = -1, data = 0;

    bm_source_uri(b, export, uri, sizeof uri);
    if (!a || !d) {
        snprintf(why, whylen, "no memory for the samples");
        goto out;
    }
    if (!(src.h = probe_nbd_connect(uri, NULL, SAMPLE_TIMEOUT_MS)) ||
        open_target(b, v, &dst) < 0) {
        snprintf(why, whylen, "the samples could not be read: %s", err_msg());
        goto out;
    }
    rc = 1;
    for (size_t i = 0; i < k && data < SAMPLE_DATA; i++) {
        uint64_t len = SAMPLE_BLOCK;

        for (size_t j = 0; j < n; j++)
            if (offs[i] >= clean[j].off && offs[i] < clean[j].off + clean[j].len &&
                clean[j].off + clean[j].len - offs[i] < len)
                len = clean[j].off + clean[j].len - offs[i];
        if (end_read(&src, a, len, offs[i]) < 0 || end_read(&dst, d, len, offs[i]) < 0) {
            snprintf(why, whylen, "the samples could not be read: %s", err_msg());
            rc = -1;
            break;
        }
        if (memcmp(a, d, len)) {
            snprintf(why, whylen, "the destination differs from what the failed attempt wrote "
                                  "(a sample at offset %llu)", (unsigned long long)offs[i]);
            rc = 0;
            break;
        }
        data += !copy_is_zero(a, len);
    }
out:
    end_close(&src);
    end_close(&dst);
    free(a);
    free(d);
    return rc;
}

int bm_resume_check(struct bm *b, int vol, const char *export, const struct copy_range *todo,
                    size_t n, char *why, size_t whylen)
{
    const struct mig_volume *v = &b->cfg->vols[vol];
    struct copy_range *clean;
    size_t nc;
    int rc;

    if (b->tsize[vol] && v->target_size != b->tsize[vol]) {
        snprintf(why, whylen, "the destination is not the one the failed attempt wrote (%llu "
                              "bytes, it was %llu)", (unsigned long long)v->target_size,
                 (unsigned long long)b->tsize[vol]);
        return 0;
    }
    clean = malloc((n + 1) * sizeof *clean);
    if (!clean) {
        snprintf(why, whylen, "no memory for the check");
        return -1;
    }
    nc = ranges_complement(todo, n, v->size, clean);
    rc = nc ? samples_equal(b, vol, export, clean, nc, why, whylen) : 1;
    free(clean);
    return rc;
}
