/* test_encode.c - OTLP protobuf and JSON encoders on hand-built spans: every
 * field read back (protobuf with a small wire reader, JSON with cJSON), string
 * escaping and UTF-8 repair, appending after existing bytes, large inputs, a
 * buffer already out of memory, and partial_success response decoding. The
 * full schema check against opentelemetry-proto is in tests/python. */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "otlp_util.h"
#include "span_fixture.h"
#include "testutil.h"

/* ---- minimal protobuf wire reader ------------------------------------------------ */
typedef struct pbf {
    unsigned field, wt;
    uint64_t v;         /* varint / fixed value */
    const uint8_t *ptr; /* LEN payload */
    size_t len;
} pbf;

static int rd_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    uint64_t r = 0;
    for (unsigned sh = 0; sh < 64; sh += 7) {
        if (*p >= end) return 0;
        uint8_t c = *(*p)++;
        r |= (uint64_t)(c & 0x7f) << sh;
        if (!(c & 0x80)) {
            *v = r;
            return 1;
        }
    }
    return 0;
}

/* Next field of [*p, end); 0 at the end, -1 if malformed. */
static int pb_next(const uint8_t **p, const uint8_t *end, pbf *f) {
    if (*p >= end) return 0;
    uint64_t tag;
    if (!rd_varint(p, end, &tag)) return -1;
    f->field = (unsigned)(tag >> 3);
    f->wt = (unsigned)(tag & 7);
    switch (f->wt) {
    case 0: return rd_varint(p, end, &f->v) ? 1 : -1;
    case 1:
        if (end - *p < 8) return -1;
        f->v = 0;
        for (int i = 7; i >= 0; i--) f->v = (f->v << 8) | (*p)[i];
        *p += 8;
        return 1;
    case 5:
        if (end - *p < 4) return -1;
        f->v = (uint64_t)(*p)[0] | (uint64_t)(*p)[1] << 8 | (uint64_t)(*p)[2] << 16 | (uint64_t)(*p)[3] << 24;
        *p += 4;
        return 1;
    case 2:
        if (!rd_varint(p, end, &f->v) || f->v > (uint64_t)(end - *p)) return -1;
        f->ptr = *p;
        f->len = (size_t)f->v;
        *p += f->len;
        return 1;
    default: return -1;
    }
}

/* The idx-th occurrence of field in a message; 1 if found. */
static int pb_get(const uint8_t *msg, size_t len, unsigned field, int idx, pbf *out) {
    const uint8_t *p = msg, *end = msg + len;
    pbf f;
    int r;
    while ((r = pb_next(&p, end, &f)) == 1)
        if (f.field == field && idx-- == 0) {
            *out = f;
            return 1;
        }
    return 0;
}

static int pb_count(const uint8_t *msg, size_t len, unsigned field) {
    const uint8_t *p = msg, *end = msg + len;
    pbf f;
    int n = 0;
    while (pb_next(&p, end, &f) == 1) n += f.field == field;
    return n;
}

/* Fields must come in ascending order (except repeats) and parse to the end. */
static int pb_well_formed(const uint8_t *msg, size_t len) {
    const uint8_t *p = msg, *end = msg + len;
    pbf f;
    int r;
    unsigned last = 0;
    while ((r = pb_next(&p, end, &f)) == 1) {
        if (f.field < last) return 0;
        last = f.field;
    }
    return r == 0;
}

static int pb_str_eq(const pbf *f, const char *s) {
    return f->len == strlen(s) && memcmp(f->ptr, s, f->len) == 0;
}

/* Span #i of a single-resource, single-scope request. */
static int request_span(const ituna_buf *b, int i, pbf *span) {
    pbf rs, ss;
    return pb_get(b->data, b->len, 1, 0, &rs) && pb_get(rs.ptr, rs.len, 2, 0, &ss) &&
           pb_get(ss.ptr, ss.len, 2, i, span);
}

static const char *sanitized_rich_name = "process \"ituna-orders\"\\\n\t\x01 caf\xc3\xa9 \xef\xbf\xbd end";

