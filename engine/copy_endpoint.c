/* Which backend an end of a copy is, from how the user wrote it: the one
 * place that knows every backend by name.  The core only calls
 * copy_endpoint_open() and then the endpoint's ops. */
#include "engine/copy_internal.h"
#include "common/error.h"

#include <string.h>

struct endpoint *copy_endpoint_open(const struct copy_config *cfg, const char *spec,
                                    bool is_target, uint64_t src_size)
{
    enum copy_spec_kind kind;
    struct target_uri uri;
    struct endpoint *ep = NULL;
    const char *path;

    if (copy_spec_kind(spec, &kind, &path, &uri) < 0)
        return NULL;
    switch (kind) {
    case COPY_SPEC_NBD:
        if (uri.tls && !cfg->tls) {
            err_set(0, "%s: an nbds URI needs --tls-creds or --tls-psk", spec);
            return NULL;
        }
        ep = copy_nbd_open(spec, &uri, uri.tls ? cfg->tls : NULL, is_target,
                           cfg->connections > 0 ? cfg->connections : 4);
        break;
    case COPY_SPEC_NULL:
        ep = copy_null_open(spec, is_target, src_size);
        break;
    case COPY_SPEC_LOCAL:
        ep = copy_local_open(spec, path, is_target, !cfg->no_direct, src_size,
                             !is_target && cfg->force_share);
        break;
    }
    return ep;
}
