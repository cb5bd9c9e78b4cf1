/* itest_kafka_tool.c - one process of a Kafka integration scenario, driven by
 * tests/integration/test_kafka_real.py against a real broker. Spans go to an
 * OTLP JSON-lines file (--traces) that the driver reads back.
 *
 *   produce     --bootstrap B --topic T [--count N] [--key K] [--value V] [--header k=v]...
 *               [--payload-carrier] [--prop k=v]...     prints "produced <p> <offset> <trace> <span> <key>"
 *   raw-produce --bootstrap B --topic T --value V [--header k=v]...   plain librdkafka, no ituna
 *   consume     --bootstrap B --topic T --group G [--count N] [--idle-exit-ms MS] [--malformed-if S]
 *               [--error-if S] [--die-after-poll] [--link] [--prop k=v]...
 *               prints "consumed <topic> <p> <offset> <key> <trace> <span> <value>" and "header <k> <v>"
 *   unreachable [--bootstrap 127.0.0.1:1]  prints the error and the time it took
 * Common: --service NAME, --traces FILE. */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ituna/ituna.h"

#define MAXH 16
#define MAXP 32

typedef struct args {
    const char *cmd, *bootstrap, *topic, *group, *key, *value, *service, *traces, *malformed_if, *error_if;
    int count, idle_exit_ms, payload_carrier, die_after_poll, link;
    const char *hk[MAXH], *hv[MAXH];
    int nh;
    const char *props[MAXP * 2 + 1];
    int np;
} args;

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int split_kv(char *s, const char **k, const char **v) {
    char *eq = strchr(s, '=');
    if (!eq) return 0;
    *eq = 0;
    *k = s;
    *v = eq + 1;
    return 1;
}

static int parse(int argc, char **argv, args *a) {
    memset(a, 0, sizeof *a);
    a->count = 1;
    a->service = "itest";
    if (argc < 2) return 0;
    a->cmd = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name, field)                                                                                     \
    if (strcmp(o, name) == 0 && next) {                                                                      \
        a->field = next;                                                                                     \
        i++;                                                                                                 \
        continue;                                                                                            \
    }
        /* clang-format off: a chain of statement macros it does not format the same twice */
        OPT("--bootstrap", bootstrap)
        OPT("--topic", topic)
        OPT("--group", group)
        OPT("--key", key)
        OPT("--value", value)
        OPT("--service", service)
        OPT("--traces", traces)
        OPT("--malformed-if", malformed_if)
        OPT("--error-if", error_if)
        /* clang-format on */
        if (strcmp(o, "--count") == 0 && next) {
            a->count = atoi(argv[++i]);
            continue;
        }
        if (strcmp(o, "--idle-exit-ms") == 0 && next) {
            a->idle_exit_ms = atoi(argv[++i]);
            continue;
        }
        if (strcmp(o, "--payload-carrier") == 0) {
            a->payload_carrier = 1;
            continue;
        }
        if (strcmp(o, "--die-after-poll") == 0) {
            a->die_after_poll = 1;
            continue;
        }
        if (strcmp(o, "--link") == 0) {
            a->link = 1;
            continue;
        }
        if (strcmp(o, "--header") == 0 && next && a->nh < MAXH) {
            if (!split_kv(argv[++i], &a->hk[a->nh], &a->hv[a->nh])) return 0;
            a->nh++;
            continue;
        }
        if (strcmp(o, "--prop") == 0 && next && a->np < MAXP) {
            if (!split_kv(argv[++i], &a->props[2 * a->np], &a->props[2 * a->np + 1])) return 0;
            a->np++;
            continue;
        }
        fprintf(stderr, "unknown option %s\n", o);
        return 0;
    }
    return 1;
}

static ituna_tracer *make_tracer(const args *a) {
    ituna_config *cfg = ituna_config_new();
    char err[512];
    ituna_tracer *t = NULL;
    if (ituna_config_set(cfg, "tracer.service-name", a->service, err, sizeof err) ||
        ituna_config_set(cfg, "exporter.schedule-delay", "100", err, sizeof err) ||
        (a->traces && (ituna_config_set(cfg, "exporter.type", "file", err, sizeof err) ||
                       ituna_config_set(cfg, "exporter.file", a->traces, err, sizeof err))) ||
        (!a->traces && ituna_config_set(cfg, "exporter.type", "none", err, sizeof err)) ||
        ituna_tracer_create(cfg, &t, err, sizeof err)) {
        fprintf(stderr, "tracer: %s\n", err);
        t = NULL;
    }
    ituna_config_destroy(cfg);
    return t;
}

static void print_hex(const ituna_span_context *c, char tid[33], char sid[17]) {
    ituna_trace_id_hex(c, tid);
    ituna_span_id_hex(c, sid);
}

