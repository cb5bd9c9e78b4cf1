/* ituna_lua.c - the `ituna` Lua 5.4 module: entry point, ituna.init/shutdown,
 * the tracer and span userdata, attribute and context conversion, inject/extract,
 * and the stop flag the host's signal handling raises. Kafka lives in
 * ilua_kafka.c and JSON in ilua_json.c. Type conversion and Lua idioms only:
 * every behaviour is the core's. */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lua_internal.h"

/* ---- errors and small helpers --------------------------------------------- */

int ilua_raise(lua_State *L, ituna_err err, const char *errstr) {
    if (errstr && errstr[0]) return luaL_error(L, "%s", errstr);
    return luaL_error(L, "%s (%s)", ituna_err2str(err), ituna_err2name(err));
}

int ilua_timeout_ms(lua_State *L, int idx, int def_ms) {
    if (lua_isnoneornil(L, idx)) return def_ms;
    lua_Number s = luaL_checknumber(L, idx);
    if (s < 0) return -1;
    luaL_argcheck(L, s <= 86400.0, idx, "timeout over one day");
    return (int)(s * 1000.0 + 0.5);
}

/* ---- stop flag and consumer registry ---------------------------------------- */

#define ILUA_MAX_CONSUMERS 64
static volatile sig_atomic_t stop_flag;
static _Atomic(ituna_consumer *) consumer_slots[ILUA_MAX_CONSUMERS];
static atomic_int waking; /* request_stop() calls in progress */

void ituna_lua_request_stop(void) {
    stop_flag = 1;
    atomic_fetch_add(&waking, 1);
    for (int i = 0; i < ILUA_MAX_CONSUMERS; i++) {
        ituna_consumer *c = atomic_load(&consumer_slots[i]);
        if (c) ituna_consumer_wakeup(c);
    }
    atomic_fetch_sub(&waking, 1);
}

int ituna_lua_stop_requested(void) {
    return stop_flag != 0;
}

int ilua_register_consumer(ituna_consumer *c) {
    for (int i = 0; i < ILUA_MAX_CONSUMERS; i++) {
        ituna_consumer *expected = NULL;
        if (atomic_compare_exchange_strong(&consumer_slots[i], &expected, c)) return i;
    }
    return -1;
}

void ilua_unregister_consumer(int slot) {
    if (slot < 0 || slot >= ILUA_MAX_CONSUMERS) return;
    atomic_store(&consumer_slots[slot], NULL);
    /* a concurrent request_stop() may still hold the pointer: wait it out before
     * the caller destroys the consumer */
    while (atomic_load(&waking) > 0) {
        struct timespec ts = { 0, 100000 };
        nanosleep(&ts, NULL);
    }
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

/* Array attribute from the sequence at the top of the stack (the value being read).
 * [-0, +1 (below the top 2), v] */
static void attr_array(lua_State *L, int arg, const char *key, ituna_attr *a) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    int type = LUA_TNIL, is_float = 0;
    for (lua_Integer i = 1; i <= n; i++) {
        int t = lua_rawgeti(L, -1, i);
        if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN)
            luaL_error(L,
                       "bad argument #%d (attribute '%s': array item %d is a %s; expected string, number "
                       "or boolean)",
                       arg, key, (int)i, lua_typename(L, t));
        if (type == LUA_TNIL)
            type = t;
        else if (t != type)
            luaL_error(L, "bad argument #%d (attribute '%s': array mixes %s and %s)", arg, key,
                       lua_typename(L, type), lua_typename(L, t));
        if (t == LUA_TNUMBER && !lua_isinteger(L, -1)) is_float = 1;
        lua_pop(L, 1);
    }
    size_t sz = type == LUA_TSTRING    ? sizeof(const char *)
                : type == LUA_TBOOLEAN ? sizeof(int)
                                       : sizeof(int64_t);
    void *items = lua_newuserdatauv(L, (size_t)n * sz + 1, 0);
    lua_rotate(L, -3, 1); /* keep the scratch below key, value */
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        if (type == LUA_TSTRING)
            ((const char **)items)[i - 1] = lua_tostring(L, -1); /* anchored in the array */
        else if (type == LUA_TBOOLEAN)
            ((int *)items)[i - 1] = lua_toboolean(L, -1);
        else if (is_float)
            ((double *)items)[i - 1] = lua_tonumber(L, -1);
        else
            ((int64_t *)items)[i - 1] = (int64_t)lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    a->key = key;
    if (type == LUA_TBOOLEAN) {
        a->type = ITUNA_ATTR_BOOL_ARRAY;
        a->v.barr.items = items;
        a->v.barr.count = (size_t)n;
    } else if (type == LUA_TNUMBER && is_float) {
        a->type = ITUNA_ATTR_DOUBLE_ARRAY;
        a->v.darr.items = items;
        a->v.darr.count = (size_t)n;
    } else if (type == LUA_TNUMBER) {
        a->type = ITUNA_ATTR_INT_ARRAY;
        a->v.iarr.items = items;
        a->v.iarr.count = (size_t)n;
    } else { /* strings, or an empty array */
        a->type = ITUNA_ATTR_STRING_ARRAY;
        a->v.sarr.items = items;
        a->v.sarr.count = (size_t)n;
    }
}

