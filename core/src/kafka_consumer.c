/* kafka_consumer.c - the traced Kafka consumer and its loop policy: group
 * subscription, CONSUMER spans "process <topic>" continuing the producer's context
 * (headers, else the seed's payload carrier), at-least-once offset storage after
 * the handler's verdict and the deliveries of its publishes (settled without
 * blocking, see "Settling" below), redelivery by rewinding (bounded, then the DLQ),
 * the dead-letter topic for malformed payloads (a copy cut to fit), the message a
 * host left unfinished, waiting for the assignment, stop and wakeup, a bounded
 * "broker unreachable" error, and the current partition assignment (tracked by our
 * rebalance callback).
 *
 * Settling. A message finished as handled while its publishes are still in flight
 * is not waited for (that cost a broker round trip plus linger.ms per message): it
 * joins its partition's queue (by offset) with its span open, and is settled on the
 * caller's thread by every later poll (a look at the slots' states, no wait), by a
 * stop or revoke (bounded wait) and by close (wait up to the deliveries' deadline,
 * message.timeout.ms). Settled OK, its span ends and it counts as done here; its
 * offset is stored only once every message before it on the partition is done
 * (storing k+1 while k is unsettled would lose k in a crash). A delivery found
 * failed gives the span error.type delivery_failed with the failed publish, counts
 * toward max-redeliveries (then the DLQ) and rewinds the partition to it; the
 * messages after it that are done here are skipped when they come again (the
 * "done" list), one still settling is waited for then. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kafka_delivery.h"

#define DLQ_CONFIRM_MS 10000
/* A revoke waits this long at most for the revoked partitions' deliveries (it runs
 * inside the poll, and the group waits for it), a stop for all (close: up to their
 * delivery deadline, message.timeout.ms). */
#define LEAVE_SETTLE_MS 10000
/* Messages settling at most: beyond, polls hand out nothing until some settle, so a
 * stalled output (its broker down: reports wait up to message.timeout.ms) does not
 * pile up consumed records in memory. */
#define MAX_SETTLING 4096

/* Messages finished as handled whose offsets are not stored yet: one partition's
 * queue, by offset. */
typedef struct part_q {
    struct part_q *next;
    char topic[128];
    int32_t partition;
    ituna_message *head, *tail; /* by offset; tail: appends and lookups are O(1) in order */
} part_q;

struct ituna_consumer {
    rd_kafka_t *rk;
    ituna_tracer *tracer;
    ituna_kafka_endpoint ep;
    char *group;
    char *dlq_suffix;
    int link_mode;
    int64_t connect_timeout_ms;
    int64_t max_redeliveries;
    ituna_producer *dlq;                     /* publishes to <topic><dlq_suffix> */
    rd_kafka_conf_t *conf;                   /* a copy, for a new member after fencing */
    rd_kafka_topic_partition_list_t *topics; /* the subscription, likewise */
    int refenced;                            /* new members made after fencing */
    atomic_int wakeup, stop;
    ituna_message *current;     /* handed out by the last poll, not finished */
    ituna_message *held;        /* kept by wait_assigned(), handed out by the next poll */
    ituna_message *zombies;     /* finished by us, not yet released by the host */
    atomic_llong down_since_ms; /* monotonic ms of the first "all brokers down", 0 = up */
    int ever_up;                /* reached the cluster once: an outage is then ridden through */
    long long outage_warned_ms; /* start of the outage a warning was logged for, 0 = none */
    pthread_mutex_t lock;       /* guards last_error (written from librdkafka threads) */
    char last_error[512];       /* error name + a reason of up to 255 chars */
    int closed;
    int outstanding;     /* messages polled and not yet finished */
    atomic_int assigned; /* partitions currently assigned (rebalance callback) */
    /* Recent handler failures per (partition, offset) for max-redeliveries. */
    struct {
        char topic[128];
        int32_t partition;
        int64_t offset;
        int count;
    } fails[32];
    unsigned fails_next;
    /* Messages this member finished lately. A broker outage can lose their commit (the
     * group drops a member it cannot reach) and hand them out again: seen here, they
     * are committed and skipped, not handled twice. */
    struct {
        char topic[128];
        int32_t partition;
        int64_t offset;
    } done[256];
    unsigned done_next;
    part_q *queues;
    int queued;                 /* messages in the queues */
    int settling;               /* of them, with deliveries in flight */
    unsigned long settle_epoch; /* ituna_delivery_epoch() at the last settle pass */
    int64_t settle_check_ms;    /* next pass even without a report (deadlines) */
};

static part_q *queue_of(ituna_consumer *c, const char *topic, int32_t partition, int create);
static void settle_leaving(ituna_consumer *c, part_q *only, int64_t wait_until_ms);

static int done_find(const ituna_consumer *c, const char *topic, int32_t partition, int64_t offset) {
    for (unsigned i = 0; i < sizeof c->done / sizeof c->done[0]; i++)
        if (c->done[i].offset == offset && c->done[i].partition == partition && c->done[i].topic[0] &&
            strcmp(c->done[i].topic, topic) == 0)
            return 1;
    return 0;
}

static void done_note(ituna_consumer *c, const char *topic, int32_t partition, int64_t offset) {
    unsigned i = c->done_next++ % (sizeof c->done / sizeof c->done[0]);
    ituna_kafka_strcat2(c->done[i].topic, sizeof c->done[i].topic, topic, NULL);
    c->done[i].partition = partition;
    c->done[i].offset = offset;
}

int ituna_message_baggage(const ituna_message *m, ituna_baggage *out) {
    if (!m || !m->rkm || !out) return 0;
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m->rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return 0;
    return ituna_kafka_baggage(hdrs, ituna_tracer_propagators(m->c->tracer), out);
}

int ituna_message_attempt(const ituna_message *m) {
    return m ? m->attempt : 0;
}

