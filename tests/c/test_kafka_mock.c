/* test_kafka_mock.c - the Kafka layer on librdkafka's mock cluster: producer
 * and consumer spans, header and payload carriers, at-least-once offsets,
 * redelivery, the DLQ, property errors, wakeup and an unreachable broker.
 * Spans are captured by a recording exporter behind the real tracer and batch
 * processor. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "kafka_common.h"
#include "testutil.h"

/* ---- recording exporter --------------------------------------------------- */

#define MAX_REC 512
typedef struct rec_span {
    char name[128];
    int kind, status;
    char status_msg[256];
    uint8_t trace_id[16], span_id[8], parent[8];
    int has_parent;
    int n_links;
    uint8_t link_span[8];
    char attrs[2048];   /* "key=value\n" lines */
    char events[512];   /* "name\n" lines */
    char ev_attrs[512]; /* the first event's attributes, as attrs */
} rec_span;

static rec_span recs[MAX_REC];
static int n_recs;
static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;

static ituna_err rec_export(ituna_exporter *e, ituna_span *const *spans, size_t n, const ituna_resource *res,
                            uint64_t deadline_ns, ituna_export_result *out) {
    (void)e, (void)res, (void)deadline_ns;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&rec_mu);
    for (size_t i = 0; i < n && n_recs < MAX_REC; i++) {
        const ituna_span *s = spans[i];
        rec_span *r = &recs[n_recs++];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "%.*s", (int)s->name_len, s->name);
        r->kind = s->kind;
        r->status = s->status_code;
        if (s->status_msg)
            snprintf(r->status_msg, sizeof r->status_msg, "%.*s", (int)s->status_msg_len, s->status_msg);
        memcpy(r->trace_id, s->ctx.trace_id, 16);
        memcpy(r->span_id, s->ctx.span_id, 8);
        memcpy(r->parent, s->parent_span_id, 8);
        r->has_parent = s->has_parent;
        r->n_links = (int)s->n_links;
        if (s->n_links) memcpy(r->link_span, s->links[0].span_id, 8);
        for (uint32_t e = 0, eo = 0; e < s->n_events && eo < sizeof r->events - 1; e++) {
            int w = snprintf(r->events + eo, sizeof r->events - eo, "%.*s\n", (int)s->events[e].name_len,
                             s->events[e].name);
            if (w > 0) eo += (uint32_t)w;
        }
        for (uint32_t a = 0, ao = 0; s->n_events && a < s->events[0].n_attrs && ao < sizeof r->ev_attrs - 1;
             a++) {
            const ituna_kv *kv = &s->events[0].attrs[a];
            long long iv = kv->type == ITUNA_ATTR_BOOL ? kv->v.b : kv->v.i;
            int w = kv->type == ITUNA_ATTR_STRING
                        ? snprintf(r->ev_attrs + ao, sizeof r->ev_attrs - ao, "%.*s=%.*s\n", (int)kv->key_len,
                                   kv->key, (int)kv->v.s.len, kv->v.s.ptr)
                        : snprintf(r->ev_attrs + ao, sizeof r->ev_attrs - ao, "%.*s=%lld\n", (int)kv->key_len,
                                   kv->key, iv);
            if (w > 0) ao += (uint32_t)w;
        }
        size_t off = 0;
        for (uint32_t a = 0; a < s->n_attrs && off < sizeof r->attrs - 1; a++) {
            const ituna_kv *kv = &s->attrs[a];
            int w = 0;
            if (kv->type == ITUNA_ATTR_STRING)
                w = snprintf(r->attrs + off, sizeof r->attrs - off, "%.*s=%.*s\n", (int)kv->key_len, kv->key,
                             (int)kv->v.s.len, kv->v.s.ptr);
            else if (kv->type == ITUNA_ATTR_INT)
                w = snprintf(r->attrs + off, sizeof r->attrs - off, "%.*s=%lld\n", (int)kv->key_len, kv->key,
                             (long long)kv->v.i);
            else if (kv->type == ITUNA_ATTR_DOUBLE)
                w = snprintf(r->attrs + off, sizeof r->attrs - off, "%.*s=%g\n", (int)kv->key_len, kv->key,
                             kv->v.d);
            if (w > 0) off += (size_t)w;
        }
    }
    pthread_mutex_unlock(&rec_mu);
    return ITUNA_OK;
}

static void rec_destroy(ituna_exporter *e) {
    free(e);
}

static ituna_tracer *tracer;
static char bootstrap[512];
static ituna_mock_cluster *mock_cluster; /* for injected broker errors */

/* The recorded span with this span id, or NULL. */
static rec_span *find_span(const uint8_t span_id[8]) {
    ituna_tracer_flush(tracer, 5000);
    rec_span *r = NULL;
    pthread_mutex_lock(&rec_mu);
    for (int i = 0; i < n_recs; i++)
        if (memcmp(recs[i].span_id, span_id, 8) == 0) r = &recs[i];
    pthread_mutex_unlock(&rec_mu);
    return r;
}

/* Value of attribute key in r ("" if absent), into buf. */
static const char *attr(const rec_span *r, const char *key, char *buf, size_t size) {
    buf[0] = 0;
    size_t kl = strlen(key);
    for (const char *p = r->attrs; *p;) {
        const char *nl = strchr(p, '\n');
        if (!nl) break;
        if ((size_t)(nl - p) > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            snprintf(buf, size, "%.*s", (int)(nl - p - kl - 1), p + kl + 1);
            return buf;
        }
        p = nl + 1;
    }
    return buf;
}

#define CHECK_ATTR(r, key, want)                                                                             \
    do {                                                                                                     \
        char tu_buf[256];                                                                                    \
        CHECK_STR(attr((r), (key), tu_buf, sizeof tu_buf), (want));                                          \
    } while (0)

/* ---- helpers ---------------------------------------------------------------- */

/* Bound of a first poll that joins a group: ~3 s on the mock, but over 20 s was seen on
 * a CI machine loaded by other builds. */
#define JOIN_MS 60000

static const char *const FAST_PROPS[] = { "session.timeout.ms",
                                          "6000",
                                          "heartbeat.interval.ms",
                                          "500",
                                          "topic.metadata.refresh.interval.ms",
                                          "1000",
                                          NULL };

typedef struct delivery_log {
    pthread_mutex_t mu;
    int n, failed;
    ituna_delivery_report last;
    char last_error_name[64];
    int64_t offset;
} delivery_log;

static void on_delivery(const ituna_delivery_report *r, void *opaque) {
    delivery_log *d = opaque;
    pthread_mutex_lock(&d->mu);
    d->n++;
    if (r->err) d->failed++;
    d->last = *r;
    snprintf(d->last_error_name, sizeof d->last_error_name, "%s", r->error_name);
    d->offset = r->offset;
    pthread_mutex_unlock(&d->mu);
}

static ituna_consumer *make_consumer(const char *group, const char *topic, ituna_consumer_context_mode mode) {
    const char *topics[] = { topic, NULL };
    ituna_consumer_options co = { .bootstrap = bootstrap,
                                  .group = group,
                                  .topics = topics,
                                  .properties = FAST_PROPS,
                                  .context_mode = mode };
    ituna_consumer *c = NULL;
    char err[512];
    if (ituna_consumer_create(tracer, NULL, &co, &c, err, sizeof err) != ITUNA_OK) {
        fprintf(stderr, "consumer_create: %s\n", err);
        return NULL;
    }
    return c;
}

/* Poll until a message arrives or timeout_ms pass. */
static ituna_message *poll_one(ituna_consumer *c, int timeout_ms) {
    int64_t end = ituna_kafka_mono_ms() + timeout_ms;
    char err[512];
    while (ituna_kafka_mono_ms() < end) {
        ituna_message *m = NULL;
        ituna_err e = ituna_consumer_poll(c, 200, &m, err, sizeof err);
        if (e) {
            fprintf(stderr, "poll: %s\n", err);
            return NULL;
        }
        if (m) return m;
    }
    return NULL;
}

static ituna_producer *make_producer(delivery_log *d, int payload_carrier) {
    ituna_producer_options po = { .bootstrap = bootstrap,
                                  .on_delivery = d ? on_delivery : NULL,
                                  .opaque = d,
                                  .payload_carrier = payload_carrier };
    ituna_producer *p = NULL;
    char err[512];
    if (ituna_producer_create(tracer, NULL, &po, &p, err, sizeof err) != ITUNA_OK) {
        fprintf(stderr, "producer_create: %s\n", err);
        return NULL;
    }
    return p;
}

/* Produce raw bytes with raw headers through plain librdkafka (no ituna). */
static int raw_produce(const char *topic, const char *value, const char *hkey, const char *hval) {
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) return -1;
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    if (hkey) rd_kafka_header_add(h, hkey, -1, hval, -1);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE((void *)value, strlen(value)), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    if (e) rd_kafka_headers_destroy(h);
    int rc = e ? -1 : (rd_kafka_flush(rk, 10000) == 0 ? 0 : -1);
    rd_kafka_destroy(rk);
    return rc;
}

