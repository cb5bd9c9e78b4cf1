/* kafka_producer.c - the traced Kafka producer: PRODUCER spans "send <topic>",
 * context injected into the message headers (and optionally the seed's payload
 * carrier), a delivery thread that serves librdkafka's delivery reports so each
 * span ends when its report arrives, reports handed to the host on its own thread
 * (ituna_producer_poll), failures kept per publish (tickets, the owner message's
 * delivery slots), flush and close. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kafka_delivery.h"

struct ituna_producer {
    rd_kafka_t *rk;
    ituna_tracer *tracer;
    ituna_kafka_endpoint ep;
    ituna_delivery_fn on_delivery;
    void *opaque;
    int payload_carrier;
    int reports_on_poll;
    int64_t msg_timeout_ms, max_bytes;
    atomic_int in_flight;
    atomic_uint_fast64_t failures, next_ticket;
    atomic_int stop, closed;
    pthread_t thread;
    int thread_started;
    atomic_int all_down;       /* error_cb saw every broker down (ends the warm-up early) */
    _Atomic uint64_t ready_ns; /* when the cluster first answered; 0 until then */
    pthread_t connect_thread;  /* keeps asking when the warm-up could not reach it */
    int connect_started;
    pthread_mutex_t mu;         /* guards the two lists */
    pthread_cond_t cv;          /* a report was queued */
    ituna_dr_copy *q, **q_tail; /* reports for on_delivery, served by ituna_producer_poll() */
    ituna_dr_copy *f, **f_tail; /* failures of publishes for no message, for take_failures() */
};

/* One published message, from producev to its delivery report. */
typedef struct pub_op {
    ituna_producer *p;
    ituna_span *span; /* its context is the report's: read at delivery, not copied here */
    void *user_opaque;
    int cold; /* published before the producer had reached the cluster */
    int scan; /* the send set the partition or caller attributes: keys may exist */
    uint64_t ticket;
    ituna_delivery_slot *slot; /* NULL unless made for a consumed message */
} pub_op;

