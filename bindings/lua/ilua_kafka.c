/* ilua_kafka.c - Kafka in the `ituna` Lua module: ituna.producer (publish, flush,
 * close, delivery reports queued in C and handed to Lua on the Lua thread),
 * ituna.consumer (messages() loop with a to-be-closed finisher, each(fn), poll),
 * the message userdata, and ituna.start_embedded_broker. All Kafka behaviour
 * (spans, headers, commit, DLQ) is the core's. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_internal.h"

void ilua_span_invalidate(ilua_span *s); /* ituna_lua.c */

/* ---- librdkafka properties from a Lua table ------------------------------- */

/* Collect the table's keys not in `reserved` as NULL-terminated key, value pairs
 * (strings anchored in a scratch table pushed on the stack).
 * [-0, +2, v] pushes the anchor table and the pointer array userdata */
static const char *const *collect_properties(lua_State *L, int idx, const char *const *reserved,
                                             const char *fn) {
    lua_newtable(L); /* anchor for converted strings */
    int anchor = lua_gettop(L);
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        n++;
        lua_pop(L, 1);
    }
    const char **props = lua_newuserdatauv(L, (2 * n + 1) * sizeof(char *), 0);
    size_t k = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "%s: option keys must be strings, got %s", fn, luaL_typename(L, -2));
        const char *key = lua_tostring(L, -2);
        int skip = 0;
        for (const char *const *r = reserved; *r; r++)
            if (strcmp(*r, key) == 0) skip = 1;
        if (!skip) {
            int vt = lua_type(L, -1);
            if (vt == LUA_TBOOLEAN)
                lua_pushstring(L, lua_toboolean(L, -1) ? "true" : "false");
            else if (vt == LUA_TSTRING || vt == LUA_TNUMBER)
                lua_pushstring(L, lua_tostring(L, -1)); /* converts the value slot only */
            else
                luaL_error(L, "%s: option '%s' is a %s; expected string, number or boolean", fn, key,
                           lua_typename(L, vt));
            props[k] = key; /* the key stays anchored in the options table */
            props[k + 1] = lua_tostring(L, -1);
            lua_rawseti(L, anchor, (lua_Integer)(k + 1)); /* anchor the converted value */
            k += 2;
        }
        lua_pop(L, 1);
    }
    props[k] = NULL;
    return props;
}

/* Optional string option. [-0, +0, v] (the string stays anchored in the table) */
static const char *opt_string(lua_State *L, int idx, const char *key, const char *fn) {
    lua_getfield(L, idx, key);
    const char *v = NULL;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "%s: option '%s' must be a string, got %s", fn, key, luaL_typename(L, -1));
        v = lua_tostring(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* ---- producer ---------------------------------------------------------------------- */

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
    o.bootstrap = opt_string(L, 1, "bootstrap", "ituna.producer");
    o.payload_carrier = -1;
    if (lua_getfield(L, 1, "payload_carrier") != LUA_TNIL) o.payload_carrier = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 1, "on_delivery");
    if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
        return luaL_error(L, "ituna.producer: on_delivery must be a function, got %s", luaL_typename(L, -1));
    int cb = lua_gettop(L);
    o.properties = collect_properties(L, 1, producer_reserved, "ituna.producer");

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

/* ---- messages ---------------------------------------------------------------------- */

typedef struct ilua_consumer {
    ituna_consumer *c;   /* NULL once closed */
    int slot;            /* stop-registry slot, -1 */
    int stopping;        /* consumer:stop() */
    int busy;            /* a message is out (one at a time per consumer) */
    ituna_message *held; /* polled by wait_assigned(), not handed out yet: the next poll returns it */
} ilua_consumer;

typedef struct ilua_message {
    ituna_message *m; /* NULL once finished */
    ilua_consumer *owner;
    int token; /* context attach token, -1 */
} ilua_message;

/* Push a message userdata for m (uservalue 1: the consumer, 2: its span userdata),
 * its CONSUMER span made current.  [-0, +1, m] */
