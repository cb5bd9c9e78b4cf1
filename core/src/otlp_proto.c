/* otlp_proto.c - OTLP protobuf encoding of an ExportTraceServiceRequest, written
 * by hand (field numbers from opentelemetry-proto: collector/trace/v1,
 * trace/v1, common/v1, resource/v1), plus decoding of the response's
 * partial_success.
 *
 * The message is written back to front into the tail of the output buffer's
 * free space: a nested message's length is then known when its header is
 * written, so there is no sizing pass. The finished bytes are moved down to
 * out->len at the end. Strings that are not valid UTF-8 (proto3 requires it)
 * get U+FFFD for each bad byte. */
#include <stdlib.h>

#include "internal.h"
#include "otlp_util.h"

/* wire types */
enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/* Reverse writer over out's spare capacity: bytes live in [p, end), end =
 * data + cap. Positions are kept as distances from end, which survive growth. */
typedef struct rw {
    ituna_buf *b;
    size_t base; /* out->len at the start; never written below */
    uint8_t *p;
    int oom;
} rw;

static inline size_t rw_used(const rw *w) {
    return (size_t)((w->b->data + w->b->cap) - w->p);
}

static int rw_grow(rw *w, size_t n) {
    if (w->oom) return 0;
    size_t used = w->p ? rw_used(w) : 0;
    size_t old_cap = w->b->cap;
    size_t want = (used + n) * 2;
    if (want < 4096) want = 4096;
    /* reserve() guarantees cap - len >= extra; len stays at base while encoding. */
    if (!ituna_buf_reserve(w->b, want)) {
        w->oom = 1;
        return 0;
    }
    uint8_t *end = w->b->data + w->b->cap;
    if (used) memmove(end - used, w->b->data + old_cap - used, used);
    w->p = end - used;
    return 1;
}

/* Room for n more bytes below p. */
static inline int rw_need(rw *w, size_t n) {
    if (__builtin_expect(w->b->data != NULL && (size_t)(w->p - (w->b->data + w->base)) >= n, 1)) return 1;
    return rw_grow(w, n);
}