static const char *header_value(ituna_message *m, const char *key, char *buf, size_t size) {
    buf[0] = 0;
    for (size_t i = 0; i < ituna_message_header_count(m); i++) {
        const char *k;
        const void *v;
        size_t n;
        if (ituna_message_header(m, i, &k, &v, &n) && strcmp(k, key) == 0)
            snprintf(buf, size, "%.*s", (int)n, (const char *)v);
    }
    return buf;
}

/* ---- tests ------------------------------------------------------------------ */

static int test_mock_cluster_binds_loopback(void) {
    /* every bootstrap entry is 127.0.0.1:<port> */
    char copy[512];
    snprintf(copy, sizeof copy, "%s", bootstrap);
    int n = 0;
    for (char *save, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save), n++)
        CHECK(strncmp(tok, "127.0.0.1:", 10) == 0);
    CHECK(n >= 1);
    ituna_mock_cluster *m = NULL;
    char err[256];
    CHECK(ituna_mock_cluster_start(1, 7, &m, err, sizeof err) == ITUNA_ERR_UNSUPPORTED);
    CHECK(strstr(err, "partitions") != NULL);
    return 0;
}

static int test_publish_consume_is_one_trace_with_semconv_attributes(void) {
    delivery_log d = { .mu = PTHREAD_MUTEX_INITIALIZER };
    ituna_producer *p = make_producer(&d, 0);
    REQUIRE(p);
    ituna_header extra[] = { { "x-order", "o-1", 3 }, { "traceparent", "bogus", 5 } };
    ituna_message_out mo = { .topic = "t-basic",
                             .key = "order-42",
                             .key_len = 8,
                             .value = "{\"a\":1}",
                             .value_len = 7,
                             .headers = extra,
                             .n_headers = 2,
                             .partition = -1 };
    char err[512];
    CHECK(ituna_producer_publish(p, &mo, err, sizeof err) == ITUNA_OK);
    CHECK(ituna_producer_flush(p, 10000) == ITUNA_OK);
    CHECK(d.n == 1 && d.failed == 0 && d.offset >= 0);
    rec_span *ps = find_span(d.last.span.span_id);
    REQUIRE(ps);
    CHECK_STR(ps->name, "send t-basic");
    CHECK(ps->kind == ITUNA_SPAN_KIND_PRODUCER);
    CHECK_ATTR(ps, "messaging.system", "kafka");
    CHECK_ATTR(ps, "messaging.operation.name", "send");
    CHECK_ATTR(ps, "messaging.operation.type", "send");
    CHECK_ATTR(ps, "messaging.destination.name", "t-basic");
    CHECK_ATTR(ps, "messaging.kafka.message.key", "order-42");
    CHECK_ATTR(ps, "messaging.message.body.size", "7");
    CHECK_ATTR(ps, "server.address", "127.0.0.1");
    char buf[64];
    snprintf(buf, sizeof buf, "%lld", (long long)d.offset);
    CHECK_ATTR(ps, "messaging.kafka.offset", buf);
    snprintf(buf, sizeof buf, "%d", (int)d.last.partition);
    CHECK_ATTR(ps, "messaging.destination.partition.id", buf);

    ituna_consumer *c = make_consumer("g-basic", "t-basic", ITUNA_CONTEXT_PARENT);
    REQUIRE(c);
    ituna_message *m = poll_one(c, JOIN_MS);
    REQUIRE(m);
    char hv[128];
    CHECK_STR(header_value(m, "x-order", hv, sizeof hv), "o-1");
    char tp[64];
    ituna_traceparent_format(&d.last.span, tp, sizeof tp);
    CHECK_STR(header_value(m, "traceparent", hv, sizeof hv), tp); /* ours replaced the caller's */
    size_t klen;
    const void *key = ituna_message_key(m, &klen);
    CHECK(klen == 8 && memcmp(key, "order-42", 8) == 0);
    CHECK(ituna_message_timestamp_ms(m) > 0);
    ituna_span_context cs = *ituna_span_get_context(ituna_message_span(m));
    CHECK(ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err) == ITUNA_OK);
    rec_span *cspan = find_span(cs.span_id);
    REQUIRE(cspan);
    CHECK_STR(cspan->name, "process t-basic");
    CHECK(cspan->kind == ITUNA_SPAN_KIND_CONSUMER);
    CHECK(memcmp(cspan->trace_id, ps->trace_id, 16) == 0);
    CHECK(cspan->has_parent && memcmp(cspan->parent, ps->span_id, 8) == 0);
    CHECK_ATTR(cspan, "messaging.operation.name", "process");
    CHECK_ATTR(cspan, "messaging.operation.type", "process");
    CHECK_ATTR(cspan, "messaging.consumer.group.name", "g-basic");
    CHECK_ATTR(cspan, "messaging.kafka.message.key", "order-42");
    CHECK_ATTR(cspan, "ituna.context.source", "header");
    snprintf(buf, sizeof buf, "%lld", (long long)d.offset);
    CHECK_ATTR(cspan, "messaging.kafka.offset", buf);
    char qw[64];
    attr(cspan, "ituna.queue_wait_ms", qw, sizeof qw);
    CHECK(qw[0] && atof(qw) >= 0 && atof(qw) < 60000);
    CHECK(ituna_consumer_close(c) == ITUNA_OK);
    ituna_consumer_destroy(c);
    CHECK(ituna_producer_destroy(p, 5000) == ITUNA_OK);
    return 0;
}

static int test_publish_attributes_are_on_the_send_span(void) {
    delivery_log d = { .mu = PTHREAD_MUTEX_INITIALIZER };
    ituna_producer *p = make_producer(&d, 0);
    REQUIRE(p);
    ituna_attr attrs[] = { ituna_attr_str("order.id", "o-77"), ituna_attr_str("order.source", "website"),
                           ituna_attr_int("order.items", 3) };
    ituna_message_out mo = {
        .topic = "t-attrs", .value = "{}", .value_len = 2, .partition = -1, .attrs = attrs, .n_attrs = 3
    };
    char err[512];
    CHECK(ituna_producer_publish(p, &mo, err, sizeof err) == ITUNA_OK);
    attrs[0] = ituna_attr_str("order.id", "changed"); /* copied: the caller's array may change */
    CHECK(ituna_producer_flush(p, 10000) == ITUNA_OK);
    CHECK(d.n == 1 && d.failed == 0);
    rec_span *ps = find_span(d.last.span.span_id);
    REQUIRE(ps);
    CHECK_STR(ps->name, "send t-attrs");
    CHECK_ATTR(ps, "order.id", "o-77");
    CHECK_ATTR(ps, "order.source", "website");
    CHECK_ATTR(ps, "order.items", "3");
    CHECK_ATTR(ps, "messaging.destination.name", "t-attrs");

    /* bad input is refused before anything is sent */
    ituna_attr bad[] = { { .key = "", .type = ITUNA_ATTR_STRING } };
    ituna_message_out mb = {
        .topic = "t-attrs", .value = "{}", .value_len = 2, .partition = -1, .attrs = bad, .n_attrs = 1
    };
    CHECK(ituna_producer_publish(p, &mb, err, sizeof err) == ITUNA_ERR_INVALID_ARG);
    CHECK(strstr(err, "attribute 0: key is empty") != NULL);
    bad[0] = ituna_attr_strn("k\0x", 3, "v", 1); /* a counted key holding a NUL */
    CHECK(ituna_producer_publish(p, &mb, err, sizeof err) == ITUNA_ERR_INVALID_ARG);
    CHECK(strstr(err, "attribute 0: key contains a NUL byte") != NULL);
    mb.attrs = NULL;
    CHECK(ituna_producer_publish(p, &mb, err, sizeof err) == ITUNA_ERR_INVALID_ARG);
    CHECK(ituna_producer_in_flight(p) == 0);
    CHECK(ituna_producer_destroy(p, 5000) == ITUNA_OK);
    CHECK(d.n == 1);
    return 0;
}

/* A record over the producer's own message.max.bytes is refused before its span
 * starts, naming the local limit and the size (librdkafka would say "Broker: Message
 * size too large"); one that fits only without the trace headers still names it. */