static ilua_message *push_message(lua_State *L, int cidx, ilua_consumer *c, ituna_message *m) {
    ilua_message *u = lua_newuserdatauv(L, sizeof(*u), 2);
    u->m = NULL;
    u->owner = c;
    u->token = -1;
    luaL_setmetatable(L, ILUA_MESSAGE);
    lua_pushvalue(L, cidx);
    lua_setiuservalue(L, -2, 1);
    u->m = m;
    c->busy = 1;
    int token = -1;
    if (ituna_context_attach(ituna_span_get_context(ituna_message_span(m)), &token) == ITUNA_OK)
        u->token = token;
    return u;
}

/* Finish the message at idx: detach its context, invalidate its span userdata,
 * ituna_message_done(). Returns the core's result; err filled on failure.
 * [-0, +0, m] */
static ituna_err finish_message(lua_State *L, int idx, ituna_handler_result res, const char *reason,
                                char *err, size_t err_size) {
    ilua_message *u = luaL_checkudata(L, idx, ILUA_MESSAGE);
    if (!u->m) return ITUNA_OK;
    if (u->token >= 0) {
        ituna_context_detach(u->token);
        u->token = -1;
    }
    if (lua_getiuservalue(L, idx, 2) == LUA_TUSERDATA) ilua_span_invalidate(lua_touserdata(L, -1));
    lua_pop(L, 1);
    ituna_message *m = u->m;
    u->m = NULL;
    u->owner->busy = 0;
    return ituna_message_done(m, res, reason, err, err_size);
}

/* [-0, +0, v] */
static ilua_message *check_live_message(lua_State *L, int idx) {
    ilua_message *u = luaL_checkudata(L, idx, ILUA_MESSAGE);
    if (!u->m) luaL_error(L, "message is already finished");
    return u;
}

/* msg:json() -> the value decoded from JSON; raises ituna.malformed(reason) when
 * it is not JSON, so a consumer body sends it to the DLQ.  [-0, +1, e] */
static int message_json(lua_State *L) {
    ilua_message *u = check_live_message(L, 1);
    size_t len = 0;
    const char *v = ituna_message_value(u->m, &len);
    char err[160];
    if (!v) {
        lua_pushfstring(L, "empty payload");
    } else if (ilua_json_decode(L, v, len, err, sizeof err)) {
        return 1;
    } else {
        lua_pushstring(L, err);
    }
    lua_createtable(L, 0, 1); /* ituna.malformed(reason) */
    lua_insert(L, -2);
    lua_setfield(L, -2, "reason");
    luaL_setmetatable(L, ILUA_MALFORMED);
    return lua_error(L);
}

/* msg:done("ok"|"error"|"malformed"[, reason]) for messages from consumer:poll().
 * [-0, +0, e] */
static int message_done(lua_State *L) {
    static const char *const names[] = { "ok", "error", "malformed", NULL };
    check_live_message(L, 1);
    int res = luaL_checkoption(L, 2, "ok", names);
    char err[ILUA_ERRSTR] = "";
    ituna_err rc =
        finish_message(L, 1, (ituna_handler_result)res, luaL_optstring(L, 3, NULL), err, sizeof err);
    if (rc != ITUNA_OK) return ilua_raise(L, rc, err);
    return 0;
}

/* msg:span() -> the CONSUMER span (borrowed: ends with the message).  [-0, +1, m] */
static int message_span(lua_State *L) {
    ilua_message *u = check_live_message(L, 1);
    if (lua_getiuservalue(L, 1, 2) == LUA_TUSERDATA) return 1;
    lua_pop(L, 1);
    ilua_push_span(L, ituna_message_span(u->m), 1);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 2);
    return 1;
}

static int message_context(lua_State *L) {
    ilua_message *u = check_live_message(L, 1);
    ilua_push_context(L, ituna_span_get_context(ituna_message_span(u->m)));
    return 1;
}

static const luaL_Reg message_methods[] = {
    { "json", message_json },       { "done", message_done }, { "span", message_span },
    { "context", message_context }, { NULL, NULL },
};

/* __index: methods, then the fields value, key, topic, partition, offset,
 * timestamp (ms), headers (table; last value of a repeated key wins).
 * [-0, +1, e] */
