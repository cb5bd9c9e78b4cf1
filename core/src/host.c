/* host.c - what every host of the core decides alike (ituna/host.h): enum values by
 * name, the configuration an init loads (and what a later init may still set), the
 * tracer's counters by name, the text of lost spans and failed deliveries, the
 * verdict on a failed handler, and the time slices of interruptible waits. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_schema.h"
#include "internal.h"
#include "ituna/host.h"

/* ---- names -------------------------------------------------------------------- */

/* Index of name in names[0..n) (any case when nocase), or -1. */
static int name_index(const char *name, const char *const *names, int n, int nocase) {
    for (int i = 0; name && i < n; i++)
        if ((nocase ? strcasecmp(name, names[i]) : strcmp(name, names[i])) == 0) return i;
    return -1;
}

ituna_err ituna_span_kind_from_name(const char *name, ituna_span_kind *out) {
    static const char *const names[] = {
        "unspecified", "internal", "server", "client", "producer", "consumer"
    };
    int i = name_index(name, names, 6, 1);
    if (i < 0) return ITUNA_ERR_NOT_FOUND;
    *out = (ituna_span_kind)i;
    return ITUNA_OK;
}

ituna_err ituna_status_code_from_name(const char *name, ituna_status_code *out) {
    static const char *const names[] = { "unset", "ok", "error" };
    int i = name_index(name, names, 3, 1);
    if (i < 0) return ITUNA_ERR_NOT_FOUND;
    *out = (ituna_status_code)i;
    return ITUNA_OK;
}

ituna_err ituna_context_mode_from_name(const char *name, ituna_consumer_context_mode *out) {
    static const char *const names[] = { "parent", "link" };
    int i = name_index(name, names, 2, 0);
    if (i < 0) return ITUNA_ERR_NOT_FOUND;
    *out = i == 0 ? ITUNA_CONTEXT_PARENT : ITUNA_CONTEXT_LINK;
    return ITUNA_OK;
}

/* ---- configuration and tracer --------------------------------------------------- */

ituna_err ituna_config_load_host(ituna_config *cfg, const char *schema_path, const char *config_path, int env,
                                 const char *const *overrides, char *errstr, size_t errstr_size) {
    ituna_err rc = ituna_config_add_schema_file(cfg, schema_path, errstr, errstr_size);
    if (rc == ITUNA_OK && config_path && config_path[0]) {
        rc = ituna_config_load_file(cfg, config_path, errstr, errstr_size);
        if (rc == ITUNA_ERR_IO) rc = ITUNA_ERR_CONFIG; /* the caller's configuration names it */
    }
    if (rc == ITUNA_OK) rc = ituna_config_load(cfg, NULL, env, overrides, errstr, errstr_size);
    return rc;
}

ituna_err ituna_tracer_create_host(const char *schema_path, const char *config_path, int env,
                                   const char *const *overrides, ituna_tracer **out, char *errstr,
                                   size_t errstr_size) {
    ituna_config *cfg = ituna_config_new();
    if (!cfg) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
    ituna_err rc = ituna_config_load_host(cfg, schema_path, config_path, env, overrides, errstr, errstr_size);
    if (rc == ITUNA_OK) rc = ituna_tracer_create(cfg, out, errstr, errstr_size);
    ituna_config_destroy(cfg);
    return rc;
}

/* 1 when paths a and b (either may be NULL) name the same existing file. */
static int same_file(const char *a, const char *b) {
    char *ra = a && a[0] ? realpath(a, NULL) : NULL, *rb = ra && b && b[0] ? realpath(b, NULL) : NULL;
    int same = ra && rb && strcmp(ra, rb) == 0;
    free(ra);
    free(rb);
    return same;
}

ituna_err ituna_host_setting_check(const char *host, const char *service, const char *host_config,
                                   const char *host_schema, const char *key, const char *value, char *errstr,
                                   size_t errstr_size) {
    if (!host_schema || !host_schema[0]) host_schema = getenv("ITUNA_CONFIG_SCHEMA");
    if (strcmp(key, "service_name") == 0) return ITUNA_OK;
    int schema = strcmp(key, "schema") == 0, config = strcmp(key, "config") == 0;
    if ((schema && same_file(value, host_schema)) || (config && same_file(value, host_config)))
        return ITUNA_OK;
    const char *have = schema ? host_schema : host_config, *want = value && value[0] ? value : NULL;
    int has = have && have[0];
    if (schema)
        return ituna_set_err(
            errstr, errstr_size, ITUNA_ERR_STATE,
            "schema '%s' cannot take effect: the host (%s) set the tracer '%s' up before the "
            "script ran, with %s%s; start it with --schema %s (or ITUNA_CONFIG_SCHEMA)",
            want ? want : "?", host, service, has ? "the schema " : "no application schema", has ? have : "",
            want ? want : "PATH");
    if (config)
        return ituna_set_err(
            errstr, errstr_size, ITUNA_ERR_STATE,
            "config '%s' cannot take effect: the host (%s) set the tracer '%s' up before the "
            "script ran, from %s%s and the environment; start it with --config %s (or "
            "ITUNA_CONFIG)",
            want ? want : "?", host, service, has ? "--config " : "no INI file", has ? have : "",
            want ? want : "PATH");
    return ituna_set_err(
        errstr, errstr_size, ITUNA_ERR_STATE,
        "setting '%s' cannot take effect: the host (%s) set the tracer '%s' up before the script "
        "ran, from %s%s and the environment; put it in the INI file given with --config or in "
        "the environment (ITUNA_*, OTEL_*)",
        key, host, service, has ? "--config " : "no INI file", has ? have : "");
}

