/* span_pool.c - span memory. Recording spans: ended spans come back from the
 * export thread into a per-tracer pool (a stack) sized to hold every span the
 * queue can, and are reset, not freed, when reused: a span's memory and its
 * small heap arrays stay allocated, so steady tracing calls no malloc or free.
 * Non-recording spans (SDK disabled, not sampled) are only the context part of
 * a span, taken from a small per-thread free list: no atomics, no allocation
 * once warm. */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "internal.h"

/* Heap arrays a reused span keeps (larger ones are freed, so one odd span does
 * not pin memory for the pool's lifetime). */
#define KEEP_ATTRS  64
#define KEEP_EVENTS 8
#define KEEP_LINKS  4

/* Everything up to and including `recording`: what a non-recording span uses. */
#define LIGHT_SIZE  offsetof(ituna_span, status_code)
#define LIGHT_CACHE 64

/* ---- recording spans ----------------------------------------------------------- */

static void span_containers_init(ituna_span *s) {
    s->attrs = s->inline_attrs;
    s->cap_attrs = ITUNA_SPAN_INLINE_ATTRS;
    s->n_attrs = s->dropped_attrs = 0;
    s->events = NULL;
    s->n_events = s->cap_events = s->dropped_events = 0;
    s->links = NULL;
    s->n_links = s->cap_links = s->dropped_links = 0;
    memset(&s->arena, 0, sizeof s->arena);
    s->arena.cur = s->inline_mem;
    s->arena.end = s->inline_mem + sizeof s->inline_mem;
}

/* Empty a used span's containers for its next life, keeping what is small. */
static void span_reset(ituna_span *s) {
    ituna_arena_reset(&s->arena, s->inline_mem, sizeof s->inline_mem);
    if (s->attrs != s->inline_attrs && s->cap_attrs > KEEP_ATTRS) {
        free(s->attrs);
        s->attrs = s->inline_attrs;
        s->cap_attrs = ITUNA_SPAN_INLINE_ATTRS;
    }
    if (s->cap_events > KEEP_EVENTS) {
        free(s->events);
        s->events = NULL;
        s->cap_events = 0;
    }
    if (s->cap_links > KEEP_LINKS) {
        free(s->links);
        s->links = NULL;
        s->cap_links = 0;
    }
    s->n_attrs = s->dropped_attrs = 0;
    s->n_events = s->dropped_events = 0;
    s->n_links = s->dropped_links = 0;
}

static void span_release(ituna_span *s) {
    ituna_arena_free(&s->arena);
    if (s->attrs != s->inline_attrs) free(s->attrs);
    free(s->events);
    free(s->links);
}

/* ---- non-recording spans ------------------------------------------------------- */

static __thread void *light_head; /* free list linked through the first word */
static __thread unsigned light_n;

/* Recording spans this thread ended without export (no exporter, dropped,
 * discarded) or took from the pool in a batch: reused here without the pool's
 * lock, while still in this core's cache. Span memory belongs to no tracer. */
#define HOT_CACHE  32
#define HOT_REFILL 16
static __thread ituna_span *hot[HOT_CACHE];
static __thread unsigned hot_n;

static __thread int cache_registered;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

/* At thread exit: free the thread's cached spans. */
static void cache_drain(void *unused) {
    (void)unused;
    while (light_head) {
        void *next = *(void **)light_head;
        free(light_head);
        light_head = next;
    }
    light_n = 0;
    while (hot_n) {
        ituna_span *s = hot[--hot_n];
        span_release(s);
        free(s);
    }
}

static void cache_key_init(void) {
    if (pthread_key_create(&cache_key, cache_drain) != 0) cache_key = (pthread_key_t)-1;
}

/* 1 once thread exit will free what this thread caches. */
static int cache_ready(void) {
    if (cache_registered) return 1;
    pthread_once(&cache_once, cache_key_init);
    if (cache_key == (pthread_key_t)-1 || pthread_setspecific(cache_key, &light_head) != 0) return 0;
    cache_registered = 1;
    return 1;
}

static ituna_span *light_get(void) {
    void *p = light_head;
    if (p) {
        light_head = *(void **)p;
        light_n--;
        return p;
    }
    return malloc(LIGHT_SIZE);
}

static void light_put(ituna_span *s) {
    if (light_n < LIGHT_CACHE && cache_ready()) {
        *(void **)s = light_head;
        light_head = s;
        light_n++;
        return;
    }
    free(s);
}

ituna_span *ituna_span_alloc_light(void) {
    return light_get();
}

/* ---- the pool ------------------------------------------------------------------- */

