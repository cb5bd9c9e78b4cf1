/* config.c - the configuration store: an ordered list of (section, key, value,
 * origin) entries filled from INI text, the process environment and API calls,
 * later loads replacing earlier values; the INI parser; typed reads with the
 * schema's defaults. Keys, types and variables live in config_schema.c.
 *
 * INI dialect (a subset of Python's ConfigParser, so the seed's file loads):
 * "[section]"; "key = value" or "key: value" (split at the first '=' or ':');
 * whole-line comments starting with ';' or '#'; inline comments after blank +
 * ';' or '#'; blanks trimmed; one pair of matching quotes around a value removed.
 * Keys and sections are case-sensitive. No continuation lines, no interpolation.
 * A key repeated within one file is an error (ConfigParser's strict mode agrees);
 * a repeated section header just reopens the section.
 * Every load parses into a scratch list first and merges only on success, so a
 * failed load leaves the handle as it was.
 *
 * Sections the core does not own (an application's) are known once the application
 * registered its schema on the handle (ituna_config_add_schema): an INI text in the
 * same dialect whose values are key specs, "TYPE[(ARGS)] [DEFAULT]" (config_schema.c
 * parses them). This file consumes the schema module; the schema module knows
 * nothing of the store. */
#include "config_schema.h"

#include <ctype.h>
#include <errno.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct cfg_entry {
    char *section, *key, *value;
    char *origin; /* "path:line", "env VAR" or "api" */
    int line;     /* INI line, for duplicate-key messages; 0 otherwise */
} cfg_entry;

typedef struct cfg_list {
    cfg_entry *v;
    size_t n, cap;
} cfg_list;

/* The registered application schemas: every string of the table is owned (strdup). */
typedef struct app_schema {
    ituna_cfg_table table;
} app_schema;

struct ituna_config {
    cfg_list list;
    char *queue_addr; /* "[queue] host:port", rebuilt after every change */
    app_schema app;
};

/* ---- the entry list ----------------------------------------------------------- */

static void entry_free(cfg_entry *e) {
    free(e->section);
    free(e->key);
    free(e->value);
    free(e->origin);
}

static void list_free(cfg_list *l) {
    for (size_t i = 0; i < l->n; i++) entry_free(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static long list_find(const cfg_list *l, const char *section, const char *key) {
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].section, section) == 0 && strcmp(l->v[i].key, key) == 0) return (long)i;
    return -1;
}

