/* ituna/trace.h - tracer, spans, span contexts, attributes and the thread-local
 * current context. Kinds and status codes carry the OTLP proto's numbers. */
#ifndef ITUNA_TRACE_H
#define ITUNA_TRACE_H

#include "ituna/common.h"
#include "ituna/config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ituna_tracer ituna_tracer;
typedef struct ituna_span ituna_span;
/* An instrumentation scope (OTLP InstrumentationScope): what recorded a span. */
typedef struct ituna_scope ituna_scope;

/* opentelemetry.proto.trace.v1.Span.SpanKind */
typedef enum ituna_span_kind {
    ITUNA_SPAN_KIND_UNSPECIFIED = 0, /* treated as INTERNAL */
    ITUNA_SPAN_KIND_INTERNAL = 1,
    ITUNA_SPAN_KIND_SERVER = 2,
    ITUNA_SPAN_KIND_CLIENT = 3,
    ITUNA_SPAN_KIND_PRODUCER = 4,
    ITUNA_SPAN_KIND_CONSUMER = 5
} ituna_span_kind;

/* opentelemetry.proto.trace.v1.Status.StatusCode */
typedef enum ituna_status_code {
    ITUNA_STATUS_UNSET = 0,
    ITUNA_STATUS_OK = 1,
    ITUNA_STATUS_ERROR = 2
} ituna_status_code;

#define ITUNA_TRACE_FLAG_SAMPLED 0x01
/* Longest tracestate kept; longer ones are truncated per W3C (entries > 128
 * chars first, then from the end). */
#define ITUNA_TRACESTATE_MAX  512
#define ITUNA_TRACEPARENT_LEN 55 /* "00-<32 hex>-<16 hex>-<2 hex>" */

/* A W3C span context. Plain value: copy it freely. An all-zero trace_id or
 * span_id means "invalid / no context". */
typedef struct ituna_span_context {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t trace_flags;                       /* bit 0: sampled */
    uint8_t is_remote;                         /* 1 when extracted from a carrier */
    uint16_t tracestate_len;                   /* 0 = no tracestate */
    char tracestate[ITUNA_TRACESTATE_MAX + 1]; /* NUL-terminated, validated */
} ituna_span_context;

/* 1 if both ids are non-zero. Thread-safe. */
ITUNA_API int ituna_span_context_is_valid(const ituna_span_context *ctx);
/* Lowercase hex of the trace id into buf (33 bytes incl. NUL). Thread-safe. */
ITUNA_API void ituna_trace_id_hex(const ituna_span_context *ctx, char buf[33]);
/* Lowercase hex of the span id into buf (17 bytes incl. NUL). Thread-safe. */
ITUNA_API void ituna_span_id_hex(const ituna_span_context *ctx, char buf[17]);
/* n bytes as 2n lowercase hex chars into out (no NUL): ids a binding keeps as bytes.
 * Thread-safe. */
ITUNA_API void ituna_hex_encode(const uint8_t *in, size_t n, char *out);
/* A span context from a 32-hex trace id and a 16-hex span id (lowercase, not all
 * zero, as W3C requires), flags and an optional tracestate (NULL: none); is_remote
 * is set. ITUNA_ERR_PARSE with *reason (static text) on bad input. Thread-safe. */
ITUNA_API ituna_err ituna_span_context_from_hex(const char *trace_id, const char *span_id, int trace_flags,
                                                const char *tracestate, ituna_span_context *out,
                                                const char **reason);

typedef enum ituna_attr_type {
    ITUNA_ATTR_STRING = 0,
    ITUNA_ATTR_INT = 1,
    ITUNA_ATTR_DOUBLE = 2,
    ITUNA_ATTR_BOOL = 3,
    ITUNA_ATTR_STRING_ARRAY = 4,
    ITUNA_ATTR_INT_ARRAY = 5,
    ITUNA_ATTR_DOUBLE_ARRAY = 6,
    ITUNA_ATTR_BOOL_ARRAY = 7
} ituna_attr_type;

/* An attribute passed in by the caller; ituna copies key and value. Strings are
 * counted (bytes, any content): a value or string-array item with an embedded NUL
 * is kept whole, as OTLP strings may hold one. A key is an identifier: empty or
 * holding a NUL, it is invalid (ituna_attr_key_error) and the attribute refused
 * (ituna_span_set_attr) or dropped and counted in attributes_dropped (lists). */
