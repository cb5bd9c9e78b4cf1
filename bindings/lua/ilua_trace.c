/* ilua_trace.c - tracing in the `ituna` Lua module: ituna.init/shutdown/tracer,
 * the tracer and span userdata (tracer:span, start_span, span methods), and
 * inject/extract/current_context. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lua_internal.h"

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

/* C.host_setting_error(service, key, value) -> the core's error for a setting
 * ituna.init cannot apply to the tracer the host set up (ituna_host_setting_check),
 * or nothing.  [-0, +(0|1), m] */
static int glue_host_setting_error(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, ILUA_REG_HOST_CONFIG);
    lua_getfield(L, LUA_REGISTRYINDEX, ILUA_REG_HOST_SCHEMA);
    char err[ILUA_ERRSTR];
    if (ituna_host_setting_check("ituna-lua", lua_tostring(L, 1), lua_tostring(L, 4), lua_tostring(L, 5),
                                 lua_tostring(L, 2), lua_tostring(L, 3), err, sizeof err) == ITUNA_OK)
        return 0;
    lua_pushstring(L, err);
    return 1;
}

static void set_host_path(lua_State *L, const char *path, const char *reg) {
    if (path && path[0])
        lua_pushstring(L, path);
    else
        lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, reg);
}

void ituna_lua_set_host_schema(lua_State *L, const char *schema_path) {
    set_host_path(L, schema_path, ILUA_REG_HOST_SCHEMA);
}

void ituna_lua_set_host_config(lua_State *L, const char *config_path) {
    set_host_path(L, config_path, ILUA_REG_HOST_CONFIG);
}

/* C.init(schema, config, settings) -> the tracer ituna.init makes (ituna_glue.lua
 * checked its table), the global one and the module's current; or nil and the
 * core's message.  [-0, +(1|2), m] */
static int glue_init(lua_State *L) {
    const char *const *overrides = ilua_string_list(L, 3);
    char err[ILUA_ERRSTR] = "";
    ituna_tracer *t = NULL;
    ituna_err rc =
        ituna_tracer_create_host(lua_tostring(L, 1), lua_tostring(L, 2), 1, overrides, &t, err, sizeof err);
    if (rc != ITUNA_OK) return ilua_fail(L, rc, err);
    ituna_tracer_set_global(t);
    push_tracer(L, t, 1);
    return 1;
}

void ituna_lua_set_host_tracer(lua_State *L, ituna_tracer *t) {
    push_tracer(L, t, 0);
    lua_pop(L, 1);
}

/* Push "what: <why>" for a failed flush/shutdown; spans lost are named with the
 * counts, so a script's log line says how many.  [-0, +1, m] */
static void push_export_error(lua_State *L, const char *what, ituna_tracer *t, ituna_err rc) {
    char buf[200];
    lua_pushstring(L, ituna_tracer_describe_loss(t, what, rc, buf, sizeof buf));
}

/* ituna.shutdown([timeout_s=5]): flush and stop the current tracer; later spans
 * are dropped (counted). Returns true, or false and a message on timeout or when
 * spans were lost (dropped, export failed, rejected).
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
        push_export_error(L, "shutdown", t->t, rc);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* C.current() -> the current tracer and whether ituna.init made it (else the
 * host did), or nothing.  [-0, +(0|2), -] */
static int glue_current(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, ILUA_REG_TRACER);
    ilua_tracer *t = luaL_testudata(L, -1, ILUA_TRACER);
    if (!t || !t->t) return 0;
    lua_pushboolean(L, t->owned);
    return 2;
}

/* tracer:flush([timeout_s]) -> true | false, message: false on timeout or when
 * spans were lost since the previous flush.  [-0, +(1|2), v] */
static int tracer_flush(lua_State *L) {
    ilua_tracer *t = check_tracer(L, 1);
    ituna_err rc = ituna_tracer_flush(t->t, ilua_timeout_ms(L, 2, -1));
    lua_pushboolean(L, rc == ITUNA_OK);
    if (rc == ITUNA_OK) return 1;
    push_export_error(L, "flush", t->t, rc);
    return 2;
}

