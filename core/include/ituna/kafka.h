/* ituna/kafka.h - traced Kafka producer and consumer on librdkafka, and the
 * embedded test broker (librdkafka's built-in mock cluster).
 *
 * Trace context travels in the headers traceparent/tracestate. Spans follow the
 * OpenTelemetry messaging conventions: PRODUCER "send <topic>", CONSUMER
 * "process <topic>". Delivery is at-least-once: a consumed message's offset is
 * stored for commit only after the handler reported success. */
#ifndef ITUNA_KAFKA_H
#define ITUNA_KAFKA_H

#include "ituna/common.h"
#include "ituna/config.h"
#include "ituna/propagate.h"
#include "ituna/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ituna_producer ituna_producer;
typedef struct ituna_consumer ituna_consumer;
typedef struct ituna_message ituna_message;

typedef struct ituna_header {
    const char *key;
    const void *value; /* may be NULL (a null header value) */
    size_t value_len;
} ituna_header;

/* Outcome of one publish, handed to the delivery callback. */
typedef struct ituna_delivery_report {
    const char *topic;
    int32_t partition;
    int64_t offset;          /* -1 on failure */
    ituna_err err;           /* ITUNA_OK or ITUNA_ERR_KAFKA / ITUNA_ERR_TIMEOUT */
    const char *errstr;      /* librdkafka's message on failure, else "" */
    const char *error_name;  /* librdkafka's error name (e.g. "_MSG_TIMED_OUT"), "" on success */
    void *msg_opaque;        /* ituna_message_out.opaque */
    ituna_span_context span; /* the PRODUCER span's context */
    uint64_t ticket;         /* the publish's id, as ituna_producer_send() returned it */
} ituna_delivery_report;

/* Called once per published message: inside ituna_producer_poll()/flush()/close() on
 * the caller's thread when options.reports_on_poll is set, else on the producer's
 * delivery thread. Must not call ituna_producer_destroy(); should not block. */
typedef void (*ituna_delivery_fn)(const ituna_delivery_report *report, void *opaque);

/* Producer options; zero-initialise. */
typedef struct ituna_producer_options {
    const char *bootstrap;         /* NULL: see ituna_config_bootstrap() */
    const char *const *properties; /* NULL-terminated key, value, key, value ... librdkafka
                                        properties, applied after [kafka] of the config */
    ituna_delivery_fn on_delivery; /* may be NULL: failures are then counted and logged */
    void *opaque;
    int payload_carrier; /* -1 = from config [compat] payload-carrier, 0 off, 1 on:
                                        also write the seed's "carrier" field into JSON object payloads */
    int reports_on_poll; /* 1: reports are served on the caller's thread by ituna_producer_poll(),
                            flush() and close() (as rd_kafka_poll does), and failures without
                            on_delivery are kept for ituna_producer_take_failures() */
} ituna_producer_options;

/* Create a producer (idempotent, acks=all unless overridden) on tracer t (NULL:
 * the global tracer). Unknown or invalid librdkafka properties fail naming the
 * property. It reaches the cluster before returning (connection, metadata, and so
 * the idempotent producer id), so the first send's span does not hold that wait; an
 * unreachable cluster is not an error (the producer keeps trying, and a send made
 * before it answered gets a "kafka.producer.connected" event). The caller owns *out
 * and must destroy it with ituna_producer_destroy(). Thread-safe. May block up to
 * 5 s (less once every broker is reported down). */
ITUNA_API ituna_err ituna_producer_create(ituna_tracer *t, const ituna_config *cfg,
                                          const ituna_producer_options *opts, ituna_producer **out,
                                          char *errstr, size_t errstr_size);