static void note_error(ituna_consumer *c, rd_kafka_resp_err_t err, const char *reason) {
    pthread_mutex_lock(&c->lock);
    snprintf(c->last_error, sizeof c->last_error, "%s: %s", rd_kafka_err2name(err), reason);
    pthread_mutex_unlock(&c->lock);
    /* _TRANSPORT too: after a broker restart librdkafka may report only that; a probe
     * after connect-timeout tells a real outage from a dropped idle connection */
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__RESOLVE ||
        err == RD_KAFKA_RESP_ERR__TRANSPORT) {
        long long zero = 0;
        atomic_compare_exchange_strong(&c->down_since_ms, &zero, (long long)ituna_kafka_mono_ms());
    }
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    ituna_consumer *c = opaque;
    ituna_log(err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ? ITUNA_LOG_WARN : ITUNA_LOG_INFO,
              "kafka %s: %s: %s", rd_kafka_name(rk), rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
    note_error(c, (rd_kafka_resp_err_t)err, reason);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Apply a rebalance ourselves so the assignment size is known. Runs on the
 * polling thread, inside rd_kafka_consumer_poll()/close(). Cooperative
 * assignors (a pass-through property) need the incremental calls. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
    ituna_consumer *c = opaque;
    const char *proto = rd_kafka_rebalance_protocol(rk);
    int cooperative = proto && strcmp(proto, "COOPERATIVE") == 0;
    rd_kafka_error_t *ae = NULL;
    rd_kafka_resp_err_t aerr = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (cooperative)
            ae = rd_kafka_incremental_assign(rk, parts);
        else
            aerr = rd_kafka_assign(rk, parts);
        if (!ae && !aerr) {
            int n = cooperative ? atomic_load(&c->assigned) + parts->cnt : parts->cnt;
            atomic_store(&c->assigned, n);
            ituna_log(ITUNA_LOG_INFO, "kafka consumer %s: %d partition(s) assigned", c->group, n);
            return;
        }
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        /* Commit what the handlers finished before another member takes over;
         * unfinished messages are redelivered there (at-least-once). Those still
         * settling are waited for (bounded: the group waits for this member). */
        if (c->settling) {
            int64_t until = ituna_kafka_mono_ms() + LEAVE_SETTLE_MS;
            for (int i = 0; i < parts->cnt; i++) {
                part_q *q = queue_of(c, parts->elems[i].topic, parts->elems[i].partition, 0);
                if (q) settle_leaving(c, q, rd_kafka_assignment_lost(rk) ? 0 : until);
            }
        }
        if (!rd_kafka_assignment_lost(rk)) {
            rd_kafka_resp_err_t cerr = rd_kafka_commit(rk, NULL, 0);
            if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
                ituna_log(ITUNA_LOG_WARN, "kafka consumer %s: commit on revoke: %s", c->group,
                          rd_kafka_err2str(cerr));
        }
        if (cooperative) {
            ae = rd_kafka_incremental_unassign(rk, parts);
            if (!ae) {
                int n = atomic_load(&c->assigned) - parts->cnt;
                atomic_store(&c->assigned, n < 0 ? 0 : n);
                return;
            }
        } else {
            aerr = rd_kafka_assign(rk, NULL);
            atomic_store(&c->assigned, 0);
            if (!aerr) return;
        }
    } else {
        ituna_log(ITUNA_LOG_WARN, "kafka consumer %s: rebalance error: %s", c->group, rd_kafka_err2str(err));
    }
    if (ae) {
        ituna_log(ITUNA_LOG_WARN, "kafka consumer %s: rebalance: %s", c->group, rd_kafka_error_string(ae));
        rd_kafka_error_destroy(ae);
    } else if (aerr) {
        ituna_log(ITUNA_LOG_WARN, "kafka consumer %s: rebalance: %s", c->group, rd_kafka_err2str(aerr));
    }
    /* Any failure: drop the whole assignment; the group rebalances again. */
    if (cooperative) {
        rd_kafka_topic_partition_list_t *cur = NULL;
        if (!rd_kafka_assignment(rk, &cur) && cur) {
            rd_kafka_error_t *ue = rd_kafka_incremental_unassign(rk, cur);
            if (ue) rd_kafka_error_destroy(ue);
            rd_kafka_topic_partition_list_destroy(cur);
        }
    } else {
        rd_kafka_assign(rk, NULL);
    }
    atomic_store(&c->assigned, 0);
}

void ituna_consumer_destroy(ituna_consumer *c);

ituna_err ituna_consumer_create(ituna_tracer *t, const ituna_config *cfg, const ituna_consumer_options *opts,
                                ituna_consumer **out, char *errstr, size_t errstr_size) {
    if (!out) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    if (!opts || !opts->group || !*opts->group)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "consumer: a group is required");
    if (!opts->topics || !opts->topics[0])
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG,
                             "consumer: at least one topic is required");
    ituna_err e = ituna_kafka_resolve(&t, &cfg, errstr, errstr_size);
    if (e) return e;
    ituna_consumer *c = calloc(1, sizeof *c);
    if (!c) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&c->lock, NULL);
    c->tracer = t;
    c->group = dup_str(opts->group);
    const char *suffix =
        opts->dlq_suffix ? opts->dlq_suffix : ituna_config_str(cfg, "messaging", "dlq-suffix", ".dlq");
    c->dlq_suffix = dup_str(suffix && *suffix ? suffix : ".dlq");
    if (opts->context_mode == ITUNA_CONTEXT_LINK)
        c->link_mode = 1;
    else if (opts->context_mode == ITUNA_CONTEXT_FROM_CONFIG) {
        const char *m = ituna_config_str(cfg, "messaging", "consumer-context", "parent");
        c->link_mode = m && strcmp(m, "link") == 0;
    }
    c->connect_timeout_ms = ituna_config_int(cfg, "messaging", "connect-timeout", 10000);
    c->max_redeliveries = ituna_config_int(cfg, "messaging", "max-redeliveries", 9);
    if (!c->group || !c->dlq_suffix) {
        ituna_consumer_destroy(c);
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
    }

    const char *svc = ituna_tracer_service_name(t);
    const char *defaults[] = { "enable.auto.commit", "true", "auto.offset.reset", "earliest",
                               "enable.partition.eof", "false",
                               /* Group membership (RELIABILITY.md): a crashed member's partitions
                                * move after 10 s, not librdkafka's 45; heartbeats at 1/10 of it
                                * survive a loaded machine; cooperative-sticky moves only the
                                * crashed member's partitions, the others keep consuming. */
                               "session.timeout.ms", "10000", "heartbeat.interval.ms", "1000",
                               "partition.assignment.strategy", "cooperative-sticky",
                               /* finished messages are committed within 250 ms (librdkafka: 5 s):
                                * what a broker outage or a crash makes the group redeliver, and
                                * so handle twice, is at most that window */
                               "auto.commit.interval.ms", "250", "client.id", svc && *svc ? svc : "ituna",
                               NULL };
    /* At-least-once: only offsets stored by ituna_message_done(OK) are committed. */
    const char *forced[] = { "group.id", opts->group, "enable.auto.offset.store", "false", NULL };
    rd_kafka_conf_t *conf;
    e = ituna_kafka_conf_build(cfg, RD_KAFKA_CONSUMER, opts->bootstrap, defaults, opts->properties, forced,
                               &conf, &c->ep, errstr, errstr_size);
    if (e) {
        ituna_consumer_destroy(c);
        return e;
    }
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, c);
    c->conf = rd_kafka_conf_dup(conf);
    char msg[512];
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, msg, sizeof msg);
    if (!c->rk) {
        rd_kafka_conf_destroy(conf);
        ituna_consumer_destroy(c);
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG, "kafka consumer: %s", msg);
    }
    rd_kafka_poll_set_consumer(c->rk);

    /* The DLQ producer shares the bootstrap and the pass-through properties
     * (the consumer-only ones are left out by the conf builder). */
    ituna_producer_options po = { .bootstrap = c->ep.bootstrap,
                                  .properties = opts->properties,
                                  .payload_carrier = 0 };
    e = ituna_producer_create(t, cfg, &po, &c->dlq, errstr, errstr_size);
    if (e) {
        ituna_consumer_destroy(c);
        return e;
    }

    size_t n = 0;
    while (opts->topics[n]) n++;
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(topics, opts->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, topics);
    c->topics = topics;
    if (err) {
        ituna_consumer_destroy(c);
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_KAFKA, "kafka subscribe: %s",
                             rd_kafka_err2str(err));
    }
    *out = c;
    return ITUNA_OK;
}

