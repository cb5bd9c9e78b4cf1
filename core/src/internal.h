/* internal.h - what core/ files share and no binding sees: the finished-span
 * layout the exporters read, the arena spans allocate from, the growable byte
 * buffer, the exporter interface and the tracer's private state. */
#ifndef ITUNA_INTERNAL_H
#define ITUNA_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

#include "ituna/ituna.h"
#include "ring.h"

#define ITUNA_HIDDEN __attribute__((visibility("hidden")))
/* A prefetch GCC keeps: it deletes loops of bare __builtin_prefetch as dead code
 * (seen with GCC 12 -O2), and the empty asm gives each one a side effect. */
#define ITUNA_PREFETCH(p)                                                                                    \
    do {                                                                                                     \
        __builtin_prefetch((p), 0);                                                                          \
        __asm__ volatile("");                                                                                \
    } while (0)
#define ITUNA_PREFETCH_W(p)                                                                                  \
    do {                                                                                                     \
        __builtin_prefetch((p), 1);                                                                          \
        __asm__ volatile("");                                                                                \
    } while (0)

/* Our few bytes of thread-locals use the initial-exec model: a module loaded with
 * dlopen (the Lua and Python bindings) would otherwise call __tls_get_addr on
 * every span. glibc keeps surplus static TLS for exactly this. */
#define ITUNA_TLS _Thread_local __attribute__((tls_model("initial-exec")))

/* Copy a span context's used bytes: the ids, flags and the tracestate up to its NUL,
 * not the whole 512-byte tracestate buffer (its unused tail is left as it was). Hot
 * paths copy contexts whose source was last written on another core: most of a
 * plain struct copy would be cache misses on bytes nobody reads. */
static inline void ituna_ctx_copy(ituna_span_context *dst, const ituna_span_context *src) {
    size_t n = src->tracestate_len <= ITUNA_TRACESTATE_MAX ? src->tracestate_len : ITUNA_TRACESTATE_MAX;
    memcpy(dst, src, offsetof(ituna_span_context, tracestate));
    memcpy(dst->tracestate, src->tracestate, n);
    dst->tracestate[n] = '\0';
}

/* errstr helper: formats into buf when buf/size are usable. Returns err. */
/* 1 if ituna_now_ns() extrapolates from the TSC (clock.c). */
ITUNA_HIDDEN int ituna_clock_is_tsc(void);
ITUNA_HIDDEN ituna_err ituna_set_err(char *buf, size_t size, ituna_err err, const char *fmt, ...)
    ITUNA_PRINTF(4, 5);

/* ---- byte buffer ---------------------------------------------------------- */
typedef struct ituna_buf {
    uint8_t *data;
    size_t len, cap;
    int oom; /* sticky: set when a growth failed; writes then become no-ops */
} ituna_buf;

ITUNA_HIDDEN void ituna_buf_init(ituna_buf *b);
ITUNA_HIDDEN void ituna_buf_free(ituna_buf *b);
ITUNA_HIDDEN int ituna_buf_reserve(ituna_buf *b, size_t extra); /* 0 on OOM */
ITUNA_HIDDEN void ituna_buf_append(ituna_buf *b, const void *p, size_t n);
ITUNA_HIDDEN void ituna_buf_putc(ituna_buf *b, char c);
ITUNA_HIDDEN void ituna_buf_puts(ituna_buf *b, const char *s);
ITUNA_HIDDEN void ituna_buf_printf(ituna_buf *b, const char *fmt, ...) ITUNA_PRINTF(2, 3);

/* ---- per-span arena ------------------------------------------------------- */
typedef struct ituna_arena_chunk {
    struct ituna_arena_chunk *next;
    size_t size; /* body bytes */
} ituna_arena_chunk;

#define ITUNA_ARENA_BLOCK 1024 /* body of a block for small requests */

typedef struct ituna_arena {
    char *cur, *end;           /* free space in the current block */
    ituna_arena_chunk *chunks; /* heap blocks to free with the span */
    ituna_arena_chunk *spare;  /* one standard block kept by a reset, used before malloc */
} ituna_arena;