typedef struct ituna_attr {
    const char *key; /* key_len bytes; NUL-terminated when key_len is 0 */
    ituna_attr_type type;
    union {
        struct {
            const char *ptr;
            size_t len;
        } s;       /* STRING (len may be SIZE_MAX: strlen) */
        int64_t i; /* INT */
        double d;  /* DOUBLE */
        int b;     /* BOOL (0/1) */
        struct {
            const char *const *items;
            size_t count;
            const size_t *lens; /* items[i] is lens[i] bytes; NULL: NUL-terminated items */
        } sarr;                 /* STRING_ARRAY */
        struct {
            const int64_t *items;
            size_t count;
        } iarr; /* INT_ARRAY */
        struct {
            const double *items;
            size_t count;
        } darr; /* DOUBLE_ARRAY */
        struct {
            const int *items;
            size_t count;
        } barr; /* BOOL_ARRAY */
    } v;
    size_t key_len; /* last, so positional initialisers leave it 0 (NUL-terminated key) */
} ituna_attr;

/* Convenience constructors for ituna_attr values (no allocation). Thread-safe. */
ITUNA_API ituna_attr ituna_attr_str(const char *key, const char *value);
ITUNA_API ituna_attr ituna_attr_int(const char *key, int64_t value);
ITUNA_API ituna_attr ituna_attr_double(const char *key, double value);
ITUNA_API ituna_attr ituna_attr_bool(const char *key, int value);
/* A string attribute with a counted key and value (either may hold any byte; a key
 * with a NUL is refused where it is used). Thread-safe. */
ITUNA_API ituna_attr ituna_attr_strn(const char *key, size_t key_len, const char *value, size_t len);
/* NULL when key (len bytes) is a valid attribute key, else why not (static text:
 * empty, or holding a NUL byte). The bindings raise with it. Thread-safe. */
ITUNA_API const char *ituna_attr_key_error(const char *key, size_t len);

/* One item of a binding's list, read for an array attribute: type STRING, INT,
 * DOUBLE or BOOL and the value in the matching member of v (s, i, d or b). */
typedef struct ituna_attr_item {
    ituna_attr_type type;
    union {
        struct {
            const char *ptr;
            size_t len;
        } s;
        int64_t i;
        double d;
        int b;
    } v;
} ituna_attr_item;

/* Reads item i (from 0) of the caller's list into *out: 0, 1 when the value is
 * none of the four types, or -1 when the binding failed (its error is pending). */
typedef int (*ituna_attr_item_fn)(void *list, size_t i, ituna_attr_item *out);

/* Bytes of storage ituna_attr_array_build needs for n items. Thread-safe. */
ITUNA_API size_t ituna_attr_array_size(size_t n);
/* Make a (key left as set) the array of the n items get reads from list, in one
 * pass: all of the first item's type, else *bad is the first item that is not of
 * it (or of none) and 1 is returned. mix_numbers: INT and DOUBLE items together make
 * a DOUBLE_ARRAY (Lua's numbers), else they are two types (Python's). No items: an
 * empty STRING_ARRAY. Items (and string lengths) are written to storage, of
 * ituna_attr_array_size(n) bytes, which with the strings must outlive a's use.
 * Returns 0, 1 (*bad set) or -1 (get failed). Thread-safe. */
ITUNA_API int ituna_attr_array_build(ituna_attr *a, size_t n, ituna_attr_item_fn get, void *list,
                                     int mix_numbers, void *storage, size_t *bad);

/* ---- tracer ---------------------------------------------------------------- */

/* Counters; all monotonic since the tracer was created. */
typedef struct ituna_tracer_stats {
    uint64_t spans_started;       /* recording spans started */
    uint64_t spans_not_sampled;   /* spans the sampler did not record */
    uint64_t spans_ended;         /* recording spans ended */
    uint64_t spans_enqueued;      /* accepted by the export queue */
    uint64_t spans_dropped;       /* dropped because the export queue was full (or after shutdown) */
    uint64_t spans_exported;      /* accepted by the exporter / collector */
    uint64_t spans_export_failed; /* given up after retries */
    uint64_t export_requests;     /* export attempts, retries included */
    uint64_t export_retries;
    uint64_t export_partial_rejected; /* rejected_spans from OTLP partial_success */
    uint64_t attributes_dropped;      /* over the attribute count limit */
    uint64_t attributes_truncated;    /* values cut to the length limit */
    uint64_t events_dropped;
    uint64_t links_dropped;
} ituna_tracer_stats;

