/* config_schema.c - the one table of the core's configuration sections and keys
 * (type, OTEL_* variables, default, allowed values, meaning), the parser of an
 * application's key specs, value checks against both, key resolution for
 * ituna_config_set() and the k=v,k=v list parser. Applications' sections (the
 * restaurant's [rates], [services], ...) are not here: they register their own
 * table (ituna_config_add_schema). docs/config.md mirrors the table. */
#include "config_schema.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#define IMAX 9.0e15 /* "no upper bound" for INT keys, still exact in a double */

/* Shorthands keep the table one line per key. */
#define K_STR(s, k, e0, e1, d, doc)                                                                          \
    { s, k, ITUNA_CFG_STRING, { e0, e1 }, d, NULL, 0, 0, doc }
#define K_INT(s, k, e0, e1, d, lo, hi, doc)                                                                  \
    { s, k, ITUNA_CFG_INT, { e0, e1 }, d, NULL, lo, hi, doc }
#define K_MS(s, k, e0, e1, d, doc)                                                                           \
    { s, k, ITUNA_CFG_MS, { e0, e1 }, d, NULL, 0, IMAX, doc }
#define K_DELAY(s, k, d, doc)                                                                                \
    { s, k, ITUNA_CFG_DELAY, { NULL, NULL }, d, NULL, 0, IMAX, doc }
#define K_FLT(s, k, e0, d, lo, hi, doc)                                                                      \
    { s, k, ITUNA_CFG_FLOAT, { e0, NULL }, d, NULL, lo, hi, doc }
#define K_BOOL(s, k, e0, d, doc)                                                                             \
    { s, k, ITUNA_CFG_BOOL, { e0, NULL }, d, NULL, 0, 0, doc }
#define K_ENUM(s, k, e0, e1, d, allowed, doc)                                                                \
    { s, k, ITUNA_CFG_ENUM, { e0, e1 }, d, allowed, 0, 0, doc }
#define K_URL(s, k, e0, doc)                                                                                 \
    { s, k, ITUNA_CFG_URL, { e0, NULL }, NULL, NULL, 0, 0, doc }
#define K_PATH(s, k, e0, e1, d, doc)                                                                         \
    { s, k, ITUNA_CFG_PATH, { e0, e1 }, d, NULL, 0, 0, doc }
#define K_KV(s, k, e0, e1, doc)                                                                              \
    { s, k, ITUNA_CFG_KVLIST, { e0, e1 }, NULL, NULL, 0, 0, doc }

#define OTLP "OTEL_EXPORTER_OTLP_"