ITUNA_HIDDEN void *ituna_arena_alloc(ituna_arena *a, size_t n); /* 8-byte aligned, NULL on OOM */
/* ituna_arena_alloc()'s fast path, inline: n bytes (8-byte aligned) from the current
 * block, or NULL when it has no room (then a new block is ituna_arena_alloc()'s job). */
static inline void *ituna_arena_take(ituna_arena *a, size_t n) {
    n = (n + 7) & ~(size_t)7;
    if ((size_t)(a->end - a->cur) < n) return NULL;
    void *p = a->cur;
    a->cur += n;
    return p;
}
ITUNA_HIDDEN char *ituna_arena_strndup(ituna_arena *a, const char *s, size_t n);
ITUNA_HIDDEN void ituna_arena_free(ituna_arena *a);
/* Empty the arena onto mem[size] for reuse, keeping one standard block as the
 * spare (a reused span's next overflow costs no malloc) and freeing the rest. */
ITUNA_HIDDEN void ituna_arena_reset(ituna_arena *a, char *mem, size_t size);

/* ---- stored span data (read by the encoders) ------------------------------ */

/* A stored attribute: strings and arrays live in the span's arena. */
typedef struct ituna_kv {
    const char *key;
    uint32_t key_len;
    uint8_t type; /* ituna_attr_type */
    union {
        struct {
            const char *ptr;
            uint32_t len;
        } s;
        int64_t i;
        double d;
        int b;
        struct {
            const void *items;
            uint32_t count;
        } arr; /* STRING_ARRAY: items is ituna_str[] */
    } v;
} ituna_kv;

typedef struct ituna_str {
    const char *ptr;
    uint32_t len;
} ituna_str;

typedef struct ituna_event {
    const char *name;
    uint32_t name_len;
    uint64_t time_ns;
    ituna_kv *attrs;
    uint32_t n_attrs;
    uint32_t dropped_attrs;
} ituna_event;

typedef struct ituna_link {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t trace_flags;
    uint8_t is_remote;
    const char *tracestate; /* arena, may be NULL */
    uint32_t tracestate_len;
    ituna_kv *attrs;
    uint32_t n_attrs;
    uint32_t dropped_attrs;
} ituna_link;

#define ITUNA_SPAN_INLINE_ATTRS 20
#define ITUNA_SPAN_INLINE_MEM   512

struct ituna_span {
    struct ituna_tracer *tracer;
    const struct ituna_scope *scope; /* NULL: the core's own scope (resource.scope_name) */
    ituna_span_context ctx;
    uint8_t parent_span_id[8];
    uint8_t has_parent;
    uint8_t parent_is_remote;
    uint8_t kind; /* ituna_span_kind */
    uint8_t recording;
    uint8_t status_code; /* ituna_status_code */
    const char *name;    /* arena */
    uint32_t name_len;
    const char *status_msg; /* arena, may be NULL */
    uint32_t status_msg_len;
    uint64_t start_ns, end_ns;

    ituna_kv *attrs;
    uint32_t n_attrs, cap_attrs, dropped_attrs;
    ituna_event *events;
    uint32_t n_events, cap_events, dropped_events;
    ituna_link *links;
    uint32_t n_links, cap_links, dropped_links;

    ituna_arena arena;
    ituna_kv inline_attrs[ITUNA_SPAN_INLINE_ATTRS];
    char inline_mem[ITUNA_SPAN_INLINE_MEM] __attribute__((aligned(8)));
};

/* Set an attribute whose key (ITUNA_LIT_KEY) and/or string value (ITUNA_LIT_VALUE)
 * live for the whole process (string literals): they are referenced, not copied.
 * klen is the key's length. For the core's own spans (Kafka layer). */
