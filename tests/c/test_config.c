/* test_config.c - configuration: INI syntax, schema types, error messages naming
 * file/line/key, precedence (file < env < API), bootstrap resolution, the seed's
 * file and the restaurant's file, transactional loads, application schemas (the
 * restaurant's sections are registered from scripts/restaurant-schema.ini, not known
 * to the core). */
#include <libgen.h>
#include <unistd.h>
#include <stdlib.h>

#include "config_schema.h"
#include "internal.h"
#include "testutil.h"

static char errbuf[1024];

/* Path of a file relative to the repository root, found from this source file. */
static const char *repo_path(const char *rel) {
    static char out[4096];
    char here[4096];
    snprintf(here, sizeof here, "%s", __FILE__);
    char *dir = dirname(here); /* .../tests/c */
    snprintf(out, sizeof out, "%s/../../%s", dir, rel);
    return out;
}

/* Remove every variable the schema reads, so the tests see a known environment. */
/* Captures the core's log lines while a check runs. */
static char logbuf[4096];
static void log_capture(ituna_log_level level, const char *msg, void *opaque) {
    (void)level;
    (void)opaque;
    size_t n = strlen(logbuf);
    snprintf(logbuf + n, sizeof logbuf - n, "%s\n", msg);
}
static void logs_start(void) {
    logbuf[0] = '\0';
    ituna_log_set_handler(log_capture, NULL);
}
static void logs_stop(void) {
    ituna_log_set_handler(NULL, NULL);
}

static void clear_env(void) {
    size_t n;
    const ituna_cfg_key *k = ituna_cfg_schema(&n);
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < 2; j++)
            if (k[i].env[j]) unsetenv(k[i].env[j]);
}

/* A config that knows the restaurant's sections, as its services and launcher make it. */
static ituna_config *restaurant_config(void) {
    ituna_config *c = ituna_config_new();
    if (!c) return NULL;
    if (ituna_config_add_schema_file(c, repo_path("scripts/restaurant-schema.ini"), errbuf, sizeof errbuf) !=
        ITUNA_OK) {
        fprintf(stderr, "  restaurant schema: %s\n", errbuf);
        ituna_config_destroy(c);
        return NULL;
    }
    return c;
}

static int set_ok(ituna_config *c, const char *key, const char *val) {
    errbuf[0] = '\0';
    ituna_err rc = ituna_config_set(c, key, val, errbuf, sizeof errbuf);
    if (rc != ITUNA_OK) fprintf(stderr, "  set %s=%s failed: %s\n", key, val, errbuf);
    return rc == ITUNA_OK;
}

static int set_fails(ituna_config *c, const char *key, const char *val, const char *needle) {
    errbuf[0] = '\0';
    ituna_err rc = ituna_config_set(c, key, val, errbuf, sizeof errbuf);
    if (rc == ITUNA_OK) {
        fprintf(stderr, "  set %s=%s unexpectedly accepted\n", key, val);
        return 0;
    }
    if (needle && !strstr(errbuf, needle)) {
        fprintf(stderr, "  set %s=%s: message '%s' lacks '%s'\n", key, val, errbuf, needle);
        return 0;
    }
    return 1;
}

static int test_every_type_accepts_valid_and_rejects_invalid(void) {
    ituna_config *c = restaurant_config();
    REQUIRE(c);
    /* int with range */
    CHECK(set_ok(c, "queue.port", "1"));
    CHECK(set_ok(c, "queue.port", "65535"));
    CHECK(set_fails(c, "queue.port", "0", "from 1 to 65535"));
    CHECK(set_fails(c, "queue.port", "65536", "got '65536'"));
    CHECK(set_fails(c, "queue.port", "12x", "got '12x'"));
    CHECK(set_ok(c, "exporter.max-queue-size", "10"));
    CHECK(set_fails(c, "exporter.max-queue-size", "0", "positive integer"));
    CHECK(set_fails(c, "exporter.max-queue-size", "99999999999999999999999", "positive integer"));
    /* ms */
    CHECK(set_ok(c, "timeout", "0"));
    CHECK(set_fails(c, "timeout", "-1", "non-negative"));
    CHECK(set_fails(c, "timeout", "1.5", "milliseconds"));
    /* delay: ms or LO-HI */
    CHECK(set_ok(c, "simulated-delays.kitchen-service", "140"));
    CHECK(set_ok(c, "simulated-delays.kitchen-service", "2000-4000"));
    CHECK(set_fails(c, "simulated-delays.kitchen-service", "4000-2000", "range"));
    CHECK(set_fails(c, "simulated-delays.kitchen-service", "-5", "range"));
    CHECK(set_fails(c, "simulated-delays.kitchen-service", "fast", "got 'fast'"));
    /* float with range */
    CHECK(set_ok(c, "sampler_arg", "0.25"));
    CHECK(set_ok(c, "sampler-arg", "1"));
    CHECK(set_fails(c, "sampler-arg", "1.5", "from 0 to 1"));
    CHECK(set_fails(c, "sampler-arg", "nan", "got 'nan'"));
    CHECK(set_ok(c, "rates.website-ordering", "12.5"));
    CHECK(set_fails(c, "rates.website-ordering", "-1", ">= 0"));
    /* bool */
    const char *truthy[] = { "true", "1", "yes", "on", "TRUE", "On" };
    const char *falsy[] = { "false", "0", "no", "off", "False" };
    for (size_t i = 0; i < sizeof truthy / sizeof *truthy; i++) {
        CHECK(set_ok(c, "compat.payload-carrier", truthy[i]));
        CHECK(ituna_config_bool(c, "compat", "payload-carrier", 0) == 1);
    }
    for (size_t i = 0; i < sizeof falsy / sizeof *falsy; i++) {
        CHECK(set_ok(c, "payload_carrier", falsy[i]));
        CHECK(ituna_config_bool(c, "compat", "payload-carrier", 1) == 0);
    }
    CHECK(set_fails(c, "disabled", "maybe", "true or false"));
    /* enum */
    CHECK(set_ok(c, "sampler", "parentbased_traceidratio"));
    CHECK(set_fails(c, "sampler", "sometimes", "expected one of always_on"));
    CHECK(set_fails(c, "protocol", "grpc", "grpc is not supported by ituna-core; use http/protobuf"));
    CHECK(set_ok(c, "protocol", "http/json"));
    CHECK(set_fails(c, "exporter.type", "jaeger", "not supported"));
    CHECK(set_fails(c, "exporter.type", "zipkin", "use otlp"));
    CHECK(set_fails(c, "exporter.type", "otlp,console", "one exporter"));
    CHECK(set_ok(c, "exporter.type", "file"));
    CHECK(set_fails(c, "services.kitchen-service", "ruby", "lua, python"));
    /* url */
    CHECK(set_ok(c, "endpoint", "http://127.0.0.1:4318"));
    CHECK(set_ok(c, "traces_endpoint", "https://collector.example/v1/traces"));
    CHECK(set_fails(c, "endpoint", "localhost:4318", "http:// or https://"));
    CHECK(set_fails(c, "endpoint", "http://", "with a host"));
    /* path */
    CHECK(set_ok(c, "exporter.file", "/tmp/spans.jsonl"));
    CHECK(set_fails(c, "exporter.certificate", "", "file path"));
    /* k=v lists */
    CHECK(set_ok(c, "resource_attributes", "deployment.environment=dev, team=a%20b"));
    CHECK(set_ok(c, "headers", "api-key=secret"));
    CHECK(set_fails(c, "resource-attributes", "novalue", "key=value"));
    CHECK(set_fails(c, "resource-attributes", "=x", "empty key"));
    CHECK(set_fails(c, "headers", "a=%zz", "percent"));
    CHECK(set_fails(c, "headers", "a=%2", "percent"));
    /* any: [kafka] passes through, keys keep their dots */
    CHECK(set_ok(c, "kafka.security.protocol", "whatever librdkafka decides"));
    CHECK_STR(ituna_config_get(c, "kafka", "security.protocol"), "whatever librdkafka decides");
    /* string */
    CHECK(set_ok(c, "service_name", "kitchen-service"));
    CHECK_STR(ituna_config_get(c, "tracer", "service-name"), "kitchen-service");
    /* unknown names */
    CHECK(set_fails(c, "no_such_key", "1", "unknown key 'no_such_key'"));
    CHECK(set_fails(c, "tracer.no-such", "1", "unknown key"));
    CHECK(set_fails(c, "nosection.key", "1", "unknown section"));
    ituna_config_destroy(c);
    return 0;
}

