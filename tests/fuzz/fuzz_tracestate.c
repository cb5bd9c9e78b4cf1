/* fuzz_tracestate.c - libFuzzer target for ituna_tracestate_parse: never crashes,
 * the stored form fits ITUNA_TRACESTATE_MAX, and a stored form parses to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ituna/propagate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ituna_span_context a, b;
    const char *reason = NULL;
    char *s = malloc(size ? size : 1);
    if (!s) return 0;
    memcpy(s, data, size);
    memset(&a, 0, sizeof a);
    if (ituna_tracestate_parse(s, size, &a, &reason) == ITUNA_OK) {
        size_t n = 0;
        while (n < sizeof a.tracestate && a.tracestate[n]) n++;
        if (n >= sizeof a.tracestate) abort(); /* not NUL-terminated */
        memset(&b, 0, sizeof b);
        if (ituna_tracestate_parse(a.tracestate, n, &b, &reason) != ITUNA_OK) abort();
        if (strcmp(a.tracestate, b.tracestate) != 0) abort(); /* normalising is idempotent */
    } else if (!reason || a.tracestate[0]) {
        abort(); /* invalid: empty and a reason */
    }
    free(s);
    return 0;
}