/* tracer:stats() -> table of the core's counters.  [-0, +1, v] */
static int tracer_stats(lua_State *L) {
    ilua_tracer *t = check_tracer(L, 1);
    ituna_tracer_stats st;
    ituna_tracer_get_stats(t->t, &st);
    lua_createtable(L, 0, 14);
    uint64_t v;
    const char *name;
    for (size_t i = 0; (name = ituna_tracer_stats_field(&st, i, &v)); i++) {
        lua_pushinteger(L, (lua_Integer)v);
        lua_setfield(L, -2, name);
    }
    return 1;
}

/* tracer:service_name() [-0, +1, v] */
static int tracer_service_name(lua_State *L) {
    ilua_tracer *t = check_tracer(L, 1);
    lua_pushstring(L, ituna_tracer_service_name(t->t));
    return 1;
}

/* Push the tracer's setting (section, key) by lookup, or nil.  [-0, +1, v] */
static int push_setting(lua_State *L,
                        const char *(*lookup)(const ituna_config *, const char *, const char *)) {
    ilua_tracer *t = check_tracer(L, 1);
    const char *v = lookup(ituna_tracer_config(t->t), luaL_checkstring(L, 2), luaL_checkstring(L, 3));
    v ? (void)lua_pushstring(L, v) : lua_pushnil(L);
    return 1;
}

/* tracer:config(section, key) -> value string or nil (defaults are not reported).
 * [-0, +1, v] */
static int tracer_config(lua_State *L) {
    return push_setting(L, ituna_config_get);
}

/* tracer:config_value(section, key) -> the value as set, else the default of the
 * core's or the registered application schema's table, else nil.
 * [-0, +1, v] */
