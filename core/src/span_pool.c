/* span_pool.c - span memory: ended spans come back from the export thread into
 * a per-tracer lock-free pool, so a span's memory stays hot and is never freed on
 * another core while the next span allocates. */
#include <stdlib.h>

#include "internal.h"

#define SPAN_POOL_SIZE 1024

static void span_release(ituna_span *s) {
    ituna_arena_free(&s->arena);
    if (s->attrs != s->inline_attrs) free(s->attrs);
    free(s->events);
    free(s->links);
}

/* Recycled spans go back to the pool untouched: the export thread only reads a
 * span, and the thread that reuses it does the cleanup, so span memory does not
 * bounce between cores in modified state. */
void ituna_span_free(ituna_span *s) {
    if (s) ituna_span_recycle(s->tracer, s);
}

/* The export thread calls this with the tracer it already knows, so it never
 * reads the span's first cache line just to find the pool. */
void ituna_span_recycle(ituna_tracer *t, ituna_span *s) {
    if (t && t->pool.cells && ituna_ring_push(&t->pool, s, 0)) return;
    span_release(s);
    free(s);
}

ituna_span *ituna_span_alloc(ituna_tracer *t) {
    ituna_span *s = t->pool.cells ? ituna_ring_pop(&t->pool) : NULL;
    if (s)
        span_release(s);
    else
        s = malloc(sizeof *s);
    return s;
}

int ituna_span_pool_init(ituna_tracer *t) {
    return ituna_ring_init(&t->pool, SPAN_POOL_SIZE);
}

void ituna_span_pool_free(ituna_tracer *t) {
    if (!t->pool.cells) return;
    void *p;
    while ((p = ituna_ring_pop(&t->pool)) != NULL) {
        span_release(p);
        free(p);
    }
    ituna_ring_free(&t->pool);
}
