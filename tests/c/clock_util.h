/* clock_util.h - what the benchmarks and the test drivers time with: a clock read
 * in nanoseconds and the qsort comparators their medians sort with. Header only. */
#ifndef ITUNA_CLOCK_UTIL_H
#define ITUNA_CLOCK_UTIL_H

#include <stdint.h>
#include <time.h>

/* Clock id in ns: CLOCK_MONOTONIC for wall time, the CPU-time clocks for cost. */
static inline uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t mono_ns(void) {
    return clock_ns(CLOCK_MONOTONIC);
}

static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

#endif