static const ituna_cfg_key SCHEMA[] = {
    /* [tracer]: the OpenTelemetry SDK's general and span-limit variables */
    K_STR("tracer", "service-name", "OTEL_SERVICE_NAME", NULL, NULL,
          "service.name of this process (default: the program name)"),
    K_KV("tracer", "resource-attributes", "OTEL_RESOURCE_ATTRIBUTES", NULL,
         "extra resource attributes, k=v,k=v with percent-encoded values"),
    K_ENUM("tracer", "sampler", "OTEL_TRACES_SAMPLER", NULL, "parentbased_always_on",
           "always_on|always_off|traceidratio|parentbased_always_on|parentbased_always_off|parentbased_"
           "traceidratio",
           "sampler, as in the OpenTelemetry SDK spec"),
    K_FLT("tracer", "sampler-arg", "OTEL_TRACES_SAMPLER_ARG", "1.0", 0.0, 1.0,
          "sampling ratio for the *traceidratio samplers"),
    K_BOOL("tracer", "disabled", "OTEL_SDK_DISABLED", "false", "true: no spans are recorded or exported"),
    K_STR(
        "tracer", "propagators", "OTEL_PROPAGATORS", NULL, "tracecontext,baggage",
        "context propagation in inject/extract and Kafka headers: tracecontext, baggage, b3, b3multi, none"),
    K_ENUM("tracer", "log-level", "OTEL_LOG_LEVEL", NULL, "warn", "debug|info|warn|error|none",
           "minimum level of ituna's own diagnostics"),
    K_INT("tracer", "attribute-count-limit", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT",
          "128", 0, IMAX, "attributes kept per span; more are dropped and counted"),
    K_INT("tracer", "attribute-value-length-limit", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
          "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "0", 0, IMAX,
          "string attribute values truncated to this; 0 = unlimited"),
    K_INT("tracer", "event-count-limit", "OTEL_SPAN_EVENT_COUNT_LIMIT", NULL, "128", 0, IMAX,
          "events kept per span"),
    K_INT("tracer", "link-count-limit", "OTEL_SPAN_LINK_COUNT_LIMIT", NULL, "128", 0, IMAX,
          "links kept per span"),
    K_INT("tracer", "event-attribute-count-limit", "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", NULL, "128", 0, IMAX,
          "attributes kept per event"),
    K_INT("tracer", "link-attribute-count-limit", "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", NULL, "128", 0, IMAX,
          "attributes kept per link"),

    /* [exporter]: OTLP/HTTP, file and console exporters, batch processor */
    K_ENUM("exporter", "type", "OTEL_TRACES_EXPORTER", NULL, NULL, "otlp|console|file|none",
           "exporter; unset: otlp when an endpoint is set, else file"),
    K_URL("exporter", "endpoint", OTLP "ENDPOINT", "OTLP/HTTP base URL; /v1/traces is appended"),
    K_URL("exporter", "traces-endpoint", OTLP "TRACES_ENDPOINT", "full OTLP/HTTP traces URL, used as is"),
    K_ENUM("exporter", "protocol", OTLP "TRACES_PROTOCOL", OTLP "PROTOCOL", "http/protobuf",
           "http/protobuf|http/json", "OTLP encoding"),
    K_KV("exporter", "headers", OTLP "TRACES_HEADERS", OTLP "HEADERS",
         "extra HTTP headers, k=v,k=v percent-encoded"),
    K_MS("exporter", "timeout", OTLP "TRACES_TIMEOUT", OTLP "TIMEOUT", "10000", "OTLP request timeout, ms"),
    K_ENUM("exporter", "compression", OTLP "TRACES_COMPRESSION", OTLP "COMPRESSION", "none", "gzip|none",
           "OTLP request body compression"),
    K_PATH("exporter", "certificate", OTLP "TRACES_CERTIFICATE", OTLP "CERTIFICATE", NULL,
           "CA bundle (PEM) to verify the collector"),
    K_PATH("exporter", "client-key", OTLP "TRACES_CLIENT_KEY", OTLP "CLIENT_KEY", NULL,
           "client private key (PEM), mTLS"),
    K_PATH("exporter", "client-certificate", OTLP "TRACES_CLIENT_CERTIFICATE", OTLP "CLIENT_CERTIFICATE",
           NULL, "client certificate (PEM), mTLS"),
    K_PATH("exporter", "file", "ITUNA_TRACES_FILE", NULL, NULL,
           "OTLP JSON-lines output of the file exporter (default: a file in the working directory)"),
    K_PATH("exporter", "copy-file", "ITUNA_TRACES_COPY_FILE", NULL, NULL,
           "with the otlp or console exporter: also append every batch to this OTLP JSON-lines file"),
    K_INT("exporter", "max-queue-size", "OTEL_BSP_MAX_QUEUE_SIZE", NULL, "2048", 1, IMAX,
          "spans held for export; more are dropped and counted"),
    K_MS("exporter", "schedule-delay", "OTEL_BSP_SCHEDULE_DELAY", NULL, "5000", "ms between two exports"),
    K_MS("exporter", "export-timeout", "OTEL_BSP_EXPORT_TIMEOUT", NULL, "30000",
         "ms an export may take, retries included"),
    K_INT("exporter", "max-export-batch-size", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", NULL, "512", 1, IMAX,
          "spans per export request; at most max-queue-size"),

    /* [messaging]: Kafka layer behaviour */
    K_ENUM("messaging", "consumer-context", NULL, NULL, "parent", "parent|link",
           "producer context as the consumer span's parent, or as a link"),
    K_STR("messaging", "dlq-suffix", NULL, NULL, ".dlq", "dead-letter topic = <topic><suffix>"),
    K_MS("messaging", "connect-timeout", NULL, NULL, "10000",
         "ms without a broker before a consumer that never reached one fails; once connected, a warning and "
         "polling goes on"),
    K_INT("messaging", "max-redeliveries", NULL, NULL, "9", 0, IMAX,
          "redeliveries of a failed message before it goes to the DLQ with the last error (9: ten "
          "attempts, as Spring Kafka); 0 = unlimited"),

    /* [compat]: interoperation with the seed POC */
    K_BOOL("compat", "payload-carrier", NULL, "false",
           "also write the W3C carrier into the JSON payload's \"carrier\" field, as the seed does"),

    /* [queue]: the seed's broker address, plus our bootstrap override */
    K_STR("queue", "host", NULL, NULL, NULL, "Kafka broker host (seed)"),
    K_INT("queue", "port", NULL, NULL, "9092", 1, 65535, "Kafka broker port (seed)"),
    K_STR("queue", "bootstrap", "ITUNA_KAFKA_BOOTSTRAP", NULL, NULL,
          "bootstrap servers host:port[,host:port]; wins over host/port"),

    /* [jaeger-exporter]: the seed's collector address */
    K_STR("jaeger-exporter", "host", NULL, NULL, NULL, "OTLP collector host (seed)"),
    K_INT("jaeger-exporter", "port", NULL, NULL, "4318", 1, 65535, "OTLP/HTTP collector port (seed)"),
};

