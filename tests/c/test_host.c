/* test_host.c - what hosts share through the core (ituna/host.h and the checked JSON
 * writer of ituna/json.h): names, the configuration an init loads, the settings an
 * application's later init may still apply, counters by name, the texts of losses and
 * failed deliveries, wait slices, and JSON written from a host's own values with the
 * path of what failed; the process's stop request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "ituna/ituna.h"
#include "testutil.h"

static int test_names(void) {
    ituna_span_kind k;
    ituna_status_code s;
    ituna_consumer_context_mode m;
    CHECK(ituna_span_kind_from_name("Server", &k) == ITUNA_OK && k == ITUNA_SPAN_KIND_SERVER);
    CHECK(ituna_span_kind_from_name("consumer", &k) == ITUNA_OK && k == ITUNA_SPAN_KIND_CONSUMER);
    CHECK(ituna_span_kind_from_name("sideways", &k) == ITUNA_ERR_NOT_FOUND);
    CHECK(ituna_span_kind_from_name(NULL, &k) == ITUNA_ERR_NOT_FOUND);
    CHECK(ituna_status_code_from_name("ERROR", &s) == ITUNA_OK && s == ITUNA_STATUS_ERROR);
    CHECK(ituna_status_code_from_name("weird", &s) == ITUNA_ERR_NOT_FOUND);
    CHECK(ituna_context_mode_from_name("link", &m) == ITUNA_OK && m == ITUNA_CONTEXT_LINK);
    CHECK(ituna_context_mode_from_name("Parent", &m) == ITUNA_ERR_NOT_FOUND); /* exact, as documented */
    return 0;
}

/* A host that made the tracer before its application's init: what may still pass. */
static int test_host_setting_check(void) {
    char err[512] = "", path[64];
    snprintf(path, sizeof path, "/tmp/ituna-host-check-%d.ini", (int)getpid());
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fclose(f);
    unsetenv("ITUNA_CONFIG_SCHEMA");
    CHECK(ituna_host_setting_check("h", "svc", NULL, NULL, "service_name", "other", err, sizeof err) ==
          ITUNA_OK);
    CHECK(ituna_host_setting_check("h", "svc", path, NULL, "config", path, err, sizeof err) == ITUNA_OK);
    /* the same file by another path is the same file */
    CHECK(ituna_host_setting_check("h", "svc", path, NULL, "config", "/tmp/../tmp/ituna-host-check", err,
                                   sizeof err) == ITUNA_ERR_STATE);
    char other[80];
    snprintf(other, sizeof other, "/tmp/../%s", path + 1);
    CHECK(ituna_host_setting_check("h", "svc", path, NULL, "config", other, err, sizeof err) == ITUNA_OK);
    CHECK(ituna_host_setting_check("h", "svc", NULL, NULL, "config", path, err, sizeof err) ==
          ITUNA_ERR_STATE);
    CHECK(strstr(err, "from no INI file") && strstr(err, "start it with --config /tmp/ituna-host-check"));
    CHECK(ituna_host_setting_check("h", "svc", NULL, NULL, "schema", path, err, sizeof err) ==
          ITUNA_ERR_STATE);
    CHECK(strstr(err, "with no application schema") && strstr(err, "--schema"));
    setenv("ITUNA_CONFIG_SCHEMA", path, 1); /* the host's schema by default */
    CHECK(ituna_host_setting_check("h", "svc", NULL, NULL, "schema", path, err, sizeof err) == ITUNA_OK);
    unsetenv("ITUNA_CONFIG_SCHEMA");
    CHECK(ituna_host_setting_check("h", "svc", path, NULL, "exporter.type", "console", err, sizeof err) ==
          ITUNA_ERR_STATE);
    CHECK(strstr(err, "setting 'exporter.type' cannot take effect: the host (h) set the tracer 'svc' up") &&
          strstr(err, "from --config /tmp/ituna-host-check"));
    remove(path);
    return 0;
}

static int test_config_and_stats(void) {
    char err[256] = "";
    ituna_config *cfg = ituna_config_new();
    REQUIRE(cfg);
    /* a file that cannot be read is the caller's configuration error */
    CHECK(ituna_config_load_host(cfg, NULL, "/nonexistent/ituna.ini", 0, NULL, err, sizeof err) ==
          ITUNA_ERR_CONFIG);
    CHECK(strstr(err, "/nonexistent/ituna.ini") != NULL);
    const char *const over[] = { "kafka.linger.ms", "7", "tracer.service-name", "svc", NULL };
    CHECK(ituna_config_load_host(cfg, NULL, NULL, 0, over, err, sizeof err) == ITUNA_OK);
    size_t it[3] = { 0, 0, 0 };
    const char *sec, *key, *val;
    int known = 0, linger = 0, service = 0;
    while (ituna_config_next_effective(cfg, it, &sec, &key, &val)) {
        known++;
        if (!strcmp(sec, "kafka") && !strcmp(key, "linger.ms")) linger = val && !strcmp(val, "7");
        if (!strcmp(sec, "tracer") && !strcmp(key, "service-name")) service = val && !strcmp(val, "svc");
    }
    CHECK(known > 20 && linger && service);
    ituna_config_destroy(cfg);

    ituna_tracer_stats st;
    memset(&st, 0, sizeof st);
    st.spans_dropped = 3;
    st.links_dropped = 9;
    uint64_t v = 0;
    size_t n = 0;
    const char *name;
    for (; (name = ituna_tracer_stats_field(&st, n, &v)); n++) {
        if (!strcmp(name, "spans_dropped")) CHECK(v == 3);
        if (!strcmp(name, "links_dropped")) CHECK(v == 9);
    }
    CHECK(n == sizeof st / sizeof(uint64_t)); /* every counter has a name */
    char buf[200];
    CHECK_STR(ituna_tracer_describe_loss(NULL, "flush", ITUNA_ERR_TIMEOUT, buf, sizeof buf),
              "flush: timed out");
    return 0;
}

