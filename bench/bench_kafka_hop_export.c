/* bench_kafka_hop_export.c - what the default (file) exporter costs per message of
 * bench_kafka_hop, on one core and without Kafka: the hop's two spans (a send
 * span with 11 attributes, a process span with 16 and a link, the shapes the
 * Kafka layer records) encoded as OTLP JSON, and encoded then appended to a file
 * through the file exporter itself, in batches of 512 spans, and encoded from
 * spans not in this core's cache. Median of runs, in CPU µs per message (2 spans)
 * and bytes per message.
 * Usage: bench_kafka_hop_export [file (default: a temporary file, removed)] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "../tests/c/clock_util.h"
#include "../tests/c/span_fixture.h"
#include "export_file.h"

#define BATCH 512 /* the default max-export-batch-size */
#define RUNS  21
#define REPS  20

/* CPU time of this thread (kernel time of the writes included): other load on
 * the machine does not count. */
static uint64_t cpu_ns(void) {
    return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

typedef struct hop_span {
    ituna_span span;
    ituna_kv attrs[16];
    ituna_link link;
    char key[16];
} hop_span;

static const char TOPIC[] = "bench-31479-1-1";

/* The send span of message i (even slot) or its process span (odd slot). */
static void make(hop_span *h, uint32_t i) {
    memset(h, 0, sizeof *h);
    ituna_span *s = &h->span;
    int process = i & 1;
    uint32_t msg = i / 2;
    fx_ids(s, (uint8_t)msg);
    s->ctx.span_id[6] = (uint8_t)process;
    s->ctx.span_id[7] = (uint8_t)(msg >> 8);
    s->ctx.trace_flags = 1;
    s->recording = 1;
    s->kind = process ? ITUNA_SPAN_KIND_CONSUMER : ITUNA_SPAN_KIND_PRODUCER;
    s->name = process ? "process bench-31479-1-1" : "send bench-31479-1-1";
    s->name_len = (uint32_t)strlen(s->name);
    s->start_ns = 1796266237370425595ull + msg * 20000ull + (uint64_t)process * 3000000ull;
    s->end_ns = s->start_ns + (process ? 24458ull : 999464352ull);
    snprintf(h->key, sizeof h->key, "order-%u", msg);
    uint32_t n = 0;
    h->attrs[n++] = fx_str("messaging.system", "kafka");
    h->attrs[n++] = fx_str("messaging.operation.name", process ? "process" : "send");
    h->attrs[n++] = fx_str("messaging.operation.type", process ? "process" : "send");
    h->attrs[n++] = fx_str("messaging.destination.name", TOPIC);
    h->attrs[n++] = fx_str("messaging.kafka.message.key", h->key);
    h->attrs[n++] = fx_int("messaging.message.body.size", 229);
    h->attrs[n++] = fx_str("server.address", "127.0.0.1");
    h->attrs[n++] = fx_int("server.port", 19092);
    h->attrs[n++] = fx_str("messaging.client.id", "bench-kafka-hop");
    h->attrs[n++] = fx_str("messaging.destination.partition.id", "1");
    h->attrs[n++] = fx_int("messaging.kafka.offset", msg);
    if (process) {
        h->attrs[n++] = fx_str("messaging.consumer.group.name", "bench-g-31479-1");
        h->attrs[n++] = fx_str("ituna.context.source", "header");
        h->attrs[n++] = fx_int("ituna.message.timestamp_ms", 1796266237370 + msg / 50);
        h->attrs[n++] = fx_str("ituna.message.timestamp_type", "create_time");
        h->attrs[n++] = fx_dbl("ituna.queue_wait_ms", (double)(300000 + msg * 7) / 1e6);
        memcpy(s->parent_span_id, s->ctx.span_id, 8);
        s->parent_span_id[6] = 0;
        s->has_parent = 1;
        s->parent_is_remote = 1;
        memcpy(h->link.trace_id, s->ctx.trace_id, 16);
        memcpy(h->link.span_id, s->parent_span_id, 8);
        h->link.trace_flags = 1;
        h->link.is_remote = 1;
        s->links = &h->link;
        s->n_links = 1;
    }
    s->attrs = h->attrs;
    s->n_attrs = n;
}

#define COLD 64 /* batches rotated through in the cold case: ~40 MB, far more than L2 */

typedef struct ctx {
    ituna_span **spans, **cold;
    size_t next;
    ituna_resource *res;
    ituna_buf buf;
    ituna_exporter *file;
} ctx;

static size_t run_encode(ctx *c) {
    c->buf.len = 0;
    ituna_otlp_encode_json(c->spans, BATCH, c->res, &c->buf);
    return c->buf.len;
}

/* Each batch a different one of COLD: spans come from memory, not from this
 * core's cache, as in a service where other threads wrote them. */
static size_t run_encode_cold(ctx *c) {
    c->buf.len = 0;
    ituna_otlp_encode_json(c->cold + (c->next++ % COLD) * BATCH, BATCH, c->res, &c->buf);
    return c->buf.len;
}

static size_t run_export(ctx *c) {
    ituna_export_result r;
    if (c->file->export_batch(c->file, c->spans, BATCH, c->res, 0, &r) != ITUNA_OK) {
        fprintf(stderr, "export: %s\n", r.message);
        exit(1);
    }
    return 0;
}

/* Median µs per message (BATCH / 2 messages a batch). */
static double measure(size_t (*fn)(ctx *), ctx *c) {
    double r[RUNS];
    for (int w = 0; w < 3; w++) fn(c);
    for (int i = 0; i < RUNS; i++) {
        uint64_t t0 = cpu_ns();
        for (int k = 0; k < REPS; k++) fn(c);
        r[i] = (double)(cpu_ns() - t0) / 1e3 / ((double)REPS * BATCH / 2);
    }
    qsort(r, RUNS, sizeof r[0], cmp_double);
    return r[RUNS / 2];
}

int main(int argc, char **argv) {
    static hop_span hs[BATCH];
    static ituna_span *ps[BATCH];
    fx_resource res;
    fx_make_resource(&res);
    for (uint32_t i = 0; i < BATCH; i++) {
        make(&hs[i], i);
        ps[i] = &hs[i].span;
    }
    char tmp[] = "/tmp/bench_kafka_hop_export_XXXXXX";
    const char *path = argc > 1 ? argv[1] : tmp;
    if (argc <= 1) {
        int fd = mkstemp(tmp);
        if (fd < 0) return 1;
        close(fd);
    }
    hop_span *cold = malloc(sizeof *cold * BATCH * COLD);
    ituna_span **cps = malloc(sizeof *cps * BATCH * COLD);
    if (!cold || !cps) return 1;
    for (uint32_t i = 0; i < BATCH * COLD; i++) {
        make(&cold[i], i);
        cps[i] = &cold[i].span;
    }
    ctx c = { .spans = ps, .cold = cps, .res = &res.res };
    ituna_buf_init(&c.buf);
    char err[256];
    if (ituna_exporter_file_open(NULL, path, &c.file, err, sizeof err) != ITUNA_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    size_t bytes = run_encode(&c);
    double enc = measure(run_encode, &c);
    double exp = measure(run_export, &c);
    double ecold = measure(run_encode_cold, &c);
    printf("file exporter, the hop's 2 spans a message, batches of %d spans, median of %d runs, one core:\n",
           BATCH, RUNS);
    printf("  encode only        %6.3f us/message  %6.0f bytes/message\n", enc, (double)bytes / (BATCH / 2));
    printf("  encode + write     %6.3f us/message\n", exp);
    printf("  encode, cold spans %6.3f us/message\n", ecold);
    c.file->destroy(c.file);
    ituna_buf_free(&c.buf);
    if (argc <= 1) unlink(tmp);
    free(cold);
    free(cps);
    return 0;
}