static int message_index(lua_State *L) {
    const char *k = luaL_checkstring(L, 2);
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    if (lua_getfield(L, -1, k) != LUA_TNIL) return 1;
    ilua_message *u = check_live_message(L, 1);
    size_t len = 0;
    if (strcmp(k, "value") == 0) {
        const void *v = ituna_message_value(u->m, &len);
        v ? lua_pushlstring(L, v, len) : lua_pushnil(L);
    } else if (strcmp(k, "key") == 0) {
        const void *v = ituna_message_key(u->m, &len);
        v ? lua_pushlstring(L, v, len) : lua_pushnil(L);
    } else if (strcmp(k, "topic") == 0) {
        lua_pushstring(L, ituna_message_topic(u->m));
    } else if (strcmp(k, "partition") == 0) {
        lua_pushinteger(L, ituna_message_partition(u->m));
    } else if (strcmp(k, "offset") == 0) {
        lua_pushinteger(L, ituna_message_offset(u->m));
    } else if (strcmp(k, "timestamp") == 0) {
        lua_pushinteger(L, ituna_message_timestamp_ms(u->m));
    } else if (strcmp(k, "headers") == 0) {
        size_t n = ituna_message_header_count(u->m);
        lua_createtable(L, 0, (int)n);
        for (size_t i = 0; i < n; i++) {
            const char *hk;
            const void *hv;
            size_t hl;
            if (ituna_message_header(u->m, i, &hk, &hv, &hl) && hk) {
                hv ? lua_pushlstring(L, hv, hl) : lua_pushboolean(L, 0); /* null value: false */
                lua_setfield(L, -2, hk);
            }
        }
    } else {
        lua_pushnil(L);
    }
    return 1;
}

/* __gc: a message never finished is handled as an error (redelivered).  [-0, +0, -] */
static int message_gc(lua_State *L) {
    ilua_message *u = luaL_checkudata(L, 1, ILUA_MESSAGE);
    if (u->m) {
        char err[ILUA_ERRSTR];
        finish_message(L, 1, ITUNA_HANDLED_ERROR, "message collected without being finished", err,
                       sizeof err);
    }
    return 0;
}

/* ---- consumer ----------------------------------------------------------------------- */

static const char *const consumer_reserved[] = {
    "bootstrap", "group", "topics", "context", "dlq_suffix", NULL
};

/* ituna.consumer{topics={...}, group=..., bootstrap=..., context="parent"|"link",
 * dlq_suffix=..., [librdkafka property]=value...} -> consumer.  [-0, +1, e] */
static int l_consumer(lua_State *L) {
    ituna_tracer *t = ilua_current_tracer(L, "ituna.consumer");
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    ituna_consumer_options o;
    memset(&o, 0, sizeof o);
    o.bootstrap = opt_string(L, 1, "bootstrap", "ituna.consumer");
    o.group = opt_string(L, 1, "group", "ituna.consumer");
    o.dlq_suffix = opt_string(L, 1, "dlq_suffix", "ituna.consumer");
    if (!o.group) return luaL_error(L, "ituna.consumer: option 'group' (the consumer group id) is required");
    const char *ctx = opt_string(L, 1, "context", "ituna.consumer");
    if (ctx && strcmp(ctx, "parent") == 0)
        o.context_mode = ITUNA_CONTEXT_PARENT;
    else if (ctx && strcmp(ctx, "link") == 0)
        o.context_mode = ITUNA_CONTEXT_LINK;
    else if (ctx)
        return luaL_error(L, "ituna.consumer: option 'context' must be \"parent\" or \"link\", got \"%s\"",
                          ctx);
    lua_getfield(L, 1, "topics");
    int tt = lua_gettop(L);
    if (lua_type(L, tt) == LUA_TSTRING) { /* one topic */
        lua_createtable(L, 1, 0);
        lua_pushvalue(L, tt);
        lua_rawseti(L, -2, 1);
        lua_replace(L, tt);
    }
    if (lua_type(L, tt) != LUA_TTABLE || lua_rawlen(L, tt) == 0)
        return luaL_error(L, "ituna.consumer: option 'topics' must be a non-empty list of topic names");
    size_t nt = lua_rawlen(L, tt);
    const char **topics = lua_newuserdatauv(L, (nt + 1) * sizeof(char *), 0);
    for (size_t i = 0; i < nt; i++) {
        if (lua_rawgeti(L, tt, (lua_Integer)i + 1) != LUA_TSTRING)
            return luaL_error(L, "ituna.consumer: topics[%d] must be a string, got %s", (int)i + 1,
                              luaL_typename(L, -1));
        topics[i] = lua_tostring(L, -1); /* anchored in the topics table */
        lua_pop(L, 1);
    }
    topics[nt] = NULL;
    o.topics = topics;
    o.properties = collect_properties(L, 1, consumer_reserved, "ituna.consumer");

    ilua_consumer *c = lua_newuserdatauv(L, sizeof(*c), 0);
    c->c = NULL;
    c->slot = -1;
    c->stopping = 0;
    c->busy = 0;
    c->held = NULL;
    luaL_setmetatable(L, ILUA_CONSUMER);
    char err[ILUA_ERRSTR] = "";
    ituna_err rc = ituna_consumer_create(t, ituna_tracer_config(t), &o, &c->c, err, sizeof err);
    if (rc != ITUNA_OK) return ilua_raise(L, rc, err);
    c->slot = ilua_register_consumer(c->c);
    return 1;
}

