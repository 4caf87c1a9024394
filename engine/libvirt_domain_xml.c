/* The pure half of engine/libvirt_domain.h: libvirt's domain XML in, disks
 * out; a destination in, <disk> XML out.  No libvirtd, no I/O.
 *
 * libvirt 9.0 facts this relies on:
 *   - libvirt names a disk by its <target dev> or by its source path
 *     (src/conf/domain_conf.c virDomainDiskIndexByName: a name with no
 *     leading '/' is a target, else a source, which must be unambiguous);
 *     aliases and node names are ours to map onto the target.
 *   - QEMU's node names of a disk's top image are "libvirt-N-format" and
 *     "libvirt-N-storage" with N the <source index='N'> of the live XML
 *     (src/qemu/qemu_domain.c qemuDomainPrepareStorageSourceBlockdev and
 *     qemuDomainPrepareStorageSourceBlockdevNodename).
 *   - a block copy destination is a <disk> of which only the source part
 *     is read (src/libvirt-domain.c virDomainBlockCopy doc;
 *     src/qemu/qemu_driver.c qemuDomainBlockCopy calls
 *     virDomainDiskDefParseSource).  With REUSE_EXT the format must be
 *     given for anything libvirt cannot probe, NBD included
 *     (qemuDomainBlockCopyCommon: "reused mirror destination format must
 *     be specified"), so <driver type> is always written.
 */
#include "engine/libvirt_domain.h"
#include "common/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

/* ---- parsing ---- */

static char *prop(xmlNodePtr n, const char *name)
{
    xmlChar *v = n ? xmlGetProp(n, (const xmlChar *)name) : NULL;
    char *s = v ? strdup((const char *)v) : NULL;

    xmlFree(v);
    return s;
}

static xmlNodePtr child(xmlNodePtr n, const char *name)
{
    for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && !strcmp((const char *)c->name, name))
            return c;
    return NULL;
}

static bool streq0(const char *a, const char *b)
{
    return !strcmp(a ? a : "", b ? b : "");
}

static void parse_source(xmlNodePtr src, struct lvd_disk *d)
{
    xmlNodePtr host = child(src, "host");
    char *s;

    if (!src)
        return;
    if (streq0(d->type, "file"))
        d->path = prop(src, "file");
    else if (streq0(d->type, "block"))
        d->path = prop(src, "dev");
    d->protocol = prop(src, "protocol");
    d->export_name = prop(src, "name");
    s = prop(src, "tls");
    d->tls = streq0(s, "yes");
    free(s);
    s = prop(src, "index");
    d->index = s ? atoi(s) : -1;
    free(s);
    if (host) {
        char *transport = prop(host, "transport");

        if (streq0(transport, "unix")) {
            d->socket = prop(host, "socket");
        } else {
            d->host = prop(host, "name");
            d->port = prop(host, "port");
        }
        free(transport);
    }
}

static void parse_disk(xmlNodePtr n, struct lvd_disk *d)
{
    xmlNodePtr mirror = child(n, "mirror");
    char *ready;

    d->index = -1;
    d->type = prop(n, "type");
    d->device = prop(n, "device");
    d->format = prop(child(n, "driver"), "type");
    d->target = prop(child(n, "target"), "dev");
    d->alias = prop(child(n, "alias"), "name");
    d->readonly = child(n, "readonly") != NULL;
    parse_source(child(n, "source"), d);
    d->mirror = mirror != NULL;
    ready = prop(mirror, "ready");
    d->mirror_ready = streq0(ready, "yes");
    free(ready);
}

int lvd_parse_disks(const char *xml, struct lvd_disk **v, size_t *n)
{
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL, devs, c;
    size_t cap = 0;

    *v = NULL;
    *n = 0;
    if (!root || strcmp((const char *)root->name, "domain")) {
        xmlFreeDoc(doc);
        err_set(EINVAL, "libvirt returned domain XML that does not parse");
        return -1;
    }
    devs = child(root, "devices");
    for (c = devs ? devs->children : NULL; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, "disk"))
            continue;
        if (*n == cap) {
            struct lvd_disk *nv = realloc(*v, (cap = cap ? 2 * cap : 4) * sizeof **v);

            if (!nv) {
                lvd_disks_free(*v, *n);
                xmlFreeDoc(doc);
                *v = NULL;
                *n = 0;
                err_set(ENOMEM, "domain XML");
                return -1;
            }
            *v = nv;
        }
        memset(&(*v)[*n], 0, sizeof **v);
        parse_disk(c, &(*v)[(*n)++]);
    }
    xmlFreeDoc(doc);
    return 0;
}