static const ituna_cfg_section SECTIONS[] = {
    { "tracer", 0, ITUNA_CFG_ANY, "service identity, sampling, span limits" },
    { "exporter", 0, ITUNA_CFG_ANY, "where and how spans are exported" },
    { "messaging", 0, ITUNA_CFG_ANY, "Kafka layer behaviour" },
    { "compat", 0, ITUNA_CFG_ANY, "interoperation with the seed POC" },
    { "kafka", 1, ITUNA_CFG_ANY, "any librdkafka property, passed through (librdkafka validates it)" },
    { "resource", 1, ITUNA_CFG_STRING, "extra resource attributes (string values)" },
    { "queue", 0, ITUNA_CFG_ANY, "Kafka broker address (seed)" },
    { "jaeger-exporter", 0, ITUNA_CFG_ANY, "collector address (seed)" },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

const ituna_cfg_key *ituna_cfg_schema(size_t *n) {
    if (n) *n = NELEM(SCHEMA);
    return SCHEMA;
}

const ituna_cfg_section *ituna_cfg_sections(size_t *n) {
    if (n) *n = NELEM(SECTIONS);
    return SECTIONS;
}

const ituna_cfg_section *ituna_cfg_find_section(const ituna_cfg_table *app, const char *section) {
    for (size_t i = 0; section && i < NELEM(SECTIONS); i++)
        if (strcmp(SECTIONS[i].name, section) == 0) return &SECTIONS[i];
    for (size_t i = 0; section && app && i < app->n_sections; i++)
        if (strcmp(app->sections[i].name, section) == 0) return &app->sections[i];
    return NULL;
}

const ituna_cfg_key *ituna_cfg_find_key(const ituna_cfg_table *app, const char *section, const char *key) {
    for (size_t i = 0; section && key && i < NELEM(SCHEMA); i++)
        if (strcmp(SCHEMA[i].section, section) == 0 && strcmp(SCHEMA[i].key, key) == 0) return &SCHEMA[i];
    for (size_t i = 0; section && key && app && i < app->n_keys; i++)
        if (strcmp(app->keys[i].section, section) == 0 && strcmp(app->keys[i].key, key) == 0)
            return &app->keys[i];
    return NULL;
}

/* The i-th key of the core's table followed by app's; NULL past the end. */
static const ituna_cfg_key *nth_key(const ituna_cfg_table *app, size_t i) {
    if (i < NELEM(SCHEMA)) return &SCHEMA[i];
    i -= NELEM(SCHEMA);
    return app && i < app->n_keys ? &app->keys[i] : NULL;
}

/* ---- scalar parsers --------------------------------------------------------- */

static const char *skip_blank(const char *s) {
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

static int only_blank(const char *s) {
    return *skip_blank(s) == '\0';
}

static int only_blank_n(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t') return 0;
    return 1;
}

int ituna_cfg_parse_int(const char *s, int64_t *out) {
    if (!s) return 0;
    s = skip_blank(s);
    if (!*s || (!isdigit((unsigned char)*s) && *s != '-' && *s != '+')) return 0;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || !only_blank(end)) return 0;
    *out = (int64_t)v;
    return 1;
}

int ituna_cfg_parse_double(const char *s, double *out) {
    if (!s) return 0;
    s = skip_blank(s);
    if (!*s) return 0;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    /* isfinite rejects "nan" and "inf", which strtod accepts */
    if (errno || end == s || !only_blank(end) || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

int ituna_cfg_parse_bool(const char *s, int *out) {
    static const char *const yes[] = { "true", "1", "yes", "on" };
    static const char *const no[] = { "false", "0", "no", "off" };
    if (!s) return 0;
    s = skip_blank(s);
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    for (size_t i = 0; i < 4; i++) {
        if (strlen(yes[i]) == n && strncasecmp(s, yes[i], n) == 0) return *out = 1, 1;
        if (strlen(no[i]) == n && strncasecmp(s, no[i], n) == 0) return *out = 0, 1;
    }
    return 0;
}

int ituna_cfg_parse_delay(const char *s, int64_t *lo, int64_t *hi) {
    if (!s) return 0;
    s = skip_blank(s);
    if (!isdigit((unsigned char)*s)) return 0;
    errno = 0;
    char *end;
    long long a = strtoll(s, &end, 10), b;
    if (errno) return 0;
    const char *p = skip_blank(end);
    if (*p == '\0') {
        b = a;
    } else {
        if (*p != '-') return 0;
        p = skip_blank(p + 1);
        if (!isdigit((unsigned char)*p)) return 0;
        b = strtoll(p, &end, 10);
        if (errno || !only_blank(end) || b < a) return 0;
    }
    *lo = a;
    *hi = b;
    return 1;
}

/* ---- k=v,k=v lists ----------------------------------------------------------- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Copy s[0..n) trimmed into out (size >= n+1), percent-decoding when asked.
 * Returns 0 on a bad %XX escape. */
static int copy_member(const char *s, size_t n, int decode, char *out) {
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (decode && s[i] == '%') {
            if (i + 2 >= n) return 0;
            int a = hexval(s[i + 1]), b = a < 0 ? -1 : hexval(s[i + 2]);
            if (a < 0 || b < 0) return 0;
            out[o++] = (char)(a * 16 + b);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return 1;
}

ituna_err ituna_kvlist_parse(const char *text, ituna_kv_cb cb, void *opaque, char *msg, size_t msg_size) {
    if (!text) return ITUNA_OK;
    size_t len = strlen(text);
    char *key = malloc(len + 1), *val = malloc(len + 1);
    if (!key || !val) {
        free(key);
        free(val);
        return ituna_set_err(msg, msg_size, ITUNA_ERR_NOMEM, "out of memory");
    }
    ituna_err rc = ITUNA_OK;
    const char *p = text;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (!eq) {
            if (!only_blank_n(p, n)) {
                rc = ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "expected key=value, got '%.*s'", (int)n,
                                   p);
                break;
            }
        } else {
            size_t kn = (size_t)(eq - p);
            /* '%' in a value must start a valid escape; the key is taken literally */
            if (!copy_member(p, kn, 0, key) || !copy_member(eq + 1, n - kn - 1, 1, val)) {
                rc = ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "bad percent-encoding in '%.*s'", (int)n,
                                   p);
                break;
            }
            if (!key[0]) {
                rc = ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "empty key in '%.*s'", (int)n, p);
                break;
            }
            if (cb && cb(opaque, key, val) != 0) break;
        }
        if (!comma) break;
        p = comma + 1;
    }
    free(key);
    free(val);
    return rc;
}

