/* trace.c - the tracer (resource, sampler, limits, exporter choice) and spans:
 * start, attributes, events, links, status, end. Span end hands the span to the
 * batch queue and never waits on the exporter. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config_schema.h"
#include "export_file.h"
#include "internal.h"

#define CNT_INC(t, f) atomic_fetch_add_explicit(&(t)->f, 1, memory_order_relaxed)

/* Set by export_file.c; weak so the tracer links even where it is absent. */

/* ---- attributes --------------------------------------------------------------- */

/* Designated initialisers zero the rest without a memset call: these sit on the
 * span hot path. */
ituna_attr ituna_attr_str(const char *key, const char *value) {
    return (ituna_attr){ .key = key, .type = ITUNA_ATTR_STRING, .v.s = { value, SIZE_MAX } };
}
ituna_attr ituna_attr_int(const char *key, int64_t value) {
    return (ituna_attr){ .key = key, .type = ITUNA_ATTR_INT, .v.i = value };
}
ituna_attr ituna_attr_double(const char *key, double value) {
    return (ituna_attr){ .key = key, .type = ITUNA_ATTR_DOUBLE, .v.d = value };
}
ituna_attr ituna_attr_bool(const char *key, int value) {
    return (ituna_attr){ .key = key, .type = ITUNA_ATTR_BOOL, .v.b = value ? 1 : 0 };
}

/* Copy attribute *in into *out using arena memory; strings cut to len_limit
 * (0 = unlimited) at a UTF-8 boundary. Returns 0 on OOM or a bad attribute. */
static uint32_t utf8_cut(const char *s, size_t len, size_t limit) {
    if (!limit || len <= limit) return (uint32_t)len;
    size_t n = limit;
    while (n > 0 && ((uint8_t)s[n] & 0xC0) == 0x80) n--; /* don't split a code point */
    return (uint32_t)n;
}

static int kv_copy_k(ituna_arena *a, ituna_kv *out, const ituna_attr *in, size_t klen, uint32_t len_limit,
                     int *truncated, int lit) {
    out->key = (lit & ITUNA_LIT_KEY) ? in->key : ituna_arena_strndup(a, in->key, klen);
    if (!out->key) return 0;
    out->key_len = (uint32_t)klen;
    out->type = (uint8_t)in->type;
    switch (in->type) {
    case ITUNA_ATTR_STRING: {
        const char *p = in->v.s.ptr ? in->v.s.ptr : "";
        size_t len = in->v.s.len == SIZE_MAX ? strlen(p) : in->v.s.len;
        uint32_t n = utf8_cut(p, len, len_limit);
        if (n < len) *truncated = 1;
        out->v.s.ptr = (lit & ITUNA_LIT_VALUE) && n == len ? p : ituna_arena_strndup(a, p, n);
        out->v.s.len = n;
        return out->v.s.ptr != NULL;
    }
    case ITUNA_ATTR_INT: out->v.i = in->v.i; return 1;
    case ITUNA_ATTR_DOUBLE: out->v.d = in->v.d; return 1;
    case ITUNA_ATTR_BOOL: out->v.b = in->v.b ? 1 : 0; return 1;
    case ITUNA_ATTR_STRING_ARRAY: {
        size_t n = in->v.sarr.count;
        ituna_str *items = ituna_arena_alloc(a, n * sizeof *items + 1);
        if (!items) return 0;
        for (size_t i = 0; i < n; i++) {
            const char *p = in->v.sarr.items[i] ? in->v.sarr.items[i] : "";
            size_t len = strlen(p);
            uint32_t cut = utf8_cut(p, len, len_limit);
            if (cut < len) *truncated = 1;
            items[i].ptr = ituna_arena_strndup(a, p, cut);
            items[i].len = cut;
            if (!items[i].ptr) return 0;
        }
        out->v.arr.items = items;
        out->v.arr.count = (uint32_t)n;
        return 1;
    }
    case ITUNA_ATTR_INT_ARRAY:
    case ITUNA_ATTR_DOUBLE_ARRAY: {
        size_t n = in->v.iarr.count, sz = n * 8;
        void *items = ituna_arena_alloc(a, sz + 1);
        if (!items) return 0;
        if (sz)
            memcpy(items,
                   in->type == ITUNA_ATTR_INT_ARRAY ? (const void *)in->v.iarr.items
                                                    : (const void *)in->v.darr.items,
                   sz);
        out->v.arr.items = items;
        out->v.arr.count = (uint32_t)n;
        return 1;
    }
    case ITUNA_ATTR_BOOL_ARRAY: {
        size_t n = in->v.barr.count;
        int *items = ituna_arena_alloc(a, n * sizeof(int) + 1);
        if (!items) return 0;
        for (size_t i = 0; i < n; i++) items[i] = in->v.barr.items[i] ? 1 : 0;
        out->v.arr.items = items;
        out->v.arr.count = (uint32_t)n;
        return 1;
    }
    }
    return 0;
}

static int kv_copy(ituna_arena *a, ituna_kv *out, const ituna_attr *in, uint32_t len_limit, int *truncated) {
    return kv_copy_k(a, out, in, strlen(in->key), len_limit, truncated, 0);
}

int ituna_kv_copy(ituna_arena *a, ituna_kv *out, const ituna_attr *in) {
    int trunc = 0;
    return kv_copy(a, out, in, 0, &trunc);
}

