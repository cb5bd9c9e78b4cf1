/* json_writer.c - the checked JSON writer of ituna/json.h: separators, the limits of
 * JSON text (no NUL in strings, finite numbers, bounded nesting) and the path of the
 * value that could not be written, for hosts that walk their own values. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ituna/json.h"

/* The separator before a value: a comma after an earlier array item. Object members
 * get theirs from the key. */
static void before_value(ituna_json_writer *w) {
    if (w->depth > 0 && w->more[w->depth] == 1) ituna_json_put(&w->b, ",", 1);
    if (w->depth > 0 && w->more[w->depth] != 2) w->more[w->depth] = 1;
}

int ituna_json_write_fail(ituna_json_writer *w, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->why, sizeof w->why, fmt, ap);
    va_end(ap);
    return 0;
}

static int no_nul(ituna_json_writer *w, const char *s, size_t n, const char *what) {
    return memchr(s, 0, n) ? ituna_json_write_fail(w, "%s contains a NUL byte", what) : 1;
}

int ituna_json_write_string(ituna_json_writer *w, const char *s, size_t n) {
    if (!no_nul(w, s, n, "string")) return 0;
    before_value(w);
    ituna_json_put_string(&w->b, s, n);
    return 1;
}

int ituna_json_write_int(ituna_json_writer *w, int64_t v) {
    before_value(w);
    ituna_json_put_int(&w->b, v);
    return 1;
}

int ituna_json_write_double(ituna_json_writer *w, double d) {
    if (!isfinite(d)) return ituna_json_write_fail(w, "%g is not a JSON number", d);
    before_value(w);
    ituna_json_put_double(&w->b, d);
    return 1;
}

int ituna_json_write_bool(ituna_json_writer *w, int v) {
    before_value(w);
    ituna_json_put(&w->b, v ? "true" : "false", v ? 4 : 5);
    return 1;
}

int ituna_json_write_null(ituna_json_writer *w) {
    before_value(w);
    ituna_json_put(&w->b, "null", 4);
    return 1;
}

int ituna_json_write_begin(ituna_json_writer *w, int array) {
    if (w->depth >= ITUNA_JSON_MAX_DEPTH)
        return ituna_json_write_fail(w, "nested deeper than %d (a cycle?)", ITUNA_JSON_MAX_DEPTH);
    before_value(w);
    ituna_json_put(&w->b, array ? "[" : "{", 1);
    w->more[++w->depth] = 0;
    return 1;
}

int ituna_json_write_key(ituna_json_writer *w, const char *s, size_t n) {
    if (!no_nul(w, s, n, "object key")) return 0;
    if (w->more[w->depth]) ituna_json_put(&w->b, ",", 1);
    w->more[w->depth] = 2; /* the value that follows needs no comma of its own */
    ituna_json_put_string(&w->b, s, n);
    ituna_json_put(&w->b, ":", 1);
    return 1;
}

int ituna_json_write_end(ituna_json_writer *w, int array) {
    ituna_json_put(&w->b, array ? "]" : "}", 1);
    w->depth--;
    return 1;
}

/* Put part before the path built so far. */
static int prepend(ituna_json_writer *w, const char *part) {
    size_t n = strlen(part);
    if (n > sizeof w->path - 1 - w->plen) {
        w->elided = 1;
        return 0;
    }
    w->plen += n;
    memcpy(w->path + sizeof w->path - 1 - w->plen, part, n);
    return 0;
}

int ituna_json_failed_at_index(ituna_json_writer *w, long long i) {
    char part[32];
    snprintf(part, sizeof part, "[%lld]", i);
    return prepend(w, part);
}

int ituna_json_failed_at_key(ituna_json_writer *w, const char *key) {
    char part[48];
    snprintf(part, sizeof part, ".%.40s", key);
    return prepend(w, part);
}

char *ituna_json_write_finish(ituna_json_writer *w, int ok, size_t *len, char *err, size_t err_size) {
    err[0] = '\0';
    if (ok && !w->b.oom) ituna_json_put(&w->b, "", 1); /* callers may treat it as a C string */
    if (ok && !w->b.oom) {
        *len = w->b.len - 1;
        return w->b.p;
    }
    free(w->b.p);
    w->b.p = NULL;
    w->path[sizeof w->path - 1] = '\0';
    if (ok || !w->why[0])
        snprintf(err, err_size, "out of memory");
    else
        snprintf(err, err_size, "cannot encode value%s%s: %s", w->elided ? "..." : "",
                 w->path + sizeof w->path - 1 - w->plen, w->why);
    return NULL;
}
