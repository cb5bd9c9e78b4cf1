/* ilua_json.c - Lua values <-> JSON text, for publish(table) and msg:json(). Type
 * conversion only: a sequence becomes an array, any other table an object, ituna.null
 * is JSON null; integral numbers decode as integers. Written straight between Lua
 * values and text (no intermediate tree): it runs on every message of a Lua hop. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_internal.h"

/* Deeper nesting is refused both ways (encoding takes it for a cycle), so that what
 * decodes always encodes again. */
#define JSON_MAX_DEPTH 64
#define TWO_POW_53     9007199254740992.0

void ilua_push_null(lua_State *L) {
    lua_pushlightuserdata(L, NULL);
}

static int is_null(lua_State *L, int idx) {
    return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

/* ---- encoding ------------------------------------------------------------------- */

typedef struct jbuf {
    char *p;
    size_t len, cap;
    int oom;
} jbuf;

static int grow(jbuf *b, size_t n) {
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

static void put(jbuf *b, const char *s, size_t n) {
    if (!grow(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void putc_(jbuf *b, char c) {
    if (!grow(b, 1)) return;
    b->p[b->len++] = c;
}

static const char hexd[] = "0123456789abcdef";

/* A JSON string: quote, backslash and control bytes escaped, other bytes as they are
 * (as cJSON printed them). */
static void put_string(jbuf *b, const char *s, size_t n) {
    putc_(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        put(b, s + run, i - run);
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
        put(b, e, el);
    }
    put(b, s + run, n - run);
    putc_(b, '"');
}

static void put_int(jbuf *b, lua_Integer v) {
    char tmp[24];
    size_t i = sizeof tmp;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) tmp[--i] = '-';
    put(b, tmp + i, sizeof tmp - i);
}

/* A float: integral values below 2^53 as integers (as before), others with the
 * shortest of 15 or 17 significant digits that reads back the same. */
static void put_double(jbuf *b, double d) {
    if (d == floor(d) && fabs(d) < TWO_POW_53) {
        put_int(b, (lua_Integer)d);
        return;
    }
    char tmp[40];
    int n = snprintf(tmp, sizeof tmp, "%.15g", d);
    if (strtod(tmp, NULL) != d) n = snprintf(tmp, sizeof tmp, "%.17g", d);
    put(b, tmp, (size_t)n);
}

/* Length n when the table at idx is a non-empty sequence 1..n with no other keys, else 0.
 * [-0, +0, -] */
static lua_Integer array_length(lua_State *L, int idx) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
    if (n == 0) return 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
            lua_pop(L, 1);
            return 0;
        }
        count++;
    }
    return count == n ? n : 0;
}

/* Why encoding failed and where: the path ("[2].items") is built from its end on the
 * way out of the recursion, and only when encoding fails. */
typedef struct enc_err {
    char why[160];
    char path[200]; /* path[start..] holds it; the outer parts are dropped when full */
    size_t start;
    int elided;
} enc_err;

static void prepend(enc_err *e, const char *part) {
    size_t n = strlen(part);
    if (n > e->start - 1) {
        e->elided = 1;
        return;
    }
    e->start -= n;
    memcpy(e->path + e->start, part, n);
}

/* Append the value at idx; 0 with err filled on an unsupported value.
 * [-0, +0, m] */
static int encode(lua_State *L, jbuf *b, int idx, int depth, enc_err *err) {
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (memchr(s, 0, len)) {
            snprintf(err->why, sizeof err->why, "string contains a NUL byte");
            return 0;
        }
        put_string(b, s, len);
        return 1;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            put_int(b, lua_tointeger(L, idx));
            return 1;
        } else {
            double d = lua_tonumber(L, idx);
            if (!isfinite(d)) {
                snprintf(err->why, sizeof err->why, "%g is not a JSON number", d);
                return 0;
            }
            put_double(b, d);
            return 1;
        }
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            put(b, "true", 4);
        else
            put(b, "false", 5);
        return 1;
    case LUA_TLIGHTUSERDATA:
        if (is_null(L, idx)) {
            put(b, "null", 4);
            return 1;
        }
        break;
    case LUA_TTABLE: {
        if (depth >= JSON_MAX_DEPTH) {
            snprintf(err->why, sizeof err->why, "nested deeper than %d (a cycle?)", JSON_MAX_DEPTH);
            return 0;
        }
        luaL_checkstack(L, 4, "json encode");
        lua_Integer n = array_length(L, idx);
        if (n > 0) {
            putc_(b, '[');
            for (lua_Integer i = 1; i <= n; i++) {
                if (i > 1) putc_(b, ',');
                lua_rawgeti(L, idx, i);
                int ok = encode(L, b, -1, depth + 1, err);
                lua_pop(L, 1);
                if (!ok) {
                    char part[32];
                    snprintf(part, sizeof part, "[%lld]", (long long)i);
                    prepend(err, part);
                    return 0;
                }
            }
            putc_(b, ']');
            return 1;
        }
        putc_(b, '{');
        int first = 1;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            char key[32];
            const char *k;
            size_t klen;
            if (lua_type(L, -2) == LUA_TSTRING) {
                k = lua_tolstring(L, -2, &klen);
            } else if (lua_isinteger(L, -2)) { /* sparse array or integer keys: object with text keys */
                klen = (size_t)snprintf(key, sizeof key, "%lld", (long long)lua_tointeger(L, -2));
                k = key;
            } else {
                snprintf(err->why, sizeof err->why, "object key is a %s", luaL_typename(L, -2));
                lua_pop(L, 2);
                return 0;
            }
            if (memchr(k, 0, klen)) {
                snprintf(err->why, sizeof err->why, "object key contains a NUL byte");
                lua_pop(L, 2);
                return 0;
            }
            if (!first) putc_(b, ',');
            first = 0;
            put_string(b, k, klen);
            putc_(b, ':');
            int ok = encode(L, b, -1, depth + 1, err);
            lua_pop(L, 1);
            if (!ok) {
                char part[48];
                snprintf(part, sizeof part, ".%.40s", k);
                prepend(err, part);
                lua_pop(L, 1);
                return 0;
            }
        }
        putc_(b, '}');
        return 1;
    }
    default: break;
    }
    snprintf(err->why, sizeof err->why, "a %s has no JSON form", luaL_typename(L, idx));
    return 0;
}