static int attr_ok(const ituna_attr *a) {
    return a && a->key && a->key[0] && (unsigned)a->type <= ITUNA_ATTR_BOOL_ARRAY;
}

/* Copy a caller's attribute list into an arena array, honouring the count limit. */
static ituna_kv *kv_list_copy(ituna_span *s, const ituna_attr *attrs, size_t n, uint32_t limit,
                              uint32_t *n_out, uint32_t *dropped) {
    *n_out = 0;
    *dropped = 0;
    if (!n) return NULL;
    size_t keep = n < limit ? n : limit;
    ituna_kv *kv = ituna_arena_alloc(&s->arena, keep * sizeof *kv + 1);
    if (!kv) return NULL;
    ituna_tracer *t = s->tracer;
    for (size_t i = 0; i < n; i++) {
        int trunc = 0;
        if (!attr_ok(&attrs[i])) continue;
        if (*n_out >= keep) {
            (*dropped)++;
            CNT_INC(t, attributes_dropped);
            continue;
        }
        if (kv_copy(&s->arena, &kv[*n_out], &attrs[i], t->attr_len_limit, &trunc)) (*n_out)++;
        if (trunc) CNT_INC(t, attributes_truncated);
    }
    return kv;
}

/* ---- spans ------------------------------------------------------------------ */

#define SPAN_POOL_SIZE 1024

static void span_release(ituna_span *s) {
    ituna_arena_free(&s->arena);
    if (s->attrs != s->inline_attrs) free(s->attrs);
    free(s->events);
    free(s->links);
}

/* Recycled spans go back to the pool untouched: the export thread only reads a
 * span, and the thread that reuses it does the cleanup, so span memory does not
 * bounce between cores in modified state. */
void ituna_span_free(ituna_span *s) {
    if (s) ituna_span_recycle(s->tracer, s);
}

/* The export thread calls this with the tracer it already knows, so it never
 * reads the span's first cache line just to find the pool. */
void ituna_span_recycle(ituna_tracer *t, ituna_span *s) {
    if (t && t->pool.cells && ituna_ring_push(&t->pool, s, 0)) return;
    span_release(s);
    free(s);
}

int ituna_span_context_is_valid(const ituna_span_context *ctx) {
    if (!ctx) return 0;
    uint64_t a, b, c;
    memcpy(&a, ctx->trace_id, 8);
    memcpy(&b, ctx->trace_id + 8, 8);
    memcpy(&c, ctx->span_id, 8);
    return (a | b) && c;
}

void ituna_trace_id_hex(const ituna_span_context *ctx, char buf[33]) {
    ituna_hex_encode(ctx->trace_id, 16, buf);
    buf[32] = '\0';
}

void ituna_span_id_hex(const ituna_span_context *ctx, char buf[17]) {
    ituna_hex_encode(ctx->span_id, 8, buf);
    buf[16] = '\0';
}

static int sample_ratio(const ituna_tracer *t, const uint8_t trace_id[16]) {
    if (t->ratio_all) return 1;
    uint64_t low = 0;
    for (int i = 8; i < 16; i++) low = low << 8 | trace_id[i];
    return low < t->ratio_bound;
}

static int should_sample(const ituna_tracer *t, const ituna_span_context *parent,
                         const uint8_t trace_id[16]) {
    if (t->parent_based && parent) return (parent->trace_flags & ITUNA_TRACE_FLAG_SAMPLED) != 0;
    switch (t->sampler) {
    case ITUNA_SAMPLER_ALWAYS_ON: return 1;
    case ITUNA_SAMPLER_ALWAYS_OFF: return 0;
    default: return sample_ratio(t, trace_id);
    }
}

/* Thread-local current-context stack. */
#define CTX_STACK_MAX 64
typedef struct {
    ituna_span_context ctx;
    int token;
} ctx_entry;
static ITUNA_TLS ctx_entry *ctx_stack = NULL;
static ITUNA_TLS int ctx_depth = 0;
static ITUNA_TLS int ctx_next_token = 1;

static const ituna_span_context *current_ctx(void) {
    return ctx_depth > 0 ? &ctx_stack[ctx_depth - 1].ctx : NULL;
}

