/* kafka_common.c - helpers shared by the Kafka producer, consumer and mock
 * cluster: librdkafka configuration from defaults + [kafka] + API properties,
 * the broker endpoint, trace-context carriers (message headers and the seed's
 * payload "carrier" field) and the common messaging span attributes. */
#include "internal.h"
#include <strings.h>

#include "kafka_common.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

ituna_err ituna_kafka_resolve(ituna_tracer **t, const ituna_config **cfg, char *errstr, size_t errstr_size) {
    if (!*t) *t = ituna_tracer_global();
    if (!*t)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG,
                             "no tracer: pass one or set the global tracer (ituna_tracer_set_global)");
    if (!*cfg) *cfg = ituna_tracer_config(*t);
    return ITUNA_OK;
}

int64_t ituna_kafka_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define PARTITION_NAMES 256
static char partition_names[PARTITION_NAMES][4];
static pthread_once_t partition_names_once = PTHREAD_ONCE_INIT;

static void partition_names_init(void) {
    for (int i = 0; i < PARTITION_NAMES; i++)
        snprintf(partition_names[i], sizeof partition_names[i], "%d", i);
}

const char *ituna_kafka_partition_str(int32_t partition, char buf[16]) {
    if (partition >= 0 && partition < PARTITION_NAMES) {
        pthread_once(&partition_names_once, partition_names_init);
        return partition_names[partition];
    }
    snprintf(buf, 16, "%d", (int)partition);
    return buf;
}

void ituna_kafka_strcat2(char *dst, size_t size, const char *a, const char *b) {
    if (!size) return;
    size_t n = 0;
    for (int k = 0; k < 2; k++) {
        const char *s = k ? b : a;
        if (!s) continue;
        size_t l = strnlen(s, size - 1 - n);
        memcpy(dst + n, s, l);
        n += l;
    }
    dst[n] = '\0';
}

void ituna_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    ituna_log_level l = level <= 3   ? ITUNA_LOG_ERROR
                        : level == 4 ? ITUNA_LOG_WARN
                        : level <= 6 ? ITUNA_LOG_INFO
                                     : ITUNA_LOG_DEBUG;
    ituna_log(l, "kafka %s %s: %s", rk ? rd_kafka_name(rk) : "-", fac, buf);
}

static ituna_err conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errstr,
                          size_t errstr_size) {
    char msg[512];
    if (!key || !value)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG, "kafka property '%s': missing value",
                             key ? key : "(null)");
    if (rd_kafka_conf_set(conf, key, value, msg, sizeof msg) != RD_KAFKA_CONF_OK)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG, "kafka property '%s': %s", key, msg);
    return ITUNA_OK;
}

static ituna_err conf_set_list(rd_kafka_conf_t *conf, const char *const *kv, char *errstr,
                               size_t errstr_size) {
    for (size_t i = 0; kv && kv[i]; i += 2) {
        ituna_err e = conf_set(conf, kv[i], kv[i + 1], errstr, errstr_size);
        if (e) return e;
    }
    return ITUNA_OK;
}

static int has_prefix(const char *key, const char *const *prefixes) {
    for (int i = 0; prefixes[i]; i++)
        if (strncmp(key, prefixes[i], strlen(prefixes[i])) == 0) return 1;
    return 0;
}

/* Properties only one client type uses (librdkafka warns when the other gets them). */
static int other_type_property(rd_kafka_type_t type, const char *key) {
    static const char *const consumer_only[] = { "group.",
                                                 "session.timeout.ms",
                                                 "heartbeat.interval.ms",
                                                 "partition.assignment.strategy",
                                                 "auto.offset.reset",
                                                 "enable.auto.",
                                                 "auto.commit.",
                                                 "fetch.",
                                                 "max.poll.interval.ms",
                                                 "queued.",
                                                 "isolation.level",
                                                 "check.crcs",
                                                 "enable.partition.eof",
                                                 "coordinator.query.interval.ms",
                                                 "consume.callback.max.messages",
                                                 "offset.store.",
                                                 NULL };
    static const char *const producer_only[] = { "acks",
                                                 "request.required.acks",
                                                 "enable.idempotence",
                                                 "enable.gapless.guarantee",
                                                 "linger.ms",
                                                 "queue.buffering.",
                                                 "message.timeout.ms",
                                                 "delivery.timeout.ms",
                                                 "batch.",
                                                 "compression.",
                                                 "retries",
                                                 "message.send.max.retries",
                                                 "transactional.id",
                                                 "transaction.timeout.ms",
                                                 "partitioner",
                                                 "sticky.partitioning.linger.ms",
                                                 "request.timeout.ms",
                                                 "delivery.report.only.error",
                                                 "queuing.strategy",
                                                 "produce.offset.report",
                                                 NULL };
    return has_prefix(key, type == RD_KAFKA_PRODUCER ? consumer_only : producer_only);
}