/* [-0, +0, v] */
static ilua_consumer *check_consumer(lua_State *L, int idx) {
    ilua_consumer *c = luaL_checkudata(L, idx, ILUA_CONSUMER);
    if (!c->c) luaL_error(L, "consumer is closed");
    return c;
}

/* Should loops end? (host stop request, consumer:stop(), closed) */
static int should_stop(const ilua_consumer *c) {
    return !c->c || c->stopping || ituna_lua_stop_requested();
}

#define POLL_SLICE_MS 200

/* Poll until a message arrives, a stop is requested or idle_ms passes (<0:
 * forever). Returns the message or NULL; raises on a fatal consumer error.
 * [-0, +0, e] */
static ituna_message *poll_message(lua_State *L, ilua_consumer *c, int idle_ms) {
    if (c->held && c->c) { /* kept by wait_assigned(): handed out before polling again */
        ituna_message *m = c->held;
        c->held = NULL;
        return m;
    }
    uint64_t deadline = idle_ms >= 0 ? ituna_now_ns() + (uint64_t)idle_ms * 1000000u : 0;
    for (;;) {
        if (should_stop(c)) return NULL;
        int slice = POLL_SLICE_MS;
        if (idle_ms >= 0) {
            uint64_t now = ituna_now_ns();
            if (now >= deadline) return NULL;
            uint64_t left = (deadline - now) / 1000000u;
            if (left < (uint64_t)slice) slice = (int)left;
        }
        ituna_message *m = NULL;
        char err[ILUA_ERRSTR] = "";
        ituna_err rc = ituna_consumer_poll(c->c, slice, &m, err, sizeof err);
        if (rc != ITUNA_OK) {
            ilua_raise(L, rc, err);
            return NULL;
        }
        if (m) return m;
    }
}

/* consumer:poll([timeout_s]) -> message or nil. The message's span is current
 * until msg:done(result) (or its collection, which counts as an error).
 * [-0, +1, e] */
static int consumer_poll(lua_State *L) {
    ilua_consumer *c = check_consumer(L, 1);
    int ms = ilua_timeout_ms(L, 2, 1000);
    if (c->busy)
        return luaL_error(L, "consumer:poll: the previous message is not finished (call msg:done())");
    ituna_message *m = poll_message(L, c, ms < 0 ? 0 : ms);
    if (!m) {
        lua_pushnil(L);
        return 1;
    }
    push_message(L, 1, c, m);
    return 1;
}

/* The messages() loop state: uservalue 1 the consumer, 2 the message in hand. */
typedef struct ilua_loop {
    ilua_consumer *c;
    lua_Integer max, count; /* max 0: no limit */
    int idle_ms;            /* end after this long without a message; <0: never */
} ilua_loop;