ituna_err ituna_span_start(ituna_tracer *t, const char *name, const ituna_span_options *opts,
                           ituna_span **out) {
    static const ituna_span_options no_opts;
    if (!out) return ITUNA_ERR_INVALID_ARG;
    *out = NULL;
    if (!t || !name) return ITUNA_ERR_INVALID_ARG;
    if (!opts) opts = &no_opts;

    const ituna_span_context *parent = NULL;
    if (opts->parent && ituna_span_context_is_valid(opts->parent))
        parent = opts->parent;
    else if (!opts->root)
        parent = current_ctx();

    ituna_span *s = t->pool.cells ? ituna_ring_pop(&t->pool) : NULL;
    if (s)
        span_release(s);
    else if (!(s = malloc(sizeof *s)))
        return ITUNA_ERR_NOMEM;
    /* Zero the header but not the tracestate buffer or the inline storage:
     * both are written before they are read. */
    memset(s, 0, offsetof(ituna_span, ctx) + offsetof(ituna_span_context, tracestate) + 1);
    memset((char *)s + offsetof(ituna_span, ctx) + sizeof s->ctx, 0,
           offsetof(ituna_span, inline_attrs) - offsetof(ituna_span, ctx) - sizeof s->ctx);
    s->tracer = t;
    s->scope = opts->scope;
    s->arena.cur = s->inline_mem;
    s->arena.end = s->inline_mem + sizeof s->inline_mem;
    s->attrs = s->inline_attrs;
    s->cap_attrs = ITUNA_SPAN_INLINE_ATTRS;

    if (parent) {
        memcpy(s->ctx.trace_id, parent->trace_id, 16);
        memcpy(s->parent_span_id, parent->span_id, 8);
        s->has_parent = 1;
        s->parent_is_remote = parent->is_remote;
        if (parent->tracestate_len) {
            memcpy(s->ctx.tracestate, parent->tracestate, parent->tracestate_len + 1u);
            s->ctx.tracestate_len = parent->tracestate_len;
        }
    } else {
        ituna_random_trace_id(s->ctx.trace_id);
    }
    /* SDK disabled: the span is the parent's context unchanged, so what goes
     * downstream points at a span that exists (no id of a span never exported) */
    if (t->disabled && parent)
        memcpy(s->ctx.span_id, parent->span_id, 8);
    else
        ituna_random_span_id(s->ctx.span_id);
    s->ctx.tracestate[s->ctx.tracestate_len] = '\0';

    int sampled = !t->disabled && !atomic_load_explicit(&t->shut_down, memory_order_relaxed) &&
                  should_sample(t, parent, s->ctx.trace_id);
    if (t->disabled && parent) sampled = (parent->trace_flags & ITUNA_TRACE_FLAG_SAMPLED) != 0;
    s->ctx.trace_flags = sampled ? ITUNA_TRACE_FLAG_SAMPLED : 0;
    s->recording = sampled && !t->disabled;
    s->kind = (uint8_t)(opts->kind ? opts->kind : ITUNA_SPAN_KIND_INTERNAL);
    if (!s->recording) {
        CNT_INC(t, spans_not_sampled);
        *out = s;
        return ITUNA_OK;
    }
    CNT_INC(t, spans_started);
    s->start_ns = opts->start_time_ns ? opts->start_time_ns : ituna_now_ns();
    size_t nlen = strlen(name);
    s->name = ituna_arena_strndup(&s->arena, name, nlen);
    s->name_len = s->name ? (uint32_t)nlen : 0;
    for (size_t i = 0; i < opts->n_attrs; i++) ituna_span_set_attr(s, &opts->attrs[i]);
    for (size_t i = 0; i < opts->n_links; i++) ituna_span_add_link(s, &opts->links[i], NULL, 0);
    *out = s;
    return ITUNA_OK;
}

const ituna_span_context *ituna_span_get_context(const ituna_span *span) {
    return span ? &span->ctx : NULL;
}

int ituna_span_is_recording(const ituna_span *span) {
    return span && span->recording;
}

ituna_err ituna_span_set_attr(ituna_span *s, const ituna_attr *attr) {
    if (!s || !attr_ok(attr)) return ITUNA_ERR_INVALID_ARG;
    return ituna_span_set_attr_lit(s, attr, strlen(attr->key), 0);
}

ituna_err ituna_span_set_attr_lit(ituna_span *s, const ituna_attr *attr, size_t klen, int lit) {
    if (!s->recording) return ITUNA_OK;
    ituna_tracer *t = s->tracer;
    int trunc = 0;
    for (uint32_t i = 0; !(lit & ITUNA_LIT_FRESH) && i < s->n_attrs; i++) {
        ituna_kv *kv = &s->attrs[i];
        if (kv->key_len == klen && memcmp(kv->key, attr->key, klen) == 0) {
            if (!kv_copy_k(&s->arena, kv, attr, klen, t->attr_len_limit, &trunc, lit)) return ITUNA_ERR_NOMEM;
            if (trunc) CNT_INC(t, attributes_truncated);
            return ITUNA_OK;
        }
    }
    if (s->n_attrs >= t->attr_count_limit) {
        s->dropped_attrs++;
        CNT_INC(t, attributes_dropped);
        return ITUNA_OK;
    }
    if (s->n_attrs == s->cap_attrs) {
        uint32_t ncap = s->cap_attrs * 2;
        ituna_kv *n =
            s->attrs == s->inline_attrs ? malloc(ncap * sizeof *n) : realloc(s->attrs, ncap * sizeof *n);
        if (!n) return ITUNA_ERR_NOMEM;
        if (s->attrs == s->inline_attrs) memcpy(n, s->inline_attrs, sizeof s->inline_attrs);
        s->attrs = n;
        s->cap_attrs = ncap;
    }
    if (!kv_copy_k(&s->arena, &s->attrs[s->n_attrs], attr, klen, t->attr_len_limit, &trunc, lit))
        return ITUNA_ERR_NOMEM;
    s->n_attrs++;
    if (trunc) CNT_INC(t, attributes_truncated);
    return ITUNA_OK;
}

ituna_err ituna_span_set_str(ituna_span *s, const char *key, const char *value) {
    ituna_attr a = ituna_attr_str(key, value);
    return ituna_span_set_attr(s, &a);
}
ituna_err ituna_span_set_int(ituna_span *s, const char *key, int64_t value) {
    ituna_attr a = ituna_attr_int(key, value);
    return ituna_span_set_attr(s, &a);
}
ituna_err ituna_span_set_double(ituna_span *s, const char *key, double value) {
    ituna_attr a = ituna_attr_double(key, value);
    return ituna_span_set_attr(s, &a);
}
ituna_err ituna_span_set_bool(ituna_span *s, const char *key, int value) {
    ituna_attr a = ituna_attr_bool(key, value);
    return ituna_span_set_attr(s, &a);
}

