/* bench_hop_spans.c - the tracing part of one Kafka hop without Kafka: per message a
 * consumer span with the Kafka layer's attributes and a link, two child spans and a
 * producer span with its attributes and an injected traceparent (the 4 spans of
 * bench/peers/hop_ituna.c), exported by the real batch processor to (a) an OTLP
 * protobuf encoder whose request is dropped instead of sent and (b) the file
 * exporter (OTLP JSON lines, written to a temporary file). Median of runs, in CPU
 * µs per message: the whole process (export thread included) and the calling
 * thread alone. Steadier than a Kafka hop on a shared machine: no broker, no
 * network. Prints figures; it is not a test.
 * Usage: bench_hop_spans [messages a run (default 50000)] */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "../tests/c/clock_util.h"
#include "internal.h"
#include "kafka_common.h"

typedef struct proto_state {
    ituna_buf buf;
    size_t bytes;
} proto_state;

static ituna_err proto_export(ituna_exporter *e, ituna_span *const *spans, size_t n,
                              const ituna_resource *res, uint64_t deadline, ituna_export_result *out) {
    (void)deadline;
    proto_state *ps = e->state;
    memset(out, 0, sizeof *out);
    ps->buf.len = 0;
    if (!ituna_otlp_encode_proto(spans, n, res, &ps->buf)) return ITUNA_ERR_NOMEM;
    ps->bytes += ps->buf.len;
    return ITUNA_OK;
}

static void proto_destroy(ituna_exporter *e) {
    proto_state *ps = e->state;
    ituna_buf_free(&ps->buf);
    free(ps);
    free(e);
}

/* kind 0: protobuf, encoded and dropped; 1: the file exporter into path. */
static ituna_tracer *tracer(int kind, const char *path, int n) {
    ituna_config *cfg = ituna_config_new();
    char err[256], q[32];
    ituna_config_set(cfg, "tracer.service-name", "bench-hop-spans", err, sizeof err);
    snprintf(q, sizeof q, "%d", 4 * n + 512); /* every span of a run fits: none dropped */
    ituna_config_set(cfg, "exporter.max-queue-size", q, err, sizeof err);
    ituna_tracer *t = NULL;
    if (kind == 1) {
        ituna_config_set(cfg, "exporter.type", "file", err, sizeof err);
        ituna_config_set(cfg, "exporter.file", path, err, sizeof err);
        if (ituna_tracer_create(cfg, &t, err, sizeof err)) fprintf(stderr, "tracer: %s\n", err);
    } else {
        ituna_exporter *e = calloc(1, sizeof *e);
        e->state = calloc(1, sizeof(proto_state));
        e->export_batch = proto_export;
        e->destroy = proto_destroy;
        if (ituna_tracer_create_ex(cfg, e, &t, err, sizeof err)) fprintf(stderr, "tracer: %s\n", err);
    }
    ituna_config_destroy(cfg);
    return t;
}