static ituna_err conf_set_typed(rd_kafka_conf_t *conf, rd_kafka_type_t type, const char *key,
                                const char *value, char *errstr, size_t errstr_size) {
    if (key && other_type_property(type, key)) return ITUNA_OK;
    return conf_set(conf, key, value, errstr, errstr_size);
}

static const char *list_get(const char *const *kv, const char *key) {
    const char *v = NULL;
    for (size_t i = 0; kv && kv[i] && kv[i + 1]; i += 2)
        if (strcmp(kv[i], key) == 0) v = kv[i + 1];
    return v;
}

/* First "host:port" of a bootstrap list (an optional "PROTO://" prefix skipped,
 * "[v6]:port" understood). */
static void endpoint_parse(ituna_kafka_endpoint *ep) {
    const char *s = ep->bootstrap;
    while (*s == ' ') s++;
    const char *scheme = strstr(s, "://");
    const char *comma = strchr(s, ',');
    if (scheme && (!comma || scheme < comma)) s = scheme + 3;
    size_t n = strcspn(s, ", ");
    char first[256];
    if (n >= sizeof first) n = sizeof first - 1;
    memcpy(first, s, n);
    first[n] = 0;
    ep->port = 9092;
    char *colon = NULL;
    if (first[0] == '[') {
        char *close = strchr(first, ']');
        if (close) {
            *close = 0;
            snprintf(ep->host, sizeof ep->host, "%s", first + 1);
            if (close[1] == ':') ep->port = atoi(close + 2);
            return;
        }
    }
    colon = strrchr(first, ':');
    if (colon) {
        *colon = 0;
        ep->port = atoi(colon + 1);
    }
    snprintf(ep->host, sizeof ep->host, "%s", first);
}

ituna_err ituna_kafka_conf_build(const ituna_config *cfg, rd_kafka_type_t type,
                                 const char *explicit_bootstrap, const char *const *defaults,
                                 const char *const *props, const char *const *forced, rd_kafka_conf_t **out,
                                 ituna_kafka_endpoint *ep, char *errstr, size_t errstr_size) {
    *out = NULL;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
    rd_kafka_conf_set_log_cb(conf, ituna_kafka_log_cb);
    ituna_err e = conf_set_list(conf, defaults, errstr, errstr_size);
    /* [kafka] pass-through, in file order. */
    const char *k, *v, *kafka_bootstrap = NULL;
    size_t it = 0;
    while (!e && cfg && ituna_config_next(cfg, "kafka", &it, &k, &v)) {
        if (strcmp(k, "bootstrap.servers") == 0) kafka_bootstrap = v;
        e = conf_set_typed(conf, type, k, v, errstr, errstr_size);
        if (e && errstr && errstr_size) { /* say where the property came from: file:line or env */
            const char *where = ituna_config_origin(cfg, "kafka", k);
            if (where) {
                char msg[600];
                snprintf(msg, sizeof msg, "%s", errstr);
                snprintf(errstr, errstr_size, "%s: %s", where, msg);
            }
        }
    }
    for (size_t i = 0; !e && props && props[i]; i += 2)
        e = conf_set_typed(conf, type, props[i], props[i + 1], errstr, errstr_size);
    if (!e) e = conf_set_list(conf, forced, errstr, errstr_size);
    if (e) {
        rd_kafka_conf_destroy(conf);
        return e;
    }
    /* Bootstrap precedence: API, API property, ITUNA_KAFKA_BOOTSTRAP / [queue], [kafka]. */
    const char *bs = explicit_bootstrap && *explicit_bootstrap ? explicit_bootstrap : NULL;
    if (!bs) bs = list_get(props, "bootstrap.servers");
    if (!bs && cfg) bs = ituna_config_bootstrap(cfg, NULL);
    if (!bs) bs = kafka_bootstrap;
    if (!bs || !*bs) {
        rd_kafka_conf_destroy(conf);
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG,
                             "no Kafka bootstrap servers: pass one, set ITUNA_KAFKA_BOOTSTRAP, "
                             "or [queue] host/port in the config");
    }
    e = conf_set(conf, "bootstrap.servers", bs, errstr, errstr_size);
    if (e) {
        rd_kafka_conf_destroy(conf);
        return e;
    }
    memset(ep, 0, sizeof *ep);
    snprintf(ep->bootstrap, sizeof ep->bootstrap, "%s", bs);
    endpoint_parse(ep);
    size_t sz = sizeof ep->client_id;
    if (rd_kafka_conf_get(conf, "client.id", ep->client_id, &sz) != RD_KAFKA_CONF_OK) ep->client_id[0] = 0;
    *out = conf;
    return ITUNA_OK;
}

