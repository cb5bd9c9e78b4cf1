/* ituna/json.h - JSON text for message payloads, read and written straight between
 * the text and a host's own values (no intermediate tree): the reader calls a
 * small table of callbacks that build the host's values, the writer appends to a
 * growing buffer. The Lua binding's msg:json() and publish(table) are built on it;
 * a C host may use it the same way.
 *
 * The rules, the same for every host: input must be UTF-8 (RFC 3629); strings
 * unescape to UTF-8 (\u surrogate pairs joined, a lone surrogate refused); an
 * integral number that is exact in a double (below 2^53) is an integer; nesting
 * deeper than ITUNA_JSON_MAX_DEPTH is refused both ways; what follows the first
 * value is ignored. */
#ifndef ITUNA_JSON_H
#define ITUNA_JSON_H

#include "ituna/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ITUNA_JSON_MAX_DEPTH 64

/* Callbacks of ituna_json_parse(), called in document order; ctx is the caller's.
 * Each value is one of string/integer/number/boolean/null, or begin ... end around
 * an array's items or an object's members (key, then the member's value). after
 * follows every item and member value, with the container it went into (array:
 * 1 for an array, 0 for an object). Strings are borrowed: valid during the call.
 * begin returns 0 to stop the parse (out of memory). */
typedef struct ituna_json_reader {
    void (*string)(void *ctx, const char *s, size_t len);
    void (*integer)(void *ctx, int64_t v);
    void (*number)(void *ctx, double v);
    void (*boolean)(void *ctx, int v);
    void (*null)(void *ctx);
    int (*begin)(void *ctx, int array);
    void (*key)(void *ctx, const char *s, size_t len);
    void (*after)(void *ctx, int array);
    void (*end)(void *ctx, int array);
} ituna_json_reader;

/* Read the first JSON value of text[0..len) through cb. ITUNA_ERR_PARSE with the
 * byte offset in errstr when it is not UTF-8 JSON (the callbacks may have run for
 * a part of it), ITUNA_ERR_NOMEM. Thread-safe. Does not block. */
ITUNA_API ituna_err ituna_json_parse(const char *text, size_t len, const ituna_json_reader *cb, void *ctx,
                                     char *errstr, size_t errstr_size);

/* A growing text buffer for the writer; zero-initialise. oom is set once a growth
 * failed (later appends do nothing). The caller owns p and must free() it. */
typedef struct ituna_json_buf {
    char *p;
    size_t len, cap;
    int oom;
} ituna_json_buf;

/* Append bytes as they are (punctuation: "{", ",", "null", ...). Not thread-safe:
 * one thread at a time per buffer; likewise the appends below. */
ITUNA_API void ituna_json_put(ituna_json_buf *b, const char *s, size_t n);
/* Append a JSON string: quote, backslash and control bytes escaped. */
ITUNA_API void ituna_json_put_string(ituna_json_buf *b, const char *s, size_t n);
ITUNA_API void ituna_json_put_int(ituna_json_buf *b, int64_t v);
/* Integral values below 2^53 as integers, others with the shortest of 15 or 17
 * significant digits that reads back the same. d must be finite. */
ITUNA_API void ituna_json_put_double(ituna_json_buf *b, double d);

/* A checked writer over ituna_json_buf for a host that walks its own values: it puts
 * the commas and colons, refuses what JSON cannot hold (a NUL in a string or key, a
 * number that is not finite, nesting deeper than ITUNA_JSON_MAX_DEPTH) and says where
 * a value failed. Each call below returns 1, or 0 once the value failed; the host then
 * returns 0 too, calling ituna_json_failed_at_index/_key on its way out of each
 * container, so the error names the path ("[2].items"). Zero-initialise; one thread
 * at a time per writer. */
typedef struct ituna_json_writer {
    ituna_json_buf b;
    int depth;
    unsigned char more[ITUNA_JSON_MAX_DEPTH + 1]; /* an item was written at this depth */
    char why[160];
    char path[200]; /* built from its end: path[sizeof path - 1 - plen ..] */
    size_t plen;
    int elided; /* outer parts of the path were dropped: it was full */
} ituna_json_writer;

/* Scalars; a string or key holding a NUL, or a double not finite, fails. */
ITUNA_API int ituna_json_write_string(ituna_json_writer *w, const char *s, size_t n);
ITUNA_API int ituna_json_write_int(ituna_json_writer *w, int64_t v);
ITUNA_API int ituna_json_write_double(ituna_json_writer *w, double d);
ITUNA_API int ituna_json_write_bool(ituna_json_writer *w, int v);
ITUNA_API int ituna_json_write_null(ituna_json_writer *w);
/* Open an array (array 1) or an object; fails past ITUNA_JSON_MAX_DEPTH. */
ITUNA_API int ituna_json_write_begin(ituna_json_writer *w, int array);
/* The next member's key of the open object (before its value). */
ITUNA_API int ituna_json_write_key(ituna_json_writer *w, const char *s, size_t n);
ITUNA_API int ituna_json_write_end(ituna_json_writer *w, int array);
/* The host's value has no JSON form: why, as printf. Returns 0. */
ITUNA_API int ituna_json_write_fail(ituna_json_writer *w, const char *fmt, ...) ITUNA_PRINTF(2, 3);
/* On the way out of a container whose item i (shown as [i]: the host's own index) or
 * member key failed. Returns 0. */
ITUNA_API int ituna_json_failed_at_index(ituna_json_writer *w, long long i);
ITUNA_API int ituna_json_failed_at_key(ituna_json_writer *w, const char *key);
/* The text written (NUL-terminated, *len without the NUL; the caller frees it), or
 * NULL with "cannot encode value<path>: <why>" or "out of memory" in err when ok is 0
 * or memory ran out. Frees the buffer on failure. */
ITUNA_API char *ituna_json_write_finish(ituna_json_writer *w, int ok, size_t *len, char *err,
                                        size_t err_size);

#ifdef __cplusplus
}
#endif
#endif