/* Create a tracer from cfg (INI + env + overrides already applied; NULL = defaults
 * plus environment). Starts the export thread. The caller owns *out and must
 * destroy it with ituna_tracer_destroy(). Thread-safe. */
ITUNA_API ituna_err ituna_tracer_create(const ituna_config *cfg, ituna_tracer **out, char *errstr,
                                        size_t errstr_size);

/* Export everything ended so far; waits at most timeout_ms (<0: the configured
 * export timeout). ITUNA_ERR_TIMEOUT if spans are still queued; ITUNA_ERR_EXPORT
 * (and a warning logged) if spans were lost since the previous flush (dropped,
 * export failed or rejected: see ituna_tracer_stats). Thread-safe. May block up to timeout_ms. */
ITUNA_API ituna_err ituna_tracer_flush(ituna_tracer *t, int timeout_ms);

/* Flush within timeout_ms, stop the export thread and shut the exporter down.
 * ITUNA_ERR_EXPORT (and a warning logged with the counts) if any span ended by
 * this tracer was lost, ITUNA_ERR_TIMEOUT if the flush timed out; ITUNA_OK only
 * when every ended span was exported. Spans started afterwards do not record;
 * spans ended afterwards are counted as dropped. Idempotent (a second call
 * returns ITUNA_OK). Thread-safe. May block up to timeout_ms. */
ITUNA_API ituna_err ituna_tracer_shutdown(ituna_tracer *t, int timeout_ms);

/* Shut down (if not yet) and free. Every span of this tracer must have ended.
 * Not thread-safe: no other call on t may run concurrently. */
ITUNA_API void ituna_tracer_destroy(ituna_tracer *t);

/* Snapshot of the counters. Thread-safe. Does not block. */
ITUNA_API void ituna_tracer_get_stats(ituna_tracer *t, ituna_tracer_stats *out);

/* service.name of this tracer. Borrowed: valid until ituna_tracer_destroy(). Thread-safe. */
ITUNA_API const char *ituna_tracer_service_name(const ituna_tracer *t);

/* The configuration the tracer was built from (a private copy).
 * Borrowed: valid until ituna_tracer_destroy(). Thread-safe (read-only). */
ITUNA_API const ituna_config *ituna_tracer_config(const ituna_tracer *t);

/* Process-wide default tracer used when a Kafka client is given NULL.
 * Does not take ownership. Thread-safe. */
ITUNA_API void ituna_tracer_set_global(ituna_tracer *t);
/* Borrowed: the tracer passed to ituna_tracer_set_global(), or NULL. Thread-safe. */
ITUNA_API ituna_tracer *ituna_tracer_global(void);

/* The instrumentation scope of t named name (with version and schema_url, each may
 * be NULL) and attributes (copied; only the first call's are kept): one per distinct
 * name/version/schema_url, made on first use. Spans started with it are exported in
 * their own ScopeSpans. Borrowed: valid until ituna_tracer_destroy(). Thread-safe. */
ITUNA_API ituna_err ituna_tracer_scope(ituna_tracer *t, const char *name, const char *version,
                                       const char *schema_url, const ituna_attr *attrs, size_t n_attrs,
                                       const ituna_scope **out);

/* ---- spans ----------------------------------------------------------------- */

/* Options for ituna_span_start(); zero-initialise and set what you need. */
typedef struct ituna_span_options {
    ituna_span_kind kind;             /* 0 = INTERNAL */
    const ituna_span_context *parent; /* explicit parent (e.g. extracted from a message) */
    int root;                         /* 1: ignore the current span, start a new trace */
    uint64_t start_time_ns;           /* 0 = now */
    const ituna_attr *attrs;          /* copied; given to the sampler */
    size_t n_attrs;
    const ituna_span_context *links; /* copied; links without attributes */
    size_t n_links;
    const ituna_scope *scope; /* from ituna_tracer_scope(); NULL = the core's own "ituna-core" */
} ituna_span_options;