char *ilua_json_encode(lua_State *L, int idx, size_t *len, char *err, size_t err_size) {
    err[0] = '\0';
    jbuf b = { 0 };
    enc_err e;
    e.why[0] = '\0';
    e.start = sizeof e.path - 1;
    e.path[e.start] = '\0';
    e.elided = 0;
    int ok = encode(L, &b, idx, 0, &e);
    if (ok && !b.oom) putc_(&b, '\0'); /* callers may treat it as a C string */
    if (!ok || b.oom) {
        free(b.p);
        if (ok || !e.why[0])
            snprintf(err, err_size, "out of memory");
        else
            snprintf(err, err_size, "cannot encode value%s%s: %s", e.elided ? "..." : "", e.path + e.start,
                     e.why);
        return NULL;
    }
    *len = b.len - 1;
    return b.p;
}

/* ---- decoding ------------------------------------------------------------------- */

/* Offset of the first byte that is not well-formed UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, at most U+10FFFF), or len. JSON text must be UTF-8, and
 * Python's json.loads refuses the same bytes. */
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
    lua_State *L;
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

/* Push the string starting at j->p (on its opening quote).  [-0, +(0|1), m] */
static int parse_string(jparse *j) {
    const char *p = j->p + 1, *start = p;
    /* fast path: no escapes */
    while (p < j->end && *p != '"' && *p != '\\') p++;
    if (p >= j->end) return 0;
    if (*p == '"') {
        lua_pushlstring(j->L, start, (size_t)(p - start));
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
        if (!s) {
            j->oom = 1;
            return 0;
        }
        j->scratch = s;
        j->scratch_cap = need;
    }
    char *o = j->scratch;
    p = start;
    while (p < q) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        p++; /* p < q: the escape's letter is inside the string */
        switch (*p) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp;
            if (q - p < 5 || !hex4(p + 1, &cp)) return 0;
            p += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return 0; /* a lone low surrogate */
            if (cp >= 0xD800 && cp <= 0xDBFF) {         /* needs its low half */
                unsigned lo;
                if (q - p < 7 || p[1] != '\\' || p[2] != 'u' || !hex4(p + 3, &lo) || lo < 0xDC00 ||
                    lo > 0xDFFF)
                    return 0;
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
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
            break;
        }
        default: return 0;
        }
        p++;
    }
    lua_pushlstring(j->L, j->scratch, (size_t)(o - j->scratch));
    j->p = q + 1;
    return 1;
}

/* Push the number at j->p: an integer when it is integral and exact in a double.
 * [-0, +(0|1), -] */
