/* config_schema.h - the table of the core's configuration sections and keys (types,
 * OTEL_* variables, defaults, allowed values), the tables applications register
 * (ituna_config_add_schema), and value validation against both. Pure functions over
 * tables: nothing here knows the config store (config.c), which consumes this
 * header, never the other way round. Private to core/. */
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

/* An application's sections and keys (ituna_config_add_schema), owned by the
 * config handle that registered them. NULL or empty: the core's table alone. */
typedef struct ituna_cfg_table {
    ituna_cfg_key *keys;
    size_t n_keys;
    ituna_cfg_section *sections;
    size_t n_sections;
} ituna_cfg_table;

/* The core's whole table, for docs and load_env. */
ITUNA_HIDDEN const ituna_cfg_key *ituna_cfg_schema(size_t *n);
ITUNA_HIDDEN const ituna_cfg_section *ituna_cfg_sections(size_t *n);

/* Lookups in the core's table, then in app (may be NULL). */
ITUNA_HIDDEN const ituna_cfg_section *ituna_cfg_find_section(const ituna_cfg_table *app, const char *section);
/* NULL when the key is in no table (an open section accepts it anyway). */
ITUNA_HIDDEN const ituna_cfg_key *ituna_cfg_find_key(const ituna_cfg_table *app, const char *section,
                                                     const char *key);

/* Check one value. Returns ITUNA_OK, or ITUNA_ERR_CONFIG with a message such as
 * "unknown key" or "expected an integer from 1 to 65535, got 'x'" in msg (no location). */
ITUNA_HIDDEN ituna_err ituna_cfg_check(const ituna_cfg_table *app, const char *section, const char *key,
                                       const char *value, char *msg, size_t msg_size);

/* Resolve a key given to ituna_config_set(): "section.key" (split at the first '.')
 * or a bare key unique among [tracer] [exporter] [messaging] [compat], '_' read as
 * '-' ("exporter" alone names [exporter] type). Writes the section and key into the
 * buffers. ITUNA_ERR_CONFIG when unknown or ambiguous, with a message. */
ITUNA_HIDDEN ituna_err ituna_cfg_resolve(const ituna_cfg_table *app, const char *name, char *section,
                                         size_t section_size, char *key, size_t key_size, char *msg,
                                         size_t msg_size);

/* Parse one line of an application schema, "TYPE[(ARGS)] [DEFAULT]", into k's type,
 * allowed, min, max and def (def and allowed point into spec, which the caller keeps
 * alive; def NULL when absent). TYPE: string, int, ms, delay, float, bool,
 * enum, url, path, kvlist; ARGS: "a|b|c" for enum, "LO..HI" (either side may be empty)
 * for int and float. spec is modified (NULs written). ITUNA_ERR_CONFIG with a message
 * when malformed; the default is checked against the type. */
ITUNA_HIDDEN ituna_err ituna_cfg_parse_spec(char *spec, ituna_cfg_key *k, char *msg, size_t msg_size);

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

#endif
