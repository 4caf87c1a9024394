/* k8s/ internals shared between its files, sectioned by file. */
#ifndef VOLMIG_K8S_INTERNAL_H
#define VOLMIG_K8S_INTERNAL_H

#include "k8s/k8s.h"

#include <stdint.h>

/* ---- reconcile.c helpers (also used by tests through k8s.h only) ---- */

/* FNV-1a over NUL-separated strings, for deterministic generated names. */
uint64_t k8s_hash(const char *const *parts, size_t n);

/* Condition lists (status.conditions of a VM or VMI). */
json_t *k8s_cond_get(const json_t *obj, const char *type);
bool k8s_cond_true(const json_t *obj, const char *type);

#endif
