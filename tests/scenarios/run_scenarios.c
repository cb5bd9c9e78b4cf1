/* run_scenarios.c - the consumer-loop scenario table (kafka_scenarios.json) through a
 * C host on the real broker (ITUNA_TEST_KAFKA), with only the public API: the loop is
 * ituna_consumer_run_once(), the handler publishes for the message it is given and
 * learns its own failed publishes from ituna_producer_take_failures(). Outcomes,
 * exported spans (OTLP JSON lines, decoded here) and the committed offset must equal
 * the table. Exit 0 all equal, 1 a difference, 77 no broker (a failure when CI=true). */
#include <cjson/cJSON.h>
#include <ituna/ituna.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *bootstrap;
static char big[1500000]; /* within the producer's message.max.bytes (3000000), beyond the broker's */

typedef struct run {
    cJSON *steps;
    ituna_producer *out;
    ituna_consumer *c;
    const char *out_topic;
    int handled;
    cJSON *seen; /* failed_publishes_seen */
    uint64_t tickets[8];
    int n_tickets;
} run;

static void note_failure(const ituna_delivery_report *r, void *opaque) {
    run *x = opaque;
    for (int i = 0; i < x->n_tickets; i++)
        if (x->tickets[i] == r->ticket)
            cJSON_AddItemToArray(cJSON_GetArrayItem(x->seen, x->handled - 1), cJSON_CreateNumber(i));
}

static ituna_handler_result handler(ituna_message *m, void *opaque, char *reason, size_t reason_size) {
    run *x = opaque;
    int n = cJSON_GetArraySize(x->steps);
    cJSON *step = cJSON_GetArrayItem(x->steps, x->handled < n ? x->handled : n - 1);
    x->handled++;
    x->n_tickets = 0;
    cJSON *pub;
    cJSON_ArrayForEach(pub, cJSON_GetObjectItem(step, "publish")) {
        int too_large = strcmp(pub->valuestring, "too_large") == 0;
        ituna_message_out o = { .topic = x->out_topic,
                                .value = too_large ? big : "{\"order\":1}",
                                .value_len = too_large ? sizeof big : 11,
                                .partition = -1 }; /* owner: the message run_once made current */
        char err[256];
        if (ituna_producer_send(x->out, &o, &x->tickets[x->n_tickets++], err, sizeof err))
            fprintf(stderr, "publish: %s\n", err);
    }
    if (cJSON_IsTrue(cJSON_GetObjectItem(step, "flush"))) {
        cJSON_ReplaceItemInArray(x->seen, x->handled - 1, cJSON_CreateArray());
        ituna_producer_flush(x->out, 30000);
        ituna_producer_take_failures(x->out, m, note_failure, x);
    }
    const char *then = cJSON_GetObjectItem(step, "then")->valuestring;
    if (strcmp(then, "raise") == 0)
        return snprintf(reason, reason_size, "kitchen on fire"), ITUNA_HANDLED_ERROR;
    if (strcmp(then, "malformed") == 0)
        return snprintf(reason, reason_size, "not an order"), ITUNA_HANDLED_MALFORMED;
    if (strcmp(then, "stop") == 0) ituna_consumer_stop(x->c);
    return ITUNA_HANDLED_OK;
}

static ituna_consumer *consumer(ituna_tracer *t, const char *topic, const char *group) {
    const char *topics[] = { topic, NULL };
    ituna_consumer_options co = { .bootstrap = bootstrap, .group = group, .topics = topics };
    ituna_consumer *c = NULL;
    char err[256];
    if (ituna_consumer_create(t, NULL, &co, &c, err, sizeof err)) fprintf(stderr, "consumer: %s\n", err);
    return c;
}

/* Messages of topic read by a new group until idle_ms without one; first: the first value. */
static int count_topic(ituna_tracer *t, const char *topic, int idle_ms, char *first, size_t first_size,
                       const char *group, char *probe_span) {
    char g[64];
    snprintf(g, sizeof g, "g-read-%d", rand());
    ituna_consumer *c = consumer(t, topic, group ? group : g);
    int n = 0, assigned = 0;
    char err[256];
    ituna_consumer_wait_assigned(c, 30000, &assigned, err, sizeof err);
    for (;;) {
        ituna_message *m = NULL;
        if (ituna_consumer_poll(c, n ? idle_ms : idle_ms + 3000, &m, err, sizeof err) || !m)
            break; /* assigned: soon */
        n++;
        if (first) {
            size_t len;
            const char *v = ituna_message_value(m, &len);
            snprintf(first, first_size, "%.*s", (int)len, v ? v : "");
            ituna_span_id_hex(ituna_span_get_context(ituna_message_span(m)), probe_span);
            ituna_message_done(m, ITUNA_HANDLED_ERROR, "probe", err, sizeof err); /* leave it uncommitted */
            break;
        }
        ituna_message_done(m, ITUNA_HANDLED_OK, NULL, err, sizeof err);
    }
    ituna_consumer_destroy(c);
    return n;
}

