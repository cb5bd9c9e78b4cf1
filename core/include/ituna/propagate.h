/* ituna/propagate.h - W3C Trace Context (traceparent, tracestate) and W3C Baggage
 * parse/format, and inject/extract over any string-map carrier. Parsing is strict:
 * an invalid header yields "no context" plus a short static reason, never a
 * half-filled context. */
#ifndef ITUNA_PROPAGATE_H
#define ITUNA_PROPAGATE_H

#include "ituna/common.h"
#include "ituna/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Parse a traceparent value of len bytes. On success fills ids and flags of *out
 * (is_remote = 1, tracestate cleared). On failure *out is zeroed and *reason (if
 * reason != NULL) points to a static string such as "invalid version ff".
 * Thread-safe. */
ITUNA_API ituna_err ituna_traceparent_parse(const char *s, size_t len, ituna_span_context *out,
                                            const char **reason);

/* Format ctx as "00-<trace>-<span>-<flags>" into buf (at least 56 bytes); returns
 * 55, or 0 if ctx is invalid or buf_size is too small. Thread-safe. */
ITUNA_API size_t ituna_traceparent_format(const ituna_span_context *ctx, char *buf, size_t buf_size);

/* Validate a tracestate value (list-members, key/value grammar, at most 32
 * members, duplicate keys invalid) and store its normalised form (OWS removed,
 * empty members dropped, truncated to ITUNA_TRACESTATE_MAX per W3C) in
 * out->tracestate. An invalid value leaves out->tracestate empty and sets *reason.
 * Thread-safe. */
ITUNA_API ituna_err ituna_tracestate_parse(const char *s, size_t len, ituna_span_context *out,
                                           const char **reason);

/* Carrier callbacks: get returns the value for key or NULL (case-insensitive keys
 * are the callback's concern); set stores a copy. */
typedef const char *(*ituna_carrier_get_fn)(void *carrier, const char *key);
typedef void (*ituna_carrier_set_fn)(void *carrier, const char *key, const char *value);

/* Write traceparent (and tracestate when non-empty) for ctx; ctx NULL = the
 * thread's current context. ITUNA_ERR_NOT_FOUND when there is no valid context.
 * Thread-safe. */
ITUNA_API ituna_err ituna_inject(const ituna_span_context *ctx, ituna_carrier_set_fn set, void *carrier);

/* Read traceparent/tracestate from a carrier. Missing or invalid traceparent:
 * ITUNA_ERR_NOT_FOUND or ITUNA_ERR_PARSE, *out zeroed, *reason set. An invalid
 * tracestate alone is dropped (the traceparent still counts), per W3C.
 * Thread-safe. */
ITUNA_API ituna_err ituna_extract(ituna_carrier_get_fn get, void *carrier, ituna_span_context *out,
                                  const char **reason);

/* ---- W3C Baggage ----------------------------------------------------------- */

typedef struct ituna_baggage ituna_baggage;

/* ---- the OTEL_PROPAGATORS set ----------------------------------------------- */

#define ITUNA_PROPAGATOR_TRACECONTEXT 0x1u /* W3C traceparent / tracestate */
#define ITUNA_PROPAGATOR_BAGGAGE      0x2u /* W3C baggage */
#define ITUNA_PROPAGATOR_B3           0x4u /* B3 single header "b3" */
#define ITUNA_PROPAGATOR_B3MULTI      0x8u /* B3 X-B3-TraceId / -SpanId / -Sampled */

/* The set named by a comma-separated list such as OTEL_PROPAGATORS ("tracecontext,
 * baggage,b3"; names any case; "none" and empty entries add nothing). NULL gives the
 * default, tracecontext,baggage. The first unsupported name (e.g. "jaeger") is
 * pointed to by *unknown with its length (not NUL-terminated). Thread-safe. */
ITUNA_API unsigned ituna_propagators_parse(const char *list, const char **unknown, size_t *unknown_len);

/* The tracer's set: [tracer] propagators / OTEL_PROPAGATORS. Thread-safe. */
ITUNA_API unsigned ituna_tracer_propagators(const ituna_tracer *t);

/* Length-aware carrier lookup: the value for key (any case) and its length in *len,
 * or NULL. Values may hold any byte; a NUL is part of the value, never its end. */
typedef const char *(*ituna_carrier_getn_fn)(void *carrier, const char *key, size_t *len);

/* Write ctx (NULL: the thread's current context) with each propagator of props, and
 * bag (may be NULL) with "baggage". ITUNA_ERR_NOT_FOUND when there is no valid
 * context (baggage is still written). Thread-safe. */
ITUNA_API ituna_err ituna_inject_with(unsigned props, const ituna_span_context *ctx, const ituna_baggage *bag,
                                      ituna_carrier_set_fn set, void *carrier);

/* Read a context with the propagators of props (tracecontext, then b3, then b3multi:
 * the first valid one wins) and, when bag is not NULL and "baggage" is in props,
 * add the baggage header's entries to bag (an invalid one is dropped whole). Errors
 * as ituna_extract(). Thread-safe. */
ITUNA_API ituna_err ituna_extract_with(unsigned props, ituna_carrier_getn_fn get, void *carrier,
                                       ituna_span_context *out, ituna_baggage *bag, const char **reason);

/* Parse a B3 single-header value ("<trace>-<span>[-<0|1|d>[-<parent>]]"). A bare
 * sampling decision ("0", "1", "d") is ITUNA_ERR_NOT_FOUND. Thread-safe. */
ITUNA_API ituna_err ituna_b3_parse(const char *s, size_t len, ituna_span_context *out, const char **reason);

/* Empty baggage. The caller owns it and must free it with ituna_baggage_destroy(). Thread-safe. */
ITUNA_API ituna_baggage *ituna_baggage_new(void);
/* Free (NULL is a no-op). One thread at a time per handle. */
ITUNA_API void ituna_baggage_destroy(ituna_baggage *b);

/* Parse a baggage header (percent-decoding values, keeping properties) into b,
 * adding to what is there. Limits: 180 members, 8192 bytes. Invalid input leaves
 * b unchanged and sets *reason. One thread at a time per handle. */
ITUNA_API ituna_err ituna_baggage_parse(ituna_baggage *b, const char *s, size_t len, const char **reason);

/* Set (replace) an entry; value is stored decoded; metadata (properties) may be NULL.
 * One thread at a time per handle. */
ITUNA_API ituna_err ituna_baggage_set(ituna_baggage *b, const char *key, const char *value,
                                      const char *metadata);
/* Decoded value for key or NULL. Borrowed: valid until b changes. Thread-safe if b is not being modified. */
ITUNA_API const char *ituna_baggage_get(const ituna_baggage *b, const char *key);
/* Number of entries; entry i via ituna_baggage_entry(). Borrowed pointers.
 * Thread-safe if b is not being modified. */
ITUNA_API size_t ituna_baggage_count(const ituna_baggage *b);
ITUNA_API int ituna_baggage_entry(const ituna_baggage *b, size_t i, const char **key, const char **value,
                                  const char **metadata);

/* Format as a header value (percent-encoding values). Returns the length needed
 * (excluding NUL); writes at most buf_size bytes, NUL-terminated. Thread-safe for a given b. */
ITUNA_API size_t ituna_baggage_format(const ituna_baggage *b, char *buf, size_t buf_size);

#ifdef __cplusplus
}
#endif
#endif
