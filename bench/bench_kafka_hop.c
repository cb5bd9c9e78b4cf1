/* bench_kafka_hop.c - messages/s through one Kafka hop (publish -> consume ->
 * handler -> offset store) with tracing on against the same code with tracing
 * off ([tracer] disabled=true) (and with spans recorded but not exported), on the embedded mock cluster and, when
 * ITUNA_TEST_KAFKA=host:port is set, on that real broker. Prints the ratio
 * (target >= 0.95), the time tracing adds per message, and the same in process
 * CPU time per message.
 * Usage: bench_kafka_hop [messages (default 50000)] [rounds (default 5)] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../tests/c/clock_util.h"
#include "ituna/ituna.h"

static double now_s(void) {
    return (double)mono_ns() / 1e9;
}

typedef struct pub_args {
    ituna_producer *p;
    const char *topic;
    int n;
    int failed;
    int static_header; /* the untraced peer that still carries a traceparent's bytes */
} pub_args;

/* Same length as the traceparent the traced run injects. */
static const char STATIC_TP[] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

static const char PAYLOAD[] =
    "{\"order_id\": \"6f1c1c1e-3c55-4d8e-9a59-8d0f6c3c1e11\", \"customer_id\": "
    "\"0b7d0c62-5f0e-4b9a-8a49-1e2b4a7f9c3d\", \"order_details\": {\"tuna roll\": 2, \"miso soup\": 1, "
    "\"edamame\": 3}, \"table\": 12, \"source\": \"onsite\", \"customer_name\": \"Ada\"}";

static void *publisher(void *arg) {
    pub_args *a = arg;
    char err[256], key[32];
    for (int i = 0; i < a->n; i++) {
        snprintf(key, sizeof key, "order-%d", i);
        ituna_header h = { "traceparent", STATIC_TP, sizeof STATIC_TP - 1 };
        ituna_message_out mo = { .topic = a->topic,
                                 .key = key,
                                 .key_len = strlen(key),
                                 .value = PAYLOAD,
                                 .value_len = sizeof PAYLOAD - 1,
                                 .partition = -1 };
        if (a->static_header) {
            mo.headers = &h;
            mo.n_headers = 1;
        }
        while (ituna_producer_publish(a->p, &mo, err, sizeof err) != ITUNA_OK) {
            if (strstr(err, "Queue full") == NULL) {
                fprintf(stderr, "publish: %s\n", err);
                a->failed = 1;
                return NULL;
            }
        }
    }
    return NULL;
}

static ituna_handler_result handler(ituna_message *m, void *opaque, char *reason, size_t size) {
    (void)reason, (void)size;
    size_t n;
    const char *v = ituna_message_value(m, &n);
    /* minimal "processing": look at the payload */
    *(size_t *)opaque += v && memchr(v, '}', n) ? 1 : 0;
    return ITUNA_HANDLED_OK;
}

static double cpu_s(void) {
    return (double)clock_ns(CLOCK_PROCESS_CPUTIME_ID) / 1e9;
}

/* One timed run; returns messages/s or -1, and in *cpu_us the process's CPU time
 * per message (all threads) from the first publish until every span is exported:
 * what the run costs, whatever else the machine is doing. */