#define ITUNA_LIT_KEY   1
#define ITUNA_LIT_VALUE 2
#define ITUNA_LIT_FRESH 4 /* the caller knows the key is not set yet: skip the duplicate scan */
ITUNA_HIDDEN ituna_err ituna_span_set_attr_lit(ituna_span *s, const ituna_attr *attr, size_t klen, int lit);
/* k is a string literal; the inline writers are at the end of this file. */
#define ITUNA_SET_STR_LIT(span, k, val, lit) ituna_span_put_str((span), (k), sizeof(k) - 1, (val), (lit))
#define ITUNA_SET_INT_LIT(span, k, val, lit) ituna_span_put_int((span), (k), sizeof(k) - 1, (val), (lit))

/* ---- attributes (attrs.c) -------------------------------------------------- */
ITUNA_HIDDEN int ituna_attr_ok(const ituna_attr *a);      /* valid key, known type */
ITUNA_HIDDEN size_t ituna_attr_klen(const ituna_attr *a); /* key_len, or strlen(key) when 0 */
/* Copy *in into *out in arena memory, strings cut at a UTF-8 boundary to len_limit
 * (0 = unlimited; *truncated set when cut). lit: ITUNA_LIT_* flags. 0 on OOM. */
ITUNA_HIDDEN int ituna_kv_copy_k(ituna_arena *a, ituna_kv *out, const ituna_attr *in, size_t klen,
                                 uint32_t len_limit, int *truncated, int lit);
ITUNA_HIDDEN int ituna_kv_copy_limit(ituna_arena *a, ituna_kv *out, const ituna_attr *in, uint32_t len_limit,
                                     int *truncated);
/* Copy up to count_limit valid attributes into an arena array; the rest counted in *dropped,
 * cut strings in *truncated. NULL when n is 0 or on OOM. */
ITUNA_HIDDEN ituna_kv *ituna_kv_list_copy(ituna_arena *a, const ituna_attr *attrs, size_t n,
                                          uint32_t count_limit, uint32_t len_limit, uint32_t *n_out,
                                          uint32_t *dropped, uint32_t *truncated);

/* ---- span memory (span_pool.c) ---------------------------------------------- */
/* Ended recording spans kept for reuse: a stack (last returned, first reused:
 * its memory was just read by the export thread, so it is still in cache)
 * under a spinlock held for a few instructions, or one batch's copy. */
typedef struct ituna_span_pool {
    atomic_int lock;
    size_t n, cap;
    ituna_span **items;
} ituna_span_pool;

/* A recording span from t's pool, emptied (attrs, events, links, arena reset; the
 * fields before them left as they were), or a new one; NULL on OOM. */
ITUNA_HIDDEN ituna_span *ituna_span_alloc(struct ituna_tracer *t);
/* A non-recording span: only the fields up to `recording` exist; NULL on OOM. */
ITUNA_HIDDEN ituna_span *ituna_span_alloc_light(void);
/* Free a span (either kind) and everything in its arena. */
ITUNA_HIDDEN void ituna_span_free(ituna_span *s);
/* Same, for recording spans known to belong to tracer t (no read of the spans themselves). */
ITUNA_HIDDEN void ituna_span_recycle(struct ituna_tracer *t, ituna_span *const *spans, size_t n);
ITUNA_HIDDEN int ituna_span_pool_init(struct ituna_tracer *t); /* 0 on OOM */
ITUNA_HIDDEN void ituna_span_pool_free(struct ituna_tracer *t);

/* ---- current context (context.c) ---------------------------------------------- */
/* The thread's current context, NULL when none. Borrowed until the next attach/detach. */
ITUNA_HIDDEN const ituna_span_context *ituna_context_top(void);

/* ---- resource ------------------------------------------------------------- */
typedef struct ituna_resource {
    ituna_kv *attrs; /* strings owned by the arena below */
    uint32_t n_attrs;
    ituna_arena arena;
    char scope_name[32]; /* InstrumentationScope name: "ituna-core" */
    char scope_version[16];
} ituna_resource;

/* An instrumentation scope (scope.c); strings and attributes in its own arena. */
struct ituna_scope {
    const char *name, *version, *schema_url; /* version and schema_url may be NULL */
    uint32_t name_len, version_len, schema_url_len;
    ituna_kv *attrs;
    uint32_t n_attrs;
    ituna_arena arena;
    struct ituna_scope *next;
};