static inline unsigned varint_size(uint64_t v) {
    unsigned n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static inline void put_varint(rw *w, uint64_t v) {
    if (!rw_need(w, 10)) return;
    if (v < 0x80) {
        *--w->p = (uint8_t)v;
        return;
    }
    unsigned n = varint_size(v);
    w->p -= n;
    uint8_t *q = w->p;
    while (v >= 0x80) {
        *q++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *q = (uint8_t)v;
}

static inline void put_tag(rw *w, unsigned field, unsigned wt) {
    put_varint(w, ((uint64_t)field << 3) | wt);
}

static inline void put_raw(rw *w, const void *src, size_t n) {
    if (!rw_need(w, n)) return;
    w->p -= n;
    if (n) memcpy(w->p, src, n);
}

static inline void put_fixed64(rw *w, unsigned field, uint64_t v) {
    if (!rw_need(w, 8)) return;
    w->p -= 8;
    for (int i = 0; i < 8; i++) w->p[i] = (uint8_t)(v >> (8 * i));
    put_tag(w, field, WT_I64);
}

static inline void put_fixed32(rw *w, unsigned field, uint32_t v) {
    if (!rw_need(w, 4)) return;
    w->p -= 4;
    for (int i = 0; i < 4; i++) w->p[i] = (uint8_t)(v >> (8 * i));
    put_tag(w, field, WT_I32);
}

static inline void put_uvarint_field(rw *w, unsigned field, uint64_t v) {
    put_varint(w, v);
    put_tag(w, field, WT_VARINT);
}

static inline void put_bytes_field(rw *w, unsigned field, const void *src, size_t n) {
    put_raw(w, src, n);
    put_varint(w, n);
    put_tag(w, field, WT_LEN);
}

/* A string field, with invalid UTF-8 replaced. Written even when empty (callers
 * skip empty optional strings themselves; oneof members must be present). */
static void put_str_field(rw *w, unsigned field, const char *s, size_t n) {
    if (__builtin_expect(ituna_utf8_valid(s, n), 1)) {
        put_bytes_field(w, field, s, n);
        return;
    }
    size_t m = ituna_utf8_sanitize(NULL, s, n);
    if (!rw_need(w, m)) return;
    w->p -= m;
    ituna_utf8_sanitize((char *)w->p, s, n);
    put_varint(w, m);
    put_tag(w, field, WT_LEN);
}

/* Close a nested message started when rw_used() was mark. */
static inline void close_msg(rw *w, unsigned field, size_t mark) {
    if (w->oom) return;
    put_varint(w, rw_used(w) - mark);
    put_tag(w, field, WT_LEN);
}

/* ---- AnyValue / KeyValue (common.proto) ------------------------------------ */

static void put_anyvalue_scalar_str(rw *w, const char *s, size_t n) {
    put_str_field(w, 1, s, n);
}

static void put_array(rw *w, const ituna_kv *kv) {
    size_t mark = rw_used(w);
    uint32_t c = kv->v.arr.count;
    /* ArrayValue.values = 1, each an AnyValue; written last to first. */
    for (uint32_t i = c; i-- > 0;) {
        size_t m2 = rw_used(w);
        switch (kv->type) {
        case ITUNA_ATTR_STRING_ARRAY: {
            const ituna_str *it = (const ituna_str *)kv->v.arr.items + i;
            put_anyvalue_scalar_str(w, it->ptr ? it->ptr : "", it->ptr ? it->len : 0);
            break;
        }
        case ITUNA_ATTR_INT_ARRAY:
            put_uvarint_field(w, 3, (uint64_t)((const int64_t *)kv->v.arr.items)[i]);
            break;
        case ITUNA_ATTR_DOUBLE_ARRAY: {
            double d = ((const double *)kv->v.arr.items)[i];
            uint64_t u;
            memcpy(&u, &d, 8);
            put_fixed64(w, 4, u);
            break;
        }
        case ITUNA_ATTR_BOOL_ARRAY:
            put_uvarint_field(w, 2, ((const ITUNA_BOOL_ITEM *)kv->v.arr.items)[i] ? 1 : 0);
            break;
        default: break;
        }
        close_msg(w, 1, m2);
    }
    close_msg(w, 5, mark); /* AnyValue.array_value */
}

/* One KeyValue as field `field` of the enclosing message. */
static void put_kv(rw *w, unsigned field, const ituna_kv *kv) {
    size_t mark = rw_used(w);
    size_t vmark = rw_used(w);
    switch (kv->type) {
    case ITUNA_ATTR_STRING:
        put_anyvalue_scalar_str(w, kv->v.s.ptr ? kv->v.s.ptr : "", kv->v.s.ptr ? kv->v.s.len : 0);
        break;
    case ITUNA_ATTR_INT: put_uvarint_field(w, 3, (uint64_t)kv->v.i); break;
    case ITUNA_ATTR_DOUBLE: {
        uint64_t u;
        memcpy(&u, &kv->v.d, 8);
        put_fixed64(w, 4, u);
        break;
    }
    case ITUNA_ATTR_BOOL: put_uvarint_field(w, 2, kv->v.b ? 1 : 0); break;
    case ITUNA_ATTR_STRING_ARRAY:
    case ITUNA_ATTR_INT_ARRAY:
    case ITUNA_ATTR_DOUBLE_ARRAY:
    case ITUNA_ATTR_BOOL_ARRAY: put_array(w, kv); break;
    default: break; /* unknown type: an empty AnyValue */
    }
    close_msg(w, 2, vmark); /* KeyValue.value */
    if (kv->key_len) put_str_field(w, 1, kv->key, kv->key_len);
    close_msg(w, field, mark);
}

static void put_kvs(rw *w, unsigned field, const ituna_kv *kvs, uint32_t n) {
    for (uint32_t i = n; i-- > 0;) put_kv(w, field, &kvs[i]);
}

/* ---- Span (trace.proto) ----------------------------------------------------- */

static void put_event(rw *w, const ituna_event *ev) {
    size_t mark = rw_used(w);
    if (ev->dropped_attrs) put_uvarint_field(w, 4, ev->dropped_attrs);
    put_kvs(w, 3, ev->attrs, ev->n_attrs);
    if (ev->name_len) put_str_field(w, 2, ev->name, ev->name_len);
    put_fixed64(w, 1, ev->time_ns);
    close_msg(w, 11, mark); /* Span.events */
}

static void put_link(rw *w, const ituna_link *l) {
    size_t mark = rw_used(w);
    put_fixed32(w, 6, ituna_otlp_link_flags(l));
    if (l->dropped_attrs) put_uvarint_field(w, 5, l->dropped_attrs);
    put_kvs(w, 4, l->attrs, l->n_attrs);
    if (l->tracestate && l->tracestate_len) put_str_field(w, 3, l->tracestate, l->tracestate_len);
    put_bytes_field(w, 2, l->span_id, 8);
    put_bytes_field(w, 1, l->trace_id, 16);
    close_msg(w, 13, mark); /* Span.links */
}

static void put_span(rw *w, const ituna_span *s) {
    size_t mark = rw_used(w);
    put_fixed32(w, 16, ituna_otlp_span_flags(s));
    if (s->status_code != ITUNA_STATUS_UNSET || (s->status_msg && s->status_msg_len)) {
        size_t sm = rw_used(w);
        if (s->status_code) put_uvarint_field(w, 3, s->status_code);
        if (s->status_msg && s->status_msg_len) put_str_field(w, 2, s->status_msg, s->status_msg_len);
        close_msg(w, 15, sm);
    }
    if (s->dropped_links) put_uvarint_field(w, 14, s->dropped_links);
    for (uint32_t i = s->n_links; i-- > 0;) put_link(w, &s->links[i]);
    if (s->dropped_events) put_uvarint_field(w, 12, s->dropped_events);
    for (uint32_t i = s->n_events; i-- > 0;) put_event(w, &s->events[i]);
    if (s->dropped_attrs) put_uvarint_field(w, 10, s->dropped_attrs);
    put_kvs(w, 9, s->attrs, s->n_attrs);
    put_fixed64(w, 8, s->end_ns);
    put_fixed64(w, 7, s->start_ns);
    put_uvarint_field(w, 6, ituna_otlp_kind(s));
    if (s->name_len) put_str_field(w, 5, s->name, s->name_len);
    if (s->has_parent) put_bytes_field(w, 4, s->parent_span_id, 8);
    if (s->ctx.tracestate_len) put_str_field(w, 3, s->ctx.tracestate, s->ctx.tracestate_len);
    put_bytes_field(w, 2, s->ctx.span_id, 8);
    put_bytes_field(w, 1, s->ctx.trace_id, 16);
    close_msg(w, 2, mark); /* ScopeSpans.spans */
}

int ituna_otlp_encode_proto(ituna_span *const *spans, size_t n, const ituna_resource *res, ituna_buf *out) {
    if (!out || out->oom) return 0;
    rw w = { .b = out, .base = out->len, .p = NULL, .oom = 0 };
    if (!rw_grow(&w, 256 + n * 160)) return 0;

    size_t rs_mark = rw_used(&w);
    const ituna_scope *one, **scopes;
    size_t nsc = ituna_otlp_scopes(spans, n, &one, &scopes);
    if (nsc == (size_t)-1) {
        out->oom = 1;
        return 0;
    }
    for (size_t k = nsc; k-- > 0;) {
        /* ResourceSpans.scope_spans = 2 */
        const ituna_scope *sc = scopes[k];
        size_t ss_mark = rw_used(&w);
        if (sc && sc->schema_url_len) put_str_field(&w, 3, sc->schema_url, sc->schema_url_len);
        for (size_t i = n; i-- > 0;) {
            if (i > 1 && spans[i - 2]) ituna_otlp_prefetch_header(spans[i - 2]);
            if (i && spans[i - 1]) ituna_otlp_prefetch_body(spans[i - 1]);
            if (spans[i] && spans[i]->scope == sc) put_span(&w, spans[i]);
        }
        /* ScopeSpans.scope = 1: InstrumentationScope {name = 1, version = 2, attributes = 3} */
        size_t scm = rw_used(&w);
        if (sc) {
            put_kvs(&w, 3, sc->attrs, sc->n_attrs);
            if (sc->version_len) put_str_field(&w, 2, sc->version, sc->version_len);
            if (sc->name_len) put_str_field(&w, 1, sc->name, sc->name_len);
        } else if (res) {
            size_t vl = strnlen(res->scope_version, sizeof res->scope_version);
            size_t nl = strnlen(res->scope_name, sizeof res->scope_name);
            if (vl) put_str_field(&w, 2, res->scope_version, vl);
            if (nl) put_str_field(&w, 1, res->scope_name, nl);
        }
        if (sc || res) close_msg(&w, 1, scm);
        close_msg(&w, 2, ss_mark);
    }
    if (scopes != &one) free(scopes);
    if (res) {
        /* ResourceSpans.resource = 1: Resource {attributes = 1} */
        size_t rm = rw_used(&w);
        put_kvs(&w, 1, res->attrs, res->n_attrs);
        close_msg(&w, 1, rm);
    }
    close_msg(&w, 1, rs_mark); /* ExportTraceServiceRequest.resource_spans = 1 */

    if (w.oom) {
        out->len = w.base;
        out->oom = 1;
        return 0;
    }
    size_t used = rw_used(&w);
    memmove(out->data + w.base, w.p, used);
    out->len = w.base + used;
    return 1;
}

/* ---- response decoding ------------------------------------------------------ */

static int get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v) {
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*pp >= end) return 0;
        uint8_t c = *(*pp)++;
        r |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = r;
            return 1;
        }
    }
    return 0;
}

