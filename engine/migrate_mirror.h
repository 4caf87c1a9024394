/* Mirror mode, a strategy over the run core (engine/migrate_run.h): QEMU's
 * blockdev-mirror pushes every volume into its target node; the
 * switchover pivots, finishes the mirrors in a memory migration's pause,
 * or leaves consistent copies. */
#ifndef VOLMIG_MIGRATE_MIRROR_H
#define VOLMIG_MIGRATE_MIRROR_H

#include "engine/migrate_run.h"

extern const struct mig_strategy mig_mirror;

/* Removes the jobs, nodes and TLS objects of volmig runs that died.
 * Returns how many things were removed. */
int mirror_sweep(struct qmp *q);

#endif