/* Copy one caller's attribute into arena memory (no length limit). 0 on OOM. (attrs.c) */
ITUNA_HIDDEN int ituna_kv_copy(ituna_arena *a, ituna_kv *out, const ituna_attr *in);
/* Free every scope of t (tracer destroy). (scope.c) */
ITUNA_HIDDEN void ituna_scopes_free(struct ituna_tracer *t);
/* Build the resource from cfg (resource.c); *service_name points into it. */
ITUNA_HIDDEN ituna_err ituna_resource_build(ituna_resource *r, const ituna_config *cfg,
                                            const char **service_name, char *errstr, size_t errstr_size);
ITUNA_HIDDEN void ituna_resource_free(ituna_resource *r);

/* ---- exporters ------------------------------------------------------------ */

typedef struct ituna_export_result {
    uint64_t rejected_spans; /* from OTLP partial_success */
    int retries;
    char message[256]; /* why it failed / partial_success error_message */
} ituna_export_result;

/* One exporter. export() runs on the batch worker thread only, so exporters need
 * no locking of their own. */
typedef struct ituna_exporter {
    /* ITUNA_OK when accepted; any other code means the batch was given up on. */
    ituna_err (*export_batch)(struct ituna_exporter *e, ituna_span *const *spans, size_t n,
                              const ituna_resource *res, uint64_t deadline_ns, ituna_export_result *out);
    void (*destroy)(struct ituna_exporter *e); /* flush files, free */
    void *state;
    /* Wall-clock ns set by shutdown (0 = none): an export already running must
     * give up by then, whatever deadline it was handed. */
    _Atomic uint64_t deadline_cap_ns;
    /* Optional: set the cap on inner exporters too (the tee). */
    void (*set_cap)(struct ituna_exporter *e, uint64_t cap_ns);
} ituna_exporter;

/* Cap every export of e, running or to come, at cap_ns (wall clock). */
static inline void ituna_exporter_set_cap(ituna_exporter *e, uint64_t cap_ns) {
    atomic_store(&e->deadline_cap_ns, cap_ns);
    if (e->set_cap) e->set_cap(e, cap_ns);
}

/* The earlier of an export's own deadline and the shutdown cap. */
static inline uint64_t ituna_export_deadline(ituna_exporter *e, uint64_t deadline_ns) {
    uint64_t cap = atomic_load_explicit(&e->deadline_cap_ns, memory_order_relaxed);
    return cap && cap < deadline_ns ? cap : deadline_ns;
}

/* The OTLP/HTTP traces URL the exporter posts to (precedence in export_http.c).
 * The caller frees it; NULL on OOM. */
ITUNA_HIDDEN char *ituna_otlp_http_url(const ituna_config *cfg);

/* The exporter cfg asks for (exporter_config.c); *out NULL for type "none". */
ITUNA_HIDDEN ituna_err ituna_exporter_from_config(const ituna_config *cfg, const char *service_name,
                                                  ituna_exporter **out, char *errstr, size_t errstr_size);

/* Exporter constructors (export_*.c). They read what they need from cfg. */
ITUNA_HIDDEN ituna_err ituna_exporter_otlp_http_create(const ituna_config *cfg, ituna_exporter **out,
                                                       char *errstr, size_t errstr_size);
ITUNA_HIDDEN ituna_err ituna_exporter_file_create(const ituna_config *cfg, ituna_exporter **out, char *errstr,
                                                  size_t errstr_size);
ITUNA_HIDDEN ituna_err ituna_exporter_console_create(const ituna_config *cfg, ituna_exporter **out,
                                                     char *errstr, size_t errstr_size);

/* OTLP encoders (otlp_proto.c, otlp_json.c): one ExportTraceServiceRequest with one
 * ResourceSpans and one ScopeSpans per instrumentation scope among spans[0..n).
 * Appends to out; 0 on OOM. */
ITUNA_HIDDEN int ituna_otlp_encode_proto(ituna_span *const *spans, size_t n, const ituna_resource *res,
                                         ituna_buf *out);
ITUNA_HIDDEN int ituna_otlp_encode_json(ituna_span *const *spans, size_t n, const ituna_resource *res,
                                        ituna_buf *out);