/* Loop options {max=n, idle=seconds} at idx.  [-0, +0, v] */
static void loop_options(lua_State *L, int idx, lua_Integer *max, int *idle_ms) {
    *max = 0;
    *idle_ms = -1;
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    if (lua_getfield(L, idx, "max") != LUA_TNIL) {
        int isnum;
        *max = lua_tointegerx(L, -1, &isnum);
        if (!isnum || *max < 0) luaL_error(L, "bad option 'max' (a non-negative integer expected)");
    }
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "idle") != LUA_TNIL) {
        int isnum;
        lua_Number s = lua_tonumberx(L, -1, &isnum);
        if (!isnum || s < 0 || s > 86400)
            luaL_error(L, "bad option 'idle' (seconds from 0 to 86400 expected)");
        *idle_ms = (int)(s * 1000 + 0.5);
    }
    lua_pop(L, 1);
}

/* Finish the loop's message in hand with result.  [-0, +0, e when raise] */
static ituna_err loop_finish(lua_State *L, int lidx, ituna_handler_result res, const char *reason,
                             int raise) {
    if (lua_getiuservalue(L, lidx, 2) != LUA_TUSERDATA) {
        lua_pop(L, 1);
        return ITUNA_OK;
    }
    char err[ILUA_ERRSTR] = "";
    ituna_err rc = finish_message(L, lua_gettop(L), res, reason, err, sizeof err);
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_setiuservalue(L, lidx, 2);
    if (rc != ITUNA_OK) {
        if (raise) ilua_raise(L, rc, err);
        ituna_log(ITUNA_LOG_WARN, "lua consumer: finishing a message failed: %s", err);
    }
    return rc;
}

/* The generic-for iterator: commits the previous message (it was handled: the
 * body came back for the next one), then waits for the next.
 * [-2, +1, e] */
static int loop_next(lua_State *L) {
    ilua_loop *lp = luaL_checkudata(L, 1, ILUA_LOOP);
    loop_finish(L, 1, ITUNA_HANDLED_OK, NULL, 1);
    lua_getiuservalue(L, 1, 1);
    int cidx = lua_gettop(L);
    ilua_consumer *c = lp->c;
    if (!c->c) return luaL_error(L, "consumer is closed");
    if (lp->max > 0 && lp->count >= lp->max) {
        lua_pushnil(L);
        return 1;
    }
    ituna_message *m = poll_message(L, c, lp->idle_ms);
    if (!m) {
        lua_pushnil(L);
        return 1;
    }
    lp->count++;
    push_message(L, cidx, c, m);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 2);
    return 1;
}

/* __close of the loop (the for's closing value): the body left the loop. A normal
 * exit (break, return, goto) commits the message in hand; an error leaves it
 * uncommitted (ERROR: redelivered), or sends it to the DLQ for ituna.malformed.
 * [-0, +0, -] */
static int loop_close(lua_State *L) {
    luaL_checkudata(L, 1, ILUA_LOOP);
    if (lua_isnoneornil(L, 2)) {
        loop_finish(L, 1, ITUNA_HANDLED_OK, NULL, 0);
    } else if (ilua_is_malformed(L, 2)) {
        loop_finish(L, 1, ITUNA_HANDLED_MALFORMED, lua_tostring(L, -1), 0);
    } else {
        const char *msg = luaL_tolstring(L, 2, NULL);
        if (lua_getiuservalue(L, 1, 2) == LUA_TUSERDATA) {
            ilua_message *u = lua_touserdata(L, -1);
            if (u->m) ituna_span_record_exception(ituna_message_span(u->m), "lua error", msg, NULL);
        }
        lua_pop(L, 1);
        loop_finish(L, 1, ITUNA_HANDLED_ERROR, msg, 0);
    }
    return 0;
}

/* consumer:messages([opts {max=, idle=}]) -> iterator, state, nil, closer:
 * `for msg in consumer:messages() do ... end`. The message's CONSUMER span is
 * current during the body; it is committed when the next iteration starts or
 * the loop is left normally; an error in the body leaves it uncommitted
 * (redelivered) and propagates; ituna.malformed(reason) sends it to the DLQ
 * first. The loop ends (normally) on a stop request, consumer:stop(), after max
 * messages or idle seconds without one.
 * [-0, +4, v] */
