/* otlp_json.c - OTLP JSON encoding of an ExportTraceServiceRequest (the OTLP
 * spec's JSON rules: camelCase names, trace/span ids as lowercase hex, enums as
 * integers, 64-bit integers as decimal strings, default values omitted), and
 * decoding of a JSON response's partialSuccess. Hand-written for speed; strings
 * are escaped per RFC 8259 with ill-formed UTF-8 replaced by U+FFFD. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "otlp_util.h"

/* Free room for n more bytes; 0 (and b->oom) when memory ran out. */
static inline int need(ituna_buf *b, size_t n) {
    if (__builtin_expect(b->cap - b->len >= n && !b->oom, 1)) return 1;
    if (b->oom) return 0;
    return ituna_buf_reserve(b, n < 4096 ? 4096 : n);
}

static inline void raw(ituna_buf *b, const char *s, size_t n) {
    if (!need(b, n)) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
}
#define LIT(b, s) raw((b), (s), sizeof(s) - 1)

static inline void ch(ituna_buf *b, char c) {
    if (!need(b, 1)) return;
    b->data[b->len++] = (uint8_t)c;
}

/* 0: copy, 1: escape, 2: start of a multi-byte sequence (validated). */
static const uint8_t kind_tab[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

static const char hexd[] = "0123456789abcdef";

/* A JSON string literal, quotes included. */
static void jstr(ituna_buf *b, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    ch(b, '"');
    while (p < end) {
        const unsigned char *run = p;
        while (p < end && kind_tab[*p] == 0) p++;
        if (p > run) raw(b, (const char *)run, (size_t)(p - run));
        if (p >= end) break;
        if (kind_tab[*p] == 1) {
            char e[6] = { '\\', 0, 0, 0, 0, 0 };
            size_t el = 2;
            switch (*p) {
            case '"': e[1] = '"'; break;
            case '\\': e[1] = '\\'; break;
            case '\n': e[1] = 'n'; break;
            case '\r': e[1] = 'r'; break;
            case '\t': e[1] = 't'; break;
            case '\b': e[1] = 'b'; break;
            case '\f': e[1] = 'f'; break;
            default:
                e[1] = 'u';
                e[2] = '0';
                e[3] = '0';
                e[4] = hexd[*p >> 4];
                e[5] = hexd[*p & 15];
                el = 6;
            }
            raw(b, e, el);
            p++;
        } else {
            unsigned l = ituna_utf8_seq_len(p, (size_t)(end - p));
            if (l) {
                raw(b, (const char *)p, l);
                p += l;
            } else {
                LIT(b, "\\ufffd");
                p++;
            }
        }
    }
    ch(b, '"');
}

/* "00".."ff" and "00".."99": two characters per table lookup (ids, timestamps). */
static char hex_pairs[512], dec_pairs[200];

static void init_pairs(void) {
    for (int i = 0; i < 256; i++) {
        hex_pairs[2 * i] = hexd[i >> 4];
        hex_pairs[2 * i + 1] = hexd[i & 15];
    }
    for (int i = 0; i < 100; i++) {
        dec_pairs[2 * i] = (char)('0' + i / 10);
        dec_pairs[2 * i + 1] = (char)('0' + i % 10);
    }
}

static void jhex(ituna_buf *b, const uint8_t *id, size_t n) {
    if (!need(b, 2 * n + 2)) return;
    char *o = (char *)b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++, o += 2) memcpy(o, hex_pairs + 2 * id[i], 2);
    *o++ = '"';
    b->len += 2 * n + 2;
}

static void ju64(ituna_buf *b, uint64_t v) {
    char tmp[20];
    int i = 20;
    while (v >= 100) {
        i -= 2;
        memcpy(tmp + i, dec_pairs + 2 * (v % 100), 2);
        v /= 100;
    }
    if (v >= 10) {
        i -= 2;
        memcpy(tmp + i, dec_pairs + 2 * v, 2);
    } else {
        tmp[--i] = (char)('0' + v);
    }
    raw(b, tmp + i, (size_t)(20 - i));
}

/* int64 as a quoted decimal string (proto3 JSON for 64-bit integers). */
static void ji64_str(ituna_buf *b, int64_t v) {
    ch(b, '"');
    if (v < 0) {
        ch(b, '-');
        ju64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        ju64(b, (uint64_t)v);
    }
    ch(b, '"');
}