static int test_error_names_file_line_and_key(void) {
    ituna_config *c = ituna_config_new();
    REQUIRE(c);
    const char *text = "[queue]\nhost = broker\nport = ninety\n";
    ituna_err rc = ituna_config_load_string(c, "dir/my.ini", text, errbuf, sizeof errbuf);
    CHECK(rc == ITUNA_ERR_CONFIG);
    CHECK(strstr(errbuf, "dir/my.ini:3:") != NULL);
    CHECK(strstr(errbuf, "[queue] port") != NULL);
    CHECK(strstr(errbuf, "'ninety'") != NULL);

    rc = ituna_config_load_string(c, "a.ini", "\n[tracer]\n\nsampler-ratio = 1\n", errbuf, sizeof errbuf);
    CHECK(rc == ITUNA_ERR_CONFIG);
    CHECK(strstr(errbuf, "a.ini:4:") && strstr(errbuf, "[tracer] sampler-ratio") &&
          strstr(errbuf, "unknown key"));
    CHECK(strstr(errbuf, "sampler-arg") != NULL); /* lists the known keys */

    rc = ituna_config_load_string(c, "b.ini", "; hi\n[kitchen]\nx = 1\n", errbuf, sizeof errbuf);
    CHECK(rc == ITUNA_ERR_CONFIG);
    CHECK(strstr(errbuf, "b.ini:2:") && strstr(errbuf, "[kitchen]") && strstr(errbuf, "unknown section"));
    ituna_config_destroy(c);
    return 0;
}

static int test_syntax_errors_name_the_line(void) {
    ituna_config *c = ituna_config_new();
    REQUIRE(c);
    CHECK(ituna_config_load_string(c, "s.ini", "[queue]\nhost broker\n", errbuf, sizeof errbuf) ==
          ITUNA_ERR_PARSE);
    CHECK(strstr(errbuf, "s.ini:2:") && strstr(errbuf, "key = value"));
    CHECK(ituna_config_load_string(c, "s.ini", "[queue\nhost = b\n", errbuf, sizeof errbuf) ==
          ITUNA_ERR_PARSE);
    CHECK(strstr(errbuf, "s.ini:1:") && strstr(errbuf, "unterminated"));
    CHECK(ituna_config_load_string(c, "s.ini", "host = b\n", errbuf, sizeof errbuf) == ITUNA_ERR_PARSE);
    CHECK(strstr(errbuf, "s.ini:1:") && strstr(errbuf, "before any [section]"));
    CHECK(ituna_config_load_string(c, "s.ini", "[queue]\n = b\n", errbuf, sizeof errbuf) == ITUNA_ERR_PARSE);
    CHECK(strstr(errbuf, "s.ini:2:") && strstr(errbuf, "missing key"));
    CHECK(ituna_config_load_string(c, "s.ini", "[]\n", errbuf, sizeof errbuf) == ITUNA_ERR_PARSE);
    CHECK(ituna_config_load_string(c, "s.ini", "[queue] x\n", errbuf, sizeof errbuf) == ITUNA_ERR_PARSE);
    /* a key twice in one file is taken for a mistake */
    CHECK(ituna_config_load_string(c, "d.ini", "[queue]\nport = 1\n\nport = 2\n", errbuf, sizeof errbuf) ==
          ITUNA_ERR_CONFIG);
    CHECK(strstr(errbuf, "d.ini:4:") && strstr(errbuf, "[queue] port") && strstr(errbuf, "line 2"));
    ituna_config_destroy(c);
    return 0;
}

