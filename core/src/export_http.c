/* export_http.c - the OTLP/HTTP exporter: endpoint resolution per the OTLP
 * exporter spec, http/protobuf or http/json bodies, optional gzip, extra headers,
 * TLS files, and the retry policy (exponential backoff with full jitter on
 * 429/502/503/504 and connection errors, Retry-After honoured, never past the
 * batch's deadline). One libcurl easy handle, reused so the connection is kept
 * alive. Runs on the batch worker thread only. */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

#include "config_schema.h"
#include "internal.h"
#include "otlp_util.h"

#define BACKOFF_INITIAL_MS 200
#define BACKOFF_MAX_MS     5000
#define RESP_MAX           (64 * 1024) /* response bytes kept; the rest is discarded */

typedef struct http_state {
    CURL *curl;
    struct curl_slist *headers;
    char *url;
    int json;
    int gzip;
    int64_t timeout_ms;
    ituna_buf body, gz, resp;
    z_stream zs;
    int zs_ready;
    int64_t retry_after_ms; /* from the last response; -1 when absent */
    ituna_exporter *self;   /* for the shutdown cap, read by the progress callback */
    char curl_err[CURL_ERROR_SIZE];
} http_state;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;
static void curl_init(void) {
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- libcurl callbacks ------------------------------------------------------- */

static size_t on_body(char *p, size_t sz, size_t nm, void *ud) {
    http_state *h = ud;
    size_t n = sz * nm;
    if (h->resp.len < RESP_MAX) {
        size_t keep = n < RESP_MAX - h->resp.len ? n : RESP_MAX - h->resp.len;
        ituna_buf_append(&h->resp, p, keep);
    }
    return n;
}

/* Called by libcurl during a transfer (at least once a second): a non-zero
 * return aborts it once shutdown's deadline has passed. */
static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)dt, (void)dn, (void)ut, (void)un;
    http_state *h = ud;
    uint64_t cap = atomic_load_explicit(&h->self->deadline_cap_ns, memory_order_relaxed);
    return cap && ituna_now_ns() >= cap;
}

/* Retry-After: delay-seconds or an HTTP-date (RFC 9110 10.2.3). */
static int64_t parse_retry_after(const char *v, size_t n) {
    char tmp[128];
    while (n && (*v == ' ' || *v == '\t')) v++, n--;
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ')) n--;
    if (!n || n >= sizeof tmp) return -1;
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    char *end;
    errno = 0;
    long long s = strtoll(tmp, &end, 10);
    if (end != tmp && *end == '\0' && errno == 0) return s < 0 ? -1 : (s > 86400 ? 86400000 : s * 1000);
    time_t t = curl_getdate(tmp, NULL);
    if (t == -1) return -1;
    int64_t ms = ((int64_t)t * 1000) - (int64_t)(ituna_now_ns() / 1000000ull);
    return ms < 0 ? 0 : ms;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud) {
    http_state *h = ud;
    size_t n = sz * nm;
    static const char name[] = "retry-after:";
    if (n > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0)
        h->retry_after_ms = parse_retry_after(p + sizeof name - 1, n - (sizeof name - 1));
    return n;
}

/* ---- configuration ----------------------------------------------------------- */

/* Endpoint per the OTLP exporter spec, plus the seed's [jaeger-exporter]. The
 * stronger source wins (API > environment > file), so OTEL_EXPORTER_OTLP_ENDPOINT
 * beats a file's traces-endpoint; within one source traces-endpoint beats endpoint.
 * With no endpoint anywhere: [jaeger-exporter] host/port (the seed file's meaning),
 * else the spec's http://localhost:4318. */
char *ituna_otlp_http_url(const ituna_config *cfg) {
    ituna_cfg_source ts = ituna_config_source(cfg, "exporter", "traces-endpoint");
    ituna_cfg_source bs = ituna_config_source(cfg, "exporter", "endpoint");
    const char *t = ituna_config_get(cfg, "exporter", "traces-endpoint");
    if (ts && ts >= bs && t && *t) return strdup(t);
    const char *base = ituna_config_get(cfg, "exporter", "endpoint");
    char *u = NULL;
    if (base && *base) {
        size_t l = strlen(base);
        while (l && base[l - 1] == '/') l--;
        if (asprintf(&u, "%.*s/v1/traces", (int)l, base) < 0) return NULL;
        return u;
    }
    const char *host = ituna_config_str(cfg, "jaeger-exporter", "host", NULL);
    if (host && *host) {
        int64_t port = ituna_config_int(cfg, "jaeger-exporter", "port", 4318);
        int v6 = strchr(host, ':') != NULL && host[0] != '[';
        if (asprintf(&u, "http://%s%s%s:%lld/v1/traces", v6 ? "[" : "", host, v6 ? "]" : "",
                     (long long)port) < 0)
            return NULL;
        return u;
    }
    return strdup("http://localhost:4318/v1/traces");
}