/* Broker unreachable for longer than connect-timeout: confirm with a metadata
 * request before reporting, so a broker that came back is not misreported. */
static void note_back(ituna_consumer *c) {
    c->ever_up = 1;
    if (!c->outage_warned_ms) return;
    ituna_log(ITUNA_LOG_WARN, "kafka consumer %s: broker at %s reachable again after %lld ms", c->group,
              c->ep.bootstrap, (long long)(ituna_kafka_mono_ms() - c->outage_warned_ms));
    ituna_kafka_outage_end(c->ep.bootstrap, ituna_now_ns());
    c->outage_warned_ms = 0;
}

/* Before the consumer ever reached the cluster, an unreachable broker is an error
 * (a wrong address fails fast). Once it has, an outage is said once (and its end)
 * while polling goes on: librdkafka reconnects by itself and the loop resumes. */
static ituna_err check_reachable(ituna_consumer *c, char *errstr, size_t errstr_size) {
    long long since = atomic_load(&c->down_since_ms);
    if (!since) {
        if (c->outage_warned_ms || (!c->ever_up && atomic_load(&c->assigned) > 0)) note_back(c);
        return ITUNA_OK;
    }
    if (ituna_kafka_mono_ms() - since < c->connect_timeout_ms) return ITUNA_OK;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(c->rk, 0, NULL, &md, 1000);
    if (!err) {
        rd_kafka_metadata_destroy(md);
        atomic_store(&c->down_since_ms, 0);
        note_back(c);
        return ITUNA_OK;
    }
    char last[sizeof c->last_error];
    pthread_mutex_lock(&c->lock);
    snprintf(last, sizeof last, "%s", c->last_error);
    pthread_mutex_unlock(&c->lock);
    if (c->ever_up) {
        if (!c->outage_warned_ms) {
            c->outage_warned_ms = since;
            ituna_kafka_outage_begin(c->ep.bootstrap, last[0] ? last : rd_kafka_err2str(err),
                                     ituna_now_ns() - (uint64_t)(ituna_kafka_mono_ms() - since) * 1000000u);
            ituna_log(
                ITUNA_LOG_WARN,
                "kafka consumer %s: no broker reachable at %s for %lld ms (last error: %s); polling goes "
                "on and resumes when it is back",
                c->group, c->ep.bootstrap, (long long)(ituna_kafka_mono_ms() - since),
                last[0] ? last : rd_kafka_err2str(err));
        }
        return ITUNA_OK;
    }
    /* A timeout, not a broker error: nothing answered within connect-timeout. */
    return ituna_set_err(errstr, errstr_size, ITUNA_ERR_TIMEOUT,
                         "no Kafka broker reachable at %s for %lld ms (last error: %s)", c->ep.bootstrap,
                         (long long)(ituna_kafka_mono_ms() - since), last[0] ? last : rd_kafka_err2str(err));
}

/* Failed attempts of one message so far (0: none recorded). */
static int failures_of(ituna_consumer *c, const char *topic, int32_t partition, int64_t offset) {
    for (unsigned i = 0; i < 32; i++)
        if (c->fails[i].count && c->fails[i].partition == partition && c->fails[i].offset == offset &&
            strcmp(c->fails[i].topic, topic) == 0)
            return c->fails[i].count;
    return 0;
}

/* Count a failed attempt of one message; returns the count including this one. */
static int count_failure(ituna_consumer *c, const char *topic, int32_t partition, int64_t offset) {
    for (unsigned i = 0; i < 32; i++)
        if (c->fails[i].count && c->fails[i].partition == partition && c->fails[i].offset == offset &&
            strcmp(c->fails[i].topic, topic) == 0)
            return ++c->fails[i].count;
    unsigned i = c->fails_next++ % 32;
    snprintf(c->fails[i].topic, sizeof c->fails[i].topic, "%s", topic);
    c->fails[i].partition = partition;
    c->fails[i].offset = offset;
    c->fails[i].count = 1;
    return 1;
}

static ituna_message *message_new(ituna_consumer *c, rd_kafka_message_t *rkm) {
    ituna_message *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->c = c;
    m->rkm = rkm;
    const char *topic = rd_kafka_topic_name(rkm->rkt);
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) hdrs = NULL;

    ituna_span_context remote, current;
    char reason[160];
    ituna_ctx_source src = ituna_kafka_extract(
        hdrs, rkm->payload, rkm->len, ituna_tracer_propagators(c->tracer), &remote, reason, sizeof reason);
    int has_current = ituna_context_current(&current) && ituna_span_context_is_valid(&current);
    ituna_span_options so = { .kind = ITUNA_SPAN_KIND_CONSUMER, .start_time_ns = ituna_now_ns() };
    /* Messaging conventions: the consumer span links the producer's context (SHOULD),
     * in parent mode too; the ambient (current) context is the parent in link mode
     * and a link in parent mode. */
    ituna_span_context links[2];
    size_t nl = 0;
    if (src != ITUNA_CTX_NONE) ituna_ctx_copy(&links[nl++], &remote);
    if (c->link_mode) {
        so.root = !has_current; /* parent: the ambient context, else a new root */
        if (has_current) so.parent = &current;
    } else {
        if (src != ITUNA_CTX_NONE)
            so.parent = &remote;
        else
            so.root = 1; /* a missing context starts a new trace, never a stray parent */
        if (has_current) ituna_ctx_copy(&links[nl++], &current);
    }
    so.links = nl ? links : NULL;
    so.n_links = nl;
    char name[300];
    ituna_kafka_strcat2(name, sizeof name, "process ", topic);
    if (ituna_span_start(c->tracer, name, &so, &m->span) != ITUNA_OK || !m->span) {
        free(m);
        return NULL;
    }
    ituna_ctx_copy(&m->ctx, ituna_span_get_context(m->span));
    m->attempt = failures_of(c, topic, rkm->partition, rkm->offset) + 1;
    rd_kafka_timestamp_type_t tstype;
    m->timestamp_ms = rd_kafka_message_timestamp(rkm, &tstype);
    ituna_span *s = m->span;
    if (ituna_span_is_recording(s)) {
        ituna_kafka_span_attrs(s, "process", topic, rkm->key, rkm->key_len, rkm->len, &c->ep);
        char part[16];
        const char *ps = ituna_kafka_partition_str(rkm->partition, part);
        ITUNA_SET_STR_LIT(s, "messaging.destination.partition.id", ps,
                          (ps == part ? 0 : ITUNA_LIT_VALUE) | ITUNA_LIT_FRESH);
        ITUNA_SET_INT_LIT(s, "messaging.kafka.offset", rkm->offset, ITUNA_LIT_FRESH);
        ITUNA_SET_STR_LIT(s, "messaging.consumer.group.name", c->group, ITUNA_LIT_FRESH);
        if (!rkm->payload) { /* a null value: a tombstone (messaging conventions) */
            ituna_attr tomb = ituna_attr_bool("messaging.kafka.message.tombstone", 1);
            ituna_span_set_attr_lit(s, &tomb, sizeof "messaging.kafka.message.tombstone" - 1,
                                    ITUNA_LIT_KEY | ITUNA_LIT_FRESH);
        }
        if (m->attempt > 1) ITUNA_SET_INT_LIT(s, "ituna.delivery.attempt", m->attempt, ITUNA_LIT_FRESH);
        ITUNA_SET_STR_LIT(s, "ituna.context.source",
                          src == ITUNA_CTX_HEADER    ? "header"
                          : src == ITUNA_CTX_PAYLOAD ? "payload-carrier"
                                                     : "none",
                          ITUNA_LIT_VALUE | ITUNA_LIT_FRESH);
        if (src == ITUNA_CTX_NONE)
            ITUNA_SET_STR_LIT(s, "ituna.context.error", reason, ITUNA_LIT_FRESH);
        else if (reason[0]) /* a tracestate over the W3C limits, dropped or cut: recorded */
            ITUNA_SET_STR_LIT(s, "ituna.tracestate.dropped", reason, ITUNA_LIT_FRESH);
        if (m->timestamp_ms >= 0) {
            ITUNA_SET_INT_LIT(s, "ituna.message.timestamp_ms", m->timestamp_ms, ITUNA_LIT_FRESH);
            ITUNA_SET_STR_LIT(s, "ituna.message.timestamp_type",
                              tstype == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? "log_append_time"
                                                                           : "create_time",
                              ITUNA_LIT_VALUE | ITUNA_LIT_FRESH);
            /* time between the message's timestamp and the start of processing */
            /* in integer ns first: exact to the ns, and a short decimal in JSON */
            double wait = (double)((int64_t)so.start_time_ns - m->timestamp_ms * 1000000) / 1e6;
            ituna_attr qw = ituna_attr_double("ituna.queue_wait_ms", wait < 0 ? 0 : wait);
            ituna_span_set_attr_lit(s, &qw, sizeof "ituna.queue_wait_ms" - 1,
                                    ITUNA_LIT_KEY | ITUNA_LIT_FRESH);
        }
    }
    return m;
}