/* One message to publish; zero-initialise. */
typedef struct ituna_message_out {
    const char *topic;
    const void *key;
    size_t key_len; /* key may be NULL */
    const void *value;
    size_t value_len;
    const ituna_header *headers;
    size_t n_headers;  /* extra headers, copied */
    int32_t partition; /* -1 (or 0 with partition_set = 0): partitioner */
    int partition_set;
    const ituna_span_context *parent; /* NULL: the thread's current context */
    void *opaque;                     /* returned in the delivery report */
    const ituna_attr *attrs;
    size_t n_attrs;               /* extra PRODUCER span attributes, copied */
    ituna_message *owner;         /* the consumed message this publish is made for (NULL: the thread's
                             message, see ituna_message_attach()): a message finished as handled
                             settles once this delivery is reported, and is redelivered if it failed */
    const ituna_baggage *baggage; /* W3C baggage for the "baggage" header (OTEL_PROPAGATORS); may be NULL */
} ituna_message_out;

/* Start the PRODUCER span, inject the context into the headers and enqueue the
 * message; the span ends when the delivery report arrives. msg->attrs are set after
 * the messaging attributes (a same key replaces one); an attribute with an empty key
 * or unknown type fails with ITUNA_ERR_INVALID_ARG. A local failure (queue
 * full, unknown topic, ...) returns an error, ends the span with error status and
 * does not call the delivery callback. Thread-safe. Does not block (waits up to
 * 1 s only while librdkafka's own queue is full). */
ITUNA_API ituna_err ituna_producer_publish(ituna_producer *p, const ituna_message_out *msg, char *errstr,
                                           size_t errstr_size);

/* As ituna_producer_publish(), and *ticket (may be NULL) is the publish's id, unique
 * per producer and carried by its delivery report. Thread-safe. Does not block. */
ITUNA_API ituna_err ituna_producer_send(ituna_producer *p, const ituna_message_out *msg, uint64_t *ticket,
                                        char *errstr, size_t errstr_size);

/* Serve the delivery reports that arrived (reports_on_poll): on_delivery runs here for
 * each. Waits up to timeout_ms for a first one. Returns the number served.
 * Not thread-safe: one thread at a time per producer serves reports. May block up to timeout_ms. */
ITUNA_API int ituna_producer_poll(ituna_producer *p, int timeout_ms);

/* Hand each failed delivery not yet handed out to fn, once, on this thread
 * (reports_on_poll without on_delivery): those of publishes made for owner, or with
 * owner NULL those made for no consumed message. A failure of an earlier attempt's
 * publish is never handed out with a later message. Returns the number.
 * Not thread-safe: one thread at a time per producer. Does not block. */
ITUNA_API size_t ituna_producer_take_failures(ituna_producer *p, const ituna_message *owner,
                                              ituna_delivery_fn fn, void *opaque);

/* Wait until every published message has its delivery report, then serve them
 * (reports_on_poll). ITUNA_ERR_TIMEOUT if some are still in flight.
 * Thread-safe (reports are served by one thread at a time). May block up to timeout_ms. */
ITUNA_API ituna_err ituna_producer_flush(ituna_producer *p, int timeout_ms);

/* Messages published and not yet reported. Thread-safe. */
ITUNA_API int ituna_producer_in_flight(ituna_producer *p);

/* Count of failed deliveries so far. Thread-safe. */
ITUNA_API uint64_t ituna_producer_failures(ituna_producer *p);

/* Flush within timeout_ms, then purge what is still undelivered (reported as failed,
 * never dropped silently) and refuse later publishes (ITUNA_ERR_STATE). The failures
 * can still be taken. Returns ITUNA_ERR_TIMEOUT if messages were still undelivered.
 * Idempotent. Not thread-safe: no other call on p may run concurrently. May block up to timeout_ms. */
ITUNA_API ituna_err ituna_producer_close(ituna_producer *p, int timeout_ms);

/* Close within timeout_ms (if not closed), then free. Returns what close returned.
 * Not thread-safe: no other call on p may run concurrently. May block up to timeout_ms. */
ITUNA_API ituna_err ituna_producer_destroy(ituna_producer *p, int timeout_ms);

/* ---- consumer ------------------------------------------------------------- */

typedef enum ituna_consumer_context_mode {
    ITUNA_CONTEXT_FROM_CONFIG = 0, /* [messaging] consumer-context, default parent */
    ITUNA_CONTEXT_PARENT = 1,      /* producer's context is the parent (one order = one trace) */
    ITUNA_CONTEXT_LINK = 2         /* producer's context is a link; parent is the current context */
} ituna_consumer_context_mode;

