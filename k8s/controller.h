/* `volmig controller`: the store-watching loop that reconciles and runs
 * migrations through an engine. */
#ifndef VOLMIG_K8S_CONTROLLER_H
#define VOLMIG_K8S_CONTROLLER_H

#include <signal.h>
#include <stdbool.h>
#include <time.h>

#include "k8s/engine.h"

struct k8s_controller_config {
    const char *store;                    /* the directory of manifests */
    bool once;                            /* stop when the world is at rest */
    int timeout_s;                        /* with once: give up after this */
    const struct k8s_engine_ops *ops;
    void *engine;
    volatile sig_atomic_t *stop;          /* set by a signal handler */
    time_t (*now)(void);                  /* NULL: the wall clock */
    void (*log)(const char *fmt, ...);    /* one line per event; may be NULL */
    int *failed;                          /* out, may be NULL: how many migrations
                                             this run saw end Failed */
};

/* Runs until *stop (or, with once, until nothing is left to do).  Running
 * jobs are cancelled on the way out.  0, or -1 with err_msg() set. */
int k8s_controller_run(const struct k8s_controller_config *cfg);

#endif
