/* config_schema.h - the table of known configuration sections and keys (types,
 * OTEL_* variables, defaults, allowed values), value validation, and the
 * cross-key check the tracer runs at creation. Private to core/. */
#ifndef ITUNA_CONFIG_SCHEMA_H
#define ITUNA_CONFIG_SCHEMA_H

#include "internal.h"

typedef enum ituna_cfg_type {
    ITUNA_CFG_STRING, /* any text */
    ITUNA_CFG_INT,    /* integer in [min, max] */
    ITUNA_CFG_MS,     /* non-negative integer, milliseconds */
    ITUNA_CFG_DELAY,  /* ms, or a range "LO-HI" drawn uniformly per use */
    ITUNA_CFG_FLOAT,  /* number in [min, max] */
    ITUNA_CFG_BOOL,   /* true/false/1/0/yes/no/on/off, any case */
    ITUNA_CFG_ENUM,   /* one of allowed ("a|b|c") */
    ITUNA_CFG_URL,    /* http:// or https:// with a host */
    ITUNA_CFG_PATH,   /* non-empty file path */
    ITUNA_CFG_KVLIST, /* k=v,k=v with percent-encoded values (OTEL_RESOURCE_ATTRIBUTES, headers) */
    ITUNA_CFG_ANY     /* passed through unchecked (librdkafka validates [kafka]) */
} ituna_cfg_type;

typedef struct ituna_cfg_key {
    const char *section;
    const char *key;
    ituna_cfg_type type;
    const char *env[2];  /* env[0] wins over env[1]; NULL when none */
    const char *def;     /* default as text, NULL when none */
    const char *allowed; /* ENUM: "a|b|c" */
    double min, max;     /* INT and FLOAT range */
    const char *doc;
} ituna_cfg_key;

typedef struct ituna_cfg_section {
    const char *name;
    int open; /* 1: any key accepted, with open_type */
    ituna_cfg_type open_type;
    const char *doc;
} ituna_cfg_section;

/* The whole table, for docs and load_env. */
ITUNA_HIDDEN const ituna_cfg_key *ituna_cfg_schema(size_t *n);
ITUNA_HIDDEN const ituna_cfg_section *ituna_cfg_sections(size_t *n);

ITUNA_HIDDEN const ituna_cfg_section *ituna_cfg_find_section(const char *section);
/* NULL when the key is not in the table (an open section accepts it anyway). */
ITUNA_HIDDEN const ituna_cfg_key *ituna_cfg_find_key(const char *section, const char *key);

/* Check one value. Returns ITUNA_OK, or ITUNA_ERR_CONFIG with a message such as
 * "unknown key" or "expected an integer from 1 to 65535, got 'x'" in msg (no location). */
ITUNA_HIDDEN ituna_err ituna_cfg_check(const char *section, const char *key, const char *value, char *msg,
                                       size_t msg_size);

/* Resolve a key given to ituna_config_set(): "section.key" (split at the first '.')
 * or a bare key unique among [tracer] [exporter] [messaging] [compat], '_' read as
 * '-'. Writes the section and key into the buffers. ITUNA_ERR_CONFIG when unknown
 * or ambiguous, with a message. */
ITUNA_HIDDEN ituna_err ituna_cfg_resolve(const char *name, char *section, size_t section_size, char *key,
                                         size_t key_size, char *msg, size_t msg_size);

/* Parse "k=v,k=v" (OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS): members
 * trimmed, values percent-decoded, empty members skipped. cb gets NUL-terminated
 * key and value (valid only during the call) and returns 0 to go on. Returns
 * ITUNA_ERR_CONFIG with a message on bad syntax, ITUNA_ERR_NOMEM, or ITUNA_OK. */
typedef int (*ituna_kv_cb)(void *opaque, const char *key, const char *value);
ITUNA_HIDDEN ituna_err ituna_kvlist_parse(const char *text, ituna_kv_cb cb, void *opaque, char *msg,
                                          size_t msg_size);

/* Parse a DELAY value: "140" gives lo = hi = 140, "2000-4000" gives 2000 and 4000.
 * 1 on success, 0 when malformed. */
ITUNA_HIDDEN int ituna_cfg_parse_delay(const char *s, int64_t *lo, int64_t *hi);
/* Strict parsers shared with config.c: whole string, surrounding blanks allowed. */
ITUNA_HIDDEN int ituna_cfg_parse_int(const char *s, int64_t *out);
ITUNA_HIDDEN int ituna_cfg_parse_double(const char *s, double *out);
ITUNA_HIDDEN int ituna_cfg_parse_bool(const char *s, int *out);

/* Where section.key got its value: "path:line", "env VAR" or "api"; NULL when unset.
 * Borrowed as ituna_config_get(). (config.c) */
ITUNA_HIDDEN const char *ituna_config_origin(const ituna_config *cfg, const char *section, const char *key);

/* Kind of source that set section.key, ranked as the precedence rule "API over
 * environment over file" needs. (config.c) */
typedef enum ituna_cfg_source {
    ITUNA_CFG_SRC_UNSET = 0,
    ITUNA_CFG_SRC_FILE = 1,
    ITUNA_CFG_SRC_ENV = 2,
    ITUNA_CFG_SRC_API = 3
} ituna_cfg_source;
ITUNA_HIDDEN ituna_cfg_source ituna_config_source(const ituna_config *cfg, const char *section,
                                                  const char *key);

/* A DELAY key in ms: a plain value as is, a range "LO-HI" drawn uniformly on each
 * call; def when unset or malformed. Thread-safe if cfg is not being modified. (config.c) */
ITUNA_HIDDEN int64_t ituna_config_delay_ms(const ituna_config *cfg, const char *section, const char *key,
                                           int64_t def);

/* Checks that need several keys: a max-export-batch-size that was set must not
 * exceed max-queue-size (set or default); the message starts with where the batch
 * size came from ("path:line", "env VAR" or "api"). The tracer calls it at creation. */
ITUNA_HIDDEN ituna_err ituna_config_validate(const ituna_config *cfg, char *errstr, size_t errstr_size);

#endif