/* Convert the value at the top (key below it) into *a.
 * [-0, +(0|1) below the top 2, v] */
static void attr_value(lua_State *L, int arg, ituna_attr *a) {
    if (lua_type(L, -2) != LUA_TSTRING)
        luaL_error(L, "bad argument #%d (attribute keys must be strings, got %s)", arg, luaL_typename(L, -2));
    const char *key = lua_tostring(L, -2);
    a->key = key;
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
        attr_value(L, arg, &out->v[out->n++]);
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

/* Context kept in an ended span userdata (no tracestate).
 * [-0, +0, -] */
static void span_saved_context(const ilua_span *s, ituna_span_context *out) {
    memset(out, 0, offsetof(ituna_span_context, tracestate) + 1);
    memcpy(out->trace_id, s->trace_id, 16);
    memcpy(out->span_id, s->span_id, 8);
    out->trace_flags = s->trace_flags;
}

int ilua_to_context(lua_State *L, int idx, ituna_span_context *out, const char **reason) {
    ilua_span *s = luaL_testudata(L, idx, ILUA_SPAN);
    if (s) {
        if (s->span)
            *out = *ituna_span_get_context(s->span);
        else
            span_saved_context(s, out);
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
    /* the core's strict traceparent parser validates ids (length, hex, non-zero) */
    char tp[128];
    int n = snprintf(tp, sizeof tp, "00-%s-%s-%02x", tid, sid, (unsigned)flags);
    lua_pop(L, 3);
    if (n < 0 || (size_t)n >= sizeof tp || ituna_traceparent_parse(tp, (size_t)n, out, reason) != ITUNA_OK) {
        if (n < 0 || (size_t)n >= sizeof tp) *reason = "trace_id or span_id too long";
        return 0;
    }
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

/* ---- tracer ----------------------------------------------------------------------- */

/* Tracer and span functions carry both metatables as upvalues, so the hot path
 * checks types by identity instead of luaL_checkudata's registry lookup by name. */
#define UV_TRACER_MT lua_upvalueindex(1)
#define UV_SPAN_MT   lua_upvalueindex(2)

/* The userdata at idx if its metatable is the upvalue uv, else raise as
 * luaL_checkudata does.  [-0, +0, v] */
static void *fast_checkudata(lua_State *L, int idx, int uv, const char *tname) {
    void *p = lua_touserdata(L, idx);
    if (p && lua_getmetatable(L, idx)) {
        int same = lua_rawequal(L, -1, uv);
        lua_pop(L, 1);
        if (same) return p;
    }
    return luaL_checkudata(L, idx, tname);
}

/* [-0, +0, v] */
static ilua_tracer *check_tracer(lua_State *L, int idx) {
    ilua_tracer *t = fast_checkudata(L, idx, UV_TRACER_MT, ILUA_TRACER);
    if (!t->t) luaL_error(L, "tracer is destroyed");
    return t;
}

ituna_tracer *ilua_current_tracer(lua_State *L, const char *fn) {
    lua_getfield(L, LUA_REGISTRYINDEX, ILUA_REG_TRACER);
    ilua_tracer *t = luaL_testudata(L, -1, ILUA_TRACER);
    lua_pop(L, 1); /* the registry keeps it alive */
    if (!t || !t->t) luaL_error(L, "%s: no tracer; call ituna.init{...} first", fn);
    return t->t;
}

/* Push a tracer userdata for t and make it the module's current tracer.
 * [-0, +1, m] */
static ilua_tracer *push_tracer(lua_State *L, ituna_tracer *t, int owned) {
    ilua_tracer *u = lua_newuserdatauv(L, sizeof(*u), 0);
    u->t = NULL;
    u->owned = 0;
    luaL_setmetatable(L, ILUA_TRACER);
    u->t = t;
    u->owned = owned;
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, ILUA_REG_TRACER);
    return u;
}

/* __gc: destroy an owned tracer. Spans made by it were created later, so Lua
 * finalises them first (reverse order of marking).
 * [-0, +0, -] */
static int tracer_gc(lua_State *L) {
    ilua_tracer *t = fast_checkudata(L, 1, UV_TRACER_MT, ILUA_TRACER);
    if (t->t && t->owned) {
        if (ituna_tracer_global() == t->t) ituna_tracer_set_global(NULL);
        ituna_tracer_destroy(t->t);
    }
    t->t = NULL;
    return 0;
}

/* __tostring [-0, +1, m] */
static int tracer_tostring(lua_State *L) {
    ilua_tracer *t = luaL_checkudata(L, 1, ILUA_TRACER);
    lua_pushfstring(L, "ituna.Tracer(%s)", t->t ? ituna_tracer_service_name(t->t) : "destroyed");
    return 1;
}

/* ituna.init{service_name=..., config=path, [key]=value...}: file, then the
 * environment, then the table's keys (ituna_config_set), so env wins over the
 * file and the table over both. With a tracer already set up (by an earlier init
 * or by the ituna-lua host), returns that one and ignores the table.
 * [-0, +1, e] */
static int l_init(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, LUA_REGISTRYINDEX, ILUA_REG_TRACER);
    ilua_tracer *cur = luaL_testudata(L, -1, ILUA_TRACER);
    if (cur && cur->t) {
        /* set up already (earlier init, or the ituna-lua host): say so when the
         * caller asked for another service name, since the table is ignored */
        if (lua_getfield(L, 1, "service_name") == LUA_TSTRING &&
            strcmp(lua_tostring(L, -1), ituna_tracer_service_name(cur->t)) != 0)
            ituna_log(ITUNA_LOG_WARN,
                      "ituna.init: the tracer is already set up as '%s'; service_name '%s' ignored",
                      ituna_tracer_service_name(cur->t), lua_tostring(L, -1));
        lua_pop(L, 1);
        return 1;
    }
    lua_pop(L, 1);

    char err[ILUA_ERRSTR] = "";
    ituna_config *cfg = ituna_config_new();
    if (!cfg) return luaL_error(L, "ituna.init: out of memory");
    ituna_err rc = ITUNA_OK;
    if (lua_getfield(L, 1, "config") != LUA_TNIL) {
        const char *path = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (!path) {
            ituna_config_destroy(cfg);
            return luaL_error(L, "ituna.init: config must be a file path (string), got %s",
                              luaL_typename(L, -1));
        }
        rc = ituna_config_load_file(cfg, path, err, sizeof err);
    }
    lua_pop(L, 1);
    if (rc == ITUNA_OK) rc = ituna_config_load_env(cfg, err, sizeof err);
    /* the table's other keys, each validated by the core; stop at the first bad one */
    lua_pushnil(L);
    while (rc == ITUNA_OK && lua_next(L, 1)) {
        int kt = lua_type(L, -2), vt = lua_type(L, -1);
        if (kt != LUA_TSTRING) {
            snprintf(err, sizeof err, "ituna.init: option keys must be strings, got %s", lua_typename(L, kt));
            rc = ITUNA_ERR_CONFIG;
        } else if (strcmp(lua_tostring(L, -2), "config") != 0) {
            const char *key = lua_tostring(L, -2), *val = NULL;
            if (vt == LUA_TBOOLEAN)
                val = lua_toboolean(L, -1) ? "true" : "false";
            else if (vt == LUA_TSTRING)
                val = lua_tostring(L, -1);
            else if (vt == LUA_TNUMBER)
                val = lua_tostring(L, -1); /* converts the value slot, not the key lua_next needs */
            else {
                snprintf(err, sizeof err,
                         "ituna.init: option '%s' is a %s; expected string, number or boolean", key,
                         lua_typename(L, vt));
                rc = ITUNA_ERR_CONFIG;
            }
            if (val) rc = ituna_config_set(cfg, key, val, err, sizeof err);
        }
        lua_pop(L, rc == ITUNA_OK ? 1 : 2); /* keep the key for lua_next, or leave */
    }
    ituna_tracer *t = NULL;
    if (rc == ITUNA_OK) rc = ituna_tracer_create(cfg, &t, err, sizeof err);
    ituna_config_destroy(cfg);
    if (rc != ITUNA_OK) return ilua_raise(L, rc, err);
    ituna_tracer_set_global(t);
    push_tracer(L, t, 1);
    return 1;
}

void ituna_lua_set_host_tracer(lua_State *L, ituna_tracer *t) {
    push_tracer(L, t, 0);
    lua_pop(L, 1);
}

/* ituna.shutdown([timeout_s=5]): flush and stop the current tracer; later spans
 * are dropped (counted). Returns true, or false and a message on timeout.
 * [-0, +(1|2), e] */
static int l_shutdown(lua_State *L) {
    int ms = ilua_timeout_ms(L, 1, 5000);
    lua_getfield(L, LUA_REGISTRYINDEX, ILUA_REG_TRACER);
    ilua_tracer *t = luaL_testudata(L, -1, ILUA_TRACER);
    if (!t || !t->t) {
        lua_pushboolean(L, 1);
        return 1;
    }
    ituna_err rc = ituna_tracer_shutdown(t->t, ms);
    /* a later ituna.init makes a new tracer; this one is freed when collected */
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, ILUA_REG_TRACER);
    if (rc != ITUNA_OK) {
        lua_pushboolean(L, 0);
        lua_pushfstring(L, "shutdown: %s", ituna_err2str(rc));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* ituna.tracer(): the current tracer or nil.  [-0, +1, -] */
static int l_tracer(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, ILUA_REG_TRACER);
    ilua_tracer *t = luaL_testudata(L, -1, ILUA_TRACER);
    if (!t || !t->t) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
    return 1;
}

/* tracer:flush([timeout_s]) -> true | false, message.  [-0, +(1|2), v] */
static int tracer_flush(lua_State *L) {
    ilua_tracer *t = check_tracer(L, 1);
    ituna_err rc = ituna_tracer_flush(t->t, ilua_timeout_ms(L, 2, -1));
    lua_pushboolean(L, rc == ITUNA_OK);
    if (rc == ITUNA_OK) return 1;
    lua_pushfstring(L, "flush: %s", ituna_err2str(rc));
    return 2;
}

/* tracer:stats() -> table of the core's counters.  [-0, +1, v] */
static int tracer_stats(lua_State *L) {
    ilua_tracer *t = check_tracer(L, 1);
    ituna_tracer_stats st;
    ituna_tracer_get_stats(t->t, &st);
    lua_createtable(L, 0, 14);
#define STAT(f) (lua_pushinteger(L, (lua_Integer)st.f), lua_setfield(L, -2, #f))
    STAT(spans_started);
    STAT(spans_not_sampled);
    STAT(spans_ended);
    STAT(spans_enqueued);
    STAT(spans_dropped);
    STAT(spans_exported);
    STAT(spans_export_failed);
    STAT(export_requests);
    STAT(export_retries);
    STAT(export_partial_rejected);
    STAT(attributes_dropped);
    STAT(attributes_truncated);
    STAT(events_dropped);
    STAT(links_dropped);
#undef STAT
    return 1;
}

/* tracer:service_name() [-0, +1, v] */
static int tracer_service_name(lua_State *L) {
    ilua_tracer *t = check_tracer(L, 1);
    lua_pushstring(L, ituna_tracer_service_name(t->t));
    return 1;
}

/* tracer:config(section, key) -> value string or nil (defaults are not reported).
 * [-0, +1, v] */
static int tracer_config(lua_State *L) {
    ilua_tracer *t = check_tracer(L, 1);
    const char *v =
        ituna_config_get(ituna_tracer_config(t->t), luaL_checkstring(L, 2), luaL_checkstring(L, 3));
    if (v)
        lua_pushstring(L, v);
    else
        lua_pushnil(L);
    return 1;
}

/* ---- spans ------------------------------------------------------------------------ */

ilua_span *ilua_push_span(lua_State *L, ituna_span *s, int borrowed) {
    ilua_span *u = lua_newuserdatauv(L, sizeof(*u), 0);
    u->span = NULL; /* "ended" until fully set up, as liolib does with files */
    u->token = -1;
    u->borrowed = borrowed;
    luaL_setmetatable(L, ILUA_SPAN);
    u->span = s;
    return u;
}

/* End a span userdata exactly once: leave the current-context stack, keep the ids,
 * hand the span to the export queue. Borrowed spans are only detached.
 * [-0, +0, -] */
static void span_finish(ilua_span *s) {
    if (!s->span) return;
    if (s->token >= 0) {
        ituna_context_detach(s->token); /* also drops attaches left above it */
        s->token = -1;
    }
    const ituna_span_context *c = ituna_span_get_context(s->span);
    memcpy(s->trace_id, c->trace_id, 16);
    memcpy(s->span_id, c->span_id, 8);
    s->trace_flags = c->trace_flags;
    if (!s->borrowed) ituna_span_end(s->span, 0);
    s->span = NULL;
}

/* __gc and span:finish(): end the span once; a second call does nothing.
 * [-0, +0, -] */
static int span_close(lua_State *L) {
    span_finish(fast_checkudata(L, 1, UV_SPAN_MT, ILUA_SPAN));
    return 0;
}

static void span_mark_error(lua_State *L, ilua_span *s, int eidx, const char *traceback);

/* __close(span, err): a scope left by an error passes the error object as err;
 * the span records it (status error + exception event) before ending once.
 * Normal exit (err nil) only ends it. [-0, +0, m] */
static int span_dunder_close(lua_State *L) {
    ilua_span *s = fast_checkudata(L, 1, UV_SPAN_MT, ILUA_SPAN);
    if (!lua_isnoneornil(L, 2)) span_mark_error(L, s, 2, NULL);
    span_finish(s);
    return 0;
}

/* Invalidate a borrowed span userdata when its message is finished (ilua_kafka.c).
 * Not static: declared there. [-0, +0, -] */
void ilua_span_invalidate(ilua_span *s);
void ilua_span_invalidate(ilua_span *s) {
    s->borrowed = 1;
    s->token = -1;
    span_finish(s);
}

/* [-0, +0, v] */
static ilua_span *check_live_span(lua_State *L, int idx) {
    ilua_span *s = fast_checkudata(L, idx, UV_SPAN_MT, ILUA_SPAN);
    if (!s->span) luaL_error(L, "span has already ended");
    return s;
}

static const char *const kind_names[] = { "internal", "server", "client", "producer", "consumer", NULL };

/* Read start options {kind=, parent=, root=, links={ctx...}} at idx into *o.
 * [-0, +k, v] (scratch; the caller restores the top) */
static void span_options(lua_State *L, int idx, ituna_span_options *o, ituna_span_context *parent) {
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    if (lua_getfield(L, idx, "kind") != LUA_TNIL) {
        const char *k = lua_tostring(L, -1);
        int i = 0;
        while (k && kind_names[i] && strcmp(kind_names[i], k) != 0) i++;
        if (!k || !kind_names[i])
            luaL_error(L,
                       "bad option 'kind' (expected internal, server, client, producer or consumer, got %s)",
                       k ? k : luaL_typename(L, -1));
        o->kind = (ituna_span_kind)(i + 1);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "parent") != LUA_TNIL) {
        const char *why = NULL;
        if (!ilua_to_context(L, -1, parent, &why)) luaL_error(L, "bad option 'parent' (%s)", why);
        o->parent = parent;
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "root");
    o->root = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "links") != LUA_TNIL) {
        luaL_checktype(L, -1, LUA_TTABLE);
        size_t n = lua_rawlen(L, -1);
        ituna_span_context *links = lua_newuserdatauv(L, (n ? n : 1) * sizeof(*links), 0);
        lua_insert(L, -2); /* scratch below the links table */
        for (size_t i = 0; i < n; i++) {
            const char *why = NULL;
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            if (!ilua_to_context(L, -1, &links[i], &why))
                luaL_error(L, "bad option 'links' (item %d: %s)", (int)i + 1, why);
            lua_pop(L, 1);
        }
        o->links = links;
        o->n_links = n;
    }
    lua_pop(L, 1);
}

