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

/* 1 if one of the 8 bytes in x needs more than a copy inside a JSON string: a
 * control character, '"', '\\', or a non-ASCII byte (to be checked as UTF-8).
 * Exact for the word: a lane sets its high bit, or borrows from the next one,
 * only when its own byte is one of those. */
static inline int special8(uint64_t x) {
    const uint64_t ones = 0x0101010101010101ull;
    uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
    return (((x - ones * 0x20) | (q - ones) | (bs - ones) | x) & (ones * 0x80)) != 0;
}

/* Copy s[0..n) to o as long as no byte needs escaping, 8 bytes a step (the last
 * step overlapping the one before); returns how many were copied (n when none
 * needs it). o has room for n bytes. */
static inline size_t copy_plain(uint8_t *o, const unsigned char *s, size_t n) {
    size_t i = 0;
    if (n >= 8) {
        uint64_t x;
        for (; i + 8 <= n; i += 8) {
            memcpy(&x, s + i, 8);
            if (special8(x)) goto bytes;
            memcpy(o + i, &x, 8);
        }
        memcpy(&x, s + n - 8, 8);
        if (!special8(x)) {
            memcpy(o + n - 8, &x, 8);
            return n;
        }
    } else if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, s, 4);
        memcpy(&hi, s + n - 4, 4);
        if (!special8((uint64_t)lo | (uint64_t)hi << 32)) {
            memcpy(o, &lo, 4);
            memcpy(o + n - 4, &hi, 4);
            return n;
        }
    }
bytes:
    for (; i < n && kind_tab[s[i]] == 0; i++) o[i] = s[i];
    return i;
}

/* The rest of a JSON string from its first byte that needs escaping, and the
 * closing quote. */