static int test_proto_every_field(void) {
    fx_rich r;
    fx_resource res;
    fx_make_rich(&r);
    fx_make_resource(&res);
    ituna_span *spans[1] = { &r.span };
    ituna_buf b;
    ituna_buf_init(&b);
    REQUIRE(ituna_otlp_encode_proto(spans, 1, &res.res, &b) == 1);
    REQUIRE(pb_well_formed(b.data, b.len));

    pbf rs, resource, ss, scope, f;
    REQUIRE(pb_count(b.data, b.len, 1) == 1);
    REQUIRE(pb_get(b.data, b.len, 1, 0, &rs));
    REQUIRE(pb_get(rs.ptr, rs.len, 1, 0, &resource));
    CHECK(pb_count(resource.ptr, resource.len, 1) == 4);
    REQUIRE(pb_get(resource.ptr, resource.len, 1, 0, &f));
    pbf k, v, sv;
    REQUIRE(pb_get(f.ptr, f.len, 1, 0, &k) && pb_str_eq(&k, "service.name"));
    REQUIRE(pb_get(f.ptr, f.len, 2, 0, &v) && pb_get(v.ptr, v.len, 1, 0, &sv) &&
            pb_str_eq(&sv, "order-validation"));
    REQUIRE(pb_get(rs.ptr, rs.len, 2, 0, &ss));
    REQUIRE(pb_get(ss.ptr, ss.len, 1, 0, &scope));
    CHECK(pb_get(scope.ptr, scope.len, 1, 0, &f) && pb_str_eq(&f, "ituna-core"));
    CHECK(pb_get(scope.ptr, scope.len, 2, 0, &f) && pb_str_eq(&f, "0.1.0"));
    CHECK(pb_count(ss.ptr, ss.len, 2) == 1);

    pbf sp;
    REQUIRE(request_span(&b, 0, &sp));
    CHECK(pb_well_formed(sp.ptr, sp.len));
    CHECK(pb_get(sp.ptr, sp.len, 1, 0, &f) && f.len == 16 && memcmp(f.ptr, r.span.ctx.trace_id, 16) == 0);
    CHECK(pb_get(sp.ptr, sp.len, 2, 0, &f) && f.len == 8 && memcmp(f.ptr, r.span.ctx.span_id, 8) == 0);
    CHECK(pb_get(sp.ptr, sp.len, 3, 0, &f) && pb_str_eq(&f, "vendor=a1,other=b2"));
    CHECK(pb_get(sp.ptr, sp.len, 4, 0, &f) && f.len == 8 && memcmp(f.ptr, r.span.parent_span_id, 8) == 0);
    CHECK(pb_get(sp.ptr, sp.len, 5, 0, &f) && pb_str_eq(&f, sanitized_rich_name));
    CHECK(pb_get(sp.ptr, sp.len, 6, 0, &f) && f.wt == 0 && f.v == ITUNA_SPAN_KIND_CONSUMER);
    CHECK(pb_get(sp.ptr, sp.len, 7, 0, &f) && f.wt == 1 && f.v == r.span.start_ns);
    CHECK(pb_get(sp.ptr, sp.len, 8, 0, &f) && f.wt == 1 && f.v == r.span.end_ns);
    CHECK(pb_count(sp.ptr, sp.len, 9) == 10);
    CHECK(pb_get(sp.ptr, sp.len, 10, 0, &f) && f.v == 3);
    CHECK(pb_count(sp.ptr, sp.len, 11) == 2);
    CHECK(pb_get(sp.ptr, sp.len, 12, 0, &f) && f.v == 4);
    CHECK(pb_count(sp.ptr, sp.len, 13) == 2);
    CHECK(pb_get(sp.ptr, sp.len, 14, 0, &f) && f.v == 5);
    /* flags: sampled | HAS_IS_REMOTE | IS_REMOTE (the parent came from a carrier) */
    CHECK(pb_get(sp.ptr, sp.len, 16, 0, &f) && f.wt == 5 && f.v == 0x301);
    pbf st;
    REQUIRE(pb_get(sp.ptr, sp.len, 15, 0, &st));
    CHECK(pb_get(st.ptr, st.len, 2, 0, &f) && pb_str_eq(&f, "boom: \"bad\" order"));
    CHECK(pb_get(st.ptr, st.len, 3, 0, &f) && f.v == ITUNA_STATUS_ERROR);

    /* attribute values: INT64_MIN as a 10-byte varint, the double's bits, arrays */
    pbf kv, val, any;
    REQUIRE(pb_get(sp.ptr, sp.len, 9, 2, &kv));
    REQUIRE(pb_get(kv.ptr, kv.len, 1, 0, &k) && pb_str_eq(&k, "neg"));
    REQUIRE(pb_get(kv.ptr, kv.len, 2, 0, &val));
    CHECK(pb_get(val.ptr, val.len, 3, 0, &any) && (int64_t)any.v == INT64_MIN);
    REQUIRE(pb_get(sp.ptr, sp.len, 9, 3, &kv) && pb_get(kv.ptr, kv.len, 2, 0, &val));
    double d = 0;
    CHECK(pb_get(val.ptr, val.len, 4, 0, &any) && any.wt == 1 && (memcpy(&d, &any.v, 8), d == 0.1));
    REQUIRE(pb_get(sp.ptr, sp.len, 9, 5, &kv) && pb_get(kv.ptr, kv.len, 2, 0, &val));
    CHECK(pb_get(val.ptr, val.len, 2, 0, &any) && any.wt == 0 && any.v == 0); /* false is still sent */
    REQUIRE(pb_get(sp.ptr, sp.len, 9, 6, &kv) && pb_get(kv.ptr, kv.len, 2, 0, &val));
    pbf arr, elem;
    REQUIRE(pb_get(val.ptr, val.len, 5, 0, &arr));
    CHECK(pb_count(arr.ptr, arr.len, 1) == 3);
    REQUIRE(pb_get(arr.ptr, arr.len, 1, 1, &elem)); /* the empty string element is present */
    CHECK(pb_get(elem.ptr, elem.len, 1, 0, &f) && f.len == 0);
    REQUIRE(pb_get(sp.ptr, sp.len, 9, 7, &kv) && pb_get(kv.ptr, kv.len, 2, 0, &val));
    REQUIRE(pb_get(val.ptr, val.len, 5, 0, &arr) && pb_get(arr.ptr, arr.len, 1, 2, &elem));
    CHECK(pb_get(elem.ptr, elem.len, 3, 0, &f) && (int64_t)f.v == INT64_MAX);

    /* event 0 and link 0 in full */
    pbf ev, ln;
    REQUIRE(pb_get(sp.ptr, sp.len, 11, 0, &ev));
    CHECK(pb_get(ev.ptr, ev.len, 1, 0, &f) && f.wt == 1 && f.v == 1700000000500000000ull);
    CHECK(pb_get(ev.ptr, ev.len, 2, 0, &f) && pb_str_eq(&f, "exception"));
    CHECK(pb_count(ev.ptr, ev.len, 3) == 2);
    CHECK(pb_get(ev.ptr, ev.len, 4, 0, &f) && f.v == 1);
    REQUIRE(pb_get(sp.ptr, sp.len, 13, 0, &ln));
    CHECK(pb_get(ln.ptr, ln.len, 1, 0, &f) && memcmp(f.ptr, r.links[0].trace_id, 16) == 0);
    CHECK(pb_get(ln.ptr, ln.len, 2, 0, &f) && memcmp(f.ptr, r.links[0].span_id, 8) == 0);
    CHECK(pb_get(ln.ptr, ln.len, 3, 0, &f) && pb_str_eq(&f, "k=v"));
    CHECK(pb_count(ln.ptr, ln.len, 4) == 1);
    CHECK(pb_get(ln.ptr, ln.len, 5, 0, &f) && f.v == 2);
    CHECK(pb_get(ln.ptr, ln.len, 6, 0, &f) && f.wt == 5 && f.v == 0x301);
    REQUIRE(pb_get(sp.ptr, sp.len, 13, 1, &ln));
    CHECK(pb_get(ln.ptr, ln.len, 6, 0, &f) && f.v == 0x100);
    CHECK(!pb_get(ln.ptr, ln.len, 3, 0, &f)); /* no tracestate: omitted */
    ituna_buf_free(&b);
    return 0;
}

