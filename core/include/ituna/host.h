/* ituna/host.h - what every host of the core needs around the API proper, written
 * once so that the Lua binding, the Python binding and a C service decide alike:
 * enum values by name, the configuration a host's init loads (and which settings of an
 * application's later init it can still apply), the tracer's counters as (name,
 * value) pairs, the text of lost spans and failed deliveries, a handler's failure
 * turned into its message's verdict, time slices for interruptible waits, and the
 * process's stop request with its signal handling. */
#ifndef ITUNA_HOST_H
#define ITUNA_HOST_H

#include "ituna/common.h"
#include "ituna/config.h"
#include "ituna/kafka.h"
#include "ituna/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- names -------------------------------------------------------------------- */

/* The span kind named ("unspecified", "internal", "server", "client", "producer",
 * "consumer"; any case). ITUNA_ERR_NOT_FOUND for another name. Thread-safe. */
ITUNA_API ituna_err ituna_span_kind_from_name(const char *name, ituna_span_kind *out);
/* The status named ("unset", "ok", "error"; any case). ITUNA_ERR_NOT_FOUND otherwise. */
ITUNA_API ituna_err ituna_status_code_from_name(const char *name, ituna_status_code *out);
/* The consumer context mode named ("parent", "link"; exact). ITUNA_ERR_NOT_FOUND otherwise. */
ITUNA_API ituna_err ituna_context_mode_from_name(const char *name, ituna_consumer_context_mode *out);

/* ---- configuration and tracer --------------------------------------------------- */

/* Load into cfg what a host's init describes, in this order: the application schema
 * (schema_path, else $ITUNA_CONFIG_SCHEMA), the INI file config_path (NULL or "":
 * none; one that cannot be read is a configuration error, ITUNA_ERR_CONFIG), the
 * environment when env, then overrides ("section.key", value pairs, NULL-terminated;
 * may be NULL). Later sources win. Not thread-safe (getenv). */
ITUNA_API ituna_err ituna_config_load_host(ituna_config *cfg, const char *schema_path,
                                           const char *config_path, int env, const char *const *overrides,
                                           char *errstr, size_t errstr_size);

/* A tracer from the configuration ituna_config_load_host() loads; *out as for
 * ituna_tracer_create(). Not thread-safe (getenv). */
ITUNA_API ituna_err ituna_tracer_create_host(const char *schema_path, const char *config_path, int env,
                                             const char *const *overrides, ituna_tracer **out, char *errstr,
                                             size_t errstr_size);

/* For a host that sets the tracer up before the application's own init runs (an
 * interpreter such as ituna-lua, with --config/$ITUNA_CONFIG and
 * --schema/$ITUNA_CONFIG_SCHEMA): can a setting that init names (key; value as a
 * string) still take effect? "service_name" can (the caller warns when it differs),
 * "config" and "schema" when they name the file the host loaded (host_config, NULL:
 * none; host_schema, NULL: $ITUNA_CONFIG_SCHEMA; compared as real paths), nothing
 * else: ITUNA_ERR_STATE with errstr naming the setting, the host (host, the tracer
 * of service) and where the setting belongs instead. Rather than drop a setting
 * silently, the host raises that. Not thread-safe (getenv). */
ITUNA_API ituna_err ituna_host_setting_check(const char *host, const char *service, const char *host_config,
                                             const char *host_schema, const char *key, const char *value,
                                             char *errstr, size_t errstr_size);

/* Iterate over what a host shows as the effective configuration: every known key
 * with its ituna_config_value() (*value NULL when it has none), then every key set in
 * an open section ([kafka], [resource]). iter: zeroed before the first call; returns
 * 0 when done. Borrowed pointers as for ituna_config_get(). Thread-safe if cfg is not
 * being modified. */
ITUNA_API int ituna_config_next_effective(const ituna_config *cfg, size_t iter[3], const char **section,
                                          const char **key, const char **value);

/* The i-th counter of s: its name (the field's, e.g. "spans_dropped") and *value;
 * NULL past the last one. Hosts build their stats tables from it. Thread-safe. */
ITUNA_API const char *ituna_tracer_stats_field(const ituna_tracer_stats *s, size_t i, uint64_t *value);

/* Why a flush or shutdown of t returned rc, into buf: "<what>: spans lost (D dropped,
 * F export failed, R rejected, of E ended)" for ITUNA_ERR_EXPORT, else "<what>:
 * <ituna_err2str(rc)>". Returns buf. Thread-safe. */
ITUNA_API const char *ituna_tracer_describe_loss(ituna_tracer *t, const char *what, ituna_err rc, char *buf,
                                                 size_t buf_size);

/* ---- Kafka ------------------------------------------------------------------------ */

/* One failed delivery as "<topic> [<partition>]: <error> (<error name>)" into buf.
 * Returns buf. Thread-safe. */
ITUNA_API const char *ituna_delivery_report_describe(const ituna_delivery_report *r, char *buf,
                                                     size_t buf_size);

/* The verdict on a message whose handler failed: malformed, ITUNA_HANDLED_MALFORMED
 * (it goes to the DLQ); else ITUNA_HANDLED_ERROR, with an 'exception' event (type,
 * message; stacktrace may be NULL) on the message's span (redelivered). The caller
 * passes the verdict to ituna_message_done() or returns it from its handler. */
ITUNA_API ituna_handler_result ituna_message_failed(ituna_message *m, int malformed, const char *type,
                                                    const char *message, const char *stacktrace);

/* ---- waiting and stopping --------------------------------------------------------- */

/* The deadline, in ms of ituna_now_ns(), timeout_ms from now (< 0: none, UINT64_MAX). */
ITUNA_API uint64_t ituna_deadline_ms(int timeout_ms);
/* The next slice of a wait until deadline_ms: at most max_ms, 0 once it passed. A
 * host waits in slices to run its own signal checks between them. */
ITUNA_API int ituna_slice_ms(uint64_t deadline_ms, int max_ms);

/* Ask the process to stop: ituna_stop_requested() turns true, every consumer's loop
 * ends (ituna_consumer_stop_all) and ituna_sleep() returns early. Async-signal-safe
 * as far as the flag goes; thread-safe. */
ITUNA_API void ituna_stop_request(void);
/* 1 once ituna_stop_request() was called. Thread-safe. */
ITUNA_API int ituna_stop_requested(void);
/* Sleep ms milliseconds in short slices; 0 when a stop request cut it short, else 1. */
ITUNA_API int ituna_sleep(uint64_t ms);

/* Turn SIGINT and SIGTERM into a graceful stop: they are blocked in this and every
 * later thread and a thread waits for them; the first one prints "<progname>: <signal>
 * received, stopping" and calls ituna_stop_request(), a second one exits at once
 * (status 128 + signal). Call before creating threads. ITUNA_ERR_IO on failure. */
ITUNA_API ituna_err ituna_stop_on_signals(const char *progname);

#ifdef __cplusplus
}
#endif
#endif
