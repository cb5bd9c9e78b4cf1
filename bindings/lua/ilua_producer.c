/* ilua_producer.c - ituna.producer: the options and publish tables converted to
 * the core's, and delivery reports, which the core serves on this thread inside
 * poll/flush/close (reports_on_poll), handed to on_delivery(report). Which
 * failures a flush or close raises is the core's: those not yet taken of
 * publishes made for no consumed message (ituna_producer_take_failures). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_internal.h"

/* uservalue 1: on_delivery (or nil); 2: the first error an on_delivery call
 * raised while the core served reports, raised once the core has returned. */
typedef struct ilua_producer {
    ituna_producer *p; /* NULL once closed */
    lua_State *L;      /* the thread serving reports (the producer at index 1), set around core calls */
    int failed;        /* uservalue 2 holds an error */
} ilua_producer;

/* Push report as {topic, partition, offset, error?, error_name?, trace_id, span_id}.
 * [-0, +1, m] */
static void push_report(lua_State *L, const ituna_delivery_report *r) {
    char tid[33], sid[17];
    lua_createtable(L, 0, 7);
    lua_pushstring(L, r->topic);
    lua_setfield(L, -2, "topic");
    lua_pushinteger(L, r->partition);
    lua_setfield(L, -2, "partition");
    lua_pushinteger(L, r->offset);
    lua_setfield(L, -2, "offset");
    if (r->err != ITUNA_OK) {
        lua_pushstring(L, r->errstr && r->errstr[0] ? r->errstr : ituna_err2str(r->err));
        lua_setfield(L, -2, "error");
        lua_pushstring(L, r->error_name ? r->error_name : "");
        lua_setfield(L, -2, "error_name");
    }
    ituna_trace_id_hex(&r->span, tid);
    ituna_span_id_hex(&r->span, sid);
    lua_pushstring(L, tid);
    lua_setfield(L, -2, "trace_id");
    lua_pushstring(L, sid);
    lua_setfield(L, -2, "span_id");
}

/* [fn or list, report pointer]: call fn(report), or append report to list.
 * [-2, +0, e] */
static int take_report(lua_State *L) {
    lua_settop(L, 2);
    lua_pushvalue(L, 1);
    push_report(L, lua_touserdata(L, 2));
    if (lua_isfunction(L, 1)) {
        lua_call(L, 1, 0);
        return 0;
    }
    lua_rawseti(L, 3, (lua_Integer)lua_rawlen(L, 3) + 1);
    return 0;
}

/* The core's delivery callback: runs inside poll/flush/close on the Lua thread
 * (never on librdkafka's, as reports_on_poll is set). Errors do not cross the
 * core's frames: the first is kept and the later reports are not handed over. */
static void on_delivery(const ituna_delivery_report *r, void *opaque) {
    ilua_producer *p = opaque;
    lua_State *L = p->L;
    if (!L || p->failed) return;
    lua_pushcfunction(L, take_report);
    lua_getiuservalue(L, 1, 1);
    lua_pushlightuserdata(L, (void *)r);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        p->failed = 1;
        lua_setiuservalue(L, 1, 2);
    }
}

/* Begin/end a core call that may serve reports.  [-0, +0, e at the end] */
static void serve_begin(lua_State *L, ilua_producer *p) {
    luaL_checkstack(L, 8, "delivery reports");
    p->L = L;
}
static void serve_end(lua_State *L, ilua_producer *p) {
    p->L = NULL;
    if (!p->failed) return;
    p->failed = 0;
    lua_getiuservalue(L, 1, 2);
    lua_pushnil(L);
    lua_setiuservalue(L, 1, 2);
    lua_error(L);
}

/* Failures collected into the list at the top of L (in a protected call). */
typedef struct failures {
    lua_State *L;
    char first[600]; /* the first one, described */
} failures;

static void collect_failure(const ituna_delivery_report *r, void *opaque) {
    failures *f = opaque;
    lua_State *L = f->L;
    if (!f->first[0]) ituna_delivery_report_describe(r, f->first, sizeof f->first);
    lua_pushcfunction(L, take_report);
    lua_pushvalue(L, -2);
    lua_pushlightuserdata(L, (void *)r);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1); /* memory error: the report is lost */
}

/* Raise the failed deliveries the core hands out now: those of the publishes made
 * for the message this thread handles, else for no message; none when on_delivery
 * took them. The error is a table {message, reports = {report...}} that prints as
 * its message. destroy (may be NULL) is destroyed first.  [-0, +0, e] */
