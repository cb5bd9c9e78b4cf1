/* bench_encode.c - OTLP encoding speed on one core: a batch of 512 typical spans
 * (name, parent, 3 attributes: string, int, bool; no events) encoded as protobuf
 * and as JSON, median of runs, in spans/s. Peers run beside them: for JSON the
 * same OTLP JSON tree built with cJSON and printed unformatted; for protobuf a
 * memcpy of the output's size, the floor any encoder pays to write its bytes.
 * Target: >= 1M spans/s for each encoding. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../tests/c/clock_util.h"
#include "../tests/c/span_fixture.h"

#define BATCH 512
#define RUNS  31
#define REPS  20 /* batches per timed run */

static volatile size_t sink;

/* ---- the cJSON peer: the same OTLP JSON document ------------------------------ */
static void hexs(const uint8_t *p, size_t n, char *out) {
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static cJSON *cj_kv(const ituna_kv *kv) {
    cJSON *o = cJSON_CreateObject();
    char tmp[32];
    cJSON_AddItemToObject(o, "key", cJSON_CreateString(kv->key));
    cJSON *v = cJSON_AddObjectToObject(o, "value");
    switch (kv->type) {
    case ITUNA_ATTR_STRING: {
        char *s = strndup(kv->v.s.ptr, kv->v.s.len);
        cJSON_AddStringToObject(v, "stringValue", s);
        free(s);
        break;
    }
    case ITUNA_ATTR_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)kv->v.i);
        cJSON_AddStringToObject(v, "intValue", tmp);
        break;
    case ITUNA_ATTR_DOUBLE: cJSON_AddNumberToObject(v, "doubleValue", kv->v.d); break;
    default: cJSON_AddBoolToObject(v, "boolValue", kv->v.b); break;
    }
    return o;
}

static char *cj_encode(ituna_span *const *spans, size_t n, const ituna_resource *res) {
    cJSON *root = cJSON_CreateObject();
    cJSON *rs = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "resourceSpans"), rs);
    cJSON *ra = cJSON_AddArrayToObject(cJSON_AddObjectToObject(rs, "resource"), "attributes");
    for (uint32_t i = 0; i < res->n_attrs; i++) cJSON_AddItemToArray(ra, cj_kv(&res->attrs[i]));
    cJSON *ss = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(rs, "scopeSpans"), ss);
    cJSON *sc = cJSON_AddObjectToObject(ss, "scope");
    cJSON_AddStringToObject(sc, "name", res->scope_name);
    cJSON_AddStringToObject(sc, "version", res->scope_version);
    cJSON *arr = cJSON_AddArrayToObject(ss, "spans");
    char buf[40];
    for (size_t i = 0; i < n; i++) {
        const ituna_span *s = spans[i];
        cJSON *o = cJSON_CreateObject();
        hexs(s->ctx.trace_id, 16, buf);
        cJSON_AddStringToObject(o, "traceId", buf);
        hexs(s->ctx.span_id, 8, buf);
        cJSON_AddStringToObject(o, "spanId", buf);
        hexs(s->parent_span_id, 8, buf);
        cJSON_AddStringToObject(o, "parentSpanId", buf);
        cJSON_AddNumberToObject(o, "flags", ituna_otlp_span_flags(s));
        char *nm = strndup(s->name, s->name_len);
        cJSON_AddStringToObject(o, "name", nm);
        free(nm);
        cJSON_AddNumberToObject(o, "kind", s->kind);
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)s->start_ns);
        cJSON_AddStringToObject(o, "startTimeUnixNano", buf);
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)s->end_ns);
        cJSON_AddStringToObject(o, "endTimeUnixNano", buf);
        cJSON *at = cJSON_AddArrayToObject(o, "attributes");
        for (uint32_t k = 0; k < s->n_attrs; k++) cJSON_AddItemToArray(at, cj_kv(&s->attrs[k]));
        cJSON_AddItemToArray(arr, o);
    }
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

