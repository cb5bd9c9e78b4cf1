/* json.c - JSON text read into a host's values through callbacks and written from
 * them into a growing buffer (ituna/json.h): UTF-8 checking, escapes, numbers. It
 * runs on every message a Lua host decodes or encodes, so it goes straight between
 * text and callbacks, with no tree in between. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ituna/json.h"

#define TWO_POW_53 9007199254740992.0

/* ---- writing ----------------------------------------------------------------------- */

static int grow(ituna_json_buf *b, size_t n) {
    if (b->oom) return 0;
    if (b->cap - b->len >= n) return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return 0;
    }
    b->p = p;
    b->cap = cap;
    return 1;
}

void ituna_json_put(ituna_json_buf *b, const char *s, size_t n) {
    if (!grow(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static const char hexd[] = "0123456789abcdef";

/* Other bytes go as they are (as cJSON printed them). */
void ituna_json_put_string(ituna_json_buf *b, const char *s, size_t n) {
    ituna_json_put(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        ituna_json_put(b, s + run, i - run);
        run = i + 1;
        char e[6] = { '\\', 0, 0, 0, 0, 0 };
        size_t el = 2;
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default:
            e[1] = 'u';
            e[2] = '0';
            e[3] = '0';
            e[4] = hexd[c >> 4];
            e[5] = hexd[c & 15];
            el = 6;
        }
        ituna_json_put(b, e, el);
    }
    ituna_json_put(b, s + run, n - run);
    ituna_json_put(b, "\"", 1);
}

void ituna_json_put_int(ituna_json_buf *b, int64_t v) {
    char tmp[24];
    size_t i = sizeof tmp;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) tmp[--i] = '-';
    ituna_json_put(b, tmp + i, sizeof tmp - i);
}

void ituna_json_put_double(ituna_json_buf *b, double d) {
    if (d == floor(d) && fabs(d) < TWO_POW_53) {
        ituna_json_put_int(b, (int64_t)d);
        return;
    }
    char tmp[40];
    int n = snprintf(tmp, sizeof tmp, "%.15g", d);
    if (strtod(tmp, NULL) != d) n = snprintf(tmp, sizeof tmp, "%.17g", d);
    ituna_json_put(b, tmp, (size_t)n);
}

/* ---- reading ----------------------------------------------------------------------- */

/* Offset of the first byte that is not well-formed UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, at most U+10FFFF), or len. Python's json.loads refuses the
 * same bytes. */
static size_t utf8_bad_at(const unsigned char *p, size_t len) {
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        size_t n;
        unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return i;
        }
        if (len - i < n || p[i + 1] < lo || p[i + 1] > hi) return i;
        for (size_t k = 2; k < n; k++)
            if ((p[i + k] & 0xC0) != 0x80) return i;
        i += n;
    }
    return len;
}

typedef struct jparse {
    const ituna_json_reader *cb;
    void *ctx;
    const char *end, *p;
    char *scratch; /* unescaped string bytes */
    size_t scratch_cap;
    int oom, too_deep;
} jparse;

static void skip_ws(jparse *j) {
    while (j->p < j->end && (unsigned char)*j->p <= 32) j->p++; /* as cJSON: any control byte */
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}

