/* ring.h - a bounded lock-free multi-producer multi-consumer ring of pointers
 * (Vyukov's sequence-per-cell queue). Used by the export queue and the span pool. */
#ifndef ITUNA_RING_H
#define ITUNA_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ituna_ring_cell {
    _Atomic size_t seq;
    void *ptr;
} ituna_ring_cell;

typedef struct ituna_ring {
    ituna_ring_cell *cells;
    size_t mask;
    _Alignas(64) _Atomic size_t enq;
    _Atomic size_t deq_hint; /* producers' stale copy of deq: saves a shared read per push */
    _Alignas(64) _Atomic size_t deq;
} ituna_ring;

/* capacity is rounded up to a power of two; 0 on OOM. */
int ituna_ring_init(ituna_ring *r, size_t capacity);
void ituna_ring_free(ituna_ring *r);

/* Position + 1 when stored; 0 when full, or when bound != 0 and bound items are
 * already in. */
static inline size_t ituna_ring_push(ituna_ring *r, void *p, size_t bound) {
    size_t pos = atomic_load_explicit(&r->enq, memory_order_relaxed);
    for (;;) {
        if (bound && pos - atomic_load_explicit(&r->deq_hint, memory_order_relaxed) >= bound) {
            size_t d = atomic_load_explicit(&r->deq, memory_order_acquire);
            atomic_store_explicit(&r->deq_hint, d, memory_order_relaxed);
            if (pos - d >= bound) return 0;
        }
        ituna_ring_cell *c = &r->cells[pos & r->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)pos;
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->enq, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                c->ptr = p;
                atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
                return pos + 1;
            }
        } else if (dif < 0) {
            return 0;
        } else {
            pos = atomic_load_explicit(&r->enq, memory_order_relaxed);
        }
    }
}

/* NULL when empty (or the next cell is still being written). */
static inline void *ituna_ring_pop(ituna_ring *r) {
    size_t pos = atomic_load_explicit(&r->deq, memory_order_relaxed);
    for (;;) {
        ituna_ring_cell *c = &r->cells[pos & r->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)(pos + 1);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->deq, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                void *p = c->ptr;
                atomic_store_explicit(&c->seq, pos + r->mask + 1, memory_order_release);
                return p;
            }
        } else if (dif < 0) {
            return NULL;
        } else {
            pos = atomic_load_explicit(&r->deq, memory_order_relaxed);
        }
    }
}

static inline size_t ituna_ring_size(ituna_ring *r) {
    return atomic_load_explicit(&r->enq, memory_order_relaxed) -
           atomic_load_explicit(&r->deq, memory_order_relaxed);
}

#endif