/* ---- timing ----------------------------------------------------------------------- */
typedef size_t (*run_fn)(void *ctx);

/* Median spans/s of RUNS runs of REPS batches. */
static double measure(run_fn fn, void *ctx, int reps) {
    double r[RUNS];
    for (int w = 0; w < 3; w++) sink += fn(ctx); /* warm caches and buffers */
    for (int i = 0; i < RUNS; i++) {
        uint64_t t0 = mono_ns();
        for (int k = 0; k < reps; k++) sink += fn(ctx);
        uint64_t dt = mono_ns() - t0;
        r[i] = (double)BATCH * reps / ((double)dt / 1e9);
    }
    qsort(r, RUNS, sizeof r[0], cmp_double);
    return r[RUNS / 2];
}

typedef struct ctx {
    ituna_span **spans;
    ituna_resource *res;
    ituna_buf buf;
    uint8_t *copy_src, *copy_dst;
    size_t copy_len;
} ctx;

static size_t run_proto(void *p) {
    ctx *c = p;
    c->buf.len = 0;
    ituna_otlp_encode_proto(c->spans, BATCH, c->res, &c->buf);
    return c->buf.len;
}
static size_t run_json(void *p) {
    ctx *c = p;
    c->buf.len = 0;
    ituna_otlp_encode_json(c->spans, BATCH, c->res, &c->buf);
    return c->buf.len;
}
static size_t run_memcpy(void *p) {
    ctx *c = p;
    memcpy(c->copy_dst, c->copy_src, c->copy_len);
    __asm__ volatile("" ::"r"(c->copy_dst) : "memory");
    return c->copy_dst[c->copy_len / 2];
}
static size_t run_cjson(void *p) {
    ctx *c = p;
    char *s = cj_encode(c->spans, BATCH, c->res);
    size_t n = strlen(s);
    free(s);
    return n;
}

int main(void) {
    static fx_typical ts[BATCH];
    static ituna_span *ps[BATCH];
    fx_resource res;
    fx_make_resource(&res);
    for (uint32_t i = 0; i < BATCH; i++) {
        fx_make_typical(&ts[i], i);
        ps[i] = &ts[i].span;
    }
    ctx c = { .spans = ps, .res = &res.res };
    ituna_buf_init(&c.buf);

    size_t proto_len = run_proto(&c);
    double proto = measure(run_proto, &c, REPS);
    c.copy_len = proto_len;
    c.copy_src = malloc(proto_len);
    c.copy_dst = malloc(proto_len);
    memcpy(c.copy_src, c.buf.data, proto_len);
    double floor = measure(run_memcpy, &c, REPS);

    size_t json_len = run_json(&c);
    double json = measure(run_json, &c, REPS);
    char *peer = cj_encode(ps, BATCH, &res.res);
    size_t peer_len = strlen(peer);
    free(peer);
    double cj = measure(run_cjson, &c, 2);

    printf("OTLP encoding, batch of %d typical spans (name, parent, 3 attributes), median of %d runs, one "
           "core\n",
           BATCH, RUNS);
    printf("  protobuf (ours)        %12.0f spans/s  %5.1f bytes/span\n", proto, (double)proto_len / BATCH);
    printf("  memcpy of same bytes   %12.0f spans/s  (floor)   encode/memcpy time ratio %.1fx\n", floor,
           floor / proto);
    printf("  JSON (ours)            %12.0f spans/s  %5.1f bytes/span\n", json, (double)json_len / BATCH);
    printf("  JSON via cJSON (peer)  %12.0f spans/s  %5.1f bytes/span  ours/cJSON speed ratio %.1fx\n", cj,
           (double)peer_len / BATCH, json / cj);
    printf("  target >= 1000000 spans/s: protobuf %s, JSON %s\n", proto >= 1e6 ? "met" : "NOT met",
           json >= 1e6 ? "met" : "NOT met");
    free(c.copy_src);
    free(c.copy_dst);
    ituna_buf_free(&c.buf);
    return 0;
}