/* ---- value checks ------------------------------------------------------------ */

/* "a, b, c" from "a|b|c" */
static void list_allowed(const char *allowed, char *out, size_t size) {
    size_t o = 0;
    for (const char *p = allowed; *p && o + 3 < size; p++) {
        if (*p == '|') {
            out[o++] = ',';
            out[o++] = ' ';
        } else {
            out[o++] = *p;
        }
    }
    out[o < size ? o : size - 1] = '\0';
}

static int enum_has(const char *allowed, const char *v) {
    size_t n = strlen(v);
    for (const char *p = allowed; *p;) {
        const char *bar = strchr(p, '|');
        size_t m = bar ? (size_t)(bar - p) : strlen(p);
        if (m == n && strncmp(p, v, n) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

static ituna_err check_enum(const ituna_cfg_key *k, const char *v, char *msg, size_t msg_size) {
    if (enum_has(k->allowed, v)) return ITUNA_OK;
    /* Values the OpenTelemetry SDKs accept but we do not: say what to use instead. */
    if (strcmp(k->key, "protocol") == 0 && strcmp(v, "grpc") == 0)
        return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG,
                             "grpc is not supported by ituna-core; use http/protobuf");
    if (strcmp(k->key, "type") == 0 && strcmp(k->section, "exporter") == 0) {
        if (strchr(v, ','))
            return ituna_set_err(
                msg, msg_size, ITUNA_ERR_CONFIG,
                "one exporter at a time is supported, got '%s' (use otlp, console, file or none)", v);
        if (strcmp(v, "jaeger") == 0 || strcmp(v, "zipkin") == 0)
            return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG,
                                 "exporter '%s' is not supported by ituna-core; use otlp (Jaeger and most "
                                 "backends accept OTLP/HTTP on port 4318)",
                                 v);
    }
    char list[256];
    list_allowed(k->allowed, list, sizeof list);
    return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "expected one of %s, got '%s'", list, v);
}

