/* ilua_json.c - Lua values <-> JSON text through cJSON, for publish(table) and
 * msg:json(). Type conversion only: a sequence becomes an array, any other table
 * an object, ituna.null is JSON null; integral numbers decode as integers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "lua_internal.h"

#define JSON_MAX_DEPTH 64

void ilua_push_null(lua_State *L) {
    lua_pushlightuserdata(L, NULL);
}

static int is_null(lua_State *L, int idx) {
    return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
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

/* Build the cJSON item for the value at idx; NULL with err filled on an
 * unsupported value. path names where, for the message.
 * [-0, +0, m] */
static cJSON *encode(lua_State *L, int idx, int depth, const char *path, char *err, size_t err_size) {
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (strlen(s) != len) {
            snprintf(err, err_size, "cannot encode %s: string contains a NUL byte", path);
            return NULL;
        }
        return cJSON_CreateString(s);
    }
    case LUA_TNUMBER: {
        double d = lua_tonumber(L, idx);
        if (!isfinite(d)) {
            snprintf(err, err_size, "cannot encode %s: %g is not a JSON number", path, d);
            return NULL;
        }
        return cJSON_CreateNumber(d);
    }
    case LUA_TBOOLEAN: return cJSON_CreateBool(lua_toboolean(L, idx));
    case LUA_TLIGHTUSERDATA:
        if (is_null(L, idx)) return cJSON_CreateNull();
        break;
    case LUA_TTABLE: {
        if (depth >= JSON_MAX_DEPTH) {
            snprintf(err, err_size, "cannot encode %s: nested deeper than %d (a cycle?)", path,
                     JSON_MAX_DEPTH);
            return NULL;
        }
        luaL_checkstack(L, 4, "json encode");
        lua_Integer n = array_length(L, idx);
        cJSON *out = n > 0 ? cJSON_CreateArray() : cJSON_CreateObject();
        if (!out) goto oom;
        if (n > 0) {
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, idx, i);
                char sub[96];
                snprintf(sub, sizeof sub, "%.60s[%lld]", path, (long long)i);
                cJSON *item = encode(L, -1, depth + 1, sub, err, err_size);
                lua_pop(L, 1);
                if (!item || !cJSON_AddItemToArray(out, item)) {
                    cJSON_Delete(item);
                    cJSON_Delete(out);
                    return NULL;
                }
            }
            return out;
        }
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            char key[64];
            const char *k;
            if (lua_type(L, -2) == LUA_TSTRING)
                k = lua_tostring(L, -2);
            else if (lua_isinteger(L, -2)) { /* sparse array or integer keys: object with text keys */
                snprintf(key, sizeof key, "%lld", (long long)lua_tointeger(L, -2));
                k = key;
            } else {
                snprintf(err, err_size, "cannot encode %s: object key is a %s", path, luaL_typename(L, -2));
                lua_pop(L, 2);
                cJSON_Delete(out);
                return NULL;
            }
            char sub[96];
            snprintf(sub, sizeof sub, "%.40s.%.40s", path, k);
            cJSON *item = encode(L, -1, depth + 1, sub, err, err_size);
            lua_pop(L, 1);
            if (!item || !cJSON_AddItemToObject(out, k, item)) {
                cJSON_Delete(item);
                cJSON_Delete(out);
                lua_pop(L, 1);
                return NULL;
            }
        }
        return out;
    }
    default: break;
    }
    snprintf(err, err_size, "cannot encode %s: a %s has no JSON form", path, luaL_typename(L, idx));
    return NULL;
oom:
    snprintf(err, err_size, "out of memory");
    return NULL;
}

char *ilua_json_encode(lua_State *L, int idx, size_t *len, char *err, size_t err_size) {
    err[0] = '\0';
    cJSON *root = encode(L, idx, 0, "value", err, err_size);
    if (!root) {
        if (!err[0]) snprintf(err, err_size, "out of memory");
        return NULL;
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    *len = strlen(text);
    return text;
}

/* Push the Lua value of item.  [-0, +1, m] */
static void decode(lua_State *L, const cJSON *item) {
    luaL_checkstack(L, 3, "json decode");
    if (cJSON_IsString(item)) {
        lua_pushstring(L, item->valuestring);
    } else if (cJSON_IsNumber(item)) {
        double d = item->valuedouble;
        if (d == floor(d) && fabs(d) < 9007199254740992.0) /* exact in a double: an integer */
            lua_pushinteger(L, (lua_Integer)d);
        else
            lua_pushnumber(L, d);
    } else if (cJSON_IsBool(item)) {
        lua_pushboolean(L, cJSON_IsTrue(item));
    } else if (cJSON_IsArray(item)) {
        lua_createtable(L, cJSON_GetArraySize(item), 0);
        lua_Integer i = 1;
        for (const cJSON *c = item->child; c; c = c->next) {
            decode(L, c);
            lua_rawseti(L, -2, i++);
        }
    } else if (cJSON_IsObject(item)) {
        lua_newtable(L);
        for (const cJSON *c = item->child; c; c = c->next) {
            decode(L, c);
            lua_setfield(L, -2, c->string);
        }
    } else {
        ilua_push_null(L);
    }
}

/* Offset of the first byte that is not well-formed UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, at most U+10FFFF), or len. cJSON passes any bytes through;
 * JSON text must be UTF-8, and Python's json.loads refuses the same bytes. */
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

int ilua_json_decode(lua_State *L, const char *text, size_t len, char *err, size_t err_size) {
    size_t bad = utf8_bad_at((const unsigned char *)text, len);
    if (bad < len) {
        snprintf(err, err_size, "invalid UTF-8 at byte %zu of %zu", bad, len);
        return 0;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        snprintf(err, err_size, "invalid JSON at byte %zu of %zu", at, len);
        return 0;
    }
    decode(L, root); /* a memory error here leaks root; acceptable under OOM */
    cJSON_Delete(root);
    return 1;
}