static void on_delivery(const ituna_delivery_report *r, void *opaque) {
    (void)opaque;
    char tid[33], sid[17];
    print_hex(&r->span, tid, sid);
    if (r->err)
        printf("failed %s %s %s\n", r->error_name, tid, sid);
    else
        printf("produced %d %lld %s %s %s\n", (int)r->partition, (long long)r->offset, tid, sid,
               r->msg_opaque ? (const char *)r->msg_opaque : "-");
    fflush(stdout);
}

static int cmd_produce(const args *a) {
    ituna_tracer *t = make_tracer(a);
    if (!t) return 2;
    ituna_producer_options po = { .bootstrap = a->bootstrap,
                                  .properties = a->props,
                                  .on_delivery = on_delivery,
                                  .payload_carrier = a->payload_carrier };
    ituna_producer *p = NULL;
    char err[512];
    if (ituna_producer_create(t, NULL, &po, &p, err, sizeof err)) {
        fprintf(stderr, "producer: %s\n", err);
        return 2;
    }
    ituna_header h[MAXH];
    for (int i = 0; i < a->nh; i++) h[i] = (ituna_header){ a->hk[i], a->hv[i], strlen(a->hv[i]) };
    char **keys = calloc((size_t)a->count, sizeof *keys);
    int rc = 0;
    for (int i = 0; i < a->count; i++) {
        char key[128], value[512];
        snprintf(key, sizeof key, "%s-%d", a->key ? a->key : "k", i);
        snprintf(value, sizeof value, "%s", a->value ? a->value : "{\"n\": 0}");
        keys[i] = strdup(key);
        ituna_message_out mo = { .topic = a->topic,
                                 .key = key,
                                 .key_len = strlen(key),
                                 .value = value,
                                 .value_len = strlen(value),
                                 .headers = h,
                                 .n_headers = (size_t)a->nh,
                                 .partition = -1,
                                 .opaque = keys[i] };
        if (ituna_producer_publish(p, &mo, err, sizeof err)) {
            fprintf(stderr, "publish: %s\n", err);
            rc = 1;
            break;
        }
    }
    if (ituna_producer_flush(p, 30000)) rc = 1;
    if (ituna_producer_failures(p)) rc = 1;
    ituna_producer_destroy(p, 5000);
    for (int i = 0; i < a->count; i++) free(keys[i]);
    free(keys);
    ituna_tracer_shutdown(t, 10000);
    ituna_tracer_destroy(t);
    return rc;
}

static int cmd_raw_produce(const args *a) {
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", a->bootstrap, err, sizeof err)) return 2;
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) return 2;
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    for (int i = 0; i < a->nh; i++) rd_kafka_header_add(h, a->hk[i], -1, a->hv[i], -1);
    const char *v = a->value ? a->value : "";
    rd_kafka_resp_err_t e =
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(a->topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_VALUE((void *)v, strlen(v)), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    if (e) rd_kafka_headers_destroy(h);
    int rc = e ? 1 : rd_kafka_flush(rk, 15000) ? 1 : 0;
    rd_kafka_destroy(rk);
    return rc;
}