/* Make room for one more element in a heap array: doubles *cap (starting at
 * first) when full. 0 on OOM, leaving the array as it was. */
static int grow(void **arr, uint32_t n, uint32_t *cap, uint32_t first, size_t elem) {
    if (n < *cap) return 1;
    uint32_t ncap = *cap ? *cap * 2 : first;
    void *p = realloc(*arr, ncap * elem);
    if (!p) return 0;
    *arr = p;
    *cap = ncap;
    return 1;
}

ituna_err ituna_span_add_event(ituna_span *s, const char *name, const ituna_attr *attrs, size_t n_attrs,
                               uint64_t time_ns) {
    if (!s || !name || (n_attrs && !attrs)) return ITUNA_ERR_INVALID_ARG;
    if (!s->recording) return ITUNA_OK;
    ituna_tracer *t = s->tracer;
    if (s->n_events >= t->event_count_limit) {
        s->dropped_events++;
        CNT_INC(t, events_dropped);
        return ITUNA_OK;
    }
    if (!grow((void **)&s->events, s->n_events, &s->cap_events, 4, sizeof *s->events)) return ITUNA_ERR_NOMEM;
    ituna_event *e = &s->events[s->n_events];
    memset(e, 0, sizeof *e);
    size_t nlen = strlen(name);
    e->name = ituna_arena_strndup(&s->arena, name, nlen);
    if (!e->name) return ITUNA_ERR_NOMEM;
    e->name_len = (uint32_t)nlen;
    e->time_ns = time_ns ? time_ns : ituna_now_ns();
    e->attrs = kv_list_copy(s, attrs, n_attrs, t->event_attr_limit, &e->n_attrs, &e->dropped_attrs);
    s->n_events++;
    return ITUNA_OK;
}

ituna_err ituna_span_add_link(ituna_span *s, const ituna_span_context *ctx, const ituna_attr *attrs,
                              size_t n_attrs) {
    if (!s || !ctx || (n_attrs && !attrs)) return ITUNA_ERR_INVALID_ARG;
    if (!ituna_span_context_is_valid(ctx)) return ITUNA_ERR_INVALID_ARG;
    if (!s->recording) return ITUNA_OK;
    ituna_tracer *t = s->tracer;
    if (s->n_links >= t->link_count_limit) {
        s->dropped_links++;
        CNT_INC(t, links_dropped);
        return ITUNA_OK;
    }
    if (!grow((void **)&s->links, s->n_links, &s->cap_links, 2, sizeof *s->links)) return ITUNA_ERR_NOMEM;
    ituna_link *l = &s->links[s->n_links];
    memset(l, 0, sizeof *l);
    memcpy(l->trace_id, ctx->trace_id, 16);
    memcpy(l->span_id, ctx->span_id, 8);
    l->trace_flags = ctx->trace_flags;
    l->is_remote = ctx->is_remote;
    if (ctx->tracestate_len) {
        l->tracestate = ituna_arena_strndup(&s->arena, ctx->tracestate, ctx->tracestate_len);
        l->tracestate_len = l->tracestate ? ctx->tracestate_len : 0;
    }
    l->attrs = kv_list_copy(s, attrs, n_attrs, t->link_attr_limit, &l->n_attrs, &l->dropped_attrs);
    s->n_links++;
    return ITUNA_OK;
}

void ituna_span_set_status(ituna_span *s, ituna_status_code code, const char *description) {
    if (!s || !s->recording) return;
    if (code == ITUNA_STATUS_UNSET || s->status_code == ITUNA_STATUS_OK) return;
    if (code != ITUNA_STATUS_OK && code != ITUNA_STATUS_ERROR) return;
    s->status_code = (uint8_t)code;
    s->status_msg = NULL;
    s->status_msg_len = 0;
    if (code == ITUNA_STATUS_ERROR && description && description[0]) {
        size_t n = strlen(description);
        s->status_msg = ituna_arena_strndup(&s->arena, description, n);
        s->status_msg_len = s->status_msg ? (uint32_t)n : 0;
    }
}

ituna_err ituna_span_record_exception(ituna_span *s, const char *type, const char *message,
                                      const char *stacktrace) {
    if (!s) return ITUNA_ERR_INVALID_ARG;
    ituna_attr a[3];
    size_t n = 0;
    if (type) a[n++] = ituna_attr_str("exception.type", type);
    if (message) a[n++] = ituna_attr_str("exception.message", message);
    if (stacktrace) a[n++] = ituna_attr_str("exception.stacktrace", stacktrace);
    return ituna_span_add_event(s, "exception", a, n, 0);
}

ituna_err ituna_span_update_name(ituna_span *s, const char *name) {
    if (!s || !name) return ITUNA_ERR_INVALID_ARG;
    if (!s->recording) return ITUNA_OK;
    size_t n = strlen(name);
    const char *p = ituna_arena_strndup(&s->arena, name, n);
    if (!p) return ITUNA_ERR_NOMEM;
    s->name = p;
    s->name_len = (uint32_t)n;
    return ITUNA_OK;
}

