/* hop_ituna.c - one Kafka hop with ituna's C API, for bench/kafka_peers.py: consume
 * an order (CONSUMER span), two child spans, publish it on (PRODUCER span, context in
 * the headers). Settings come from the environment as the harness sets them (HOP_*,
 * OTEL_*; OTEL_SDK_DISABLED=true for the untraced case). Prints one RESULT line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ituna/ituna.h"

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *env(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "hop_ituna: %s is not set\n", name);
        exit(2);
    }
    return v;
}

typedef struct hop {
    ituna_tracer *t;
    ituna_consumer *c;
    ituna_producer *p;
    const char *out_topic;
    long long *lat;
    char buf[4096];
} hop;

/* The order with "validated" set: the payload up to its closing brace plus the field
 * (the Python and Lua hops decode and re-encode; C services splice). */
static size_t validate(const char *v, size_t n, char *out, size_t cap, int ok) {
    while (n && v[n - 1] != '}') n--;
    const char *tail = ok ? ", \"validated\": true}" : ", \"validated\": false}";
    size_t tl = strlen(tail);
    if (!n || n - 1 + tl > cap) return 0;
    memcpy(out, v, n - 1);
    memcpy(out + n - 1, tail, tl);
    return n - 1 + tl;
}

static int run(hop *h, int count, int timed) {
    char err[512];
    for (int i = 0; i < count; i++) {
        ituna_message *m = NULL;
        if (ituna_consumer_poll(h->c, 10000, &m, err, sizeof err) != ITUNA_OK || !m) {
            fprintf(stderr, "hop_ituna: no message within 10 s after %d: %s\n", i, m ? "" : err);
            return -1;
        }
        double t0 = clock_s(CLOCK_MONOTONIC);
        int token;
        ituna_context_attach(ituna_span_get_context(ituna_message_span(m)), &token);
        size_t n, kn;
        const char *v = ituna_message_value(m, &n);
        const void *key = ituna_message_key(m, &kn);
        ituna_span *s;
        ituna_span_start(h->t, "address_validation", NULL, &s);
        int ok = v && (memmem(v, n, "\"address\"", 9) || memmem(v, n, "\"table\"", 7));
        ituna_span_end(s, 0);
        ituna_span_start(h->t, "name_validation", NULL, &s);
        ok = ok && memmem(v, n, "\"customer_name\"", 15);
        ituna_span_end(s, 0);
        size_t len = validate(v, n, h->buf, sizeof h->buf, ok);
        ituna_message_out mo = { .topic = h->out_topic,
                                 .key = key,
                                 .key_len = kn,
                                 .value = h->buf,
                                 .value_len = len,
                                 .partition = -1 };
        ituna_err e = ituna_producer_publish(h->p, &mo, err, sizeof err);
        ituna_context_detach(token);
        if (e != ITUNA_OK) {
            fprintf(stderr, "hop_ituna: publish: %s\n", err);
            ituna_message_done(m, ITUNA_HANDLED_ERROR, err, NULL, 0);
            return -1;
        }
        if (ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err) != ITUNA_OK) {
            fprintf(stderr, "hop_ituna: done: %s\n", err);
            return -1;
        }
        if (timed) h->lat[i] = (long long)((clock_s(CLOCK_MONOTONIC) - t0) * 1e9);
    }
    return 0;
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static void proc_status(double *rss, double *hwm) {
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    *rss = *hwm = 0;
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "VmRSS:", 6)) *rss = atof(line + 6) / 1024.0;
        if (!strncmp(line, "VmHWM:", 6)) *hwm = atof(line + 6) / 1024.0;
    }
    fclose(f);
}

int main(void) {
    const char *bootstrap = env("HOP_BOOTSTRAP"), *in = env("HOP_IN");
    int n = atoi(env("HOP_N")), warm = atoi(env("HOP_WARM"));
    char err[512];
    hop h = { .out_topic = env("HOP_OUT") };
    ituna_config *cfg = ituna_config_new();
    if (ituna_config_load_env(cfg, err, sizeof err) != ITUNA_OK ||
        ituna_tracer_create(cfg, &h.t, err, sizeof err) != ITUNA_OK) {
        fprintf(stderr, "hop_ituna: %s\n", err);
        return 1;
    }
    ituna_tracer_set_global(h.t);
    const char *topics[] = { in, NULL };
    const char *cprops[] = { "auto.offset.reset", "earliest", NULL };
    ituna_consumer_options co = {
        .bootstrap = bootstrap, .group = env("HOP_GROUP"), .topics = topics, .properties = cprops
    };
    ituna_producer_options po = { .bootstrap = bootstrap, .payload_carrier = -1 };
    if (ituna_consumer_create(h.t, cfg, &co, &h.c, err, sizeof err) != ITUNA_OK ||
        ituna_producer_create(h.t, cfg, &po, &h.p, err, sizeof err) != ITUNA_OK) {
        fprintf(stderr, "hop_ituna: %s\n", err);
        return 1;
    }
    h.lat = calloc((size_t)n + 1, sizeof *h.lat);
    if (run(&h, warm, 0)) return 1;
    ituna_producer_flush(h.p, 30000);
    ituna_tracer_flush(h.t, 30000);
    double cpu0 = clock_s(CLOCK_PROCESS_CPUTIME_ID), wall0 = clock_s(CLOCK_MONOTONIC);
    if (run(&h, n, 1)) return 1;
    if (ituna_producer_flush(h.p, 30000) != ITUNA_OK)
        fprintf(stderr, "hop_ituna: producer flush timed out\n");
    ituna_tracer_flush(h.t, 30000);
    double cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0, wall = clock_s(CLOCK_MONOTONIC) - wall0;
    qsort(h.lat, (size_t)n, sizeof *h.lat, cmp_ll);
    double rss, hwm;
    proc_status(&rss, &hwm);
    ituna_tracer_stats st;
    ituna_tracer_get_stats(h.t, &st);
    printf(
        "RESULT {\"n\": %d, \"cpu_s\": %.6f, \"wall_s\": %.6f, \"lat_p50_us\": %.3f, \"lat_p99_us\": %.3f, "
        "\"rss_mb\": %.1f, \"hwm_mb\": %.1f, \"spans_dropped\": %llu, \"spans_export_failed\": %llu}\n",
        n, cpu, wall, n ? h.lat[n / 2] / 1e3 : 0.0, n ? h.lat[(size_t)(n * 0.99)] / 1e3 : 0.0, rss, hwm,
        (unsigned long long)st.spans_dropped, (unsigned long long)st.spans_export_failed);
    fflush(stdout);
    ituna_consumer_close(h.c);
    ituna_consumer_destroy(h.c);
    ituna_producer_destroy(h.p, 10000);
    ituna_tracer_shutdown(h.t, 10000);
    ituna_tracer_destroy(h.t);
    ituna_config_destroy(cfg);
    free(h.lat);
    return 0;
}