int ituna_kafka_utf8_text(const void *p, size_t n) {
    const unsigned char *s = p;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp;
        if (c == 0) return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else
            return 0;
        if (i + len > n) return 0;
        for (size_t j = 1; j < len; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        /* overlong forms, surrogates and out-of-range code points are not text */
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

/* Header names the propagators write: a caller's own copy of one is replaced. */
static int propagation_header(const char *k) {
    return strcasecmp(k, "traceparent") == 0 || strcasecmp(k, "tracestate") == 0 ||
           strcasecmp(k, "b3") == 0 || strncasecmp(k, "x-b3-", 5) == 0 || strcasecmp(k, "baggage") == 0;
}

static void header_set(void *carrier, const char *key, const char *value) {
    rd_kafka_header_add(carrier, key, -1, value, (ssize_t)strlen(value));
}

rd_kafka_headers_t *ituna_kafka_headers_build(const ituna_header *extra, size_t n,
                                              const ituna_span_context *ctx, unsigned props,
                                              const ituna_baggage *bag) {
    rd_kafka_headers_t *h = rd_kafka_headers_new(n + 4);
    if (!h) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (!extra[i].key) continue;
        if (propagation_header(extra[i].key) && (strcasecmp(extra[i].key, "baggage") != 0 || bag)) continue;
        rd_kafka_header_add(h, extra[i].key, -1, extra[i].value,
                            extra[i].value ? (ssize_t)extra[i].value_len : 0);
    }
    ituna_span_context none;
    memset(&none, 0, sizeof none);
    ituna_inject_with(props, ctx ? ctx : &none, bag, header_set, h);
    return h;
}

/* Length-aware, case-insensitive lookup in Kafka headers (the last one wins); a
 * null value reads as empty, which no propagator accepts. */
static const char *header_getn(void *carrier, const char *key, size_t *len) {
    const rd_kafka_headers_t *hdrs = carrier;
    const char *name, *found = NULL;
    const void *val;
    size_t size;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
         i++)
        if (strcasecmp(name, key) == 0) {
            found = val ? (const char *)val : "";
            *len = val ? size : 0;
        }
    return found;
}

int ituna_kafka_baggage(const rd_kafka_headers_t *hdrs, unsigned props, ituna_baggage *out) {
    size_t n = 0;
    const char *v =
        hdrs && (props & ITUNA_PROPAGATOR_BAGGAGE) ? header_getn((void *)hdrs, "baggage", &n) : NULL;
    const char *why = NULL;
    if (!v) return 0;
    if (ituna_baggage_parse(out, v, n, &why) != ITUNA_OK) {
        ituna_log(ITUNA_LOG_DEBUG, "baggage header dropped: %s", why);
        return 0;
    }
    return 1;
}

static void reasonf(char *reason, size_t size, const char *prefix, const char *why) {
    if (reason && size) snprintf(reason, size, "%s%s", prefix, why ? why : "invalid");
}