/* Start a span from (name at i, attrs at i+1, opts at i+2) and push its userdata,
 * made current. [-0, +1, v] */
static ilua_span *start_span(lua_State *L, ituna_tracer *t, int i, int opts_idx) {
    const char *name = luaL_checkstring(L, i);
    int top = lua_gettop(L);
    ilua_attrs attrs;
    ilua_attrs_from_table(L, i + 1, i + 1, &attrs);
    ituna_span_options o;
    memset(&o, 0, sizeof o);
    ituna_span_context parent;
    if (opts_idx) span_options(L, opts_idx, &o, &parent);
    o.attrs = attrs.v;
    o.n_attrs = attrs.n;
    /* created "ended" before starting: a memory error leaks nothing */
    ilua_span *u = lua_newuserdatauv(L, sizeof(*u), 0);
    u->span = NULL;
    u->token = -1;
    u->borrowed = 0;
    lua_pushvalue(L, UV_SPAN_MT);
    lua_setmetatable(L, -2);
    ituna_span *s = NULL;
    ituna_err rc = ituna_span_start(t, name, &o, &s);
    if (rc != ITUNA_OK) {
        ilua_raise(L, rc, NULL);
        return NULL;
    }
    u->span = s;
    int token = -1;
    if (ituna_context_attach(ituna_span_get_context(s), &token) == ITUNA_OK) u->token = token;
    if (lua_gettop(L) > top + 1) { /* drop the scratch values below the span */
        lua_replace(L, top + 1);
        lua_settop(L, top + 1);
    }
    return u;
}