void ituna_span_end(ituna_span *s, uint64_t end_time_ns) {
    if (!s) return;
    if (!s->recording) {
        ituna_span_free(s);
        return;
    }
    ituna_tracer *t = s->tracer;
    s->end_ns = end_time_ns ? end_time_ns : ituna_now_ns();
    if (s->end_ns < s->start_ns) s->end_ns = s->start_ns;
    CNT_INC(t, spans_ended);
    if (t->batch && ituna_batch_push(t->batch, s)) return;
    CNT_INC(t, spans_dropped);
    ituna_span_free(s);
}

/* ---- current context ---------------------------------------------------------- */

/* The stack is allocated once per thread and freed when the thread exits (a
 * pthread key destructor), not each time it empties: top-level spans are common. */
static pthread_key_t ctx_key;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;
static void ctx_free(void *p) {
    free(p);
}
static void ctx_key_init(void) {
    pthread_key_create(&ctx_key, ctx_free);
}

ituna_err ituna_context_attach(const ituna_span_context *ctx, int *token) {
    if (!ctx || !token) return ITUNA_ERR_INVALID_ARG;
    if (!ctx_stack) {
        pthread_once(&ctx_once, ctx_key_init);
        ctx_stack = malloc(CTX_STACK_MAX * sizeof *ctx_stack);
        if (!ctx_stack) return ITUNA_ERR_NOMEM;
        pthread_setspecific(ctx_key, ctx_stack);
    }
    if (ctx_depth >= CTX_STACK_MAX) return ITUNA_ERR_STATE;
    ctx_entry *e = &ctx_stack[ctx_depth];
    memcpy(&e->ctx, ctx, offsetof(ituna_span_context, tracestate));
    memcpy(e->ctx.tracestate, ctx->tracestate, ctx->tracestate_len);
    e->ctx.tracestate[ctx->tracestate_len] = '\0';
    e->token = ctx_next_token++;
    if (ctx_next_token <= 0) ctx_next_token = 1;
    ctx_depth++;
    *token = e->token;
    return ITUNA_OK;
}

ituna_err ituna_context_detach(int token) {
    for (int i = ctx_depth - 1; i >= 0; i--) {
        if (ctx_stack[i].token == token) {
            if (i != ctx_depth - 1)
                ituna_log(ITUNA_LOG_DEBUG, "context detached out of order; %d newer entries dropped",
                          ctx_depth - 1 - i);
            ctx_depth = i;
            return ITUNA_OK;
        }
    }
    return ITUNA_ERR_STATE;
}

int ituna_context_current(ituna_span_context *out) {
    const ituna_span_context *c = current_ctx();
    if (!c) return 0;
    if (out) {
        memcpy(out, c, offsetof(ituna_span_context, tracestate));
        memcpy(out->tracestate, c->tracestate, c->tracestate_len);
        out->tracestate[c->tracestate_len] = '\0';
    }
    return 1;
}

/* ---- tracer --------------------------------------------------------------------- */

static _Atomic(ituna_tracer *) global_tracer = NULL;

void ituna_tracer_set_global(ituna_tracer *t) {
    atomic_store(&global_tracer, t);
}
ituna_tracer *ituna_tracer_global(void) {
    return atomic_load(&global_tracer);
}

static int res_add(ituna_resource *r, uint32_t *cap, const char *key, const char *val, int64_t ival,
                   int is_int) {
    for (uint32_t i = 0; i < r->n_attrs; i++) { /* later sources win */
        if (strcmp(r->attrs[i].key, key) == 0) {
            memmove(&r->attrs[i], &r->attrs[i + 1], (r->n_attrs - i - 1) * sizeof *r->attrs);
            r->n_attrs--;
            break;
        }
    }
    if (r->n_attrs == *cap) {
        uint32_t ncap = *cap ? *cap * 2 : 16;
        ituna_kv *n = realloc(r->attrs, ncap * sizeof *n);
        if (!n) return 0;
        r->attrs = n;
        *cap = ncap;
    }
    ituna_attr a = is_int ? ituna_attr_int(key, ival) : ituna_attr_str(key, val);
    int trunc = 0;
    if (!kv_copy(&r->arena, &r->attrs[r->n_attrs], &a, 0, &trunc)) return 0;
    r->n_attrs++;
    return 1;
}

static int pct_decode(char *s) { /* in place; 0 on a bad escape */
    char *w = s;
    for (char *p = s; *p; p++) {
        if (*p == '%') {
            uint8_t v;
            char hex[2] = { p[1], p[2] };
            if (!p[1] || !p[2]) return 0;
            if (hex[0] >= 'A' && hex[0] <= 'F') hex[0] = (char)(hex[0] + 32);
            if (hex[1] >= 'A' && hex[1] <= 'F') hex[1] = (char)(hex[1] + 32);
            if (!ituna_hex_decode_lower(hex, 1, &v)) return 0;
            *w++ = (char)v;
            p += 2;
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
    return 1;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
    return s;
}

/* OTEL_RESOURCE_ATTRIBUTES: "k=v,k2=v2", values percent-encoded. */
static ituna_err add_resource_list(ituna_resource *r, uint32_t *cap, const char *list, char *errstr,
                                   size_t errstr_size) {
    char *copy = strdup(list);
    if (!copy) return ITUNA_ERR_NOMEM;
    ituna_err err = ITUNA_OK;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq) {
            err = ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG,
                                "resource attributes: '%s' is not key=value", item);
            break;
        }
        *eq = '\0';
        char *k = trim(item), *v = trim(eq + 1);
        if (!*k || !pct_decode(v)) {
            err = ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG,
                                "resource attributes: bad entry for key '%s'", k);
            break;
        }
        if (!res_add(r, cap, k, v, 0, 0)) {
            err = ITUNA_ERR_NOMEM;
            break;
        }
    }
    free(copy);
    return err;
}