/* ---- config (config.c) ---------------------------------------------------- */
/* Typed reads with defaults for the core's own keys. */
ITUNA_HIDDEN const char *ituna_config_str(const ituna_config *cfg, const char *section, const char *key,
                                          const char *def);
ITUNA_HIDDEN int64_t ituna_config_int(const ituna_config *cfg, const char *section, const char *key,
                                      int64_t def);
ITUNA_HIDDEN double ituna_config_double(const ituna_config *cfg, const char *section, const char *key,
                                        double def);
ITUNA_HIDDEN int ituna_config_bool(const ituna_config *cfg, const char *section, const char *key, int def);

/* Where section.key got its value: "path:line", "env VAR" or "api"; NULL when unset.
 * Borrowed as ituna_config_get(). */
ITUNA_HIDDEN const char *ituna_config_origin(const ituna_config *cfg, const char *section, const char *key);

/* Kind of source that set section.key, ranked as the precedence rule "API over
 * environment over file" needs. */
typedef enum ituna_cfg_source {
    ITUNA_CFG_SRC_UNSET = 0,
    ITUNA_CFG_SRC_FILE = 1,
    ITUNA_CFG_SRC_ENV = 2,
    ITUNA_CFG_SRC_API = 3
} ituna_cfg_source;
ITUNA_HIDDEN ituna_cfg_source ituna_config_source(const ituna_config *cfg, const char *section,
                                                  const char *key);

/* A DELAY key in ms: a plain value as is, a range "LO-HI" drawn uniformly on each
 * call; def when unset or malformed. Thread-safe if cfg is not being modified. */
ITUNA_HIDDEN int64_t ituna_config_delay_ms(const ituna_config *cfg, const char *section, const char *key,
                                           int64_t def);

/* Checks that need several keys: a max-export-batch-size that was set must not
 * exceed max-queue-size (set or default); the message starts with where the batch
 * size came from ("path:line", "env VAR" or "api"). The tracer calls it at creation. */
ITUNA_HIDDEN ituna_err ituna_config_validate(const ituna_config *cfg, char *errstr, size_t errstr_size);

/* ---- ids (ids.c) ---------------------------------------------------------- */
/* Thread-local xoshiro256** seeded from getrandom(); never returns all-zero ids. */
ITUNA_HIDDEN void ituna_random_trace_id(uint8_t out[16]);
ITUNA_HIDDEN void ituna_random_span_id(uint8_t out[8]);
ITUNA_HIDDEN uint64_t ituna_random_u64(void);

/* ---- hex ------------------------------------------------------------------ */
/* Strict lowercase hex decode of 2n chars; 0 on any invalid char. */
ITUNA_HIDDEN int ituna_hex_decode_lower(const char *in, size_t n, uint8_t *out);

/* Create a tracer exporting to a caller-built exporter (tests, C hosts with
 * their own sink). Takes ownership of custom (also on failure). */
ITUNA_HIDDEN ituna_err ituna_tracer_create_ex(const ituna_config *cfg, ituna_exporter *custom,
                                              ituna_tracer **out, char *errstr, size_t errstr_size);

/* ---- batch span processor (batch.c) ---------------------------------------- */
/* The batch processor knows only its sink: the exporter it feeds, the resource
 * sent with each batch, and where spans go once exported or given up on. */
typedef struct ituna_batch ituna_batch;
typedef struct ituna_batch_sink {
    ituna_exporter *exporter;       /* owned by the batch processor from create on */
    const ituna_resource *resource; /* borrowed; outlives the processor */
    /* Each span, once, after export or drop; n at a time (one pool lock per batch). */
    void (*release)(void *ctx, ituna_span *const *spans, size_t n);
    void *ctx;
} ituna_batch_sink;

typedef struct ituna_batch_stats {
    uint64_t spans_exported, spans_export_failed, export_requests, export_retries, export_partial_rejected;
} ituna_batch_stats;