/* tracer:start_span(name[, attrs[, opts]]) -> span, current until closed.
 * Use as `local span <close> = tracer:start_span(...)`.
 * [-0, +1, v] */
static int tracer_start_span(lua_State *L) {
    ilua_tracer *t = check_tracer(L, 1);
    start_span(L, t->t, 2, lua_isnoneornil(L, 4) ? 0 : 4);
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

/* Mark span s error from the error object at eidx: status with its message and an
 * exception event carrying the traceback (may be NULL).
 * [-0, +0, m] */
static void span_mark_error(lua_State *L, ilua_span *s, int eidx, const char *traceback) {
    if (!s->span) return;
    int top = lua_gettop(L);
    const char *msg;
    if (ilua_is_malformed(L, eidx))
        msg = lua_pushfstring(L, "malformed: %s", lua_tostring(L, -1));
    else
        msg = luaL_tolstring(L, eidx, NULL);
    ituna_span_set_status(s->span, ITUNA_STATUS_ERROR, msg);
    ituna_span_record_exception(s->span, ilua_is_malformed(L, eidx) ? "ituna.malformed" : "lua error", msg,
                                traceback);
    lua_settop(L, top);
}

/* tracer:span(name, [attrs, [opts,]] fn) -> fn's results. Runs fn(span) with the
 * span current, ends it; on error marks it error (status, exception event with
 * traceback) and re-raises the original error value.
 * [-0, +r, e] */
static int tracer_span(lua_State *L) {
    ilua_tracer *t = check_tracer(L, 1);
    int fn = lua_gettop(L);
    luaL_checktype(L, fn, LUA_TFUNCTION);
    luaL_argcheck(L, fn >= 3 && fn <= 5, fn, "expected tracer:span(name, [attrs, [opts,]] fn)");
    int opts = fn == 5 ? 4 : 0;
    if (fn == 3) { /* tracer:span(name, fn) */
        lua_pushnil(L);
        lua_insert(L, 3);
        fn = 4;
    }
    ilua_span *s = start_span(L, t->t, 2, opts); /* span at fn+1 */
    int sidx = lua_gettop(L);
    lua_pushcfunction(L, ilua_msgh);
    int base = lua_gettop(L);
    lua_pushvalue(L, fn);
    lua_pushvalue(L, sidx);
    if (lua_pcall(L, 1, LUA_MULTRET, base) != LUA_OK) {
        lua_getfield(L, LUA_REGISTRYINDEX, ILUA_REG_TRACEBACK);
        span_mark_error(L, s, base + 1, lua_tostring(L, -1));
        lua_pop(L, 1);
        lua_pushnil(L);
        lua_setfield(L, LUA_REGISTRYINDEX, ILUA_REG_TRACEBACK);
        span_finish(s);
        return lua_error(L); /* the original error value, at the top */
    }
    span_finish(s);
    return lua_gettop(L) - base;
}

/* span:set_attribute(key, value) -> span.  [-0, +1, v] */
static int span_set_attribute(lua_State *L) {
    ilua_span *s = check_live_span(L, 1);
    luaL_checkstring(L, 2);
    luaL_checkany(L, 3);
    lua_settop(L, 3);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3); /* key, value on top as attr_value expects */
    ituna_attr a;
    attr_value(L, 3, &a);
    ituna_err rc = ituna_span_set_attr(s->span, &a);
    if (rc != ITUNA_OK) return ilua_raise(L, rc, "set_attribute failed");
    lua_settop(L, 1);
    return 1;
}