/* ---- settling and offsets ------------------------------------------------------ */

static const char *m_topic(const ituna_message *m) {
    return rd_kafka_topic_name(m->rkm->rkt);
}

static part_q *queue_of(ituna_consumer *c, const char *topic, int32_t partition, int create) {
    for (part_q *q = c->queues; q; q = q->next)
        if (q->partition == partition && strcmp(q->topic, topic) == 0) return q;
    if (!create) return NULL;
    part_q *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    snprintf(q->topic, sizeof q->topic, "%s", topic);
    q->partition = partition;
    q->next = c->queues;
    c->queues = q;
    return q;
}

static ituna_message *queue_find(part_q *q, int64_t offset) {
    if (!q || !q->head || offset < q->head->rkm->offset || offset > q->tail->rkm->offset) return NULL;
    for (ituna_message *m = q->head; m; m = m->next_q)
        if (m->rkm->offset == offset) return m;
    return NULL;
}

static void queue_insert(ituna_consumer *c, part_q *q, ituna_message *m) {
    ituna_message **at = &q->head;
    if (q->tail && q->tail->rkm->offset <= m->rkm->offset) at = &q->tail->next_q; /* the usual case */
    while (*at && (*at)->rkm->offset <= m->rkm->offset) at = &(*at)->next_q;
    m->next_q = *at;
    *at = m;
    if (!m->next_q) q->tail = m;
    c->queued++;
    if (m->settle == 1) c->settling++;
}

static void queue_unlink(ituna_consumer *c, part_q *q, ituna_message *m) {
    ituna_message *prev = NULL;
    for (ituna_message **at = &q->head; *at; prev = *at, at = &(*at)->next_q)
        if (*at == m) {
            *at = m->next_q;
            if (q->tail == m) q->tail = prev;
            m->next_q = NULL;
            c->queued--;
            if (m->settle == 1) c->settling--;
            m->settle = 0;
            return;
        }
}

/* End what is left of a message the consumer is done with (the struct is the caller's). */
static void message_release(ituna_message *m) {
    ituna_message_untrack(m);
    ituna_kafka_outage_mark(m->span, m->c->ep.bootstrap); /* handled while the broker was away */
    if (m->span) ituna_span_end(m->span, 0);
    m->span = NULL;
    if (m->rkm) rd_kafka_message_destroy(m->rkm);
    m->rkm = NULL;
}

static ituna_err store_at(ituna_consumer *c, const char *topic, int32_t partition, int64_t offset,
                          char *errstr, size_t errstr_size) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset + 1;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->rk, l);
    if (!err) err = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (err &&
        err != RD_KAFKA_RESP_ERR__STATE) /* __STATE: partition revoked meanwhile; redelivered elsewhere */
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_KAFKA, "kafka offset store: %s",
                             rd_kafka_err2str(err));
    if (err)
        ituna_log(ITUNA_LOG_INFO, "kafka offset not stored for %s [%d] @%lld: partition no longer assigned",
                  topic, (int)partition, (long long)offset);
    return ITUNA_OK;
}

/* Store the offset after the queue's prefix of done messages (none may be skipped:
 * a message still settling holds back every one after it) and free them. */
static ituna_err store_prefix(ituna_consumer *c, part_q *q, char *errstr, size_t errstr_size) {
    int64_t last = -1;
    while (q->head && q->head->settle == 2) {
        ituna_message *m = q->head;
        last = m->rkm->offset;
        queue_unlink(c, q, m);
        message_release(m);
        free(m);
    }
    return last < 0 ? ITUNA_OK : store_at(c, q->topic, q->partition, last, errstr, errstr_size);
}

/* The partition is read again from offset: the messages after it in its queue may
 * not be stored any more (done ones are dropped, the done list skips them when they
 * come again; ones still settling are marked). With seek, rewind the consumer so the
 * next poll redelivers offset (not on a revoke or close: the group's next reader
 * starts from the committed offset anyway). */