static void raise_failures(lua_State *L, ituna_producer *core, const char *what, ituna_producer *destroy) {
    lua_newtable(L);
    failures f = { .L = L };
    size_t n = ituna_producer_take_failures(core, ituna_message_current(), collect_failure, &f);
    if (destroy) ituna_producer_destroy(destroy, 0);
    if (!n) {
        lua_pop(L, 1);
        return;
    }
    lua_createtable(L, 0, 2);
    lua_insert(L, -2);
    lua_setfield(L, -2, "reports");
    lua_pushfstring(L, "%s: %d message(s) failed delivery; first: %s", what, (int)n, f.first);
    lua_setfield(L, -2, "message");
    luaL_setmetatable(L, ILUA_DELIVERY_ERROR);
    lua_error(L);
}

/* [-0, +0, v] */
static ilua_producer *check_producer(lua_State *L, int idx) {
    ilua_producer *p = luaL_checkudata(L, idx, ILUA_PRODUCER);
    if (!p->p) luaL_error(L, "producer is closed");
    return p;
}

/* C.producer(tracer, bootstrap, payload_carrier, on_delivery, properties) -> producer,
 * or nil and the core's message: ituna.producer's table and the module's current
 * tracer, checked by ituna_glue.lua.  [-0, +(1|2), v] */
static int glue_producer(lua_State *L) {
    ituna_tracer *t = ((ilua_tracer *)lua_touserdata(L, 1))->t;
    ituna_producer_options o = { .payload_carrier = -1, .reports_on_poll = 1 };
    o.bootstrap = lua_tostring(L, 2);
    if (!lua_isnil(L, 3)) o.payload_carrier = lua_toboolean(L, 3);
    o.properties = ilua_string_list(L, 5);

    ilua_producer *p = lua_newuserdatauv(L, sizeof(*p), 2);
    memset(p, 0, sizeof *p);
    luaL_setmetatable(L, ILUA_PRODUCER);
    lua_pushvalue(L, 4);
    lua_setiuservalue(L, -2, 1);
    if (lua_isfunction(L, 4)) o.on_delivery = on_delivery;
    o.opaque = p;
    char err[ILUA_ERRSTR] = "";
    ituna_err rc = ituna_producer_create(t, ituna_tracer_config(t), &o, &p->p, err, sizeof err);
    if (rc != ITUNA_OK) return ilua_fail(L, rc, err);
    return 1;
}

/* Collect publish opts {key=, headers={k=v}, partition=, parent=, attributes={k=v}}
 * at idx into m (attrs: storage for the attributes, alive until the publish is done).
 * [-0, +k, v] scratch values, restored by the caller */
static void publish_opts(lua_State *L, int idx, ituna_message_out *m, ituna_span_context *parent,
                         ilua_attrs *attrs) {
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    if (lua_getfield(L, idx, "key") != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "publish: key must be a string, got %s", luaL_typename(L, -1));
        size_t len;
        m->key = lua_tolstring(L, -1, &len); /* stays on the stack until the publish is done */
        m->key_len = len;
    } else {
        lua_pop(L, 1);
    }
    if (lua_getfield(L, idx, "headers") != LUA_TNIL) {
        luaL_checktype(L, -1, LUA_TTABLE);
        int h = lua_gettop(L);
        size_t n = 0;
        lua_pushnil(L);
        while (lua_next(L, h)) {
            n++;
            lua_pop(L, 1);
        }
        ituna_header *hs = lua_newuserdatauv(L, (n ? n : 1) * sizeof(*hs), 0);
        size_t i = 0;
        lua_pushnil(L);
        while (lua_next(L, h)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "publish: headers must map strings to strings (got %s = %s)",
                           luaL_typename(L, -2), luaL_typename(L, -1));
            size_t len;
            hs[i].key = lua_tostring(L, -2);
            hs[i].value = lua_tolstring(L, -1, &len);
            hs[i].value_len = len;
            i++;
            lua_pop(L, 1);
        }
        m->headers = hs;
        m->n_headers = n;
    } else {
        lua_pop(L, 1);
    }
    if (lua_getfield(L, idx, "partition") != LUA_TNIL) {
        int isnum;
        lua_Integer part = lua_tointegerx(L, -1, &isnum);
        if (!isnum || part < 0 || part > INT32_MAX)
            luaL_error(L, "publish: partition must be a non-negative integer");
        m->partition = (int32_t)part;
        m->partition_set = 1;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "parent") != LUA_TNIL) {
        const char *why = NULL;
        if (!ilua_to_context(L, -1, parent, &why)) luaL_error(L, "publish: bad parent (%s)", why);
        m->parent = parent;
    }
    lua_pop(L, 1);
    /* The table stays on the stack: the converted strings point into it. */
    int at = lua_getfield(L, idx, "attributes");
    if (at != LUA_TNIL && at != LUA_TTABLE)
        luaL_error(L, "publish: attributes must be a table, got %s", lua_typename(L, at));
    ilua_attrs_from_table(L, -1, idx, attrs);
    m->attrs = attrs->v;
    m->n_attrs = attrs->n;
}