/* Set or replace; a replaced entry keeps its place in load order. 0 on OOM. */
static int list_set(cfg_list *l, const char *section, const char *key, const char *value, const char *origin,
                    int line) {
    cfg_entry e = { strdup(section), strdup(key), strdup(value), strdup(origin), line };
    if (!e.section || !e.key || !e.value || !e.origin) {
        entry_free(&e);
        return 0;
    }
    long at = list_find(l, section, key);
    if (at >= 0) {
        entry_free(&l->v[at]);
        l->v[at] = e;
        return 1;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        cfg_entry *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            entry_free(&e);
            return 0;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = e;
    return 1;
}

static int list_copy(cfg_list *dst, const cfg_list *src) {
    memset(dst, 0, sizeof *dst);
    for (size_t i = 0; i < src->n; i++) {
        const cfg_entry *e = &src->v[i];
        if (!list_set(dst, e->section, e->key, e->value, e->origin, e->line)) {
            list_free(dst);
            return 0;
        }
    }
    return 1;
}

/* Rebuild the cached "host:port" that ituna_config_bootstrap() lends out. 0 on OOM. */
static int rebuild_queue_addr(ituna_config *cfg) {
    free(cfg->queue_addr);
    cfg->queue_addr = NULL;
    const char *host = ituna_config_get(cfg, "queue", "host");
    if (!host || !*host) return 1;
    const char *port = ituna_config_get(cfg, "queue", "port");
    if (asprintf(&cfg->queue_addr, "%s:%s", host, port ? port : "9092") < 0) {
        cfg->queue_addr = NULL;
        return 0;
    }
    return 1;
}

/* Apply a scratch list: all of it or (on OOM) none of it. */
static ituna_err merge(ituna_config *cfg, const cfg_list *add, char *errstr, size_t errstr_size) {
    cfg_list next;
    if (!list_copy(&next, &cfg->list)) goto oom;
    for (size_t i = 0; i < add->n; i++) {
        const cfg_entry *e = &add->v[i];
        if (!list_set(&next, e->section, e->key, e->value, e->origin, e->line)) {
            list_free(&next);
            goto oom;
        }
    }
    cfg_list old = cfg->list;
    char *old_addr = cfg->queue_addr;
    cfg->list = next;
    cfg->queue_addr = NULL;
    if (!rebuild_queue_addr(cfg)) {
        list_free(&cfg->list);
        cfg->list = old;
        cfg->queue_addr = old_addr;
        goto oom;
    }
    list_free(&old);
    free(old_addr);
    return ITUNA_OK;
oom:
    return ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
}

/* ---- handle ------------------------------------------------------------------- */

ituna_config *ituna_config_new(void) {
    return calloc(1, sizeof(ituna_config));
}

static void app_key_free(ituna_cfg_key *k) {
    free((char *)k->section);
    free((char *)k->key);
    free((char *)k->def);
    free((char *)k->allowed);
}

static void app_free(app_schema *a) {
    for (size_t i = 0; i < a->table.n_keys; i++) app_key_free(&a->table.keys[i]);
    for (size_t i = 0; i < a->table.n_sections; i++) free((char *)a->table.sections[i].name);
    free(a->table.keys);
    free(a->table.sections);
    memset(a, 0, sizeof *a);
}

static int app_copy(app_schema *dst, const app_schema *src);

ituna_config *ituna_config_dup(const ituna_config *cfg) {
    if (!cfg) return NULL;
    ituna_config *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (!list_copy(&c->list, &cfg->list) || !rebuild_queue_addr(c) || !app_copy(&c->app, &cfg->app)) {
        ituna_config_destroy(c);
        return NULL;
    }
    return c;
}

void ituna_config_destroy(ituna_config *cfg) {
    if (!cfg) return;
    list_free(&cfg->list);
    free(cfg->queue_addr);
    app_free(&cfg->app);
    free(cfg);
}

/* ---- INI parsing ---------------------------------------------------------------- */

static int is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Trim s[0..*n) in place: returns the new start, updates *n. */
static char *trim(char *s, size_t *n) {
    while (*n && is_blank(*s)) s++, (*n)--;
    while (*n && is_blank(s[*n - 1])) (*n)--;
    s[*n] = '\0';
    return s;
}

/* Cut an inline comment (';' or '#' after a blank, outside leading quotes) and
 * the quotes themselves from the raw text after the delimiter; returns the value. */
static char *clean_value(char *raw) {
    char *v = raw;
    while (is_blank(*v)) v++;
    size_t n = strlen(v), from = 0;
    if (v[0] == '"' || v[0] == '\'') {
        char *close = strchr(v + 1, v[0]);
        if (close) from = (size_t)(close - v) + 1;
    }
    for (size_t i = from; i < n; i++) {
        int after_blank = i > 0 ? is_blank(v[i - 1]) : v > raw;
        if ((v[i] == ';' || v[i] == '#') && after_blank) {
            n = i;
            break;
        }
    }
    v = trim(v, &n);
    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
        v[n - 1] = '\0';
        v++;
    }
    return v;
}

/* Parse text into out. On failure errstr holds "NAME:LINE: ..." */
/* Parse text into out, checking every entry against the core's and app's tables;
 * raw != 0 checks nothing (an application schema's own text). */