static int test_dialect_comments_quotes_delimiters(void) {
    ituna_config *c = ituna_config_new();
    REQUIRE(c);
    const char *text = "\xEF\xBB\xBF# leading comment\r\n"
                       "[queue]   ; section comment\r\n"
                       "  host:   broker.local  \r\n"
                       "port=9093 ; inline\n"
                       "[exporter]\n"
                       "endpoint = http://h:4318/#frag # url keeps its '#'\n"
                       "headers = \"a=b ; c\"\n"
                       "[resource]\n"
                       "team = 'kitchen'\n"
                       "note = \n"
                       "[queue]\n"
                       "bootstrap = x:1";
    ituna_err rc = ituna_config_load_string(c, "t.ini", text, errbuf, sizeof errbuf);
    if (rc) fprintf(stderr, "  %s\n", errbuf);
    REQUIRE(rc == ITUNA_OK);
    CHECK_STR(ituna_config_get(c, "queue", "host"), "broker.local");
    CHECK_STR(ituna_config_get(c, "queue", "port"), "9093");
    CHECK_STR(ituna_config_get(c, "exporter", "endpoint"), "http://h:4318/#frag");
    CHECK_STR(ituna_config_get(c, "exporter", "headers"), "a=b ; c");
    CHECK_STR(ituna_config_get(c, "resource", "team"), "kitchen");
    CHECK_STR(ituna_config_get(c, "resource", "note"), "");
    CHECK_STR(ituna_config_get(c, "queue", "bootstrap"), "x:1");
    CHECK_STR(ituna_config_origin(c, "queue", "port"), "t.ini:4");
    /* iteration is per section, in load order */
    size_t it = 0;
    const char *k, *v;
    const char *want[] = { "host", "port", "bootstrap" };
    int i = 0;
    while (ituna_config_next(c, "queue", &it, &k, &v)) {
        CHECK(i < 3);
        if (i < 3) CHECK_STR(k, want[i]);
        i++;
    }
    CHECK(i == 3);
    ituna_config_destroy(c);
    return 0;
}

static int test_failed_load_leaves_config_unchanged(void) {
    ituna_config *c = ituna_config_new();
    REQUIRE(c);
    REQUIRE(ituna_config_load_string(c, "ok.ini", "[queue]\nhost = a\nport = 1\n", errbuf, sizeof errbuf) ==
            ITUNA_OK);
    /* the first two lines are fine, the third is not: nothing of the file may stick */
    ituna_err rc = ituna_config_load_string(c, "bad.ini",
                                            "[queue]\nhost = b\n[kafka]\nlinger.ms = 5\n[queue]\nport = x\n",
                                            errbuf, sizeof errbuf);
    CHECK(rc == ITUNA_ERR_CONFIG);
    CHECK(strstr(errbuf, "bad.ini:6:") != NULL);
    CHECK_STR(ituna_config_get(c, "queue", "host"), "a");
    CHECK(ituna_config_get(c, "kafka", "linger.ms") == NULL);
    CHECK_STR(ituna_config_bootstrap(c, NULL), "a:1");
    /* the environment follows the OpenTelemetry SDK's rule instead: an invalid OTEL_*
     * value is a warning naming the variable, and the default stays */
    clear_env();
    setenv("OTEL_SERVICE_NAME", "svc", 1);
    setenv("OTEL_BSP_MAX_QUEUE_SIZE", "abc", 1);
    logs_start();
    rc = ituna_config_load_env(c, errbuf, sizeof errbuf);
    logs_stop();
    CHECK(rc == ITUNA_OK);
    CHECK(strstr(logbuf, "environment OTEL_BSP_MAX_QUEUE_SIZE: expected a positive integer, got 'abc'") !=
          NULL);
    CHECK_STR(ituna_config_get(c, "tracer", "service-name"), "svc");
    CHECK(ituna_config_get(c, "exporter", "max-queue-size") == NULL);
    CHECK(ituna_config_int(c, "exporter", "max-queue-size", -1) == 2048);
    /* and for a rejected set */
    CHECK(ituna_config_set(c, "queue.port", "0", errbuf, sizeof errbuf) == ITUNA_ERR_CONFIG);
    CHECK_STR(ituna_config_get(c, "queue", "port"), "1");
    clear_env();
    ituna_config_destroy(c);
    return 0;
}

static int test_precedence_file_env_api(void) {
    clear_env();
    ituna_config *c = ituna_config_new();
    REQUIRE(c);
    REQUIRE(ituna_config_load_string(c, "p.ini",
                                     "[tracer]\nservice-name = from-file\nsampler = always_off\n"
                                     "[exporter]\ntimeout = 111\nprotocol = http/json\n",
                                     errbuf, sizeof errbuf) == ITUNA_OK);
    setenv("OTEL_SERVICE_NAME", "from-env", 1);
    setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "222", 1);
    setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "333", 1); /* the traces-specific one wins */
    setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "", 1);   /* empty = unset, generic applies */
    setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", 1);
    setenv("OTEL_TRACES_SAMPLER", "", 1); /* empty = unset: the file's value stays */
    setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "  ", 1);
    setenv("OTEL_ATTRIBUTE_COUNT_LIMIT", "7", 1);
    ituna_err rc = ituna_config_load_env(c, errbuf, sizeof errbuf);
    if (rc) fprintf(stderr, "  %s\n", errbuf);
    REQUIRE(rc == ITUNA_OK);
    CHECK_STR(ituna_config_get(c, "tracer", "service-name"), "from-env");
    CHECK_STR(ituna_config_origin(c, "tracer", "service-name"), "env OTEL_SERVICE_NAME");
    CHECK(ituna_config_int(c, "exporter", "timeout", -1) == 333);
    CHECK_STR(ituna_config_get(c, "exporter", "protocol"), "http/protobuf");
    CHECK_STR(ituna_config_get(c, "tracer", "sampler"), "always_off");
    CHECK(ituna_config_int(c, "tracer", "attribute-count-limit", -1) == 7);
    /* the API wins over both */
    CHECK(set_ok(c, "service_name", "from-api"));
    CHECK_STR(ituna_config_get(c, "tracer", "service-name"), "from-api");
    CHECK_STR(ituna_config_origin(c, "tracer", "service-name"), "api");
    clear_env();
    ituna_config_destroy(c);
    return 0;
}

