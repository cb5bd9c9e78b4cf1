/* kafka_common.h - what the producer, the consumer and the mock cluster share:
 * building an rd_kafka_conf_t from defaults + [kafka] + API properties, the
 * broker endpoint for server.address/port, the header and payload carriers of
 * the trace context, and the messaging attributes common to both span kinds.
 * Private to core/. */
#ifndef ITUNA_KAFKA_COMMON_H
#define ITUNA_KAFKA_COMMON_H

#include <librdkafka/rdkafka.h>

#include "internal.h"

/* Broker address as resolved for a client. */
typedef struct ituna_kafka_endpoint {
    char bootstrap[1024]; /* the bootstrap.servers value given to librdkafka */
    char host[256];       /* first entry's host, for server.address */
    int port;             /* first entry's port (9092 when absent), for server.port */
    char client_id[256];
} ituna_kafka_endpoint;

/* Resolve the tracer (NULL: the global one) and the config (NULL: the tracer's).
 * ITUNA_ERR_INVALID_ARG when there is no tracer at all. */
ITUNA_HIDDEN ituna_err ituna_kafka_resolve(ituna_tracer **t, const ituna_config **cfg, char *errstr,
                                           size_t errstr_size);

/* Build a librdkafka configuration for a client of type: defaults (key, value,
 * ..., NULL), then the config's [kafka] section, then props (API), then forced
 * (properties of the other client type are skipped in [kafka] and props, since
 * one section serves both), then the bootstrap
 * (explicit > props' bootstrap.servers > ITUNA_KAFKA_BOOTSTRAP / [queue] > [kafka]).
 * Logs go through ituna_log. An unknown or invalid property fails with
 * ITUNA_ERR_CONFIG naming it. The caller owns *out (rd_kafka_conf_destroy, or
 * hand it to rd_kafka_new). */
ITUNA_HIDDEN ituna_err ituna_kafka_conf_build(const ituna_config *cfg, rd_kafka_type_t type,
                                              const char *explicit_bootstrap, const char *const *defaults,
                                              const char *const *props, const char *const *forced,
                                              rd_kafka_conf_t **out, ituna_kafka_endpoint *ep, char *errstr,
                                              size_t errstr_size);

/* Route librdkafka's log lines to ituna_log (syslog levels mapped). */
ITUNA_HIDDEN void ituna_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

/* 1 if p[0..n) is valid UTF-8 without NUL bytes. */
ITUNA_HIDDEN int ituna_kafka_utf8_text(const void *p, size_t n);

/* New header list: the extra headers (a propagation header among them is replaced),
 * then ctx (when valid) with the propagators of props (OTEL_PROPAGATORS) and bag (may
 * be NULL) as W3C baggage. NULL on OOM. */
ITUNA_HIDDEN rd_kafka_headers_t *ituna_kafka_headers_build(const ituna_header *extra, size_t n,
                                                           const ituna_span_context *ctx, unsigned props,
                                                           const ituna_baggage *bag);
/* Add the W3C baggage header of hdrs (when props has baggage) to out. 1 if one was read. */
ITUNA_HIDDEN int ituna_kafka_baggage(const rd_kafka_headers_t *hdrs, unsigned props, ituna_baggage *out);

/* Where a consumed message's context came from. */
typedef enum ituna_ctx_source {
    ITUNA_CTX_NONE = 0,
    ITUNA_CTX_HEADER = 1,
    ITUNA_CTX_PAYLOAD = 2
} ituna_ctx_source;

/* Extract the producer's context: the headers of the propagators in props
 * (traceparent/tracestate, b3, X-B3-*), or, when there is none of them, the seed's payload "carrier" field (a JSON
 * string holding a JSON object, or an object). Returns the source; on
 * ITUNA_CTX_NONE *out is zeroed and reason says why (e.g. "no traceparent header",
 * "traceparent: invalid version ff"); with a context, reason is empty unless the
 * tracestate was dropped or truncated, which it then names with its size. */