static int consumer_messages(lua_State *L) {
    ilua_consumer *c = check_consumer(L, 1);
    if (c->busy) return luaL_error(L, "consumer:messages: a message is still being handled");
    lua_Integer max;
    int idle;
    loop_options(L, 2, &max, &idle);
    c->stopping = 0;
    lua_pushcfunction(L, loop_next);
    ilua_loop *lp = lua_newuserdatauv(L, sizeof(*lp), 2);
    lp->c = c;
    lp->max = max;
    lp->count = 0;
    lp->idle_ms = idle;
    luaL_setmetatable(L, ILUA_LOOP);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    lua_pushnil(L);
    lua_pushvalue(L, -2); /* the state is also the closing value */
    return 4;
}

/* consumer:each(fn[, opts {max=, idle=}]) -> number of messages handled. Calls
 * fn(msg) with the message's span current: success commits, an error is logged
 * and the message is redelivered, ituna.malformed goes to the DLQ; the loop goes
 * on until a stop request, consumer:stop(), max or idle.
 * [-0, +1, e] */
static int consumer_each(lua_State *L) {
    ilua_consumer *c = check_consumer(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (c->busy) return luaL_error(L, "consumer:each: a message is still being handled");
    lua_Integer max, handled = 0;
    int idle;
    loop_options(L, 3, &max, &idle);
    lua_settop(L, 3);
    c->stopping = 0;
    while (!(max > 0 && handled >= max)) {
        ituna_message *m = poll_message(L, c, idle);
        if (!m) break;
        push_message(L, 1, c, m);
        int midx = lua_gettop(L);
        lua_pushcfunction(L, ilua_msgh);
        lua_pushvalue(L, 2);
        lua_pushvalue(L, midx);
        int rc = lua_pcall(L, 1, 0, midx + 1);
        char err[ILUA_ERRSTR] = "";
        ituna_err frc;
        if (rc == LUA_OK) {
            frc = finish_message(L, midx, ITUNA_HANDLED_OK, NULL, err, sizeof err);
        } else if (ilua_is_malformed(L, -1)) {
            frc = finish_message(L, midx, ITUNA_HANDLED_MALFORMED, lua_tostring(L, -1), err, sizeof err);
            lua_pop(L, 1);
        } else {
            const char *msg = luaL_tolstring(L, -1, NULL);
            ilua_message *u = lua_touserdata(L, midx);
            lua_getfield(L, LUA_REGISTRYINDEX, ILUA_REG_TRACEBACK);
            ituna_span_record_exception(ituna_message_span(u->m), "lua error", msg, lua_tostring(L, -1));
            ituna_log(ITUNA_LOG_WARN, "lua consumer: handler failed on %s [%d] @%lld (redelivered): %s",
                      ituna_message_topic(u->m), (int)ituna_message_partition(u->m),
                      (long long)ituna_message_offset(u->m), msg);
            frc = finish_message(L, midx, ITUNA_HANDLED_ERROR, msg, err, sizeof err);
            lua_pop(L, 2);
        }
        if (frc != ITUNA_OK) ituna_log(ITUNA_LOG_WARN, "lua consumer: finishing a message failed: %s", err);
        lua_settop(L, 3);
        handled++;
    }
    lua_pushinteger(L, handled);
    return 1;
}

/* consumer:assignment_count() -> partitions currently assigned to this member
 * (0 before the first rebalance, or once closed).  [-0, +1, -] */
static int consumer_assignment_count(lua_State *L) {
    ilua_consumer *c = luaL_checkudata(L, 1, ILUA_CONSUMER);
    lua_pushinteger(L, c->c ? ituna_consumer_assignment_count(c->c) : 0);
    return 1;
}

/* consumer:wait_assigned(seconds) -> boolean: poll until the group assigned
 * partitions to this member (true), or seconds passed / a stop request (false).
 * A message that arrives meanwhile is kept (one at most: a message means an
 * assignment, so polling ends there) and is the next one poll()/messages()/
 * each() hands out.  [-0, +1, e] */
static int consumer_wait_assigned(lua_State *L) {
    ilua_consumer *c = check_consumer(L, 1);
    lua_Number s = luaL_checknumber(L, 2);
    luaL_argcheck(L, s >= 0 && s <= 86400.0, 2, "seconds from 0 to 86400 expected");
    uint64_t deadline = ituna_now_ns() + (uint64_t)(s * 1e9);
    for (;;) {
        if (ituna_consumer_assignment_count(c->c) > 0) {
            lua_pushboolean(L, 1);
            return 1;
        }
        /* no second buffer: a held message must be handed out first */
        uint64_t now = ituna_now_ns();
        if (c->held || should_stop(c) || now >= deadline) break;
        uint64_t left = (deadline - now) / 1000000u;
        int slice = left < POLL_SLICE_MS ? (int)left : POLL_SLICE_MS;
        ituna_message *m = NULL;
        char err[ILUA_ERRSTR] = "";
        ituna_err rc = ituna_consumer_poll(c->c, slice, &m, err, sizeof err);
        if (rc != ITUNA_OK) return ilua_raise(L, rc, err);
        c->held = m;
    }
    lua_pushboolean(L, 0);
    return 1;
}

/* A message polled by wait_assigned() and never handed out is not committed: it
 * is redelivered.  [-0, +0, -] */
static void drop_held(ilua_consumer *c) {
    if (!c->held || !c->c) return;
    ituna_message *m = c->held;
    c->held = NULL;
    char err[ILUA_ERRSTR] = "";
    ituna_message_done(m, ITUNA_HANDLED_ERROR, "consumer closed before the message was handed out", err,
                       sizeof err);
}

/* consumer:stop(): end the running loop at its next iteration.  [-0, +0, -] */
static int consumer_stop(lua_State *L) {
    ilua_consumer *c = luaL_checkudata(L, 1, ILUA_CONSUMER);
    c->stopping = 1;
    if (c->c) ituna_consumer_wakeup(c->c);
    return 0;
}

/* consumer:commit() [-0, +0, e] */
static int consumer_commit(lua_State *L) {
    ilua_consumer *c = check_consumer(L, 1);
    char err[ILUA_ERRSTR] = "";
    ituna_err rc = ituna_consumer_commit(c->c, err, sizeof err);
    if (rc != ITUNA_OK) return ilua_raise(L, rc, err);
    return 0;
}

/* consumer:close(): commit, leave the group, free. Idempotent. Raises if a
 * message is still in hand.  [-0, +0, e] */
static int consumer_close(lua_State *L) {
    ilua_consumer *c = luaL_checkudata(L, 1, ILUA_CONSUMER);
    if (!c->c) return 0;
    if (c->busy) return luaL_error(L, "consumer:close: a message is still being handled (finish it first)");
    drop_held(c);
    ilua_unregister_consumer(c->slot);
    c->slot = -1;
    ituna_consumer *cc = c->c;
    c->c = NULL;
    ituna_err rc = ituna_consumer_close(cc);
    ituna_consumer_destroy(cc);
    if (rc != ITUNA_OK) return ilua_raise(L, rc, "consumer close failed");
    return 0;
}

/* __gc/__close: close without raising. Messages of this consumer were created
 * later, so Lua finalises them first.  [-0, +0, -] */
static int consumer_gc(lua_State *L) {
    ilua_consumer *c = luaL_checkudata(L, 1, ILUA_CONSUMER);
    if (!c->c) return 0;
    drop_held(c);
    ilua_unregister_consumer(c->slot);
    c->slot = -1;
    ituna_consumer *cc = c->c;
    c->c = NULL;
    ituna_consumer_close(cc);
    ituna_consumer_destroy(cc);
    return 0;
}

/* ---- embedded broker ------------------------------------------------------------------ */

typedef struct ilua_broker {
    ituna_mock_cluster *m;
} ilua_broker;

/* ituna.start_embedded_broker{brokers=1, partitions=4} -> broker with .bootstrap
 * and :stop(). librdkafka's built-in test cluster, in this process.
 * [-0, +1, e] */
static int l_start_embedded_broker(lua_State *L) {
    lua_Integer brokers = 1, partitions = 4;
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        if (lua_getfield(L, 1, "brokers") != LUA_TNIL) brokers = luaL_checkinteger(L, -1);
        if (lua_getfield(L, 1, "partitions") != LUA_TNIL) partitions = luaL_checkinteger(L, -1);
        lua_pop(L, 2);
    }
    luaL_argcheck(L, brokers >= 1 && brokers <= 16, 1, "brokers must be 1..16");
    luaL_argcheck(L, partitions >= 1 && partitions <= 1024, 1, "partitions must be 1..1024");
    ilua_broker *b = lua_newuserdatauv(L, sizeof(*b), 0);
    b->m = NULL;
    luaL_setmetatable(L, ILUA_BROKER);
    char err[ILUA_ERRSTR] = "";
    ituna_err rc = ituna_mock_cluster_start((int)brokers, (int)partitions, &b->m, err, sizeof err);
    if (rc != ITUNA_OK) return ilua_raise(L, rc, err);
    return 1;
}

