/* fuzz_traceparent.c - libFuzzer target for ituna_traceparent_parse: never crashes,
 * and whatever it accepts formats back and parses to the same ids and sampled flag. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ituna/propagate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ituna_span_context a, b;
    const char *reason = NULL;
    /* a copy without spare bytes after it, so ASan sees any read past len */
    char *s = malloc(size ? size : 1);
    if (!s) return 0;
    memcpy(s, data, size);
    if (ituna_traceparent_parse(s, size, &a, &reason) == ITUNA_OK) {
        char buf[64];
        size_t n = ituna_traceparent_format(&a, buf, sizeof buf);
        if (n != 55) abort();
        if (ituna_traceparent_parse(buf, n, &b, &reason) != ITUNA_OK) abort();
        if (memcmp(a.trace_id, b.trace_id, 16) || memcmp(a.span_id, b.span_id, 8) ||
            (a.trace_flags & ITUNA_TRACE_FLAG_SAMPLED) !=
                b.trace_flags) /* format writes the sampled bit only */
            abort();
    } else if (!reason) {
        abort(); /* a rejection always says why */
    }
    free(s);
    return 0;
}