static void ju64_str(ituna_buf *b, uint64_t v) {
    ch(b, '"');
    ju64(b, v);
    ch(b, '"');
}

/* Shortest of %.15g/%.17g that reads back exactly; NaN and infinities as the
 * strings proto3 JSON uses for them. */
static void jdouble(ituna_buf *b, double d) {
    if (isnan(d)) {
        LIT(b, "\"NaN\"");
        return;
    }
    if (isinf(d)) {
        if (d > 0)
            LIT(b, "\"Infinity\"");
        else
            LIT(b, "\"-Infinity\"");
        return;
    }
    /* Fast path for values with at most 6 decimals (durations in ms from integer ns):
     * r / 10^6 printed exactly parses to the correctly rounded quotient, which is d. */
    if (fabs(d) < 1e12) {
        double scaled = d * 1e6;
        int64_t r = (int64_t)(scaled < 0 ? scaled - 0.5 : scaled + 0.5);
        if ((double)r / 1e6 == d) {
            uint64_t u = r < 0 ? (uint64_t)0 - (uint64_t)r : (uint64_t)r, frac = u % 1000000;
            if (r < 0) ch(b, '-');
            ju64(b, u / 1000000);
            if (frac) {
                char f[7];
                int len = 6;
                for (int i = 5; i >= 0; i--, frac /= 10) f[i] = (char)('0' + frac % 10);
                while (f[len - 1] == '0') len--;
                ch(b, '.');
                raw(b, f, (size_t)len);
            }
            return;
        }
    }
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%.15g", d);
    if (strtod(tmp, NULL) != d) n = snprintf(tmp, sizeof tmp, "%.17g", d);
    raw(b, tmp, (size_t)n);
}

static void janyvalue_items(ituna_buf *b, const ituna_kv *kv) {
    LIT(b, "{\"arrayValue\":{");
    if (kv->v.arr.count) {
        LIT(b, "\"values\":[");
        for (uint32_t i = 0; i < kv->v.arr.count; i++) {
            if (i) ch(b, ',');
            switch (kv->type) {
            case ITUNA_ATTR_STRING_ARRAY: {
                const ituna_str *it = (const ituna_str *)kv->v.arr.items + i;
                LIT(b, "{\"stringValue\":");
                jstr(b, it->ptr ? it->ptr : "", it->ptr ? it->len : 0);
                break;
            }
            case ITUNA_ATTR_INT_ARRAY:
                LIT(b, "{\"intValue\":");
                ji64_str(b, ((const int64_t *)kv->v.arr.items)[i]);
                break;
            case ITUNA_ATTR_DOUBLE_ARRAY:
                LIT(b, "{\"doubleValue\":");
                jdouble(b, ((const double *)kv->v.arr.items)[i]);
                break;
            default:
                if (((const ITUNA_BOOL_ITEM *)kv->v.arr.items)[i])
                    LIT(b, "{\"boolValue\":true");
                else
                    LIT(b, "{\"boolValue\":false");
                break;
            }
            ch(b, '}');
        }
        ch(b, ']');
    }
    LIT(b, "}}");
}

static void jkv(ituna_buf *b, const ituna_kv *kv) {
    LIT(b, "{\"key\":");
    jstr(b, kv->key ? kv->key : "", kv->key ? kv->key_len : 0);
    LIT(b, ",\"value\":");
    switch (kv->type) {
    case ITUNA_ATTR_STRING:
        LIT(b, "{\"stringValue\":");
        jstr(b, kv->v.s.ptr ? kv->v.s.ptr : "", kv->v.s.ptr ? kv->v.s.len : 0);
        ch(b, '}');
        break;
    case ITUNA_ATTR_INT:
        LIT(b, "{\"intValue\":");
        ji64_str(b, kv->v.i);
        ch(b, '}');
        break;
    case ITUNA_ATTR_DOUBLE:
        LIT(b, "{\"doubleValue\":");
        jdouble(b, kv->v.d);
        ch(b, '}');
        break;
    case ITUNA_ATTR_BOOL:
        if (kv->v.b)
            LIT(b, "{\"boolValue\":true}");
        else
            LIT(b, "{\"boolValue\":false}");
        break;
    case ITUNA_ATTR_STRING_ARRAY:
    case ITUNA_ATTR_INT_ARRAY:
    case ITUNA_ATTR_DOUBLE_ARRAY:
    case ITUNA_ATTR_BOOL_ARRAY: janyvalue_items(b, kv); break;
    default: LIT(b, "{}");
    }
    ch(b, '}');
}

