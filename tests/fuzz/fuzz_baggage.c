/* fuzz_baggage.c - libFuzzer target for ituna_baggage_parse/format: never crashes,
 * and what it accepts formats to a header that parses back to the same entries. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ituna/propagate.h"

static int same(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size ? size : 1);
    if (!s) return 0;
    memcpy(s, data, size);
    const char *reason = NULL;
    ituna_baggage *a = ituna_baggage_new(), *b = ituna_baggage_new();
    if (!a || !b) abort();
    if (ituna_baggage_parse(a, s, size, &reason) == ITUNA_OK) {
        size_t need = ituna_baggage_format(a, NULL, 0);
        char *out = malloc(need + 1);
        if (!out) abort();
        if (ituna_baggage_format(a, out, need + 1) != need || strlen(out) != need) abort();
        /* the format may exceed the parse limit only if the input was at the limit */
        if (ituna_baggage_parse(b, out, need, &reason) == ITUNA_OK) {
            if (ituna_baggage_count(a) != ituna_baggage_count(b)) abort();
            for (size_t i = 0; i < ituna_baggage_count(a); i++) {
                const char *k, *v, *m;
                if (!ituna_baggage_entry(a, i, &k, &v, &m)) abort();
                if (!same(ituna_baggage_get(b, k), v)) abort();
            }
        }
        free(out);
    } else if (!reason || ituna_baggage_count(a) != 0) {
        abort(); /* invalid input leaves the baggage unchanged, with a reason */
    }
    ituna_baggage_destroy(a);
    ituna_baggage_destroy(b);
    free(s);
    return 0;
}