/* Skip a field of wire type wt; 0 when malformed. */
static int skip_field(const uint8_t **pp, const uint8_t *end, unsigned wt) {
    uint64_t v;
    switch (wt) {
    case WT_VARINT: return get_varint(pp, end, &v);
    case WT_I64:
        if (end - *pp < 8) return 0;
        *pp += 8;
        return 1;
    case WT_I32:
        if (end - *pp < 4) return 0;
        *pp += 4;
        return 1;
    case WT_LEN:
        if (!get_varint(pp, end, &v) || v > (uint64_t)(end - *pp)) return 0;
        *pp += v;
        return 1;
    default: return 0;
    }
}

int ituna_otlp_decode_partial_success_proto(const void *body, size_t len, int64_t *rejected, char *msg,
                                            size_t msg_size) {
    const uint8_t *p = body, *end = p + len;
    *rejected = 0;
    if (msg_size) msg[0] = '\0';
    while (p < end) {
        uint64_t tag;
        if (!get_varint(&p, end, &tag)) return -1;
        if (tag == ((1u << 3) | WT_LEN)) { /* ExportTraceServiceResponse.partial_success */
            uint64_t l;
            if (!get_varint(&p, end, &l) || l > (uint64_t)(end - p)) return -1;
            const uint8_t *q = p, *qe = p + l;
            p = qe;
            while (q < qe) {
                uint64_t t2, v;
                if (!get_varint(&q, qe, &t2)) return -1;
                if (t2 == ((1u << 3) | WT_VARINT)) {
                    if (!get_varint(&q, qe, &v)) return -1;
                    *rejected = (int64_t)v;
                } else if (t2 == ((2u << 3) | WT_LEN)) {
                    if (!get_varint(&q, qe, &v) || v > (uint64_t)(qe - q)) return -1;
                    if (msg_size) {
                        size_t c = v < msg_size - 1 ? (size_t)v : msg_size - 1;
                        memcpy(msg, q, c);
                        msg[c] = '\0';
                    }
                    q += v;
                } else if (!skip_field(&q, qe, (unsigned)(t2 & 7))) {
                    return -1;
                }
            }
        } else if (!skip_field(&p, end, (unsigned)(tag & 7))) {
            return -1;
        }
    }
    return 0;
}