static ituna_err parse_ini(const ituna_cfg_table *app, int raw, const char *name, const char *text,
                           cfg_list *out, char *errstr, size_t errstr_size) {
    size_t len = strlen(text);
    char *buf = malloc(len + 1);
    if (!buf) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
    memcpy(buf, text, len + 1);

    ituna_err rc = ITUNA_OK;
    char *section = NULL; /* points into buf */
    char msg[600];
    char origin[512];
    int lineno = 0;
    char *p = buf;
    if ((unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF) p += 3;

    while (*p) {
        char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char *next = nl ? nl + 1 : p + n;
        lineno++;
        char *line = trim(p, &n);
        p = next;
        if (n == 0 || line[0] == ';' || line[0] == '#') continue;

        if (line[0] == '[') {
            char *close = strchr(line, ']');
            if (!close) {
                rc = ituna_set_err(errstr, errstr_size, ITUNA_ERR_PARSE,
                                   "%s:%d: unterminated section header '%s' (missing ']')", name, lineno,
                                   line);
                break;
            }
            char *after = close + 1;
            while (is_blank(*after)) after++;
            if (*after && *after != ';' && *after != '#') {
                rc = ituna_set_err(errstr, errstr_size, ITUNA_ERR_PARSE,
                                   "%s:%d: unexpected text after section header: '%s'", name, lineno, after);
                break;
            }
            size_t sn = (size_t)(close - line - 1);
            section = trim(line + 1, &sn);
            if (!*section) {
                rc = ituna_set_err(errstr, errstr_size, ITUNA_ERR_PARSE, "%s:%d: empty section name", name,
                                   lineno);
                break;
            }
            if (!raw && !ituna_cfg_find_section(app, section)) {
                ituna_cfg_check(app, section, "", "", msg, sizeof msg);
                rc = ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG, "%s:%d: [%s]: %s", name, lineno,
                                   section, msg);
                break;
            }
            continue;
        }

        size_t dpos = strcspn(line, "=:");
        if (line[dpos] == '\0') {
            rc = ituna_set_err(errstr, errstr_size, ITUNA_ERR_PARSE,
                               "%s:%d: expected 'key = value' or '[section]', got '%s'", name, lineno, line);
            break;
        }
        line[dpos] = '\0';
        char *value = clean_value(line + dpos + 1);
        size_t kn = dpos;
        char *key = trim(line, &kn);
        if (!*key) {
            rc = ituna_set_err(errstr, errstr_size, ITUNA_ERR_PARSE, "%s:%d: missing key before '='", name,
                               lineno);
            break;
        }
        if (!section) {
            rc = ituna_set_err(errstr, errstr_size, ITUNA_ERR_PARSE,
                               "%s:%d: key '%s' appears before any [section]", name, lineno, key);
            break;
        }
        rc = raw ? ITUNA_OK : ituna_cfg_check(app, section, key, value, msg, sizeof msg);
        if (rc != ITUNA_OK) {
            ituna_set_err(errstr, errstr_size, rc, "%s:%d: [%s] %s: %s", name, lineno, section, key, msg);
            break;
        }
        long dup = list_find(out, section, key);
        if (dup >= 0) {
            rc = ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG,
                               "%s:%d: [%s] %s: duplicate key (first set on line %d)", name, lineno, section,
                               key, out->v[dup].line);
            break;
        }
        snprintf(origin, sizeof origin, "%s:%d", name, lineno);
        if (!list_set(out, section, key, value, origin, lineno)) {
            rc = ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
            break;
        }
    }
    free(buf);
    return rc;
}

ituna_err ituna_config_load_string(ituna_config *cfg, const char *name, const char *text, char *errstr,
                                   size_t errstr_size) {
    if (!cfg || !text)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "config or text is NULL");
    if (!name) name = "<string>";
    cfg_list tmp = { 0 };
    ituna_err rc = parse_ini(&cfg->app.table, 0, name, text, &tmp, errstr, errstr_size);
    if (rc == ITUNA_OK) rc = merge(cfg, &tmp, errstr, errstr_size);
    list_free(&tmp);
    return rc;
}

/* The whole file as a NUL-terminated text (*out, caller frees), or an error naming path. */
static ituna_err read_text(const char *path, char **out, char *errstr, size_t errstr_size) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    ituna_buf b;
    ituna_buf_init(&b);
    char chunk[8192];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) ituna_buf_append(&b, chunk, got);
    int read_err = ferror(f);
    int saved = errno;
    fclose(f);
    ituna_buf_putc(&b, '\0');
    ituna_err rc = ITUNA_OK;
    if (read_err)
        rc = ituna_set_err(errstr, errstr_size, ITUNA_ERR_IO, "%s: read error: %s", path, strerror(saved));
    else if (b.oom)
        rc = ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "%s: out of memory", path);
    else if (memchr(b.data, '\0', b.len - 1))
        rc = ituna_set_err(errstr, errstr_size, ITUNA_ERR_PARSE,
                           "%s: contains a NUL byte; not an INI text file", path);
    if (rc == ITUNA_OK) {
        *out = (char *)b.data; /* handed over */
        return ITUNA_OK;
    }
    ituna_buf_free(&b);
    return rc;
}