static int parse_number(jparse *j) {
    const char *p = j->p, *start = p;
    int is_float = 0;
    if (p < j->end && *p == '-') p++;
    const char *digits = p;
    while (p < j->end && *p >= '0' && *p <= '9') p++;
    if (p == digits) return 0;
    if (p < j->end && *p == '.') {
        is_float = 1;
        p++;
        const char *f = p;
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
    if (!is_float && p - digits <= 15) { /* below 10^15 < 2^53: exact */
        lua_Integer v = 0;
        for (const char *d = digits; d < p; d++) v = v * 10 + (*d - '0');
        lua_pushinteger(j->L, *start == '-' ? -v : v);
        j->p = p;
        return 1;
    }
    char tmp[64], *buf = tmp;
    size_t n = (size_t)(p - start);
    if (n >= sizeof tmp && !(buf = malloc(n + 1))) {
        j->oom = 1;
        return 0;
    }
    memcpy(buf, start, n);
    buf[n] = '\0';
    double d = strtod(buf, NULL);
    if (buf != tmp) free(buf);
    if (d == floor(d) && fabs(d) < TWO_POW_53)
        lua_pushinteger(j->L, (lua_Integer)d);
    else
        lua_pushnumber(j->L, d);
    j->p = p;
    return 1;
}

static int lit(jparse *j, const char *word, size_t n) {
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) return 0;
    j->p += n;
    return 1;
}

/* Push the value at j->p; 0 (what it pushed is left for the caller to drop) when
 * the text is not JSON.  [-0, +(0|1), m] */
static int parse_value(jparse *j, int depth) {
    skip_ws(j);
    if (j->p >= j->end) return 0;
    lua_State *L = j->L;
    switch (*j->p) {
    case '"': return parse_string(j);
    case '{': {
        if (depth >= JSON_MAX_DEPTH) return j->too_deep = 1, 0;
        luaL_checkstack(L, 3, "json decode");
        j->p++;
        lua_createtable(L, 0, 8);
        skip_ws(j);
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            return 1;
        }
        for (;;) {
            skip_ws(j);
            if (j->p >= j->end || *j->p != '"' || !parse_string(j)) return 0;
            skip_ws(j);
            if (j->p >= j->end || *j->p != ':') return 0;
            j->p++;
            if (!parse_value(j, depth + 1)) return 0;
            lua_rawset(L, -3); /* a repeated key: the last one wins */
            skip_ws(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == '}') {
                j->p++;
                return 1;
            }
            return 0;
        }
    }
    case '[': {
        if (depth >= JSON_MAX_DEPTH) return j->too_deep = 1, 0;
        luaL_checkstack(L, 3, "json decode");
        j->p++;
        lua_createtable(L, 4, 0);
        skip_ws(j);
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            return 1;
        }
        for (lua_Integer i = 1;; i++) {
            if (!parse_value(j, depth + 1)) return 0;
            lua_rawseti(L, -2, i);
            skip_ws(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == ']') {
                j->p++;
                return 1;
            }
            return 0;
        }
    }
    case 't':
        if (!lit(j, "true", 4)) return 0;
        lua_pushboolean(L, 1);
        return 1;
    case 'f':
        if (!lit(j, "false", 5)) return 0;
        lua_pushboolean(L, 0);
        return 1;
    case 'n':
        if (!lit(j, "null", 4)) return 0;
        ilua_push_null(L);
        return 1;
    default: return parse_number(j);
    }
}

int ilua_json_decode(lua_State *L, const char *text, size_t len, char *err, size_t err_size) {
    size_t bad = utf8_bad_at((const unsigned char *)text, len);
    if (bad < len) {
        snprintf(err, err_size, "invalid UTF-8 at byte %zu of %zu", bad, len);
        return 0;
    }
    int top = lua_gettop(L);
    jparse j = { .L = L, .end = text + len, .p = text };
    /* What follows the first value is ignored, as cJSON (without its
     * require-NUL-terminated option) did. */
    int ok = parse_value(&j, 0);
    free(j.scratch);
    if (!ok) {
        lua_settop(L, top);
        if (j.oom)
            snprintf(err, err_size, "out of memory");
        else if (j.too_deep)
            snprintf(err, err_size, "JSON nested deeper than %d at byte %zu of %zu", JSON_MAX_DEPTH,
                     (size_t)(j.p - text), len);
        else
            snprintf(err, err_size, "invalid JSON at byte %zu of %zu", (size_t)(j.p - text), len);
        return 0;
    }
    lua_settop(L, top + 1);
    return 1;
}