/* Takes ownership of sink->exporter (also on failure). */
ITUNA_HIDDEN ituna_err ituna_batch_create(const ituna_batch_sink *sink, size_t max_queue,
                                          int64_t schedule_delay_ms, int64_t export_timeout_ms,
                                          size_t max_batch, ituna_batch **out, char *errstr,
                                          size_t errstr_size);
/* 1 when queued; 0 when full or shut down (the caller frees the span and counts the drop). */
ITUNA_HIDDEN int ituna_batch_push(ituna_batch *b, ituna_span *s);
ITUNA_HIDDEN ituna_err ituna_batch_flush(ituna_batch *b, int64_t timeout_ms);
/* Drain within timeout_ms, stop the worker, destroy the exporter. Idempotent. */
ITUNA_HIDDEN ituna_err ituna_batch_shutdown(ituna_batch *b, int64_t timeout_ms);
ITUNA_HIDDEN void ituna_batch_destroy(ituna_batch *b);
/* Export counters so far (all zero for NULL). Thread-safe. */
ITUNA_HIDDEN void ituna_batch_get_stats(ituna_batch *b, ituna_batch_stats *out);

/* ---- sampler (sampler.c) ------------------------------------------------------ */
enum ituna_sampler_kind { ITUNA_SAMPLER_ALWAYS_ON, ITUNA_SAMPLER_ALWAYS_OFF, ITUNA_SAMPLER_RATIO };
typedef struct ituna_sampler {
    int kind; /* enum ituna_sampler_kind for roots (and all spans when !parent_based) */
    int parent_based;
    uint64_t ratio_bound; /* traceidratio: sample when low 64 bits (big endian) < bound */
    int ratio_all;        /* ratio >= 1.0 */
} ituna_sampler;
/* From [tracer] sampler / sampler-arg; a clear error for an unknown name or ratio. */
ITUNA_HIDDEN ituna_err ituna_sampler_init(ituna_sampler *s, const ituna_config *cfg, char *errstr,
                                          size_t errstr_size);
ITUNA_HIDDEN int ituna_sampler_should_sample(const ituna_sampler *s, const ituna_span_context *parent,
                                             const uint8_t trace_id[16]);

/* ---- tracer private state (trace.c, span.c) ------------------------------------ */

/* Recording spans started and ended, counted per thread: one slot per thread and
 * tracer, written by its thread alone (a load and a store, no atomic add). An
 * atomic add per span start and end drains the store buffer of the span's writes
 * (perf: 72% of span start's own time was that add). Sums in ituna_tracer_counts. */
typedef struct ituna_count_slot {
    struct ituna_count_slot *next;
    pthread_t owner;
    _Atomic uint64_t started, ended;
} ituna_count_slot;

struct ituna_tracer {
    ituna_config *cfg;
    uint64_t id;              /* unique for the process's life: the thread-local slot cache's key */
    const char *service_name; /* in resource arena */
    ituna_resource resource;
    int disabled;
    ituna_sampler sampler;
    uint32_t attr_count_limit, attr_len_limit, event_count_limit, link_count_limit;
    uint32_t event_attr_limit, link_attr_limit;
    ituna_batch *batch;
    ituna_span_pool pool; /* ended spans recycled: span memory stays hot, no cross-thread free */
    atomic_int shut_down;
    _Atomic unsigned propagators; /* OTEL_PROPAGATORS, parsed at first use (propagators.c); 0 = not yet */
    struct ituna_scope *_Atomic scopes; /* instrumentation scopes, a push-only list (scope.c) */
    /* Written by span start/end: a line of their own, away from the fields every
     * span reads and from the export thread's counters (false sharing). Enqueued
     * is not counted: it is ended - dropped. */
    _Alignas(64) _Atomic uint64_t spans_started, spans_not_sampled, spans_ended, spans_dropped,
        attributes_dropped, attributes_truncated, events_dropped, links_dropped;
    /* spans_started/spans_ended above count only what no slot could take (OOM). */
    ituna_count_slot *_Atomic count_slots; /* push-only list, freed with the tracer */
    /* Spans lost (dropped + export failed + rejected) when flush last reported. */
    _Atomic uint64_t lost_reported;
};