static void disk_clear(struct lvd_disk *d)
{
    free(d->target); free(d->alias); free(d->device); free(d->type);
    free(d->format); free(d->path); free(d->protocol); free(d->export_name);
    free(d->host); free(d->port); free(d->socket);
}

void lvd_disks_free(struct lvd_disk *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        disk_clear(&v[i]);
    free(v);
}

/* ---- finding a disk ---- */

static bool is_node_of(const struct lvd_disk *d, const char *name)
{
    char fmt[64], sto[64];

    if (d->index < 0)
        return false;
    snprintf(fmt, sizeof fmt, "libvirt-%d-format", d->index);
    snprintf(sto, sizeof sto, "libvirt-%d-storage", d->index);
    return !strcmp(name, fmt) || !strcmp(name, sto);
}

static void list_names(const struct lvd_disk *v, size_t n, char *buf, size_t len)
{
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n && o < len; i++)
        o += snprintf(buf + o, len - o, "%s%s%s%s%s", i ? ", " : "", v[i].target ? v[i].target : "?",
                      v[i].alias ? " (" : "", v[i].alias ? v[i].alias : "", v[i].alias ? ")" : "");
    if (!n)
        snprintf(buf, len, "none");
}

/* Target first, then alias and node name (all unique by construction),
 * then the source path, which two disks may share. */
int lvd_disk_find(const struct lvd_disk *v, size_t n, const char *name)
{
    char names[1024];
    int found = -1;
    size_t i;

    for (i = 0; i < n; i++)
        if (streq0(v[i].target, name))
            return (int)i;
    for (i = 0; i < n; i++)
        if ((v[i].alias && !strcmp(v[i].alias, name)) || is_node_of(&v[i], name))
            return (int)i;
    for (i = 0; i < n; i++) {
        if (!v[i].path || strcmp(v[i].path, name))
            continue;
        if (found >= 0) {
            err_set(EINVAL, "disk %s: both %s and %s use it; name the disk by its target",
                    name, v[found].target, v[i].target);
            return -1;
        }
        found = (int)i;
    }
    if (found >= 0)
        return found;
    list_names(v, n, names, sizeof names);
    err_set(0, "the domain has no disk %s (its disks: %s)", name, names);
    return -1;
}

/* ---- comparing ---- */

static const char *nbd_port(const char *port)
{
    return port && *port ? port : "10809";
}

bool lvd_disk_is(const struct lvd_disk *d, const struct target_uri *u)
{
    if (u->kind == URI_FILE)
        return (streq0(d->type, "file") || streq0(d->type, "block")) && streq0(d->path, u->path);
    if (!streq0(d->type, "network") || !streq0(d->protocol, "nbd") ||
        !streq0(d->export_name, u->export_name))
        return false;
    if (u->kind == URI_NBD_UNIX)
        return streq0(d->socket, u->socket) && !d->host;
    return !d->socket && streq0(d->host, u->host) && !strcmp(nbd_port(d->port), nbd_port(u->port));
}

bool lvd_disk_same_source(const struct lvd_disk *a, const struct lvd_disk *b)
{
    if (streq0(a->type, "network") || streq0(b->type, "network"))
        return streq0(a->type, b->type) && streq0(a->protocol, b->protocol) &&
               streq0(a->export_name, b->export_name) && streq0(a->host, b->host) &&
               streq0(a->socket, b->socket) &&
               (!streq0(a->protocol, "nbd") || !strcmp(nbd_port(a->port), nbd_port(b->port)));
    return streq0(a->type, b->type) && streq0(a->path, b->path);
}