static void pool_lock(ituna_span_pool *p) {
    for (unsigned spins = 0; atomic_exchange_explicit(&p->lock, 1, memory_order_acquire); spins++) {
        /* The holder is a few instructions from done, unless it was preempted. */
        while (atomic_load_explicit(&p->lock, memory_order_relaxed))
            if (++spins > 200) {
                sched_yield();
                spins = 0;
            }
    }
}

static void pool_unlock(ituna_span_pool *p) {
    atomic_store_explicit(&p->lock, 0, memory_order_release);
}

/* ---- both ---------------------------------------------------------------------- */

void ituna_span_free(ituna_span *s) {
    if (!s) return;
    if (!s->recording)
        light_put(s);
    else if (hot_n < HOT_CACHE && cache_ready())
        hot[hot_n++] = s;
    else
        ituna_span_recycle(s->tracer, &s, 1);
}

/* Recycled spans go back to the pool untouched: the export thread only reads a
 * span, and the thread that reuses it does the reset, so span memory does not
 * bounce between cores in modified state. The export thread passes the tracer
 * it already knows, so it never reads a span's first cache line to find the pool. */
void ituna_span_recycle(ituna_tracer *t, ituna_span *const *spans, size_t n) {
    size_t kept = 0;
    if (t && t->pool.items) {
        ituna_span_pool *p = &t->pool;
        pool_lock(p);
        kept = p->cap - p->n < n ? p->cap - p->n : n;
        memcpy(p->items + p->n, spans, kept * sizeof *spans);
        p->n += kept;
        pool_unlock(p);
    }
    for (size_t i = kept; i < n; i++) { /* only past the pool's room: a backlog beyond the queue */
        span_release(spans[i]);
        free(spans[i]);
    }
}

/* A pooled span was last read on another core (the export thread's): ask for the
 * lines a start and the first attributes write, all at once rather than one miss
 * at a time: the ids, the fields from the parent id to the arena (not the unused
 * tracestate bytes between them), 8 attributes and the start of the inline strings.
 * Few enough lines that the prefetches do not wait for free fill buffers. */
static inline void prefetch_for_write(ituna_span *s) {
    char *p = (char *)s;
    ITUNA_PREFETCH_W(p);
    for (size_t off = offsetof(ituna_span, parent_span_id) & ~(size_t)63;
         off < offsetof(ituna_span, inline_attrs) + 8 * sizeof(ituna_kv); off += 64)
        ITUNA_PREFETCH_W(p + off);
    ITUNA_PREFETCH_W(s->inline_mem);
    ITUNA_PREFETCH_W(s->inline_mem + 64);
}

ituna_span *ituna_span_alloc(ituna_tracer *t) {
    ituna_span *s = NULL;
    ituna_span_pool *p = &t->pool;
    int ahead = 0; /* s's lines were asked for when the span before it was taken */
    if (hot_n) {
        s = hot[--hot_n];
        ahead = 1;
    } else if (p->items) {
        /* A few at a time into this thread's cache: one lock for several spans. */
        size_t room = cache_ready() ? HOT_REFILL : 0;
        pool_lock(p);
        if (p->n) s = p->items[--p->n];
        while (s && room-- && p->n) hot[hot_n++] = p->items[--p->n];
        pool_unlock(p);
    }
    if (s) {
        if (!ahead) prefetch_for_write(s);
        /* The next span's lines come over while this one is used: by its start
         * they are here, and its reset does not wait on the other core. */
        if (hot_n) prefetch_for_write(hot[hot_n - 1]);
        span_reset(s);
    } else if ((s = malloc(sizeof *s)) != NULL) {
        span_containers_init(s);
    }
    return s;
}

/* Room for every span the export queue can hold plus the batch being exported:
 * spans the export thread hands back then always find a place, and the hot
 * threads allocate only while the backlog grows past anything seen before. */
int ituna_span_pool_init(ituna_tracer *t) {
    if (t->disabled) return 1; /* no span of this tracer ever records */
    int64_t q = ituna_config_int(t->cfg, "exporter", "max-queue-size", 2048);
    int64_t b = ituna_config_int(t->cfg, "exporter", "max-export-batch-size", 512);
    if (q < 1) q = 1;
    if (b < 1 || b > q) b = q;
    if (q > (int64_t)1 << 24) q = (int64_t)1 << 24;
    t->pool.cap = (size_t)(q + b);
    t->pool.n = 0;
    atomic_init(&t->pool.lock, 0);
    t->pool.items = malloc(t->pool.cap * sizeof *t->pool.items);
    return t->pool.items != NULL;
}

void ituna_span_pool_free(ituna_tracer *t) {
    ituna_span_pool *p = &t->pool;
    if (!p->items) return;
    for (size_t i = 0; i < p->n; i++) {
        span_release(p->items[i]);
        free(p->items[i]);
    }
    free(p->items);
    p->items = NULL;
    p->n = 0;
}