/* Start a span. Parent: opts->parent if valid, else (unless opts->root) the
 * thread's current context, else a new trace. Always yields a span, possibly
 * non-recording (not sampled, or SDK disabled) that still carries a context.
 * The span is not made current: see ituna_context_attach(). The caller owns *out
 * and must end it with ituna_span_end() exactly once. Thread-safe. Does not block. */
ITUNA_API ituna_err ituna_span_start(ituna_tracer *t, const char *name, const ituna_span_options *opts,
                                     ituna_span **out);

/* End the span at end_time_ns (0 = now) and hand it to the export queue; never
 * waits on the network or the exporter. Ownership passes to ituna: span is
 * invalid afterwards. Thread-safe with respect to other spans; one thread per span. */
ITUNA_API void ituna_span_end(ituna_span *span, uint64_t end_time_ns);

/* Release a started span instead of ending it: it is not exported and its start is
 * uncounted, as if it had never been started (a context manager that turned out to
 * be a decorator; the sampler keeps no state). Counts of attributes dropped at its
 * start stay. span is invalid afterwards. One thread per span. */
ITUNA_API void ituna_span_discard(ituna_span *span);

/* The span's context. Borrowed: valid until ituna_span_end(). One thread per span. */
ITUNA_API const ituna_span_context *ituna_span_get_context(const ituna_span *span);

/* 1 if the span records (sampled and SDK enabled). One thread per span. */
ITUNA_API int ituna_span_is_recording(const ituna_span *span);

/* Set (or replace, same key) an attribute; over the count limit it is dropped and
 * counted. No-op on a non-recording span. One thread per span. */
ITUNA_API ituna_err ituna_span_set_attr(ituna_span *span, const ituna_attr *attr);
/* Shorthands for ituna_span_set_attr(). One thread per span. */
ITUNA_API ituna_err ituna_span_set_str(ituna_span *span, const char *key, const char *value);
ITUNA_API ituna_err ituna_span_set_int(ituna_span *span, const char *key, int64_t value);
ITUNA_API ituna_err ituna_span_set_double(ituna_span *span, const char *key, double value);
ITUNA_API ituna_err ituna_span_set_bool(ituna_span *span, const char *key, int value);

/* Add an event (time_ns 0 = now) with copied attributes. One thread per span. */
ITUNA_API ituna_err ituna_span_add_event(ituna_span *span, const char *name, const ituna_attr *attrs,
                                         size_t n_attrs, uint64_t time_ns);

/* Add a link with copied attributes. One thread per span. */
ITUNA_API ituna_err ituna_span_add_link(ituna_span *span, const ituna_span_context *ctx,
                                        const ituna_attr *attrs, size_t n_attrs);

/* Set the status. OK is final; ERROR may be overwritten by OK; UNSET is ignored
 * (OpenTelemetry rules). description is kept only with ERROR. One thread per span. */
ITUNA_API void ituna_span_set_status(ituna_span *span, ituna_status_code code, const char *description);

/* Record an "exception" event (exception.type / .message / .stacktrace; any may be
 * NULL). Does not change the status. One thread per span. */
ITUNA_API ituna_err ituna_span_record_exception(ituna_span *span, const char *type, const char *message,
                                                const char *stacktrace);

/* Rename the span. One thread per span. */
ITUNA_API ituna_err ituna_span_update_name(ituna_span *span, const char *name);

/* ---- thread-local current context ----------------------------------------- */

/* Make ctx the calling thread's current context (copied) and return a token for
 * ituna_context_detach(). Spans started on this thread then parent on it.
 * Per-thread: affects only the calling thread. Does not block. */
ITUNA_API ituna_err ituna_context_attach(const ituna_span_context *ctx, int *token);

/* Undo the attach that returned token (and any attaches above it that were left
 * behind). ITUNA_ERR_STATE if token is not on this thread's stack. Per-thread. */
ITUNA_API ituna_err ituna_context_detach(int token);

/* Copy the thread's current context into *out; 0 if there is none. Per-thread. */
ITUNA_API int ituna_context_current(ituna_span_context *out);

#ifdef __cplusplus
}
#endif
#endif