/* A root span leaves out parent, tracestate, status and zero counters. */
static int test_proto_defaults_omitted(void) {
    fx_typical t;
    fx_make_typical(&t, 7);
    t.span.has_parent = 0;
    t.span.kind = ITUNA_SPAN_KIND_UNSPECIFIED;
    ituna_span *spans[1] = { &t.span };
    ituna_buf b;
    ituna_buf_init(&b);
    REQUIRE(ituna_otlp_encode_proto(spans, 1, NULL, &b) == 1);
    pbf sp, f;
    REQUIRE(request_span(&b, 0, &sp));
    for (unsigned fld = 3; fld <= 15; fld++)
        if (fld != 5 && fld != 6 && fld != 7 && fld != 8 && fld != 9)
            CHECK(pb_count(sp.ptr, sp.len, fld) == 0);
    CHECK(pb_get(sp.ptr, sp.len, 6, 0, &f) && f.v == ITUNA_SPAN_KIND_INTERNAL);
    CHECK(pb_get(sp.ptr, sp.len, 16, 0, &f) && f.v == 0x101);
    ituna_buf_free(&b);
    return 0;
}

/* Encoding appends: bytes already in the buffer stay, the message equals a fresh one. */
static int test_appends_after_existing_bytes(void) {
    fx_rich r;
    fx_make_rich(&r);
    fx_resource res;
    fx_make_resource(&res);
    ituna_span *spans[2] = { &r.span, &r.span };
    for (int json = 0; json <= 1; json++) {
        ituna_buf fresh, pre;
        ituna_buf_init(&fresh);
        ituna_buf_init(&pre);
        ituna_buf_puts(&pre, "PREFIX");
        int (*enc)(ituna_span *const *, size_t, const ituna_resource *, ituna_buf *) =
            json ? ituna_otlp_encode_json : ituna_otlp_encode_proto;
        REQUIRE(enc(spans, 2, &res.res, &fresh) == 1);
        REQUIRE(enc(spans, 2, &res.res, &pre) == 1);
        CHECK(pre.len == fresh.len + 6);
        CHECK(memcmp(pre.data, "PREFIX", 6) == 0);
        CHECK(memcmp(pre.data + 6, fresh.data, fresh.len) == 0);
        ituna_buf_free(&fresh);
        ituna_buf_free(&pre);
    }
    return 0;
}