static void push_copy(ituna_producer *p, ituna_dr_copy ***tail, const ituna_delivery_report *r) {
    ituna_dr_copy *c = calloc(1, sizeof *c);
    if (!c) return; /* counted and logged already */
    ituna_dr_copy_set(c, r);
    pthread_mutex_lock(&p->mu);
    **tail = c;
    *tail = &c->next;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Detach a whole list under the lock. */
static ituna_dr_copy *take_list(ituna_producer *p, ituna_dr_copy **head, ituna_dr_copy ***tail) {
    pthread_mutex_lock(&p->mu);
    ituna_dr_copy *l = *head;
    *head = NULL;
    *tail = head;
    pthread_mutex_unlock(&p->mu);
    return l;
}

int64_t ituna_producer_max_bytes(const ituna_producer *p) {
    return p ? p->max_bytes : 1000000;
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    ituna_producer *p = opaque;
    pub_op *op = m->_private;
    if (!op) return;
    const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
    ituna_delivery_report r = { .topic = topic,
                                .partition = m->partition,
                                .offset = -1,
                                .err = ITUNA_OK,
                                .errstr = "",
                                .error_name = "",
                                .msg_opaque = op->user_opaque,
                                .ticket = op->ticket };
    ituna_ctx_copy(&r.span, ituna_span_get_context(op->span));
    if (m->err) {
        r.err = m->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT ? ITUNA_ERR_TIMEOUT : ITUNA_ERR_KAFKA;
        r.errstr = rd_kafka_err2str(m->err);
        r.error_name = rd_kafka_err2name(m->err);
        ituna_span_set_str(op->span, "error.type", r.error_name);
        ituna_span_set_status(op->span, ITUNA_STATUS_ERROR, r.errstr);
        atomic_fetch_add(&p->failures, 1);
    } else {
        int64_t back = ituna_kafka_outage_end(p->ep.bootstrap, 0);
        if (back >= 0)
            ituna_log(ITUNA_LOG_WARN, "kafka producer: broker at %s reachable again after %lld ms",
                      p->ep.bootstrap, (long long)back);
        r.offset = m->offset;
        if (ituna_span_is_recording(op->span)) {
            /* New keys unless the send set the partition or the caller's attributes:
             * no duplicate scan, which would read every attribute of a span last
             * written on another core. */
            int fresh = op->scan ? 0 : ITUNA_LIT_FRESH;
            char part[16];
            const char *ps = ituna_kafka_partition_str(m->partition, part);
            ITUNA_SET_STR_LIT(op->span, "messaging.destination.partition.id", ps,
                              (ps == part ? 0 : ITUNA_LIT_VALUE) | fresh);
            ITUNA_SET_INT_LIT(op->span, "messaging.kafka.offset", m->offset, fresh);
        }
    }
    uint64_t ready = op->cold ? atomic_load(&p->ready_ns) : 0;
    if (ready) ituna_span_add_event(op->span, "kafka.producer.connected", NULL, 0, ready);
    ituna_kafka_outage_mark(op->span, p->ep.bootstrap); /* a delivery an outage held up or failed */
    ituna_span_end(op->span, 0);
    if (op->slot) ituna_delivery_slot_complete(op->slot, &r);
    if (p->on_delivery && p->reports_on_poll) {
        push_copy(p, &p->q_tail, &r);
    } else if (p->on_delivery) {
        p->on_delivery(&r, p->opaque);
    } else if (m->err) {
        char tid[33];
        ituna_trace_id_hex(&r.span, tid);
        ituna_log(ITUNA_LOG_ERROR, "kafka delivery to %s [%d] failed: %s (%s), trace %s, publish %llu", topic,
                  (int)m->partition, r.errstr, r.error_name, tid, (unsigned long long)op->ticket);
        /* a message's own failures are judged when it is settled (its slots) */
        if (p->reports_on_poll && !op->slot) push_copy(p, &p->f_tail, &r);
    }
    free(op);
    atomic_fetch_sub(&p->in_flight, 1);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        atomic_store(&((ituna_producer *)opaque)->all_down, 1);
        ituna_kafka_outage_begin(((ituna_producer *)opaque)->ep.bootstrap, reason, ituna_now_ns());
    }
    ituna_log(err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ? ITUNA_LOG_WARN : ITUNA_LOG_INFO,
              "kafka %s: %s: %s", rd_kafka_name(rk), rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* One metadata round trip: connects to the cluster, after which librdkafka asks
 * for the idempotent producer id at once. 1 once the cluster answered. */
static int reach_cluster(ituna_producer *p, int timeout_ms) {
    const struct rd_kafka_metadata *md;
    if (rd_kafka_metadata(p->rk, 0, NULL, &md, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) return 0;
    rd_kafka_metadata_destroy(md);
    atomic_store(&p->ready_ns, ituna_now_ns());
    return 1;
}

/* Connect, fetch metadata and so the producer id while the producer is created, not
 * inside the first send's span. Bounded, and cut short when every broker is down: a
 * producer must come up without its cluster (connect_thread() keeps trying). */
#define WARM_UP_MS 5000
static int warm_up(ituna_producer *p) {
    int64_t deadline = ituna_kafka_mono_ms() + WARM_UP_MS;
    /* Short tries first, so a refused connection is noticed at once; longer ones
     * for a cluster that is merely far away. */
    for (int slice = 50; !atomic_load(&p->all_down); slice = slice < 1000 ? slice * 2 : 1000) {
        int64_t left = deadline - ituna_kafka_mono_ms();
        if (left <= 0) return 0;
        if (reach_cluster(p, left < slice ? (int)left : slice)) return 1;
        rd_kafka_poll(p->rk, 0); /* serves error_cb */
    }
    return 0;
}

/* Until the cluster first answers: its own thread, so that delivery reports are
 * never held behind a metadata request. */
static void *connect_thread(void *arg) {
    ituna_producer *p = arg;
    while (!atomic_load(&p->stop) && !reach_cluster(p, 1000)) {}
    return NULL;
}

/* Serves delivery reports while the application is idle, so spans end promptly. */
static void *delivery_thread(void *arg) {
    ituna_producer *p = arg;
    while (!atomic_load(&p->stop)) rd_kafka_poll(p->rk, 100);
    return NULL;
}

ituna_err ituna_producer_create(ituna_tracer *t, const ituna_config *cfg, const ituna_producer_options *opts,
                                ituna_producer **out, char *errstr, size_t errstr_size) {
    if (!out) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    ituna_producer_options zero = { .payload_carrier = -1 };
    if (!opts) opts = &zero;
    ituna_err e = ituna_kafka_resolve(&t, &cfg, errstr, errstr_size);
    if (e) return e;
    ituna_producer *p = calloc(1, sizeof *p);
    if (!p) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
    p->tracer = t;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->q_tail = &p->q;
    p->f_tail = &p->f;
    p->reports_on_poll = opts->reports_on_poll;
    p->on_delivery = opts->on_delivery;
    p->opaque = opts->opaque;
    p->payload_carrier = opts->payload_carrier >= 0 ? opts->payload_carrier
                                                    : ituna_config_bool(cfg, "compat", "payload-carrier", 0);
    const char *svc = ituna_tracer_service_name(t);
    /* message.timeout.ms bounds how long an undeliverable message (broker down)
     * waits before its failure is reported: 10 min, so a broker outage of 5 min
     * (restart, failover) is ridden through with room to spare; librdkafka
     * retries and reconnects by itself meanwhile (RELIABILITY.md). */
    const char *defaults[] = { "enable.idempotence",
                               "true",
                               "acks",
                               "all",
                               "linger.ms",
                               "5",
                               "message.timeout.ms",
                               "600000",
                               "client.id",
                               svc && *svc ? svc : "ituna",
                               NULL };
    rd_kafka_conf_t *conf;
    e = ituna_kafka_conf_build(cfg, RD_KAFKA_PRODUCER, opts->bootstrap, defaults, opts->properties, NULL,
                               &conf, &p->ep, errstr, errstr_size);
    if (e) {
        free(p);
        return e;
    }
    char num[32];
    size_t nl = sizeof num;
    p->msg_timeout_ms =
        rd_kafka_conf_get(conf, "message.timeout.ms", num, &nl) == RD_KAFKA_CONF_OK ? atoll(num) : 30000;
    nl = sizeof num;
    p->max_bytes =
        rd_kafka_conf_get(conf, "message.max.bytes", num, &nl) == RD_KAFKA_CONF_OK ? atoll(num) : 1000000;
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_opaque(conf, p);
    char msg[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, msg, sizeof msg);
    if (!p->rk) {
        rd_kafka_conf_destroy(conf);
        free(p);
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG, "kafka producer: %s", msg);
    }
    if (!warm_up(p)) p->connect_started = pthread_create(&p->connect_thread, NULL, connect_thread, p) == 0;
    if (pthread_create(&p->thread, NULL, delivery_thread, p) != 0) {
        atomic_store(&p->stop, 1);
        if (p->connect_started) pthread_join(p->connect_thread, NULL);
        rd_kafka_destroy(p->rk);
        free(p);
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "cannot start the delivery thread");
    }
    p->thread_started = 1;
    *out = p;
    return ITUNA_OK;
}

ituna_err ituna_producer_publish(ituna_producer *p, const ituna_message_out *msg, char *errstr,
                                 size_t errstr_size) {
    return ituna_producer_send_slot(p, msg, NULL, NULL, errstr, errstr_size);
}

ituna_err ituna_producer_send(ituna_producer *p, const ituna_message_out *msg, uint64_t *ticket, char *errstr,
                              size_t errstr_size) {
    return ituna_producer_send_slot(p, msg, ticket, NULL, errstr, errstr_size);
}

/* The record's size as librdkafka counts it against message.max.bytes (its v2
 * per-record overhead of 36 bytes, each header's name and value with their varint
 * lengths), without the propagation headers the send adds: if even this is over
 * the limit, the send is refused before its span starts, naming the local limit
 * (librdkafka's own refusal reads "Broker: Message size too large"). */
static ituna_err check_size(const ituna_producer *p, const ituna_message_out *msg, char *errstr,
                            size_t errstr_size) {
    size_t size = 36 + (msg->key ? msg->key_len : 0) + (msg->value ? msg->value_len : 0);
    for (size_t i = 0; i < msg->n_headers; i++)
        size += (msg->headers[i].key ? strlen(msg->headers[i].key) : 0) + msg->headers[i].value_len + 10;
    if ((int64_t)size <= p->max_bytes) return ITUNA_OK;
    return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG,
                         "kafka publish to '%s': the record is %zu bytes (value %zu, key and headers "
                         "included), over this producer's message.max.bytes of %lld (a local limit: "
                         "not sent to the broker)",
                         msg->topic, size, msg->value ? msg->value_len : 0, (long long)p->max_bytes);
}

