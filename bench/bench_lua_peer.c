/* bench_lua_peer.c - the C side of bench/bench_lua.lua: the same work as the Lua
 * benchmark through the public C API, in a separate process, same settings
 * (exporter "none", queue 65536). Prints "name value" lines (ns per op):
 *   c_span_ns          span start+end with 2 attributes given at start
 *   c_span_current_ns  the same, plus attach/detach as the current context
 *                      (what tracer:start_span / tracer:span do in Lua)
 *   c_span_nested_ns   c_span_current_ns inside an open parent span (as in a
 *                      consumer body: the context stack is never empty)
 *   c_publish_ns       producer publish of a 100-byte message on the embedded
 *                      broker (enqueue cost; delivery waited for after timing)
 *   c_publish_flush_ns the same including the final flush, per message
 * Usage: bench_lua_peer [N] (default 200000 spans, N/10 messages). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ituna/ituna.h"

#define RUNS 5

static ituna_tracer *make_tracer(void) {
    char err[256];
    ituna_config *cfg = ituna_config_new();
    ituna_config_set(cfg, "tracer.service-name", "bench-lua-peer", err, sizeof err);
    ituna_config_set(cfg, "exporter.type", "none", err, sizeof err);
    ituna_config_set(cfg, "exporter.max-queue-size", "65536", err, sizeof err);
    ituna_config_set(cfg, "exporter.max-export-batch-size", "4096", err, sizeof err);
    ituna_tracer *t = NULL;
    if (ituna_tracer_create(cfg, &t, err, sizeof err) != ITUNA_OK) {
        fprintf(stderr, "tracer: %s\n", err);
        exit(1);
    }
    ituna_config_destroy(cfg);
    return t;
}

static double span_loop(ituna_tracer *t, int n, int current) {
    double best = 1e18;
    for (int r = 0; r < RUNS; r++) {
        uint64_t t0 = ituna_now_ns();
        for (int i = 0; i < n; i++) {
            ituna_attr a[2] = { ituna_attr_int("k1", i), ituna_attr_str("k2", "value") };
            ituna_span_options o = { .attrs = a, .n_attrs = 2 };
            ituna_span *s;
            ituna_span_start(t, "op", &o, &s);
            int tok = -1;
            if (current) ituna_context_attach(ituna_span_get_context(s), &tok);
            if (current) ituna_context_detach(tok);
            ituna_span_end(s, 0);
        }
        double ns = (double)(ituna_now_ns() - t0) / n;
        if (ns < best) best = ns;
        ituna_tracer_flush(t, 10000);
    }
    return best;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 200000;
    if (n <= 0) n = 200000;
    ituna_tracer *t = make_tracer();
    printf("c_span_ns %.1f\n", span_loop(t, n, 0));
    printf("c_span_current_ns %.1f\n", span_loop(t, n, 1));
    ituna_span *parent;
    ituna_span_start(t, "parent", NULL, &parent);
    int ptok;
    ituna_context_attach(ituna_span_get_context(parent), &ptok);
    printf("c_span_nested_ns %.1f\n", span_loop(t, n, 1));
    ituna_context_detach(ptok);
    ituna_span_end(parent, 0);

    char err[256];
    ituna_mock_cluster *m = NULL;
    if (ituna_mock_cluster_start(1, 4, &m, err, sizeof err) != ITUNA_OK) {
        fprintf(stderr, "mock cluster: %s\n", err);
        return 1;
    }
    ituna_producer *p = NULL;
    const char *props[] = { "linger.ms", "5", NULL };
    ituna_producer_options po = { .bootstrap = ituna_mock_cluster_bootstrap(m), .properties = props };
    if (ituna_producer_create(t, ituna_tracer_config(t), &po, &p, err, sizeof err) != ITUNA_OK) {
        fprintf(stderr, "producer: %s\n", err);
        return 1;
    }
    char payload[101];
    memset(payload, 'x', 100);
    payload[100] = '\0';
    int nmsg = n / 10 > 0 ? n / 10 : 1;
    /* warm up: topic metadata and connection */
    ituna_message_out w = { .topic = "bench-lua-peer", .value = payload, .value_len = 100 };
    ituna_producer_publish(p, &w, err, sizeof err);
    ituna_producer_flush(p, 10000);
    double best = 1e18, best_flush = 1e18;
    for (int r = 0; r < RUNS; r++) {
        uint64_t t0 = ituna_now_ns();
        for (int i = 0; i < nmsg; i++) {
            char key[32];
            int kl = snprintf(key, sizeof key, "k%d", i);
            ituna_message_out mo = { .topic = "bench-lua-peer",
                                     .key = key,
                                     .key_len = (size_t)kl,
                                     .value = payload,
                                     .value_len = 100 };
            if (ituna_producer_publish(p, &mo, err, sizeof err) != ITUNA_OK) {
                fprintf(stderr, "publish: %s\n", err);
                return 1;
            }
        }
        uint64_t t1 = ituna_now_ns();
        ituna_producer_flush(p, 60000);
        uint64_t t2 = ituna_now_ns();
        double a = (double)(t1 - t0) / nmsg, b = (double)(t2 - t0) / nmsg;
        if (a < best) best = a;
        if (b < best_flush) best_flush = b;
    }
    printf("c_publish_ns %.1f\n", best);
    printf("c_publish_flush_ns %.1f\n", best_flush);
    ituna_producer_destroy(p, 10000);
    ituna_mock_cluster_stop(m);
    ituna_tracer_destroy(t);
    return 0;
}