static int test_oversized_record_is_refused_before_its_span_naming_the_local_limit(void) {
    const char *props[] = { "message.max.bytes", "2000", NULL };
    ituna_producer_options po = { .bootstrap = bootstrap, .properties = props };
    ituna_producer *p = NULL;
    char err[512];
    REQUIRE(ituna_producer_create(tracer, NULL, &po, &p, err, sizeof err) == ITUNA_OK);
    ituna_tracer_flush(tracer, 5000);
    pthread_mutex_lock(&rec_mu);
    int before = n_recs;
    pthread_mutex_unlock(&rec_mu);
    static char big[3000];
    memset(big, 'x', sizeof big);
    ituna_header h[] = { { "h1", "v1", 2 } };
    ituna_message_out mo = {
        .topic = "t-big", .value = big, .value_len = sizeof big, .partition = -1, .headers = h, .n_headers = 1
    };
    CHECK(ituna_producer_publish(p, &mo, err, sizeof err) == ITUNA_ERR_INVALID_ARG);
    CHECK(strstr(err, "kafka publish to 't-big': the record is 3050 bytes") != NULL);
    CHECK(strstr(err, "message.max.bytes of 2000 (a local limit") != NULL);
    CHECK(strstr(err, "Broker") == NULL);
    /* under the limit alone, over it with the traceparent header: refused by librdkafka,
     * still named as the local limit, on the span too */
    mo.value_len = 2000 - 36 - 12 - 20;
    CHECK(ituna_producer_publish(p, &mo, err, sizeof err) == ITUNA_ERR_INVALID_ARG);
    CHECK(strstr(err, "with the trace headers is over this producer's message.max.bytes of 2000") != NULL);
    CHECK(ituna_producer_in_flight(p) == 0);
    ituna_tracer_flush(tracer, 5000);
    pthread_mutex_lock(&rec_mu);
    int sends = 0, errors = 0;
    for (int i = before; i < n_recs; i++)
        if (strcmp(recs[i].name, "send t-big") == 0) {
            sends++;
            errors += recs[i].status == ITUNA_STATUS_ERROR && strstr(recs[i].status_msg, "local limit");
        }
    pthread_mutex_unlock(&rec_mu);
    CHECK(sends == 1 && errors == 1); /* no span for the first one */
    CHECK(ituna_producer_destroy(p, 5000) == ITUNA_OK);
    return 0;
}

/* A delivery held up by a broker outage carries the event kafka.broker.unreachable
 * (the error, the outage's length, whether the broker came back); one after it does not. */
static int test_a_delivery_held_up_by_an_outage_carries_the_outage_event(void) {
    delivery_log d = { .mu = PTHREAD_MUTEX_INITIALIZER };
    ituna_producer *p = make_producer(&d, 0);
    REQUIRE(p);
    char err[512];
    ituna_message_out mo = { .topic = "t-outage", .value = "x", .value_len = 1, .partition = -1 };
    CHECK(ituna_producer_publish(p, &mo, err, sizeof err) == ITUNA_OK);
    CHECK(ituna_producer_flush(p, 10000) == ITUNA_OK);
    rd_kafka_mock_broker_set_down(ituna_mock_cluster_rd(mock_cluster), 1);
    usleep(300 * 1000);
    CHECK(ituna_producer_publish(p, &mo, err, sizeof err) == ITUNA_OK);
    usleep(1500 * 1000); /* held up for more than a second */
    rd_kafka_mock_broker_set_up(ituna_mock_cluster_rd(mock_cluster), 1);
    CHECK(ituna_producer_flush(p, 20000) == ITUNA_OK);
    CHECK(d.n == 2 && d.failed == 0);
    rec_span *held = find_span(d.last.span.span_id);
    REQUIRE(held);
    CHECK(strstr(held->events, "kafka.broker.unreachable\n") != NULL);
    CHECK(strstr(held->ev_attrs, "ituna.kafka.error=") != NULL &&
          strstr(held->ev_attrs, "ituna.kafka.error=\n") == NULL);
    CHECK(strstr(held->ev_attrs, "ituna.kafka.outage_ms=") != NULL);
    CHECK(strstr(held->ev_attrs, "ituna.kafka.broker_back=1") != NULL);
    CHECK(ituna_producer_publish(p, &mo, err, sizeof err) == ITUNA_OK);
    CHECK(ituna_producer_flush(p, 10000) == ITUNA_OK);
    rec_span *after = find_span(d.last.span.span_id);
    REQUIRE(after);
    CHECK(after != held && strstr(after->events, "kafka.broker.unreachable") == NULL);
    CHECK(ituna_producer_destroy(p, 5000) == ITUNA_OK);
    return 0;
}

static int test_span_is_current_in_handler_and_children_nest(void);
static ituna_span_context handler_child;
static ituna_handler_result nesting_handler(ituna_message *m, void *opaque, char *reason, size_t size) {
    (void)m, (void)opaque, (void)reason, (void)size;
    ituna_span *s = NULL;
    ituna_span_options so = { 0 };
    ituna_span_start(tracer, "child-work", &so, &s);
    handler_child = *ituna_span_get_context(s);
    ituna_span_end(s, 0);
    return ITUNA_HANDLED_OK;
}
static int test_span_is_current_in_handler_and_children_nest(void) {
    ituna_producer *p = make_producer(NULL, 0);
    REQUIRE(p);
    ituna_message_out mo = { .topic = "t-nest", .value = "x", .value_len = 1, .partition = -1 };
    char err[512];
    CHECK(ituna_producer_publish(p, &mo, err, sizeof err) == ITUNA_OK);
    ituna_producer_flush(p, 10000);
    ituna_consumer *c = make_consumer("g-nest", "t-nest", ITUNA_CONTEXT_FROM_CONFIG);
    REQUIRE(c);
    int handled = 0;
    int64_t end = ituna_kafka_mono_ms() + 20000;
    while (!handled && ituna_kafka_mono_ms() < end)
        CHECK(ituna_consumer_run_once(c, 200, nesting_handler, NULL, &handled, err, sizeof err) == ITUNA_OK);
    CHECK(handled);
    rec_span *child = find_span(handler_child.span_id);
    REQUIRE(child);
    CHECK(child->has_parent);
    rec_span *parent = find_span(child->parent);
    REQUIRE(parent);
    CHECK_STR(parent->name, "process t-nest");
    ituna_span_context cur;
    CHECK(ituna_context_current(&cur) == 0); /* detached afterwards */
    ituna_consumer_destroy(c);
    ituna_producer_destroy(p, 5000);
    return 0;
}

static int test_malformed_traceparent_header_starts_root_with_reason(void) {
    REQUIRE(raw_produce("t-badtp", "{}", "traceparent",
                        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01") == 0);
    REQUIRE(raw_produce("t-badtp", "{}", NULL, NULL) == 0);
    ituna_consumer *c = make_consumer("g-badtp", "t-badtp", ITUNA_CONTEXT_PARENT);
    REQUIRE(c);
    char err[512];
    int seen_bad = 0, seen_missing = 0;
    for (int i = 0; i < 2; i++) {
        ituna_message *m = poll_one(c, JOIN_MS);
        REQUIRE(m);
        ituna_span_context cs = *ituna_span_get_context(ituna_message_span(m));
        ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err);
        rec_span *r = find_span(cs.span_id);
        REQUIRE(r);
        CHECK(!r->has_parent);
        CHECK_ATTR(r, "ituna.context.source", "none");
        char why[160];
        attr(r, "ituna.context.error", why, sizeof why);
        if (strncmp(why, "traceparent:", 12) == 0) seen_bad = 1;
        if (strcmp(why, "no traceparent header") == 0) seen_missing = 1;
        fprintf(stderr, "  context error: %s\n", why);
    }
    CHECK(seen_bad && seen_missing);
    ituna_consumer_destroy(c);
    return 0;
}

static int test_seed_payload_carrier_is_continued(void) {
    const char *payload = "{\"order_id\": \"1\", \"carrier\": \"{\\\"traceparent\\\": "
                          "\\\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\\\"}\"}";
    REQUIRE(raw_produce("t-seed", payload, NULL, NULL) == 0);
    ituna_consumer *c = make_consumer("g-seed", "t-seed", ITUNA_CONTEXT_PARENT);
    REQUIRE(c);
    ituna_message *m = poll_one(c, JOIN_MS);
    REQUIRE(m);
    ituna_span_context cs = *ituna_span_get_context(ituna_message_span(m));
    char err[256];
    ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err);
    rec_span *r = find_span(cs.span_id);
    REQUIRE(r);
    char tid[33];
    ituna_trace_id_hex(&cs, tid);
    CHECK_STR(tid, "0af7651916cd43dd8448eb211c80319c");
    CHECK(r->has_parent && memcmp(r->parent, "\xb7\xad\x6b\x71\x69\x20\x33\x31", 8) == 0);
    CHECK_ATTR(r, "ituna.context.source", "payload-carrier");
    ituna_consumer_destroy(c);
    return 0;
}

static int test_payload_carrier_written_as_the_seed_does(void) {
    delivery_log d = { .mu = PTHREAD_MUTEX_INITIALIZER };
    ituna_producer *p = make_producer(&d, 1);
    REQUIRE(p);
    ituna_message_out mo = {
        .topic = "t-pc", .value = "{\"order_id\": 7}", .value_len = 15, .partition = -1
    };
    char err[512];
    CHECK(ituna_producer_publish(p, &mo, err, sizeof err) == ITUNA_OK);
    ituna_message_out not_json = { .topic = "t-pc", .value = "plain", .value_len = 5, .partition = -1 };
    CHECK(ituna_producer_publish(p, &not_json, err, sizeof err) == ITUNA_OK);
    CHECK(ituna_producer_flush(p, 10000) == ITUNA_OK);
    ituna_consumer *c = make_consumer("g-pc", "t-pc", ITUNA_CONTEXT_PARENT);
    REQUIRE(c);
    int seen = 0;
    for (int i = 0; i < 2; i++) {
        ituna_message *m = poll_one(c, JOIN_MS);
        REQUIRE(m);
        size_t n;
        const char *v = ituna_message_value(m, &n);
        char hv[128], want[256];
        header_value(m, "traceparent", hv, sizeof hv);
        if (n == 5) {
            CHECK(memcmp(v, "plain", 5) == 0);
        } else {
            snprintf(want, sizeof want,
                     "{\"order_id\": 7, \"carrier\": \"{\\\"traceparent\\\": \\\"%s\\\"}\"}", hv);
            CHECK(n == strlen(want) && memcmp(v, want, n) == 0);
            if (n != strlen(want)) fprintf(stderr, "  got %.*s\n  want %s\n", (int)n, v, want);
            seen = 1;
        }
        ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err);
    }
    CHECK(seen);
    ituna_consumer_destroy(c);
    ituna_producer_destroy(p, 5000);
    return 0;
}