static void rewind_to(ituna_consumer *c, const char *topic, int32_t partition, int64_t offset, int seek) {
    part_q *q = queue_of(c, topic, partition, 0);
    for (ituna_message *m = q ? q->head : NULL, *nx; m; m = nx) {
        nx = m->next_q;
        if (m->rkm->offset <= offset) continue;
        if (m->settle == 2) {
            queue_unlink(c, q, m);
            message_release(m);
            free(m);
        } else {
            m->rewound = 1;
        }
    }
    if (!seek) return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    rd_kafka_error_t *se = rd_kafka_seek_partitions(c->rk, l, 5000);
    if (se) {
        ituna_log(ITUNA_LOG_WARN, "kafka rewind of %s [%d] to %lld failed: %s", topic, (int)partition,
                  (long long)offset, rd_kafka_error_string(se));
        rd_kafka_error_destroy(se);
    } else if (l->elems[0].err) {
        ituna_log(ITUNA_LOG_WARN, "kafka rewind of %s [%d]: %s", topic, (int)partition,
                  rd_kafka_err2str(l->elems[0].err));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Republish the message to <topic><suffix> with the reason, and wait for the broker's
 * ack. A copy larger than the DLQ producer's message.max.bytes gets its value cut
 * (headers ituna.dlq.value-cut, ituna.dlq.original-size), so the partition moves on. */
static ituna_err dead_letter(ituna_message *m, const char *reason, char *errstr, size_t errstr_size) {
    ituna_consumer *c = m->c;
    rd_kafka_message_t *rkm = m->rkm;
    const char *topic = rd_kafka_topic_name(rkm->rkt);
    char dlq_topic[512], part[16], off[24], size[24];
    snprintf(dlq_topic, sizeof dlq_topic, "%s%s", topic, c->dlq_suffix);
    snprintf(part, sizeof part, "%d", (int)rkm->partition);
    snprintf(off, sizeof off, "%lld", (long long)rkm->offset);
    snprintf(size, sizeof size, "%zu", rkm->len);
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) hdrs = NULL;
    size_t n = hdrs ? rd_kafka_header_cnt(hdrs) : 0;
    ituna_header *h = calloc(n + 6, sizeof *h);
    if (!h) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
    size_t k = 0, rest = rkm->key_len + 1024; /* record overhead, trace headers (tracestate <= 512) */
    for (size_t i = 0; i < n; i++) {
        const char *name;
        const void *val;
        size_t sz;
        if (rd_kafka_header_get_all(hdrs, i, &name, &val, &sz)) break;
        if (strncmp(name, "ituna.dlq.", 10) == 0)
            continue; /* a message dead-lettered twice keeps the latest */
        h[k++] = (ituna_header){ name, val, sz };
        rest += strlen(name) + sz + 8;
    }
    const char *why = reason && *reason ? reason : "malformed payload";
    h[k++] = (ituna_header){ "ituna.dlq.reason", why, strlen(why) };
    h[k++] = (ituna_header){ "ituna.dlq.topic", topic, strlen(topic) };
    h[k++] = (ituna_header){ "ituna.dlq.partition", part, strlen(part) };
    h[k++] = (ituna_header){ "ituna.dlq.offset", off, strlen(off) };
    rest += strlen(why) + strlen(topic) + 200;
    size_t value_len = rkm->len, max = (size_t)ituna_producer_max_bytes(c->dlq);
    if (rest + value_len > max) {
        value_len = max > rest ? max - rest : 0;
        h[k++] = (ituna_header){ "ituna.dlq.value-cut", "true", 4 };
        h[k++] = (ituna_header){ "ituna.dlq.original-size", size, strlen(size) };
        ituna_span_set_int(m->span, "ituna.dlq.original_size", (int64_t)rkm->len);
    }
    ituna_message_out mo = { .topic = dlq_topic,
                             .key = rkm->key,
                             .key_len = rkm->key_len,
                             .value = rkm->payload,
                             .value_len = value_len,
                             .headers = h,
                             .n_headers = k,
                             .partition = -1,
                             .parent = &m->ctx };
    ituna_delivery_slot *slot = NULL;
    ituna_err e = ituna_producer_send_slot(c->dlq, &mo, NULL, &slot, errstr, errstr_size);
    free(h);
    if (e) return e;
    int st = ituna_delivery_slot_wait(slot, ituna_kafka_mono_ms() + DLQ_CONFIRM_MS);
    if (st == 0)
        e = ituna_set_err(errstr, errstr_size, ITUNA_ERR_TIMEOUT,
                          "DLQ write to '%s' not confirmed within %d ms", dlq_topic, DLQ_CONFIRM_MS);
    else if (st == 2) {
        const ituna_dr_copy *rep = ituna_delivery_slot_report(slot);
        e = ituna_set_err(errstr, errstr_size, rep->r.err, "DLQ write to '%s' failed: %s: %s", dlq_topic,
                          rep->error_name, rep->errstr);
    }
    ituna_delivery_slot_release(slot);
    return e;
}

/* Done here (handled, or dead-lettered): skipped if it comes again; its span ends. */
static void mark_done(ituna_message *m) {
    done_note(m->c, m_topic(m), m->rkm->partition, m->rkm->offset);
    ituna_kafka_outage_mark(m->span, m->c->ep.bootstrap);
    if (m->span) ituna_span_end(m->span, 0);
    m->span = NULL;
}

/* Free a message the consumer is done with, or keep a finished one's struct until
 * its host releases it. */
static void message_drop(ituna_message *m) {
    message_release(m);
    if (!m->finished) free(m);
}

/* Apply a verdict to a message in no queue: done (handled, or dead-lettered) joins
 * its partition's queue and is stored when the prefix allows; an error rewinds for
 * redelivery (seek 0: the caller hands the record out again itself, or a revoke or
 * close, where the next reader starts from the committed offset). Takes m. Returns
 * 1 when m is done, 0 when it is to be redelivered; *err: a DLQ or offset-store error. */
static int conclude(ituna_message *m, ituna_handler_result result, const char *reason, const char *etype,
                    int seek, ituna_err *err, char *errstr, size_t errstr_size) {
    ituna_consumer *c = m->c;
    const char *topic = m_topic(m);
    int32_t partition = m->rkm->partition;
    int64_t offset = m->rkm->offset;
    char why[1024];
    int limit = 0;
    *err = ITUNA_OK;
    if (result == ITUNA_HANDLED_ERROR && c->max_redeliveries > 0 &&
        count_failure(c, topic, partition, offset) > c->max_redeliveries) {
        snprintf(why, sizeof why, "handler failed %lld times: %s", (long long)c->max_redeliveries + 1,
                 reason && *reason ? reason : "handler error");
        reason = why;
        result = ITUNA_HANDLED_MALFORMED;
        limit = 1;
    }
    if (result == ITUNA_HANDLED_MALFORMED) {
        /* redelivery_limit: the payload may be fine, the handler kept failing on it */
        ituna_span_set_str(m->span, "error.type", limit ? "redelivery_limit" : "malformed_payload");
        ituna_span_set_status(m->span, ITUNA_STATUS_ERROR, reason && *reason ? reason : "malformed payload");
        *err = dead_letter(m, reason, errstr, errstr_size);
        if (!*err) {
            char dlq_topic[512];
            snprintf(dlq_topic, sizeof dlq_topic, "%s%s", topic, c->dlq_suffix);
            ituna_span_set_str(m->span, "ituna.dlq.topic", dlq_topic);
            result = ITUNA_HANDLED_OK;
        } else {
            ituna_log(ITUNA_LOG_ERROR, "kafka %s [%d] @%lld: %s; the message will be redelivered", topic,
                      (int)partition, (long long)offset, errstr ? errstr : "DLQ write failed");
            ituna_span_set_str(m->span, "ituna.dlq.error", errstr && *errstr ? errstr : ituna_err2str(*err));
        }
    } else if (result != ITUNA_HANDLED_OK) {
        ituna_span_set_str(m->span, "error.type", etype);
        ituna_span_set_status(m->span, ITUNA_STATUS_ERROR, reason && *reason ? reason : "handler error");
    }
    if (result != ITUNA_HANDLED_OK) {
        rewind_to(c, topic, partition, offset, seek && !m->rewound);
        message_drop(m);
        return 0;
    }
    mark_done(m);
    part_q *q = m->rewound ? NULL : queue_of(c, topic, partition, 1);
    if (!q || !q->head) { /* nothing before it unsettled: stored now (a rewound one: when read again) */
        ituna_err e = m->rewound ? ITUNA_OK : store_at(c, topic, partition, offset, errstr, errstr_size);
        if (!*err) *err = e;
        message_drop(m);
        return 1;
    }
    m->settle = 2;
    queue_insert(c, q, m);
    ituna_err e = store_prefix(c, q, errstr, errstr_size);
    if (!*err) *err = e;
    return 1;
}

/* Settle the queued messages whose deliveries are in (only: that partition's alone),
 * then store each partition's done prefix. wait_until_ms 0: only look. seek: rewind
 * the consumer on a failure. */
static void settle_pass(ituna_consumer *c, part_q *only, int64_t wait_until_ms, int seek) {
    if (!c->settling) return;
    if (!wait_until_ms && !only) { /* nothing reported since the last look: nothing to do */
        unsigned long ep = ituna_delivery_epoch();
        int64_t now = ituna_kafka_mono_ms();
        if (ep == c->settle_epoch && now < c->settle_check_ms) return;
        c->settle_epoch = ep;
        c->settle_check_ms = now + 1000; /* deadlines are looked at once a second */
    }
    for (part_q *q = only ? only : c->queues; q; q = only ? NULL : q->next) {
        char why[700], err[256];
        ituna_message *m = q->head;
        while (m) {
            ituna_message *nx = m->next_q;
            int st = m->settle == 1 ? ituna_message_settle(m, wait_until_ms, why, sizeof why) : 0;
            if (st > 0) {
                c->settling--;
                m->settle = 2;
                mark_done(m);
                if (m->rewound) { /* stored when it is read again (the done list) */
                    queue_unlink(c, q, m);
                    message_drop(m);
                }
            } else if (st < 0) {
                queue_unlink(c, q, m);
                ituna_err e;
                conclude(m, ITUNA_HANDLED_ERROR, why, "delivery_failed", seek, &e, err, sizeof err);
                if (e) ituna_log(ITUNA_LOG_WARN, "kafka consumer %s: %s", c->group, err);
                nx = q->head; /* the rewind changed the queue: look again */
            }
            m = nx;
        }
        if (store_prefix(c, q, err, sizeof err))
            ituna_log(ITUNA_LOG_WARN, "kafka consumer %s: %s", c->group, err);
    }
}

/* The settle pass of a revoke or close: wait for the deliveries (bounded), store
 * what is done, and let the group's next reader have the rest. */
static void settle_leaving(ituna_consumer *c, part_q *only, int64_t wait_until_ms) {
    settle_pass(c, only, wait_until_ms, 0);
    for (part_q *q = only ? only : c->queues; q; q = only ? NULL : q->next)
        rewind_to(c, q->topic, q->partition, -1, 0);
}

/* A record handed out again (a rewind before it, or a commit lost in an outage).
 * 1 when this member is done with it: it is skipped (rkm consumed) and stored in
 * turn; 0 when it is to be handled (again). Its earlier attempt, if still settling,
 * is waited for first. */
static int seen_before(ituna_consumer *c, rd_kafka_message_t *rkm) {
    const char *topic = rd_kafka_topic_name(rkm->rkt);
    part_q *q = c->queued ? queue_of(c, topic, rkm->partition, 0) : NULL;
    ituna_message *m = queue_find(q, rkm->offset);
    if (m && m->settle == 1) {
        char why[700], err[256];
        int st = ituna_message_settle(m, INT64_MAX, why, sizeof why);
        queue_unlink(c, q, m);
        m->rewound = 0; /* read again up to here: it may be stored in turn */
        ituna_err e;
        int done = conclude(m, st > 0 ? ITUNA_HANDLED_OK : ITUNA_HANDLED_ERROR, why, "delivery_failed", 0, &e,
                            err, sizeof err);
        if (e) ituna_log(ITUNA_LOG_WARN, "kafka consumer %s: %s", c->group, err);
        if (done) rd_kafka_message_destroy(rkm);
        return done;
    }
    if (m) { /* done, waiting for the messages before it */
        rd_kafka_message_destroy(rkm);
        return 1;
    }
    if (!done_find(c, topic, rkm->partition, rkm->offset)) return 0;
    ituna_log(
        ITUNA_LOG_WARN,
        "kafka consumer %s: %s [%d] @%lld handed out again (a rewind before it, or its commit was lost); "
        "already handled here: committed in turn, not handled twice",
        c->group, topic, (int)rkm->partition, (long long)rkm->offset);
    ituna_message *k = calloc(1, sizeof *k); /* a marker: no span */
    if (!k) {
        rd_kafka_message_destroy(rkm);
        return 1;
    }
    k->c = c;
    k->rkm = rkm;
    char err[256];
    ituna_err e;
    conclude(k, ITUNA_HANDLED_OK, NULL, NULL, 0, &e, err, sizeof err);
    if (e) ituna_log(ITUNA_LOG_WARN, "kafka consumer %s: %s", c->group, err);
    return 1;
}

/* Finish as the host said. A message handled OK whose publishes are in flight is
 * queued to settle (not waited for); one whose delivery already failed is an error. */
static ituna_err finish(ituna_message *m, ituna_handler_result result, const char *reason, char *errstr,
                        size_t errstr_size) {
    ituna_consumer *c = m->c;
    const char *etype = "handler_error";
    char dwhy[700];
    if (c->current == m) c->current = NULL;
    c->outstanding--;
    if (result == ITUNA_HANDLED_OK) {
        int st = ituna_message_settle(m, 0, dwhy, sizeof dwhy);
        part_q *q = st == 0 ? queue_of(c, m_topic(m), m->rkm->partition, 1) : NULL;
        if (q) {
            m->settle = 1;
            queue_insert(c, q, m);
            return ITUNA_OK;
        }
        if (st == 0) st = ituna_message_settle(m, INT64_MAX, dwhy, sizeof dwhy); /* no memory to queue it */
        if (st < 0) {
            result = ITUNA_HANDLED_ERROR;
            reason = dwhy;
            etype = "delivery_failed";
        }
    }
    ituna_err e;
    conclude(m, result, reason, etype, 1, &e, errstr, errstr_size);
    return e;
}

/* The consumer finishes a message its host left open; the host still releases it. */
static void finish_for_host(ituna_message *m, const char *why) {
    char err[256];
    m->finished = 1; /* kept for the host's ituna_message_done() */
    m->next_zombie = m->c->zombies;
    m->c->zombies = m;
    finish(m, ITUNA_HANDLED_ERROR, why, err, sizeof err);
}

static ituna_err poll_broker(ituna_consumer *c, int timeout_ms, ituna_message **out, char *errstr,
                             size_t errstr_size);

ituna_err ituna_consumer_poll(ituna_consumer *c, int timeout_ms, ituna_message **out, char *errstr,
                              size_t errstr_size) {
    if (!c || !out)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "consumer and out are required");
    *out = NULL;
    if (c->closed) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_STATE, "consumer is closed");
    if (c->current) finish_for_host(c->current, "not finished before the next poll");
    c->current = NULL;
    if (c->held) {
        settle_pass(c, NULL, 0, 1);
        *out = c->current = c->held;
        c->held = NULL;
        return ITUNA_OK;
    }
    ituna_err e = poll_broker(c, timeout_ms, out, errstr, errstr_size);
    c->current = *out;
    return e;
}