ituna_err ituna_producer_send_slot(ituna_producer *p, const ituna_message_out *msg, uint64_t *ticket,
                                   ituna_delivery_slot **slot_out, char *errstr, size_t errstr_size) {
    if (ticket) *ticket = 0;
    if (slot_out) *slot_out = NULL;
    if (!p || !msg || !msg->topic || !*msg->topic)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG,
                             "producer, message and topic are required");
    if (atomic_load(&p->closed))
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_STATE, "producer is closed");
    if (msg->n_headers && !msg->headers)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "n_headers > 0 but headers is NULL");
    if (msg->n_attrs && !msg->attrs)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "n_attrs > 0 but attrs is NULL");
    /* Checked before the span starts: a bad attribute must not leave a half-made span. */
    for (size_t i = 0; i < msg->n_attrs; i++) {
        const ituna_attr *a = &msg->attrs[i];
        const char *why = !a->key ? "key is empty" : ituna_attr_key_error(a->key, ituna_attr_klen(a));
        if (why || (unsigned)a->type > ITUNA_ATTR_BOOL_ARRAY)
            return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "attribute %zu: %s", i,
                                 why ? why : "unknown type");
    }
    ituna_err e = check_size(p, msg, errstr, errstr_size);
    if (e) return e;
    char name[300];
    ituna_kafka_strcat2(name, sizeof name, "send ", msg->topic);
    ituna_span_options so = { .kind = ITUNA_SPAN_KIND_PRODUCER, .parent = msg->parent };
    ituna_span *span = NULL;
    e = ituna_span_start(p->tracer, name, &so, &span);
    if (e || !span)
        return ituna_set_err(errstr, errstr_size, e ? e : ITUNA_ERR_NOMEM, "cannot start the span");
    ituna_kafka_span_attrs(span, "send", msg->topic, msg->key, msg->key_len, msg->value_len, &p->ep);
    /* After the messaging attributes, which assume a fresh span (no duplicate scan). */
    for (size_t i = 0; i < msg->n_attrs; i++) ituna_span_set_attr(span, &msg->attrs[i]);
    int32_t partition = msg->partition_set || msg->partition > 0 ? msg->partition : RD_KAFKA_PARTITION_UA;
    int part_set = msg->partition_set && msg->partition >= 0;
    if (part_set) {
        char part[16];
        snprintf(part, sizeof part, "%d", (int)msg->partition);
        ituna_span_set_str(span, "messaging.destination.partition.id", part);
    }
    const ituna_span_context *ctx = ituna_span_get_context(span);

    pub_op *op = calloc(1, sizeof *op);
    rd_kafka_headers_t *hdrs = NULL;
    ituna_buf payload;
    ituna_buf_init(&payload);
    const void *value = msg->value;
    size_t value_len = msg->value_len;
    if (!op) {
        e = ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
        goto fail;
    }
    op->p = p;
    op->span = span;
    op->scan = part_set || msg->n_attrs;
    op->user_opaque = msg->opaque;
    /* Its span then shows when the cluster first answered (the rest of its wait). */
    op->cold = !atomic_load(&p->ready_ns);
    op->ticket = atomic_fetch_add(&p->next_ticket, 1) + 1;
    ituna_message *owner = msg->owner ? msg->owner : ituna_message_current();
    if (owner || slot_out) { /* two references: the publish's and the owner's */
        op->slot = ituna_delivery_slot_new(p, op->ticket, ituna_kafka_mono_ms() + p->msg_timeout_ms + 5000);
        if (!op->slot) {
            e = ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
            goto fail;
        }
    }
    hdrs = ituna_kafka_headers_build(msg->headers, msg->n_headers, ctx, ituna_tracer_propagators(p->tracer),
                                     msg->baggage);
    if (!hdrs) {
        e = ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (p->payload_carrier) {
        int r = ituna_kafka_payload_inject(msg->value, msg->value_len, ctx, &payload);
        if (r < 0) {
            e = ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
            goto fail;
        }
        if (r == 1) {
            value = payload.data;
            value_len = payload.len;
        }
    }

    atomic_fetch_add(&p->in_flight, 1);
    uint64_t tk = op->ticket; /* op is the delivery thread's once producev succeeded */
    ituna_delivery_slot *slot = op->slot;
    int64_t deadline = ituna_kafka_mono_ms() + 1000;
    rd_kafka_resp_err_t err;
    for (;;) {
        /* The span may end on the delivery thread as soon as producev returns:
         * nothing touches it after a successful call. */
        err = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(msg->topic), RD_KAFKA_V_PARTITION(partition),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_KEY((void *)msg->key, msg->key ? msg->key_len : 0),
                                RD_KAFKA_V_VALUE((void *)value, value ? value_len : 0),
                                RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(op), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || ituna_kafka_mono_ms() >= deadline) break;
        rd_kafka_poll(p->rk, 50);
    }
    ituna_buf_free(&payload);
    if (!err) {
        if (ticket) *ticket = tk;
        if (slot_out)
            *slot_out = slot;
        else if (slot)
            ituna_message_track(owner, slot);
        return ITUNA_OK;
    }
    atomic_fetch_sub(&p->in_flight, 1);
    if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) /* producev's refusal is local, not the broker's */
        e = ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG,
                          "kafka publish to '%s': the record with the trace headers is over this producer's "
                          "message.max.bytes of %lld (a local limit: not sent to the broker)",
                          msg->topic, (long long)p->max_bytes);
    else
        e = ituna_set_err(errstr, errstr_size,
                          err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? ITUNA_ERR_QUEUE_FULL : ITUNA_ERR_KAFKA,
                          "kafka publish to '%s': %s (%s)", msg->topic, rd_kafka_err2str(err),
                          rd_kafka_err2name(err));
    ituna_span_set_str(span, "error.type", rd_kafka_err2name(err));
    ituna_span_set_status(span, ITUNA_STATUS_ERROR, errstr && *errstr ? errstr : rd_kafka_err2str(err));
    goto fail_span;