static int test_handler_error_redelivers_and_ok_commits(void) {
    ituna_producer *p = make_producer(NULL, 0);
    REQUIRE(p);
    ituna_message_out mo = {
        .topic = "t-redo", .value = "v", .value_len = 1, .partition = 0, .partition_set = 1
    };
    char err[512];
    CHECK(ituna_producer_publish(p, &mo, err, sizeof err) == ITUNA_OK);
    ituna_producer_flush(p, 10000);
    ituna_consumer *c = make_consumer("g-redo", "t-redo", ITUNA_CONTEXT_PARENT);
    REQUIRE(c);
    ituna_message *m = poll_one(c, JOIN_MS);
    REQUIRE(m);
    int64_t off = ituna_message_offset(m);
    ituna_span_context s1 = *ituna_span_get_context(ituna_message_span(m));
    CHECK(ituna_message_done(m, ITUNA_HANDLED_ERROR, "db down", err, sizeof err) == ITUNA_OK);
    rec_span *r1 = find_span(s1.span_id);
    REQUIRE(r1);
    CHECK(r1->status == ITUNA_STATUS_ERROR);
    CHECK_STR(r1->status_msg, "db down");
    CHECK_ATTR(r1, "error.type", "handler_error");
    m = poll_one(c, 10000);
    REQUIRE(m);
    CHECK(ituna_message_offset(m) == off); /* redelivered */
    CHECK(ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err) == ITUNA_OK);
    CHECK(ituna_consumer_close(c) == ITUNA_OK);
    ituna_consumer_destroy(c);
    /* committed: a new member of the group gets nothing */
    c = make_consumer("g-redo", "t-redo", ITUNA_CONTEXT_PARENT);
    REQUIRE(c);
    m = poll_one(c, 4000);
    CHECK(m == NULL);
    if (m) ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err);
    ituna_consumer_destroy(c);
    ituna_producer_destroy(p, 5000);
    return 0;
}

static int test_unfinished_message_is_redelivered_to_next_member(void) {
    ituna_producer *p = make_producer(NULL, 0);
    REQUIRE(p);
    ituna_message_out mo = {
        .topic = "t-crash", .value = "a", .value_len = 1, .partition = 0, .partition_set = 1
    };
    char err[512];
    CHECK(ituna_producer_publish(p, &mo, err, sizeof err) == ITUNA_OK);
    ituna_producer_flush(p, 10000);
    ituna_consumer *c = make_consumer("g-crash", "t-crash", ITUNA_CONTEXT_PARENT);
    REQUIRE(c);
    ituna_message *m = poll_one(c, JOIN_MS);
    REQUIRE(m);
    int64_t off = ituna_message_offset(m);
    /* The handler "dies": the message is never acknowledged. (done with ERROR only
     * to free it; the rewind is irrelevant once the member leaves.) */
    ituna_message_done(m, ITUNA_HANDLED_ERROR, "crash", err, sizeof err);
    ituna_consumer_destroy(c);
    c = make_consumer("g-crash", "t-crash", ITUNA_CONTEXT_PARENT);
    REQUIRE(c);
    m = poll_one(c, JOIN_MS);
    REQUIRE(m);
    CHECK(ituna_message_offset(m) == off);
    ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err);
    ituna_consumer_destroy(c);
    ituna_producer_destroy(p, 5000);
    return 0;
}

static int test_malformed_goes_to_dlq_with_reason(void) {
    ituna_producer *p = make_producer(NULL, 0);
    REQUIRE(p);
    ituna_header extra[] = { { "x-keep", "yes", 3 } };
    ituna_message_out mo = { .topic = "t-dlq",
                             .key = "k",
                             .key_len = 1,
                             .value = "not json{",
                             .value_len = 9,
                             .headers = extra,
                             .n_headers = 1,
                             .partition = 0,
                             .partition_set = 1 };
    char err[512];
    CHECK(ituna_producer_publish(p, &mo, err, sizeof err) == ITUNA_OK);
    ituna_producer_flush(p, 10000);
    ituna_consumer *c = make_consumer("g-dlq", "t-dlq", ITUNA_CONTEXT_PARENT);
    REQUIRE(c);
    ituna_message *m = poll_one(c, JOIN_MS);
    REQUIRE(m);
    int64_t off = ituna_message_offset(m);
    ituna_span_context cs = *ituna_span_get_context(ituna_message_span(m));
    CHECK(ituna_message_done(m, ITUNA_HANDLED_MALFORMED, "expected a JSON object", err, sizeof err) ==
          ITUNA_OK);
    rec_span *r = find_span(cs.span_id);
    REQUIRE(r);
    CHECK(r->status == ITUNA_STATUS_ERROR);
    CHECK_ATTR(r, "error.type", "malformed_payload");
    CHECK_STR(r->status_msg, "expected a JSON object");
    CHECK(ituna_consumer_close(c) == ITUNA_OK);
    ituna_consumer_destroy(c);

    ituna_consumer *dc = make_consumer("g-dlq-reader", "t-dlq.dlq", ITUNA_CONTEXT_PARENT);
    REQUIRE(dc);
    m = poll_one(dc, JOIN_MS);
    REQUIRE(m);
    char hv[128], offs[32];
    CHECK_STR(header_value(m, "ituna.dlq.reason", hv, sizeof hv), "expected a JSON object");
    CHECK_STR(header_value(m, "ituna.dlq.topic", hv, sizeof hv), "t-dlq");
    CHECK_STR(header_value(m, "ituna.dlq.partition", hv, sizeof hv), "0");
    snprintf(offs, sizeof offs, "%lld", (long long)off);
    CHECK_STR(header_value(m, "ituna.dlq.offset", hv, sizeof hv), offs);
    CHECK_STR(header_value(m, "x-keep", hv, sizeof hv), "yes");
    size_t n;
    const void *v = ituna_message_value(m, &n);
    CHECK(n == 9 && memcmp(v, "not json{", 9) == 0);
    /* the DLQ copy continues the trace: its producer span is a child of the process span */
    CHECK(memcmp(ituna_span_get_context(ituna_message_span(m))->trace_id, cs.trace_id, 16) == 0);
    ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err);
    ituna_consumer_destroy(dc);
    /* the original offset was committed after the DLQ write */
    c = make_consumer("g-dlq", "t-dlq", ITUNA_CONTEXT_PARENT);
    REQUIRE(c);
    m = poll_one(c, 4000);
    CHECK(m == NULL);
    if (m) ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err);
    ituna_consumer_destroy(c);
    ituna_producer_destroy(p, 5000);
    return 0;
}

static int test_max_redeliveries_sends_a_failing_message_to_the_dlq(void) {
    ituna_config *cfg = ituna_config_dup(ituna_tracer_config(tracer));
    char err[512];
    REQUIRE(ituna_config_set(cfg, "messaging.max-redeliveries", "1", err, sizeof err) == ITUNA_OK);
    ituna_producer *p = make_producer(NULL, 0);
    REQUIRE(p);
    ituna_message_out mo = {
        .topic = "t-maxre", .value = "v", .value_len = 1, .partition = 0, .partition_set = 1
    };
    CHECK(ituna_producer_publish(p, &mo, err, sizeof err) == ITUNA_OK);
    ituna_producer_flush(p, 10000);
    const char *topics[] = { "t-maxre", NULL };
    ituna_consumer_options co = {
        .bootstrap = bootstrap, .group = "g-maxre", .topics = topics, .properties = FAST_PROPS
    };
    ituna_consumer *c = NULL;
    REQUIRE(ituna_consumer_create(tracer, cfg, &co, &c, err, sizeof err) == ITUNA_OK);
    ituna_message *m = poll_one(c, JOIN_MS);
    REQUIRE(m);
    int64_t off = ituna_message_offset(m);
    CHECK(ituna_message_done(m, ITUNA_HANDLED_ERROR, "flaky", err, sizeof err) == ITUNA_OK);
    m = poll_one(c, 10000);
    REQUIRE(m);
    CHECK(ituna_message_offset(m) == off);
    CHECK(ituna_message_done(m, ITUNA_HANDLED_ERROR, "flaky", err, sizeof err) == ITUNA_OK);
    ituna_consumer_destroy(c);
    ituna_consumer *dc = make_consumer("g-maxre-dlq", "t-maxre.dlq", ITUNA_CONTEXT_PARENT);
    REQUIRE(dc);
    m = poll_one(dc, JOIN_MS);
    REQUIRE(m);
    char hv[128];
    CHECK_STR(header_value(m, "ituna.dlq.reason", hv, sizeof hv), "handler failed 2 times: flaky");
    ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err);
    ituna_consumer_destroy(dc);
    ituna_producer_destroy(p, 5000);
    ituna_config_destroy(cfg);
    return 0;
}