static int tracer_config_value(lua_State *L) {
    return push_setting(L, ituna_config_value);
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

/* Read start options {kind=, parent=, root=, links={ctx...}} at idx into *o.
 * [-0, +k, v] (scratch; the caller restores the top) */
static void span_options(lua_State *L, int idx, ituna_span_options *o, ituna_span_context *parent) {
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    if (lua_getfield(L, idx, "kind") != LUA_TNIL) {
        const char *k = lua_tostring(L, -1);
        if (ituna_span_kind_from_name(k, &o->kind) != ITUNA_OK)
            luaL_error(L,
                       "bad option 'kind' (expected internal, server, client, producer or consumer, got %s)",
                       k ? k : luaL_typename(L, -1));
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
    ilua_attr_value(L, 3, &a);
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
    ilua_span *s = check_live_span(L, 1);
    const char *name = luaL_checkstring(L, 2);
    ituna_status_code code;
    if (ituna_status_code_from_name(name, &code) != ITUNA_OK)
        return luaL_argerror(L, 2, lua_pushfstring(L, "invalid option '%s'", name));
    ituna_span_set_status(s->span, code, luaL_optstring(L, 3, NULL));
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
    ilua_span_ctx(s, &ctx);
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

/* ---- propagation ------------------------------------------------------------------ */

typedef struct carrier_ref {
    lua_State *L;
    int idx;
} carrier_ref;

/* Carrier get: exact key, then a case-insensitive scan (HTTP-style carriers).
 * Raw access: no metamethods run under the core. Returned strings stay anchored
 * in the carrier table; *len is the Lua string's length (a NUL is part of it).
 * [-0, +0, -] */
static const char *carrier_get(void *carrier, const char *key, size_t *len) {
    carrier_ref *c = carrier;
    lua_State *L = c->L;
    const char *v = NULL;
    lua_pushstring(L, key);
    if (lua_rawget(L, c->idx) == LUA_TSTRING) v = lua_tolstring(L, -1, len);
    lua_pop(L, 1);
    if (v) return v;
    lua_pushnil(L);
    while (lua_next(L, c->idx)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING &&
            strcasecmp(lua_tostring(L, -2), key) == 0) {
            v = lua_tolstring(L, -1, len);
            lua_pop(L, 2);
            break;
        }
        lua_pop(L, 1);
    }
    return v;
}

/* The global tracer's propagators (OTEL_PROPAGATORS), or the default set. */
static unsigned props(void) {
    return ituna_tracer_propagators(ituna_tracer_global());
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
    ituna_span_context cur;
    if (!p && ituna_context_current(&cur)) p = &cur;
    if (p) ituna_inject_with(props(), p, NULL, carrier_set, &c);
    return 1;
}

/* ituna.extract(carrier) -> context table, or nil and the reason.
 * [-0, +(1|2), v] */
static int l_extract(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    carrier_ref c = { L, 1 };
    ituna_span_context ctx;
    const char *why = NULL;
    if (ituna_extract_with(props(), carrier_get, &c, &ctx, NULL, &why) != ITUNA_OK) {
        lua_pushnil(L);
        lua_pushstring(L, why ? why : "no valid traceparent");
        return 2;
    }
    ilua_push_context(L, &ctx);
    return 1;
}

/* ituna.extract_baggage(carrier) -> table of the W3C baggage entries (decoded), empty
 * when absent or invalid.
 * [-0, +1, m] */
static int l_extract_baggage(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    carrier_ref c = { L, 1 };
    ituna_baggage *bag = ituna_baggage_new();
    if (!bag) return luaL_error(L, "out of memory");
    ituna_span_context ctx;
    ituna_extract_with(props() & ITUNA_PROPAGATOR_BAGGAGE, carrier_get, &c, &ctx, bag, NULL);
    ilua_push_baggage(L, bag);
    ituna_baggage_destroy(bag);
    return 1;
}

void ilua_push_baggage(lua_State *L, const ituna_baggage *bag) {
    lua_createtable(L, 0, (int)ituna_baggage_count(bag));
    const char *k, *v, *meta;
    for (size_t i = 0; i < ituna_baggage_count(bag); i++)
        if (ituna_baggage_entry(bag, i, &k, &v, &meta)) {
            lua_pushstring(L, v);
            lua_setfield(L, -2, k);
        }
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

/* ---- registration ------------------------------------------------------------------ */

static const luaL_Reg trace_functions[] = {
    { "shutdown", l_shutdown },
    { "inject", l_inject },
    { "extract", l_extract },
    { "current_context", l_current_context },
    { "extract_baggage", l_extract_baggage },
    { NULL, NULL },
};

static const luaL_Reg trace_glue[] = {
    { "init", glue_init },
    { "current", glue_current },
    { "host_setting_error", glue_host_setting_error },
    { NULL, NULL },
};

static const luaL_Reg tracer_methods[] = {
    { "span", tracer_span },
    { "start_span", tracer_start_span },
    { "flush", tracer_flush },
    { "stats", tracer_stats },
    { "service_name", tracer_service_name },
    { "config", tracer_config },
    { "config_value", tracer_config_value },
    { NULL, NULL },
};

static const luaL_Reg tracer_metamethods[] = {
    { "__gc", tracer_gc },
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

void ilua_open_trace(lua_State *L) {
    luaL_newmetatable(L, ILUA_TRACER);
    int tmt = lua_gettop(L);
    luaL_newmetatable(L, ILUA_SPAN);
    int smt = lua_gettop(L);
    fill_class(L, tmt, tmt, smt, tracer_metamethods, tracer_methods);
    fill_class(L, smt, tmt, smt, span_metamethods, span_methods);
    lua_pop(L, 2);
    luaL_setfuncs(L, trace_functions, 0);
}

/* The glue gets the tracer and span metatables too: it adds their __tostring. */
void ilua_glue_trace(lua_State *L) {
    luaL_setfuncs(L, trace_glue, 0);
    luaL_getmetatable(L, ILUA_TRACER);
    lua_setfield(L, -2, "tracer_mt");
    luaL_getmetatable(L, ILUA_SPAN);
    lua_setfield(L, -2, "span_mt");
}
