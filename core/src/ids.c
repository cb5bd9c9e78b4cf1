/* ids.c - trace and span ids: a thread-local xoshiro256** generator seeded from
 * the OS (getrandom), reseeded after fork so parent and child never share ids. */
#include <sys/random.h>
#include <unistd.h>

#include "internal.h"

static ITUNA_TLS uint64_t rng_s[4];
static ITUNA_TLS pid_t rng_pid = 0;

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(void) {
    uint64_t seed[4] = { 0, 0, 0, 0 };
    ssize_t got = getrandom(seed, sizeof seed, GRND_NONBLOCK);
    if (got != (ssize_t)sizeof seed) {
        /* Early boot without entropy: mix what differs between threads and processes. */
        uint64_t x = ituna_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&seed;
        for (int i = 0; i < 4; i++) seed[i] ^= splitmix64(&x);
    }
    if (!(seed[0] | seed[1] | seed[2] | seed[3])) seed[0] = 1; /* xoshiro must not be all zero */
    for (int i = 0; i < 4; i++) rng_s[i] = seed[i];
    rng_pid = getpid();
}

uint64_t ituna_random_u64(void) {
    if (__builtin_expect(rng_pid == 0, 0)) rng_seed();
    uint64_t *s = rng_s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* A forked child inherits the thread-local state; reseed it. */
static void reseed_after_fork(void) {
    rng_pid = 0;
}
__attribute__((constructor)) static void ids_init(void) {
    pthread_atfork(NULL, NULL, reseed_after_fork);
}

void ituna_random_trace_id(uint8_t out[16]) {
    uint64_t a, b;
    do {
        a = ituna_random_u64();
        b = ituna_random_u64();
    } while (!(a | b));
    memcpy(out, &a, 8);
    memcpy(out + 8, &b, 8);
}

void ituna_random_span_id(uint8_t out[8]) {
    uint64_t a;
    do a = ituna_random_u64();
    while (!a);
    memcpy(out, &a, 8);
}