/* A DLQ write the broker refuses: ituna_message_done() reports it, the span says
 * why, and the offset is not committed, so the message comes back. */
static int test_failed_dlq_write_is_reported_and_not_committed(void) {
    ituna_producer *p = make_producer(NULL, 0);
    REQUIRE(p);
    ituna_message_out mo = {
        .topic = "t-dlqfail", .value = "bad{", .value_len = 4, .partition = 0, .partition_set = 1
    };
    char err[512];
    CHECK(ituna_producer_publish(p, &mo, err, sizeof err) == ITUNA_OK);
    CHECK(ituna_producer_flush(p, 10000) == ITUNA_OK);
    ituna_consumer *c = make_consumer("g-dlqfail", "t-dlqfail", ITUNA_CONTEXT_PARENT);
    REQUIRE(c);
    ituna_message *m = poll_one(c, JOIN_MS);
    REQUIRE(m);
    int64_t off = ituna_message_offset(m);
    ituna_span_context cs = *ituna_span_get_context(ituna_message_span(m));
    /* the next Produce request (the DLQ copy) fails with a non-retriable error;
     * 0 is Produce's ApiKey (RD_KAFKAP_Produce is not in the public headers) */
    rd_kafka_mock_push_request_errors(ituna_mock_cluster_rd(mock_cluster), 0, 1,
                                      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    err[0] = 0;
    ituna_err e = ituna_message_done(m, ITUNA_HANDLED_MALFORMED, "not JSON", err, sizeof err);
    CHECK(e == ITUNA_ERR_KAFKA);
    CHECK(strstr(err, "DLQ write to 't-dlqfail.dlq' failed") != NULL);
    CHECK(strstr(err, "TOPIC_AUTHORIZATION_FAILED") != NULL);
    fprintf(stderr, "  %s (%s)\n", err, ituna_err2name(e));
    rec_span *r = find_span(cs.span_id);
    REQUIRE(r);
    CHECK(r->status == ITUNA_STATUS_ERROR);
    CHECK_ATTR(r, "error.type", "malformed_payload");
    char buf[256];
    CHECK(strstr(attr(r, "ituna.dlq.error", buf, sizeof buf), "TOPIC_AUTHORIZATION_FAILED") != NULL);
    CHECK_ATTR(r, "ituna.dlq.topic", ""); /* only set once the DLQ copy is confirmed */
    /* rewound: the same consumer gets it again */
    m = poll_one(c, 10000);
    REQUIRE(m);
    CHECK(ituna_message_offset(m) == off);
    ituna_message_done(m, ITUNA_HANDLED_ERROR, "leave it", err, sizeof err);
    ituna_consumer_destroy(c); /* close commits what was stored: not this offset */
    /* not committed: the next member of the group gets it too */
    c = make_consumer("g-dlqfail", "t-dlqfail", ITUNA_CONTEXT_PARENT);
    REQUIRE(c);
    m = poll_one(c, JOIN_MS);
    REQUIRE(m);
    CHECK(ituna_message_offset(m) == off);
    CHECK(ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err) == ITUNA_OK);
    ituna_consumer_destroy(c);
    ituna_producer_destroy(p, 5000);
    return 0;
}

static int test_link_mode_links_producer_and_parents_on_current(void) {
    delivery_log d = { .mu = PTHREAD_MUTEX_INITIALIZER };
    ituna_producer *p = make_producer(&d, 0);
    REQUIRE(p);
    ituna_message_out mo = { .topic = "t-link", .value = "v", .value_len = 1, .partition = -1 };
    char err[512];
    CHECK(ituna_producer_publish(p, &mo, err, sizeof err) == ITUNA_OK);
    ituna_producer_flush(p, 10000);
    ituna_consumer *c = make_consumer("g-link", "t-link", ITUNA_CONTEXT_LINK);
    REQUIRE(c);
    ituna_span *outer = NULL;
    ituna_span_options so = { .root = 1 };
    ituna_span_start(tracer, "batch", &so, &outer);
    ituna_span_context oc = *ituna_span_get_context(outer);
    int tok;
    ituna_context_attach(&oc, &tok);
    ituna_message *m = poll_one(c, JOIN_MS);
    ituna_context_detach(tok);
    ituna_span_end(outer, 0);
    REQUIRE(m);
    ituna_span_context cs = *ituna_span_get_context(ituna_message_span(m));
    ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err);
    rec_span *r = find_span(cs.span_id);
    REQUIRE(r);
    CHECK(r->has_parent && memcmp(r->parent, oc.span_id, 8) == 0);
    CHECK(r->n_links == 1 && memcmp(r->link_span, d.last.span.span_id, 8) == 0);
    ituna_consumer_destroy(c);
    ituna_producer_destroy(p, 5000);
    return 0;
}

static int test_bad_property_is_a_config_error_naming_it(void) {
    const char *props[] = { "no.such.property", "1", NULL };
    ituna_producer_options po = { .bootstrap = bootstrap, .properties = props, .payload_carrier = -1 };
    ituna_producer *p = NULL;
    char err[512] = "";
    CHECK(ituna_producer_create(tracer, NULL, &po, &p, err, sizeof err) == ITUNA_ERR_CONFIG);
    CHECK(p == NULL);
    CHECK(strstr(err, "'no.such.property'") != NULL);
    fprintf(stderr, "  %s\n", err);
    const char *bad_value[] = { "acks", "many", NULL };
    po.properties = bad_value;
    CHECK(ituna_producer_create(tracer, NULL, &po, &p, err, sizeof err) == ITUNA_ERR_CONFIG);
    CHECK(strstr(err, "'acks'") != NULL);
    const char *topics[] = { "x", NULL };
    const char *cprops[] = { "security.protocol", "carrier-pigeon", NULL };
    ituna_consumer_options co = {
        .bootstrap = bootstrap, .group = "g", .topics = topics, .properties = cprops
    };
    ituna_consumer *c = NULL;
    CHECK(ituna_consumer_create(tracer, NULL, &co, &c, err, sizeof err) == ITUNA_ERR_CONFIG);
    CHECK(strstr(err, "'security.protocol'") != NULL);
    co.properties = NULL;
    co.group = NULL;
    CHECK(ituna_consumer_create(tracer, NULL, &co, &c, err, sizeof err) == ITUNA_ERR_INVALID_ARG);
    /* no bootstrap anywhere */
    ituna_config *empty = ituna_config_new();
    ituna_producer_options none = { .payload_carrier = 0 };
    CHECK(ituna_producer_create(tracer, empty, &none, &p, err, sizeof err) == ITUNA_ERR_CONFIG);
    CHECK(strstr(err, "bootstrap") != NULL);
    ituna_config_destroy(empty);
    return 0;
}

/* At-least-once delivery needs the idempotent producer and acks=all by default;
 * a [kafka] property from the INI file passes through and a bad one is an error
 * naming the file, line and property. */
static int test_producer_defaults_and_ini_properties(void) {
    ituna_producer_options po = { .bootstrap = bootstrap, .payload_carrier = -1 };
    ituna_producer *p = NULL;
    char err[512] = "", v[64];
    REQUIRE(ituna_producer_create(tracer, NULL, &po, &p, err, sizeof err) == ITUNA_OK);
    const rd_kafka_conf_t *conf = rd_kafka_conf(ituna_producer_rd(p));
    size_t n = sizeof v;
    CHECK(rd_kafka_conf_get(conf, "enable.idempotence", v, &n) == RD_KAFKA_CONF_OK && strcmp(v, "true") == 0);
    n = sizeof v;
    CHECK(rd_kafka_conf_get(conf, "acks", v, &n) == RD_KAFKA_CONF_OK && strcmp(v, "-1") == 0);
    ituna_producer_destroy(p, 1000);

    char path[] = "/tmp/ituna_kafka_ini_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("[kafka]\nlinger.ms = 7\n", f);
    fclose(f);
    ituna_config *cfg = ituna_config_new();
    REQUIRE(ituna_config_load_file(cfg, path, err, sizeof err) == ITUNA_OK);
    p = NULL;
    REQUIRE(ituna_producer_create(tracer, cfg, &po, &p, err, sizeof err) == ITUNA_OK);
    n = sizeof v;
    CHECK(rd_kafka_conf_get(rd_kafka_conf(ituna_producer_rd(p)), "linger.ms", v, &n) == RD_KAFKA_CONF_OK &&
          strcmp(v, "7") == 0);
    ituna_producer_destroy(p, 1000);
    ituna_config_destroy(cfg);

    f = fopen(path, "w");
    REQUIRE(f);
    fputs("[kafka]\nlinger.ms = 7\nno.such.property = 1\n", f);
    fclose(f);
    cfg = ituna_config_new();
    ituna_err le = ituna_config_load_file(cfg, path, err, sizeof err);
    ituna_err ce = le ? le : ituna_producer_create(tracer, cfg, &po, &p, err, sizeof err);
    fprintf(stderr, "  %s\n", err);
    CHECK(ce == ITUNA_ERR_CONFIG);
    CHECK(strstr(err, "no.such.property") != NULL);
    char where[64];
    snprintf(where, sizeof where, "%s:3", path);
    CHECK(strstr(err, where) != NULL);
    ituna_config_destroy(cfg);
    unlink(path);
    return 0;
}

