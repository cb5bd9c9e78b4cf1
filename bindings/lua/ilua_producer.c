/* ilua_producer.c - ituna.producer: publish (options table to the core's
 * message), flush, close, and delivery reports queued in C and handed to Lua on
 * the Lua thread. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_internal.h"

typedef struct ilua_report {
    struct ilua_report *next;
    int32_t partition;
    int64_t offset;
    ituna_err err;
    char trace_id[33], span_id[17];
    char *topic, *errstr, *error_name; /* one allocation after the struct */
} ilua_report;

typedef struct ilua_producer {
    ituna_producer *p; /* NULL once closed */
    pthread_mutex_t mu;
    ilua_report *head, *tail; /* delivery reports waiting for the Lua thread */
    int want_success;         /* an on_delivery function wants every report */
    uint64_t failures;        /* failed deliveries not yet raised */
    char first_error[256];
} ilua_producer;

/* Delivery callback: runs on the producer's delivery thread, so it only queues
 * a copy of the report; Lua is touched on the Lua thread alone (drain_reports). */
static void on_delivery(const ituna_delivery_report *r, void *opaque) {
    ilua_producer *p = opaque;
    if (r->err == ITUNA_OK && !p->want_success) return;
    const char *topic = r->topic ? r->topic : "", *es = r->errstr ? r->errstr : "",
               *en = r->error_name ? r->error_name : "";
    size_t lt = strlen(topic) + 1, le = strlen(es) + 1, ln = strlen(en) + 1;
    ilua_report *q = malloc(sizeof(*q) + lt + le + ln);
    pthread_mutex_lock(&p->mu);
    if (r->err != ITUNA_OK) {
        if (p->failures++ == 0)
            snprintf(p->first_error, sizeof p->first_error, "topic %s: %s (%s)", topic, es, en);
    }
    if (q) {
        q->next = NULL;
        q->partition = r->partition;
        q->offset = r->offset;
        q->err = r->err;
        ituna_trace_id_hex(&r->span, q->trace_id);
        ituna_span_id_hex(&r->span, q->span_id);
        q->topic = (char *)(q + 1);
        q->errstr = q->topic + lt;
        q->error_name = q->errstr + le;
        memcpy(q->topic, topic, lt);
        memcpy(q->errstr, es, le);
        memcpy(q->error_name, en, ln);
        if (p->tail)
            p->tail->next = q;
        else
            p->head = q;
        p->tail = q;
    }
    pthread_mutex_unlock(&p->mu);
}

/* Take the queued reports.  [-0, +0, -] */
static ilua_report *take_reports(ilua_producer *p) {
    pthread_mutex_lock(&p->mu);
    ilua_report *r = p->head;
    p->head = p->tail = NULL;
    pthread_mutex_unlock(&p->mu);
    return r;
}

/* Push a report table {topic, partition, offset, error?, error_name?, trace_id, span_id}.
 * [-0, +1, m] */
static void push_report(lua_State *L, const ilua_report *r) {
    lua_createtable(L, 0, 7);
    lua_pushstring(L, r->topic);
    lua_setfield(L, -2, "topic");
    lua_pushinteger(L, r->partition);
    lua_setfield(L, -2, "partition");
    lua_pushinteger(L, r->offset);
    lua_setfield(L, -2, "offset");
    if (r->err != ITUNA_OK) {
        lua_pushstring(L, r->errstr[0] ? r->errstr : ituna_err2str(r->err));
        lua_setfield(L, -2, "error");
        lua_pushstring(L, r->error_name);
        lua_setfield(L, -2, "error_name");
    }
    lua_pushstring(L, r->trace_id);
    lua_setfield(L, -2, "trace_id");
    lua_pushstring(L, r->span_id);
    lua_setfield(L, -2, "span_id");
}

/* Hand queued reports to on_delivery (uservalue 1) on this, the Lua thread.
 * Reports are freed first thing; a callback error is re-raised after all ran.
 * [-0, +0, e] */
static void drain_reports(lua_State *L, int pidx, ilua_producer *p) {
    ilua_report *r = take_reports(p);
    if (!r) return;
    lua_getiuservalue(L, pidx, 1);
    int fn = lua_gettop(L), failed = 0;
    while (r) {
        ilua_report *next = r->next;
        if (lua_isfunction(L, fn) && !failed) {
            lua_pushvalue(L, fn);
            push_report(L, r);
            if (lua_pcall(L, 1, 0, 0) != LUA_OK) failed = 1; /* keep the error on the stack, free the rest */
            if (r->err != ITUNA_OK) {
                pthread_mutex_lock(&p->mu); /* handed to the callback: not raised again */
                if (p->failures) p->failures--;
                pthread_mutex_unlock(&p->mu);
            }
        }
        free(r);
        r = next;
    }
    if (failed) lua_error(L);
    lua_settop(L, fn - 1);
}

/* [-0, +0, v] */
static ilua_producer *check_producer(lua_State *L, int idx) {
    ilua_producer *p = luaL_checkudata(L, idx, ILUA_PRODUCER);
    if (!p->p) luaL_error(L, "producer is closed");
    return p;
}

/* Raise when deliveries failed and no on_delivery function took them.
 * [-0, +0, e] */