typedef struct ituna_consumer_options {
    const char *bootstrap;         /* NULL: see ituna_config_bootstrap() */
    const char *group;             /* consumer group id (required) */
    const char *const *topics;     /* NULL-terminated */
    const char *const *properties; /* NULL-terminated key, value, ... librdkafka properties */
    ituna_consumer_context_mode context_mode;
    const char *dlq_suffix; /* NULL: [messaging] dlq-suffix, default ".dlq" */
} ituna_consumer_options;

/* Create a consumer and subscribe. enable.auto.offset.store is forced off: offsets
 * are stored only for messages finished as handled (ituna_message_done(ITUNA_OK)),
 * once settled. The caller owns *out and must
 * destroy it with ituna_consumer_close() then ituna_consumer_destroy(). Thread-safe. */
ITUNA_API ituna_err ituna_consumer_create(ituna_tracer *t, const ituna_config *cfg,
                                          const ituna_consumer_options *opts, ituna_consumer **out,
                                          char *errstr, size_t errstr_size);

/* Poll for one message. On ITUNA_OK *out is the message with its CONSUMER span
 * started (not made current) or NULL if timeout_ms passed or a stop is pending.
 * Messages finished earlier whose deliveries have been reported meanwhile are
 * settled first (see ituna_message_done()); one delivered a second time that this
 * member is done with is skipped, one whose first attempt is still settling is
 * waited for.
 * The message handed out by the previous poll, if not finished yet, is finished
 * first as ITUNA_HANDLED_ERROR ("not finished before the next poll"): it is
 * redelivered; the host must still pass it to ituna_message_done(), which then only
 * frees it (ITUNA_ERR_STATE). A message kept by ituna_consumer_wait_assigned() is
 * returned first. Broker/partition errors
 * are logged and polling goes on; fatal errors return ITUNA_ERR_KAFKA, and no
 * broker reachable within the connect timeout returns ITUNA_ERR_TIMEOUT.
 * The caller owns *out and must finish it with ituna_message_done().
 * Not thread-safe: one thread at a time per consumer. May block up to timeout_ms. */
ITUNA_API ituna_err ituna_consumer_poll(ituna_consumer *c, int timeout_ms, ituna_message **out, char *errstr,
                                        size_t errstr_size);

/* Result of handling a message. */
typedef enum ituna_handler_result {
    ITUNA_HANDLED_OK = 0,       /* store the offset for commit, span status unset */
    ITUNA_HANDLED_ERROR = 1,    /* span error; offset not stored; the partition is rewound so
                                    the message is redelivered */
    ITUNA_HANDLED_MALFORMED = 2 /* republish to <topic><dlq_suffix> with the reason; offset
                                    stored only after the DLQ write is confirmed */
} ituna_handler_result;

/* Finish a message and apply result (reason: error description or the malformed
 * reason, may be NULL). ITUNA_HANDLED_OK does not wait for the delivery reports of
 * the publishes made for msg (owner): while some are in flight the message
 * "settles" inside the consumer, its span still open and its offset not stored;
 * later polls (run_once, commit) look at the reports without waiting, a poll
 * that sees a stop and a revoke wait up to 10 s, close up to message.timeout.ms.
 * At most 4096 messages settle at once: beyond, polls hand out no message until
 * some settled (back-pressure while the output is stalled). Delivered, its span ends
 * and its offset is stored once every earlier message of its partition is done too.
 * A failed one makes it an error (span error.type delivery_failed naming the
 * publish, the partition rewound to it; later messages this member finished are
 * skipped when they come again). A delivery failure already reported when
 * msg is finished is applied at once. An error beyond [messaging] max-redeliveries
 * (default 9: ten attempts) dead-letters the message with the last error (span
 * error.type redelivery_limit). A DLQ copy larger than the producer's message.max.bytes
 * carries a cut value (header ituna.dlq.value-cut). Returns an error if the DLQ
 * write failed (the message is then redelivered), ITUNA_ERR_STATE if the consumer
 * had finished msg already. msg is the consumer's again in every case: the host
 * must not use it after. Same thread rules as ituna_consumer_poll(). Does not block
 * for deliveries; blocks up to 10 s for a DLQ write (ITUNA_HANDLED_MALFORMED, or an
 * error beyond the redelivery limit). */