typedef struct waker {
    ituna_consumer *c;
} waker;
static void *wake_later(void *arg) {
    usleep(300 * 1000);
    ituna_consumer_wakeup(((waker *)arg)->c);
    return NULL;
}

static int test_wakeup_interrupts_poll(void) {
    ituna_consumer *c = make_consumer("g-wake", "t-wake-empty", ITUNA_CONTEXT_PARENT);
    REQUIRE(c);
    waker w = { c };
    pthread_t th;
    pthread_create(&th, NULL, wake_later, &w);
    int64_t t0 = ituna_kafka_mono_ms();
    ituna_message *m = NULL;
    char err[256];
    CHECK(ituna_consumer_poll(c, 10000, &m, err, sizeof err) == ITUNA_OK);
    int64_t took = ituna_kafka_mono_ms() - t0;
    CHECK(m == NULL);
    CHECK(took < 2000);
    pthread_join(th, NULL);
    CHECK(ituna_consumer_close(c) == ITUNA_OK);
    CHECK(ituna_consumer_poll(c, 10, &m, err, sizeof err) == ITUNA_ERR_STATE);
    ituna_consumer_destroy(c);
    return 0;
}

static int test_unreachable_broker_gives_clear_error_in_bounded_time(void) {
    /* producer: the delivery report fails once message.timeout.ms passes */
    delivery_log d = { .mu = PTHREAD_MUTEX_INITIALIZER };
    const char *props[] = { "message.timeout.ms", "1500", NULL };
    ituna_producer_options po = { .bootstrap = "127.0.0.1:1",
                                  .properties = props,
                                  .on_delivery = on_delivery,
                                  .opaque = &d,
                                  .payload_carrier = 0 };
    ituna_producer *p = NULL;
    char err[512];
    REQUIRE(ituna_producer_create(tracer, NULL, &po, &p, err, sizeof err) == ITUNA_OK);
    ituna_message_out mo = { .topic = "t-down", .value = "v", .value_len = 1, .partition = -1 };
    int64_t t0 = ituna_kafka_mono_ms();
    CHECK(ituna_producer_publish(p, &mo, err, sizeof err) == ITUNA_OK);
    CHECK(ituna_producer_flush(p, 10000) == ITUNA_OK);
    CHECK(ituna_kafka_mono_ms() - t0 < 5000);
    CHECK(d.n == 1 && d.failed == 1);
    CHECK(d.last.err == ITUNA_ERR_TIMEOUT);
    CHECK_STR(d.last_error_name, "_MSG_TIMED_OUT");
    CHECK(ituna_producer_failures(p) == 1);
    rec_span *r = find_span(d.last.span.span_id);
    REQUIRE(r);
    CHECK(r->status == ITUNA_STATUS_ERROR);
    CHECK_ATTR(r, "error.type", "_MSG_TIMED_OUT");
    ituna_producer_destroy(p, 1000);

    /* consumer: poll reports the unreachable broker after the connect timeout */
    const char *topics[] = { "t-down", NULL };
    ituna_consumer_options co = { .bootstrap = "127.0.0.1:1", .group = "g-down", .topics = topics };
    ituna_consumer *c = NULL;
    REQUIRE(ituna_consumer_create(tracer, NULL, &co, &c, err, sizeof err) == ITUNA_OK);
    t0 = ituna_kafka_mono_ms();
    ituna_err e = ITUNA_OK;
    while (e == ITUNA_OK && ituna_kafka_mono_ms() - t0 < 30000) {
        ituna_message *m = NULL;
        e = ituna_consumer_poll(c, 500, &m, err, sizeof err);
        CHECK(m == NULL);
    }
    int64_t took = ituna_kafka_mono_ms() - t0;
    CHECK(e == ITUNA_ERR_TIMEOUT); /* nothing answered: a timeout, not a broker error */
    CHECK(took < 20000);
    CHECK(strstr(err, "127.0.0.1:1") != NULL);
    fprintf(stderr, "  after %lld ms: %s\n", (long long)took, err);
    ituna_consumer_destroy(c);
    return 0;
}

static int test_mock_cluster_serves_another_process(void) {
    if (system("python3 -c 'import confluent_kafka' 2>/dev/null") != 0) {
        const char *ci = getenv("CI");
        fprintf(stderr, "  %s: python3 with confluent_kafka not available for the second process\n",
                ci && strcmp(ci, "true") == 0 ? "FAIL (CI=true)" : "SKIP");
        return ci && strcmp(ci, "true") == 0; /* a skip must not pass in CI */
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import sys; from confluent_kafka import Producer; p = "
             "Producer({'bootstrap.servers': '%s'}); "
             "p.produce('t-other', b'from-python', headers=[('traceparent', "
             "b'00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')]); sys.exit(0 if p.flush(15) == 0 "
             "else 1)\"",
             bootstrap);
    REQUIRE(system(cmd) == 0);
    ituna_consumer *c = make_consumer("g-other", "t-other", ITUNA_CONTEXT_PARENT);
    REQUIRE(c);
    ituna_message *m = poll_one(c, JOIN_MS);
    REQUIRE(m);
    size_t n;
    const void *v = ituna_message_value(m, &n);
    CHECK(n == 11 && memcmp(v, "from-python", 11) == 0);
    char tid[33];
    ituna_trace_id_hex(ituna_span_get_context(ituna_message_span(m)), tid);
    CHECK_STR(tid, "0af7651916cd43dd8448eb211c80319c");
    char err[128];
    ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err);
    ituna_consumer_destroy(c);
    return 0;
}

/* Poll c (messages are acknowledged) until it has partitions or timeout_ms pass. */
static int poll_until_assigned(ituna_consumer *c, int timeout_ms) {
    int64_t end = ituna_kafka_mono_ms() + timeout_ms;
    char err[512];
    while (ituna_consumer_assignment_count(c) == 0 && ituna_kafka_mono_ms() < end) {
        ituna_message *m = NULL;
        if (ituna_consumer_poll(c, 100, &m, err, sizeof err) != ITUNA_OK) return 0;
        if (m) ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err);
    }
    return ituna_consumer_assignment_count(c);
}

/* A static member fenced by its own group.instance.id (what a broker outage longer
 * than the session can cause: librdkafka makes it fatal) joins again as a new client
 * and goes on consuming; a message it handled before is not handled again. */
static int test_a_static_member_fenced_by_itself_joins_again_and_goes_on(void) {
    const char *topics[] = { "t-fenced", NULL };
    const char *props[] = { "session.timeout.ms", "6000", "heartbeat.interval.ms", "500", "group.instance.id",
                            "fenced-1",           NULL };
    ituna_consumer_options co = {
        .bootstrap = bootstrap, .group = "g-fenced", .topics = topics, .properties = props
    };
    ituna_consumer *c = NULL;
    char err[512];
    REQUIRE(raw_produce("t-fenced", "first", NULL, NULL) == 0);
    REQUIRE(ituna_consumer_create(tracer, NULL, &co, &c, err, sizeof err) == ITUNA_OK);
    ituna_message *m = poll_one(c, JOIN_MS);
    REQUIRE(m);
    CHECK(ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err) == ITUNA_OK);
    /* the next heartbeat is answered "fenced": the old client is dead */
    rd_kafka_mock_push_request_errors(ituna_mock_cluster_rd(mock_cluster), 12 /* Heartbeat */, 1,
                                      RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID);
    REQUIRE(raw_produce("t-fenced", "second", NULL, NULL) == 0);
    int64_t end = ituna_kafka_mono_ms() + 30000;
    int got_second = 0, got_first_again = 0;
    ituna_err e = ITUNA_OK;
    while (!got_second && ituna_kafka_mono_ms() < end) {
        m = NULL;
        e = ituna_consumer_poll(c, 200, &m, err, sizeof err);
        if (e) break;
        if (!m) continue;
        size_t n = 0;
        const char *v = ituna_message_value(m, &n);
        got_second |= n == 6 && memcmp(v, "second", 6) == 0;
        got_first_again |= n == 5 && memcmp(v, "first", 5) == 0;
        CHECK(ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err) == ITUNA_OK);
    }
    if (e) fprintf(stderr, "  poll: %s\n", err);
    CHECK(e == ITUNA_OK);
    CHECK(got_second);
    CHECK(!got_first_again);
    CHECK(ituna_consumer_close(c) == ITUNA_OK);
    ituna_consumer_destroy(c);
    return 0;
}

