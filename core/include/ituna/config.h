/* ituna/config.h - settings from the INI file, OTEL_* environment variables and
 * API overrides. Later loads win: load the file, then the environment, then set
 * overrides, so env wins over the file and the API wins over both.
 *
 * Keys are "section.key" as in the INI file (e.g. "tracer.service-name",
 * "exporter.endpoint", "kafka.security.protocol"). A bare key that is unique
 * among the core's sections is accepted too, with '_' read as '-'
 * (e.g. "service_name" -> "tracer.service-name"). The full table of sections,
 * keys, types and OTEL_* variables is in core/src/config_schema.c and README.md.
 * Section [kafka] passes any librdkafka property through; librdkafka validates it
 * when a client is created.
 *
 * The core's table knows only the core's own sections. An application (the ITuna
 * restaurant, say) registers its sections with ituna_config_add_schema() before
 * loading its file; its keys are then checked as strictly as the core's, with the
 * same "file:line: [section] key: ..." messages, and their defaults are read with
 * ituna_config_value(). */
#ifndef ITUNA_CONFIG_H
#define ITUNA_CONFIG_H

#include "ituna/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ituna_config ituna_config;

/* An empty configuration (all defaults). The caller owns the result and must
 * destroy it with ituna_config_destroy(). NULL only when out of memory. Thread-safe. */
ITUNA_API ituna_config *ituna_config_new(void);

/* Deep copy. The caller owns the result (ituna_config_destroy()). Thread-safe if cfg is not being modified. */
ITUNA_API ituna_config *ituna_config_dup(const ituna_config *cfg);

/* Free cfg (NULL is a no-op). Not thread-safe: one thread at a time per handle. */
ITUNA_API void ituna_config_destroy(ituna_config *cfg);

/* Load an INI file. Unknown sections or keys, bad values and syntax errors fail
 * with a message naming file, line and key; on failure cfg is unchanged.
 * Not thread-safe: one thread at a time per handle. */
ITUNA_API ituna_err ituna_config_load_file(ituna_config *cfg, const char *path, char *errstr,
                                           size_t errstr_size);

/* Same as ituna_config_load_file() on an in-memory text; name is used in messages.
 * Not thread-safe: one thread at a time per handle. */
ITUNA_API ituna_err ituna_config_load_string(ituna_config *cfg, const char *name, const char *text,
                                             char *errstr, size_t errstr_size);

/* Apply OTEL_* variables (and ITUNA_KAFKA_BOOTSTRAP, ITUNA_TRACES_FILE) from the
 * process environment. A bad value fails naming the variable; cfg is unchanged.
 * Not thread-safe: one thread at a time per handle (and getenv is not thread-safe). */
ITUNA_API ituna_err ituna_config_load_env(ituna_config *cfg, char *errstr, size_t errstr_size);

/* Set one key (see the key rules above); the value is validated now.
 * Not thread-safe: one thread at a time per handle. */
ITUNA_API ituna_err ituna_config_set(ituna_config *cfg, const char *key, const char *value, char *errstr,
                                     size_t errstr_size);

/* The one load both bindings and C hosts use: the INI file at path (NULL: none),
 * then the environment (when env is non-zero), then overrides (NULL-terminated
 * key, value, ... pairs for ituna_config_set(); may be NULL). Stops at the first
 * error, naming it. Not thread-safe: one thread at a time per handle. */
ITUNA_API ituna_err ituna_config_load(ituna_config *cfg, const char *path, int env,
                                      const char *const *overrides, char *errstr, size_t errstr_size);

/* Value of section.key, or NULL when unset (defaults are not reported here).
 * Borrowed: valid until cfg is modified or destroyed. Thread-safe if cfg is not being modified. */
ITUNA_API const char *ituna_config_get(const ituna_config *cfg, const char *section, const char *key);

/* Iterate over the keys set in one section, in load order: call with *iter = 0
 * first; returns 0 when done. Borrowed pointers as for ituna_config_get().
 * Thread-safe if cfg is not being modified. */
ITUNA_API int ituna_config_next(const ituna_config *cfg, const char *section, size_t *iter, const char **key,
                                const char **value);

/* Kafka bootstrap servers: explicit (may be NULL), then ITUNA_KAFKA_BOOTSTRAP as
 * loaded, then [queue] host:port. NULL if none. Borrowed as ituna_config_get().
 * Thread-safe if cfg is not being modified. */
ITUNA_API const char *ituna_config_bootstrap(const ituna_config *cfg, const char *explicit_bootstrap);

/* Register an application's sections and keys on cfg, from schema text in the INI
 * dialect whose values are key specs "TYPE[(ARGS)] [DEFAULT]", for example:
 *     [rates]
 *     website-ordering = float(0..1e6) 1
 *     [services]
 *     kitchen-service = enum(lua|python) lua
 * TYPE: string, int, ms, delay (ms or "LO-HI"), float, bool, enum, url, path, kvlist;
 * ARGS: "a|b|c" for enum, "LO..HI" (either side may be empty) for int and float.
 * Register before loading files that use these sections; registering the same spec
 * again changes nothing. A section the core owns, a key registered again with another
 * spec, a bad spec or a default its own type rejects fails with a
 * message naming name:line; on failure cfg is unchanged. Copies what it needs (text
 * may be freed on return). Not thread-safe: one thread at a time per handle. */
ITUNA_API ituna_err ituna_config_add_schema(ituna_config *cfg, const char *name, const char *text,
                                            char *errstr, size_t errstr_size);

/* Same as ituna_config_add_schema() on the file at path; with path NULL or empty, the
 * file named by $ITUNA_CONFIG_SCHEMA, and nothing (ITUNA_OK) when that is unset too.
 * Not thread-safe: one thread at a time per handle (and getenv is not thread-safe). */
ITUNA_API ituna_err ituna_config_add_schema_file(ituna_config *cfg, const char *path, char *errstr,
                                                 size_t errstr_size);

/* Value of section.key as set, else the default of the core's or a registered
 * schema's table, else NULL. Borrowed as ituna_config_get().
 * Thread-safe if cfg is not being modified. */
ITUNA_API const char *ituna_config_value(const ituna_config *cfg, const char *section, const char *key);

/* Iterate over every known key (the core's table, then the registered schemas') with
 * its ituna_config_value(): call with *iter = 0 first; returns 0 when done. Borrowed
 * pointers as for ituna_config_get(). Thread-safe if cfg is not being modified. */
ITUNA_API int ituna_config_next_known(const ituna_config *cfg, size_t *iter, const char **section,
                                      const char **key, const char **value);

#ifdef __cplusplus
}
#endif
#endif