/* ,"attributes":[...] when n > 0 (a leading comma: attributes never come first). */
static void jattrs(ituna_buf *b, const ituna_kv *kvs, uint32_t n) {
    if (!n) return;
    LIT(b, ",\"attributes\":[");
    for (uint32_t i = 0; i < n; i++) {
        if (i) ch(b, ',');
        jkv(b, &kvs[i]);
    }
    ch(b, ']');
}

static void jcount(ituna_buf *b, const char *lit, size_t lit_len, uint32_t v) {
    if (!v) return;
    raw(b, lit, lit_len);
    ju64(b, v);
}
#define JCOUNT(b, lit, v) jcount((b), (lit), sizeof(lit) - 1, (v))

static void jspan(ituna_buf *b, const ituna_span *s) {
    LIT(b, "{\"traceId\":");
    jhex(b, s->ctx.trace_id, 16);
    LIT(b, ",\"spanId\":");
    jhex(b, s->ctx.span_id, 8);
    if (s->ctx.tracestate_len) {
        LIT(b, ",\"traceState\":");
        jstr(b, s->ctx.tracestate, s->ctx.tracestate_len);
    }
    if (s->has_parent) {
        LIT(b, ",\"parentSpanId\":");
        jhex(b, s->parent_span_id, 8);
    }
    LIT(b, ",\"flags\":");
    ju64(b, ituna_otlp_span_flags(s));
    LIT(b, ",\"name\":");
    jstr(b, s->name ? s->name : "", s->name ? s->name_len : 0);
    LIT(b, ",\"kind\":");
    ju64(b, ituna_otlp_kind(s));
    LIT(b, ",\"startTimeUnixNano\":");
    ju64_str(b, s->start_ns);
    LIT(b, ",\"endTimeUnixNano\":");
    ju64_str(b, s->end_ns);
    jattrs(b, s->attrs, s->n_attrs);
    JCOUNT(b, ",\"droppedAttributesCount\":", s->dropped_attrs);
    if (s->n_events) {
        LIT(b, ",\"events\":[");
        for (uint32_t i = 0; i < s->n_events; i++) {
            const ituna_event *ev = &s->events[i];
            if (i) ch(b, ',');
            LIT(b, "{\"timeUnixNano\":");
            ju64_str(b, ev->time_ns);
            LIT(b, ",\"name\":");
            jstr(b, ev->name ? ev->name : "", ev->name ? ev->name_len : 0);
            jattrs(b, ev->attrs, ev->n_attrs);
            JCOUNT(b, ",\"droppedAttributesCount\":", ev->dropped_attrs);
            ch(b, '}');
        }
        ch(b, ']');
    }
    JCOUNT(b, ",\"droppedEventsCount\":", s->dropped_events);
    if (s->n_links) {
        LIT(b, ",\"links\":[");
        for (uint32_t i = 0; i < s->n_links; i++) {
            const ituna_link *l = &s->links[i];
            if (i) ch(b, ',');
            LIT(b, "{\"traceId\":");
            jhex(b, l->trace_id, 16);
            LIT(b, ",\"spanId\":");
            jhex(b, l->span_id, 8);
            if (l->tracestate && l->tracestate_len) {
                LIT(b, ",\"traceState\":");
                jstr(b, l->tracestate, l->tracestate_len);
            }
            jattrs(b, l->attrs, l->n_attrs);
            JCOUNT(b, ",\"droppedAttributesCount\":", l->dropped_attrs);
            LIT(b, ",\"flags\":");
            ju64(b, ituna_otlp_link_flags(l));
            ch(b, '}');
        }
        ch(b, ']');
    }
    JCOUNT(b, ",\"droppedLinksCount\":", s->dropped_links);
    int has_msg = s->status_msg && s->status_msg_len;
    if (s->status_code != ITUNA_STATUS_UNSET || has_msg) {
        LIT(b, ",\"status\":{");
        if (has_msg) {
            LIT(b, "\"message\":");
            jstr(b, s->status_msg, s->status_msg_len);
        }
        if (s->status_code != ITUNA_STATUS_UNSET) {
            if (has_msg) ch(b, ',');
            LIT(b, "\"code\":");
            ju64(b, s->status_code);
        }
        ch(b, '}');
    }
    ch(b, '}');
}