/* One message's spans, in the shapes the Kafka layer records. */
static void hop(ituna_tracer *t, const ituna_kafka_endpoint *ep, int i, const uint8_t tid[16]) {
    char key[40], part[8] = "0", tp[64];
    int kl = snprintf(key, sizeof key, "6f1c1c1e-3c55-4d8e-9a59-%012d", i);
    ituna_span_context remote = { .trace_flags = 1, .is_remote = 1 };
    memcpy(remote.trace_id, tid, 16);
    memcpy(remote.span_id, tid + 4, 8);
    remote.trace_id[0] ^= (uint8_t)i;
    ituna_span_options co = { .parent = &remote, .kind = ITUNA_SPAN_KIND_CONSUMER };
    ituna_span *c, *s, *p;
    ituna_span_start(t, "process orders", &co, &c);
    ituna_kafka_span_attrs(c, "process", "orders", key, (size_t)kl, 230, ep);
    ITUNA_SET_STR_LIT(c, "messaging.destination.partition.id", part, ITUNA_LIT_FRESH);
    ITUNA_SET_INT_LIT(c, "messaging.kafka.offset", i, ITUNA_LIT_FRESH);
    ITUNA_SET_STR_LIT(c, "messaging.consumer.group.name", "validation-service", ITUNA_LIT_FRESH);
    ITUNA_SET_STR_LIT(c, "ituna.context.source", "headers", ITUNA_LIT_VALUE | ITUNA_LIT_FRESH);
    ITUNA_SET_INT_LIT(c, "ituna.message.timestamp_ms", 1764745200000 + i, ITUNA_LIT_FRESH);
    ITUNA_SET_STR_LIT(c, "ituna.message.timestamp_type", "create", ITUNA_LIT_VALUE | ITUNA_LIT_FRESH);
    ituna_span_add_link(c, &remote, NULL, 0);
    ituna_span_set_double(c, "ituna.queue_wait_ms", 0.25);
    int tok;
    ituna_context_attach(ituna_span_get_context(c), &tok);
    ituna_span_start(t, "address_validation", NULL, &s);
    ituna_span_end(s, 0);
    ituna_span_start(t, "name_validation", NULL, &s);
    ituna_span_end(s, 0);
    ituna_span_options po = { .kind = ITUNA_SPAN_KIND_PRODUCER };
    ituna_span_start(t, "send validated-orders", &po, &p);
    ituna_kafka_span_attrs(p, "send", "validated-orders", key, (size_t)kl, 256, ep);
    ituna_traceparent_format(ituna_span_get_context(p), tp, sizeof tp);
    ITUNA_SET_STR_LIT(p, "messaging.destination.partition.id", part, ITUNA_LIT_FRESH);
    ituna_span_end(p, 0);
    ituna_context_detach(tok);
    ituna_span_end(c, 0);
}

#define RUNS 9

static void measure(const char *label, int kind, int n) {
    char path[] = "/tmp/bench_hop_spans_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    ituna_tracer *t = tracer(kind, path, n);
    if (!t) return;
    ituna_kafka_endpoint ep;
    memset(&ep, 0, sizeof ep);
    snprintf(ep.host, sizeof ep.host, "127.0.0.1");
    ep.port = 9092;
    snprintf(ep.client_id, sizeof ep.client_id, "rdkafka");
    uint8_t tid[16];
    ituna_random_trace_id(tid);
    double proc[RUNS], self[RUNS];
    for (int r = -1; r < RUNS; r++) { /* run -1 warms the pool and the caches */
        uint64_t p0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID), s0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
        for (int i = 0; i < n; i++) hop(t, &ep, i, tid);
        uint64_t s1 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
        ituna_tracer_flush(t, 60000);
        uint64_t p1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
        if (r < 0) continue;
        proc[r] = (double)(p1 - p0) / 1e3 / n;
        self[r] = (double)(s1 - s0) / 1e3 / n;
        if (kind == 1) { /* keep the file (and the page cache) small between runs */
            int tf = open(path, O_WRONLY);
            if (tf >= 0 && ftruncate(tf, 0) != 0) perror("ftruncate");
            if (tf >= 0) close(tf);
        }
    }
    ituna_tracer_stats st;
    ituna_tracer_get_stats(t, &st);
    qsort(proc, RUNS, sizeof *proc, cmp_double);
    qsort(self, RUNS, sizeof *self, cmp_double);
    printf("%-34s process %.2f CPU us/msg (min %.2f), calling thread %.2f (min %.2f); spans dropped %llu, "
           "failed %llu\n",
           label, proc[RUNS / 2], proc[0], self[RUNS / 2], self[0], (unsigned long long)st.spans_dropped,
           (unsigned long long)st.spans_export_failed);
    ituna_tracer_shutdown(t, 10000);
    ituna_tracer_destroy(t);
    unlink(path);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 50000;
    if (n <= 0) return 2;
    printf("4 spans a message (consumer, 2 children, producer), %d messages a run, median of %d:\n", n, RUNS);
    measure("OTLP protobuf (encoded, not sent)", 0, n);
    measure("file exporter (OTLP JSON lines)", 1, n);
    return 0;
}
