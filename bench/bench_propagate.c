/* bench_propagate.c - traceparent format+parse cost (ns per round trip, median
 * of several runs of 1M iterations) against a naive snprintf/sscanf codec run
 * side by side in the same process, plus tracestate and baggage parse figures. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../tests/c/clock_util.h"
#include "internal.h"

#define ITERS 1000000
#define RUNS  9

static volatile uint64_t sink;

/* ---- the peer: what one writes without thinking about speed ---------------- */

static size_t naive_format(const ituna_span_context *c, char *buf, size_t size) {
    uint64_t hi = 0, lo = 0, sid = 0;
    for (int i = 0; i < 8; i++) {
        hi = hi << 8 | c->trace_id[i];
        lo = lo << 8 | c->trace_id[8 + i];
        sid = sid << 8 | c->span_id[i];
    }
    int n = snprintf(buf, size, "00-%016" PRIx64 "%016" PRIx64 "-%016" PRIx64 "-%02x", hi, lo, sid,
                     c->trace_flags & 1u);
    return n == 55 ? 55 : 0;
}

static int naive_parse(const char *s, size_t len, ituna_span_context *c) {
    char th[17] = { 0 }, tl[17] = { 0 }, sh[17] = { 0 };
    unsigned version, flags;
    int end = 0;
    if (len != 55) return 0;
    if (sscanf(s, "%2x-%16[0-9a-f]%16[0-9a-f]-%16[0-9a-f]-%2x%n", &version, th, tl, sh, &flags, &end) != 5 ||
        end != 55 || version == 0xff)
        return 0;
    uint64_t hi = strtoull(th, NULL, 16), lo = strtoull(tl, NULL, 16), sid = strtoull(sh, NULL, 16);
    if ((hi | lo) == 0 || sid == 0) return 0;
    for (int i = 7; i >= 0; i--) {
        c->trace_id[i] = (uint8_t)hi;
        c->trace_id[8 + i] = (uint8_t)lo;
        c->span_id[i] = (uint8_t)sid;
        hi >>= 8, lo >>= 8, sid >>= 8;
    }
    c->trace_flags = (uint8_t)flags;
    c->is_remote = 1;
    c->tracestate_len = 0;
    c->tracestate[0] = '\0';
    return 1;
}

/* ---- runs -------------------------------------------------------------------- */

typedef double (*run_fn)(void);

static ituna_span_context g_ctx;

/* Each iteration formats a context whose id changes, then parses the result, so
 * neither half can be hoisted out of the loop. */
static double run_ituna_roundtrip(void) {
    ituna_span_context c = g_ctx, out;
    char buf[64];
    uint64_t acc = 0, t0 = mono_ns();
    for (uint32_t i = 0; i < ITERS; i++) {
        c.span_id[7] = (uint8_t)i;
        c.span_id[6] = (uint8_t)(i >> 8) | 1;
        size_t n = ituna_traceparent_format(&c, buf, sizeof(buf));
        if (ituna_traceparent_parse(buf, n, &out, NULL) == ITUNA_OK) acc += out.span_id[7];
    }
    uint64_t t1 = mono_ns();
    sink += acc;
    return (double)(t1 - t0) / ITERS;
}

static double run_naive_roundtrip(void) {
    ituna_span_context c = g_ctx, out;
    char buf[64];
    uint64_t acc = 0, t0 = mono_ns();
    for (uint32_t i = 0; i < ITERS; i++) {
        c.span_id[7] = (uint8_t)i;
        c.span_id[6] = (uint8_t)(i >> 8) | 1;
        size_t n = naive_format(&c, buf, sizeof(buf));
        if (naive_parse(buf, n, &out)) acc += out.span_id[7];
    }
    uint64_t t1 = mono_ns();
    sink += acc;
    return (double)(t1 - t0) / ITERS;
}

static double run_ituna_parse(void) {
    char buf[64];
    ituna_traceparent_format(&g_ctx, buf, sizeof(buf));
    ituna_span_context out;
    uint64_t acc = 0, t0 = mono_ns();
    for (uint32_t i = 0; i < ITERS; i++) {
        buf[51] = "0123456789abcdef"[i & 15]; /* vary the input */
        if (ituna_traceparent_parse(buf, 55, &out, NULL) == ITUNA_OK) acc += out.span_id[7];
    }
    uint64_t t1 = mono_ns();
    sink += acc;
    return (double)(t1 - t0) / ITERS;
}