fail:
    ituna_span_set_str(span, "error.type", ituna_err2name(e));
    ituna_span_set_status(span, ITUNA_STATUS_ERROR, ituna_err2str(e));
fail_span:
    if (hdrs) rd_kafka_headers_destroy(hdrs);
    ituna_buf_free(&payload);
    if (op) free(op->slot);
    free(op);
    ituna_span_end(span, 0);
    return e;
}

int ituna_producer_poll(ituna_producer *p, int timeout_ms) {
    if (!p) return 0;
    if (timeout_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&p->mu);
        while (!p->q && pthread_cond_timedwait(&p->cv, &p->mu, &ts) == 0) {}
        pthread_mutex_unlock(&p->mu);
    }
    int n = 0;
    for (ituna_dr_copy *c = take_list(p, &p->q, &p->q_tail), *nx; c; c = nx, n++) {
        nx = c->next;
        p->on_delivery(&c->r, p->opaque);
        free(c);
    }
    return n;
}

size_t ituna_producer_take_failures(ituna_producer *p, const ituna_message *owner, ituna_delivery_fn fn,
                                    void *opaque) {
    if (!p || !fn) return 0;
    size_t n = 0;
    if (owner) return ituna_delivery_take_failures(owner, p, fn, opaque);
    for (ituna_dr_copy *c = take_list(p, &p->f, &p->f_tail), *nx; c; c = nx, n++) {
        nx = c->next;
        fn(&c->r, opaque);
        free(c);
    }
    return n;
}