/* A static member (group.instance.id) whose session timed out while the broker was
 * away rejoins under its own instance id, and the broker then fences its old self:
 * librdkafka makes that fatal. With nothing handed out or settling, this member starts
 * again as a new client on the same settings; what it finished but could not commit
 * comes back and is skipped (the done list). Bounded, so a real twin still fails.
 * 1 if done. */
static int rejoin_after_fencing(ituna_consumer *c, const char *why) {
    if (!c->conf || !c->topics || c->outstanding || c->held || c->refenced >= 5) return 0;
    /* The queues hold the old client's records: settle what is settling (bounded), then
     * empty them before it goes. Nothing can be stored on it any more; the new client
     * reads them again from the committed offsets, and the done list skips the ones
     * finished here. (Refusing while anything was queued left the consumer dead.) */
    settle_pass(c, NULL, ituna_kafka_mono_ms() + LEAVE_SETTLE_MS, 0);
    if (c->settling) return 0;
    for (part_q *q = c->queues; q; q = q->next)
        while (q->head) {
            ituna_message *m = q->head;
            queue_unlink(c, q, m);
            message_release(m);
            free(m);
        }
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(c->conf);
    char msg[512];
    rd_kafka_t *rk = conf ? rd_kafka_new(RD_KAFKA_CONSUMER, conf, msg, sizeof msg) : NULL;
    if (!rk) {
        if (conf) rd_kafka_conf_destroy(conf);
        return 0;
    }
    ituna_log(ITUNA_LOG_WARN,
              "kafka consumer %s: fenced by its own group.instance.id after an outage (%s); joining again as "
              "a new client (messages already handled here are not handled again)",
              c->group, why);
    /* its commits and leave would be fenced too: not attempted */
    rd_kafka_destroy_flags(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    c->rk = rk;
    c->refenced++;
    atomic_store(&c->assigned, 0);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, c->topics);
    if (err)
        ituna_log(ITUNA_LOG_WARN, "kafka consumer %s: subscribe again: %s", c->group, rd_kafka_err2str(err));
    return err == RD_KAFKA_RESP_ERR_NO_ERROR;
}

