/* clock.c - the wall clock of span timestamps (ituna_now_ns).
 *
 * A span reads the clock twice, and clock_gettime costs ~25 ns in a VM, a third
 * of a span. Where the kernel itself keeps time on an invariant TSC (clocksource
 * "tsc", constant_tsc + nonstop_tsc), we extrapolate CLOCK_REALTIME from rdtsc
 * (~10 ns): an anchor (tsc, wall) re-taken from clock_gettime every 50 ms, so a
 * step of the wall clock shows within that interval, and a rate measured against
 * CLOCK_MONOTONIC, which follows NTP's slew but never steps (some VMs step
 * CLOCK_REALTIME by 0.5 ms ten times a second: a rate taken from it was 5% off). Anywhere else, or with ITUNA_CLOCK=syscall, or while a
 * re-anchor is in progress: plain clock_gettime. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <x86intrin.h>
#define ITUNA_HAVE_TSC 1
#endif

static uint64_t sys_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#ifdef ITUNA_HAVE_TSC
#define REANCHOR_NS  50000000ull /* 50 ms */
#define CALIBRATE_NS 10000000ull /* first rate measured over >= 10 ms */

/* The anchor, under a seqlock: odd seq = being written. Fields are atomics
 * (relaxed) so a torn read is a retry, not undefined behaviour. */
static _Atomic uint32_t g_seq;
static _Atomic uint64_t g_tsc, g_wall, g_mult, g_limit; /* mult: ns per tick << 32; limit: ticks */
static atomic_int g_mode;                               /* 0 undecided, 1 tsc, -1 syscall */
static _Atomic uint64_t g_cal_tsc, g_cal_mono;          /* calibration start */

/* 1 if every word of words (NULL-terminated) stands, blank-separated, in path:
 * one read of the file however many words. */
static int file_has_all(const char *path, const char *const *words) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    unsigned found = 0, all = 0;
    for (int i = 0; words[i]; i++) all |= 1u << i;
    char line[4096];
    while (found != all && fgets(line, sizeof line, f)) {
        for (int i = 0; words[i]; i++) {
            size_t wl = strlen(words[i]);
            for (char *p = strstr(line, words[i]); p && !(found & (1u << i)); p = strstr(p + 1, words[i]))
                if ((p == line || p[-1] == ' ' || p[-1] == '\t') &&
                    (p[wl] == ' ' || p[wl] == '\n' || p[wl] == 0))
                    found |= 1u << i;
        }
    }
    fclose(f);
    return found == all;
}

static int tsc_usable(void) {
    static const char *const clocksource[] = { "tsc", NULL };
    static const char *const flags[] = { "constant_tsc", "nonstop_tsc", NULL };
    const char *env = getenv("ITUNA_CLOCK");
    if (env && strcmp(env, "syscall") == 0) return 0;
    return file_has_all("/sys/devices/system/clocksource/clocksource0/current_clocksource", clocksource) &&
           file_has_all("/proc/cpuinfo", flags);
}

static uint64_t mono_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The clocks read as close together as possible: the TSC on either side of
 * clock_gettime, the midpoint kept; of three tries the tightest, since a thread
 * preempted between the reads would anchor the clock off by half the preemption. */
static void read_pair(uint64_t *tsc, uint64_t *wall, uint64_t *mono) {
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 3; i++) {
        uint64_t a = __rdtsc();
        uint64_t w = sys_now_ns(), mo = mono_now_ns();
        uint64_t b = __rdtsc();
        if (b - a < best) {
            best = b - a;
            *tsc = a + (b - a) / 2;
            *wall = w;
            *mono = mo;
        }
    }
}

/* Slow path: decide, calibrate or re-anchor; returns the syscall time. */
static uint64_t slow_now(void) {
    int mode = atomic_load_explicit(&g_mode, memory_order_acquire);
    if (mode == 0) {
        int m = tsc_usable() ? 1 : -1;
        int expect = 0;
        if (atomic_compare_exchange_strong(&g_mode, &expect, m) && m == 1) {
            uint64_t t = 0, w = 0, mo = 0;
            read_pair(&t, &w, &mo);
            atomic_store(&g_cal_tsc, t);
            atomic_store(&g_cal_mono, mo);
        }
        mode = atomic_load(&g_mode);
    }
    if (mode != 1) return sys_now_ns();
    uint32_t s = atomic_load_explicit(&g_seq, memory_order_relaxed);
    if ((s & 1) || !atomic_compare_exchange_strong(&g_seq, &s, s + 1))
        return sys_now_ns(); /* someone else is at it */
    uint64_t t = 0, w = 0, mo = 0;
    read_pair(&t, &w, &mo);
    uint64_t ct = atomic_load_explicit(&g_cal_tsc, memory_order_relaxed);
    uint64_t cm = atomic_load_explicit(&g_cal_mono, memory_order_relaxed);
    if (mo > cm && mo - cm >= CALIBRATE_NS && t > ct) {
        uint64_t mult = (uint64_t)(((unsigned __int128)(mo - cm) << 32) / (t - ct));
        if (mult) {
            atomic_store_explicit(&g_tsc, t, memory_order_relaxed);
            atomic_store_explicit(&g_wall, w, memory_order_relaxed);
            atomic_store_explicit(&g_mult, mult, memory_order_relaxed);
            atomic_store_explicit(&g_limit, (uint64_t)(((unsigned __int128)REANCHOR_NS << 32) / mult),
                                  memory_order_relaxed);
        }
        atomic_store_explicit(&g_cal_tsc, t, memory_order_relaxed);
        atomic_store_explicit(&g_cal_mono, mo, memory_order_relaxed);
    }
    atomic_store_explicit(&g_seq, s + 2, memory_order_release);
    return w;
}

uint64_t ituna_now_ns(void) {
    uint32_t s1 = atomic_load_explicit(&g_seq, memory_order_acquire);
    uint64_t mult = atomic_load_explicit(&g_mult, memory_order_relaxed);
    if (!(s1 & 1) && mult) {
        uint64_t t0 = atomic_load_explicit(&g_tsc, memory_order_relaxed);
        uint64_t w0 = atomic_load_explicit(&g_wall, memory_order_relaxed);
        uint64_t lim = atomic_load_explicit(&g_limit, memory_order_relaxed);
        uint64_t now = __rdtsc();
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&g_seq, memory_order_relaxed) == s1 && now >= t0 && now - t0 < lim)
            return w0 + (uint64_t)(((unsigned __int128)(now - t0) * mult) >> 32);
    }
    return slow_now();
}

int ituna_clock_is_tsc(void) {
    (void)ituna_now_ns();
    return atomic_load(&g_mode) == 1;
}
#else
uint64_t ituna_now_ns(void) {
    return sys_now_ns();
}
int ituna_clock_is_tsc(void) {
    return 0;
}
#endif
