/* Between the files of engine/libvirt_domain*.c only. */
#ifndef VOLMIG_LIBVIRT_INTERNAL_H
#define VOLMIG_LIBVIRT_INTERNAL_H

#include "engine/libvirt_domain.h"

#include <libvirt/libvirt.h>

/* The handle's domain (owned by c). */
virDomainPtr lvd_dom(struct lvd *c);
/* err_set("libvirt: WHAT NAME: libvirt's last error"). */
void lvd_set_error(const char *what, const char *name);

#endif
