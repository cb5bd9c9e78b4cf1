/* otlp_util.h - helpers shared by the OTLP encoders and exporters (otlp_util.c,
 * otlp_proto.c, otlp_json.c, export_*.c): UTF-8 checking, the proto's span
 * flag bits, response decoding. Private to core/. */
#ifndef ITUNA_OTLP_UTIL_H
#define ITUNA_OTLP_UTIL_H

#include <stdlib.h>

#include "internal.h"

/* Element type of a stored BOOL_ARRAY (same as ituna_attr's barr items). */
#define ITUNA_BOOL_ITEM int

/* opentelemetry.proto.trace.v1.SpanFlags */
#define ITUNA_OTLP_FLAG_HAS_IS_REMOTE 0x100u
#define ITUNA_OTLP_FLAG_IS_REMOTE     0x200u

/* Span.flags: W3C trace flags, plus "is-remote known" and the parent's is-remote bit. */
static inline uint32_t ituna_otlp_span_flags(const ituna_span *s) {
    return (uint32_t)s->ctx.trace_flags | ITUNA_OTLP_FLAG_HAS_IS_REMOTE |
           (s->has_parent && s->parent_is_remote ? ITUNA_OTLP_FLAG_IS_REMOTE : 0u);
}
static inline uint32_t ituna_otlp_link_flags(const ituna_link *l) {
    return (uint32_t)l->trace_flags | ITUNA_OTLP_FLAG_HAS_IS_REMOTE |
           (l->is_remote ? ITUNA_OTLP_FLAG_IS_REMOTE : 0u);
}
/* Span kind as sent: UNSPECIFIED (and anything out of range) goes out as INTERNAL. */
static inline unsigned ituna_otlp_kind(const ituna_span *s) {
    return s->kind >= ITUNA_SPAN_KIND_INTERNAL && s->kind <= ITUNA_SPAN_KIND_CONSUMER
               ? s->kind
               : ITUNA_SPAN_KIND_INTERNAL;
}

/* Ask for a span's memory before it is encoded: the export thread reads spans that
 * other cores wrote, so each of its lines is a miss. In two steps, so that no
 * prefetch waits on a miss itself: the header lines of the span two ahead (their
 * addresses need no read), then for the next span, whose header is here by now, its
 * attributes array and what the arena holds inline (names, string values). */
static inline void ituna_otlp_prefetch_header(const ituna_span *s) {
    const char *p = (const char *)s;
    ITUNA_PREFETCH(p); /* ids; the tracestate bytes after them are read only when set */
    for (size_t off = offsetof(ituna_span, parent_span_id) & ~(size_t)63;
         off < offsetof(ituna_span, inline_attrs); off += 64)
        ITUNA_PREFETCH(p + off);
}
static inline void ituna_otlp_prefetch_body(const ituna_span *s) {
    const char *a = (const char *)s->attrs, *ae = a + (size_t)s->n_attrs * sizeof(ituna_kv);
    for (; a < ae; a += 64) ITUNA_PREFETCH(a);
    const char *m = s->inline_mem, *me = m + sizeof s->inline_mem;
    /* Strings in the inline block lie below the arena's cursor when it is there. */
    if (s->arena.cur >= m && s->arena.cur <= me) me = s->arena.cur;
    for (; m < me; m += 64) ITUNA_PREFETCH(m);
}

/* The distinct scopes of spans[0..n) (NULL = the core's own), first seen first, in
 * *out: inline (one scope, the common case) or a malloc'd array the caller frees
 * when it is not `one`. Returns the count, or (size_t)-1 on OOM. */
static inline size_t ituna_otlp_scopes(ituna_span *const *spans, size_t n, const ituna_scope **one,
                                       const ituna_scope ***out) {
    size_t i = 0, k = 0;
    while (i < n && !spans[i]) i++;
    *one = i < n ? spans[i]->scope : NULL;
    *out = (const ituna_scope **)one;
    for (size_t j = i; j < n; j++)
        if (spans[j] && spans[j]->scope != *one) goto many;
    return 1;
many:;
    const ituna_scope **a = malloc(n * sizeof *a);
    if (!a) return (size_t)-1;
    for (size_t j = i; j < n; j++) {
        if (!spans[j]) continue;
        size_t m = 0;
        while (m < k && a[m] != spans[j]->scope) m++;
        if (m == k) a[k++] = spans[j]->scope;
    }
    *out = a;
    return k;
}

/* 1 if s[0..n) is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF). */
ITUNA_HIDDEN int ituna_utf8_valid(const char *s, size_t n);
/* Copy s to dst with each byte of an ill-formed sequence replaced by U+FFFD;
 * dst may be NULL to only measure. Returns the output length (<= 3n). */
ITUNA_HIDDEN size_t ituna_utf8_sanitize(char *dst, const char *s, size_t n);
/* Length of the well-formed UTF-8 sequence at s (1..4), or 0 if ill-formed. */
ITUNA_HIDDEN unsigned ituna_utf8_seq_len(const unsigned char *s, size_t avail);

/* ExportTraceServiceResponse.partial_success from a protobuf / JSON body.
 * 0 on success (absent = 0 rejected, empty message), -1 if the body is malformed. */
ITUNA_HIDDEN int ituna_otlp_decode_partial_success_proto(const void *body, size_t len, int64_t *rejected,
                                                         char *msg, size_t msg_size);
ITUNA_HIDDEN int ituna_otlp_decode_partial_success_json(const void *body, size_t len, int64_t *rejected,
                                                        char *msg, size_t msg_size);

#endif
