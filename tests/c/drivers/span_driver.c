/* span_driver.c - a small program the Python export tests run as a subprocess:
 * it builds a tracer from the environment plus "section.key=value" arguments
 * (through the public config API), makes spans through the public span API,
 * flushes / shuts down, and prints the tracer's counters and timings as one JSON
 * object on stdout.
 *
 * usage: span_driver [options] [section.key=value ...]
 *   -config PATH    load this INI file first (then the environment, then the arguments)
 *   -n N            typical spans to make (name "work-<i>", 2 attributes), default 10
 *   -rich           also make one CONSUMER span with a remote parent, every attribute
 *                   type, 3 events (one an exception), 3 links, error status, and an
 *                   INTERNAL child span; their ids are printed
 *   -extra-attrs K  K more int attributes "extra.<i>" on the rich span (limit tests)
 *   -flush-ms MS    call ituna_tracer_flush(MS) before shutdown (default: no flush)
 *   -shutdown-ms MS shutdown timeout (default 10000)
 *   -sleep-ms MS    sleep before shutdown (lets the schedule delay fire)
 * Exit status: 0 ok, 2 bad arguments or tracer creation failed (message on stderr). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../clock_util.h"
#include "ituna/ituna.h"

static void hex(const uint8_t *p, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", p[i]);
}

static void sleep_ms(long ms) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static int fail(const char *what, ituna_err err, const char *msg) {
    fprintf(stderr, "span_driver: %s: %s (%s)\n", what, msg && *msg ? msg : ituna_err2str(err),
            ituna_err2name(err));
    return 2;
}

int main(int argc, char **argv) {
    long n = 10, flush_ms = -1, shutdown_ms = 10000, sleep_before = 0, extra_attrs = 0;
    int rich = 0;
    char err[512] = "";
    ituna_config *cfg = ituna_config_new();
    if (!cfg) return fail("config", ITUNA_ERR_NOMEM, NULL);
    ituna_err e;
    for (int i = 1; i + 1 < argc; i++) /* the file first: the environment wins over it */
        if (strcmp(argv[i], "-config") == 0 &&
            (e = ituna_config_load_file(cfg, argv[i + 1], err, sizeof err)))
            return fail("config file", e, err);
    e = ituna_config_load_env(cfg, err, sizeof err);
    if (e != ITUNA_OK) return fail("environment", e, err);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-config") == 0 && i + 1 < argc)
            i++;
        else if (strcmp(a, "-n") == 0 && i + 1 < argc)
            n = atol(argv[++i]);
        else if (strcmp(a, "-rich") == 0)
            rich = 1;
        else if (strcmp(a, "-extra-attrs") == 0 && i + 1 < argc)
            extra_attrs = atol(argv[++i]);
        else if (strcmp(a, "-flush-ms") == 0 && i + 1 < argc)
            flush_ms = atol(argv[++i]);
        else if (strcmp(a, "-shutdown-ms") == 0 && i + 1 < argc)
            shutdown_ms = atol(argv[++i]);
        else if (strcmp(a, "-sleep-ms") == 0 && i + 1 < argc)
            sleep_before = atol(argv[++i]);
        else if (a[0] != '-' && strchr(a, '=')) {
            char key[256];
            const char *eq = strchr(a, '=');
            snprintf(key, sizeof key, "%.*s", (int)(eq - a), a);
            e = ituna_config_set(cfg, key, eq + 1, err, sizeof err);
            if (e != ITUNA_OK) return fail(key, e, err);
        } else {
            fprintf(stderr, "span_driver: unknown argument '%s'\n", a);
            return 2;
        }
    }
    ituna_tracer *t = NULL;
    e = ituna_tracer_create(cfg, &t, err, sizeof err);
    ituna_config_destroy(cfg);
    if (e != ITUNA_OK) return fail("tracer", e, err);

    char rich_trace[33] = "", rich_span[17] = "", child_span[17] = "";
    if (rich) {
        ituna_span_context parent;
        memset(&parent, 0, sizeof parent);
        for (int i = 0; i < 16; i++) parent.trace_id[i] = (uint8_t)(0x40 + i);
        for (int i = 0; i < 8; i++) parent.span_id[i] = (uint8_t)(0x70 + i);
        parent.trace_flags = 1;
        parent.is_remote = 1;
        strcpy(parent.tracestate, "vendor=a1,other=b2");
        parent.tracestate_len = (uint16_t)strlen(parent.tracestate);
        ituna_span_context l1;
        memset(&l1, 0, sizeof l1);
        for (int i = 0; i < 16; i++) l1.trace_id[i] = (uint8_t)(0xe0 + i);
        for (int i = 0; i < 8; i++) l1.span_id[i] = (uint8_t)(0x30 + i);
        l1.trace_flags = 1;
        l1.is_remote = 1;
        strcpy(l1.tracestate, "k=v");
        l1.tracestate_len = 3;

        static const char *const sarr[] = { "a", "", "c\"q" };
        static const int64_t iarr[] = { 1, -2, INT64_MAX };
        static const double darr[] = { 0.5, -1e300, 3.0 };
        static const int barr[] = { 1, 0 };
        ituna_attr attrs[8];
        attrs[0] = ituna_attr_str("messaging.system", "kafka");
        attrs[1] = ituna_attr_int("messaging.kafka.offset", 42);
        attrs[2] = ituna_attr_double("ratio", 0.1);
        attrs[3] = ituna_attr_bool("ok", 1);
        attrs[4] = (ituna_attr){ .key = "sarr", .type = ITUNA_ATTR_STRING_ARRAY };
        attrs[4].v.sarr.items = sarr;
        attrs[4].v.sarr.count = 3;
        attrs[5] = (ituna_attr){ .key = "iarr", .type = ITUNA_ATTR_INT_ARRAY };
        attrs[5].v.iarr.items = iarr;
        attrs[5].v.iarr.count = 3;
        attrs[6] = (ituna_attr){ .key = "darr", .type = ITUNA_ATTR_DOUBLE_ARRAY };
        attrs[6].v.darr.items = darr;
        attrs[6].v.darr.count = 3;
        attrs[7] = (ituna_attr){ .key = "barr", .type = ITUNA_ATTR_BOOL_ARRAY };
        attrs[7].v.barr.items = barr;
        attrs[7].v.barr.count = 2;

        ituna_span_options o = { .kind = ITUNA_SPAN_KIND_CONSUMER,
                                 .parent = &parent,
                                 .attrs = attrs,
                                 .n_attrs = 8,
                                 .links = &l1,
                                 .n_links = 1,
                                 .start_time_ns = 1700000000123456789ull };
        ituna_span *s = NULL;
        e = ituna_span_start(t, "process ituna-orders", &o, &s);
        if (e != ITUNA_OK) return fail("span_start", e, NULL);
        ituna_span_set_str(s, "name with \"quotes\"", "line1\nline2\ttab \x01 caf\xc3\xa9");
        ituna_span_set_int(s, "neg", INT64_MIN);
        for (long i = 0; i < extra_attrs; i++) {
            char k[32];
            snprintf(k, sizeof k, "extra.%ld", i);
            ituna_span_set_int(s, k, i);
        }
        ituna_attr eva[2] = { ituna_attr_str("stage", "validate"), ituna_attr_int("zero", 0) };
        ituna_span_add_event(s, "checkpoint", eva, 2, 1700000000200000000ull);
        ituna_span_record_exception(s, "ValueError", "bad \"order\"", "trace line 1\ntrace line 2");
        ituna_span_add_event(s, "third", NULL, 0, 1700000000300000000ull);
        ituna_span_context l2 = l1, l3 = l1;
        l2.span_id[7] ^= 0xff;
        l2.tracestate_len = 0;
        l2.tracestate[0] = '\0';
        l2.is_remote = 0;
        l3.span_id[6] ^= 0xff;
        ituna_attr la = ituna_attr_str("link.kind", "retry");
        ituna_span_add_link(s, &l2, &la, 1);
        ituna_span_add_link(s, &l3, NULL, 0);
        ituna_span_set_status(s, ITUNA_STATUS_ERROR, "boom: \"bad\" order");
        hex(ituna_span_get_context(s)->trace_id, 16, rich_trace);
        hex(ituna_span_get_context(s)->span_id, 8, rich_span);

        int tok;
        ituna_context_attach(ituna_span_get_context(s), &tok);
        ituna_span *c = NULL;
        ituna_span_options co = { .kind = ITUNA_SPAN_KIND_INTERNAL };
        ituna_span_start(t, "address_validation", &co, &c);
        hex(ituna_span_get_context(c)->span_id, 8, child_span);
        ituna_span_set_status(c, ITUNA_STATUS_OK, NULL);
        ituna_span_end(c, 0);
        ituna_context_detach(tok);
        ituna_span_end(s, 1700000000987654321ull);
    }

    uint64_t *end_ns = n > 0 ? malloc(sizeof *end_ns * (size_t)n) : NULL;
    uint64_t t0 = mono_ns();
    for (long i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "work-%ld", i);
        ituna_attr a[2] = { ituna_attr_str("order.id", "1b4e28ba-2fa1-11d2-883f-0016d3cca427"),
                            ituna_attr_int("i", i) };
        ituna_span_options o = { .attrs = a, .n_attrs = 2, .root = 1 };
        ituna_span *s = NULL;
        if (ituna_span_start(t, name, &o, &s) != ITUNA_OK) return fail("span_start", ITUNA_ERR_STATE, NULL);
        uint64_t a0 = mono_ns();
        ituna_span_end(s, 0);
        end_ns[i] = mono_ns() - a0;
    }
    uint64_t loop_ns = mono_ns() - t0;

    if (sleep_before > 0) sleep_ms(sleep_before);
    ituna_err flush_rc = ITUNA_OK;
    uint64_t f0 = mono_ns();
    if (flush_ms >= 0) flush_rc = ituna_tracer_flush(t, (int)flush_ms);
    uint64_t flush_took = mono_ns() - f0;
    uint64_t s0 = mono_ns();
    ituna_err shut_rc = ituna_tracer_shutdown(t, (int)shutdown_ms);
    uint64_t shut_took = mono_ns() - s0;
    ituna_tracer_stats st;
    ituna_tracer_get_stats(t, &st);

    uint64_t med = 0, p99 = 0, mx = 0;
    if (n > 0) {
        qsort(end_ns, (size_t)n, sizeof *end_ns, cmp_u64);
        med = end_ns[n / 2];
        p99 = end_ns[(size_t)((double)n * 0.99)];
        mx = end_ns[n - 1];
    }
    printf("{\"spans_started\":%llu,\"spans_not_sampled\":%llu,\"spans_ended\":%llu,\"spans_enqueued\":%llu,"
           "\"spans_dropped\":%llu,\"spans_exported\":%llu,\"spans_export_failed\":%llu,\"export_requests\":%"
           "llu,"
           "\"export_retries\":%llu,\"export_partial_rejected\":%llu,\"attributes_dropped\":%llu,"
           "\"events_dropped\":%llu,\"links_dropped\":%llu,",
           (unsigned long long)st.spans_started, (unsigned long long)st.spans_not_sampled,
           (unsigned long long)st.spans_ended, (unsigned long long)st.spans_enqueued,
           (unsigned long long)st.spans_dropped, (unsigned long long)st.spans_exported,
           (unsigned long long)st.spans_export_failed, (unsigned long long)st.export_requests,
           (unsigned long long)st.export_retries, (unsigned long long)st.export_partial_rejected,
           (unsigned long long)st.attributes_dropped, (unsigned long long)st.events_dropped,
           (unsigned long long)st.links_dropped);
    printf(
        "\"end_ns_median\":%llu,\"end_ns_p99\":%llu,\"end_ns_max\":%llu,\"loop_ns\":%llu,\"flush_rc\":\"%s\","
        "\"flush_ms\":%.3f,\"shutdown_rc\":\"%s\",\"shutdown_ms\":%.3f,\"service\":\"%s\","
        "\"rich_trace_id\":\"%s\",\"rich_span_id\":\"%s\",\"child_span_id\":\"%s\"}\n",
        (unsigned long long)med, (unsigned long long)p99, (unsigned long long)mx, (unsigned long long)loop_ns,
        ituna_err2name(flush_rc), flush_took / 1e6, ituna_err2name(shut_rc), shut_took / 1e6,
        ituna_tracer_service_name(t), rich_trace, rich_span, child_span);
    fflush(stdout);
    free(end_ns);
    ituna_tracer_destroy(t);
    return 0;
}