/* Hand the reports that arrived to on_delivery now.  [-0, +0, e] */
static void poll_reports(lua_State *L, ilua_producer *p) {
    serve_begin(L, p);
    ituna_producer_poll(p->p, 0);
    serve_end(L, p);
}

/* producer:publish(topic, value[, opts]) -> producer. value: string, or a table
 * encoded as JSON. Reports that arrived go to on_delivery first.  [-0, +1, e] */
static int producer_publish(lua_State *L) {
    ilua_producer *p = check_producer(L, 1);
    poll_reports(L, p);
    const char *topic = luaL_checkstring(L, 2);
    int vt = lua_type(L, 3);
    luaL_argexpected(L, vt == LUA_TSTRING || vt == LUA_TTABLE, 3, "string or table");
    lua_settop(L, 4);
    ituna_message_out m;
    memset(&m, 0, sizeof m);
    ituna_span_context parent;
    ilua_attrs attrs;
    publish_opts(L, 4, &m, &parent, &attrs);
    m.topic = topic;
    char err[ILUA_ERRSTR] = "";
    char *json = NULL;
    if (vt == LUA_TSTRING) {
        size_t len;
        m.value = lua_tolstring(L, 3, &len);
        m.value_len = len;
    } else {
        size_t len = 0;
        json = ilua_json_encode(L, 3, &len, err, sizeof err);
        if (!json) return luaL_error(L, "publish: %s", err);
        m.value = json;
        m.value_len = len;
    }
    ituna_err rc = ituna_producer_publish(p->p, &m, err, sizeof err);
    free(json);
    if (rc != ITUNA_OK) return ilua_raise(L, rc, err);
    lua_settop(L, 1);
    return 1;
}

/* producer:poll() -> messages in flight, after poll_reports.  [-0, +1, e] */
static int producer_poll(lua_State *L) {
    ilua_producer *p = check_producer(L, 1);
    poll_reports(L, p);
    lua_pushinteger(L, ituna_producer_in_flight(p->p));
    return 1;
}

/* producer:flush([timeout_s=10]) -> producer. Waits for every delivery report,
 * runs on_delivery, raises on timeout or on failures no on_delivery took.
 * [-0, +1, e] */
static int producer_flush(lua_State *L) {
    ilua_producer *p = check_producer(L, 1);
    serve_begin(L, p);
    ituna_err rc = ituna_producer_flush(p->p, ilua_timeout_ms(L, 2, 10000));
    serve_end(L, p);
    if (rc != ITUNA_OK)
        return luaL_error(L, "flush: %s with %d message(s) in flight", ituna_err2str(rc),
                          ituna_producer_in_flight(p->p));
    raise_failures(L, p->p, "flush", NULL);
    lua_settop(L, 1);
    return 1;
}

/* producer:close([timeout_s=10]): flush within the timeout and free; raises like
 * flush. Idempotent.  [-0, +0, e] */
static int producer_close(lua_State *L) {
    ilua_producer *p = luaL_checkudata(L, 1, ILUA_PRODUCER);
    if (!p->p) return 0;
    serve_begin(L, p);
    ituna_err rc = ituna_producer_close(p->p, ilua_timeout_ms(L, 2, 10000));
    serve_end(L, p);
    ituna_producer *core = p->p;
    p->p = NULL;
    raise_failures(L, core, rc == ITUNA_ERR_TIMEOUT ? "close (timed out)" : "close", core);
    if (rc != ITUNA_OK && rc != ITUNA_ERR_TIMEOUT) return ilua_raise(L, rc, NULL);
    return 0;
}

/* __gc/__close: destroy without raising or calling Lua; the core logs failures
 * nobody took.  [-0, +0, -] */
static int producer_gc(lua_State *L) {
    ilua_producer *p = luaL_checkudata(L, 1, ILUA_PRODUCER);
    if (p->p) ituna_producer_destroy(p->p, 5000);
    p->p = NULL;
    return 0;
}

/* producer:in_flight() [-0, +1, v] */
static int producer_in_flight(lua_State *L) {
    lua_pushinteger(L, ituna_producer_in_flight(check_producer(L, 1)->p));
    return 1;
}
static const luaL_Reg producer_methods[] = {
    { "publish", producer_publish }, { "flush", producer_flush },         { "poll", producer_poll },
    { "close", producer_close },     { "in_flight", producer_in_flight }, { NULL, NULL },
};
static const luaL_Reg producer_metamethods[] = {
    { "__gc", producer_gc },
    { "__close", producer_gc },
    { NULL, NULL },
};

void ilua_open_producer(lua_State *L) {
    ilua_new_class(L, ILUA_PRODUCER, producer_metamethods, producer_methods, "__index");
    luaL_newmetatable(L, ILUA_DELIVERY_ERROR); /* its __tostring: ituna_glue.lua */
    lua_setfield(L, -2, "delivery_error");
    lua_pushcfunction(L, glue_producer);
    lua_setfield(L, -2, "producer");
}