void lvd_disk_source_text(const struct lvd_disk *d, char *buf, size_t len)
{
    const char *e = d->export_name ? d->export_name : "";

    if (!streq0(d->type, "network"))
        snprintf(buf, len, "%s:%s", d->type ? d->type : "?", d->path ? d->path : "");
    else if (d->socket)
        snprintf(buf, len, "%s+unix:///%s?socket=%s", d->protocol ? d->protocol : "?", e,
                 d->socket);
    else
        snprintf(buf, len, "%s://%s:%s/%s", d->protocol ? d->protocol : "?",
                 d->host ? d->host : "", d->protocol && !strcmp(d->protocol, "nbd")
                 ? nbd_port(d->port) : (d->port ? d->port : ""), e);
}

/* ---- building a destination ---- */

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->p, cap);

        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* An attribute value in single quotes, escaped. */
static void sb_attr(struct sbuf *b, const char *name, const char *v)
{
    sb_str(b, " ");
    sb_str(b, name);
    sb_str(b, "='");
    for (; *v; v++) {
        switch (*v) {
        case '&': sb_str(b, "&amp;"); break;
        case '<': sb_str(b, "&lt;"); break;
        case '>': sb_str(b, "&gt;"); break;
        case '\'': sb_str(b, "&apos;"); break;
        case '"': sb_str(b, "&quot;"); break;
        default: sb_add(b, v, 1);
        }
    }
    sb_str(b, "'");
}

/* libvirt 9.0 takes <slices> in any <source> and puts a raw node with
 * offset and size over the storage (src/conf/domain_conf.c
 * virDomainStorageSourceParseSlices; src/qemu/qemu_block.c
 * qemuBlockStorageSourceNeedsStorageSliceLayer), for block copy
 * destinations too (qemuDomainBlockCopyCommon prepares the mirror like a
 * disk); the slice is kept in the persistent definition after a pivot. */
static void sb_slice(struct sbuf *b, uint64_t slice)
{
    char size[32];

    if (!slice)
        return;
    snprintf(size, sizeof size, "%llu", (unsigned long long)slice);
    sb_str(b, "<slices><slice");
    sb_attr(b, "type", "storage");
    sb_attr(b, "offset", "0");
    sb_attr(b, "size", size);
    sb_str(b, "/></slices>");
}

char *lvd_dest_xml(const struct target_uri *u, bool blockdev, const char *format, uint64_t slice)
{
    struct sbuf b = { 0 };

    sb_str(&b, "<disk");
    sb_attr(&b, "type", u->kind != URI_FILE ? "network" : blockdev ? "block" : "file");
    sb_str(&b, "><driver");
    sb_attr(&b, "name", "qemu");
    sb_attr(&b, "type", format ? format : "raw");
    sb_str(&b, "/><source");
    if (u->kind == URI_FILE) {
        sb_attr(&b, blockdev ? "dev" : "file", u->path);
        sb_str(&b, ">");
        sb_slice(&b, slice);
        sb_str(&b, "</source>");
    } else {
        sb_attr(&b, "protocol", "nbd");
        if (u->export_name[0])      /* absent: the default export "" */
            sb_attr(&b, "name", u->export_name);
        /* Always said: an absent tls takes qemu.conf's nbd_tls
         * (src/qemu/qemu_domain.c qemuProcessPrepareStorageSourceTLSNBD).
         * With tls='yes' QEMU uses x509 certificates from qemu.conf's
         * nbd_tls_x509_cert_dir; libvirt has no PSK for NBD. */
        sb_attr(&b, "tls", u->tls ? "yes" : "no");
        sb_str(&b, "><host");
        if (u->kind == URI_NBD_UNIX) {
            sb_attr(&b, "transport", "unix");
            sb_attr(&b, "socket", u->socket);
        } else {
            sb_attr(&b, "name", u->host);
            sb_attr(&b, "port", nbd_port(u->port));
        }
        sb_str(&b, "/>");
        sb_slice(&b, slice);
        sb_str(&b, "</source>");
    }
    sb_str(&b, "</disk>");
    if (b.oom) {
        free(b.p);
        err_set(ENOMEM, "destination XML");
        return NULL;
    }
    return b.p;
}
