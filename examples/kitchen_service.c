/* kitchen_service.c - a complete traced Kafka service in C: kitchen-orders -> handler ->
 * ituna-ready, with the same guarantees as the Python and Lua services (the core's loop:
 * commit after success and delivery, bounded redelivery, DLQ for malformed orders).
 * Broker: ITUNA_KAFKA_BOOTSTRAP, else an embedded test broker fed with N orders (argv[1]).
 * Ctrl-C / SIGTERM stop the loop; the message in hand is finished first. */
#include <ituna/ituna.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ituna_consumer *consumer;
static ituna_producer *producer;
static int handled, orders = 3;
static ituna_mock_cluster *mock;

static void on_signal(int sig) {
    (void)sig;
    ituna_consumer_stop(consumer); /* async-signal-safe */
}

static ituna_handler_result cook(ituna_message *msg, void *opaque, char *reason, size_t reason_size) {
    (void)opaque;
    size_t len;
    const char *order = ituna_message_value(msg, &len);
    if (!order || len < 2 || order[0] != '{')
        return snprintf(reason, reason_size, "not a JSON order"), ITUNA_HANDLED_MALFORMED;
    ituna_span *cut;
    ituna_span_start(NULL, "cut-fish", NULL, &cut); /* child of the message's CONSUMER span */
    ituna_span_end(cut, 0);
    ituna_message_out ready = { .topic = "ituna-ready", .value = order, .value_len = len, .partition = -1 };
    char err[256];
    if (ituna_producer_publish(producer, &ready, err, sizeof err)) /* delivery is checked at commit */
        return snprintf(reason, reason_size, "%s", err), ITUNA_HANDLED_ERROR;
    if (++handled == orders && mock) ituna_consumer_stop(consumer); /* demo run: all orders cooked */
    return ITUNA_HANDLED_OK;
}

int main(int argc, char **argv) {
    char err[512];
    const char *bootstrap = getenv("ITUNA_KAFKA_BOOTSTRAP");
    if (bootstrap && !*bootstrap) bootstrap = NULL;
    if (argc > 1) orders = atoi(argv[1]);
    if (!bootstrap && ituna_mock_cluster_start(1, 0, &mock, err, sizeof err) == ITUNA_OK)
        bootstrap = ituna_mock_cluster_bootstrap(mock);
    ituna_config *cfg = ituna_config_new();
    const char *over[] = { "tracer.service-name", "kitchen-service-c", NULL };
    ituna_tracer *t = NULL;
    if (ituna_config_load(cfg, getenv("ITUNA_CONFIG"), 1, over, err, sizeof err) ||
        ituna_tracer_create(cfg, &t, err, sizeof err))
        return fprintf(stderr, "%s\n", err), 1;
    ituna_tracer_set_global(t);
    ituna_producer_options po = { .bootstrap = bootstrap };
    const char *topics[] = { "kitchen-orders", NULL };
    ituna_consumer_options co = { .bootstrap = bootstrap, .group = "kitchen", .topics = topics };
    if (ituna_producer_create(t, cfg, &po, &producer, err, sizeof err) ||
        ituna_consumer_create(t, cfg, &co, &consumer, err, sizeof err))
        return fprintf(stderr, "%s\n", err), 1;
    for (int i = 0; mock && i < orders; i++) { /* the embedded broker starts empty: place some orders */
        char order[64];
        int n = snprintf(order, sizeof order, "{\"order_id\":\"o-%d\"}", i);
        ituna_message_out o = {
            .topic = "kitchen-orders", .value = order, .value_len = (size_t)n, .partition = -1
        };
        ituna_producer_publish(producer, &o, err, sizeof err);
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    ituna_err e = ituna_consumer_run(consumer, cook, NULL, err, sizeof err);
    printf("kitchen-service-c: %d order(s) cooked%s%s\n", handled, e ? ": " : "", e ? err : "");
    ituna_consumer_destroy(consumer);
    ituna_producer_destroy(producer, 10000);
    ituna_tracer_destroy(t);
    ituna_config_destroy(cfg);
    ituna_mock_cluster_stop(mock);
    return e != ITUNA_OK;
}