static void raise_failures(lua_State *L, ilua_producer *p, const char *what) {
    pthread_mutex_lock(&p->mu);
    uint64_t n = p->failures;
    char first[256];
    memcpy(first, p->first_error, sizeof first);
    p->failures = 0;
    p->first_error[0] = '\0';
    pthread_mutex_unlock(&p->mu);
    if (n) luaL_error(L, "%s: %d message(s) failed delivery; first: %s", what, (int)n, first);
}

static const char *const producer_reserved[] = { "bootstrap", "on_delivery", "payload_carrier", NULL };

/* ituna.producer{bootstrap=..., on_delivery=fn, payload_carrier=bool, [librdkafka
 * property]=value...} -> producer.  [-0, +1, e] */
static int l_producer(lua_State *L) {
    ituna_tracer *t = ilua_current_tracer(L, "ituna.producer");
    if (lua_isnoneornil(L, 1)) lua_newtable(L), lua_replace(L, 1);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    ituna_producer_options o;
    memset(&o, 0, sizeof o);
    o.bootstrap = ilua_opt_string(L, 1, "bootstrap", "ituna.producer");
    o.payload_carrier = -1;
    if (lua_getfield(L, 1, "payload_carrier") != LUA_TNIL) o.payload_carrier = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 1, "on_delivery");
    if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
        return luaL_error(L, "ituna.producer: on_delivery must be a function, got %s", luaL_typename(L, -1));
    int cb = lua_gettop(L);
    o.properties = ilua_string_pairs(L, 1, producer_reserved, "ituna.producer");

    ilua_producer *p = lua_newuserdatauv(L, sizeof(*p), 1);
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    luaL_setmetatable(L, ILUA_PRODUCER);
    lua_pushvalue(L, cb);
    lua_setiuservalue(L, -2, 1);
    p->want_success = lua_isfunction(L, cb);
    o.on_delivery = on_delivery;
    o.opaque = p;
    char err[ILUA_ERRSTR] = "";
    ituna_err rc = ituna_producer_create(t, ituna_tracer_config(t), &o, &p->p, err, sizeof err);
    if (rc != ITUNA_OK) return ilua_raise(L, rc, err);
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

/* producer:publish(topic, value[, opts]) -> producer. value: string, or a table
 * encoded as JSON. Runs queued on_delivery callbacks first.  [-0, +1, e] */
static int producer_publish(lua_State *L) {
    ilua_producer *p = check_producer(L, 1);
    const char *topic = luaL_checkstring(L, 2);
    int vt = lua_type(L, 3);
    luaL_argexpected(L, vt == LUA_TSTRING || vt == LUA_TTABLE, 3, "string or table");
    lua_settop(L, 4);
    drain_reports(L, 1, p);
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

/* producer:poll(): run queued on_delivery callbacks now.  [-0, +1, e] */
static int producer_poll(lua_State *L) {
    ilua_producer *p = check_producer(L, 1);
    drain_reports(L, 1, p);
    lua_pushinteger(L, ituna_producer_in_flight(p->p));
    return 1;
}

/* producer:flush([timeout_s=10]) -> producer. Waits for every delivery report,
 * runs callbacks, raises on timeout or on failures no on_delivery took.
 * [-0, +1, e] */
static int producer_flush(lua_State *L) {
    ilua_producer *p = check_producer(L, 1);
    ituna_err rc = ituna_producer_flush(p->p, ilua_timeout_ms(L, 2, 10000));
    drain_reports(L, 1, p);
    if (rc != ITUNA_OK)
        return luaL_error(L, "flush: %s with %d message(s) in flight", ituna_err2str(rc),
                          ituna_producer_in_flight(p->p));
    raise_failures(L, p, "flush");
    lua_settop(L, 1);
    return 1;
}

/* producer:close([timeout_s=10]): flush within the timeout and free; raises like
 * flush. Idempotent.  [-0, +0, e] */
static int producer_close(lua_State *L) {
    ilua_producer *p = luaL_checkudata(L, 1, ILUA_PRODUCER);
    if (!p->p) return 0;
    ituna_err rc = ituna_producer_destroy(p->p, ilua_timeout_ms(L, 2, 10000));
    p->p = NULL;
    drain_reports(L, 1, p);
    if (rc != ITUNA_OK && rc != ITUNA_ERR_TIMEOUT) return ilua_raise(L, rc, NULL);
    raise_failures(L, p, rc == ITUNA_ERR_TIMEOUT ? "close (timed out)" : "close");
    return 0;
}

/* __gc/__close: destroy without raising; failures left unreported are logged.
 * [-0, +0, -] */
static int producer_gc(lua_State *L) {
    ilua_producer *p = luaL_checkudata(L, 1, ILUA_PRODUCER);
    if (p->p) {
        ituna_producer_destroy(p->p, 5000);
        p->p = NULL;
    }
    ilua_report *r = take_reports(p);
    while (r) {
        ilua_report *next = r->next;
        free(r);
        r = next;
    }
    if (p->failures)
        ituna_log(ITUNA_LOG_WARN, "lua producer collected with %d failed deliveries unreported; first: %s",
                  (int)p->failures, p->first_error);
    p->failures = 0;
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
    lua_pushcfunction(L, l_producer);
    lua_setfield(L, -2, "producer");
}
