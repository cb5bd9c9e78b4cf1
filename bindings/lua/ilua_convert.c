/* ilua_convert.c - Lua values to and from the core's: errors raised with the
 * core's message, timeouts, attributes, span contexts, lists of
 * strings, ituna.malformed objects and the message handler that keeps them.
 * Shared by the tracing and the Kafka parts of the module; calls none of them. */
#include <stdio.h>
#include <string.h>

#include "lua_internal.h"

/* ---- errors and small helpers --------------------------------------------- */

int ilua_fail(lua_State *L, ituna_err err, const char *errstr) {
    lua_pushnil(L);
    if (errstr && errstr[0])
        lua_pushstring(L, errstr);
    else
        lua_pushfstring(L, "%s (%s)", ituna_err2str(err), ituna_err2name(err));
    return 2;
}

int ilua_raise(lua_State *L, ituna_err err, const char *errstr) {
    ilua_fail(L, err, errstr);
    return luaL_error(L, "%s", lua_tostring(L, -1));
}

int ilua_timeout_ms(lua_State *L, int idx, int def_ms) {
    if (lua_isnoneornil(L, idx)) return def_ms;
    lua_Number s = luaL_checknumber(L, idx);
    if (s < 0) return -1;
    luaL_argcheck(L, s <= 86400.0, idx, "timeout over one day");
    return (int)(s * 1000.0 + 0.5);
}

/* ---- attributes --------------------------------------------------------------- */

/* Grow out->v into a fresh scratch userdata placed below the key lua_next needs.
 * [-0, +1 (below the top 2), m] */
static void attrs_grow(lua_State *L, ilua_attrs *out) {
    size_t cap = out->cap * 2;
    ituna_attr *v = lua_newuserdatauv(L, cap * sizeof(*v), 0);
    memcpy(v, out->v, out->n * sizeof(*v));
    lua_rotate(L, -3, 1); /* scratch, key, value */
    out->v = v;
    out->cap = cap;
}

/* The core's reader of item i of the sequence at the top of the stack.  [-0, +0, -] */
static int array_item(void *L_, size_t i, ituna_attr_item *it) {
    lua_State *L = L_;
    int t = lua_rawgeti(L, -1, (lua_Integer)i + 1);
    if (t == LUA_TSTRING) {
        it->type = ITUNA_ATTR_STRING;
        it->v.s.ptr = lua_tolstring(L, -1, &it->v.s.len); /* anchored in the array */
    } else if (t == LUA_TBOOLEAN) {
        it->type = ITUNA_ATTR_BOOL;
        it->v.b = lua_toboolean(L, -1);
    } else if (lua_isinteger(L, -1)) {
        it->type = ITUNA_ATTR_INT;
        it->v.i = (int64_t)lua_tointeger(L, -1);
    } else {
        it->type = ITUNA_ATTR_DOUBLE;
        it->v.d = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return t == LUA_TSTRING || t == LUA_TBOOLEAN || t == LUA_TNUMBER ? 0 : 1;
}

/* Array attribute from the sequence at the top of the stack (the value being read).
 * [-0, +1 (below the top 2), v] */
static void attr_array(lua_State *L, int arg, const char *key, ituna_attr *a) {
    size_t n = lua_rawlen(L, -1), bad = 0;
    void *items = lua_newuserdatauv(L, ituna_attr_array_size(n), 0);
    lua_rotate(L, -3, 1); /* keep the scratch below key, value */
    a->key = key;
    if (ituna_attr_array_build(a, n, array_item, L, 1, items, &bad) == 0) return;
    int t = lua_rawgeti(L, -1, (lua_Integer)bad + 1);
    int first = lua_rawgeti(L, -2, 1);
    if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN)
        luaL_error(L,
                   "bad argument #%d (attribute '%s': array item %d is a %s; expected string, number "
                   "or boolean)",
                   arg, key, (int)bad + 1, lua_typename(L, t));
    luaL_error(L, "bad argument #%d (attribute '%s': array mixes %s and %s)", arg, key,
               lua_typename(L, first), lua_typename(L, t));
}

void ilua_attr_value(lua_State *L, int arg, ituna_attr *a) {
    if (lua_type(L, -2) != LUA_TSTRING)
        luaL_error(L, "bad argument #%d (attribute keys must be strings, got %s)", arg, luaL_typename(L, -2));
    size_t klen;
    const char *key = lua_tolstring(L, -2, &klen), *why = ituna_attr_key_error(key, klen);
    if (why) luaL_error(L, "bad argument #%d (attribute '%s': %s)", arg, key, why);
    a->key = key;
    a->key_len = klen;
    switch (lua_type(L, -1)) {
    case LUA_TSTRING: {
        size_t len;
        a->type = ITUNA_ATTR_STRING;
        a->v.s.ptr = lua_tolstring(L, -1, &len);
        a->v.s.len = len;
        break;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, -1)) {
            a->type = ITUNA_ATTR_INT;
            a->v.i = (int64_t)lua_tointeger(L, -1);
        } else {
            a->type = ITUNA_ATTR_DOUBLE;
            a->v.d = lua_tonumber(L, -1);
        }
        break;
    case LUA_TBOOLEAN:
        a->type = ITUNA_ATTR_BOOL;
        a->v.b = lua_toboolean(L, -1);
        break;
    case LUA_TTABLE: attr_array(L, arg, key, a); break;
    default:
        luaL_error(L, "bad argument #%d (attribute '%s' is a %s; expected string, number, boolean or array)",
                   arg, key, luaL_typename(L, -1));
    }
}