ituna_err ituna_producer_flush(ituna_producer *p, int timeout_ms) {
    if (!p) return ITUNA_ERR_INVALID_ARG;
    int64_t deadline = ituna_kafka_mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    /* Reports may be served by the delivery thread or here; wait on our count. */
    while (atomic_load(&p->in_flight) > 0) {
        int64_t left = deadline - ituna_kafka_mono_ms();
        if (left <= 0) break;
        rd_kafka_flush(p->rk, (int)(left < 50 ? left : 50));
    }
    if (p->reports_on_poll && p->on_delivery) ituna_producer_poll(p, 0);
    return atomic_load(&p->in_flight) > 0 ? ITUNA_ERR_TIMEOUT : ITUNA_OK;
}

void *ituna_producer_rd(ituna_producer *p) {
    return p ? p->rk : NULL;
}

int ituna_producer_in_flight(ituna_producer *p) {
    return p ? atomic_load(&p->in_flight) : 0;
}

uint64_t ituna_producer_failures(ituna_producer *p) {
    return p ? atomic_load(&p->failures) : 0;
}

ituna_err ituna_producer_close(ituna_producer *p, int timeout_ms) {
    if (!p) return ITUNA_ERR_INVALID_ARG;
    if (atomic_exchange(&p->closed, 1)) return ITUNA_OK;
    ituna_err e = ituna_producer_flush(p, timeout_ms);
    if (e) {
        /* Undelivered messages are purged and reported as failed, never dropped silently. */
        ituna_log(ITUNA_LOG_WARN, "kafka producer closing with %d undelivered message(s)",
                  atomic_load(&p->in_flight));
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        int64_t deadline = ituna_kafka_mono_ms() + 5000;
        while (atomic_load(&p->in_flight) > 0 && ituna_kafka_mono_ms() < deadline) rd_kafka_poll(p->rk, 50);
    }
    if (p->reports_on_poll && p->on_delivery) ituna_producer_poll(p, 0);
    return e;
}

ituna_err ituna_producer_destroy(ituna_producer *p, int timeout_ms) {
    if (!p) return ITUNA_OK;
    ituna_err e = atomic_load(&p->closed) ? ITUNA_OK : ituna_producer_close(p, timeout_ms);
    atomic_store(&p->stop, 1);
    if (p->thread_started) pthread_join(p->thread, NULL);
    if (p->connect_started) pthread_join(p->connect_thread, NULL);
    rd_kafka_poll(p->rk, 0);
    rd_kafka_destroy(p->rk);
    for (ituna_dr_copy *l = take_list(p, &p->q, &p->q_tail); l;) {
        ituna_dr_copy *nx = l->next;
        free(l);
        l = nx;
    }
    size_t lost = 0;
    for (ituna_dr_copy *l = take_list(p, &p->f, &p->f_tail); l; lost++) {
        ituna_dr_copy *nx = l->next;
        free(l);
        l = nx;
    }
    if (lost)
        ituna_log(ITUNA_LOG_WARN, "kafka producer destroyed with %zu delivery failure(s) not taken", lost);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
    return e;
}