ituna_err ituna_config_load_file(ituna_config *cfg, const char *path, char *errstr, size_t errstr_size) {
    if (!cfg || !path)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "config or path is NULL");
    char *text = NULL;
    ituna_err rc = read_text(path, &text, errstr, errstr_size);
    if (rc == ITUNA_OK) rc = ituna_config_load_string(cfg, path, text, errstr, errstr_size);
    free(text);
    return rc;
}

/* ---- environment ---------------------------------------------------------------- */

/* The OpenTelemetry SDK's rules for its own variables (OTEL_*): enum values are
 * case-insensitive; a boolean is true only for "true" in any case; an invalid value
 * is a warning naming the variable and leaves the default (or the next, more general
 * variable) in force, so a typo never stops a service. Our own ITUNA_* variables
 * keep strict errors, as the INI file does. */
static int otel_normalise(const ituna_cfg_key *k, const char *var, char *v) {
    if (strncmp(var, "OTEL_", 5) != 0) return 0;
    if (k->type == ITUNA_CFG_ENUM)
        for (char *p = v; *p; p++) *p = (char)tolower((unsigned char)*p);
    if (k->type == ITUNA_CFG_BOOL) {
        if (strcasecmp(v, "true") != 0 && strcasecmp(v, "false") != 0)
            ituna_log(ITUNA_LOG_WARN, "environment %s: only 'true' enables it, got '%s': read as false", var,
                      v);
        strcpy(v, strcasecmp(v, "true") == 0 ? "true" : "false"); /* both fit in any non-empty value */
    }
    return 1;
}

ituna_err ituna_config_load_env(ituna_config *cfg, char *errstr, size_t errstr_size) {
    if (!cfg) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "config is NULL");
    size_t n;
    const ituna_cfg_key *schema = ituna_cfg_schema(&n);
    cfg_list tmp = { 0 };
    ituna_err rc = ITUNA_OK;
    char msg[600], origin[128];
    for (size_t i = 0; i < n && rc == ITUNA_OK; i++) {
        const ituna_cfg_key *k = &schema[i];
        /* env[0] wins over env[1]; empty (or blank) means unset, per the OpenTelemetry spec */
        for (int e = 0; e < 2 && k->env[e] && rc == ITUNA_OK; e++) {
            const char *var = k->env[e], *raw = getenv(var);
            if (!raw) continue;
            size_t len = strlen(raw);
            char *buf = malloc(len + 6); /* room for "false" */
            if (!buf) {
                rc = ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
                break;
            }
            memcpy(buf, raw, len + 1);
            char *v = trim(buf, &len);
            if (!*v) {
                free(buf);
                continue;
            }
            int otel = otel_normalise(k, var, v);
            ituna_err bad = ituna_cfg_check(NULL, k->section, k->key, v, msg, sizeof msg);
            if (bad != ITUNA_OK && otel) {
                ituna_log(ITUNA_LOG_WARN, "environment %s: %s; ignored, the default stays", var, msg);
                free(buf);
                continue;
            }
            if (bad != ITUNA_OK) {
                rc = ituna_set_err(errstr, errstr_size, bad, "environment %s: %s", var, msg);
            } else {
                snprintf(origin, sizeof origin, "env %s", var);
                if (!list_set(&tmp, k->section, k->key, v, origin, 0))
                    rc = ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
            }
            free(buf);
            break;
        }
    }
    if (rc == ITUNA_OK) rc = merge(cfg, &tmp, errstr, errstr_size);
    list_free(&tmp);
    return rc;
}

/* ---- API ------------------------------------------------------------------------ */

