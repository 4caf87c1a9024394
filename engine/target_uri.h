/* Migration targets as users write them:
 *   nbd://HOST[:PORT]/EXPORT          (NBD URI specification; port 10809)
 *   nbd+unix:///EXPORT?socket=PATH
 *   nbds://... nbds+unix://...        (the same, TLS required)
 *   file:PATH                         (a local file or block device)
 */
#ifndef VOLMIG_URI_H
#define VOLMIG_URI_H

#include <stdbool.h>

enum target_uri_kind { URI_NBD_TCP, URI_NBD_UNIX, URI_FILE };

struct target_uri {
    enum target_uri_kind kind;
    bool tls;                 /* nbds: the connection must use TLS */
    char host[256];
    char port[16];
    char export_name[4097];
    char socket[108];
    char path[4096];
};

/* Parses text.  -1 with err_msg() set on anything it does not accept. */
int target_uri_parse(const char *text, struct target_uri *u);

#endif