int ituna_config_next_effective(const ituna_config *cfg, size_t iter[3], const char **section,
                                const char **key, const char **value) {
    /* iter[0]: the known keys; iter[1]: 1 + the open section's index; iter[2]: its keys */
    if (iter[1] == 0 && ituna_config_next_known(cfg, &iter[0], section, key, value)) return 1;
    size_t n;
    const ituna_cfg_section *secs = ituna_cfg_sections(&n);
    for (iter[1] = iter[1] ? iter[1] : 1; iter[1] <= n; iter[1]++, iter[2] = 0) {
        const ituna_cfg_section *s = &secs[iter[1] - 1];
        if (s->open && ituna_config_next(cfg, s->name, &iter[2], key, value)) {
            *section = s->name;
            return 1;
        }
    }
    return 0;
}

#define STAT(f)                                                                                              \
    { #f, offsetof(ituna_tracer_stats, f) }
static const struct {
    const char *name;
    size_t offset;
} stats_fields[] = {
    STAT(spans_started),           STAT(spans_not_sampled),  STAT(spans_ended),
    STAT(spans_enqueued),          STAT(spans_dropped),      STAT(spans_exported),
    STAT(spans_export_failed),     STAT(export_requests),    STAT(export_retries),
    STAT(export_partial_rejected), STAT(attributes_dropped), STAT(attributes_truncated),
    STAT(events_dropped),          STAT(links_dropped),
};
#undef STAT

const char *ituna_tracer_stats_field(const ituna_tracer_stats *s, size_t i, uint64_t *value) {
    if (i >= sizeof stats_fields / sizeof stats_fields[0]) return NULL;
    memcpy(value, (const char *)s + stats_fields[i].offset, sizeof *value);
    return stats_fields[i].name;
}

const char *ituna_tracer_describe_loss(ituna_tracer *t, const char *what, ituna_err rc, char *buf,
                                       size_t buf_size) {
    if (rc != ITUNA_ERR_EXPORT || !t) {
        snprintf(buf, buf_size, "%s: %s", what, ituna_err2str(rc));
        return buf;
    }
    ituna_tracer_stats st;
    ituna_tracer_get_stats(t, &st);
    snprintf(buf, buf_size, "%s: spans lost (%llu dropped, %llu export failed, %llu rejected, of %llu ended)",
             what, (unsigned long long)st.spans_dropped, (unsigned long long)st.spans_export_failed,
             (unsigned long long)st.export_partial_rejected, (unsigned long long)st.spans_ended);
    return buf;
}

/* ---- Kafka ------------------------------------------------------------------------ */

const char *ituna_delivery_report_describe(const ituna_delivery_report *r, char *buf, size_t buf_size) {
    const char *why = r->errstr && r->errstr[0] ? r->errstr : ituna_err2str(r->err);
    snprintf(buf, buf_size, "%s [%d]: %s (%s)", r->topic ? r->topic : "", (int)r->partition, why,
             r->error_name ? r->error_name : "");
    return buf;
}

ituna_handler_result ituna_message_failed(ituna_message *m, int malformed, const char *type,
                                          const char *message, const char *stacktrace) {
    if (malformed) return ITUNA_HANDLED_MALFORMED;
    ituna_span *span = ituna_message_span(m);
    if (span && ituna_span_is_recording(span)) ituna_span_record_exception(span, type, message, stacktrace);
    return ITUNA_HANDLED_ERROR;
}

/* ---- time slices ------------------------------------------------------------------ */

uint64_t ituna_deadline_ms(int timeout_ms) {
    return timeout_ms < 0 ? UINT64_MAX : ituna_now_ns() / 1000000 + (uint64_t)timeout_ms;
}

int ituna_slice_ms(uint64_t deadline_ms, int max_ms) {
    uint64_t now = ituna_now_ns() / 1000000;
    if (now >= deadline_ms) return 0;
    return deadline_ms - now < (uint64_t)max_ms ? (int)(deadline_ms - now) : max_ms;
}
