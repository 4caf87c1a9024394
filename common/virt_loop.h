/* libvirt's default event loop, run by one thread for the whole process.
 *
 * libvirt delivers events (domain lifecycle, block jobs, QEMU monitor
 * events, a closed connection) only while somebody runs its event loop, and
 * its default implementation may be registered once per process.  Both
 * users of libvirt in volmig (the QMP transport and the libvirt domain
 * module) share this one loop. */
#ifndef VOLMIG_COMMON_VIRT_LOOP_H
#define VOLMIG_COMMON_VIRT_LOOP_H

/* Starts the loop the first time; 0 when it runs, -1 when it could not be
 * started (every later call says the same).  libvirt's own error printing
 * is turned off: callers read virGetLastErrorMessage(). */
int virt_loop_start(void);

#endif