static int test_env_errors_name_the_variable(void) {
    clear_env();
    ituna_config *c = ituna_config_new();
    REQUIRE(c);
    /* OpenTelemetry SDK rules: a warning naming the variable, the default stays */
    setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", 1);
    logs_start();
    CHECK(ituna_config_load_env(c, errbuf, sizeof errbuf) == ITUNA_OK);
    logs_stop();
    CHECK(strstr(logbuf, "environment OTEL_EXPORTER_OTLP_PROTOCOL: grpc is not supported") != NULL);
    CHECK_STR(ituna_config_str(c, "exporter", "protocol", NULL), "http/protobuf");
    clear_env();
    setenv("OTEL_TRACES_SAMPLER_ARG", "2", 1);
    logs_start();
    CHECK(ituna_config_load_env(c, errbuf, sizeof errbuf) == ITUNA_OK);
    logs_stop();
    CHECK(strstr(logbuf, "OTEL_TRACES_SAMPLER_ARG") != NULL);
    CHECK(ituna_config_get(c, "tracer", "sampler-arg") == NULL);
    clear_env();
    setenv("OTEL_RESOURCE_ATTRIBUTES", "a=1,broken", 1);
    logs_start();
    CHECK(ituna_config_load_env(c, errbuf, sizeof errbuf) == ITUNA_OK);
    logs_stop();
    CHECK(strstr(logbuf, "OTEL_RESOURCE_ATTRIBUTES") && strstr(logbuf, "broken"));
    CHECK(ituna_config_get(c, "tracer", "resource-attributes") == NULL); /* discarded whole */
    /* a traces-specific variable that is invalid gives way to the general one */
    clear_env();
    setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "soon", 1);
    setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1234", 1);
    logs_start();
    CHECK(ituna_config_load_env(c, errbuf, sizeof errbuf) == ITUNA_OK);
    logs_stop();
    CHECK(strstr(logbuf, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") != NULL);
    CHECK(ituna_config_int(c, "exporter", "timeout", -1) == 1234);
    /* enum values are case-insensitive */
    clear_env();
    setenv("OTEL_TRACES_SAMPLER", "ParentBased_TraceIdRatio", 1);
    setenv("OTEL_TRACES_EXPORTER", "OTLP", 1);
    CHECK(ituna_config_load_env(c, errbuf, sizeof errbuf) == ITUNA_OK);
    CHECK_STR(ituna_config_get(c, "tracer", "sampler"), "parentbased_traceidratio");
    CHECK_STR(ituna_config_get(c, "exporter", "type"), "otlp");
    /* only "true", in any case, disables */
    static const struct {
        const char *v;
        int disabled;
        int warns;
    } dis[] = { { "true", 1, 0 },  { "TRUE", 1, 0 }, { "True", 1, 0 }, { "false", 0, 0 },
                { "FALSE", 0, 0 }, { "1", 0, 1 },    { "yes", 0, 1 },  { "on", 0, 1 } };
    for (size_t i = 0; i < sizeof dis / sizeof dis[0]; i++) {
        clear_env();
        ituna_config *d = ituna_config_new();
        REQUIRE(d);
        setenv("OTEL_SDK_DISABLED", dis[i].v, 1);
        logs_start();
        CHECK(ituna_config_load_env(d, errbuf, sizeof errbuf) == ITUNA_OK);
        logs_stop();
        CHECK(ituna_config_bool(d, "tracer", "disabled", -1) == dis[i].disabled);
        CHECK((strstr(logbuf, "OTEL_SDK_DISABLED") != NULL) == dis[i].warns);
        ituna_config_destroy(d);
    }
    /* the INI file keeps its strict errors for the same values */
    CHECK(ituna_config_load_string(c, "strict.ini", "[exporter]\nprotocol = grpc\n", errbuf, sizeof errbuf) ==
          ITUNA_ERR_CONFIG);
    CHECK(strstr(errbuf, "strict.ini:2:") != NULL);
    clear_env();
    setenv("OTEL_SDK_DISABLED", "true", 1);
    setenv("ITUNA_TRACES_FILE", "/tmp/x.jsonl", 1);
    CHECK(ituna_config_load_env(c, errbuf, sizeof errbuf) == ITUNA_OK);
    CHECK(ituna_config_bool(c, "tracer", "disabled", 0) == 1);
    CHECK_STR(ituna_config_get(c, "exporter", "file"), "/tmp/x.jsonl");
    clear_env();
    ituna_config_destroy(c);
    return 0;
}

static int test_bootstrap_precedence(void) {
    clear_env();
    ituna_config *c = ituna_config_new();
    REQUIRE(c);
    CHECK(ituna_config_bootstrap(c, NULL) == NULL);
    CHECK(set_ok(c, "kafka.bootstrap.servers", "k1:9092"));
    CHECK_STR(ituna_config_bootstrap(c, NULL), "k1:9092");
    CHECK(set_ok(c, "queue.host", "qhost"));
    CHECK_STR(ituna_config_bootstrap(c, NULL), "qhost:9092"); /* port defaults to 9092 */
    CHECK(set_ok(c, "queue.port", "19092"));
    const char *b = ituna_config_bootstrap(c, NULL);
    CHECK_STR(b, "qhost:19092");
    CHECK_STR(ituna_config_bootstrap(c, NULL), b);
    setenv("ITUNA_KAFKA_BOOTSTRAP", "envhost:1", 1);
    REQUIRE(ituna_config_load_env(c, errbuf, sizeof errbuf) == ITUNA_OK);
    CHECK_STR(ituna_config_bootstrap(c, NULL), "envhost:1");
    CHECK_STR(ituna_config_bootstrap(c, "explicit:2"), "explicit:2");
    CHECK_STR(ituna_config_bootstrap(c, ""), "envhost:1");
    clear_env();
    ituna_config_destroy(c);
    return 0;
}

static int test_seed_file_loads_unchanged(void) {
    ituna_config *c = restaurant_config();
    REQUIRE(c);
    const char *path = repo_path("tests/fixtures/seed-ituna-config.ini");
    ituna_err rc = ituna_config_load_file(c, path, errbuf, sizeof errbuf);
    if (rc) fprintf(stderr, "  %s\n", errbuf);
    REQUIRE(rc == ITUNA_OK);
    CHECK_STR(ituna_config_get(c, "queue", "host"), "broker");
    CHECK(ituna_config_int(c, "queue", "port", 0) == 9092);
    CHECK_STR(ituna_config_get(c, "jaeger-exporter", "host"), "jaeger");
    CHECK_STR(ituna_config_get(c, "initial-order", "queue-topic"), "ituna-orders");
    CHECK_STR(ituna_config_get(c, "kitchen-queue", "queue-topic"), "kitchen-orders");
    CHECK(ituna_config_int(c, "simulated-delays", "kitchen-service", 0) == 140);
    CHECK(ituna_config_delay_ms(c, "simulated-delays", "website-ordering", 0) == 2000);
    CHECK_STR(ituna_config_bootstrap(c, NULL), "broker:9092");
    size_t it = 0;
    int n = 0;
    while (ituna_config_next(c, "simulated-delays", &it, NULL, NULL)) n++;
    CHECK(n == 8);
    ituna_config_destroy(c);
    return 0;
}

static int test_restaurant_file_loads(void) {
    ituna_config *c = restaurant_config();
    REQUIRE(c);
    const char *path = repo_path("scripts/ituna-config.ini");
    ituna_err rc = ituna_config_load_file(c, path, errbuf, sizeof errbuf);
    if (rc) fprintf(stderr, "  %s\n", errbuf);
    REQUIRE(rc == ITUNA_OK);
    /* a superset of the seed's file */
    const char *seed_keys[][2] = { { "queue", "host" },
                                   { "queue", "port" },
                                   { "jaeger-exporter", "host" },
                                   { "jaeger-exporter", "port" },
                                   { "initial-order", "queue-topic" },
                                   { "kitchen-queue", "queue-topic" },
                                   { "simulated-delays", "website-ordering" },
                                   { "simulated-delays", "on-site-ordering" },
                                   { "simulated-delays", "direct-kitchen-ordering" },
                                   { "simulated-delays", "order-validation-address" },
                                   { "simulated-delays", "order-validation-name" },
                                   { "simulated-delays", "order-validation-inventory" },
                                   { "simulated-delays", "order-validation-pub" },
                                   { "simulated-delays", "kitchen-service" } };
    for (size_t i = 0; i < sizeof seed_keys / sizeof *seed_keys; i++)
        CHECK(ituna_config_get(c, seed_keys[i][0], seed_keys[i][1]) != NULL);
    /* the planted bottleneck is the slowest stage */
    int64_t inv = ituna_config_int(c, "simulated-delays", "order-validation-inventory", 0);
    size_t it = 0;
    const char *k, *v;
    while (ituna_config_next(c, "simulated-delays", &it, &k, &v)) {
        if (strstr(k, "ordering") || strcmp(k, "order-validation-inventory") == 0) continue;
        CHECK(ituna_config_int(c, "simulated-delays", k, 0) < inv);
    }
    CHECK(ituna_config_validate(c, errbuf, sizeof errbuf) == ITUNA_OK);
    ituna_config_destroy(c);
    return 0;
}

static int test_missing_file_is_io_error_naming_path(void) {
    ituna_config *c = ituna_config_new();
    REQUIRE(c);
    CHECK(ituna_config_load_file(c, "/nonexistent/dir/ituna.ini", errbuf, sizeof errbuf) == ITUNA_ERR_IO);
    CHECK(strstr(errbuf, "/nonexistent/dir/ituna.ini") != NULL);
    ituna_config_destroy(c);
    return 0;
}

static int test_dup_is_deep_and_destroy_null_is_noop(void) {
    ituna_config *c = ituna_config_new();
    REQUIRE(c);
    REQUIRE(set_ok(c, "queue.host", "h1"));
    REQUIRE(set_ok(c, "kafka.linger.ms", "5"));
    ituna_config *d = ituna_config_dup(c);
    REQUIRE(d);
    REQUIRE(set_ok(c, "queue.host", "h2"));
    CHECK_STR(ituna_config_get(d, "queue", "host"), "h1");
    CHECK_STR(ituna_config_get(d, "kafka", "linger.ms"), "5");
    CHECK_STR(ituna_config_bootstrap(d, NULL), "h1:9092");
    CHECK_STR(ituna_config_bootstrap(c, NULL), "h2:9092");
    ituna_config_destroy(c);
    CHECK_STR(ituna_config_get(d, "queue", "host"), "h1");
    ituna_config_destroy(d);
    ituna_config_destroy(NULL);
    CHECK(ituna_config_dup(NULL) == NULL);
    return 0;
}

static int test_typed_reads_use_schema_defaults(void) {
    ituna_config *c = restaurant_config();
    REQUIRE(c);
    CHECK(ituna_config_int(c, "exporter", "max-queue-size", -1) == 2048);
    CHECK(ituna_config_int(c, "exporter", "schedule-delay", -1) == 5000);
    CHECK(ituna_config_double(c, "tracer", "sampler-arg", -1) == 1.0);
    CHECK_STR(ituna_config_str(c, "tracer", "sampler", NULL), "parentbased_always_on");
    CHECK_STR(ituna_config_str(c, "tracer", "service-name", "dflt"), "dflt");
    CHECK(ituna_config_bool(c, "compat", "payload-carrier", 1) == 0);
    CHECK(ituna_config_int(c, "nosuch", "key", 42) == 42);
    CHECK(set_ok(c, "exporter.max-queue-size", "100"));
    CHECK(ituna_config_int(c, "exporter", "max-queue-size", -1) == 100);
    /* a drawn delay stays inside its range */
    CHECK(set_ok(c, "simulated-delays.kitchen-service", "10-20"));
    int lo_seen = 0, hi_seen = 0, out = 0;
    for (int i = 0; i < 2000; i++) {
        int64_t d = ituna_config_delay_ms(c, "simulated-delays", "kitchen-service", -1);
        if (d < 10 || d > 20) out++;
        lo_seen |= d == 10;
        hi_seen |= d == 20;
    }
    CHECK(out == 0 && lo_seen && hi_seen);
    ituna_config_destroy(c);
    return 0;
}

static int test_validate_batch_not_above_queue(void) {
    ituna_config *c = ituna_config_new();
    REQUIRE(c);
    CHECK(ituna_config_validate(c, errbuf, sizeof errbuf) == ITUNA_OK);
    /* the default batch (512) follows a smaller queue: not an error */
    CHECK(set_ok(c, "exporter.max-queue-size", "100"));
    CHECK(ituna_config_validate(c, errbuf, sizeof errbuf) == ITUNA_OK);
    CHECK(set_ok(c, "max_export_batch_size", "100"));
    CHECK(ituna_config_validate(c, errbuf, sizeof errbuf) == ITUNA_OK);
    /* a batch size set above the queue is, naming both keys and their sources */
    CHECK(set_ok(c, "max_export_batch_size", "101"));
    CHECK(ituna_config_validate(c, errbuf, sizeof errbuf) == ITUNA_ERR_CONFIG);
    CHECK(strstr(errbuf,
                 "api: [exporter] max-export-batch-size 101 must not exceed max-queue-size (100, api)"));
    ituna_config_destroy(c);

    /* from a file: file and line of the batch size, and where the queue size came from */
    clear_env();
    c = ituna_config_new();
    REQUIRE(c);
    REQUIRE(ituna_config_load_string(c, "bsp.ini",
                                     "[exporter]\n# big batches\nmax-export-batch-size = 4096\n", errbuf,
                                     sizeof errbuf) == ITUNA_OK);
    CHECK(ituna_config_validate(c, errbuf, sizeof errbuf) == ITUNA_ERR_CONFIG);
    CHECK(strstr(errbuf, "bsp.ini:3: [exporter] max-export-batch-size 4096 must not exceed max-queue-size "
                         "(2048, default)"));
    setenv("OTEL_BSP_MAX_QUEUE_SIZE", "1000", 1);
    REQUIRE(ituna_config_load_env(c, errbuf, sizeof errbuf) == ITUNA_OK);
    CHECK(ituna_config_validate(c, errbuf, sizeof errbuf) == ITUNA_ERR_CONFIG);
    CHECK(strstr(errbuf, "bsp.ini:3:") && strstr(errbuf, "(1000, env OTEL_BSP_MAX_QUEUE_SIZE)"));
    clear_env();
    ituna_config_destroy(c);
    return 0;
}

static int test_source_kinds(void) {
    clear_env();
    ituna_config *c = ituna_config_new();
    REQUIRE(c);
    CHECK(ituna_config_source(c, "tracer", "service-name") == ITUNA_CFG_SRC_UNSET);
    REQUIRE(ituna_config_load_string(c, "api", "[tracer]\nservice-name = f\n", errbuf, sizeof errbuf) ==
            ITUNA_OK);
    CHECK(ituna_config_source(c, "tracer", "service-name") ==
          ITUNA_CFG_SRC_FILE); /* even a file named "api" */
    setenv("OTEL_SERVICE_NAME", "e", 1);
    REQUIRE(ituna_config_load_env(c, errbuf, sizeof errbuf) == ITUNA_OK);
    CHECK(ituna_config_source(c, "tracer", "service-name") == ITUNA_CFG_SRC_ENV);
    CHECK(set_ok(c, "service_name", "a"));
    CHECK(ituna_config_source(c, "tracer", "service-name") == ITUNA_CFG_SRC_API);
    ituna_config *d = ituna_config_dup(c);
    REQUIRE(d);
    CHECK(ituna_config_source(d, "tracer", "service-name") == ITUNA_CFG_SRC_API);
    clear_env();
    ituna_config_destroy(d);
    ituna_config_destroy(c);
    return 0;
}

/* The OTLP URL for a config loaded from ini (may be NULL), then the environment
 * given as NAME, VALUE, ..., NULL. */
static int url_is(const char *ini, const char *const *env, const char *want) {
    clear_env();
    ituna_config *c = ituna_config_new();
    if (!c) return 0;
    if (ini && ituna_config_load_string(c, "x.ini", ini, errbuf, sizeof errbuf) != ITUNA_OK) {
        fprintf(stderr, "  %s\n", errbuf);
        ituna_config_destroy(c);
        return 0;
    }
    for (; env && env[0]; env += 2) setenv(env[0], env[1], 1);
    ituna_err rc = ituna_config_load_env(c, errbuf, sizeof errbuf);
    char *u = rc == ITUNA_OK ? ituna_otlp_http_url(c) : NULL;
    int ok = u && strcmp(u, want) == 0;
    if (!ok) fprintf(stderr, "  url %s, want %s\n", u ? u : "(null)", want);
    free(u);
    clear_env();
    ituna_config_destroy(c);
    return ok;
}

static int test_otlp_endpoint_precedence_by_source(void) {
    const char *file_traces = "[exporter]\ntraces-endpoint = http://file-t:1/custom\n";
    const char *file_both =
        "[exporter]\nendpoint = http://file-b:2\ntraces-endpoint = http://file-t:1/custom\n";
    const char *seed = "[jaeger-exporter]\nhost: jaeger\nport: 4318\n";
    const char *env_base[] = { "OTEL_EXPORTER_OTLP_ENDPOINT", "http://env-b:3/", NULL };
    const char *env_both[] = { "OTEL_EXPORTER_OTLP_ENDPOINT", "http://env-b:3",
                               "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://env-t:4/x", NULL };
    const char *otlp_only[] = { "OTEL_TRACES_EXPORTER", "otlp", NULL };
    /* env wins over the file, whichever of the two keys each one sets */
    CHECK(url_is(file_traces, env_base, "http://env-b:3/v1/traces"));
    CHECK(url_is(file_both, env_base, "http://env-b:3/v1/traces"));
    /* within one source, the traces-specific key wins */
    CHECK(url_is(file_both, NULL, "http://file-t:1/custom"));
    CHECK(url_is(NULL, env_both, "http://env-t:4/x"));
    CHECK(url_is(file_both, env_both, "http://env-t:4/x"));
    /* an explicit endpoint anywhere beats the seed's [jaeger-exporter] */
    CHECK(url_is(seed, env_base, "http://env-b:3/v1/traces"));
    /* otlp with no endpoint: the seed file's collector, else the spec's default */
    CHECK(url_is(seed, otlp_only, "http://jaeger:4318/v1/traces"));
    CHECK(url_is(NULL, otlp_only, "http://localhost:4318/v1/traces"));
    CHECK(url_is("[jaeger-exporter]\nhost = ::1\n", NULL, "http://[::1]:4318/v1/traces"));
    /* the API wins over the environment */
    clear_env();
    ituna_config *c = ituna_config_new();
    REQUIRE(c);
    setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://env-t:4/x", 1);
    REQUIRE(ituna_config_load_env(c, errbuf, sizeof errbuf) == ITUNA_OK);
    CHECK(set_ok(c, "exporter.endpoint", "http://api:5"));
    char *u = ituna_otlp_http_url(c);
    CHECK_STR(u, "http://api:5/v1/traces");
    free(u);
    clear_env();
    ituna_config_destroy(c);
    return 0;
}

struct kv_seen {
    int n;
    char keys[4][32], vals[4][32];
};

static int collect(void *opaque, const char *k, const char *v) {
    struct kv_seen *s = opaque;
    if (s->n < 4) {
        snprintf(s->keys[s->n], 32, "%s", k);
        snprintf(s->vals[s->n], 32, "%s", v);
    }
    s->n++;
    return 0;
}

static int test_kvlist_decodes_and_trims(void) {
    struct kv_seen s = { 0 };
    char msg[256];
    CHECK(ituna_kvlist_parse(" service.namespace = shop ,, k2=a%2Cb%3Dc ,empty=", collect, &s, msg,
                             sizeof msg) == ITUNA_OK);
    REQUIRE(s.n == 3);
    CHECK_STR(s.keys[0], "service.namespace");
    CHECK_STR(s.vals[0], "shop");
    CHECK_STR(s.keys[1], "k2");
    CHECK_STR(s.vals[1], "a,b=c");
    CHECK_STR(s.keys[2], "empty");
    CHECK_STR(s.vals[2], "");
    return 0;
}

/* docs/config.md lists every key of the schema under its section's heading */
static int test_docs_list_every_key(void) {
    FILE *f = fopen(repo_path("docs/config.md"), "rb");
    REQUIRE(f);
    static char doc[65536];
    size_t len = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[len] = '\0';
    size_t n;
    const ituna_cfg_key *k = ituna_cfg_schema(&n);
    for (size_t i = 0; i < n; i++) {
        char head[128], row[128];
        snprintf(head, sizeof head, "### [%s]", k[i].section);
        snprintf(row, sizeof row, "\n| %s |", k[i].key);
        const char *sec = strstr(doc, head);
        CHECK(sec != NULL);
        if (!sec) continue;
        const char *end = strstr(sec + 1, "\n### ");
        const char *hit = strstr(sec, row);
        if (!hit || (end && hit > end)) {
            fprintf(stderr, "  docs/config.md lacks [%s] %s\n", k[i].section, k[i].key);
            CHECK(0);
        }
    }
    return 0;
}

static int test_one_load_applies_file_then_env_then_overrides(void) {
    char path[] = "/tmp/ituna_cfg_load_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    const char *ini = "[tracer]\nservice-name = from-file\n[exporter]\ntype = console\n";
    REQUIRE(write(fd, ini, strlen(ini)) == (ssize_t)strlen(ini));
    close(fd);
    setenv("OTEL_SERVICE_NAME", "from-env", 1);
    ituna_config *cfg = ituna_config_new();
    char err[256];
    const char *over[] = { "exporter.type", "none", NULL };
    CHECK(ituna_config_load(cfg, path, 1, over, err, sizeof err) == ITUNA_OK);
    CHECK_STR(ituna_config_get(cfg, "tracer", "service-name"), "from-env");
    CHECK_STR(ituna_config_get(cfg, "exporter", "type"), "none");
    const char *bad[] = { "no.such-key", "1", NULL };
    CHECK(ituna_config_load(cfg, NULL, 0, bad, err, sizeof err) == ITUNA_ERR_CONFIG);
    ituna_config_destroy(cfg);
    unsetenv("OTEL_SERVICE_NAME");
    unlink(path);
    return 0;
}

/* The core alone knows only its own sections: the restaurant's are unknown to it,
 * with the same file:line message as any unknown section. */
static int test_core_alone_does_not_know_app_sections(void) {
    ituna_config *c = ituna_config_new();
    REQUIRE(c);
    const char *app[] = { "rates",      "services",         "failure-rates", "topics",
                          "restaurant", "simulated-delays", "initial-order", "kitchen-queue" };
    for (size_t i = 0; i < sizeof app / sizeof *app; i++) {
        char text[128];
        snprintf(text, sizeof text, "[queue]\nport = 1\n[%s]\nx = 1\n", app[i]);
        CHECK(ituna_config_load_string(c, "r.ini", text, errbuf, sizeof errbuf) == ITUNA_ERR_CONFIG);
        CHECK(strstr(errbuf, "r.ini:3:") && strstr(errbuf, "unknown section"));
    }
    size_t n;
    const ituna_cfg_section *secs = ituna_cfg_sections(&n);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < sizeof app / sizeof *app; j++) CHECK(strcmp(secs[i].name, app[j]) != 0);
    ituna_config_destroy(c);
    return 0;
}