static double run_ituna_format(void) {
    ituna_span_context c = g_ctx;
    char buf[64];
    uint64_t acc = 0, t0 = mono_ns();
    for (uint32_t i = 0; i < ITERS; i++) {
        c.span_id[7] = (uint8_t)i;
        acc += ituna_traceparent_format(&c, buf, sizeof(buf)) + (uint8_t)buf[51];
    }
    uint64_t t1 = mono_ns();
    sink += acc;
    return (double)(t1 - t0) / ITERS;
}

#define TS_ITERS (ITERS / 4)
static double run_tracestate_parse(void) {
    static const char ts[] = "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7,vendor@tenant=opaque-value-1234";
    ituna_span_context out;
    uint64_t acc = 0, t0 = mono_ns();
    for (uint32_t i = 0; i < TS_ITERS; i++) {
        if (ituna_tracestate_parse(ts, sizeof(ts) - 1, &out, NULL) == ITUNA_OK) acc += out.tracestate_len;
    }
    uint64_t t1 = mono_ns();
    sink += acc;
    return (double)(t1 - t0) / TS_ITERS;
}

static double run_baggage_parse(void) {
    static const char bg[] = "userId=alice,serverNode=DF%2028,isProduction=false;p=1";
    uint64_t acc = 0, t0 = mono_ns();
    for (uint32_t i = 0; i < TS_ITERS / 4; i++) {
        ituna_baggage *b = ituna_baggage_new();
        if (b && ituna_baggage_parse(b, bg, sizeof(bg) - 1, NULL) == ITUNA_OK) acc += ituna_baggage_count(b);
        ituna_baggage_destroy(b);
    }
    uint64_t t1 = mono_ns();
    sink += acc;
    return (double)(t1 - t0) / (TS_ITERS / 4);
}

static double median_of(run_fn fn) {
    double r[RUNS];
    fn(); /* warm-up */
    for (int i = 0; i < RUNS; i++) r[i] = fn();
    qsort(r, RUNS, sizeof(r[0]), cmp_double);
    return r[RUNS / 2];
}

int main(void) {
    static const char tp[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    if (ituna_traceparent_parse(tp, 55, &g_ctx, NULL) != ITUNA_OK) {
        fprintf(stderr, "bench_propagate: reference traceparent did not parse\n");
        return 1;
    }
    /* Both codecs must agree before their speed means anything. */
    char a[64], b[64];
    ituna_span_context pa, pb;
    if (ituna_traceparent_format(&g_ctx, a, sizeof(a)) != 55 || naive_format(&g_ctx, b, sizeof(b)) != 55 ||
        strcmp(a, b) != 0 || strcmp(a, tp) != 0 || !naive_parse(tp, 55, &pb) ||
        ituna_traceparent_parse(tp, 55, &pa, NULL) != ITUNA_OK || memcmp(pa.trace_id, pb.trace_id, 16) ||
        memcmp(pa.span_id, pb.span_id, 8)) {
        fprintf(stderr, "bench_propagate: ituna and the naive codec disagree\n");
        return 1;
    }

    /* Interleave the two round trips so drift (frequency, noise) hits both. */
    double ours[RUNS], peer[RUNS];
    run_ituna_roundtrip();
    run_naive_roundtrip();
    for (int i = 0; i < RUNS; i++) {
        ours[i] = run_ituna_roundtrip();
        peer[i] = run_naive_roundtrip();
    }
    qsort(ours, RUNS, sizeof(double), cmp_double);
    qsort(peer, RUNS, sizeof(double), cmp_double);
    double o = ours[RUNS / 2], p = peer[RUNS / 2];

    printf("traceparent format+parse: %.1f ns (target <= 50 ns) %s\n", o, o <= 50.0 ? "OK" : "OVER TARGET");
    printf("naive snprintf/sscanf format+parse (peer): %.1f ns\n", p);
    printf("speedup vs naive: %.1fx\n", p / o);
    printf("traceparent parse only: %.1f ns\n", median_of(run_ituna_parse));
    printf("traceparent format only: %.1f ns\n", median_of(run_ituna_format));
    printf("tracestate parse (3 members, 72 chars): %.1f ns\n", median_of(run_tracestate_parse));
    printf("baggage new+parse+destroy (3 members): %.1f ns\n", median_of(run_baggage_parse));
    printf("(median of %d runs of %d iterations; %d-run spread ours %.1f-%.1f ns, peer %.1f-%.1f ns)\n", RUNS,
           ITERS, RUNS, ours[0], ours[RUNS - 1], peer[0], peer[RUNS - 1]);
    return 0;
}
