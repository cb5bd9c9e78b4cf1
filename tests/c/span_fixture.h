/* span_fixture.h - hand-built stored spans (struct ituna_span filled directly,
 * strings in static storage, no arena) for the encoder tests, the encode_dump
 * driver and the encoding benchmark. Every optional field of the OTLP Span is
 * set on the "rich" span so a decoder can check each one. */
#ifndef ITUNA_SPAN_FIXTURE_H
#define ITUNA_SPAN_FIXTURE_H

#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "otlp_util.h"

#define FX_S(str) (str), (uint32_t)(sizeof(str) - 1)

static inline ituna_kv fx_str(const char *k, const char *v) {
    ituna_kv kv = { .key = k, .key_len = (uint32_t)strlen(k), .type = ITUNA_ATTR_STRING };
    kv.v.s.ptr = v;
    kv.v.s.len = (uint32_t)strlen(v);
    return kv;
}
static inline ituna_kv fx_strn(const char *k, const char *v, uint32_t n) {
    ituna_kv kv = fx_str(k, "");
    kv.v.s.ptr = v;
    kv.v.s.len = n;
    return kv;
}
static inline ituna_kv fx_int(const char *k, int64_t v) {
    ituna_kv kv = { .key = k, .key_len = (uint32_t)strlen(k), .type = ITUNA_ATTR_INT };
    kv.v.i = v;
    return kv;
}
static inline ituna_kv fx_dbl(const char *k, double v) {
    ituna_kv kv = { .key = k, .key_len = (uint32_t)strlen(k), .type = ITUNA_ATTR_DOUBLE };
    kv.v.d = v;
    return kv;
}
static inline ituna_kv fx_bool(const char *k, int v) {
    ituna_kv kv = { .key = k, .key_len = (uint32_t)strlen(k), .type = ITUNA_ATTR_BOOL };
    kv.v.b = v;
    return kv;
}
static inline ituna_kv fx_arr(const char *k, int type, const void *items, uint32_t count) {
    ituna_kv kv = { .key = k, .key_len = (uint32_t)strlen(k), .type = (uint8_t)type };
    kv.v.arr.items = items;
    kv.v.arr.count = count;
    return kv;
}

static inline void fx_ids(ituna_span *s, uint8_t seed) {
    for (int i = 0; i < 16; i++) s->ctx.trace_id[i] = (uint8_t)(seed * 16 + i + 1);
    for (int i = 0; i < 8; i++) s->ctx.span_id[i] = (uint8_t)(0xa0 + seed + i);
}

/* Storage for the rich span's pieces. */
typedef struct fx_rich {
    ituna_span span;
    ituna_kv attrs[10];
    ituna_kv ev_attrs[2];
    ituna_event events[2];
    ituna_kv link_attrs[1];
    ituna_link links[2];
    ituna_str sarr[3];
    int64_t iarr[3];
    double darr[3];
    ITUNA_BOOL_ITEM barr[2];
} fx_rich;

/* The rich span: a remote parent, every attribute type, two events (one with
 * attributes), two links (one with tracestate and attributes), error status,
 * all dropped counters non-zero, and a name that needs JSON escaping. */