/* The UTF-8 bytes of code point cp at o; returns the end. */
static char *put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* Hand the string at j->p (on its opening quote) to fn.  */
static int parse_string(jparse *j, void (*fn)(void *, const char *, size_t)) {
    const char *p = j->p + 1, *start = p;
    /* fast path: no escapes */
    while (p < j->end && *p != '"' && *p != '\\') p++;
    if (p >= j->end) return 0;
    if (*p == '"') {
        fn(j->ctx, start, (size_t)(p - start));
        j->p = p + 1;
        return 1;
    }
    /* with escapes: the result is never longer than the text */
    const char *q = start;
    while (q < j->end && *q != '"') q += *q == '\\' ? 2 : 1;
    if (q >= j->end) return 0;
    size_t need = (size_t)(q - start) + 1;
    if (need > j->scratch_cap) {
        char *s = realloc(j->scratch, need);
        if (!s) return j->oom = 1, 0;
        j->scratch = s;
        j->scratch_cap = need;
    }
    char *o = j->scratch;
    static const char unescape[] = "\"\"\\\\//b\bf\fn\nr\rt\t"; /* letter, byte */
    for (p = start; p < q; p++) {
        if (*p != '\\') {
            *o++ = *p;
            continue;
        }
        p++; /* p < q: the escape's letter is inside the string */
        const char *u = *p ? strchr(unescape, *p) : NULL;
        if (u && (u - unescape) % 2 == 0) {
            *o++ = u[1];
            continue;
        }
        unsigned cp;
        if (*p != 'u' || q - p < 5 || !hex4(p + 1, &cp)) return 0;
        p += 4;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return 0; /* a lone low surrogate */
        if (cp >= 0xD800 && cp <= 0xDBFF) {         /* needs its low half */
            unsigned lo;
            if (q - p < 7 || p[1] != '\\' || p[2] != 'u' || !hex4(p + 3, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                return 0;
            p += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        o = put_utf8(o, cp);
    }
    fn(j->ctx, j->scratch, (size_t)(o - j->scratch));
    j->p = q + 1;
    return 1;
}

/* The number at j->p: an integer when it is integral and exact in a double. */
static int parse_number(jparse *j) {
    const char *p = j->p, *start = p;
    int is_float = 0;
    if (p < j->end && *p == '-') p++;
    const char *digits = p;
    while (p < j->end && *p >= '0' && *p <= '9') p++;
    if (p == digits) return 0;
    if (p < j->end && *p == '.') {
        is_float = 1;
        const char *f = ++p;
        while (p < j->end && *p >= '0' && *p <= '9') p++;
        if (p == f) return 0;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        is_float = 1;
        p++;
        if (p < j->end && (*p == '+' || *p == '-')) p++;
        const char *e = p;
        while (p < j->end && *p >= '0' && *p <= '9') p++;
        if (p == e) return 0;
    }
    j->p = p;
    if (!is_float && p - digits <= 15) { /* below 10^15 < 2^53: exact */
        int64_t v = 0;
        for (const char *d = digits; d < p; d++) v = v * 10 + (*d - '0');
        j->cb->integer(j->ctx, *start == '-' ? -v : v);
        return 1;
    }
    char tmp[64], *buf = tmp;
    size_t n = (size_t)(p - start);
    if (n >= sizeof tmp && !(buf = malloc(n + 1))) return j->oom = 1, 0;
    memcpy(buf, start, n);
    buf[n] = '\0';
    double d = strtod(buf, NULL);
    if (buf != tmp) free(buf);
    if (d == floor(d) && fabs(d) < TWO_POW_53)
        j->cb->integer(j->ctx, (int64_t)d);
    else
        j->cb->number(j->ctx, d);
    return 1;
}

static int lit(jparse *j, const char *word, size_t n) {
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) return 0;
    j->p += n;
    return 1;
}

/* The items of an array or the members of an object, after its opening bracket. */
static int parse_value(jparse *j, int depth);
static int parse_container(jparse *j, int depth, int array) {
    if (depth >= ITUNA_JSON_MAX_DEPTH) return j->too_deep = 1, 0;
    j->p++;
    if (!j->cb->begin(j->ctx, array)) return j->oom = 1, 0;
    skip_ws(j);
    char close = array ? ']' : '}';
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->cb->end(j->ctx, array);
        return 1;
    }
    for (;;) {
        skip_ws(j);
        if (!array) {
            if (j->p >= j->end || *j->p != '"' || !parse_string(j, j->cb->key)) return 0;
            skip_ws(j);
            if (j->p >= j->end || *j->p != ':') return 0;
            j->p++;
        }
        if (!parse_value(j, depth + 1)) return 0;
        j->cb->after(j->ctx, array);
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            j->cb->end(j->ctx, array);
            return 1;
        }
        return 0;
    }
}

static int parse_value(jparse *j, int depth) {
    skip_ws(j);
    if (j->p >= j->end) return 0;
    switch (*j->p) {
    case '"': return parse_string(j, j->cb->string);
    case '{': return parse_container(j, depth, 0);
    case '[': return parse_container(j, depth, 1);
    case 't': return lit(j, "true", 4) ? (j->cb->boolean(j->ctx, 1), 1) : 0;
    case 'f': return lit(j, "false", 5) ? (j->cb->boolean(j->ctx, 0), 1) : 0;
    case 'n': return lit(j, "null", 4) ? (j->cb->null(j->ctx), 1) : 0;
    default: return parse_number(j);
    }
}

ituna_err ituna_json_parse(const char *text, size_t len, const ituna_json_reader *cb, void *ctx, char *errstr,
                           size_t errstr_size) {
    if (!cb || (!text && len))
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_INVALID_ARG, "reader and text are required");
    size_t bad = utf8_bad_at((const unsigned char *)text, len);
    if (bad < len)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_PARSE, "invalid UTF-8 at byte %zu of %zu", bad,
                             len);
    jparse j = { .cb = cb, .ctx = ctx, .end = text + len, .p = text };
    int ok = parse_value(&j, 0);
    free(j.scratch);
    if (ok) return ITUNA_OK;
    if (j.oom) return ituna_set_err(errstr, errstr_size, ITUNA_ERR_NOMEM, "out of memory");
    if (j.too_deep)
        return ituna_set_err(errstr, errstr_size, ITUNA_ERR_PARSE,
                             "JSON nested deeper than %d at byte %zu of %zu", ITUNA_JSON_MAX_DEPTH,
                             (size_t)(j.p - text), len);
    return ituna_set_err(errstr, errstr_size, ITUNA_ERR_PARSE, "invalid JSON at byte %zu of %zu",
                         (size_t)(j.p - text), len);
}
