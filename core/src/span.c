/* span.c - spans: start (parent, ids, sampling), attributes, events, links,
 * status, name, end. End hands the span to the tracer's batch queue and never
 * waits on the exporter. */
#include <stdlib.h>

#include "internal.h"

#define CNT_INC(t, f) atomic_fetch_add_explicit(&(t)->f, 1, memory_order_relaxed)

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
        parent = ituna_context_top();

    uint8_t trace_id[16], span_id[8]; /* ids and sampling decided before any span memory is touched */
    if (parent)
        memcpy(trace_id, parent->trace_id, 16);
    else
        ituna_random_trace_id(trace_id);
    /* SDK disabled: the span is the parent's context unchanged, so what goes
     * downstream points at a span that exists (no id of a span never exported) */
    if (t->disabled && parent)
        memcpy(span_id, parent->span_id, 8);
    else
        ituna_random_span_id(span_id);
    int sampled = !t->disabled && !atomic_load_explicit(&t->shut_down, memory_order_relaxed) &&
                  ituna_sampler_should_sample(&t->sampler, parent, trace_id);
    if (t->disabled && parent) sampled = (parent->trace_flags & ITUNA_TRACE_FLAG_SAMPLED) != 0;
    int recording = sampled && !t->disabled;

    /* A non-recording span is its context alone: no arena, attributes or pool. */
    ituna_span *s = recording ? ituna_span_alloc(t) : ituna_span_alloc_light();
    if (!s) return ITUNA_ERR_NOMEM;
    s->tracer = t;
    s->scope = opts->scope;
    memcpy(s->ctx.trace_id, trace_id, 16);
    memcpy(s->ctx.span_id, span_id, 8);
    s->ctx.trace_flags = sampled ? ITUNA_TRACE_FLAG_SAMPLED : 0;
    s->ctx.is_remote = 0;
    s->ctx.tracestate_len = 0;
    if (parent) {
        memcpy(s->parent_span_id, parent->span_id, 8);
        s->has_parent = 1;
        s->parent_is_remote = parent->is_remote;
        if (parent->tracestate_len) {
            memcpy(s->ctx.tracestate, parent->tracestate, parent->tracestate_len);
            s->ctx.tracestate_len = parent->tracestate_len;
        }
    } else {
        memset(s->parent_span_id, 0, 8);
        s->has_parent = 0;
        s->parent_is_remote = 0;
    }
    s->ctx.tracestate[s->ctx.tracestate_len] = '\0';
    s->kind = (uint8_t)(opts->kind ? opts->kind : ITUNA_SPAN_KIND_INTERNAL);
    s->recording = (uint8_t)recording;
    if (!recording) {
        CNT_INC(t, spans_not_sampled);
        *out = s;
        return ITUNA_OK;
    }
    /* The pool reset the containers; zero what lies between them and the context. */
    memset((char *)s + offsetof(ituna_span, status_code), 0,
           offsetof(ituna_span, attrs) - offsetof(ituna_span, status_code));
    ITUNA_COUNT_ADD(t, started, 1);
    s->start_ns = opts->start_time_ns ? opts->start_time_ns : ituna_now_ns();
    size_t nlen = strlen(name);
    s->name = ituna_arena_strndup(&s->arena, name, nlen);
    s->name_len = s->name ? (uint32_t)nlen : 0;
    for (size_t i = 0; i < opts->n_attrs; i++)
        if (ituna_span_set_attr(s, &opts->attrs[i]) == ITUNA_ERR_INVALID_ARG) { /* a bad key: counted */
            s->dropped_attrs++;
            CNT_INC(t, attributes_dropped);
        }
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
    if (!s || !ituna_attr_ok(attr)) return ITUNA_ERR_INVALID_ARG;
    return ituna_span_set_attr_lit(s, attr, ituna_attr_klen(attr), 0);
}

ituna_err ituna_span_set_attr_lit(ituna_span *s, const ituna_attr *attr, size_t klen, int lit) {
    if (!s->recording) return ITUNA_OK;
    ituna_tracer *t = s->tracer;
    int trunc = 0;
    for (uint32_t i = 0; !(lit & ITUNA_LIT_FRESH) && i < s->n_attrs; i++) {
        ituna_kv *kv = &s->attrs[i];
        if (kv->key_len == klen && memcmp(kv->key, attr->key, klen) == 0) {
            if (!ituna_kv_copy_k(&s->arena, kv, attr, klen, t->attr_len_limit, &trunc, lit))
                return ITUNA_ERR_NOMEM;
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
    if (!ituna_kv_copy_k(&s->arena, &s->attrs[s->n_attrs], attr, klen, t->attr_len_limit, &trunc, lit))
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

/* A caller's attribute list copied into the span's arena under the tracer's limits. */
static ituna_kv *kv_list_copy(ituna_span *s, const ituna_attr *attrs, size_t n, uint32_t limit,
                              uint32_t *n_out, uint32_t *dropped) {
    ituna_tracer *t = s->tracer;
    uint32_t trunc = 0;
    ituna_kv *kv = ituna_kv_list_copy(&s->arena, attrs, n, limit, t->attr_len_limit, n_out, dropped, &trunc);
    if (*dropped) atomic_fetch_add_explicit(&t->attributes_dropped, *dropped, memory_order_relaxed);
    if (trunc) atomic_fetch_add_explicit(&t->attributes_truncated, trunc, memory_order_relaxed);
    return kv;
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

void ituna_span_discard(ituna_span *s) {
    if (!s) return;
    if (s->recording)
        ITUNA_COUNT_ADD(s->tracer, started, -1);
    else
        atomic_fetch_sub_explicit(&s->tracer->spans_not_sampled, 1, memory_order_relaxed);
    ituna_span_free(s);
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
    ITUNA_COUNT_ADD(t, ended, 1);
    if (t->batch && ituna_batch_push(t->batch, s)) return;
    CNT_INC(t, spans_dropped);
    ituna_span_free(s);
}