/* Context from a carrier object {"traceparent": "...", "tracestate": "..."}. */
static int carrier_object(const cJSON *obj, ituna_span_context *out, char *reason, size_t reason_size) {
    const cJSON *tp = cJSON_GetObjectItemCaseSensitive(obj, "traceparent");
    if (!cJSON_IsString(tp)) {
        reasonf(reason, reason_size, "payload carrier: ", "no traceparent");
        return 0;
    }
    const char *why = NULL;
    if (ituna_traceparent_parse(tp->valuestring, strlen(tp->valuestring), out, &why) != ITUNA_OK) {
        reasonf(reason, reason_size, "payload carrier: ", why);
        memset(out, 0, sizeof *out);
        return 0;
    }
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(obj, "tracestate");
    if (cJSON_IsString(ts)) {
        /* an invalid tracestate alone is dropped; the traceparent still counts (W3C) */
        why = NULL;
        if (ituna_tracestate_parse(ts->valuestring, strlen(ts->valuestring), out, &why) != ITUNA_OK) {
            out->tracestate[0] = 0;
            out->tracestate_len = 0;
        }
        if (why && reason && reason_size)
            snprintf(reason, reason_size, "payload carrier: %s (%zu bytes)", why, strlen(ts->valuestring));
    }
    return 1;
}

static int payload_extract(const void *payload, size_t len, ituna_span_context *out, char *reason,
                           size_t reason_size) {
    if (!payload || len == 0) return 0;
    const char *p = payload;
    size_t i = 0;
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')) i++;
    if (i == len || p[i] != '{') return 0; /* not a JSON object: nothing to say */
    cJSON *root = cJSON_ParseWithLength(p, len);
    if (!root) return 0;
    int ok = 0;
    const cJSON *carrier = cJSON_GetObjectItemCaseSensitive(root, "carrier");
    if (cJSON_IsString(carrier)) {
        cJSON *inner = cJSON_Parse(carrier->valuestring);
        if (cJSON_IsObject(inner))
            ok = carrier_object(inner, out, reason, reason_size);
        else
            reasonf(reason, reason_size, "payload carrier: ", "not a JSON object");
        cJSON_Delete(inner);
    } else if (cJSON_IsObject(carrier)) {
        ok = carrier_object(carrier, out, reason, reason_size);
    } else if (carrier) {
        reasonf(reason, reason_size, "payload carrier: ", "not a JSON object");
    }
    cJSON_Delete(root);
    return ok ? 1 : (carrier ? -1 : 0);
}

ituna_ctx_source ituna_kafka_extract(const rd_kafka_headers_t *hdrs, const void *payload, size_t payload_len,
                                     unsigned props, ituna_span_context *out, char *reason,
                                     size_t reason_size) {
    memset(out, 0, sizeof *out);
    if (reason && reason_size) reason[0] = 0;
    if (hdrs) {
        const char *why = NULL;
        ituna_err err = ituna_extract_with(props, header_getn, (void *)hdrs, out, NULL, &why);
        if (err == ITUNA_OK) {
            /* a tracestate dropped or truncated: said on the span with its size, never silently */
            if (why) {
                const void *tv = NULL;
                size_t tn = 0;
                if (reason && reason_size &&
                    rd_kafka_header_get_last(hdrs, "tracestate", &tv, &tn) == RD_KAFKA_RESP_ERR_NO_ERROR &&
                    tv)
                    snprintf(reason, reason_size, "%s (%zu bytes)", why, tn);
                else
                    reasonf(reason, reason_size, "", why);
            }
            out->is_remote = 1;
            return ITUNA_CTX_HEADER;
        }
        if (err != ITUNA_ERR_NOT_FOUND) {
            memset(out, 0, sizeof *out);
            reasonf(reason, reason_size, "", why);
            return ITUNA_CTX_NONE;
        }
    }
    int r = payload_extract(payload, payload_len, out, reason, reason_size);
    if (r == 1) {
        out->is_remote = 1;
        return ITUNA_CTX_PAYLOAD;
    }
    memset(out, 0, sizeof *out);
    if (r == 0) reasonf(reason, reason_size, "", "no traceparent header");
    return ITUNA_CTX_NONE;
}

void ituna_kafka_json_str(ituna_buf *b, const char *s, size_t n) {
    ituna_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': ituna_buf_puts(b, "\\\""); break;
        case '\\': ituna_buf_puts(b, "\\\\"); break;
        case '\n': ituna_buf_puts(b, "\\n"); break;
        case '\r': ituna_buf_puts(b, "\\r"); break;
        case '\t': ituna_buf_puts(b, "\\t"); break;
        case '\b': ituna_buf_puts(b, "\\b"); break;
        case '\f': ituna_buf_puts(b, "\\f"); break;
        default:
            if (c < 0x20 || c >= 0x7f)
                ituna_buf_printf(b, "\\u%04x", c);
            else
                ituna_buf_putc(b, (char)c);
        }
    }
    ituna_buf_putc(b, '"');
}