static const char *attr(cJSON *span, const char *key) {
    cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(span, "attributes")) {
        if (strcmp(cJSON_GetObjectItem(a, "key")->valuestring, key) == 0) {
            cJSON *v = cJSON_GetObjectItem(a, "value")->child;
            return v && cJSON_IsString(v) ? v->valuestring : "";
        }
    }
    return NULL;
}

/* The CONSUMER spans of topic in group, in start order, as the table's attempts. */
static cJSON *attempts(const char *path, const char *topic, const char *group, const char *probe) {
    cJSON *list = cJSON_CreateArray();
    FILE *f = fopen(path, "r");
    char name[300], *line = NULL;
    size_t cap = 0;
    snprintf(name, sizeof name, "process %s", topic);
    while (f && getline(&line, &cap, f) > 0) {
        cJSON *doc = cJSON_Parse(line), *rs, *ss, *sp;
        cJSON_ArrayForEach(rs, cJSON_GetObjectItem(doc, "resourceSpans"))
            cJSON_ArrayForEach(ss, cJSON_GetObjectItem(rs, "scopeSpans"))
                cJSON_ArrayForEach(sp, cJSON_GetObjectItem(ss, "spans")) {
            const char *g = attr(sp, "messaging.consumer.group.name");
            if (strcmp(cJSON_GetObjectItem(sp, "name")->valuestring, name) || !g || strcmp(g, group) ||
                strcmp(cJSON_GetObjectItem(sp, "spanId")->valuestring, probe) == 0)
                continue;
            cJSON *st = cJSON_GetObjectItem(sp, "status"), *a = cJSON_CreateObject();
            cJSON *code = st ? cJSON_GetObjectItem(st, "code") : NULL;
            cJSON_AddStringToObject(a, "start", cJSON_GetObjectItem(sp, "startTimeUnixNano")->valuestring);
            cJSON_AddStringToObject(a, "status", code && code->valueint == 2 ? "error" : "ok");
            const char *et = attr(sp, "error.type");
            cJSON_AddItemToObject(a, "error_type", et ? cJSON_CreateString(et) : cJSON_CreateNull());
            cJSON_AddBoolToObject(a, "dlq", attr(sp, "ituna.dlq.topic") != NULL);
            int at = 0; /* in start order (same-length decimal strings) */
            while (at < cJSON_GetArraySize(list) &&
                   strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(list, at), "start")->valuestring,
                          cJSON_GetObjectItem(a, "start")->valuestring) < 0)
                at++;
            cJSON_InsertItemInArray(list, at, a);
        }
        cJSON_Delete(doc);
    }
    free(line);
    if (f) fclose(f);
    cJSON *a;
    cJSON_ArrayForEach(a, list) cJSON_DeleteItemFromObject(a, "start");
    return list;
}

/* 1 when got matches the table's expectation (error_type null: any). */
static int matches(cJSON *exp, cJSON *got) {
    cJSON *e;
    cJSON_ArrayForEach(e, exp) {
        cJSON *g = cJSON_GetObjectItem(got, e->string);
        if (strcmp(e->string, "attempts") == 0) {
            if (cJSON_GetArraySize(g) != cJSON_GetArraySize(e)) return 0;
            for (int i = 0; i < cJSON_GetArraySize(e); i++) {
                cJSON *ea = cJSON_GetArrayItem(e, i), *ga = cJSON_GetArrayItem(g, i);
                cJSON *et = cJSON_GetObjectItem(ea, "error_type");
                if (!cJSON_Compare(cJSON_GetObjectItem(ea, "status"), cJSON_GetObjectItem(ga, "status"), 1) ||
                    !cJSON_Compare(cJSON_GetObjectItem(ea, "dlq"), cJSON_GetObjectItem(ga, "dlq"), 1) ||
                    (!cJSON_IsNull(et) && !cJSON_Compare(et, cJSON_GetObjectItem(ga, "error_type"), 1)))
                    return 0;
            }
        } else if (!g || !cJSON_Compare(e, g, 1)) {
            return 0;
        }
    }
    return 1;
}