/* span:add_event(name[, attrs]) -> span.  [-0, +1, v] */
static int span_add_event(lua_State *L) {
    ilua_span *s = check_live_span(L, 1);
    const char *name = luaL_checkstring(L, 2);
    ilua_attrs attrs;
    ilua_attrs_from_table(L, 3, 3, &attrs);
    ituna_err rc = ituna_span_add_event(s->span, name, attrs.v, attrs.n, 0);
    if (rc != ITUNA_OK) return ilua_raise(L, rc, "add_event failed");
    lua_settop(L, 1);
    return 1;
}

/* span:add_link(ctx[, attrs]) -> span.  [-0, +1, v] */
static int span_add_link(lua_State *L) {
    ilua_span *s = check_live_span(L, 1);
    ituna_span_context ctx;
    const char *why = NULL;
    if (!ilua_to_context(L, 2, &ctx, &why)) return luaL_argerror(L, 2, why);
    ilua_attrs attrs;
    ilua_attrs_from_table(L, 3, 3, &attrs);
    ituna_err rc = ituna_span_add_link(s->span, &ctx, attrs.v, attrs.n);
    if (rc != ITUNA_OK) return ilua_raise(L, rc, "add_link failed");
    lua_settop(L, 1);
    return 1;
}

/* span:set_status("ok"|"error"|"unset"[, description]) -> span.  [-0, +1, v] */
static int span_set_status(lua_State *L) {
    static const char *const names[] = { "unset", "ok", "error", NULL };
    ilua_span *s = check_live_span(L, 1);
    int code = luaL_checkoption(L, 2, NULL, names);
    ituna_span_set_status(s->span, (ituna_status_code)code, luaL_optstring(L, 3, NULL));
    lua_settop(L, 1);
    return 1;
}

