/* test_producer_warmup.c - a producer reaches its cluster (connection, metadata,
 * idempotent producer id) while it is created, not inside the first send's span;
 * when the cluster is away at creation, the send span that waited for it carries a
 * "kafka.producer.connected" event. The embedded mock cluster delays every response
 * by RTT_MS, so a cold first send would take several round trips. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"
#include "ituna/ituna.h"
#include "kafka_common.h"
#include "testutil.h"
/* after rdkafka.h, which kafka_common.h includes */
#include <librdkafka/rdkafka_mock.h>

#define RTT_MS 150

typedef struct rec {
    char name[64];
    uint64_t start_ns, end_ns, event_ns;
    char event[64];
} rec;
static rec recs[16];
static int n_recs;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static ituna_err rec_export(ituna_exporter *e, ituna_span *const *spans, size_t n, const ituna_resource *res,
                            uint64_t deadline_ns, ituna_export_result *out) {
    (void)e, (void)res, (void)deadline_ns;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < n && n_recs < 16; i++) {
        rec *r = &recs[n_recs++];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "%.*s", (int)spans[i]->name_len, spans[i]->name);
        r->start_ns = spans[i]->start_ns;
        r->end_ns = spans[i]->end_ns;
        if (spans[i]->n_events) {
            const ituna_event *ev = &spans[i]->events[0];
            snprintf(r->event, sizeof r->event, "%.*s", (int)ev->name_len, ev->name);
            r->event_ns = ev->time_ns;
        }
    }
    pthread_mutex_unlock(&mu);
    return ITUNA_OK;
}

static void rec_destroy(ituna_exporter *e) {
    free(e);
}

static double ms_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static ituna_tracer *tracer;
static ituna_mock_cluster *mock;

/* Publish one message to topic on a fresh producer; returns its send span (after
 * flushing the tracer) and how long creating the producer took. */
static const rec *send_one(const char *topic, double *create_ms, void (*between)(void)) {
    char err[512];
    ituna_producer *p = NULL;
    ituna_producer_options po = { .bootstrap = ituna_mock_cluster_bootstrap(mock), .payload_carrier = 0 };
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (ituna_producer_create(tracer, NULL, &po, &p, err, sizeof err) != ITUNA_OK) {
        fprintf(stderr, "producer: %s\n", err);
        return NULL;
    }
    *create_ms = ms_since(&t0);
    if (between) between();
    ituna_message_out mo = { .topic = topic, .value = "{}", .value_len = 2, .partition = -1 };
    int n0 = n_recs;
    if (ituna_producer_publish(p, &mo, err, sizeof err) != ITUNA_OK) {
        fprintf(stderr, "publish: %s\n", err);
        ituna_producer_destroy(p, 1000);
        return NULL;
    }
    ituna_err e = ituna_producer_flush(p, 20000);
    ituna_producer_destroy(p, 1000);
    ituna_tracer_flush(tracer, 5000);
    if (e != ITUNA_OK || n_recs != n0 + 1) return NULL;
    return &recs[n0];
}

static int test_first_send_span_does_not_hold_the_connect(void) {
    double create_ms;
    const rec *r = send_one("warm-topic", &create_ms, NULL);
    REQUIRE(r);
    double send_ms = (double)(r->end_ns - r->start_ns) / 1e6;
    fprintf(stderr, "  create %.0f ms, first send span %.0f ms (round trip %d ms)\n", create_ms, send_ms,
            RTT_MS);
    /* Connecting (ApiVersion + Metadata) happened in create ... */
    CHECK(create_ms >= 2 * RTT_MS);
    /* ... so the send holds only the topic's metadata and the produce request; a cold
     * send also holds ApiVersion, the cluster Metadata and InitProducerId. */
    CHECK(send_ms < 3.5 * RTT_MS);
    CHECK(r->event[0] == 0); /* the producer was ready: nothing to explain */
    return 0;
}

static void broker_up(void) {
    /* The broker comes back only after the publish below: its span waits for it. */
    struct timespec ts = { 0, 300 * 1000000L };
    nanosleep(&ts, NULL);
    rd_kafka_mock_broker_set_up(ituna_mock_cluster_rd(mock), 1);
}

static void *up_later(void *arg) {
    (void)arg;
    broker_up();
    return NULL;
}

static pthread_t up_thread;
static void start_up_thread(void) {
    pthread_create(&up_thread, NULL, up_later, NULL);
}

static int test_a_send_that_waits_for_the_cluster_records_when_it_answered(void) {
    rd_kafka_mock_broker_set_down(ituna_mock_cluster_rd(mock), 1);
    double create_ms;
    const rec *r = send_one("warm-topic", &create_ms, start_up_thread);
    pthread_join(up_thread, NULL);
    REQUIRE(r);
    fprintf(stderr, "  create %.0f ms with the broker down; send span %.0f ms, event %s at +%.0f ms\n",
            create_ms, (double)(r->end_ns - r->start_ns) / 1e6, r->event,
            r->event_ns ? (double)(r->event_ns - r->start_ns) / 1e6 : -1.0);
    CHECK(create_ms < 4000); /* the warm-up gives up once every broker is down */
    CHECK_STR(r->event, "kafka.producer.connected");
    CHECK(r->event_ns > r->start_ns && r->event_ns <= r->end_ns);
    return 0;
}

int main(void) {
    ituna_log_set_level(ITUNA_LOG_ERROR);
    char err[512];
    ituna_config *cfg = ituna_config_new();
    REQUIRE(ituna_config_set(cfg, "tracer.service-name", "warmup-test", err, sizeof err) == ITUNA_OK);
    REQUIRE(ituna_config_set(cfg, "exporter.schedule-delay", "50", err, sizeof err) == ITUNA_OK);
    ituna_exporter *ex = calloc(1, sizeof *ex);
    ex->export_batch = rec_export;
    ex->destroy = rec_destroy;
    REQUIRE(ituna_tracer_create_ex(cfg, ex, &tracer, err, sizeof err) == ITUNA_OK);
    REQUIRE(ituna_mock_cluster_start(1, 0, &mock, err, sizeof err) == ITUNA_OK);
    rd_kafka_mock_cluster_t *mc = ituna_mock_cluster_rd(mock);
    REQUIRE(rd_kafka_mock_topic_create(mc, "warm-topic", 1, 1) == RD_KAFKA_RESP_ERR_NO_ERROR);
    REQUIRE(rd_kafka_mock_broker_set_rtt(mc, 1, RTT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR);

    RUN(test_first_send_span_does_not_hold_the_connect);
    RUN(test_a_send_that_waits_for_the_cluster_records_when_it_answered);

    ituna_mock_cluster_stop(mock);
    ituna_tracer_shutdown(tracer, 5000);
    ituna_tracer_destroy(tracer);
    ituna_config_destroy(cfg);
    TEST_MAIN_END();
}