int ituna_otlp_encode_json(ituna_span *const *spans, size_t n, const ituna_resource *res, ituna_buf *out) {
    static pthread_once_t pairs_once = PTHREAD_ONCE_INIT;
    pthread_once(&pairs_once, init_pairs);
    if (!out || out->oom) return 0;
    size_t base = out->len;
    need(out, 256 + n * 400);
    LIT(out, "{\"resourceSpans\":[{\"resource\":{");
    if (res && res->n_attrs) {
        LIT(out, "\"attributes\":[");
        for (uint32_t i = 0; i < res->n_attrs; i++) {
            if (i) ch(out, ',');
            jkv(out, &res->attrs[i]);
        }
        ch(out, ']');
    }
    LIT(out, "},\"scopeSpans\":[");
    const ituna_scope *one, **scopes;
    size_t nsc = ituna_otlp_scopes(spans, n, &one, &scopes);
    if (nsc == (size_t)-1) {
        out->len = base;
        out->oom = 1;
        return 0;
    }
    for (size_t k = 0; k < nsc; k++) {
        const ituna_scope *sc = scopes[k];
        const char *nm = NULL, *ver = NULL;
        size_t nl = 0, vl = 0;
        if (sc) {
            nm = sc->name, nl = sc->name_len, ver = sc->version, vl = sc->version_len;
        } else if (res) {
            nm = res->scope_name, nl = strnlen(res->scope_name, sizeof res->scope_name);
            ver = res->scope_version, vl = strnlen(res->scope_version, sizeof res->scope_version);
        }
        if (k) ch(out, ',');
        LIT(out, "{\"scope\":{");
        if (nl) {
            LIT(out, "\"name\":");
            jstr(out, nm, nl);
        }
        if (vl) {
            if (nl) ch(out, ',');
            LIT(out, "\"version\":");
            jstr(out, ver, vl);
        }
        if (sc && sc->n_attrs) {
            if (nl || vl) ch(out, ',');
            LIT(out, "\"attributes\":[");
            for (uint32_t i = 0; i < sc->n_attrs; i++) {
                if (i) ch(out, ',');
                jkv(out, &sc->attrs[i]);
            }
            ch(out, ']');
        }
        LIT(out, "},\"spans\":[");
        int first = 1;
        for (size_t i = 0; i < n; i++) {
            if (!spans[i] || spans[i]->scope != sc) continue;
            if (!first) ch(out, ',');
            first = 0;
            jspan(out, spans[i]);
        }
        ch(out, ']');
        if (sc && sc->schema_url_len) {
            LIT(out, ",\"schemaUrl\":");
            jstr(out, sc->schema_url, sc->schema_url_len);
        }
        ch(out, '}');
    }
    if (scopes != &one) free(scopes);
    LIT(out, "]}]}");
    if (out->oom) {
        out->len = base;
        return 0;
    }
    return 1;
}

/* ---- response ------------------------------------------------------------------ */

static const cJSON *get_either(const cJSON *o, const char *camel, const char *snake) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, camel);
    return v ? v : cJSON_GetObjectItemCaseSensitive(o, snake);
}

int ituna_otlp_decode_partial_success_json(const void *body, size_t len, int64_t *rejected, char *msg,
                                           size_t msg_size) {
    *rejected = 0;
    if (msg_size) msg[0] = '\0';
    if (len == 0) return 0;
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) return -1;
    int rc = 0;
    const cJSON *ps = get_either(root, "partialSuccess", "partial_success");
    if (ps && cJSON_IsObject(ps)) {
        const cJSON *r = get_either(ps, "rejectedSpans", "rejected_spans");
        if (cJSON_IsNumber(r))
            *rejected = (int64_t)r->valuedouble;
        else if (cJSON_IsString(r) && r->valuestring)
            *rejected = strtoll(r->valuestring, NULL, 10);
        else if (r)
            rc = -1;
        const cJSON *m = get_either(ps, "errorMessage", "error_message");
        if (cJSON_IsString(m) && m->valuestring && msg_size) snprintf(msg, msg_size, "%s", m->valuestring);
    } else if (ps && !cJSON_IsNull(ps)) {
        rc = -1;
    }
    cJSON_Delete(root);
    return rc;
}