static ituna_err check_type(const ituna_cfg_key *k, ituna_cfg_type type, const char *v, char *msg,
                            size_t msg_size) {
    int64_t i, hi;
    double d;
    int b;
    switch (type) {
    case ITUNA_CFG_STRING:
    case ITUNA_CFG_ANY: return ITUNA_OK;
    case ITUNA_CFG_INT:
        if (ituna_cfg_parse_int(v, &i) && (double)i >= k->min && (double)i <= k->max) return ITUNA_OK;
        if (k->max >= IMAX)
            return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "expected %s integer, got '%s'",
                                 k->min >= 1   ? "a positive"
                                 : k->min >= 0 ? "a non-negative"
                                               : "an",
                                 v);
        return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG,
                             "expected an integer from %.0f to %.0f, got '%s'", k->min, k->max, v);
    case ITUNA_CFG_MS:
        if (ituna_cfg_parse_int(v, &i) && i >= 0) return ITUNA_OK;
        return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG,
                             "expected a non-negative integer (milliseconds), got '%s'", v);
    case ITUNA_CFG_DELAY:
        if (ituna_cfg_parse_delay(v, &i, &hi)) return ITUNA_OK;
        return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG,
                             "expected milliseconds (e.g. 140) or a range LO-HI (e.g. 2000-4000), got '%s'",
                             v);
    case ITUNA_CFG_FLOAT:
        if (ituna_cfg_parse_double(v, &d) && d >= k->min && d <= k->max) return ITUNA_OK;
        if (k->max >= 1e6 && k->min <= -1e300)
            return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "expected a number, got '%s'", v);
        if (k->max >= 1e6)
            return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "expected a number >= %g, got '%s'", k->min,
                                 v);
        return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "expected a number from %g to %g, got '%s'",
                             k->min, k->max, v);
    case ITUNA_CFG_BOOL:
        if (ituna_cfg_parse_bool(v, &b)) return ITUNA_OK;
        return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG,
                             "expected true or false (also 1/0, yes/no, on/off), got '%s'", v);
    case ITUNA_CFG_ENUM: return check_enum(k, v, msg, msg_size);
    case ITUNA_CFG_URL: {
        const char *rest = NULL;
        if (strncmp(v, "http://", 7) == 0)
            rest = v + 7;
        else if (strncmp(v, "https://", 8) == 0)
            rest = v + 8;
        if (rest && *rest && *rest != '/' && *rest != ':' && !strpbrk(v, " \t")) return ITUNA_OK;
        return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG,
                             "expected an http:// or https:// URL with a host, got '%s'", v);
    }
    case ITUNA_CFG_PATH:
        if (*v) return ITUNA_OK;
        return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "expected a file path, got an empty value");
    case ITUNA_CFG_KVLIST: {
        char inner[200];
        ituna_err rc = ituna_kvlist_parse(v, NULL, NULL, inner, sizeof inner);
        if (rc == ITUNA_OK) return ITUNA_OK;
        return ituna_set_err(msg, msg_size, rc, "expected key=value,key=value: %s", inner);
    }
    }
    return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "unhandled type");
}