ituna_err ituna_config_set(ituna_config *cfg, const char *key, const char *value, char *errstr,
                           size_t errstr_size) {
    if (!cfg || !key || !value)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "config, key or value is NULL");
    char section[128], name[256], msg[600];
    ituna_err rc =
        ituna_cfg_resolve(&cfg->app.table, key, section, sizeof section, name, sizeof name, msg, sizeof msg);
    if (rc != ITUNA_OK) return ituna_set_err(errstr, errstr_size, rc, "%s", msg);
    rc = ituna_cfg_check(&cfg->app.table, section, name, value, msg, sizeof msg);
    if (rc != ITUNA_OK) return ituna_set_err(errstr, errstr_size, rc, "[%s] %s: %s", section, name, msg);
    cfg_list tmp = { 0 };
    if (!list_set(&tmp, section, name, value, "api", 0))
        rc = ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
    else
        rc = merge(cfg, &tmp, errstr, errstr_size);
    list_free(&tmp);
    return rc;
}

ituna_err ituna_config_load(ituna_config *cfg, const char *path, int env, const char *const *overrides,
                            char *errstr, size_t errstr_size) {
    if (!cfg) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "config is NULL");
    ituna_err rc = path ? ituna_config_load_file(cfg, path, errstr, errstr_size) : ITUNA_OK;
    if (!rc && env) rc = ituna_config_load_env(cfg, errstr, errstr_size);
    for (size_t i = 0; !rc && overrides && overrides[i]; i += 2)
        if (overrides[i + 1]) rc = ituna_config_set(cfg, overrides[i], overrides[i + 1], errstr, errstr_size);
    return rc;
}

const char *ituna_config_get(const ituna_config *cfg, const char *section, const char *key) {
    if (!cfg || !section || !key) return NULL;
    long at = list_find(&cfg->list, section, key);
    return at >= 0 ? cfg->list.v[at].value : NULL;
}

const char *ituna_config_origin(const ituna_config *cfg, const char *section, const char *key) {
    if (!cfg || !section || !key) return NULL;
    long at = list_find(&cfg->list, section, key);
    return at >= 0 ? cfg->list.v[at].origin : NULL;
}

ituna_cfg_source ituna_config_source(const ituna_config *cfg, const char *section, const char *key) {
    if (!cfg || !section || !key) return ITUNA_CFG_SRC_UNSET;
    long at = list_find(&cfg->list, section, key);
    if (at < 0) return ITUNA_CFG_SRC_UNSET;
    const cfg_entry *e = &cfg->list.v[at];
    if (e->line > 0) return ITUNA_CFG_SRC_FILE; /* only INI entries have a line */
    if (strncmp(e->origin, "env ", 4) == 0) return ITUNA_CFG_SRC_ENV;
    return ITUNA_CFG_SRC_API;
}

int ituna_config_next(const ituna_config *cfg, const char *section, size_t *iter, const char **key,
                      const char **value) {
    if (!cfg || !section || !iter) return 0;
    for (size_t i = *iter; i < cfg->list.n; i++) {
        if (strcmp(cfg->list.v[i].section, section) != 0) continue;
        if (key) *key = cfg->list.v[i].key;
        if (value) *value = cfg->list.v[i].value;
        *iter = i + 1;
        return 1;
    }
    *iter = cfg->list.n;
    return 0;
}

const char *ituna_config_bootstrap(const ituna_config *cfg, const char *explicit_bootstrap) {
    if (explicit_bootstrap && *explicit_bootstrap) return explicit_bootstrap;
    if (!cfg) return NULL;
    const char *v = ituna_config_get(cfg, "queue", "bootstrap");
    if (v && *v) return v;
    if (cfg->queue_addr) return cfg->queue_addr;
    v = ituna_config_get(cfg, "kafka", "bootstrap.servers");
    return v && *v ? v : NULL;
}

/* ---- typed reads ---------------------------------------------------------------- */

/* The set value, else the schema's default, else NULL. */
static const char *effective(const ituna_config *cfg, const char *section, const char *key) {
    const char *v = ituna_config_get(cfg, section, key);
    if (v) return v;
    const ituna_cfg_key *k = ituna_cfg_find_key(&cfg->app.table, section, key);
    return k ? k->def : NULL;
}

const char *ituna_config_str(const ituna_config *cfg, const char *section, const char *key, const char *def) {
    const char *v = effective(cfg, section, key);
    return v ? v : def;
}

