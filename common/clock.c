#include "common/clock.h"

#include <time.h>

static struct timespec mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts;
}

int64_t clock_ms(void)
{
    struct timespec ts = mono();

    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double clock_seconds(void)
{
    struct timespec ts = mono();

    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

uint64_t clock_ns(void)
{
    struct timespec ts = mono();

    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}
