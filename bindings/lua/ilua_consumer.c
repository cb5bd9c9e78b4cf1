/* ilua_consumer.c - ituna.consumer: the messages() loop with its to-be-closed
 * finisher, each(fn), poll, wait_assigned, stop, and the message userdata. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_internal.h"

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
    o.bootstrap = ilua_opt_string(L, 1, "bootstrap", "ituna.consumer");
    o.group = ilua_opt_string(L, 1, "group", "ituna.consumer");
    o.dlq_suffix = ilua_opt_string(L, 1, "dlq_suffix", "ituna.consumer");
    if (!o.group) return luaL_error(L, "ituna.consumer: option 'group' (the consumer group id) is required");
    const char *ctx = ilua_opt_string(L, 1, "context", "ituna.consumer");
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
    o.properties = ilua_string_pairs(L, 1, consumer_reserved, "ituna.consumer");

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

void ilua_open_consumer(lua_State *L) {
    ilua_new_class(L, ILUA_CONSUMER, consumer_metamethods, consumer_methods, "__index");
    ilua_new_class(L, ILUA_MESSAGE, message_metamethods, message_methods, "methods");
    ilua_new_class(L, ILUA_LOOP, loop_metamethods, NULL, NULL);
    lua_pushcfunction(L, l_consumer);
    lua_setfield(L, -2, "consumer");
}