static int test_assignment_count_tracks_rebalances(void) {
    CHECK(ituna_consumer_assignment_count(NULL) == 0);
    /* create the topic (4 partitions, the mock's auto-create count) */
    REQUIRE(raw_produce("t-assign", "x", NULL, NULL) == 0);
    ituna_consumer *a = make_consumer("g-assign", "t-assign", ITUNA_CONTEXT_PARENT);
    REQUIRE(a);
    /* nothing is assigned until the consumer is polled */
    usleep(300 * 1000);
    CHECK(ituna_consumer_assignment_count(a) == 0);
    CHECK(poll_until_assigned(a, JOIN_MS) == 4);
    /* a second member: the group rebalances and the partitions are split */
    ituna_consumer *b = make_consumer("g-assign", "t-assign", ITUNA_CONTEXT_PARENT);
    REQUIRE(b);
    CHECK(ituna_consumer_assignment_count(b) == 0);
    int64_t end = ituna_kafka_mono_ms() + 30000;
    char err[512];
    while (ituna_kafka_mono_ms() < end &&
           !(ituna_consumer_assignment_count(a) > 0 && ituna_consumer_assignment_count(b) > 0 &&
             ituna_consumer_assignment_count(a) + ituna_consumer_assignment_count(b) == 4)) {
        ituna_consumer *cs[2] = { a, b };
        for (int i = 0; i < 2; i++) {
            ituna_message *m = NULL;
            if (ituna_consumer_poll(cs[i], 50, &m, err, sizeof err) == ITUNA_OK && m)
                ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err);
        }
    }
    int na = ituna_consumer_assignment_count(a), nb = ituna_consumer_assignment_count(b);
    fprintf(stderr, "  assignment split: %d + %d\n", na, nb);
    CHECK(na > 0);
    CHECK(nb > 0);
    CHECK(na + nb == 4);
    /* close revokes: the count goes back to 0 */
    CHECK(ituna_consumer_close(b) == ITUNA_OK);
    CHECK(ituna_consumer_assignment_count(b) == 0);
    ituna_consumer_destroy(b);
    ituna_consumer_destroy(a);
    return 0;
}

typedef struct poll_log {
    int n, failed;
    uint64_t ticket;
    pthread_t thread;
} poll_log;

static void on_report_here(const ituna_delivery_report *r, void *opaque) {
    poll_log *l = opaque;
    l->n++;
    l->failed += r->err != ITUNA_OK;
    l->ticket = r->ticket;
    l->thread = pthread_self();
}

/* reports_on_poll: the callback runs on the thread that polls/flushes, and each
 * report carries the ticket its publish returned. */
static int test_reports_are_served_on_the_callers_thread_with_their_ticket(void) {
    poll_log l = { 0 };
    ituna_producer_options po = { .bootstrap = bootstrap,
                                  .on_delivery = on_report_here,
                                  .opaque = &l,
                                  .reports_on_poll = 1,
                                  .properties = (const char *const[]){ "linger.ms", "1", NULL } };
    ituna_producer *p = NULL;
    char err[512];
    REQUIRE(ituna_producer_create(tracer, NULL, &po, &p, err, sizeof err) == ITUNA_OK);
    ituna_message_out mo = {
        .topic = "t-poll", .value = "v", .value_len = 1, .partition = 0, .partition_set = 1
    };
    uint64_t t1 = 0, t2 = 0;
    CHECK(ituna_producer_send(p, &mo, &t1, err, sizeof err) == ITUNA_OK);
    CHECK(ituna_producer_send(p, &mo, &t2, err, sizeof err) == ITUNA_OK);
    CHECK(t1 > 0 && t2 == t1 + 1);
    CHECK(ituna_producer_flush(p, 10000) == ITUNA_OK);
    CHECK(l.n == 2 && l.failed == 0 && l.ticket == t2);
    CHECK(pthread_equal(l.thread, pthread_self()));
    CHECK(ituna_producer_poll(p, 0) == 0);
    CHECK(ituna_producer_close(p, 5000) == ITUNA_OK);
    CHECK(ituna_producer_send(p, &mo, NULL, err, sizeof err) == ITUNA_ERR_STATE);
    ituna_producer_destroy(p, 0);
    return 0;
}

/* Finishing does not wait for deliveries, yet nothing is committed past a message
 * still settling: "a" is finished with its publish in flight (no leader: it times
 * out), "b" after it is finished and done. The failure rewinds to "a"; its
 * redelivery is handled, and "b", done already, is skipped when it comes again:
 * handled once, and a new member of the group finds nothing left. */
static int test_message_after_a_settling_one_is_skipped_not_handled_twice(void) {
    ituna_producer *in = make_producer(NULL, 0);
    REQUIRE(in);
    char err[512];
    const char *vals[] = { "a", "b" };
    for (int i = 0; i < 2; i++) {
        ituna_message_out mo = {
            .topic = "t-settle", .value = vals[i], .value_len = 1, .partition = 0, .partition_set = 1
        };
        CHECK(ituna_producer_publish(in, &mo, err, sizeof err) == ITUNA_OK);
    }
    CHECK(ituna_producer_flush(in, 10000) == ITUNA_OK);
    ituna_producer_options po = { .bootstrap = bootstrap,
                                  .properties = (const char *const[]){ "message.timeout.ms", "3000", NULL } };
    ituna_producer *out = NULL;
    REQUIRE(ituna_producer_create(tracer, NULL, &po, &out, err, sizeof err) == ITUNA_OK);
    rd_kafka_mock_topic_create(ituna_mock_cluster_rd(mock_cluster), "t-settle-out", 1, 1);
    rd_kafka_mock_partition_set_leader(ituna_mock_cluster_rd(mock_cluster), "t-settle-out", 0, -1);
    ituna_consumer *c = make_consumer("g-settle", "t-settle", ITUNA_CONTEXT_PARENT);
    REQUIRE(c);
    ituna_message *m = poll_one(c, JOIN_MS);
    REQUIRE(m);
    CHECK(ituna_message_offset(m) == 0);
    ituna_span_context sa = *ituna_span_get_context(ituna_message_span(m));
    ituna_message_out o = { .topic = "t-settle-out",
                            .value = "cooked",
                            .value_len = 6,
                            .partition = 0,
                            .partition_set = 1,
                            .owner = m };
    CHECK(ituna_producer_publish(out, &o, err, sizeof err) == ITUNA_OK);
    CHECK(ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err) == ITUNA_OK);
    CHECK(find_span(sa.span_id) == NULL); /* not waited for: its span is open until the report */
    m = poll_one(c, 1000);
    REQUIRE(m);
    CHECK(ituna_message_offset(m) == 1);
    CHECK(ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err) == ITUNA_OK);
    CHECK(ituna_consumer_commit(c, err, sizeof err) == ITUNA_OK); /* "a" still settling: nothing to commit */
    int handled_b = 0, handled_a = 0;
    int64_t end = ituna_kafka_mono_ms() + 12000;
    while (ituna_kafka_mono_ms() < end) {
        m = poll_one(c, 500);
        if (!m) continue;
        if (ituna_message_offset(m) == 0) {
            handled_a++;
            CHECK(ituna_message_attempt(m) == 2);
        } else {
            handled_b++;
        }
        ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err);
    }
    CHECK(handled_a == 1);
    CHECK(handled_b == 0);
    rd_kafka_mock_partition_set_leader(ituna_mock_cluster_rd(mock_cluster), "t-settle-out", 0, 1);
    rec_span *ra = find_span(sa.span_id);
    REQUIRE(ra);
    CHECK_ATTR(ra, "error.type", "delivery_failed");
    ituna_consumer_destroy(c);
    c = make_consumer("g-settle", "t-settle", ITUNA_CONTEXT_PARENT);
    REQUIRE(c);
    m = poll_one(c, 4000);
    CHECK(m == NULL); /* committed past "b" */
    if (m) ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err);
    ituna_consumer_destroy(c);
    ituna_producer_destroy(out, 5000);
    ituna_producer_destroy(in, 5000);
    return 0;
}

static void count_failure_cb(const ituna_delivery_report *r, void *opaque) {
    (void)r;
    (*(int *)opaque)++;
}

/* A publish made for a message fails (the broker refuses it): finishing the message
 * as handled redelivers it with the delivery failure on its span; the second
 * attempt's publish succeeds and only its own delivery judges it: committed once,
 * one copy in the output topic, the first failure never handed to anyone else. */