/* "a, b, c": the known keys of a section, for "unknown key" messages */
static void known_keys(const ituna_cfg_table *app, const char *section, char *out, size_t size) {
    size_t o = 0;
    out[0] = '\0';
    const ituna_cfg_key *k;
    for (size_t i = 0; (k = nth_key(app, i)) != NULL && o < size; i++) {
        if (strcmp(k->section, section) != 0) continue;
        int w = snprintf(out + o, size - o, "%s%s", o ? ", " : "", k->key);
        if (w < 0) break;
        o += (size_t)w;
    }
}

ituna_err ituna_cfg_check(const ituna_cfg_table *app, const char *section, const char *key, const char *value,
                          char *msg, size_t msg_size) {
    const ituna_cfg_section *sec = ituna_cfg_find_section(app, section);
    if (!sec) {
        char list[1024];
        size_t o = 0, n_app = app ? app->n_sections : 0;
        list[0] = '\0';
        for (size_t i = 0; i < NELEM(SECTIONS) + n_app && o < sizeof list; i++) {
            const char *name =
                i < NELEM(SECTIONS) ? SECTIONS[i].name : app->sections[i - NELEM(SECTIONS)].name;
            int w = snprintf(list + o, sizeof list - o, "%s%s", o ? ", " : "", name);
            if (w < 0) break;
            o += (size_t)w;
        }
        return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "unknown section (known: %s)", list);
    }
    if (!key || !*key) return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "empty key");
    const ituna_cfg_key *k = ituna_cfg_find_key(app, section, key);
    if (!k && !sec->open) {
        char list[512];
        known_keys(app, section, list, sizeof list);
        return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "unknown key (known in [%s]: %s)", section,
                             list);
    }
    if (!value) return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "missing value");
    return check_type(k, k ? k->type : sec->open_type, value, msg, msg_size);
}

/* ---- key names given to ituna_config_set() ----------------------------------- */

/* a == b with '_' in a read as '-' */
static int key_eq(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if ((*a == '_' ? '-' : *a) != *b) return 0;
    return *a == *b;
}

static ituna_err copy_out(char *dst, size_t size, const char *src, size_t n, char *msg, size_t msg_size) {
    if (n + 1 > size) return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "key too long");
    memcpy(dst, src, n);
    dst[n] = '\0';
    return ITUNA_OK;
}

ituna_err ituna_cfg_resolve(const ituna_cfg_table *app, const char *name, char *section, size_t section_size,
                            char *key, size_t key_size, char *msg, size_t msg_size) {
    if (!name || !*name) return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "empty key");
    const char *dot = strchr(name, '.');
    if (dot) {
        /* [kafka] keys contain dots themselves, so split at the first one only */
        ituna_err rc = copy_out(section, section_size, name, (size_t)(dot - name), msg, msg_size);
        if (rc) return rc;
        const ituna_cfg_section *sec = ituna_cfg_find_section(app, section);
        if (sec && !sec->open && !ituna_cfg_find_key(app, section, dot + 1)) {
            const ituna_cfg_key *k;
            for (size_t i = 0; (k = nth_key(app, i)) != NULL; i++)
                if (strcmp(k->section, section) == 0 && key_eq(dot + 1, k->key))
                    return copy_out(key, key_size, k->key, strlen(k->key), msg, msg_size);
        }
        return copy_out(key, key_size, dot + 1, strlen(dot + 1), msg, msg_size);
    }
    /* "exporter" alone: the exporter's type, as OTEL_TRACES_EXPORTER names it */
    if (strcmp(name, "exporter") == 0) name = "type";
    static const char *const core[] = { "tracer", "exporter", "messaging", "compat" };
    const ituna_cfg_key *found = NULL;
    int count = 0;
    for (size_t i = 0; i < NELEM(SCHEMA); i++) {
        int in_core = 0;
        for (size_t c = 0; c < NELEM(core); c++) in_core |= strcmp(SCHEMA[i].section, core[c]) == 0;
        if (in_core && key_eq(name, SCHEMA[i].key)) {
            if (count++ == 0) found = &SCHEMA[i];
        }
    }
    if (count == 0)
        return ituna_set_err(
            msg, msg_size, ITUNA_ERR_CONFIG,
            "unknown key '%s' (use section.key, or a key of [tracer], [exporter], [messaging] "
            "or [compat])",
            name);
    if (count > 1)
        return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "ambiguous key '%s': write it as section.key",
                             name);
    ituna_err rc = copy_out(section, section_size, found->section, strlen(found->section), msg, msg_size);
    if (rc) return rc;
    return copy_out(key, key_size, found->key, strlen(found->key), msg, msg_size);
}