static ituna_err poll_broker(ituna_consumer *c, int timeout_ms, ituna_message **out, char *errstr,
                             size_t errstr_size) {
    int64_t deadline = ituna_kafka_mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        settle_pass(c, NULL, 0, 1);
        if (ituna_consumer_stopped(c)) { /* the loop ends: what is settling ends with it (bounded) */
            settle_pass(c, NULL, ituna_kafka_mono_ms() + LEAVE_SETTLE_MS, 1);
            atomic_store(&c->wakeup, 0);
            return ITUNA_OK;
        }
        if (atomic_exchange(&c->wakeup, 0)) return ITUNA_OK;
        int64_t left = deadline - ituna_kafka_mono_ms();
        if (c->settling >= MAX_SETTLING) { /* back-pressure: no new message until some settle */
            settle_pass(c, NULL, ituna_kafka_mono_ms() + (left <= 0 ? 0 : left < 100 ? left : 100), 1);
            if (c->settling >= MAX_SETTLING) {
                if (deadline - ituna_kafka_mono_ms() <= 0) return ITUNA_OK;
                continue;
            }
        }
        /* 100 ms slices so a wakeup is seen promptly */
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(c->rk, (int)(left <= 0    ? 0
                                                                      : left < 100 ? left
                                                                                   : 100));
        if (rkm && rkm->err) {
            rd_kafka_resp_err_t err = rkm->err;
            char reason[256];
            snprintf(reason, sizeof reason, "%s", rd_kafka_message_errstr(rkm));
            rd_kafka_message_destroy(rkm);
            if (err == RD_KAFKA_RESP_ERR__FATAL) {
                char fatal[256];
                rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(c->rk, fatal, sizeof fatal);
                if (ferr == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID && rejoin_after_fencing(c, fatal)) continue;
                return ituna_set_err(errstr, errstr_size, ITUNA_ERR_KAFKA, "kafka fatal error: %s: %s",
                                     rd_kafka_err2name(ferr), fatal);
            }
            if (err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                /* a subscribed topic not created yet is routine: info, not warn */
                ituna_log(err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? ITUNA_LOG_INFO : ITUNA_LOG_WARN,
                          "kafka consumer %s: %s: %s", c->group, rd_kafka_err2name(err), reason);
                note_error(c, err, reason);
            }
        } else if (rkm && seen_before(c, rkm)) {
            /* skipped: done here already */
        } else if (rkm) {
            atomic_store(&c->down_since_ms, 0);
            note_back(c);
            ituna_message *m = message_new(c, rkm);
            if (!m) {
                /* Not stored: rewind so it is redelivered rather than lost. */
                rewind_to(c, rd_kafka_topic_name(rkm->rkt), rkm->partition, rkm->offset, 1);
                rd_kafka_message_destroy(rkm);
                return ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
            }
            c->outstanding++;
            *out = m;
            return ITUNA_OK;
        }
        ituna_err e = check_reachable(c, errstr, errstr_size);
        if (e) return e;
        if (deadline - ituna_kafka_mono_ms() <= 0) return ITUNA_OK;
    }
}

ituna_err ituna_message_done(ituna_message *m, ituna_handler_result result, const char *reason, char *errstr,
                             size_t errstr_size) {
    if (!m) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "message is NULL");
    if (m->finished) {
        for (ituna_message **z = &m->c->zombies; *z; z = &(*z)->next_zombie)
            if (*z == m) {
                *z = m->next_zombie;
                break;
            }
        free(m);
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_STATE,
                             "message already finished by the consumer (not finished before the next poll or "
                             "close): it is redelivered");
    }
    return finish(m, result, reason, errstr, errstr_size);
}

const char *ituna_message_topic(const ituna_message *m) {
    return m && m->rkm ? rd_kafka_topic_name(m->rkm->rkt) : NULL;
}
int32_t ituna_message_partition(const ituna_message *m) {
    return m && m->rkm ? m->rkm->partition : -1;
}
int64_t ituna_message_offset(const ituna_message *m) {
    return m && m->rkm ? m->rkm->offset : -1;
}
int64_t ituna_message_timestamp_ms(const ituna_message *m) {
    return m ? m->timestamp_ms : -1;
}

const void *ituna_message_key(const ituna_message *m, size_t *len) {
    if (len) *len = m && m->rkm && m->rkm->key ? m->rkm->key_len : 0;
    return m && m->rkm ? m->rkm->key : NULL;
}

const void *ituna_message_value(const ituna_message *m, size_t *len) {
    if (len) *len = m && m->rkm && m->rkm->payload ? m->rkm->len : 0;
    return m && m->rkm ? m->rkm->payload : NULL;
}

