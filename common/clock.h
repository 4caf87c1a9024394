/* The one monotonic clock every module measures time and deadlines with. */
#ifndef VOLMIG_CLOCK_H
#define VOLMIG_CLOCK_H

#include <stdint.h>

int64_t clock_ms(void);        /* CLOCK_MONOTONIC, milliseconds */
double clock_seconds(void);    /* CLOCK_MONOTONIC, seconds */
uint64_t clock_ns(void);       /* CLOCK_MONOTONIC, nanoseconds */

#endif