/* broker:stop() / __gc / __close. Idempotent.  [-0, +0, -] */
static int broker_stop(lua_State *L) {
    ilua_broker *b = luaL_checkudata(L, 1, ILUA_BROKER);
    ituna_mock_cluster_stop(b->m);
    b->m = NULL;
    return 0;
}

/* __index: .bootstrap, then methods.  [-0, +1, v] */
static int broker_index(lua_State *L) {
    ilua_broker *b = luaL_checkudata(L, 1, ILUA_BROKER);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "bootstrap") == 0) {
        if (!b->m) return luaL_error(L, "embedded broker is stopped");
        lua_pushstring(L, ituna_mock_cluster_bootstrap(b->m));
        return 1;
    }
    if (strcmp(k, "stop") == 0) {
        lua_pushcfunction(L, broker_stop);
        return 1;
    }
    lua_pushnil(L);
    return 1;
}

/* ---- registration ---------------------------------------------------------------------- */

static const luaL_Reg kafka_functions[] = {
    { "producer", l_producer },
    { "consumer", l_consumer },
    { "start_embedded_broker", l_start_embedded_broker },
    { NULL, NULL },
};

static const luaL_Reg producer_methods[] = {
    { "publish", producer_publish }, { "flush", producer_flush },         { "poll", producer_poll },
    { "close", producer_close },     { "in_flight", producer_in_flight }, { NULL, NULL },
};
static const luaL_Reg producer_metamethods[] = {
    { "__gc", producer_gc },
    { "__close", producer_gc },
    { NULL, NULL },
};