/* This thread's counting slot for t (NULL on OOM: count in t's atomics instead). */
ITUNA_HIDDEN ituna_count_slot *ituna_count_slot_find(ituna_tracer *t);
extern __thread struct ituna_count_cache {
    uint64_t tracer_id;
    ituna_count_slot *slot;
} ituna_count_cache;
static inline ituna_count_slot *ituna_count_slot_get(ituna_tracer *t) {
    if (__builtin_expect(ituna_count_cache.tracer_id == t->id, 1)) return ituna_count_cache.slot;
    return ituna_count_slot_find(t);
}
/* Add d (may be -1 as a wrapping add) to this thread's started/ended count. */
#define ITUNA_COUNT_ADD(t, field, d)                                                                         \
    do {                                                                                                     \
        ituna_count_slot *sl_ = ituna_count_slot_get(t);                                                     \
        if (sl_)                                                                                             \
            atomic_store_explicit(&sl_->field,                                                               \
                                  atomic_load_explicit(&sl_->field, memory_order_relaxed) + (uint64_t)(d),   \
                                  memory_order_relaxed);                                                     \
        else                                                                                                 \
            atomic_fetch_add_explicit(&(t)->spans_##field, (uint64_t)(d), memory_order_relaxed);             \
    } while (0)
ITUNA_HIDDEN void ituna_tracer_counts(ituna_tracer *t, uint64_t *started, uint64_t *ended);

/* ---- the core's own attributes (ITUNA_SET_STR_LIT / ITUNA_SET_INT_LIT) ----------- */
/* A fresh key with room in the array and under the limits (the Kafka layer's
 * per-message attributes) is written in place; anything else takes
 * ituna_span_set_attr_lit(). Spares a message's ~28 attributes two calls each. */
static inline ituna_kv *ituna_span_fresh_kv(ituna_span *s, int lit, size_t vlen) {
    const ituna_tracer *t = s->tracer;
    if (!(lit & ITUNA_LIT_FRESH) || s->n_attrs >= s->cap_attrs || s->n_attrs >= t->attr_count_limit ||
        (t->attr_len_limit && vlen > t->attr_len_limit))
        return NULL;
    return &s->attrs[s->n_attrs];
}

static inline void ituna_span_put_str(ituna_span *s, const char *key, size_t klen, const char *value,
                                      int lit) {
    if (!s->recording) return;
    const char *p = value ? value : "";
    size_t n = strlen(p);
    ituna_kv *kv = ituna_span_fresh_kv(s, lit, n);
    const char *v = p;
    if (kv && !(lit & ITUNA_LIT_VALUE)) {
        char *d = ituna_arena_take(&s->arena, n + 1);
        if (d) {
            memcpy(d, p, n);
            d[n] = '\0';
            v = d;
        } else {
            kv = NULL; /* a new arena block: the general path */
        }
    }
    if (!kv) {
        ituna_attr a = { .key = key, .type = ITUNA_ATTR_STRING, .v.s = { p, n }, .key_len = klen };
        ituna_span_set_attr_lit(s, &a, klen, ITUNA_LIT_KEY | lit);
        return;
    }
    kv->key = key;
    kv->key_len = (uint32_t)klen;
    kv->type = ITUNA_ATTR_STRING;
    kv->v.s.ptr = v;
    kv->v.s.len = (uint32_t)n;
    s->n_attrs++;
}

static inline void ituna_span_put_int(ituna_span *s, const char *key, size_t klen, int64_t value, int lit) {
    if (!s->recording) return;
    ituna_kv *kv = ituna_span_fresh_kv(s, lit, 0);
    if (!kv) {
        ituna_attr a = { .key = key, .type = ITUNA_ATTR_INT, .v.i = value, .key_len = klen };
        ituna_span_set_attr_lit(s, &a, klen, ITUNA_LIT_KEY | lit);
        return;
    }
    kv->key = key;
    kv->key_len = (uint32_t)klen;
    kv->type = ITUNA_ATTR_INT;
    kv->v.i = value;
    s->n_attrs++;
}

#endif