/* ---- application key specs ------------------------------------------------------ */

static const struct {
    const char *name;
    ituna_cfg_type type;
} TYPE_NAMES[] = {
    { "string", ITUNA_CFG_STRING }, { "int", ITUNA_CFG_INT },     { "ms", ITUNA_CFG_MS },
    { "delay", ITUNA_CFG_DELAY },   { "float", ITUNA_CFG_FLOAT }, { "bool", ITUNA_CFG_BOOL },
    { "enum", ITUNA_CFG_ENUM },     { "url", ITUNA_CFG_URL },     { "path", ITUNA_CFG_PATH },
    { "kvlist", ITUNA_CFG_KVLIST },
};

/* "LO..HI" into min/max; an empty side keeps the caller's bound. 1 when well-formed. */
static int parse_range(char *args, double *min, double *max) {
    char *dots = strstr(args, "..");
    if (!dots) return 0;
    *dots = '\0';
    char *lo = args, *hi = dots + 2;
    if (*skip_blank(lo) && !ituna_cfg_parse_double(lo, min)) return 0;
    if (*skip_blank(hi) && !ituna_cfg_parse_double(hi, max)) return 0;
    return *min <= *max;
}

ituna_err ituna_cfg_parse_spec(char *spec, ituna_cfg_key *k, char *msg, size_t msg_size) {
    char *p = (char *)skip_blank(spec);
    size_t n = strcspn(p, "( \t");
    const char *given = p;
    int found = 0;
    for (size_t i = 0; i < NELEM(TYPE_NAMES); i++) {
        if (strlen(TYPE_NAMES[i].name) == n && strncmp(TYPE_NAMES[i].name, p, n) == 0) {
            k->type = TYPE_NAMES[i].type;
            found = 1;
        }
    }
    if (!found)
        return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG,
                             "unknown type '%.*s' (known: string, int, ms, delay, float, bool, enum, url, "
                             "path, kvlist)",
                             (int)n, given);
    p += n;
    char *args = NULL;
    if (*p == '(') {
        char *close = strchr(p, ')');
        if (!close) return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "missing ')' after the type");
        *close = '\0';
        args = p + 1;
        p = close + 1;
    }
    k->allowed = NULL;
    k->min = k->type == ITUNA_CFG_FLOAT ? -DBL_MAX : -IMAX;
    k->max = k->type == ITUNA_CFG_FLOAT ? DBL_MAX : IMAX;
    if (k->type == ITUNA_CFG_MS || k->type == ITUNA_CFG_DELAY) k->min = 0;
    if (k->type == ITUNA_CFG_ENUM) {
        if (!args || !*args)
            return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "enum needs its values: enum(a|b|c)");
        k->allowed = args;
    } else if (k->type == ITUNA_CFG_INT || k->type == ITUNA_CFG_FLOAT) {
        if (args && !parse_range(args, &k->min, &k->max))
            return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "expected a range LO..HI in the ()");
    } else if (args) {
        return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "type '%.*s' takes no ()", (int)n, given);
    }
    if (*p && *p != ' ' && *p != '\t')
        return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "expected a blank between type and default");
    p = (char *)skip_blank(p);
    k->def = *p ? p : NULL;
    if (k->def) {
        char inner[400];
        if (check_type(k, k->type, k->def, inner, sizeof inner) != ITUNA_OK)
            return ituna_set_err(msg, msg_size, ITUNA_ERR_CONFIG, "default: %s", inner);
    }
    return ITUNA_OK;
}