/* A registered schema gives an application's keys the core's strict checks, messages
 * and defaults; a bad schema is refused naming its line and leaves the handle as it was. */
static int test_app_schema_checks_and_defaults(void) {
    ituna_config *c = ituna_config_new();
    REQUIRE(c);
    const char *schema = "; an app\n[shop]\nrate = float(0..10) 2.5\nmode = enum(fast|slow)\n"
                         "name = string the shop\nwait = delay 100-200\ncount = int(1..)\n";
    REQUIRE(ituna_config_add_schema(c, "shop.schema", schema, errbuf, sizeof errbuf) == ITUNA_OK);
    CHECK_STR(ituna_config_value(c, "shop", "rate"), "2.5");
    CHECK_STR(ituna_config_value(c, "shop", "name"), "the shop");
    CHECK(ituna_config_value(c, "shop", "mode") == NULL);
    CHECK(ituna_config_get(c, "shop", "rate") == NULL); /* get: set values only */
    CHECK_STR(ituna_config_value(c, "tracer", "sampler"), "parentbased_always_on");
    CHECK(ituna_config_load_string(c, "my.ini", "[shop]\nrate = 3\nmode = slow\n", errbuf, sizeof errbuf) ==
          ITUNA_OK);
    CHECK_STR(ituna_config_value(c, "shop", "rate"), "3");
    CHECK(ituna_config_load_string(c, "my.ini", "[shop]\n\nrate = 11\n", errbuf, sizeof errbuf) ==
          ITUNA_ERR_CONFIG);
    CHECK(strstr(errbuf, "my.ini:3: [shop] rate: expected a number from 0 to 10, got '11'") != NULL);
    CHECK(ituna_config_load_string(c, "my.ini", "[shop]\nmode = medium\n", errbuf, sizeof errbuf) ==
          ITUNA_ERR_CONFIG);
    CHECK(strstr(errbuf, "my.ini:2: [shop] mode: expected one of fast, slow, got 'medium'") != NULL);
    CHECK(ituna_config_load_string(c, "my.ini", "[shop]\nrat = 1\n", errbuf, sizeof errbuf) ==
          ITUNA_ERR_CONFIG);
    CHECK(
        strstr(errbuf, "my.ini:2: [shop] rat: unknown key (known in [shop]: rate, mode, name, wait, count)"));
    CHECK(set_fails(c, "shop.count", "0", "got '0'"));
    CHECK(set_ok(c, "shop.count", "7"));
    CHECK(set_ok(c, "shop.wait", "5-9"));
    int64_t d = ituna_config_delay_ms(c, "shop", "wait", -1);
    CHECK(d >= 5 && d <= 9);
    /* every known key, the core's then the app's, with its value */
    size_t it = 0, seen = 0;
    const char *sec, *key, *val;
    while (ituna_config_next_known(c, &it, &sec, &key, &val))
        if (strcmp(sec, "shop") == 0 && strcmp(key, "rate") == 0) seen += val && strcmp(val, "3") == 0;
    CHECK(seen == 1);
    /* dup keeps the schema */
    ituna_config *d2 = ituna_config_dup(c);
    REQUIRE(d2);
    CHECK(ituna_config_set(d2, "shop.rate", "12", errbuf, sizeof errbuf) == ITUNA_ERR_CONFIG);
    CHECK_STR(ituna_config_value(d2, "shop", "name"), "the shop");
    ituna_config_destroy(d2);
    /* bad schemas: each names its line, and nothing of it sticks */
    struct {
        const char *text, *needle;
    } bad[] = {
        { "[tracer]\nx = string\n", "s.schema:2: [tracer] x: the core owns section [tracer]" },
        { "[shop]\nrate = float\n", "s.schema:2: [shop] rate: already registered with another spec" },
        { "[new]\na = int\nb = number 3\n", "s.schema:3: [new] b: unknown type 'number'" },
        { "[new]\na = int(1..5) 9\n", "s.schema:2: [new] a: default: expected an integer from 1 to 5" },
        { "[new]\na = enum\n", "enum needs its values" },
        { "[new]\na = bool(x)\n", "takes no ()" },
        { "[new]\na = int(5..1)\n", "LO..HI" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK(ituna_config_add_schema(c, "s.schema", bad[i].text, errbuf, sizeof errbuf) == ITUNA_ERR_CONFIG);
        if (!strstr(errbuf, bad[i].needle)) {
            fprintf(stderr, "  schema %zu: '%s' lacks '%s'\n", i, errbuf, bad[i].needle);
            CHECK(0);
        }
    }
    CHECK(ituna_config_load_string(c, "x.ini", "[new]\na = 1\n", errbuf, sizeof errbuf) == ITUNA_ERR_CONFIG);
    /* the same schema again: nothing changes */
    CHECK(ituna_config_add_schema(c, "again.schema", schema, errbuf, sizeof errbuf) == ITUNA_OK);
    CHECK_STR(ituna_config_value(c, "shop", "rate"), "3");
    ituna_config_destroy(c);
    /* no path and no $ITUNA_CONFIG_SCHEMA: nothing to register */
    c = ituna_config_new();
    REQUIRE(c);
    unsetenv("ITUNA_CONFIG_SCHEMA");
    CHECK(ituna_config_add_schema_file(c, NULL, errbuf, sizeof errbuf) == ITUNA_OK);
    setenv("ITUNA_CONFIG_SCHEMA", repo_path("scripts/restaurant-schema.ini"), 1);
    CHECK(ituna_config_add_schema_file(c, NULL, errbuf, sizeof errbuf) == ITUNA_OK);
    unsetenv("ITUNA_CONFIG_SCHEMA");
    CHECK_STR(ituna_config_value(c, "topics", "rejected"), "ituna-rejected");
    CHECK(ituna_config_add_schema_file(c, "/nonexistent.schema", errbuf, sizeof errbuf) == ITUNA_ERR_IO);
    ituna_config_destroy(c);
    return 0;
}

/* The README's ituna.init(exporter="console"): a bare "exporter" names [exporter] type. */
static int test_exporter_alone_names_the_exporter_type(void) {
    ituna_config *c = ituna_config_new();
    REQUIRE(c);
    CHECK(set_ok(c, "exporter", "console"));
    CHECK_STR(ituna_config_get(c, "exporter", "type"), "console");
    CHECK(set_fails(c, "exporter", "jaeger", "not supported"));
    ituna_config_destroy(c);
    return 0;
}

int main(void) {
    RUN(test_every_type_accepts_valid_and_rejects_invalid);
    RUN(test_error_names_file_line_and_key);
    RUN(test_syntax_errors_name_the_line);
    RUN(test_dialect_comments_quotes_delimiters);
    RUN(test_failed_load_leaves_config_unchanged);
    RUN(test_precedence_file_env_api);
    RUN(test_env_errors_name_the_variable);
    RUN(test_bootstrap_precedence);
    RUN(test_seed_file_loads_unchanged);
    RUN(test_restaurant_file_loads);
    RUN(test_missing_file_is_io_error_naming_path);
    RUN(test_dup_is_deep_and_destroy_null_is_noop);
    RUN(test_typed_reads_use_schema_defaults);
    RUN(test_validate_batch_not_above_queue);
    RUN(test_source_kinds);
    RUN(test_otlp_endpoint_precedence_by_source);
    RUN(test_kvlist_decodes_and_trims);
    RUN(test_core_alone_does_not_know_app_sections);
    RUN(test_app_schema_checks_and_defaults);
    RUN(test_exporter_alone_names_the_exporter_type);
    RUN(test_docs_list_every_key);
    RUN(test_one_load_applies_file_then_env_then_overrides);
    TEST_MAIN_END();
}