static inline void fx_make_rich(fx_rich *r) {
    memset(r, 0, sizeof *r);
    ituna_span *s = &r->span;
    fx_ids(s, 1);
    s->ctx.trace_flags = 1;
    s->ctx.is_remote = 0;
    strcpy(s->ctx.tracestate, "vendor=a1,other=b2");
    s->ctx.tracestate_len = (uint16_t)strlen(s->ctx.tracestate);
    for (int i = 0; i < 8; i++) s->parent_span_id[i] = (uint8_t)(0x10 + i);
    s->has_parent = 1;
    s->parent_is_remote = 1;
    s->kind = ITUNA_SPAN_KIND_CONSUMER;
    s->recording = 1;
    s->name = "process \"ituna-orders\"\\\n\t\x01 caf\xc3\xa9 \xff end";
    s->name_len = (uint32_t)strlen(s->name);
    s->status_code = ITUNA_STATUS_ERROR;
    s->status_msg = "boom: \"bad\" order";
    s->status_msg_len = (uint32_t)strlen(s->status_msg);
    s->start_ns = 1700000000123456789ull;
    s->end_ns = 1700000000987654321ull;

    r->sarr[0] = (ituna_str){ FX_S("a") };
    r->sarr[1] = (ituna_str){ FX_S("") };
    r->sarr[2] = (ituna_str){ FX_S("c\"q") };
    r->iarr[0] = 1;
    r->iarr[1] = -2;
    r->iarr[2] = INT64_MAX;
    r->darr[0] = 0.5;
    r->darr[1] = -1e300;
    r->darr[2] = 3.0;
    r->barr[0] = 1;
    r->barr[1] = 0;
    r->attrs[0] = fx_str("messaging.system", "kafka");
    r->attrs[1] = fx_int("messaging.kafka.offset", 42);
    r->attrs[2] = fx_int("neg", INT64_MIN);
    r->attrs[3] = fx_dbl("ratio", 0.1);
    r->attrs[4] = fx_bool("ok", 1);
    r->attrs[5] = fx_bool("bad", 0);
    r->attrs[6] = fx_arr("sarr", ITUNA_ATTR_STRING_ARRAY, r->sarr, 3);
    r->attrs[7] = fx_arr("iarr", ITUNA_ATTR_INT_ARRAY, r->iarr, 3);
    r->attrs[8] = fx_arr("darr", ITUNA_ATTR_DOUBLE_ARRAY, r->darr, 3);
    r->attrs[9] = fx_arr("barr", ITUNA_ATTR_BOOL_ARRAY, r->barr, 2);
    s->attrs = r->attrs;
    s->n_attrs = 10;
    s->dropped_attrs = 3;

    r->ev_attrs[0] = fx_str("exception.type", "ValueError");
    r->ev_attrs[1] = fx_int("zero", 0);
    r->events[0] = (ituna_event){ .name = "exception",
                                  .name_len = 9,
                                  .time_ns = 1700000000500000000ull,
                                  .attrs = r->ev_attrs,
                                  .n_attrs = 2,
                                  .dropped_attrs = 1 };
    r->events[1] = (ituna_event){ .name = "plain", .name_len = 5, .time_ns = 1700000000600000000ull };
    s->events = r->events;
    s->n_events = 2;
    s->dropped_events = 4;

    r->link_attrs[0] = fx_str("link.kind", "producer");
    for (int i = 0; i < 16; i++) r->links[0].trace_id[i] = (uint8_t)(0xf0 - i);
    for (int i = 0; i < 8; i++) r->links[0].span_id[i] = (uint8_t)(0x50 + i);
    r->links[0].trace_flags = 1;
    r->links[0].is_remote = 1;
    r->links[0].tracestate = "k=v";
    r->links[0].tracestate_len = 3;
    r->links[0].attrs = r->link_attrs;
    r->links[0].n_attrs = 1;
    r->links[0].dropped_attrs = 2;
    for (int i = 0; i < 16; i++) r->links[1].trace_id[i] = (uint8_t)(0x01 + i);
    for (int i = 0; i < 8; i++) r->links[1].span_id[i] = (uint8_t)(0x61 + i);
    s->links = r->links;
    s->n_links = 2;
    s->dropped_links = 5;
}

/* A typical span: name, 3 attributes (string, int, bool), no events. */
typedef struct fx_typical {
    ituna_span span;
    ituna_kv attrs[3];
} fx_typical;

static inline void fx_make_typical(fx_typical *t, uint32_t i) {
    memset(t, 0, sizeof *t);
    ituna_span *s = &t->span;
    fx_ids(s, (uint8_t)i);
    s->ctx.span_id[7] = (uint8_t)(i >> 8);
    s->ctx.trace_flags = 1;
    for (int k = 0; k < 8; k++) s->parent_span_id[k] = (uint8_t)(k + 1 + i);
    s->has_parent = 1;
    s->kind = ITUNA_SPAN_KIND_INTERNAL;
    s->recording = 1;
    s->name = "inventory_validation";
    s->name_len = 20;
    s->start_ns = 1700000000000000000ull + i * 1000ull;
    s->end_ns = s->start_ns + 140000000ull;
    t->attrs[0] = fx_str("order.id", "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
    t->attrs[1] = fx_int("order.dishes", 3);
    t->attrs[2] = fx_bool("order.validated", 1);
    s->attrs = t->attrs;
    s->n_attrs = 3;
}

typedef struct fx_resource {
    ituna_resource res;
    ituna_kv attrs[4];
} fx_resource;

static inline void fx_make_resource(fx_resource *r) {
    memset(r, 0, sizeof *r);
    r->attrs[0] = fx_str("service.name", "order-validation");
    r->attrs[1] = fx_str("telemetry.sdk.name", "ituna-core");
    r->attrs[2] = fx_str("telemetry.sdk.language", "c");
    r->attrs[3] = fx_int("process.pid", 4242);
    r->res.attrs = r->attrs;
    r->res.n_attrs = 4;
    strcpy(r->res.scope_name, "ituna-core");
    strcpy(r->res.scope_version, "0.1.0");
}

#endif