typedef struct hdr_ctx {
    struct curl_slist *list;
    char msg[160];
    int failed;
} hdr_ctx;

static int add_header(void *opaque, const char *key, const char *value) {
    hdr_ctx *c = opaque;
    if (!*key || strpbrk(key, ":\r\n \t") || strpbrk(value, "\r\n")) {
        snprintf(c->msg, sizeof c->msg, "header '%s' is not a valid HTTP header", key);
        c->failed = 1;
        return 1;
    }
    char *line;
    if (asprintf(&line, "%s: %s", key, value) < 0) {
        c->failed = 2;
        return 1;
    }
    struct curl_slist *n = curl_slist_append(c->list, line);
    free(line);
    if (!n) {
        c->failed = 2;
        return 1;
    }
    c->list = n;
    return 0;
}

static void http_destroy(ituna_exporter *e) {
    if (!e) return;
    http_state *h = e->state;
    if (h) {
        if (h->curl) curl_easy_cleanup(h->curl);
        curl_slist_free_all(h->headers);
        if (h->zs_ready) deflateEnd(&h->zs);
        ituna_buf_free(&h->body);
        ituna_buf_free(&h->gz);
        ituna_buf_free(&h->resp);
        free(h->url);
        free(h);
    }
    free(e);
}

/* ---- one export ------------------------------------------------------------- */

static int gzip_body(http_state *h) {
    if (!h->zs_ready) {
        memset(&h->zs, 0, sizeof h->zs);
        if (deflateInit2(&h->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return 0;
        h->zs_ready = 1;
    } else if (deflateReset(&h->zs) != Z_OK) {
        return 0;
    }
    uLong bound = deflateBound(&h->zs, (uLong)h->body.len);
    h->gz.len = 0;
    if (!ituna_buf_reserve(&h->gz, bound)) return 0;
    h->zs.next_in = h->body.data;
    h->zs.avail_in = (uInt)h->body.len;
    h->zs.next_out = h->gz.data;
    h->zs.avail_out = (uInt)h->gz.cap;
    if (deflate(&h->zs, Z_FINISH) != Z_STREAM_END) return 0;
    h->gz.len = h->zs.total_out;
    return 1;
}

static int retryable_status(long code) {
    return code == 429 || code == 502 || code == 503 || code == 504;
}

static int retryable_curl(CURLcode rc) {
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE: return 1;
    default: return 0;
    }
}

/* A short readable excerpt of an error response: google.rpc.Status.message
 * (field 2) for protobuf, the text itself for JSON/plain. */
static void error_excerpt(http_state *h, char *out, size_t size) {
    out[0] = '\0';
    const uint8_t *p = h->resp.data, *end = p + h->resp.len;
    if (!h->resp.len) return;
    if (!h->json && h->resp.len > 2 && p[0] != '{') {
        while (p < end) {
            uint64_t tag = 0, v = 0;
            unsigned sh = 0;
            while (p < end && (*p & 0x80)) tag |= (uint64_t)(*p++ & 0x7f) << sh, sh += 7;
            if (p >= end) return;
            tag |= (uint64_t)*p++ << sh;
            if ((tag & 7) == 0) {
                while (p < end && (*p++ & 0x80)) {}
                continue;
            }
            if ((tag & 7) != 2) return;
            sh = 0;
            while (p < end && (*p & 0x80)) v |= (uint64_t)(*p++ & 0x7f) << sh, sh += 7;
            if (p >= end) return;
            v |= (uint64_t)*p++ << sh;
            if (v > (uint64_t)(end - p)) return;
            if (tag >> 3 == 2) {
                snprintf(out, size, "%.*s", (int)(v < 200 ? v : 200), (const char *)p);
                return;
            }
            p += v;
        }
        return;
    }
    size_t n = h->resp.len < 200 ? h->resp.len : 200;
    snprintf(out, size, "%.*s", (int)n, (const char *)h->resp.data);
    for (char *c = out; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
}

/* Sleep ms, in slices, returning early once shutdown's cap passes. */
static void sleep_ms(ituna_exporter *e, int64_t ms) {
    while (ms > 0) {
        int64_t step = ms < 50 ? ms : 50;
        struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)step * 1000000L };
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
        ms -= step;
        uint64_t cap = atomic_load_explicit(&e->deadline_cap_ns, memory_order_relaxed);
        if (cap && ituna_now_ns() >= cap) return;
    }
}