static int run_scenario(cJSON *sc) {
    const char *name = cJSON_GetObjectItem(sc, "name")->valuestring;
    char path[] = "/tmp/ituna-scenario-XXXXXX", topic[128], out_topic[128], dlq[160], group[64], maxr[16];
    close(mkstemp(path));
    int tag = rand();
    snprintf(topic, sizeof topic, "sc-c-%.20s-%d", name, tag);
    snprintf(out_topic, sizeof out_topic, "sc-c-out-%d", tag);
    snprintf(dlq, sizeof dlq, "%s.dlq", topic);
    snprintf(group, sizeof group, "g-sc-c-%d", tag);
    cJSON *mr = cJSON_GetObjectItem(sc, "max_redeliveries");
    snprintf(maxr, sizeof maxr, "%d", mr ? mr->valueint : 9);
    const char *over[] = { "tracer.service-name",
                           "scenarios-c",
                           "exporter.type",
                           "file",
                           "exporter.file",
                           path,
                           "exporter.schedule-delay",
                           "50",
                           "messaging.max-redeliveries",
                           maxr,
                           NULL };
    char err[512];
    ituna_config *cfg = ituna_config_new();
    ituna_tracer *t = NULL;
    if (ituna_config_load(cfg, NULL, 0, over, err, sizeof err) ||
        ituna_tracer_create(cfg, &t, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", name, err);
        return 1;
    }
    ituna_producer_options po = { .bootstrap = bootstrap };
    ituna_producer *in = NULL;
    ituna_producer_create(t, NULL, &po, &in, err, sizeof err);
    cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(sc, "input")) {
        ituna_message_out o = { .topic = topic,
                                .value = v->valuestring,
                                .value_len = strlen(v->valuestring),
                                .partition = 0,
                                .partition_set = 1 };
        ituna_producer_publish(in, &o, err, sizeof err);
    }
    ituna_producer_flush(in, 30000);
    const char *props[] = {
        "message.max.bytes", "3000000", "message.timeout.ms", "10000", "linger.ms", "1", NULL
    };
    ituna_producer_options oo = { .bootstrap = bootstrap, .properties = props, .reports_on_poll = 1 };
    run x = { .steps = cJSON_GetObjectItem(sc, "handler"),
              .out_topic = out_topic,
              .seen = cJSON_CreateArray() };
    ituna_producer_create(t, NULL, &oo, &x.out, err, sizeof err);
    x.c = consumer(t, topic, group);
    cJSON *exp = cJSON_GetObjectItem(sc, "expect");
    int want = cJSON_GetArraySize(cJSON_GetObjectItem(exp, "attempts")), assigned = 0;
    ituna_consumer_wait_assigned(x.c, 30000, &assigned, err, sizeof err);
    time_t end = time(NULL) + 120;
    while (!ituna_consumer_stopped(x.c) && time(NULL) < end) {
        int before = x.handled;
        cJSON_AddItemToArray(x.seen, cJSON_CreateNull());
        if (ituna_consumer_run_once(x.c, 1000, handler, &x, NULL, err, sizeof err))
            fprintf(stderr, "%s\n", err);
        if (x.handled == before) cJSON_DeleteItemFromArray(x.seen, cJSON_GetArraySize(x.seen) - 1);
        cJSON *step = cJSON_GetArrayItem(x.steps, x.handled - 1 < cJSON_GetArraySize(x.steps) - 1
                                                      ? x.handled - 1
                                                      : cJSON_GetArraySize(x.steps) - 1);
        if (x.handled >= want && strcmp(cJSON_GetObjectItem(step, "then")->valuestring, "stop")) break;
    }
    ituna_producer_flush(x.out, 30000);
    ituna_consumer_destroy(x.c);
    ituna_message_out e = {
        .topic = topic, .value = "end", .value_len = 3, .partition = 0, .partition_set = 1
    };
    ituna_producer_publish(in, &e, err, sizeof err);
    ituna_producer_flush(in, 30000);
    char first[64] = "", probe[17] = "";
    count_topic(t, topic, 4000, first, sizeof first, group, probe);
    cJSON *got = cJSON_CreateObject();
    cJSON_AddItemToObject(got, "failed_publishes_seen", x.seen);
    cJSON_AddNumberToObject(got, "handled", x.handled);
    cJSON_AddStringToObject(got, "next_member_first", first);
    cJSON_AddNumberToObject(got, "out", count_topic(t, out_topic, 2000, NULL, 0, NULL, NULL));
    cJSON_AddNumberToObject(got, "dlq", count_topic(t, dlq, 2000, NULL, 0, NULL, NULL));
    ituna_tracer_flush(t, 10000);
    cJSON_AddItemToObject(got, "attempts", attempts(path, topic, group, probe));
    int ok = matches(exp, got);
    char *js = cJSON_PrintUnformatted(got);
    printf("%s %s: %s\n", ok ? "ok  " : "FAIL", name, js);
    free(js);
    cJSON_Delete(got);
    ituna_producer_destroy(x.out, 5000);
    ituna_producer_destroy(in, 5000);
    ituna_tracer_destroy(t);
    ituna_config_destroy(cfg);
    unlink(path);
    return !ok;
}

int main(int argc, char **argv) {
    bootstrap = getenv("ITUNA_TEST_KAFKA");
    if (!bootstrap || !*bootstrap) {
        const char *ci = getenv("CI");
        fprintf(stderr, "SKIP: ITUNA_TEST_KAFKA not set (tools/kafka.sh start)\n");
        return ci && strcmp(ci, "true") == 0 ? 1 : 77;
    }
    FILE *f = argc > 1 ? fopen(argv[1], "r") : NULL;
    if (!f) return fprintf(stderr, "usage: run_scenarios kafka_scenarios.json\n"), 2;
    static char text[65536];
    text[fread(text, 1, sizeof text - 1, f)] = 0;
    fclose(f);
    cJSON *table = cJSON_Parse(text), *sc;
    memset(big, 'x', sizeof big);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    int failed = 0;
    cJSON_ArrayForEach(sc, cJSON_GetObjectItem(table, "scenarios")) {
        if (argc > 2 && strcmp(argv[2], cJSON_GetObjectItem(sc, "name")->valuestring)) continue;
        failed += run_scenario(sc);
    }
    cJSON_Delete(table);
    return failed ? 1 : 0;
}