static double run(const char *bootstrap, int traced, int n, const char *traces, double *cpu_us) {
    *cpu_us = 0;
    ituna_config *cfg = ituna_config_new();
    char err[512], topic[64], group[64];
    static int seq;
    snprintf(topic, sizeof topic, "bench-%d-%d-%d", (int)getpid(), traced, seq);
    snprintf(group, sizeof group, "bench-g-%d-%d", (int)getpid(), seq++);
    ituna_config_set(cfg, "tracer.service-name", "bench-kafka-hop", err, sizeof err);
    if (traced == 2) {
        ituna_config_set(cfg, "exporter.type", "none", err, sizeof err); /* spans recorded, not exported */
    } else if (traced == 1) {
        ituna_config_set(cfg, "exporter.type", "file", err, sizeof err);
        ituna_config_set(cfg, "exporter.file", traces, err, sizeof err);
        ituna_config_set(cfg, "exporter.max-queue-size", "65536", err, sizeof err);
    } else { /* 0: tracing off; 3: off, with a static header of a traceparent's size */
        ituna_config_set(cfg, "tracer.disabled", "true", err, sizeof err);
        ituna_config_set(cfg, "exporter.type", "none", err, sizeof err);
    }
    ituna_tracer *t = NULL;
    if (ituna_tracer_create(cfg, &t, err, sizeof err)) {
        fprintf(stderr, "tracer: %s\n", err);
        ituna_config_destroy(cfg);
        return -1;
    }
    const char *props[] = { "linger.ms", "5", NULL };
    ituna_producer_options po = { .bootstrap = bootstrap, .properties = props, .payload_carrier = 0 };
    ituna_producer *p = NULL;
    const char *topics[] = { topic, NULL };
    const char *cprops[] = { "session.timeout.ms", "6000", "heartbeat.interval.ms", "500", NULL };
    ituna_consumer_options co = {
        .bootstrap = bootstrap, .group = group, .topics = topics, .properties = cprops
    };
    ituna_consumer *c = NULL;
    double rate = -1;
    if (ituna_producer_create(t, cfg, &po, &p, err, sizeof err) ||
        ituna_consumer_create(t, cfg, &co, &c, err, sizeof err)) {
        fprintf(stderr, "client: %s\n", err);
        goto out;
    }
    /* warm-up: topic created, group joined, before the clock starts */
    pub_args warm = { p, topic, 1, 0, traced == 3 };
    publisher(&warm);
    size_t seen = 0;
    int handled = 0;
    double deadline = now_s() + 30;
    while (!handled && now_s() < deadline)
        if (ituna_consumer_run_once(c, 100, handler, &seen, &handled, err, sizeof err)) break;
    if (!handled) {
        fprintf(stderr, "warm-up message not consumed\n");
        goto out;
    }
    pub_args pa = { p, topic, n, 0, traced == 3 };
    pthread_t th;
    double t0 = now_s(), c0 = cpu_s();
    pthread_create(&th, NULL, publisher, &pa);
    int got = 0;
    deadline = t0 + 120;
    while (got < n && now_s() < deadline) {
        if (ituna_consumer_run_once(c, 100, handler, &seen, &handled, err, sizeof err)) {
            fprintf(stderr, "consume: %s\n", err);
            break;
        }
        got += handled;
    }
    double t1 = now_s();
    pthread_join(th, NULL);
    ituna_tracer_flush(t, 30000);
    *cpu_us = (cpu_s() - c0) / n * 1e6;
    if (got == n && !pa.failed)
        rate = n / (t1 - t0);
    else
        fprintf(stderr, "only %d of %d messages consumed\n", got, n);
out:
    if (c) {
        ituna_consumer_close(c);
        ituna_consumer_destroy(c);
    }
    if (p) ituna_producer_destroy(p, 10000);
    ituna_tracer_shutdown(t, 30000);
    ituna_tracer_destroy(t);
    ituna_config_destroy(cfg);
    return rate;
}

static double median(double *v, int k) {
    qsort(v, (size_t)k, sizeof *v, cmp_double);
    return v[k / 2];
}