int64_t ituna_config_int(const ituna_config *cfg, const char *section, const char *key, int64_t def) {
    int64_t out;
    return ituna_cfg_parse_int(effective(cfg, section, key), &out) ? out : def;
}

double ituna_config_double(const ituna_config *cfg, const char *section, const char *key, double def) {
    double out;
    return ituna_cfg_parse_double(effective(cfg, section, key), &out) ? out : def;
}

int ituna_config_bool(const ituna_config *cfg, const char *section, const char *key, int def) {
    int out;
    return ituna_cfg_parse_bool(effective(cfg, section, key), &out) ? out : def;
}

int64_t ituna_config_delay_ms(const ituna_config *cfg, const char *section, const char *key, int64_t def) {
    int64_t lo, hi;
    if (!ituna_cfg_parse_delay(effective(cfg, section, key), &lo, &hi)) return def;
    if (hi <= lo) return lo;
    return lo + (int64_t)(ituna_random_u64() % (uint64_t)(hi - lo + 1));
}

const char *ituna_config_value(const ituna_config *cfg, const char *section, const char *key) {
    if (!cfg || !section || !key) return NULL;
    return effective(cfg, section, key);
}

int ituna_config_next_known(const ituna_config *cfg, size_t *iter, const char **section, const char **key,
                            const char **value) {
    if (!cfg || !iter) return 0;
    size_t n_core;
    const ituna_cfg_key *core = ituna_cfg_schema(&n_core);
    size_t i = *iter;
    const ituna_cfg_key *k = i < n_core                           ? &core[i]
                             : i - n_core < cfg->app.table.n_keys ? &cfg->app.table.keys[i - n_core]
                                                                  : NULL;
    if (!k) return 0;
    if (section) *section = k->section;
    if (key) *key = k->key;
    if (value) *value = effective(cfg, k->section, k->key);
    *iter = i + 1;
    return 1;
}

/* ---- cross-key checks ---------------------------------------------------------- */

ituna_err ituna_config_validate(const ituna_config *cfg, char *errstr, size_t errstr_size) {
    if (!cfg) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "config is NULL");
    /* The OTel SDK spec: maxExportBatchSize must be <= maxQueueSize. Only a batch
     * size actually set can break it; the default one follows a smaller queue. */
    const char *bo = ituna_config_origin(cfg, "exporter", "max-export-batch-size");
    if (!bo) return ITUNA_OK;
    int64_t batch = ituna_config_int(cfg, "exporter", "max-export-batch-size", 512);
    int64_t queue = ituna_config_int(cfg, "exporter", "max-queue-size", 2048);
    if (batch > queue) {
        const char *qo = ituna_config_origin(cfg, "exporter", "max-queue-size");
        return ituna_set_err(
            errstr, errstr_size, ITUNA_ERR_CONFIG,
            "%s: [exporter] max-export-batch-size %lld must not exceed max-queue-size (%lld, %s)", bo,
            (long long)batch, (long long)queue, qo ? qo : "default");
    }
    return ITUNA_OK;
}

/* ---- application schemas ---------------------------------------------------------- */

/* ---- application schemas ---------------------------------------------------------- */

static char *dup_or_null(const char *s, int *ok) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *ok = 0;
    return d;
}

/* Append a copy of k (strings duplicated). 0 on OOM. */
static int app_add_key(app_schema *a, const ituna_cfg_key *k) {
    ituna_cfg_key *v = realloc(a->table.keys, (a->table.n_keys + 1) * sizeof *v);
    if (!v) return 0;
    a->table.keys = v;
    int ok = 1;
    ituna_cfg_key c = *k;
    c.section = dup_or_null(k->section, &ok);
    c.key = dup_or_null(k->key, &ok);
    c.def = dup_or_null(k->def, &ok);
    c.allowed = dup_or_null(k->allowed, &ok);
    c.env[0] = c.env[1] = NULL;
    c.doc = NULL;
    if (!ok) {
        app_key_free(&c);
        return 0;
    }
    a->table.keys[a->table.n_keys++] = c;
    return 1;
}