int ituna_kafka_payload_inject(const void *value, size_t len, const ituna_span_context *ctx, ituna_buf *out) {
    char tp[ITUNA_TRACEPARENT_LEN + 1];
    if (!value || len == 0 || !ctx || ituna_traceparent_format(ctx, tp, sizeof tp) != ITUNA_TRACEPARENT_LEN)
        return 0;
    cJSON *root = cJSON_ParseWithLength(value, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return 0;
    }
    /* The carrier dict as json.dumps() writes it: {"traceparent": "...", "tracestate": "..."} */
    ituna_buf dict;
    ituna_buf_init(&dict);
    ituna_buf_puts(&dict, "{\"traceparent\": ");
    ituna_kafka_json_str(&dict, tp, ITUNA_TRACEPARENT_LEN);
    if (ctx->tracestate_len > 0) {
        ituna_buf_puts(&dict, ", \"tracestate\": ");
        ituna_kafka_json_str(&dict, ctx->tracestate, ctx->tracestate_len);
    }
    ituna_buf_putc(&dict, '}');
    int rc = 1;
    if (dict.oom) {
        rc = -1;
    } else if (cJSON_GetObjectItemCaseSensitive(root, "carrier")) {
        /* Replace an existing field: re-serialise through cJSON. */
        ituna_buf_putc(&dict, 0);
        cJSON *s = cJSON_CreateString((const char *)dict.data);
        char *text = NULL;
        if (s && cJSON_ReplaceItemInObjectCaseSensitive(root, "carrier", s))
            text = cJSON_PrintUnformatted(root);
        else
            cJSON_Delete(s);
        if (!text)
            rc = -1;
        else {
            ituna_buf_puts(out, text);
            cJSON_free(text);
        }
    } else {
        /* Splice before the closing brace so the original bytes stay as they were. */
        const char *p = value;
        size_t end = len;
        while (end > 0 && p[end - 1] != '}') end--;
        ituna_buf_append(out, p, end - 1);
        ituna_buf_puts(out, root->child ? ", \"carrier\": " : "\"carrier\": ");
        ituna_kafka_json_str(out, (const char *)dict.data, dict.len);
        ituna_buf_append(out, p + end - 1, len - (end - 1));
    }
    if (out->oom) rc = -1;
    ituna_buf_free(&dict);
    cJSON_Delete(root);
    return rc;
}

void ituna_kafka_span_attrs(ituna_span *span, const char *operation, const char *topic, const void *key,
                            size_t key_len, size_t body_size, const ituna_kafka_endpoint *ep) {
    if (!ituna_span_is_recording(span)) return;
    /* Called on a fresh span: keys are new (no duplicate scan), and the keys and the
     * two literal values are string literals, referenced rather than copied. */
    ITUNA_SET_STR_LIT(span, "messaging.system", "kafka", ITUNA_LIT_VALUE | ITUNA_LIT_FRESH);
    ITUNA_SET_STR_LIT(span, "messaging.operation.name", operation, ITUNA_LIT_VALUE | ITUNA_LIT_FRESH);
    ITUNA_SET_STR_LIT(span, "messaging.operation.type", operation, ITUNA_LIT_VALUE | ITUNA_LIT_FRESH);
    ITUNA_SET_STR_LIT(span, "messaging.destination.name", topic, ITUNA_LIT_FRESH);
    if (key && key_len > 0 && ituna_kafka_utf8_text(key, key_len)) {
        ituna_attr a = { .key = "messaging.kafka.message.key", .type = ITUNA_ATTR_STRING };
        a.v.s.ptr = key;
        a.v.s.len = key_len;
        ituna_span_set_attr_lit(span, &a, sizeof "messaging.kafka.message.key" - 1,
                                ITUNA_LIT_KEY | ITUNA_LIT_FRESH);
    }
    ITUNA_SET_INT_LIT(span, "messaging.message.body.size", (int64_t)body_size, ITUNA_LIT_FRESH);
    if (ep->host[0]) {
        ITUNA_SET_STR_LIT(span, "server.address", ep->host, ITUNA_LIT_FRESH);
        ITUNA_SET_INT_LIT(span, "server.port", ep->port, ITUNA_LIT_FRESH);
    }
    if (ep->client_id[0]) ITUNA_SET_STR_LIT(span, "messaging.client.id", ep->client_id, ITUNA_LIT_FRESH);
}