/* span:record_exception(message[, traceback[, type]]) -> span.  [-0, +1, v] */
static int span_record_exception(lua_State *L) {
    ilua_span *s = check_live_span(L, 1);
    const char *msg = luaL_tolstring(L, 2, NULL);
    ituna_err rc = ituna_span_record_exception(s->span, luaL_optstring(L, 4, "lua error"), msg,
                                               luaL_optstring(L, 3, NULL));
    if (rc != ITUNA_OK) return ilua_raise(L, rc, "record_exception failed");
    lua_settop(L, 1);
    return 1;
}

/* span:update_name(name) -> span.  [-0, +1, v] */
static int span_update_name(lua_State *L) {
    ilua_span *s = check_live_span(L, 1);
    ituna_err rc = ituna_span_update_name(s->span, luaL_checkstring(L, 2));
    if (rc != ITUNA_OK) return ilua_raise(L, rc, "update_name failed");
    lua_settop(L, 1);
    return 1;
}

/* span:context() -> {trace_id, span_id, trace_flags, ...}; also after the end.
 * [-0, +1, m] */
static int span_context(lua_State *L) {
    ilua_span *s = luaL_checkudata(L, 1, ILUA_SPAN);
    ituna_span_context ctx;
    if (s->span)
        ctx = *ituna_span_get_context(s->span);
    else
        span_saved_context(s, &ctx);
    ilua_push_context(L, &ctx);
    return 1;
}