static void jstr_tail(ituna_buf *b, const unsigned char *p, const unsigned char *end) {
    while (p < end) {
        if (!need(b, (size_t)(end - p))) return;
        size_t c = copy_plain(b->data + b->len, p, (size_t)(end - p));
        b->len += c;
        p += c;
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

/* A JSON string literal, quotes included. Most strings need no escaping: they
 * are copied in one pass that also checks them. */
static void jstr(ituna_buf *b, const char *s, size_t n) {
    if (!need(b, n + 2)) return;
    uint8_t *o = b->data + b->len;
    *o++ = '"';
    size_t i = copy_plain(o, (const unsigned char *)s, n);
    if (__builtin_expect(i == n, 1)) {
        o[n] = '"';
        b->len += n + 2;
        return;
    }
    b->len += 1 + i;
    jstr_tail(b, (const unsigned char *)s + i, (const unsigned char *)s + n);
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

static inline uint8_t *put_hex(uint8_t *o, const uint8_t *id, size_t n) {
    for (size_t i = 0; i < n; i++, o += 2) memcpy(o, hex_pairs + 2 * id[i], 2);
    return o;
}

#define PUT(o, s) (memcpy((o), (s), sizeof(s) - 1), (o) += sizeof(s) - 1)

static void jhex(ituna_buf *b, const uint8_t *id, size_t n) {
    if (!need(b, 2 * n + 2)) return;
    char *o = (char *)b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++, o += 2) memcpy(o, hex_pairs + 2 * id[i], 2);
    *o++ = '"';
    b->len += 2 * n + 2;
}

/* Decimal digits of v (1 for 0): log10 from the bit length, corrected once. */
static inline unsigned ndigits(uint64_t v) {
    static const uint64_t p10[20] = { 1ull,
                                      10ull,
                                      100ull,
                                      1000ull,
                                      10000ull,
                                      100000ull,
                                      1000000ull,
                                      10000000ull,
                                      100000000ull,
                                      1000000000ull,
                                      10000000000ull,
                                      100000000000ull,
                                      1000000000000ull,
                                      10000000000000ull,
                                      100000000000000ull,
                                      1000000000000000ull,
                                      10000000000000000ull,
                                      100000000000000000ull,
                                      1000000000000000000ull,
                                      10000000000000000000ull };
    unsigned t = ((unsigned)(64 - __builtin_clzll(v | 1)) * 1233u) >> 12;
    return t + (v >= p10[t]) + (v == 0);
}

/* v in decimal at o, which has room for 20 bytes; returns the end. Digits are
 * written from the last, eight at a time in 32-bit arithmetic, then by pairs. */
static inline uint8_t *put_u64(uint8_t *o, uint64_t v) {
    uint8_t *end = o + ndigits(v), *p = end;
    while (v >= 100000000u) {
        uint64_t q = v / 100000000u;
        uint32_t r = (uint32_t)(v - q * 100000000u), hi = r / 10000u, lo = r % 10000u;
        p -= 8;
        memcpy(p, dec_pairs + 2 * (hi / 100u), 2);
        memcpy(p + 2, dec_pairs + 2 * (hi % 100u), 2);
        memcpy(p + 4, dec_pairs + 2 * (lo / 100u), 2);
        memcpy(p + 6, dec_pairs + 2 * (lo % 100u), 2);
        v = q;
    }
    uint32_t w = (uint32_t)v;
    while (w >= 100u) {
        p -= 2;
        memcpy(p, dec_pairs + 2 * (w % 100u), 2);
        w /= 100u;
    }
    if (w >= 10u)
        memcpy(p - 2, dec_pairs + 2 * w, 2);
    else
        p[-1] = (uint8_t)('0' + w);
    return end;
}

static void ju64(ituna_buf *b, uint64_t v) {
    if (!need(b, 20)) return;
    b->len = (size_t)(put_u64(b->data + b->len, v) - b->data);
}

/* int64 as a quoted decimal string (proto3 JSON for 64-bit integers). */
static void ji64_str(ituna_buf *b, int64_t v) {
    if (!need(b, 23)) return;
    uint8_t *o = b->data + b->len;
    *o++ = '"';
    if (v < 0) *o++ = '-';
    o = put_u64(o, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v);
    *o++ = '"';
    b->len = (size_t)(o - b->data);
}

static void ju64_str(ituna_buf *b, uint64_t v) {
    if (!need(b, 22)) return;
    uint8_t *o = b->data + b->len;
    *o++ = '"';
    o = put_u64(o, v);
    *o++ = '"';
    b->len = (size_t)(o - b->data);
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
    /* Fast path: a string or integer attribute whose key and value need no
     * escaping, written in one reservation; anything else starts over below. */
    if ((kv->type == ITUNA_ATTR_STRING || kv->type == ITUNA_ATTR_INT) && kv->key) {
        int str = kv->type == ITUNA_ATTR_STRING;
        const char *v = str && kv->v.s.ptr ? kv->v.s.ptr : "";
        size_t kl = kv->key_len, vl = str && kv->v.s.ptr ? kv->v.s.len : 0;
        if (!need(b, kl + vl + 64)) return;
        uint8_t *o = b->data + b->len;
        PUT(o, "{\"key\":\"");
        if (copy_plain(o, (const unsigned char *)kv->key, kl) == kl) {
            o += kl;
            if (str) {
                PUT(o, "\",\"value\":{\"stringValue\":\"");
                if (copy_plain(o, (const unsigned char *)v, vl) == vl) {
                    o += vl;
                    PUT(o, "\"}}");
                    b->len = (size_t)(o - b->data);
                    return;
                }
            } else {
                PUT(o, "\",\"value\":{\"intValue\":\"");
                if (kv->v.i < 0) *o++ = '-';
                o = put_u64(o, kv->v.i < 0 ? (uint64_t)0 - (uint64_t)kv->v.i : (uint64_t)kv->v.i);
                PUT(o, "\"}}");
                b->len = (size_t)(o - b->data);
                return;
            }
        }
    }
    LIT(b, "{\"key\":");
    jstr(b, kv->key ? kv->key : "", kv->key ? kv->key_len : 0);
    switch (kv->type) {
    case ITUNA_ATTR_STRING:
        LIT(b, ",\"value\":{\"stringValue\":");
        jstr(b, kv->v.s.ptr ? kv->v.s.ptr : "", kv->v.s.ptr ? kv->v.s.len : 0);
        LIT(b, "}}");
        break;
    case ITUNA_ATTR_INT:
        LIT(b, ",\"value\":{\"intValue\":");
        ji64_str(b, kv->v.i);
        LIT(b, "}}");
        break;
    case ITUNA_ATTR_DOUBLE:
        LIT(b, ",\"value\":{\"doubleValue\":");
        jdouble(b, kv->v.d);
        LIT(b, "}}");
        break;
    case ITUNA_ATTR_BOOL:
        if (kv->v.b)
            LIT(b, ",\"value\":{\"boolValue\":true}}");
        else
            LIT(b, ",\"value\":{\"boolValue\":false}}");
        break;
    case ITUNA_ATTR_STRING_ARRAY:
    case ITUNA_ATTR_INT_ARRAY:
    case ITUNA_ATTR_DOUBLE_ARRAY:
    case ITUNA_ATTR_BOOL_ARRAY:
        LIT(b, ",\"value\":");
        janyvalue_items(b, kv);
        ch(b, '}');
        break;
    default: LIT(b, ",\"value\":{}}");
    }
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
    /* The fixed fields in a few reservations (each bounded: ids, numbers, names). */
    if (!need(b, 128)) return;
    uint8_t *o = b->data + b->len;
    PUT(o, "{\"traceId\":\"");
    o = put_hex(o, s->ctx.trace_id, 16);
    PUT(o, "\",\"spanId\":\"");
    o = put_hex(o, s->ctx.span_id, 8);
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    if (s->ctx.tracestate_len) {
        LIT(b, ",\"traceState\":");
        jstr(b, s->ctx.tracestate, s->ctx.tracestate_len);
    }
    if (!need(b, 128)) return;
    o = b->data + b->len;
    if (s->has_parent) {
        PUT(o, ",\"parentSpanId\":\"");
        o = put_hex(o, s->parent_span_id, 8);
        *o++ = '"';
    }
    PUT(o, ",\"flags\":");
    o = put_u64(o, ituna_otlp_span_flags(s));
    PUT(o, ",\"name\":");
    b->len = (size_t)(o - b->data);
    jstr(b, s->name ? s->name : "", s->name ? s->name_len : 0);
    if (!need(b, 128)) return;
    o = b->data + b->len;
    PUT(o, ",\"kind\":");
    o = put_u64(o, ituna_otlp_kind(s));
    PUT(o, ",\"startTimeUnixNano\":\"");
    o = put_u64(o, s->start_ns);
    PUT(o, "\",\"endTimeUnixNano\":\"");
    o = put_u64(o, s->end_ns);
    *o++ = '"';
    b->len = (size_t)(o - b->data);
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
            if (i + 2 < n && spans[i + 2]) ituna_otlp_prefetch_header(spans[i + 2]);
            if (i + 1 < n && spans[i + 1]) ituna_otlp_prefetch_body(spans[i + 1]);
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