static ituna_err build_resource(ituna_tracer *t, char *errstr, size_t errstr_size) {
    ituna_resource *r = &t->resource;
    uint32_t cap = 0;
    const ituna_config *cfg = t->cfg;
    char host[256] = "";
    snprintf(r->scope_name, sizeof r->scope_name, "ituna-core");
    snprintf(r->scope_version, sizeof r->scope_version, "%s", ITUNA_VERSION_STRING);
    if (!res_add(r, &cap, "telemetry.sdk.name", "ituna-core", 0, 0) ||
        !res_add(r, &cap, "telemetry.sdk.language", "c", 0, 0) ||
        !res_add(r, &cap, "telemetry.sdk.version", ITUNA_VERSION_STRING, 0, 0) ||
        !res_add(r, &cap, "process.pid", NULL, (int64_t)getpid(), 1))
        return ITUNA_ERR_NOMEM;
    if (gethostname(host, sizeof host - 1) == 0 && host[0] && !res_add(r, &cap, "host.name", host, 0, 0))
        return ITUNA_ERR_NOMEM;
    /* Random per process start: distinguishes instances of one service (--scale). */
    uint8_t u[16];
    ituna_random_trace_id(u);
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    char hex[33], uuid[37];
    ituna_hex_encode(u, 16, hex);
    snprintf(uuid, sizeof uuid, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
    if (!res_add(r, &cap, "service.instance.id", uuid, 0, 0)) return ITUNA_ERR_NOMEM;

    const char *list = ituna_config_str(cfg, "tracer", "resource-attributes", NULL);
    if (list) {
        ituna_err err = add_resource_list(r, &cap, list, errstr, errstr_size);
        if (err) return err;
    }
    size_t it = 0;
    const char *k, *v;
    while (ituna_config_next(cfg, "resource", &it, &k, &v))
        if (!res_add(r, &cap, k, v, 0, 0)) return ITUNA_ERR_NOMEM;

    /* service.name: OTEL_SERVICE_NAME / [tracer] service-name win over resource attributes. */
    const char *svc = ituna_config_str(cfg, "tracer", "service-name", NULL);
    const char *from_res = NULL;
    for (uint32_t i = 0; i < r->n_attrs; i++)
        if (strcmp(r->attrs[i].key, "service.name") == 0) from_res = r->attrs[i].v.s.ptr;
    char fallback[300];
    if (!svc && !from_res) {
        char exe[256] = "";
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        const char *base = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
        snprintf(fallback, sizeof fallback, "unknown_service:%s", base ? base + 1 : "c");
        svc = fallback;
    }
    if (svc && !res_add(r, &cap, "service.name", svc, 0, 0)) return ITUNA_ERR_NOMEM;
    for (uint32_t i = 0; i < r->n_attrs; i++)
        if (strcmp(r->attrs[i].key, "service.name") == 0) t->service_name = r->attrs[i].v.s.ptr;
    return ITUNA_OK;
}

static uint32_t limit_of(const ituna_config *cfg, const char *key, int64_t def) {
    int64_t v = ituna_config_int(cfg, "tracer", key, def);
    if (v <= 0 && strcmp(key, "attribute-value-length-limit") != 0) return 0;
    if (v < 0) return 0;
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static ituna_err make_primary(ituna_tracer *t, ituna_exporter **out, char *errstr, size_t errstr_size);

/* The configured exporter, plus a local JSON-lines copy of each batch when
 * [exporter] copy-file is set beside otlp or console. */
static ituna_err make_exporter(ituna_tracer *t, ituna_exporter **out, char *errstr, size_t errstr_size) {
    ituna_err err = make_primary(t, out, errstr, errstr_size);
    const char *copy = ituna_config_get(t->cfg, "exporter", "copy-file");
    if (err || !*out || !copy || !*copy || ituna_exporter_file_path(*out)) return err;
    ituna_exporter *f = NULL, *tee = NULL;
    err = ituna_exporter_file_open(t->cfg, copy, &f, errstr, errstr_size);
    if (!err) err = ituna_exporter_tee_create(*out, f, &tee, errstr, errstr_size);
    if (err) {
        if (f) f->destroy(f);
        (*out)->destroy(*out);
        *out = NULL;
        return err;
    }
    *out = tee;
    return ITUNA_OK;
}

static ituna_err make_primary(ituna_tracer *t, ituna_exporter **out, char *errstr, size_t errstr_size) {
    const ituna_config *cfg = t->cfg;
    const char *type = ituna_config_str(cfg, "exporter", "type", NULL);
    *out = NULL;
    if (!type) {
        /* Embedded default: an endpoint means OTLP, otherwise a JSON-lines file. */
        if (ituna_config_get(cfg, "exporter", "endpoint") ||
            ituna_config_get(cfg, "exporter", "traces-endpoint"))
            type = "otlp";
        else
            type = "file";
    }
    if (strcmp(type, "none") == 0) return ITUNA_OK;
    if (strcmp(type, "otlp") == 0) return ituna_exporter_otlp_http_create(cfg, out, errstr, errstr_size);
    if (strcmp(type, "console") == 0) return ituna_exporter_console_create(cfg, out, errstr, errstr_size);
    if (strcmp(type, "file") == 0) {
        ituna_err err = ituna_exporter_file_create(cfg, out, errstr, errstr_size);
        if (err == ITUNA_OK && !ituna_config_get(cfg, "exporter", "type"))
            fprintf(stderr, "ituna: no OTLP endpoint set; %s traces go to %s\n", t->service_name,
                    ituna_exporter_file_path(*out));
        return err;
    }
    return ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG, "exporter type '%s' is not supported", type);
}

ituna_err ituna_tracer_create(const ituna_config *cfg, ituna_tracer **out, char *errstr, size_t errstr_size) {
    return ituna_tracer_create_ex(cfg, NULL, out, errstr, errstr_size);
}

ituna_err ituna_tracer_create_ex(const ituna_config *cfg, ituna_exporter *custom, ituna_tracer **out,
                                 char *errstr, size_t errstr_size) {
    if (!out) {
        if (custom) custom->destroy(custom);
        return ITUNA_ERR_INVALID_ARG;
    }
    *out = NULL;
    ituna_tracer *t = calloc(1, sizeof *t);
    if (!t) {
        if (custom) custom->destroy(custom);
        return ITUNA_ERR_NOMEM;
    }
    ituna_err err;
    if (cfg) {
        t->cfg = ituna_config_dup(cfg);
    } else {
        t->cfg = ituna_config_new();
        if (t->cfg && (err = ituna_config_load_env(t->cfg, errstr, errstr_size)) != ITUNA_OK) goto fail;
    }
    if (!t->cfg) {
        err = ITUNA_ERR_NOMEM;
        goto fail;
    }
    cfg = t->cfg;

    /* Only a level actually set (file, env, API) applies: the schema default would
     * undo an earlier ituna_log_set_level() on every tracer creation. */
    const char *lvl = ituna_config_get(cfg, "tracer", "log-level");
    if (lvl) {
        static const char *names[] = { "debug", "info", "warn", "error", "none" };
        for (int i = 0; i < 5; i++)
            if (strcmp(lvl, names[i]) == 0) ituna_log_set_level((ituna_log_level)i);
    }
    if ((err = ituna_config_validate(cfg, errstr, errstr_size)) != ITUNA_OK) goto fail;
    t->disabled = ituna_config_bool(cfg, "tracer", "disabled", 0);
    const char *sampler = ituna_config_str(cfg, "tracer", "sampler", "parentbased_always_on");
    t->parent_based = strncmp(sampler, "parentbased_", 12) == 0;
    const char *root = t->parent_based ? sampler + 12 : sampler;
    if (strcmp(root, "always_on") == 0)
        t->sampler = ITUNA_SAMPLER_ALWAYS_ON;
    else if (strcmp(root, "always_off") == 0)
        t->sampler = ITUNA_SAMPLER_ALWAYS_OFF;
    else if (strcmp(root, "traceidratio") == 0)
        t->sampler = ITUNA_SAMPLER_RATIO;
    else {
        err = ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG, "unknown sampler '%s'", sampler);
        goto fail;
    }
    double ratio = ituna_config_double(cfg, "tracer", "sampler-arg", 1.0);
    if (ratio < 0 || ratio > 1) {
        err = ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG, "sampler-arg %g is outside 0..1", ratio);
        goto fail;
    }
    t->ratio_all = ratio >= 1.0;
    t->ratio_bound = t->ratio_all ? UINT64_MAX : (uint64_t)(ratio * 18446744073709551616.0);

    t->attr_count_limit = limit_of(cfg, "attribute-count-limit", 128);
    t->attr_len_limit = limit_of(cfg, "attribute-value-length-limit", 0);
    t->event_count_limit = limit_of(cfg, "event-count-limit", 128);
    t->link_count_limit = limit_of(cfg, "link-count-limit", 128);
    t->event_attr_limit = limit_of(cfg, "event-attribute-count-limit", 128);
    t->link_attr_limit = limit_of(cfg, "link-attribute-count-limit", 128);

    if ((err = build_resource(t, errstr, errstr_size)) != ITUNA_OK) goto fail;
    if (!ituna_ring_init(&t->pool, SPAN_POOL_SIZE)) {
        err = ITUNA_ERR_NOMEM;
        goto fail;
    }

    if (t->disabled && custom) {
        custom->destroy(custom);
        custom = NULL;
    }
    if (!t->disabled) {
        ituna_exporter *e = custom;
        custom = NULL;
        if (!e && (err = make_exporter(t, &e, errstr, errstr_size)) != ITUNA_OK) goto fail;
        if (e) {
            int64_t q = ituna_config_int(cfg, "exporter", "max-queue-size", 2048);
            int64_t bsz = ituna_config_int(cfg, "exporter", "max-export-batch-size", 512);
            if (q < 1 || bsz < 1) {
                if (e->destroy) e->destroy(e);
                err = ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG,
                                    "queue and batch sizes must be >= 1");
                goto fail;
            }
            /* An explicit batch > queue was refused by ituna_config_validate(); the
             * default batch (512) follows a smaller queue. */
            if (bsz > q) bsz = q;
            err =
                ituna_batch_create(t, e, (size_t)q, ituna_config_int(cfg, "exporter", "schedule-delay", 5000),
                                   ituna_config_int(cfg, "exporter", "export-timeout", 30000), (size_t)bsz,
                                   &t->batch, errstr, errstr_size);
            if (err) goto fail;
        }
    }
    ituna_tracer_propagators(t); /* parsed now: an unsupported name is a warning at start */
    *out = t;
    return ITUNA_OK;