/* span:is_recording() / span:is_ended()  [-0, +1, -] */
static int span_is_recording(lua_State *L) {
    ilua_span *s = luaL_checkudata(L, 1, ILUA_SPAN);
    lua_pushboolean(L, s->span && ituna_span_is_recording(s->span));
    return 1;
}
static int span_is_ended(lua_State *L) {
    ilua_span *s = luaL_checkudata(L, 1, ILUA_SPAN);
    lua_pushboolean(L, s->span == NULL);
    return 1;
}

/* __tostring [-0, +1, m] */
static int span_tostring(lua_State *L) {
    ilua_span *s = luaL_checkudata(L, 1, ILUA_SPAN);
    ituna_span_context ctx;
    if (s->span)
        ctx = *ituna_span_get_context(s->span);
    else
        span_saved_context(s, &ctx);
    char sid[17];
    ituna_span_id_hex(&ctx, sid);
    lua_pushfstring(L, "ituna.Span(%s%s)", sid, s->span ? "" : ", ended");
    return 1;
}

/* ---- propagation ------------------------------------------------------------------ */

typedef struct carrier_ref {
    lua_State *L;
    int idx;
} carrier_ref;

/* Carrier get: exact key, then a case-insensitive scan (HTTP-style carriers).
 * Raw access: no metamethods run under the core. Returned strings stay anchored
 * in the carrier table. [-0, +0, -] */
static const char *carrier_get(void *carrier, const char *key) {
    carrier_ref *c = carrier;
    lua_State *L = c->L;
    const char *v = NULL;
    lua_pushstring(L, key);
    if (lua_rawget(L, c->idx) == LUA_TSTRING) v = lua_tostring(L, -1);
    lua_pop(L, 1);
    if (v) return v;
    lua_pushnil(L);
    while (lua_next(L, c->idx)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING &&
            strcasecmp(lua_tostring(L, -2), key) == 0) {
            v = lua_tostring(L, -1);
            lua_pop(L, 2);
            break;
        }
        lua_pop(L, 1);
    }
    return v;
}

/* [-0, +0, m] */
static void carrier_set(void *carrier, const char *key, const char *value) {
    carrier_ref *c = carrier;
    lua_pushstring(c->L, value);
    lua_setfield(c->L, c->idx, key);
}

/* ituna.inject([ctx or span[, carrier]]) -> carrier table with traceparent (and
 * tracestate); without a context, the current one. Returns the table (empty when
 * there is no context).
 * [-0, +1, v] */
static int l_inject(lua_State *L) {
    ituna_span_context ctx;
    const ituna_span_context *p = NULL;
    if (!lua_isnoneornil(L, 1)) {
        const char *why = NULL;
        if (!ilua_to_context(L, 1, &ctx, &why)) return luaL_argerror(L, 1, why);
        p = &ctx;
    }
    if (lua_isnoneornil(L, 2))
        lua_newtable(L);
    else {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_pushvalue(L, 2);
    }
    carrier_ref c = { L, lua_gettop(L) };
    ituna_inject(p, carrier_set, &c);
    return 1;
}

/* ituna.extract(carrier) -> context table, or nil and the reason.
 * [-0, +(1|2), v] */
static int l_extract(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    carrier_ref c = { L, 1 };
    ituna_span_context ctx;
    const char *why = NULL;
    if (ituna_extract(carrier_get, &c, &ctx, &why) != ITUNA_OK) {
        lua_pushnil(L);
        lua_pushstring(L, why ? why : "no valid traceparent");
        return 2;
    }
    ilua_push_context(L, &ctx);
    return 1;
}

/* ituna.current_context() -> the thread's current context table, or nil.
 * [-0, +1, m] */
static int l_current_context(lua_State *L) {
    ituna_span_context ctx;
    if (!ituna_context_current(&ctx)) {
        lua_pushnil(L);
        return 1;
    }
    ilua_push_context(L, &ctx);
    return 1;
}

/* ---- malformed, running, sleep, log ------------------------------------------- */

/* ituna.malformed(reason) -> an error object; raised from a consumer body it sends
 * the message to the DLQ.  [-0, +1, m] */