static int cmd_consume(const args *a) {
    ituna_tracer *t = make_tracer(a);
    if (!t) return 2;
    const char *topics[] = { a->topic, NULL };
    ituna_consumer_options co = { .bootstrap = a->bootstrap,
                                  .group = a->group,
                                  .topics = topics,
                                  .properties = a->props,
                                  .context_mode = a->link ? ITUNA_CONTEXT_LINK : ITUNA_CONTEXT_PARENT };
    ituna_consumer *c = NULL;
    char err[512];
    if (ituna_consumer_create(t, NULL, &co, &c, err, sizeof err)) {
        fprintf(stderr, "consumer: %s\n", err);
        return 2;
    }
    printf("ready\n");
    fflush(stdout);
    int got = 0, rc = 0, shown = 0;
    int64_t last = mono_ms();
    while (a->count <= 0 || got < a->count) {
        ituna_message *m = NULL;
        if (ituna_consumer_poll(c, 200, &m, err, sizeof err)) {
            fprintf(stderr, "poll: %s\n", err);
            rc = 1;
            break;
        }
        int n = ituna_consumer_assignment_count(c);
        if (n != shown) { /* a test waits for a group to settle on this, not on a sleep */
            printf("assigned %d\n", n);
            fflush(stdout);
            shown = n;
        }
        if (!m) {
            if (a->idle_exit_ms > 0 && mono_ms() - last > a->idle_exit_ms) break;
            continue;
        }
        last = mono_ms();
        size_t kl = 0, vl = 0;
        const char *k = ituna_message_key(m, &kl);
        const char *v = ituna_message_value(m, &vl);
        char tid[33], sid[17];
        print_hex(ituna_span_get_context(ituna_message_span(m)), tid, sid);
        printf("consumed %s %d %lld %.*s %s %s %.*s\n", ituna_message_topic(m),
               (int)ituna_message_partition(m), (long long)ituna_message_offset(m), k ? (int)kl : 1,
               k ? k : "-", tid, sid, (int)vl, v ? v : "");
        for (size_t i = 0; i < ituna_message_header_count(m); i++) {
            const char *hk;
            const void *hv;
            size_t hn;
            if (ituna_message_header(m, i, &hk, &hv, &hn))
                printf("header %s %.*s\n", hk, (int)hn, hv ? (const char *)hv : "");
        }
        fflush(stdout);
        if (a->die_after_poll) _exit(3); /* a crash before the handler finished */
        ituna_handler_result r = ITUNA_HANDLED_OK;
        const char *reason = NULL;
        if (a->malformed_if && v && memmem(v, vl, a->malformed_if, strlen(a->malformed_if))) {
            r = ITUNA_HANDLED_MALFORMED;
            reason = "payload is not valid JSON";
        } else if (a->error_if && v && memmem(v, vl, a->error_if, strlen(a->error_if))) {
            r = ITUNA_HANDLED_ERROR;
            reason = "handler failed";
        }
        if (ituna_message_done(m, r, reason, err, sizeof err)) {
            fprintf(stderr, "done: %s\n", err);
            rc = 1;
        }
        got++;
    }
    ituna_consumer_close(c);
    ituna_consumer_destroy(c);
    ituna_tracer_shutdown(t, 10000); /* flushing spans is the caller's job after close */
    ituna_tracer_destroy(t);
    printf("done %d\n", got);
    return rc;
}

static int cmd_unreachable(const args *a) {
    ituna_tracer *t = make_tracer(a);
    if (!t) return 2;
    const char *bs = a->bootstrap ? a->bootstrap : "127.0.0.1:1";
    const char *topics[] = { "itest-unreachable", NULL };
    ituna_consumer_options co = { .bootstrap = bs, .group = "itest-unreachable", .topics = topics };
    ituna_consumer *c = NULL;
    char err[512];
    if (ituna_consumer_create(t, NULL, &co, &c, err, sizeof err)) {
        fprintf(stderr, "consumer: %s\n", err);
        return 2;
    }
    int64_t t0 = mono_ms();
    ituna_err e = ITUNA_OK;
    while (!e && mono_ms() - t0 < 60000) {
        ituna_message *m = NULL;
        e = ituna_consumer_poll(c, 1000, &m, err, sizeof err);
        if (m) ituna_message_done(m, ITUNA_HANDLED_OK, NULL, NULL, 0);
    }
    printf("consumer %s %lld %s\n", ituna_err2name(e), (long long)(mono_ms() - t0), e ? err : "");
    ituna_consumer_destroy(c);

    const char *props[] = { "message.timeout.ms", "3000", NULL };
    ituna_producer_options po = { .bootstrap = bs, .properties = props, .on_delivery = on_delivery };
    ituna_producer *p = NULL;
    if (ituna_producer_create(t, NULL, &po, &p, err, sizeof err)) return 2;
    ituna_message_out mo = { .topic = "itest-unreachable", .value = "x", .value_len = 1, .partition = -1 };
    t0 = mono_ms();
    ituna_producer_publish(p, &mo, err, sizeof err);
    ituna_err fe = ituna_producer_flush(p, 20000);
    printf("producer flush=%s failures=%llu %lld\n", ituna_err2name(fe),
           (unsigned long long)ituna_producer_failures(p), (long long)(mono_ms() - t0));
    ituna_producer_destroy(p, 1000);
    ituna_tracer_shutdown(t, 5000);
    ituna_tracer_destroy(t);
    return e == ITUNA_ERR_TIMEOUT ? 0 : 1;
}

int main(int argc, char **argv) {
    args a;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!parse(argc, argv, &a)) {
        fprintf(stderr, "usage: itest_kafka_tool produce|raw-produce|consume|unreachable [options]\n");
        return 2;
    }
    if (strcmp(a.cmd, "unreachable") == 0) return cmd_unreachable(&a);
    if (!a.bootstrap || !a.topic) {
        fprintf(stderr, "--bootstrap and --topic are required\n");
        return 2;
    }
    if (strcmp(a.cmd, "produce") == 0) return cmd_produce(&a);
    if (strcmp(a.cmd, "raw-produce") == 0) return cmd_raw_produce(&a);
    if (strcmp(a.cmd, "consume") == 0) {
        if (!a.group) {
            fprintf(stderr, "--group is required\n");
            return 2;
        }
        return cmd_consume(&a);
    }
    fprintf(stderr, "unknown command %s\n", a.cmd);
    return 2;
}