static ituna_err http_export(ituna_exporter *e, ituna_span *const *spans, size_t n, const ituna_resource *res,
                             uint64_t deadline_ns, ituna_export_result *out) {
    http_state *h = e->state;
    memset(out, 0, sizeof *out);
    if (!n) return ITUNA_OK;
    h->body.len = 0;
    h->body.oom = 0;
    int ok = h->json ? ituna_otlp_encode_json(spans, n, res, &h->body)
                     : ituna_otlp_encode_proto(spans, n, res, &h->body);
    if (!ok) {
        snprintf(out->message, sizeof out->message, "out of memory encoding %zu spans", n);
        return ITUNA_ERR_NOMEM;
    }
    const ituna_buf *send = &h->body;
    if (h->gzip) {
        if (!gzip_body(h)) {
            snprintf(out->message, sizeof out->message, "gzip compression failed");
            return ITUNA_ERR_NOMEM;
        }
        send = &h->gz;
    }
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, (const char *)send->data);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)send->len);

    for (int attempt = 0;; attempt++) {
        uint64_t now = ituna_now_ns();
        deadline_ns = ituna_export_deadline(e, deadline_ns);
        if (now >= deadline_ns) {
            if (!out->message[0])
                snprintf(out->message, sizeof out->message, "export deadline passed before sending");
            return ITUNA_ERR_TIMEOUT;
        }
        int64_t left_ms = (int64_t)((deadline_ns - now) / 1000000ull);
        if (left_ms < 1) left_ms = 1;
        int64_t to = h->timeout_ms > 0 && h->timeout_ms < left_ms ? h->timeout_ms : left_ms;
        curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, (long)to);
        curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)to);
        h->resp.len = 0;
        h->resp.oom = 0;
        h->retry_after_ms = -1;
        h->curl_err[0] = '\0';

        CURLcode rc = curl_easy_perform(h->curl);
        long code = 0;
        int retry;
        if (rc == CURLE_OK) {
            curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &code);
            if (code >= 200 && code < 300) {
                int64_t rej = 0;
                char msg[sizeof out->message];
                int prc = h->json ? ituna_otlp_decode_partial_success_json(h->resp.data, h->resp.len, &rej,
                                                                           msg, sizeof msg)
                                  : ituna_otlp_decode_partial_success_proto(h->resp.data, h->resp.len, &rej,
                                                                            msg, sizeof msg);
                if (prc == 0) {
                    out->rejected_spans = rej > 0 ? (uint64_t)rej : 0;
                    snprintf(out->message, sizeof out->message, "%s", msg);
                    /* A message without rejected spans is a warning the batch
                     * processor would not log; log it here. */
                    if (!rej && msg[0])
                        ituna_log(ITUNA_LOG_WARN, "OTLP partial success from %s: %s", h->url, msg);
                }
                return ITUNA_OK;
            }
            char ex[208];
            error_excerpt(h, ex, sizeof ex);
            snprintf(out->message, sizeof out->message, "HTTP %ld from %s%s%s", code, h->url,
                     ex[0] ? ": " : "", ex);
            retry = retryable_status(code);
        } else {
            /* libcurl's error buffer says why (e.g. the TLS alert), strerror only what kind */
            snprintf(out->message, sizeof out->message, "%s: %.200s", h->url,
                     h->curl_err[0] ? h->curl_err : curl_easy_strerror(rc));
            retry = retryable_curl(rc) && rc != CURLE_ABORTED_BY_CALLBACK;
        }
        if (!retry) return ITUNA_ERR_EXPORT;

        /* Backoff: Retry-After when the server gave one, else full jitter. */
        int64_t wait_ms;
        if (h->retry_after_ms >= 0 && (code == 429 || code == 503)) {
            wait_ms = h->retry_after_ms;
        } else {
            int sh = attempt < 16 ? attempt : 16;
            int64_t cap = (int64_t)BACKOFF_INITIAL_MS << sh;
            if (cap > BACKOFF_MAX_MS) cap = BACKOFF_MAX_MS;
            wait_ms = (int64_t)(ituna_random_u64() % (uint64_t)(cap + 1));
        }
        now = ituna_now_ns();
        deadline_ns = ituna_export_deadline(e, deadline_ns);
        if (now + (uint64_t)wait_ms * 1000000ull >= deadline_ns) {
            size_t l = strlen(out->message);
            snprintf(out->message + l, sizeof out->message - l,
                     " (gave up after %d retries: next try at %lld ms "
                     "would pass the deadline)",
                     attempt, (long long)wait_ms);
            return code ? ITUNA_ERR_EXPORT : ITUNA_ERR_TIMEOUT;
        }
        sleep_ms(e, wait_ms);
        out->retries++;
    }
}