fail:
    if (custom) custom->destroy(custom);
    ituna_ring_free(&t->pool);
    ituna_arena_free(&t->resource.arena);
    free(t->resource.attrs);
    ituna_config_destroy(t->cfg);
    free(t);
    return err;
}

/* Spans that ended and will never reach the collector: dropped (queue full or after
 * shutdown), given up after retries, or rejected by the collector (partial success). */
static uint64_t spans_lost(ituna_tracer *t, uint64_t *dropped, uint64_t *failed, uint64_t *rejected) {
    *dropped = atomic_load(&t->spans_dropped);
    *failed = atomic_load(&t->spans_export_failed);
    *rejected = atomic_load(&t->export_partial_rejected);
    return *dropped + *failed + *rejected;
}

ituna_err ituna_tracer_flush(ituna_tracer *t, int timeout_ms) {
    if (!t) return ITUNA_ERR_INVALID_ARG;
    if (!t->batch) return ITUNA_OK;
    if (timeout_ms < 0) timeout_ms = (int)ituna_config_int(t->cfg, "exporter", "export-timeout", 30000);
    ituna_err rc = ituna_batch_flush(t->batch, timeout_ms);
    uint64_t d, f, r, lost = spans_lost(t, &d, &f, &r);
    uint64_t before = atomic_exchange(&t->lost_reported, lost);
    if (rc == ITUNA_OK && lost > before) {
        ituna_log(ITUNA_LOG_WARN,
                  "flush: %llu span(s) lost since the last flush (%llu in all: %llu dropped, "
                  "%llu export failed, %llu rejected by the collector)",
                  (unsigned long long)(lost - before), (unsigned long long)lost, (unsigned long long)d,
                  (unsigned long long)f, (unsigned long long)r);
        return ITUNA_ERR_EXPORT;
    }
    return rc;
}