void ilua_attrs_from_table(lua_State *L, int idx, int arg, ilua_attrs *out) {
    out->v = out->inl;
    out->n = 0;
    out->cap = sizeof(out->inl) / sizeof(out->inl[0]);
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    idx = lua_absindex(L, idx);
    luaL_checkstack(L, 8, "attributes");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (out->n == out->cap) attrs_grow(L, out);
        ilua_attr_value(L, arg, &out->v[out->n++]);
        lua_pop(L, 1);
    }
}

/* ---- contexts ------------------------------------------------------------------- */

void ilua_push_context(lua_State *L, const ituna_span_context *ctx) {
    char tid[33], sid[17];
    ituna_trace_id_hex(ctx, tid);
    ituna_span_id_hex(ctx, sid);
    lua_createtable(L, 0, 5);
    lua_pushlstring(L, tid, 32);
    lua_setfield(L, -2, "trace_id");
    lua_pushlstring(L, sid, 16);
    lua_setfield(L, -2, "span_id");
    lua_pushinteger(L, ctx->trace_flags);
    lua_setfield(L, -2, "trace_flags");
    if (ctx->tracestate_len > 0) {
        lua_pushlstring(L, ctx->tracestate, ctx->tracestate_len);
        lua_setfield(L, -2, "tracestate");
    }
    lua_pushboolean(L, ctx->is_remote);
    lua_setfield(L, -2, "is_remote");
}

void ilua_span_ctx(const ilua_span *s, ituna_span_context *out) {
    if (s->span) {
        *out = *ituna_span_get_context(s->span);
        return;
    }
    memset(out, 0, offsetof(ituna_span_context, tracestate) + 1);
    memcpy(out->trace_id, s->trace_id, 16);
    memcpy(out->span_id, s->span_id, 8);
    out->trace_flags = s->trace_flags;
}

int ilua_to_context(lua_State *L, int idx, ituna_span_context *out, const char **reason) {
    ilua_span *s = luaL_testudata(L, idx, ILUA_SPAN);
    if (s) {
        ilua_span_ctx(s, out);
        return 1;
    }
    if (lua_type(L, idx) != LUA_TTABLE) {
        *reason = "expected a context table or a span";
        return 0;
    }
    idx = lua_absindex(L, idx);
    lua_getfield(L, idx, "trace_id");
    lua_getfield(L, idx, "span_id");
    lua_getfield(L, idx, "trace_flags");
    const char *tid = lua_tostring(L, -3), *sid = lua_tostring(L, -2);
    int isnum = 0;
    lua_Integer flags = lua_tointegerx(L, -1, &isnum);
    if (lua_isnil(L, -1)) {
        flags = ITUNA_TRACE_FLAG_SAMPLED;
        isnum = 1;
    }
    if (!tid || !sid || lua_type(L, -3) != LUA_TSTRING || lua_type(L, -2) != LUA_TSTRING) {
        lua_pop(L, 3);
        *reason = "context needs trace_id and span_id hex strings";
        return 0;
    }
    if (!isnum || flags < 0 || flags > 255) {
        lua_pop(L, 3);
        *reason = "trace_flags must be an integer from 0 to 255";
        return 0;
    }
    int ok = ituna_span_context_from_hex(tid, sid, (int)flags, NULL, out, reason) == ITUNA_OK;
    lua_pop(L, 3);
    if (!ok) return 0;
    lua_getfield(L, idx, "is_remote");
    if (!lua_isnil(L, -1)) out->is_remote = (uint8_t)lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "tracestate") == LUA_TSTRING) {
        size_t len;
        const char *ts = lua_tolstring(L, -1, &len);
        const char *why = NULL;
        ituna_tracestate_parse(ts, len, out, &why); /* an invalid tracestate alone is dropped (W3C) */
    }
    lua_pop(L, 1);
    return 1;
}

/* ---- lists of strings ----------------------------------------------------- */

const char *const *ilua_string_list(lua_State *L, int idx) {
    size_t n = lua_rawlen(L, idx);
    const char **list = lua_newuserdatauv(L, (n + 1) * sizeof(char *), 0);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, idx, (lua_Integer)i + 1);
        list[i] = lua_tostring(L, -1); /* anchored in the list */
        lua_pop(L, 1);
    }
    list[n] = NULL;
    return list;
}

/* ---- malformed objects and the message handler -------------------------- */

int ilua_is_malformed(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return 0;
    luaL_getmetatable(L, ILUA_MALFORMED);
    int yes = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (!yes) return 0;
    lua_getfield(L, idx, "reason");
    if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        lua_pushliteral(L, "malformed");
    }
    return 1;
}

/* Message handler for tracer:span: keeps the original error value (so error
 * objects such as ituna.malformed travel on) and leaves a traceback aside.
 * [-0, +0, m] */
int ilua_msgh(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = luaL_tolstring(L, 1, NULL);
    luaL_traceback(L, L, msg, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, ILUA_REG_TRACEBACK);
    lua_settop(L, 1);
    return 1;
}

/* [-0, +0, m] */
void ilua_new_class(lua_State *L, const char *tname, const luaL_Reg *mm, const luaL_Reg *methods,
                    const char *methods_field) {
    luaL_newmetatable(L, tname);
    luaL_setfuncs(L, mm, 0);
    if (methods) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, methods_field);
    }
    lua_pop(L, 1);
}

/* ituna_glue.lua makes ituna.malformed objects with this metatable (C.malformed). */
void ilua_open_convert(lua_State *L) {
    luaL_newmetatable(L, ILUA_MALFORMED);
    lua_setfield(L, -2, "malformed");
}