ituna_err ituna_exporter_otlp_http_create(const ituna_config *cfg, ituna_exporter **out, char *errstr,
                                          size_t errstr_size) {
    if (!out) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_EXPORT, "libcurl init failed: %s",
                             curl_easy_strerror(curl_init_rc));
    ituna_exporter *e = calloc(1, sizeof *e);
    http_state *h = calloc(1, sizeof *h);
    if (!e || !h) {
        free(e);
        free(h);
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
    }
    e->state = h;
    h->self = e;
    e->export_batch = http_export;
    e->destroy = http_destroy;
    ituna_err err = ITUNA_OK;

    h->url = ituna_otlp_http_url(cfg);
    if (!h->url) {
        err = ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (strncmp(h->url, "http://", 7) != 0 && strncmp(h->url, "https://", 8) != 0) {
        err = ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG,
                            "exporter endpoint '%s' must start with http:// or https://", h->url);
        goto fail;
    }
    const char *proto = ituna_config_str(cfg, "exporter", "protocol", "http/protobuf");
    if (strcmp(proto, "http/json") == 0) {
        h->json = 1;
    } else if (strcmp(proto, "http/protobuf") != 0) {
        err = ituna_set_err(
            errstr, errstr_size, strcmp(proto, "grpc") == 0 ? ITUNA_ERR_UNSUPPORTED : ITUNA_ERR_CONFIG,
            "exporter protocol '%s' is not supported (use http/protobuf or http/json)", proto);
        goto fail;
    }
    const char *comp = ituna_config_str(cfg, "exporter", "compression", "none");
    if (strcmp(comp, "gzip") == 0) {
        h->gzip = 1;
    } else if (strcmp(comp, "none") != 0 && comp[0]) {
        err = ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG,
                            "exporter compression '%s' is not supported (use gzip or none)", comp);
        goto fail;
    }
    h->timeout_ms = ituna_config_int(cfg, "exporter", "timeout", 10000);

    hdr_ctx hc = { 0 };
    hc.list = curl_slist_append(NULL, h->json ? "Content-Type: application/json"
                                              : "Content-Type: application/x-protobuf");
    if (hc.list && h->gzip) hc.list = curl_slist_append(hc.list, "Content-Encoding: gzip");
    if (hc.list) hc.list = curl_slist_append(hc.list, "Expect:"); /* no 100-continue round trip */
    if (!hc.list) {
        err = ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
        goto fail;
    }
    const char *hdrs = ituna_config_str(cfg, "exporter", "headers", NULL);
    if (hdrs && *hdrs) {
        char msg[160] = "";
        ituna_err perr = ituna_kvlist_parse(hdrs, add_header, &hc, msg, sizeof msg);
        if (perr != ITUNA_OK || hc.failed) {
            h->headers = hc.list;
            err =
                ituna_set_err(errstr, errstr_size,
                              hc.failed == 2 || perr == ITUNA_ERR_NOMEM ? ITUNA_ERR_NOMEM : ITUNA_ERR_CONFIG,
                              "exporter headers: %s", hc.failed ? hc.msg : msg);
            goto fail;
        }
    }
    h->headers = hc.list;

    h->curl = curl_easy_init();
    if (!h->curl) {
        err = ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "curl_easy_init failed");
        goto fail;
    }
    CURL *c = h->curl;
    curl_easy_setopt(c, CURLOPT_URL, h->url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "ituna-core/" ITUNA_VERSION_STRING);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* we run on a worker thread */
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->curl_err);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, h);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    const char *ca = ituna_config_str(cfg, "exporter", "certificate", NULL);
    const char *key = ituna_config_str(cfg, "exporter", "client-key", NULL);
    const char *cert = ituna_config_str(cfg, "exporter", "client-certificate", NULL);
    if ((key && *key) != (cert && *cert)) {
        err = ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG,
                            "exporter client-key and client-certificate must be set together (mTLS)");
        goto fail;
    }
    const char *files[3] = { ca, key, cert };
    for (int i = 0; i < 3; i++)
        if (files[i] && *files[i]) {
            FILE *f = fopen(files[i], "r");
            if (!f) {
                err = ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG, "exporter %s '%s': %s",
                                    i == 0   ? "certificate"
                                    : i == 1 ? "client-key"
                                             : "client-certificate",
                                    files[i], strerror(errno));
                goto fail;
            }
            fclose(f);
        }
    if (ca && *ca) curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    if (cert && *cert) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, cert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, key);
    }
    *out = e;
    return ITUNA_OK;
fail:
    http_destroy(e);
    return err;
}