static const cJSON *jget(const cJSON *o, const char *k) {
    return cJSON_GetObjectItemCaseSensitive(o, k);
}
static const char *jstrv(const cJSON *o, const char *k) {
    const cJSON *v = jget(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
static const cJSON *jkv_value(const cJSON *attrs, const char *key) {
    const cJSON *kv;
    cJSON_ArrayForEach(kv, attrs) {
        const char *kk = jstrv(kv, "key");
        if (kk && strcmp(kk, key) == 0) return jget(kv, "value");
    }
    return NULL;
}

static int test_json_every_field(void) {
    fx_rich r;
    fx_resource res;
    fx_make_rich(&r);
    fx_make_resource(&res);
    ituna_span *spans[1] = { &r.span };
    ituna_buf b;
    ituna_buf_init(&b);
    REQUIRE(ituna_otlp_encode_json(spans, 1, &res.res, &b) == 1);
    CHECK(memchr(b.data, '\n', b.len) == NULL); /* one line, for the JSON-lines file */
    cJSON *root = cJSON_ParseWithLength((const char *)b.data, b.len);
    REQUIRE(root != NULL);
    const cJSON *rs = cJSON_GetArrayItem(jget(root, "resourceSpans"), 0);
    REQUIRE(rs);
    const cJSON *rattrs = jget(jget(rs, "resource"), "attributes");
    CHECK(cJSON_GetArraySize(rattrs) == 4);
    CHECK_STR(jstrv(jkv_value(rattrs, "service.name"), "stringValue"), "order-validation");
    CHECK_STR(jstrv(jkv_value(rattrs, "process.pid"), "intValue"), "4242");
    const cJSON *ss = cJSON_GetArrayItem(jget(rs, "scopeSpans"), 0);
    REQUIRE(ss);
    CHECK_STR(jstrv(jget(ss, "scope"), "name"), "ituna-core");
    CHECK_STR(jstrv(jget(ss, "scope"), "version"), "0.1.0");
    const cJSON *sp = cJSON_GetArrayItem(jget(ss, "spans"), 0);
    REQUIRE(sp);
    CHECK_STR(jstrv(sp, "traceId"), "1112131415161718191a1b1c1d1e1f20");
    CHECK_STR(jstrv(sp, "spanId"), "a1a2a3a4a5a6a7a8");
    CHECK_STR(jstrv(sp, "parentSpanId"), "1011121314151617");
    CHECK_STR(jstrv(sp, "traceState"), "vendor=a1,other=b2");
    CHECK_STR(jstrv(sp, "name"), sanitized_rich_name);
    CHECK(cJSON_IsNumber(jget(sp, "kind")) && jget(sp, "kind")->valueint == 5);
    CHECK(cJSON_IsNumber(jget(sp, "flags")) && jget(sp, "flags")->valueint == 0x301);
    CHECK_STR(jstrv(sp, "startTimeUnixNano"), "1700000000123456789");
    CHECK_STR(jstrv(sp, "endTimeUnixNano"), "1700000000987654321");
    CHECK(jget(sp, "droppedAttributesCount")->valueint == 3);
    CHECK(jget(sp, "droppedEventsCount")->valueint == 4);
    CHECK(jget(sp, "droppedLinksCount")->valueint == 5);
    CHECK(jget(jget(sp, "status"), "code")->valueint == 2);
    CHECK_STR(jstrv(jget(sp, "status"), "message"), "boom: \"bad\" order");

    const cJSON *at = jget(sp, "attributes");
    CHECK(cJSON_GetArraySize(at) == 10);
    CHECK_STR(jstrv(jkv_value(at, "messaging.system"), "stringValue"), "kafka");
    CHECK_STR(jstrv(jkv_value(at, "messaging.kafka.offset"), "intValue"), "42");
    CHECK_STR(jstrv(jkv_value(at, "neg"), "intValue"), "-9223372036854775808");
    CHECK(jget(jkv_value(at, "ratio"), "doubleValue")->valuedouble == 0.1);
    CHECK(cJSON_IsTrue(jget(jkv_value(at, "ok"), "boolValue")));
    CHECK(cJSON_IsFalse(jget(jkv_value(at, "bad"), "boolValue")));
    const cJSON *sarr = jget(jget(jkv_value(at, "sarr"), "arrayValue"), "values");
    CHECK(cJSON_GetArraySize(sarr) == 3);
    CHECK_STR(jstrv(cJSON_GetArrayItem(sarr, 1), "stringValue"), "");
    CHECK_STR(jstrv(cJSON_GetArrayItem(sarr, 2), "stringValue"), "c\"q");
    const cJSON *iarr = jget(jget(jkv_value(at, "iarr"), "arrayValue"), "values");
    CHECK_STR(jstrv(cJSON_GetArrayItem(iarr, 2), "intValue"), "9223372036854775807");
    const cJSON *darr = jget(jget(jkv_value(at, "darr"), "arrayValue"), "values");
    CHECK(jget(cJSON_GetArrayItem(darr, 1), "doubleValue")->valuedouble == -1e300);
    const cJSON *barr = jget(jget(jkv_value(at, "barr"), "arrayValue"), "values");
    CHECK(cJSON_IsTrue(jget(cJSON_GetArrayItem(barr, 0), "boolValue")));
    CHECK(cJSON_IsFalse(jget(cJSON_GetArrayItem(barr, 1), "boolValue")));

    const cJSON *ev = cJSON_GetArrayItem(jget(sp, "events"), 0);
    CHECK_STR(jstrv(ev, "timeUnixNano"), "1700000000500000000");
    CHECK_STR(jstrv(ev, "name"), "exception");
    CHECK(jget(ev, "droppedAttributesCount")->valueint == 1);
    CHECK_STR(jstrv(jkv_value(jget(ev, "attributes"), "zero"), "intValue"), "0");
    const cJSON *ev2 = cJSON_GetArrayItem(jget(sp, "events"), 1);
    CHECK(jget(ev2, "attributes") == NULL && jget(ev2, "droppedAttributesCount") == NULL);
    const cJSON *ln = cJSON_GetArrayItem(jget(sp, "links"), 0);
    CHECK_STR(jstrv(ln, "traceId"), "f0efeeedecebeae9e8e7e6e5e4e3e2e1");
    CHECK_STR(jstrv(ln, "spanId"), "5051525354555657");
    CHECK_STR(jstrv(ln, "traceState"), "k=v");
    CHECK(jget(ln, "flags")->valueint == 0x301);
    CHECK(jget(ln, "droppedAttributesCount")->valueint == 2);
    cJSON_Delete(root);
    ituna_buf_free(&b);
    return 0;
}

/* Every byte 0..255 in a string: valid JSON, and it reads back as the UTF-8-repaired input. */
static int test_json_escaping_all_bytes(void) {
    char in[256];
    for (int i = 0; i < 256; i++) in[i] = (char)i;
    fx_typical t;
    fx_make_typical(&t, 1);
    t.attrs[0] = fx_strn("bytes", in, 256);
    t.span.name = in + 1; /* 0x01..0xff */
    t.span.name_len = 255;
    ituna_span *spans[1] = { &t.span };
    ituna_buf b;
    ituna_buf_init(&b);
    REQUIRE(ituna_otlp_encode_json(spans, 1, NULL, &b) == 1);
    for (size_t i = 0; i < b.len; i++) CHECK(b.data[i] >= 0x20); /* no raw control characters */
    cJSON *root = cJSON_ParseWithLength((const char *)b.data, b.len);
    REQUIRE(root);
    const cJSON *sp = cJSON_GetArrayItem(
        jget(cJSON_GetArrayItem(jget(cJSON_GetArrayItem(jget(root, "resourceSpans"), 0), "scopeSpans"), 0),
             "spans"),
        0);
    char want[1024];
    size_t wn = ituna_utf8_sanitize(want, in, 256);
    const cJSON *v = jget(jkv_value(jget(sp, "attributes"), "bytes"), "stringValue");
    /* cJSON stops at the NUL (\u0000) it decodes, so compare from byte 1 via the name. */
    CHECK(cJSON_IsString(v) && v->valuestring[0] == '\0');
    const char *name = jstrv(sp, "name");
    CHECK(name && strlen(name) == wn - 1 && memcmp(name, want + 1, wn - 1) == 0);
    cJSON_Delete(root);
    ituna_buf_free(&b);
    return 0;
}

/* Byte-at-a-time reference for a JSON string's body: the escapes and the U+FFFD
 * repair the encoder promises, for checking its word-at-a-time copy. */
static size_t ref_escape(char *out, const unsigned char *s, size_t n) {
    static const char hx[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        const char *e = NULL;
        switch (c) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        }
        if (e) {
            memcpy(out + o, e, 2), o += 2, i++;
        } else if (c < 0x20) {
            o += (size_t)sprintf(out + o, "\\u00%c%c", hx[c >> 4], hx[c & 15]), i++;
        } else {
            unsigned l = ituna_utf8_seq_len(s + i, n - i);
            if (l) {
                memcpy(out + o, s + i, l), o += l, i += l;
            } else {
                memcpy(out + o, "\\ufffd", 6), o += 6, i++;
            }
        }
    }
    out[o] = '\0';
    return o;
}

/* Each byte that needs escaping (and a valid and a cut 2-byte sequence), at
 * every position of strings of 1..40 bytes, as a span name, an attribute key and
 * a value: the same output as the byte-at-a-time reference. */
static int test_json_escaping_every_position(void) {
    static const char *specials[] = { "\"",   "\\",   "\n",       "\x01", "\x1f", "\x7f",
                                      "\x80", "\xff", "\xc3\xa9", "\xc3", "~" };
    char str[48], esc[320], want[1024];
    ituna_buf b;
    ituna_buf_init(&b);
    int bad = 0;
    for (size_t len = 1; len <= 40; len++) {
        for (size_t pos = 0; pos < len; pos++) {
            for (size_t k = 0; k < sizeof specials / sizeof *specials; k++) {
                size_t sl = strlen(specials[k]);
                if (pos + sl > len) continue;
                memset(str, 'a' + (int)(len % 26), len);
                memcpy(str + pos, specials[k], sl);
                fx_typical t;
                fx_make_typical(&t, 1);
                t.span.name = str;
                t.span.name_len = (uint32_t)len;
                t.attrs[0] = fx_strn("k", str, (uint32_t)len);
                t.attrs[0].key = str;
                t.attrs[0].key_len = (uint32_t)len;
                ituna_span *one[1] = { &t.span };
                b.len = 0;
                REQUIRE(ituna_otlp_encode_json(one, 1, NULL, &b) == 1);
                ref_escape(esc, (const unsigned char *)str, len);
                ituna_buf_putc(&b, '\0');
                snprintf(want, sizeof want, "\"name\":\"%s\",", esc);
                int ok = strstr((const char *)b.data, want) != NULL;
                snprintf(want, sizeof want, "{\"key\":\"%s\",\"value\":{\"stringValue\":\"%s\"}}", esc, esc);
                ok = ok && strstr((const char *)b.data, want) != NULL;
                if (!ok && bad++ < 5)
                    fprintf(stderr, "  len %zu pos %zu special %zu: %s\n", len, pos, k, b.data);
            }
        }
    }
    CHECK(bad == 0);
    ituna_buf_free(&b);
    return 0;
}

/* Integers and timestamps at every digit-count boundary read back exactly. */
static int test_json_numbers(void) {
    static const int64_t ints[] = { 0,
                                    1,
                                    -1,
                                    9,
                                    10,
                                    -10,
                                    99,
                                    100,
                                    12345678,
                                    99999999,
                                    100000000,
                                    -100000000,
                                    1234567890123456789LL,
                                    INT64_MAX,
                                    INT64_MIN,
                                    INT64_MIN + 1 };
    ituna_buf b;
    ituna_buf_init(&b);
    char want[128];
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        fx_typical t;
        fx_make_typical(&t, 1);
        t.attrs[1].v.i = ints[i];
        ituna_span *one[1] = { &t.span };
        b.len = 0;
        REQUIRE(ituna_otlp_encode_json(one, 1, NULL, &b) == 1);
        ituna_buf_putc(&b, '\0');
        snprintf(want, sizeof want, "\"intValue\":\"%lld\"}", (long long)ints[i]);
        CHECK(strstr((const char *)b.data, want) != NULL);
    }
    uint64_t p = 1;
    for (int d = 0; d <= 20; d++) {
        uint64_t vs[3] = { p - 1, p, p + 1 };
        for (int j = 0; j < 3; j++) {
            fx_typical t;
            fx_make_typical(&t, 1);
            t.span.start_ns = vs[j];
            t.span.end_ns = d == 20 ? UINT64_MAX : vs[j] * 3;
            ituna_span *one[1] = { &t.span };
            b.len = 0;
            REQUIRE(ituna_otlp_encode_json(one, 1, NULL, &b) == 1);
            ituna_buf_putc(&b, '\0');
            snprintf(want, sizeof want, "\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\"",
                     (unsigned long long)t.span.start_ns, (unsigned long long)t.span.end_ns);
            CHECK(strstr((const char *)b.data, want) != NULL);
        }
        if (d < 19) p *= 10;
    }
    ituna_buf_free(&b);
    return 0;
}