static int test_delivery_and_slices(void) {
    ituna_delivery_report r;
    memset(&r, 0, sizeof r);
    r.topic = "orders";
    r.partition = 2;
    r.err = ITUNA_ERR_KAFKA;
    r.errstr = "Local: Message timed out";
    r.error_name = "_MSG_TIMED_OUT";
    char buf[200];
    CHECK_STR(ituna_delivery_report_describe(&r, buf, sizeof buf),
              "orders [2]: Local: Message timed out (_MSG_TIMED_OUT)");
    CHECK(ituna_deadline_ms(-1) == UINT64_MAX);
    CHECK(ituna_slice_ms(ituna_deadline_ms(-1), 100) == 100);
    CHECK(ituna_slice_ms(ituna_deadline_ms(0), 100) == 0);
    int s = ituna_slice_ms(ituna_deadline_ms(40), 100);
    CHECK(s > 0 && s <= 40);
    return 0;
}

static int test_json_writer(void) {
    ituna_json_writer w;
    memset(&w, 0, sizeof w);
    char err[300];
    size_t len = 0;
    int ok = ituna_json_write_begin(&w, 0) && ituna_json_write_key(&w, "a", 1) &&
             ituna_json_write_begin(&w, 1) && ituna_json_write_int(&w, 1) &&
             ituna_json_write_double(&w, 2.5) && ituna_json_write_begin(&w, 0) &&
             ituna_json_write_end(&w, 0) && ituna_json_write_null(&w) && ituna_json_write_end(&w, 1) &&
             ituna_json_write_key(&w, "b", 1) && ituna_json_write_bool(&w, 1) &&
             ituna_json_write_key(&w, "c", 1) && ituna_json_write_string(&w, "x\"", 2) &&
             ituna_json_write_end(&w, 0);
    char *text = ituna_json_write_finish(&w, ok, &len, err, sizeof err);
    REQUIRE(text);
    CHECK_STR(text, "{\"a\":[1,2.5,{},null],\"b\":true,\"c\":\"x\\\"\"}");
    CHECK(len == strlen(text));
    free(text);

    /* the path of what failed, built on the way out */
    memset(&w, 0, sizeof w);
    ok = ituna_json_write_begin(&w, 0) && ituna_json_write_key(&w, "list", 4) &&
         ituna_json_write_begin(&w, 1) && ituna_json_write_string(&w, "ok", 2) &&
         ituna_json_write_string(&w, "a\0b", 3);
    CHECK(!ok);
    ituna_json_failed_at_index(&w, 2);
    ituna_json_failed_at_key(&w, "list");
    CHECK(ituna_json_write_finish(&w, 0, &len, err, sizeof err) == NULL);
    CHECK_STR(err, "cannot encode value.list[2]: string contains a NUL byte");

    memset(&w, 0, sizeof w);
    CHECK(!ituna_json_write_double(&w, 1.0 / 0.0));
    ituna_json_write_finish(&w, 0, &len, err, sizeof err);
    CHECK(strstr(err, "not a JSON number") != NULL);

    memset(&w, 0, sizeof w);
    int depth = 0;
    while (ituna_json_write_begin(&w, 1)) depth++;
    CHECK(depth == ITUNA_JSON_MAX_DEPTH);
    ituna_json_write_finish(&w, 0, &len, err, sizeof err);
    CHECK(strstr(err, "nested deeper than 64") != NULL);
    return 0;
}

/* Last: the stop request cannot be taken back in this process. */
static int test_stop_request(void) {
    CHECK(!ituna_stop_requested());
    CHECK(ituna_sleep(5) == 1);
    ituna_stop_request();
    CHECK(ituna_stop_requested());
    uint64_t t0 = ituna_now_ns();
    CHECK(ituna_sleep(60000) == 0); /* cut short at once */
    CHECK(ituna_now_ns() - t0 < 30000000000ull);
    return 0;
}

int main(void) {
    RUN(test_names);
    RUN(test_host_setting_check);
    RUN(test_config_and_stats);
    RUN(test_delivery_and_slices);
    RUN(test_json_writer);
    RUN(test_stop_request);
    TEST_MAIN_END();
}