static int test_failed_delivery_of_a_handlers_publish_redelivers_only_that_attempt(void) {
    ituna_producer *in = make_producer(NULL, 0);
    REQUIRE(in);
    ituna_message_out mo = {
        .topic = "t-own", .value = "order", .value_len = 5, .partition = 0, .partition_set = 1
    };
    char err[512];
    CHECK(ituna_producer_publish(in, &mo, err, sizeof err) == ITUNA_OK);
    CHECK(ituna_producer_flush(in, 10000) == ITUNA_OK);
    ituna_producer_options po = { .bootstrap = bootstrap,
                                  .reports_on_poll = 1,
                                  .properties = (const char *const[]){ "message.timeout.ms", "1500", NULL } };
    ituna_producer *out = NULL;
    REQUIRE(ituna_producer_create(tracer, NULL, &po, &out, err, sizeof err) == ITUNA_OK);
    ituna_consumer *c = make_consumer("g-own", "t-own", ITUNA_CONTEXT_PARENT);
    REQUIRE(c);
    ituna_message *m = poll_one(c, JOIN_MS);
    REQUIRE(m);
    CHECK(ituna_message_attempt(m) == 1);
    int64_t off = ituna_message_offset(m);
    ituna_span_context s1 = *ituna_span_get_context(ituna_message_span(m));
    /* no leader for the output partition: the publish times out (_MSG_TIMED_OUT) */
    rd_kafka_mock_topic_create(ituna_mock_cluster_rd(mock_cluster), "t-own-out", 1, 1);
    rd_kafka_mock_partition_set_leader(ituna_mock_cluster_rd(mock_cluster), "t-own-out", 0, -1);
    int tok = -1;
    CHECK(ituna_message_attach(m, &tok) == ITUNA_OK);
    ituna_message_out o = {
        .topic = "t-own-out", .value = "cooked", .value_len = 6, .partition = 0, .partition_set = 1
    };
    CHECK(ituna_producer_publish(out, &o, err, sizeof err) == ITUNA_OK); /* owner: the attached message */
    ituna_message_detach(tok);
    /* finishing does not wait for the delivery: the message settles in later polls */
    CHECK(ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err) == ITUNA_OK);
    CHECK(find_span(s1.span_id) == NULL); /* its span stays open until its output is confirmed */
    m = poll_one(c, 10000);
    REQUIRE(m);
    rec_span *r1 = find_span(s1.span_id);
    REQUIRE(r1);
    CHECK(r1->status == ITUNA_STATUS_ERROR);
    CHECK_ATTR(r1, "error.type", "delivery_failed");
    CHECK(strstr(r1->status_msg, "_MSG_TIMED_OUT") != NULL);
    int unowned = 0;
    rd_kafka_mock_partition_set_leader(ituna_mock_cluster_rd(mock_cluster), "t-own-out", 0, 1);
    CHECK(ituna_producer_take_failures(out, NULL, count_failure_cb, &unowned) == 0);
    CHECK(ituna_message_offset(m) == off && ituna_message_attempt(m) == 2);
    ituna_span_context s2 = *ituna_span_get_context(ituna_message_span(m));
    o.owner = m;
    CHECK(ituna_producer_publish(out, &o, err, sizeof err) == ITUNA_OK);

    int owned = 0;
    CHECK(ituna_producer_flush(out, 10000) == ITUNA_OK);
    CHECK(ituna_producer_take_failures(out, m, count_failure_cb, &owned) == 0);
    CHECK(ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err) == ITUNA_OK);
    rec_span *r2 = find_span(s2.span_id);
    REQUIRE(r2);
    CHECK(r2->status != ITUNA_STATUS_ERROR);
    ituna_consumer_destroy(c);
    c = make_consumer("g-own", "t-own", ITUNA_CONTEXT_PARENT);
    REQUIRE(c);
    m = poll_one(c, 4000);
    CHECK(m == NULL); /* committed */
    if (m) ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err);
    ituna_consumer_destroy(c);
    c = make_consumer("g-own-out", "t-own-out", ITUNA_CONTEXT_PARENT);
    REQUIRE(c);
    int copies = 0;
    while ((m = poll_one(c, copies ? 3000 : JOIN_MS))) {
        copies++;
        ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err);
    }
    CHECK(copies == 1);
    ituna_consumer_destroy(c);
    ituna_producer_destroy(out, 5000);
    ituna_producer_destroy(in, 5000);
    return 0;
}

/* The loop policy: a message the host left open is finished (redelivered) by the
 * next poll, and the host's late done() only frees it; stop is sticky until resume. */
static int test_unfinished_message_is_redelivered_at_the_next_poll_and_stop_is_sticky(void) {
    ituna_producer *p = make_producer(NULL, 0);
    REQUIRE(p);
    ituna_message_out mo = {
        .topic = "t-open", .value = "x", .value_len = 1, .partition = 0, .partition_set = 1
    };
    char err[512];
    CHECK(ituna_producer_publish(p, &mo, err, sizeof err) == ITUNA_OK);
    CHECK(ituna_producer_flush(p, 10000) == ITUNA_OK);
    ituna_consumer *c = make_consumer("g-open", "t-open", ITUNA_CONTEXT_PARENT);
    REQUIRE(c);
    int assigned = 0;
    CHECK(ituna_consumer_wait_assigned(c, JOIN_MS, &assigned, err, sizeof err) == ITUNA_OK && assigned);
    ituna_message *m = poll_one(c, JOIN_MS);
    REQUIRE(m);
    int64_t off = ituna_message_offset(m);
    ituna_span_context s1 = *ituna_span_get_context(ituna_message_span(m));
    ituna_message *again = poll_one(c, 10000);
    REQUIRE(again);
    CHECK(ituna_message_offset(again) == off && ituna_message_attempt(again) == 2);
    rec_span *r1 = find_span(s1.span_id);
    REQUIRE(r1);
    CHECK(r1->status == ITUNA_STATUS_ERROR);
    CHECK_STR(r1->status_msg, "not finished before the next poll");
    CHECK(ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err) == ITUNA_ERR_STATE);
    CHECK(ituna_message_done(again, ITUNA_HANDLED_OK, NULL, err, sizeof err) == ITUNA_OK);
    ituna_consumer_stop(c);
    CHECK(ituna_consumer_stopped(c));
    ituna_message *none = NULL;
    CHECK(ituna_consumer_poll(c, 5000, &none, err, sizeof err) == ITUNA_OK && none == NULL);
    ituna_consumer_resume(c);
    CHECK(!ituna_consumer_stopped(c));
    ituna_consumer_destroy(c);
    ituna_producer_destroy(p, 5000);
    return 0;
}

int main(void) {
    ituna_log_set_level(ITUNA_LOG_ERROR);
    ituna_config *cfg = ituna_config_new();
    char err[512];
    REQUIRE(ituna_config_set(cfg, "tracer.service-name", "kafka-test", err, sizeof err) == ITUNA_OK);
    REQUIRE(ituna_config_set(cfg, "exporter.schedule-delay", "50", err, sizeof err) == ITUNA_OK);
    ituna_exporter *ex = calloc(1, sizeof *ex);
    ex->export_batch = rec_export;
    ex->destroy = rec_destroy;
    if (ituna_tracer_create_ex(cfg, ex, &tracer, err, sizeof err) != ITUNA_OK) {
        fprintf(stderr, "tracer: %s\n", err);
        return 1;
    }
    ituna_mock_cluster *mock = NULL;
    if (ituna_mock_cluster_start(1, 0, &mock, err, sizeof err) != ITUNA_OK) {
        fprintf(stderr, "mock cluster: %s\n", err);
        return 1;
    }
    snprintf(bootstrap, sizeof bootstrap, "%s", ituna_mock_cluster_bootstrap(mock));
    mock_cluster = mock;
    fprintf(stderr, "mock cluster at %s\n", bootstrap);

    RUN(test_mock_cluster_binds_loopback);
    RUN(test_publish_consume_is_one_trace_with_semconv_attributes);
    RUN(test_publish_attributes_are_on_the_send_span);
    RUN(test_oversized_record_is_refused_before_its_span_naming_the_local_limit);
    RUN(test_a_delivery_held_up_by_an_outage_carries_the_outage_event);
    RUN(test_span_is_current_in_handler_and_children_nest);
    RUN(test_malformed_traceparent_header_starts_root_with_reason);
    RUN(test_seed_payload_carrier_is_continued);
    RUN(test_payload_carrier_written_as_the_seed_does);
    RUN(test_handler_error_redelivers_and_ok_commits);
    RUN(test_unfinished_message_is_redelivered_to_next_member);
    RUN(test_malformed_goes_to_dlq_with_reason);
    RUN(test_max_redeliveries_sends_a_failing_message_to_the_dlq);
    RUN(test_failed_dlq_write_is_reported_and_not_committed);
    RUN(test_link_mode_links_producer_and_parents_on_current);
    RUN(test_bad_property_is_a_config_error_naming_it);
    RUN(test_producer_defaults_and_ini_properties);
    RUN(test_wakeup_interrupts_poll);
    RUN(test_assignment_count_tracks_rebalances);
    RUN(test_a_static_member_fenced_by_itself_joins_again_and_goes_on);
    RUN(test_mock_cluster_serves_another_process);
    RUN(test_reports_are_served_on_the_callers_thread_with_their_ticket);
    RUN(test_failed_delivery_of_a_handlers_publish_redelivers_only_that_attempt);
    RUN(test_message_after_a_settling_one_is_skipped_not_handled_twice);
    RUN(test_unfinished_message_is_redelivered_at_the_next_poll_and_stop_is_sticky);
    RUN(test_unreachable_broker_gives_clear_error_in_bounded_time);

    ituna_tracer_destroy(tracer);
    ituna_config_destroy(cfg);
    ituna_mock_cluster_stop(mock);
    TEST_MAIN_END();
}
