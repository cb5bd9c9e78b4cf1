/* otlp_util.h - helpers shared by the OTLP encoders and exporters (otlp_util.c,
 * otlp_proto.c, otlp_json.c, export_*.c): UTF-8 checking, the proto's span
 * flag bits, response decoding. Private to core/. */
#ifndef ITUNA_OTLP_UTIL_H
#define ITUNA_OTLP_UTIL_H

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