ITUNA_API ituna_err ituna_message_done(ituna_message *msg, ituna_handler_result result, const char *reason,
                                       char *errstr, size_t errstr_size);

/* Accessors. Borrowed: valid until ituna_message_done(). One thread per message. */
ITUNA_API const char *ituna_message_topic(const ituna_message *msg);
ITUNA_API int32_t ituna_message_partition(const ituna_message *msg);
ITUNA_API int64_t ituna_message_offset(const ituna_message *msg);
ITUNA_API int64_t ituna_message_timestamp_ms(const ituna_message *msg);           /* -1 if none */
ITUNA_API const void *ituna_message_key(const ituna_message *msg, size_t *len);   /* NULL if none */
ITUNA_API const void *ituna_message_value(const ituna_message *msg, size_t *len); /* NULL if none */
ITUNA_API size_t ituna_message_header_count(const ituna_message *msg);
ITUNA_API int ituna_message_header(const ituna_message *msg, size_t i, const char **key, const void **value,
                                   size_t *value_len);
/* The CONSUMER span (make it current with ituna_context_attach(ituna_span_get_context(...))). */
ITUNA_API ituna_span *ituna_message_span(ituna_message *msg);
/* 1 for a first delivery, n for the n-th attempt of a redelivered message. One thread per message. */
ITUNA_API int ituna_message_attempt(const ituna_message *msg);
/* Add the message's W3C baggage header (when the tracer's propagators include
 * baggage) to out: 1 if there was a valid one, 0 otherwise. One thread per message. */
ITUNA_API int ituna_message_baggage(const ituna_message *msg, ituna_baggage *out);

/* Make msg's span the current context and msg the thread's message (the owner of
 * publishes with owner NULL) until ituna_message_detach(token). One thread per message. */
ITUNA_API ituna_err ituna_message_attach(ituna_message *msg, int *token);
ITUNA_API void ituna_message_detach(int token);
/* The thread's message (ituna_message_attach()), or NULL: the owner to pass to
 * ituna_producer_take_failures() from code that runs while a message is handled.
 * Borrowed: valid while attached. Thread-safe (per thread). */
ITUNA_API ituna_message *ituna_message_current(void);

/* Handler for ituna_consumer_run_once(): the message's span is current while it runs. */
typedef ituna_handler_result (*ituna_handler_fn)(ituna_message *msg, void *opaque, char *reason,
                                                 size_t reason_size);

/* Poll one message, make its span current, run handler, detach and finish it.
 * ITUNA_OK with *handled = 0 on timeout. Same thread rules as ituna_consumer_poll(). */
ITUNA_API ituna_err ituna_consumer_run_once(ituna_consumer *c, int timeout_ms, ituna_handler_fn handler,
                                            void *opaque, int *handled, char *errstr, size_t errstr_size);

/* Run handler on every message (ituna_consumer_run_once()) until ituna_consumer_stop()
 * or an error (broker unreachable: ITUNA_ERR_TIMEOUT). ITUNA_OK when stopped.
 * Same thread rules as ituna_consumer_poll(). Blocks until stopped. */
ITUNA_API ituna_err ituna_consumer_run(ituna_consumer *c, ituna_handler_fn handler, void *opaque,
                                       char *errstr, size_t errstr_size);

/* Poll until partitions are assigned to this member (*assigned = 1), timeout_ms
 * passed or a stop is pending (*assigned = 0). A message that arrives meanwhile is
 * kept and returned by the next poll. Same thread rules as ituna_consumer_poll(). */
ITUNA_API ituna_err ituna_consumer_wait_assigned(ituna_consumer *c, int timeout_ms, int *assigned,
                                                 char *errstr, size_t errstr_size);

