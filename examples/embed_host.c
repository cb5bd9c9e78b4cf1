/* embed_host.c - a C host embedding ituna-core: it starts a span, publishes a
 * traced message, consumes it back (the CONSUMER span continues the trace) and
 * checks that one trace crossed Kafka. Kafka: ITUNA_KAFKA_BOOTSTRAP when set,
 * else the embedded test broker (librdkafka's mock cluster) in this process.
 * Spans go where the environment says (OTEL_* / ITUNA_TRACES_FILE; default an
 * OTLP JSON-lines file). Exit 0 on success, 1 with a message otherwise.
 *
 * Build: see Makefile (pkg-config) or CMakeLists.txt (find_package(ituna)). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ituna/ituna.h>

static int fail(const char *what, ituna_err err, const char *errstr) {
    fprintf(stderr, "embed_host: %s: %s\n", what, errstr && errstr[0] ? errstr : ituna_err2str(err));
    return EXIT_FAILURE;
}

int main(void) {
    char err[512] = "";
    ituna_err rc;

    /* settings: defaults + environment, then this program's own name */
    ituna_config *cfg = ituna_config_new();
    if (!cfg) return fail("config", ITUNA_ERR_NOMEM, NULL);
    if ((rc = ituna_config_load_env(cfg, err, sizeof err)) != ITUNA_OK ||
        (!ituna_config_get(cfg, "tracer", "service-name") &&
         (rc = ituna_config_set(cfg, "tracer.service-name", "embed-example", err, sizeof err)) != ITUNA_OK))
        return fail("config", rc, err);

    ituna_tracer *tracer = NULL;
    if ((rc = ituna_tracer_create(cfg, &tracer, err, sizeof err)) != ITUNA_OK) return fail("tracer", rc, err);

    /* Kafka: the configured broker, else the embedded test cluster */
    ituna_mock_cluster *mock = NULL;
    const char *bootstrap = ituna_config_bootstrap(cfg, NULL);
    if (!bootstrap) {
        if ((rc = ituna_mock_cluster_start(1, 4, &mock, err, sizeof err)) != ITUNA_OK)
            return fail("embedded broker", rc, err);
        bootstrap = ituna_mock_cluster_bootstrap(mock);
        printf("embedded test broker on %s\n", bootstrap);
    }

    char topic[64], key[64];
    snprintf(topic, sizeof topic, "embed-example-%llu", (unsigned long long)(ituna_now_ns() / 1000));
    snprintf(key, sizeof key, "order-%llu", (unsigned long long)(ituna_now_ns() % 1000000));

    /* 1. a span, and inside it a traced publish */
    ituna_producer *producer = NULL;
    ituna_producer_options po = { .bootstrap = bootstrap };
    if ((rc = ituna_producer_create(tracer, cfg, &po, &producer, err, sizeof err)) != ITUNA_OK)
        return fail("producer", rc, err);
    ituna_span *order = NULL;
    ituna_attr attrs[] = { ituna_attr_str("order.id", key), ituna_attr_int("order.items", 3) };
    ituna_span_options so = { .attrs = attrs, .n_attrs = 2 };
    if ((rc = ituna_span_start(tracer, "place-order", &so, &order)) != ITUNA_OK)
        return fail("span", rc, NULL);
    char trace_id[33];
    ituna_trace_id_hex(ituna_span_get_context(order), trace_id);
    int token;
    ituna_context_attach(ituna_span_get_context(order), &token); /* the publish parents on it */
    const char *payload = "{\"dish\":\"maki\",\"count\":3}";
    ituna_message_out m = {
        .topic = topic, .key = key, .key_len = strlen(key), .value = payload, .value_len = strlen(payload)
    };
    rc = ituna_producer_publish(producer, &m, err, sizeof err);
    ituna_context_detach(token);
    ituna_span_end(order, 0);
    if (rc != ITUNA_OK) return fail("publish", rc, err);
    if ((rc = ituna_producer_flush(producer, 15000)) != ITUNA_OK || ituna_producer_failures(producer) > 0)
        return fail("delivery", rc == ITUNA_OK ? ITUNA_ERR_KAFKA : rc, NULL);
    printf("published %s to %s in trace %s\n", key, topic, trace_id);

    /* 2. consume it: the CONSUMER span continues the producer's trace */
    ituna_consumer *consumer = NULL;
    const char *topics[] = { topic, NULL };
    const char *props[] = { "auto.offset.reset", "earliest", NULL };
    ituna_consumer_options co = {
        .bootstrap = bootstrap, .group = "embed-example", .topics = topics, .properties = props
    };
    if ((rc = ituna_consumer_create(tracer, cfg, &co, &consumer, err, sizeof err)) != ITUNA_OK)
        return fail("consumer", rc, err);
    int found = 0;
    uint64_t deadline = ituna_now_ns() + 60ull * 1000000000ull;
    while (!found && ituna_now_ns() < deadline) {
        ituna_message *msg = NULL;
        if ((rc = ituna_consumer_poll(consumer, 500, &msg, err, sizeof err)) != ITUNA_OK)
            return fail("poll", rc, err);
        if (!msg) continue;
        size_t klen = 0;
        const char *k = ituna_message_key(msg, &klen);
        char got_trace[33];
        ituna_trace_id_hex(ituna_span_get_context(ituna_message_span(msg)), got_trace);
        if (k && klen == strlen(key) && memcmp(k, key, klen) == 0) {
            found = strcmp(got_trace, trace_id) == 0 ? 1 : -1;
            printf("consumed %s from partition %d offset %lld in trace %s\n", key,
                   (int)ituna_message_partition(msg), (long long)ituna_message_offset(msg), got_trace);
        }
        if ((rc = ituna_message_done(msg, ITUNA_HANDLED_OK, NULL, err, sizeof err)) != ITUNA_OK)
            return fail("commit", rc, err);
    }
    ituna_consumer_close(consumer);
    ituna_consumer_destroy(consumer);
    ituna_producer_destroy(producer, 5000);
    ituna_mock_cluster_stop(mock);
    rc = ituna_tracer_shutdown(tracer, 10000);
    ituna_tracer_destroy(tracer);
    ituna_config_destroy(cfg);

    if (found != 1) {
        fprintf(stderr, "embed_host: %s\n",
                found ? "the consumed message is in another trace"
                      : "the message did not come back within 60 s");
        return EXIT_FAILURE;
    }
    if (rc != ITUNA_OK) return fail("flushing spans", rc, NULL);
    printf("ok: one trace crossed Kafka (ituna %s)\n", ituna_version());
    return EXIT_SUCCESS;
}
