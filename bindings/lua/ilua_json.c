/* ilua_json.c - Lua values <-> JSON text, for publish(table) and msg:json(): the
 * walk over Lua tables for the core's writer, and the callbacks that build Lua
 * values for the core's reader (ituna/json.h, which holds the text rules). Type
 * conversion only: a sequence becomes an array, any other table an object,
 * ituna.null is JSON null. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_internal.h"

void ilua_push_null(lua_State *L) {
    lua_pushlightuserdata(L, NULL);
}

static int is_null(lua_State *L, int idx) {
    return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

/* ---- encoding ------------------------------------------------------------------- */

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
static int encode(lua_State *L, ituna_json_buf *b, int idx, int depth, enc_err *err) {
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (memchr(s, 0, len)) {
            snprintf(err->why, sizeof err->why, "string contains a NUL byte");
            return 0;
        }
        ituna_json_put_string(b, s, len);
        return 1;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            ituna_json_put_int(b, lua_tointeger(L, idx));
            return 1;
        } else {
            double d = lua_tonumber(L, idx);
            if (!isfinite(d)) {
                snprintf(err->why, sizeof err->why, "%g is not a JSON number", d);
                return 0;
            }
            ituna_json_put_double(b, d);
            return 1;
        }
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            ituna_json_put(b, "true", 4);
        else
            ituna_json_put(b, "false", 5);
        return 1;
    case LUA_TLIGHTUSERDATA:
        if (is_null(L, idx)) {
            ituna_json_put(b, "null", 4);
            return 1;
        }
        break;
    case LUA_TTABLE: {
        if (depth >= ITUNA_JSON_MAX_DEPTH) {
            snprintf(err->why, sizeof err->why, "nested deeper than %d (a cycle?)", ITUNA_JSON_MAX_DEPTH);
            return 0;
        }
        luaL_checkstack(L, 4, "json encode");
        lua_Integer n = array_length(L, idx);
        if (n > 0) {
            ituna_json_put(b, "[", 1);
            for (lua_Integer i = 1; i <= n; i++) {
                if (i > 1) ituna_json_put(b, ",", 1);
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
            ituna_json_put(b, "]", 1);
            return 1;
        }
        ituna_json_put(b, "{", 1);
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
            if (!first) ituna_json_put(b, ",", 1);
            first = 0;
            ituna_json_put_string(b, k, klen);
            ituna_json_put(b, ":", 1);
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
        ituna_json_put(b, "}", 1);
        return 1;
    }
    default: break;
    }
    snprintf(err->why, sizeof err->why, "a %s has no JSON form", luaL_typename(L, idx));
    return 0;
}

char *ilua_json_encode(lua_State *L, int idx, size_t *len, char *err, size_t err_size) {
    err[0] = '\0';
    ituna_json_buf b = { 0 };
    enc_err e;
    e.why[0] = '\0';
    e.start = sizeof e.path - 1;
    e.path[e.start] = '\0';
    e.elided = 0;
    int ok = encode(L, &b, idx, 0, &e);
    if (ok && !b.oom) ituna_json_put(&b, "", 1); /* callers may treat it as a C string */
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

/* ---- decoding: the core's reader calls these on the Lua stack ------------------- */

typedef struct jdec {
    lua_State *L;
    int depth;
    lua_Integer next[ITUNA_JSON_MAX_DEPTH + 1]; /* the open arrays' item counts */
} jdec;

static void on_string(void *ctx, const char *s, size_t len) {
    lua_pushlstring(((jdec *)ctx)->L, s, len);
}
static void on_integer(void *ctx, int64_t v) {
    lua_pushinteger(((jdec *)ctx)->L, (lua_Integer)v);
}
static void on_number(void *ctx, double v) {
    lua_pushnumber(((jdec *)ctx)->L, v);
}
static void on_boolean(void *ctx, int v) {
    lua_pushboolean(((jdec *)ctx)->L, v);
}
static void on_null(void *ctx) {
    ilua_push_null(((jdec *)ctx)->L);
}
static int on_begin(void *ctx, int array) {
    jdec *d = ctx;
    luaL_checkstack(d->L, 3, "json decode");
    lua_createtable(d->L, array ? 4 : 0, array ? 0 : 8);
    d->next[++d->depth] = 1;
    return 1;
}
static void on_after(void *ctx, int array) {
    jdec *d = ctx;
    if (array)
        lua_rawseti(d->L, -2, d->next[d->depth]++);
    else
        lua_rawset(d->L, -3); /* a repeated key: the last one wins */
}
static void on_end(void *ctx, int array) {
    (void)array;
    ((jdec *)ctx)->depth--;
}

static const ituna_json_reader lua_reader = {
    on_string, on_integer, on_number, on_boolean, on_null, on_begin, on_string, on_after, on_end,
};

int ilua_json_decode(lua_State *L, const char *text, size_t len, char *err, size_t err_size) {
    int top = lua_gettop(L);
    jdec d = { .L = L, .depth = 0 };
    if (ituna_json_parse(text, len, &lua_reader, &d, err, err_size) != ITUNA_OK) {
        lua_settop(L, top);
        return 0;
    }
    lua_settop(L, top + 1);
    return 1;
}