/* Ask the consumer loop to stop: polls return no message until
 * ituna_consumer_resume(). Thread-safe; async-signal-safe (a signal handler may call it). */
ITUNA_API void ituna_consumer_stop(ituna_consumer *c);
/* 1 while a stop is pending. Thread-safe; async-signal-safe. */
ITUNA_API int ituna_consumer_stopped(const ituna_consumer *c);
/* Clear a pending stop (not a stop_all). Thread-safe. */
ITUNA_API void ituna_consumer_resume(ituna_consumer *c);
/* Stop every consumer of the process, those created later too, as ituna_consumer_stop()
 * does on each; ituna_consumer_resume() does not undo it. What a host does on SIGINT or
 * SIGTERM. Thread-safe; async-signal-safe. */
ITUNA_API void ituna_consumer_stop_all(void);

/* Settle what was reported (no wait), then commit stored offsets synchronously.
 * Not thread-safe: one thread at a time per consumer. */
ITUNA_API ituna_err ituna_consumer_commit(ituna_consumer *c, char *errstr, size_t errstr_size);

/* Finish a message still held (kept by wait_assigned, or handed out and unfinished)
 * as an error so it is redelivered, settle the messages finished as handled (waiting
 * for their deliveries up to message.timeout.ms), commit, leave the group and close. Idempotent;
 * later polls return ITUNA_ERR_STATE.
 * Not thread-safe. May block (deliveries; group leave, bounded by librdkafka's session timeout). */
ITUNA_API ituna_err ituna_consumer_close(ituna_consumer *c);

/* Close if needed and free. Every message must have been finished. Not thread-safe. */
ITUNA_API void ituna_consumer_destroy(ituna_consumer *c);

/* Number of partitions currently assigned to this member, 0 before the first
 * rebalance and after a revoke. Assignment only happens while the consumer is
 * polled (ituna_consumer_poll()/run_once()): poll until this is > 0 to know the
 * member has joined. Thread-safe. */
ITUNA_API int ituna_consumer_assignment_count(ituna_consumer *c);

/* Ask a blocked ituna_consumer_poll() to return early (e.g. from a signal handler
 * thread). Thread-safe; async-signal-safe. */
ITUNA_API void ituna_consumer_wakeup(ituna_consumer *c);

/* ---- embedded test broker --------------------------------------------------- */

typedef struct ituna_mock_cluster ituna_mock_cluster;

/* Start librdkafka's built-in Kafka-protocol TEST cluster (rdkafka_mock.h) with
 * n_brokers brokers listening on 127.0.0.1, topics auto-created with
 * default_partitions partitions. It is a test broker, not Apache Kafka: it keeps
 * messages in memory and only the newest ~5 MB (or 100k message sets) per partition,
 * so a consumer lagging further behind misses the oldest. It runs inside this
 * process until ituna_mock_cluster_stop(). The caller owns *out. Thread-safe. */
ITUNA_API ituna_err ituna_mock_cluster_start(int n_brokers, int default_partitions, ituna_mock_cluster **out,
                                             char *errstr, size_t errstr_size);
/* Create topic with partitions partitions (>= 1) now, as an admin would, so that a
 * consumer may subscribe before anything is produced (librdkafka >= 2.x's test
 * cluster gives a group no partitions of a topic that does not exist yet; 2.0
 * auto-created it for the consumer). A topic that exists already is left as it is.
 * Thread-safe. */
ITUNA_API ituna_err ituna_mock_cluster_create_topic(ituna_mock_cluster *m, const char *topic, int partitions,
                                                    char *errstr, size_t errstr_size);
/* "127.0.0.1:port,..." Borrowed: valid until ituna_mock_cluster_stop(). Thread-safe. */
ITUNA_API const char *ituna_mock_cluster_bootstrap(const ituna_mock_cluster *m);
/* Stop and free (NULL is a no-op). Not thread-safe. */
ITUNA_API void ituna_mock_cluster_stop(ituna_mock_cluster *m);

#ifdef __cplusplus
}
#endif
#endif