static const luaL_Reg consumer_methods[] = {
    { "messages", consumer_messages },
    { "each", consumer_each },
    { "poll", consumer_poll },
    { "stop", consumer_stop },
    { "wait_assigned", consumer_wait_assigned },
    { "assignment_count", consumer_assignment_count },
    { "commit", consumer_commit },
    { "close", consumer_close },
    { NULL, NULL },
};
static const luaL_Reg consumer_metamethods[] = {
    { "__gc", consumer_gc },
    { "__close", consumer_gc },
    { NULL, NULL },
};

static const luaL_Reg message_metamethods[] = {
    { "__index", message_index },
    { "__gc", message_gc },
    { NULL, NULL },
};

static const luaL_Reg loop_metamethods[] = {
    { "__close", loop_close },
    { NULL, NULL },
};

static const luaL_Reg broker_metamethods[] = {
    { "__index", broker_index },
    { "__gc", broker_stop },
    { "__close", broker_stop },
    { NULL, NULL },
};

/* [-0, +0, m] */
static void new_class(lua_State *L, const char *tname, const luaL_Reg *mm, const luaL_Reg *methods,
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

void ilua_open_kafka(lua_State *L) {
    new_class(L, ILUA_PRODUCER, producer_metamethods, producer_methods, "__index");
    new_class(L, ILUA_CONSUMER, consumer_metamethods, consumer_methods, "__index");
    new_class(L, ILUA_MESSAGE, message_metamethods, message_methods, "methods");
    new_class(L, ILUA_LOOP, loop_metamethods, NULL, NULL);
    new_class(L, ILUA_BROKER, broker_metamethods, NULL, NULL);
    luaL_setfuncs(L, kafka_functions, 0);
}
