/* ring.c - allocation for the lock-free ring in ring.h. */
#include <stdlib.h>

#include "ring.h"

int ituna_ring_init(ituna_ring *r, size_t capacity) {
    size_t n = 2;
    while (n < capacity) n <<= 1;
    r->cells = calloc(n, sizeof *r->cells);
    if (!r->cells) return 0;
    for (size_t i = 0; i < n; i++) atomic_init(&r->cells[i].seq, i);
    r->mask = n - 1;
    atomic_init(&r->enq, 0);
    atomic_init(&r->deq, 0);
    return 1;
}

void ituna_ring_free(ituna_ring *r) {
    free(r->cells);
    r->cells = NULL;
}