ITUNA_HIDDEN ituna_ctx_source ituna_kafka_extract(const rd_kafka_headers_t *hdrs, const void *payload,
                                                  size_t payload_len, unsigned props, ituna_span_context *out,
                                                  char *reason, size_t reason_size);

/* When value is a JSON object, write into out a copy with the seed's "carrier"
 * field set to the JSON text of {"traceparent": ..., "tracestate": ...}, formatted
 * as Python's json.dumps does. Returns 1 when out holds the new payload, 0 when
 * the value is not a JSON object (send it unchanged), -1 on OOM. */
ITUNA_HIDDEN int ituna_kafka_payload_inject(const void *value, size_t len, const ituna_span_context *ctx,
                                            ituna_buf *out);

/* Broker outages per bootstrap (kafka_outage.c). Thread-safe. begin: every broker
 * down since since_ns (wall clock) with error; a second begin during one is ignored.
 * end: one answered again; returns the outage's length in ms, -1 when none was open.
 * mark: a span that lasted 1 s or more and overlapped an outage gets the event
 * kafka.broker.unreachable (ituna.kafka.error, ituna.kafka.outage_ms so far or in
 * all, ituna.kafka.broker_back); call it before the span ends, on its thread. */
ITUNA_HIDDEN void ituna_kafka_outage_begin(const char *bootstrap, const char *error, uint64_t since_ns);
ITUNA_HIDDEN int64_t ituna_kafka_outage_end(const char *bootstrap, uint64_t now_ns); /* 0: now */
ITUNA_HIDDEN void ituna_kafka_outage_mark(ituna_span *span, const char *bootstrap);

/* Attributes common to both span kinds: messaging.system, operation name/type,
 * destination, key (when UTF-8 text), body size, server.address/port, client id.
 * operation must be a string literal ("send", "process"): it is referenced, not copied. */
ITUNA_HIDDEN void ituna_kafka_span_attrs(ituna_span *span, const char *operation, const char *topic,
                                         const void *key, size_t key_len, size_t body_size,
                                         const ituna_kafka_endpoint *ep);

/* JSON string escaping (quotes included), as Python's json.dumps with ensure_ascii. */
ITUNA_HIDDEN void ituna_kafka_json_str(ituna_buf *b, const char *s, size_t n);

/* Milliseconds on a monotonic clock. */
ITUNA_HIDDEN int64_t ituna_kafka_mono_ms(void);
/* dst = a followed by b (either may be NULL), cut to size - 1 bytes as snprintf("%s%s")
 * would; on the per-message path, where snprintf's formatting costs more than the copy. */
ITUNA_HIDDEN void ituna_kafka_strcat2(char *dst, size_t size, const char *a, const char *b);
/* A partition number in decimal: a string that lives for the process (ITUNA_LIT_VALUE)
 * for the usual small numbers, else written into buf and buf returned. */
ITUNA_HIDDEN const char *ituna_kafka_partition_str(int32_t partition, char buf[16]);

/* The delivery of one publish made for a consumed message (kafka_delivery.h). */
typedef struct ituna_delivery_slot ituna_delivery_slot;

/* Publish as ituna_producer_send(); with slot non-NULL, *slot is the delivery's slot
 * (one reference for the caller, released with ituna_delivery_slot_release()). */
ITUNA_HIDDEN ituna_err ituna_producer_send_slot(ituna_producer *p, const ituna_message_out *msg,
                                                uint64_t *ticket, ituna_delivery_slot **slot, char *errstr,
                                                size_t errstr_size);
/* message.max.bytes of the producer (the DLQ cuts a copy to fit). */
ITUNA_HIDDEN int64_t ituna_producer_max_bytes(const ituna_producer *p);

/* The mock cluster's rd_kafka_mock_cluster_t (as void *, so this header needs no
 * rdkafka_mock.h), for tests that inject broker errors. Borrowed. (kafka_mock.c) */
ITUNA_HIDDEN void *ituna_mock_cluster_rd(ituna_mock_cluster *m);
/* The producer's librdkafka handle (tests read its effective configuration). */
ITUNA_HIDDEN void *ituna_producer_rd(ituna_producer *p);

#endif