static int app_add_section(app_schema *a, const char *name) {
    ituna_cfg_section *v = realloc(a->table.sections, (a->table.n_sections + 1) * sizeof *v);
    if (!v) return 0;
    a->table.sections = v;
    char *n = strdup(name);
    if (!n) return 0;
    a->table.sections[a->table.n_sections++] = (ituna_cfg_section){ n, 0, ITUNA_CFG_ANY, NULL };
    return 1;
}

static int app_copy(app_schema *dst, const app_schema *src) {
    memset(dst, 0, sizeof *dst);
    for (size_t i = 0; i < src->table.n_sections; i++)
        if (!app_add_section(dst, src->table.sections[i].name)) goto oom;
    for (size_t i = 0; i < src->table.n_keys; i++)
        if (!app_add_key(dst, &src->table.keys[i])) goto oom;
    return 1;
oom:
    app_free(dst);
    return 0;
}

static int same_str(const char *a, const char *b) {
    return a == b || (a && b && strcmp(a, b) == 0);
}

static int same_spec(const ituna_cfg_key *a, const ituna_cfg_key *b) {
    return a->type == b->type && a->min == b->min && a->max == b->max && same_str(a->def, b->def) &&
           same_str(a->allowed, b->allowed);
}

ituna_err ituna_config_add_schema(ituna_config *cfg, const char *name, const char *text, char *errstr,
                                  size_t errstr_size) {
    if (!cfg || !text)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "config or schema text is NULL");
    if (!name) name = "<schema>";
    cfg_list raw = { 0 };
    ituna_err rc = parse_ini(NULL, 1, name, text, &raw, errstr, errstr_size);
    if (rc != ITUNA_OK) return rc;
    /* build the extended table aside: the handle changes only when all of it is good */
    app_schema next;
    if (!app_copy(&next, &cfg->app)) {
        list_free(&raw);
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
    }
    char msg[600];
    for (size_t i = 0; i < raw.n && rc == ITUNA_OK; i++) {
        const cfg_entry *e = &raw.v[i];
        const ituna_cfg_section *owner = ituna_cfg_find_section(NULL, e->section);
        if (owner) {
            rc = ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG,
                               "%s: [%s] %s: the core owns section [%s]; an application names its own",
                               e->origin, e->section, e->key, e->section);
            break;
        }
        char *spec = strdup(e->value);
        if (!spec) {
            rc = ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
            break;
        }
        ituna_cfg_key k = { e->section, e->key, ITUNA_CFG_STRING, { NULL, NULL }, NULL, NULL, 0, 0, NULL };
        rc = ituna_cfg_parse_spec(spec, &k, msg, sizeof msg);
        const ituna_cfg_key *old = ituna_cfg_find_key(&next.table, e->section, e->key);
        if (rc != ITUNA_OK)
            ituna_set_err(errstr, errstr_size, rc, "%s: [%s] %s: %s", e->origin, e->section, e->key, msg);
        else if (old && same_spec(old, &k))
            ; /* the same schema registered again: nothing changes */
        else if (old)
            rc = ituna_set_err(errstr, errstr_size, ITUNA_ERR_CONFIG,
                               "%s: [%s] %s: already registered with another spec", e->origin, e->section,
                               e->key);
        else if ((!ituna_cfg_find_section(&next.table, e->section) && !app_add_section(&next, e->section)) ||
                 !app_add_key(&next, &k))
            rc = ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
        free(spec);
    }
    list_free(&raw);
    if (rc != ITUNA_OK) {
        app_free(&next);
        return rc;
    }
    app_free(&cfg->app);
    cfg->app = next;
    return ITUNA_OK;
}

ituna_err ituna_config_add_schema_file(ituna_config *cfg, const char *path, char *errstr,
                                       size_t errstr_size) {
    if (!cfg) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "config is NULL");
    if (!path || !*path) path = getenv("ITUNA_CONFIG_SCHEMA");
    if (!path || !*path) return ITUNA_OK;
    char *text = NULL;
    ituna_err rc = read_text(path, &text, errstr, errstr_size);
    if (rc == ITUNA_OK) rc = ituna_config_add_schema(cfg, path, text, errstr, errstr_size);
    free(text);
    return rc;
}