ituna_err ituna_tracer_shutdown(ituna_tracer *t, int timeout_ms) {
    if (!t) return ITUNA_ERR_INVALID_ARG;
    if (atomic_exchange(&t->shut_down, 1)) return ITUNA_OK;
    if (!t->batch) return ITUNA_OK;
    if (timeout_ms < 0) timeout_ms = (int)ituna_config_int(t->cfg, "exporter", "export-timeout", 30000);
    ituna_err rc = ituna_batch_shutdown(t->batch, timeout_ms);
    /* After the join every queued span is exported or counted: the verdict on the whole run. */
    uint64_t d, f, r, lost = spans_lost(t, &d, &f, &r);
    atomic_store(&t->lost_reported, lost);
    if (lost) {
        ituna_log(ITUNA_LOG_WARN,
                  "%llu of %llu ended span(s) lost: %llu dropped, %llu export failed, %llu "
                  "rejected by the collector",
                  (unsigned long long)lost, (unsigned long long)atomic_load(&t->spans_ended),
                  (unsigned long long)d, (unsigned long long)f, (unsigned long long)r);
        return ITUNA_ERR_EXPORT;
    }
    return rc;
}

void ituna_tracer_destroy(ituna_tracer *t) {
    if (!t) return;
    ituna_tracer_shutdown(t, -1);
    if (ituna_tracer_global() == t) ituna_tracer_set_global(NULL);
    ituna_batch_destroy(t->batch);
    if (t->pool.cells) {
        void *p;
        while ((p = ituna_ring_pop(&t->pool)) != NULL) {
            span_release(p);
            free(p);
        }
        ituna_ring_free(&t->pool);
    }
    ituna_arena_free(&t->resource.arena);
    free(t->resource.attrs);
    ituna_scopes_free(t);
    ituna_config_destroy(t->cfg);
    free(t);
}

void ituna_tracer_get_stats(ituna_tracer *t, ituna_tracer_stats *o) {
    if (!t || !o) return;
#define LD(f) o->f = atomic_load_explicit(&t->f, memory_order_relaxed)
    LD(spans_started);
    LD(spans_not_sampled);
    LD(spans_dropped);
    LD(spans_ended);
    /* Every span that ended was either enqueued or dropped. */
    o->spans_enqueued = o->spans_ended > o->spans_dropped ? o->spans_ended - o->spans_dropped : 0;
    LD(spans_exported);
    LD(spans_export_failed);
    LD(export_requests);
    LD(export_retries);
    LD(export_partial_rejected);
    LD(attributes_dropped);
    LD(attributes_truncated);
    LD(events_dropped);
    LD(links_dropped);
#undef LD
}

const char *ituna_tracer_service_name(const ituna_tracer *t) {
    return t ? t->service_name : NULL;
}

const ituna_config *ituna_tracer_config(const ituna_tracer *t) {
    return t ? t->cfg : NULL;
}
