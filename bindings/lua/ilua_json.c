/* ilua_json.c - Lua values <-> JSON text, for publish(table) and msg:json(): the
 * walk over Lua tables for the core's writer, and the callbacks that build Lua
 * values for the core's reader (ituna/json.h, which holds the text rules). Type
 * conversion only: a sequence becomes an array, any other table an object,
 * ituna.null is JSON null. */
#include <stdio.h>
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

/* Write the value at idx; 0 when it has no JSON form (the writer says why and where).
 * [-0, +0, m] */
static int encode(lua_State *L, ituna_json_writer *w, int idx) {
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        return ituna_json_write_string(w, s, len);
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) return ituna_json_write_int(w, lua_tointeger(L, idx));
        return ituna_json_write_double(w, lua_tonumber(L, idx));
    case LUA_TBOOLEAN: return ituna_json_write_bool(w, lua_toboolean(L, idx));
    case LUA_TLIGHTUSERDATA:
        if (is_null(L, idx)) return ituna_json_write_null(w);
        break;
    case LUA_TTABLE: {
        luaL_checkstack(L, 4, "json encode");
        lua_Integer n = array_length(L, idx);
        if (!ituna_json_write_begin(w, n > 0)) return 0;
        if (n > 0) {
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, idx, i);
                int ok = encode(L, w, -1);
                lua_pop(L, 1);
                if (!ok) return ituna_json_failed_at_index(w, i);
            }
            return ituna_json_write_end(w, 1);
        }
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
                ituna_json_write_fail(w, "object key is a %s", luaL_typename(L, -2));
                lua_pop(L, 2);
                return 0;
            }
            int ok = ituna_json_write_key(w, k, klen) && encode(L, w, -1);
            lua_pop(L, 1);
            if (!ok) {
                ituna_json_failed_at_key(w, k);
                lua_pop(L, 1);
                return 0;
            }
        }
        return ituna_json_write_end(w, 0);
    }
    default: break;
    }
    return ituna_json_write_fail(w, "a %s has no JSON form", luaL_typename(L, idx));
}

char *ilua_json_encode(lua_State *L, int idx, size_t *len, char *err, size_t err_size) {
    ituna_json_writer w;
    memset(&w, 0, sizeof w);
    int ok = encode(L, &w, idx);
    return ituna_json_write_finish(&w, ok, len, err, err_size);
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