static int test_utf8_rules(void) {
    CHECK(ituna_utf8_valid("plain ascii text, long enough for the fast path", 46));
    CHECK(ituna_utf8_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x9f", 14));
    CHECK(!ituna_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
    CHECK(!ituna_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    CHECK(!ituna_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    CHECK(!ituna_utf8_valid("abc\xe2\x82", 5));      /* truncated */
    char out[32];
    size_t n = ituna_utf8_sanitize(out, "a\xffz", 3);
    CHECK(n == 5 && memcmp(out, "a\xef\xbf\xbdz", 5) == 0);
    return 0;
}

/* Large inputs: a 4 MiB attribute of quotes (JSON doubles it), 4 MiB of invalid
 * bytes (protobuf triples it), 20000 spans; output is correct and the buffer
 * does not balloon beyond a small multiple of the output. */
static int test_large_inputs(void) {
    size_t big = 4u << 20;
    char *q = malloc(big), *bad = malloc(big);
    REQUIRE(q && bad);
    memset(q, '"', big);
    memset(bad, 0xff, big);
    fx_typical t;
    fx_make_typical(&t, 3);
    t.attrs[0] = fx_strn("quotes", q, (uint32_t)big);
    t.attrs[1] = fx_strn("bad", bad, (uint32_t)big);
    ituna_span *one[1] = { &t.span };
    ituna_buf b;
    ituna_buf_init(&b);
    REQUIRE(ituna_otlp_encode_json(one, 1, NULL, &b) == 1);
    CHECK(b.len > 2 * big + 6 * big);
    CHECK(b.cap <= 2 * b.len + 65536);
    cJSON *root = cJSON_ParseWithLength((const char *)b.data, b.len);
    CHECK(root != NULL);
    cJSON_Delete(root);
    b.len = 0;
    REQUIRE(ituna_otlp_encode_proto(one, 1, NULL, &b) == 1);
    CHECK(b.len > big + 3 * big);
    CHECK(b.cap <= 4 * b.len + 65536);
    pbf sp;
    CHECK(request_span(&b, 0, &sp) && pb_well_formed(sp.ptr, sp.len));
    ituna_buf_free(&b);
    free(q);
    free(bad);

    enum { N = 20000 };
    fx_typical *ts = malloc(sizeof *ts * N);
    ituna_span **ps = malloc(sizeof *ps * N);
    REQUIRE(ts && ps);
    for (uint32_t i = 0; i < N; i++) {
        fx_make_typical(&ts[i], i);
        ps[i] = &ts[i].span;
    }
    ituna_buf_init(&b);
    REQUIRE(ituna_otlp_encode_proto(ps, N, NULL, &b) == 1);
    pbf rs, ss;
    REQUIRE(pb_get(b.data, b.len, 1, 0, &rs) && pb_get(rs.ptr, rs.len, 2, 0, &ss));
    CHECK(pb_count(ss.ptr, ss.len, 2) == N);
    pbf last, f;
    REQUIRE(pb_get(ss.ptr, ss.len, 2, N - 1, &last));
    CHECK(pb_get(last.ptr, last.len, 7, 0, &f) && f.v == ts[N - 1].span.start_ns);
    b.len = 0;
    REQUIRE(ituna_otlp_encode_json(ps, N, NULL, &b) == 1);
    cJSON *root2 = cJSON_ParseWithLength((const char *)b.data, b.len);
    REQUIRE(root2);
    const cJSON *spans =
        jget(cJSON_GetArrayItem(jget(cJSON_GetArrayItem(jget(root2, "resourceSpans"), 0), "scopeSpans"), 0),
             "spans");
    CHECK(cJSON_GetArraySize(spans) == N);
    cJSON_Delete(root2);
    ituna_buf_free(&b);
    free(ts);
    free(ps);
    return 0;
}

/* A buffer whose memory already ran out: both encoders fail cleanly, nothing written. */
static int test_oom_buffer_fails_cleanly(void) {
    fx_typical t;
    fx_make_typical(&t, 1);
    ituna_span *one[1] = { &t.span };
    ituna_buf b;
    ituna_buf_init(&b);
    ituna_buf_puts(&b, "x");
    b.oom = 1;
    CHECK(ituna_otlp_encode_proto(one, 1, NULL, &b) == 0);
    CHECK(b.len == 1);
    CHECK(ituna_otlp_encode_json(one, 1, NULL, &b) == 0);
    CHECK(b.len == 1);
    ituna_buf_free(&b);
    return 0;
}

static int test_partial_success_decoding(void) {
    int64_t rej;
    char msg[64];
    /* partial_success { rejected_spans: 3, error_message: "bad" } */
    static const uint8_t pb[] = { 0x0a, 0x07, 0x08, 0x03, 0x12, 0x03, 'b', 'a', 'd' };
    CHECK(ituna_otlp_decode_partial_success_proto(pb, sizeof pb, &rej, msg, sizeof msg) == 0);
    CHECK(rej == 3);
    CHECK_STR(msg, "bad");
    CHECK(ituna_otlp_decode_partial_success_proto("", 0, &rej, msg, sizeof msg) == 0 && rej == 0 && !msg[0]);
    CHECK(ituna_otlp_decode_partial_success_proto(pb, sizeof pb - 2, &rej, msg, sizeof msg) == -1);
    const char *j = "{\"partialSuccess\":{\"rejectedSpans\":\"7\",\"errorMessage\":\"too old\"}}";
    CHECK(ituna_otlp_decode_partial_success_json(j, strlen(j), &rej, msg, sizeof msg) == 0);
    CHECK(rej == 7);
    CHECK_STR(msg, "too old");
    const char *j2 = "{\"partial_success\":{\"rejected_spans\":2}}";
    CHECK(ituna_otlp_decode_partial_success_json(j2, strlen(j2), &rej, msg, sizeof msg) == 0 && rej == 2);
    CHECK(ituna_otlp_decode_partial_success_json("{}", 2, &rej, msg, sizeof msg) == 0 && rej == 0);
    CHECK(ituna_otlp_decode_partial_success_json("{nope", 5, &rej, msg, sizeof msg) == -1);
    return 0;
}

int main(void) {
    RUN(test_proto_every_field);
    RUN(test_proto_defaults_omitted);
    RUN(test_appends_after_existing_bytes);
    RUN(test_json_every_field);
    RUN(test_json_escaping_all_bytes);
    RUN(test_json_escaping_every_position);
    RUN(test_json_numbers);
    RUN(test_utf8_rules);
    RUN(test_large_inputs);
    RUN(test_oom_buffer_fails_cleanly);
    RUN(test_partial_success_decoding);
    TEST_MAIN_END();
}