static int l_malformed(lua_State *L) {
    const char *reason = luaL_checkstring(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushstring(L, reason);
    lua_setfield(L, -2, "reason");
    luaL_setmetatable(L, ILUA_MALFORMED);
    return 1;
}

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

/* __tostring of a malformed object [-0, +1, m] */
static int malformed_tostring(lua_State *L) {
    lua_getfield(L, 1, "reason");
    lua_pushfstring(L, "malformed: %s", luaL_optstring(L, -1, "?"));
    return 1;
}

/* ituna.running() -> false once SIGINT/SIGTERM asked the host to stop.  [-0, +1, -] */
static int l_running(lua_State *L) {
    lua_pushboolean(L, !stop_flag);
    return 1;
}

/* ituna.stop(): what the host's signal handling does, from Lua.  [-0, +0, -] */
static int l_stop(lua_State *L) {
    (void)L;
    ituna_lua_request_stop();
    return 0;
}

/* ituna.sleep(seconds) -> true, or false when a stop request cut it short.
 * [-0, +1, v] */
static int l_sleep(lua_State *L) {
    lua_Number s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s >= 0 && s <= 86400, 1, "seconds out of range");
    uint64_t end = ituna_now_ns() + (uint64_t)(s * 1e9);
    for (;;) {
        if (stop_flag) {
            lua_pushboolean(L, 0);
            return 1;
        }
        uint64_t now = ituna_now_ns();
        if (now >= end) break;
        uint64_t left = end - now, slice = left < 50000000u ? left : 50000000u; /* 50 ms slices */
        struct timespec ts = { (time_t)(slice / 1000000000u), (long)(slice % 1000000000u) };
        nanosleep(&ts, NULL); /* EINTR: loop re-checks the flag */
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* ituna.now() -> ns since the epoch (integer).  [-0, +1, -] */
static int l_now(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)ituna_now_ns());
    return 1;
}

/* ituna.log(level, message): through ituna's log handler.  [-0, +0, v] */
static int l_log(lua_State *L) {
    static const char *const names[] = { "debug", "info", "warn", "error", NULL };
    int lvl = luaL_checkoption(L, 1, NULL, names);
    ituna_log((ituna_log_level)lvl, "%s", luaL_checkstring(L, 2));
    return 0;
}

/* ---- registration ------------------------------------------------------------------ */

static const luaL_Reg module_functions[] = {
    { "init", l_init },
    { "shutdown", l_shutdown },
    { "tracer", l_tracer },
    { "inject", l_inject },
    { "extract", l_extract },
    { "current_context", l_current_context },
    { "malformed", l_malformed },
    { "running", l_running },
    { "stop", l_stop },
    { "sleep", l_sleep },
    { "now", l_now },
    { "log", l_log },
    { NULL, NULL },
};

static const luaL_Reg tracer_methods[] = {
    { "span", tracer_span },
    { "start_span", tracer_start_span },
    { "flush", tracer_flush },
    { "stats", tracer_stats },
    { "service_name", tracer_service_name },
    { "config", tracer_config },
    { NULL, NULL },
};

static const luaL_Reg tracer_metamethods[] = {
    { "__gc", tracer_gc },
    { "__tostring", tracer_tostring },
    { "__index", NULL }, /* set to the methods table */
    { NULL, NULL },
};

static const luaL_Reg span_methods[] = {
    { "set_attribute", span_set_attribute },
    { "add_event", span_add_event },
    { "add_link", span_add_link },
    { "set_status", span_set_status },
    { "record_exception", span_record_exception },
    { "update_name", span_update_name },
    { "context", span_context },
    { "is_recording", span_is_recording },
    { "is_ended", span_is_ended },
    { "finish", span_close },
    { NULL, NULL },
};

static const luaL_Reg span_metamethods[] = {
    { "__close", span_dunder_close },
    { "__gc", span_close },
    { "__tostring", span_tostring },
    { "__index", NULL },
    { NULL, NULL },
};

/* Fill metatable mt (absolute index) with metamethods mm and __index = methods;
 * every function gets the tracer and span metatables as upvalues 1 and 2.
 * [-0, +0, m] (tracer and span metatables at tmt, smt) */
static void fill_class(lua_State *L, int mt, int tmt, int smt, const luaL_Reg *mm, const luaL_Reg *methods) {
    lua_pushvalue(L, mt);
    lua_pushvalue(L, tmt);
    lua_pushvalue(L, smt);
    luaL_setfuncs(L, mm, 2);
    lua_newtable(L);
    lua_pushvalue(L, tmt);
    lua_pushvalue(L, smt);
    luaL_setfuncs(L, methods, 2);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

int luaopen_ituna(lua_State *L) {
    luaL_checkversion(L);
    luaL_newmetatable(L, ILUA_TRACER);
    int tmt = lua_gettop(L);
    luaL_newmetatable(L, ILUA_SPAN);
    int smt = lua_gettop(L);
    fill_class(L, tmt, tmt, smt, tracer_metamethods, tracer_methods);
    fill_class(L, smt, tmt, smt, span_metamethods, span_methods);
    lua_pop(L, 2);
    luaL_newmetatable(L, ILUA_MALFORMED);
    lua_pushcfunction(L, malformed_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);

    luaL_newlib(L, module_functions);
    ilua_open_kafka(L);
    ilua_push_null(L);
    lua_setfield(L, -2, "null");
    lua_pushstring(L, ituna_version());
    lua_setfield(L, -2, "version");
    return 1;
}