size_t ituna_message_header_count(const ituna_message *m) {
    rd_kafka_headers_t *h;
    if (!m || !m->rkm || rd_kafka_message_headers(m->rkm, &h) != RD_KAFKA_RESP_ERR_NO_ERROR) return 0;
    return rd_kafka_header_cnt(h);
}

int ituna_message_header(const ituna_message *m, size_t i, const char **key, const void **value,
                         size_t *value_len) {
    rd_kafka_headers_t *h;
    if (!m || !m->rkm || rd_kafka_message_headers(m->rkm, &h) != RD_KAFKA_RESP_ERR_NO_ERROR) return 0;
    const char *k;
    const void *v;
    size_t n;
    if (rd_kafka_header_get_all(h, i, &k, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR) return 0;
    if (key) *key = k;
    if (value) *value = v;
    if (value_len) *value_len = n;
    return 1;
}

ituna_span *ituna_message_span(ituna_message *m) {
    return m && !m->finished ? m->span : NULL;
}

ituna_err ituna_consumer_run_once(ituna_consumer *c, int timeout_ms, ituna_handler_fn handler, void *opaque,
                                  int *handled, char *errstr, size_t errstr_size) {
    if (handled) *handled = 0;
    if (!c || !handler)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "consumer and handler are required");
    ituna_message *m = NULL;
    ituna_err e = ituna_consumer_poll(c, timeout_ms, &m, errstr, errstr_size);
    if (e || !m) return e;
    int token = -1;
    int attached = ituna_message_attach(m, &token) == ITUNA_OK;
    char reason[512] = "";
    ituna_handler_result r = handler(m, opaque, reason, sizeof reason);
    if (attached) ituna_message_detach(token);
    if (handled) *handled = 1;
    return ituna_message_done(m, r, reason, errstr, errstr_size);
}

ituna_err ituna_consumer_run(ituna_consumer *c, ituna_handler_fn handler, void *opaque, char *errstr,
                             size_t errstr_size) {
    ituna_err e = ITUNA_OK;
    while (!e && !ituna_consumer_stopped(c))
        e = ituna_consumer_run_once(c, 1000, handler, opaque, NULL, errstr, errstr_size);
    return e;
}

ituna_err ituna_consumer_wait_assigned(ituna_consumer *c, int timeout_ms, int *assigned, char *errstr,
                                       size_t errstr_size) {
    if (assigned) *assigned = 0;
    if (!c) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "consumer is NULL");
    if (c->closed) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_STATE, "consumer is closed");
    int64_t deadline = ituna_kafka_mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        if (atomic_load(&c->assigned) > 0) {
            if (assigned) *assigned = 1;
            return ITUNA_OK;
        }
        /* a kept message must be handed out before polling again (no second buffer) */
        int64_t left = deadline - ituna_kafka_mono_ms();
        if (c->held || ituna_consumer_stopped(c) || left <= 0) return ITUNA_OK;
        ituna_err e = poll_broker(c, left < 100 ? (int)left : 100, &c->held, errstr, errstr_size);
        if (e) return e;
    }
}

void ituna_consumer_stop(ituna_consumer *c) {
    if (!c) return;
    atomic_store(&c->stop, 1);
    atomic_store(&c->wakeup, 1);
}

/* ituna_consumer_stop_all(): polls see it within one 100 ms slice */
static atomic_int stop_all;

void ituna_consumer_stop_all(void) {
    atomic_store(&stop_all, 1);
}

int ituna_consumer_stopped(const ituna_consumer *c) {
    return atomic_load(&stop_all) || (c && atomic_load(&((ituna_consumer *)c)->stop));
}

void ituna_consumer_resume(ituna_consumer *c) {
    if (c) atomic_store(&c->stop, 0);
}

ituna_err ituna_consumer_commit(ituna_consumer *c, char *errstr, size_t errstr_size) {
    if (!c) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "consumer is NULL");
    if (c->closed) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_STATE, "consumer is closed");
    settle_pass(c, NULL, 0, 1);
    rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_KAFKA, "kafka commit: %s", rd_kafka_err2str(err));
    return ITUNA_OK;
}

ituna_err ituna_consumer_close(ituna_consumer *c) {
    if (!c) return ITUNA_ERR_INVALID_ARG;
    if (c->closed || !c->rk) return ITUNA_OK;
    ituna_err e = ITUNA_OK;
    char errstr[256];
    /* not committed: redelivered to this group's next member */
    if (c->current) finish_for_host(c->current, "consumer closed before the message was finished");
    if (c->held)
        finish(c->held, ITUNA_HANDLED_ERROR, "consumer closed before the message was handed out", errstr,
               sizeof errstr);
    c->held = NULL;
    /* what is still settling is waited for up to its delivery deadline (message.timeout.ms) */
    settle_leaving(c, NULL, INT64_MAX);
    if (ituna_consumer_commit(c, errstr, sizeof errstr) != ITUNA_OK) {
        ituna_log(ITUNA_LOG_WARN, "kafka consumer %s: %s", c->group, errstr);
        e = ITUNA_ERR_KAFKA;
    }
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(c->rk);
    if (err) {
        ituna_log(ITUNA_LOG_WARN, "kafka consumer %s close: %s", c->group, rd_kafka_err2str(err));
        e = ITUNA_ERR_KAFKA;
    }
    c->closed = 1;
    /* DLQ copies already confirmed; hand this consumer's spans to the exporter too. */
    if (c->dlq) ituna_producer_flush(c->dlq, 5000);
    if (ituna_tracer_flush(c->tracer, 5000) == ITUNA_ERR_TIMEOUT)
        ituna_log(ITUNA_LOG_WARN, "kafka consumer %s: spans still queued for export after close", c->group);
    return e;
}

void ituna_consumer_destroy(ituna_consumer *c) {
    if (!c) return;
    if (c->rk) {
        if (c->outstanding)
            ituna_log(ITUNA_LOG_WARN, "kafka consumer %s destroyed with %d unfinished message(s)", c->group,
                      c->outstanding);
        ituna_consumer_close(c);
        rd_kafka_destroy(c->rk);
    }
    if (c->dlq) ituna_producer_destroy(c->dlq, 10000);
    while (c->queues) {
        part_q *q = c->queues;
        c->queues = q->next;
        while (q->head) {
            ituna_message *m = q->head;
            queue_unlink(c, q, m);
            message_drop(m);
        }
        free(q);
    }
    while (c->zombies) {
        ituna_message *z = c->zombies;
        c->zombies = z->next_zombie;
        free(z);
    }
    if (c->conf) rd_kafka_conf_destroy(c->conf);
    if (c->topics) rd_kafka_topic_partition_list_destroy(c->topics);
    pthread_mutex_destroy(&c->lock);
    free(c->group);
    free(c->dlq_suffix);
    free(c);
}

int ituna_consumer_assignment_count(ituna_consumer *c) {
    return c ? atomic_load(&c->assigned) : 0;
}

void ituna_consumer_wakeup(ituna_consumer *c) {
    if (c) atomic_store(&c->wakeup, 1);
}