static void bench(const char *label, const char *bootstrap, int n, int rounds) {
    double rate[4][16], cpu[4][16];
    char traces[] = "/tmp/bench_kafka_hop_XXXXXX";
    int fd = mkstemp(traces);
    if (fd >= 0) close(fd);
    int k = 0;
    for (int r = 0; r < rounds && r < 16; r++) {
        /* Every variant runs once a round, in an order rotated each round: a
         * broker warming up (JIT, page cache) must not favour whichever runs last.
         * Modes: 0 off, 1 on (file exporter), 2 on without export, 3 off + header. */
        int ok = 1;
        for (int v = 0; v < 4; v++) {
            int mode = (v + r) % 4;
            rate[mode][k] = run(bootstrap, mode, n, traces, &cpu[mode][k]);
            ok = ok && rate[mode][k] > 0;
        }
        if (!ok) {
            fprintf(stderr, "%s: round %d failed\n", label, r);
            continue;
        }
        printf("  %s round %d: tracing off %.0f msg/s (%.2f CPU us/msg), on %.0f (%.2f), on without export "
               "%.0f (%.2f), off + 55-byte header %.0f (%.2f)\n",
               label, r, rate[0][k], cpu[0][k], rate[1][k], cpu[1][k], rate[2][k], cpu[2][k], rate[3][k],
               cpu[3][k]);
        k++;
    }
    struct stat st;
    if (k && stat(traces, &st) == 0)
        printf("%s: the traced runs wrote %.0f bytes of OTLP JSON per message (2 spans)\n", label,
               (double)st.st_size / ((double)rounds * (n + 1)));
    const char *keep = getenv("BENCH_KEEP_TRACES");
    if (keep && *keep)
        rename(traces, keep);
    else
        unlink(traces);
    if (!k) return;
    double moff = median(rate[0], k), mon = median(rate[1], k), mne = median(rate[2], k),
           mw = median(rate[3], k);
    double coff = median(cpu[0], k), con = median(cpu[1], k), cne = median(cpu[2], k), cw = median(cpu[3], k);
    printf("%s: %d messages/run, median of %d: off %.0f msg/s, on %.0f msg/s, ratio %.3f (target >= 0.95), "
           "added %.2f us/message\n",
           label, n, k, moff, mon, mon / moff, (1.0 / mon - 1.0 / moff) * 1e6);
    /* The same comparison in CPU time (all threads, export included): steadier than
     * msg/s on a machine that other work shares. */
    printf("%s: CPU us/message: off %.2f, on %.2f, ratio off/on %.3f, added %.2f us/message\n", label, coff,
           con, coff / con, con - coff);
    printf("%s: spans recorded but not exported (exporter none): %.0f msg/s, ratio %.3f, added %.2f "
           "us/message; CPU %.2f us/message, ratio %.3f\n",
           label, mne, mne / moff, (1.0 / mne - 1.0 / moff) * 1e6, cne, coff / cne);
    /* What the header's bytes cost on their own (no tracing): the part of the gap
     * that W3C propagation in headers brings to any tracer. */
    printf("%s: untraced + a traceparent-sized header: %.0f msg/s, ratio %.3f; traced vs that peer %.3f; "
           "CPU %.2f us/message\n",
           label, mw, mw / moff, mon / mw, cw);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 50000;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    if (n <= 0 || rounds <= 0) {
        fprintf(stderr, "usage: bench_kafka_hop [messages] [rounds]\n");
        return 2;
    }
    ituna_log_set_level(ITUNA_LOG_ERROR);
    /* BENCH_ONLY=<mode> (0 off, 1 traced, 2 recorded only, 3 off + header): that
     * mode alone, n messages, `rounds` times, on ITUNA_TEST_KAFKA or the mock (for perf). */
    const char *only = getenv("BENCH_ONLY");
    if (only && *only) {
        ituna_mock_cluster *m = NULL;
        char e[256];
        const char *bs = getenv("ITUNA_TEST_KAFKA");
        if ((!bs || !*bs) && ituna_mock_cluster_start(1, 0, &m, e, sizeof e) == ITUNA_OK)
            bs = ituna_mock_cluster_bootstrap(m);
        char traces[] = "/tmp/bench_kafka_hop_XXXXXX";
        int fd = mkstemp(traces);
        if (fd >= 0) close(fd);
        for (int r = 0; r < rounds; r++) {
            double c, rt = run(bs, atoi(only), n, traces, &c);
            printf("mode %s: %.0f msg/s, %.2f CPU us/msg\n", only, rt, c);
        }
        unlink(traces);
        if (m) ituna_mock_cluster_stop(m);
        return 0;
    }
    ituna_mock_cluster *mock = NULL;
    char err[256];
    if (ituna_mock_cluster_start(1, 0, &mock, err, sizeof err)) {
        fprintf(stderr, "mock cluster: %s\n", err);
        return 1;
    }
    bench("mock cluster", ituna_mock_cluster_bootstrap(mock), n, rounds);
    ituna_mock_cluster_stop(mock);
    const char *real = getenv("ITUNA_TEST_KAFKA");
    if (real && *real)
        bench("real broker", real, n, rounds);
    else
        printf("real broker: skipped (ITUNA_TEST_KAFKA not set)\n");
    return 0;
}
