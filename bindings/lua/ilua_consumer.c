/* ilua_consumer.c - ituna.consumer and its messages as Lua values: the
 * messages() iterator with its to-be-closed finisher, each(fn), poll + msg:done,
 * wait_assigned, stop, close. The loop's policy is the core's (ituna_consumer_poll,
 * ituna_consumer_run_once, ituna_message_done): the message a host leaves open,
 * waiting for the assignment, stop, redelivery with a bound, the DLQ. The binding
 * only says how a Lua body ended: normally (OK), by ituna.malformed (MALFORMED)
 * or by another error (ERROR, recorded on the span with its traceback). */
#include <stdio.h>
#include <string.h>

#include "lua_internal.h"

/* uservalue 1: the message userdata in hand (the last one handed out), or nil. */
typedef struct ilua_consumer {
    ituna_consumer *c; /* NULL once closed */
} ilua_consumer;

/* uservalue 1: the consumer; 2: its span userdata (msg:span()). */
typedef struct ilua_message {
    ituna_message *m; /* NULL once released to the core */
    int token;        /* ituna_message_attach() token while current, else -1 */
} ilua_message;

/* [-0, +0, v] */
static ilua_consumer *check_consumer(lua_State *L, int idx) {
    ilua_consumer *c = luaL_checkudata(L, idx, ILUA_CONSUMER);
    if (!c->c) luaL_error(L, "consumer is closed");
    return c;
}

/* Hand the message at idx back to the core: detach it, end its span userdata for
 * Lua, ituna_message_done(res) (which only frees it if the core finished it
 * already). Returns the core's result; err filled on failure.  [-0, +0, -] */
static ituna_err release(lua_State *L, int idx, ituna_handler_result res, const char *reason, char *err,
                         size_t err_size) {
    ilua_message *u = lua_touserdata(L, idx);
    if (!u || !u->m) return ITUNA_OK;
    if (u->token >= 0) ituna_message_detach(u->token);
    u->token = -1;
    if (lua_getiuservalue(L, idx, 2) == LUA_TUSERDATA) ilua_span_invalidate(lua_touserdata(L, -1));
    lua_pop(L, 1);
    ituna_message *m = u->m;
    u->m = NULL;
    return ituna_message_done(m, res, reason, err, err_size);
}

/* Detach the consumer's message in hand before the core polls (the poll finishes
 * it if Lua did not), or, with release_it, release it once the core has.
 * [-0, +0, -] */
static void in_hand(lua_State *L, int cidx, int release_it) {
    if (lua_getiuservalue(L, cidx, 1) == LUA_TUSERDATA) {
        ilua_message *u = lua_touserdata(L, -1);
        if (u->token >= 0) ituna_message_detach(u->token);
        u->token = -1;
        char err[ILUA_ERRSTR];
        if (release_it) release(L, lua_gettop(L), ITUNA_HANDLED_ERROR, NULL, err, sizeof err);
    }
    lua_pop(L, 1);
    if (release_it) {
        lua_pushnil(L);
        lua_setiuservalue(L, cidx, 1);
    }
}

/* Push a message userdata for m, the consumer's message in hand; attach makes it
 * the thread's message (its span current) until it is released.
 * [-0, +1, m] */
static ilua_message *push_message(lua_State *L, int cidx, ituna_message *m, int attach) {
    ilua_message *u = lua_newuserdatauv(L, sizeof(*u), 2);
    u->m = NULL;
    u->token = -1;
    luaL_setmetatable(L, ILUA_MESSAGE);
    lua_pushvalue(L, cidx);
    lua_setiuservalue(L, -2, 1);
    u->m = m;
    if (attach && ituna_message_attach(m, &u->token) != ITUNA_OK) u->token = -1;
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, cidx, 1);
    return u;
}

/* Poll the core: up to idle_ms (<0: until a message or a stop). The message the
 * previous poll handed out is the core's to finish if Lua did not. Returns the
 * message or NULL; raises on a fatal consumer error.  [-0, +0, e] */
static ituna_message *next_message(lua_State *L, int cidx, ilua_consumer *c, int idle_ms) {
    in_hand(L, cidx, 0);
    ituna_message *m = NULL;
    char err[ILUA_ERRSTR] = "";
    ituna_err rc;
    do rc = ituna_consumer_poll(c->c, idle_ms < 0 ? 1000 : idle_ms, &m, err, sizeof err);
    while (rc == ITUNA_OK && !m && idle_ms < 0 && !ituna_consumer_stopped(c->c));
    in_hand(L, cidx, 1);
    if (rc != ITUNA_OK) ilua_raise(L, rc, err);
    return m;
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
    ituna_err rc = release(L, 1, (ituna_handler_result)res, luaL_optstring(L, 3, NULL), err, sizeof err);
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

/* msg:baggage() -> table of the W3C baggage the producer sent ({} when none, or
 * baggage not in OTEL_PROPAGATORS). [-0, +1, m] */
static int message_baggage(lua_State *L) {
    ilua_message *u = check_live_message(L, 1);
    ituna_baggage *bag = ituna_baggage_new();
    if (!bag) return luaL_error(L, "out of memory");
    ituna_message_baggage(u->m, bag);
    ilua_push_baggage(L, bag);
    ituna_baggage_destroy(bag);
    return 1;
}

static const luaL_Reg message_methods[] = {
    { "json", message_json },       { "done", message_done },       { "span", message_span },
    { "context", message_context }, { "baggage", message_baggage }, { NULL, NULL },
};

/* __index: methods, then the fields value, key, topic, partition, offset,
 * timestamp (ms), attempt (1, or n for the n-th delivery of a redelivered message),
 * headers (table; last value of a repeated key wins).
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
    } else if (strcmp(k, "attempt") == 0) {
        lua_pushinteger(L, ituna_message_attempt(u->m));
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

/* __gc: a message never finished is handed to the core as an error (redelivered).
 * [-0, +0, -] */
static int message_gc(lua_State *L) {
    char err[ILUA_ERRSTR];
    release(L, 1, ITUNA_HANDLED_ERROR, "message collected without being finished", err, sizeof err);
    return 0;
}

/* C.consumer(tracer, bootstrap, group, dlq_suffix, context, topics, properties) ->
 * consumer, or nil and the core's message: ituna.consumer's table and the module's
 * current tracer, checked by ituna_glue.lua.  [-0, +(1|2), v] */
static int glue_consumer(lua_State *L) {
    ituna_tracer *t = ((ilua_tracer *)lua_touserdata(L, 1))->t;
    ituna_consumer_options o;
    memset(&o, 0, sizeof o);
    o.bootstrap = lua_tostring(L, 2);
    o.group = lua_tostring(L, 3);
    o.dlq_suffix = lua_tostring(L, 4);
    if (lua_isstring(L, 5)) ituna_context_mode_from_name(lua_tostring(L, 5), &o.context_mode);
    o.topics = ilua_string_list(L, 6);
    o.properties = ilua_string_list(L, 7);

    ilua_consumer *c = lua_newuserdatauv(L, sizeof(*c), 1);
    c->c = NULL;
    luaL_setmetatable(L, ILUA_CONSUMER);
    char err[ILUA_ERRSTR] = "";
    ituna_err rc = ituna_consumer_create(t, ituna_tracer_config(t), &o, &c->c, err, sizeof err);
    if (rc != ITUNA_OK) return ilua_fail(L, rc, err);
    return 1;
}

/* C.context_mode(name) -> whether the core knows the consumer context mode name.
 * [-0, +1, v] */
static int glue_context_mode(lua_State *L) {
    ituna_consumer_context_mode mode;
    lua_pushboolean(L, ituna_context_mode_from_name(luaL_checkstring(L, 1), &mode) == ITUNA_OK);
    return 1;
}

/* consumer:poll([timeout_s]) -> message or nil: waits up to timeout_s (default 1;
 * < 0: until a message or a stop, as Python's poll(None)). The message's span is current
 * until msg:done(result); one left unfinished is finished by the core at the next
 * poll or close (as an error: redelivered).  [-0, +1, e] */
static int consumer_poll(lua_State *L) {
    ilua_consumer *c = check_consumer(L, 1);
    int ms = ilua_timeout_ms(L, 2, 1000);
    ituna_message *m = next_message(L, 1, c, ms);
    if (!m) {
        lua_pushnil(L);
        return 1;
    }
    push_message(L, 1, m, 1);
    return 1;
}

/* A loop (messages() or each()) starts: a stop asked of an earlier loop is over
 * (one asked of the process is not: ituna_consumer_stop_all).  [-0, +0, -] */
static void loop_start(ilua_consumer *c) {
    ituna_consumer_resume(c->c);
}

/* The messages() loop state: uservalue 1 the consumer. */
typedef struct ilua_loop {
    lua_Integer max, count; /* max 0: no limit */
    int idle_ms;            /* end after this long without a message; <0: never */
} ilua_loop;

/* Loop options {max=n, idle=seconds} at idx, read by ituna_glue.lua's
 * loop_options: max (0: no limit), idle in ms (< 0: never).  [-0, +0, e] */
static void loop_options(lua_State *L, int idx, lua_Integer *max, int *idle_ms) {
    lua_getfield(L, LUA_REGISTRYINDEX, ILUA_REG_GLUE);
    lua_getfield(L, -1, "loop_options");
    lua_pushvalue(L, idx);
    lua_pushinteger(L, idx);
    lua_call(L, 2, 2);
    *max = lua_tointeger(L, -2);
    *idle_ms = (int)lua_tointeger(L, -1);
    lua_pop(L, 3);
}

/* How a messages() body left the message at midx (status LUA_OK: normally; else
 * the error at eidx, ituna.malformed or another, recorded on the span), as the
 * core's verdict; the message is released.  [-0, +0, m] */
static ituna_err finish_body(lua_State *L, int midx, int status, int eidx, char *err, size_t err_size) {
    ilua_message *u = lua_touserdata(L, midx);
    if (!u || !u->m) return ITUNA_OK;
    if (status == LUA_OK) return release(L, midx, ITUNA_HANDLED_OK, NULL, err, err_size);
    int malformed = ilua_is_malformed(L, eidx); /* pushes the reason when it is */
    const char *msg = malformed ? lua_tostring(L, -1) : luaL_tolstring(L, eidx, NULL);
    ituna_handler_result res = ituna_message_failed(u->m, malformed, "lua error", msg, NULL);
    ituna_err rc = release(L, midx, res, msg, err, err_size);
    lua_pop(L, 1);
    return rc;
}

/* The generic-for iterator: the message in hand is handled (the body came back for
 * the next one), then the next is polled.  [-2, +1, e] */
static int loop_next(lua_State *L) {
    ilua_loop *lp = luaL_checkudata(L, 1, ILUA_LOOP);
    lua_getiuservalue(L, 1, 1);
    int cidx = lua_gettop(L);
    ilua_consumer *c = check_consumer(L, cidx);
    lua_getiuservalue(L, cidx, 1);
    char err[ILUA_ERRSTR] = "";
    ituna_err rc = finish_body(L, cidx + 1, LUA_OK, 0, err, sizeof err);
    if (rc != ITUNA_OK) return ilua_raise(L, rc, err);
    ituna_message *m = NULL;
    if (!(lp->max > 0 && lp->count >= lp->max)) m = next_message(L, cidx, c, lp->idle_ms);
    if (!m) {
        lua_pushnil(L);
        return 1;
    }
    lp->count++;
    push_message(L, cidx, m, 1);
    return 1;
}

/* __close of the loop (the for's closing value): the body left the loop, normally
 * (break, return, goto) or by the error err.  [-0, +0, -] */
static int loop_close(lua_State *L) {
    luaL_checkudata(L, 1, ILUA_LOOP);
    lua_getiuservalue(L, 1, 1);
    ilua_consumer *c = lua_touserdata(L, -1);
    if (!c || !c->c) return 0;
    lua_getiuservalue(L, -1, 1);
    char err[ILUA_ERRSTR] = "";
    if (finish_body(L, lua_gettop(L), lua_isnoneornil(L, 2) ? LUA_OK : LUA_ERRRUN, 2, err, sizeof err))
        ituna_log(ITUNA_LOG_WARN, "lua consumer: finishing a message failed: %s", err);
    return 0;
}

/* consumer:messages([opts {max=, idle=}]) -> iterator, state, nil, closer:
 * `for msg in consumer:messages() do ... end`. The message's CONSUMER span is
 * current during the body; it is handled when the next iteration starts or the
 * loop is left normally; an error in the body makes it an error (redelivered)
 * and propagates; ituna.malformed(reason) sends it to the DLQ. The loop ends
 * (normally) on a stop request, consumer:stop(), after max messages or idle
 * seconds without one.  [-0, +4, v] */
static int consumer_messages(lua_State *L) {
    ilua_consumer *c = check_consumer(L, 1);
    lua_Integer max;
    int idle;
    loop_options(L, 2, &max, &idle);
    loop_start(c);
    lua_pushcfunction(L, loop_next);
    ilua_loop *lp = lua_newuserdatauv(L, sizeof(*lp), 1);
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

/* fn(msg) for each(): [fn, message pointer, consumer] -> pushes the message
 * userdata (the one in hand: run_once made it current) and calls fn.  [-3, +0, e] */
static int each_call(lua_State *L) {
    lua_pushvalue(L, 1);
    push_message(L, 3, lua_touserdata(L, 2), 0);
    lua_call(L, 1, 0);
    return 0;
}

/* The core's handler for each(): runs fn in a protected call (nothing raises
 * through the core) and turns how it ended into the core's verdict.  */
static ituna_handler_result each_handler(ituna_message *m, void *opaque, char *reason, size_t reason_size) {
    lua_State *L = opaque; /* consumer at 1, fn at 2 */
    int top = lua_gettop(L);
    lua_pushcfunction(L, ilua_msgh);
    lua_pushcfunction(L, each_call);
    lua_pushvalue(L, 2);
    lua_pushlightuserdata(L, m);
    lua_pushvalue(L, 1);
    int status = lua_pcall(L, 3, 0, top + 1);
    ituna_handler_result res = ITUNA_HANDLED_OK;
    if (status != LUA_OK) {
        int eidx = lua_gettop(L);
        lua_getfield(L, LUA_REGISTRYINDEX, ILUA_REG_TRACEBACK);
        int malformed = ilua_is_malformed(L, eidx); /* pushes the reason when it is */
        if (!malformed) luaL_tolstring(L, eidx, NULL);
        res = ituna_message_failed(m, malformed, "lua error", lua_tostring(L, -1), lua_tostring(L, -2));
        snprintf(reason, reason_size, "%s", lua_tostring(L, -1));
    }
    /* the core finishes m now: the Lua value no longer reaches it */
    lua_getiuservalue(L, 1, 1);
    ilua_message *u = lua_touserdata(L, -1);
    if (u && u->m == m) {
        if (lua_getiuservalue(L, -1, 2) == LUA_TUSERDATA) ilua_span_invalidate(lua_touserdata(L, -1));
        u->m = NULL;
    }
    lua_settop(L, top);
    return res;
}

/* consumer:each(fn[, opts {max=, idle=}]) -> number of messages handled. Calls
 * fn(msg) with the message's span current: success commits, an error is recorded
 * and the message is redelivered, ituna.malformed goes to the DLQ; the loop goes
 * on until a stop request, consumer:stop(), max or idle.
 * [-0, +1, e] */
static int consumer_each(lua_State *L) {
    ilua_consumer *c = check_consumer(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_Integer max, handled = 0;
    int idle;
    loop_options(L, 3, &max, &idle);
    lua_settop(L, 2);
    luaL_checkstack(L, 12, "consumer:each");
    loop_start(c);
    in_hand(L, 1, 0);
    ituna_err rc = ITUNA_OK;
    char err[ILUA_ERRSTR] = "";
    while (rc == ITUNA_OK && !(max > 0 && handled >= max)) {
        int got = 0;
        rc = ituna_consumer_run_once(c->c, idle < 0 ? 1000 : idle, each_handler, L, &got, err, sizeof err);
        handled += got;
        if (rc != ITUNA_OK && got) { /* the message's verdict could not be applied: it is redelivered */
            ituna_log(ITUNA_LOG_WARN, "lua consumer: finishing a message failed: %s", err);
            rc = ITUNA_OK;
        }
        if (!got && (idle >= 0 || ituna_consumer_stopped(c->c))) break;
    }
    in_hand(L, 1, 1);
    if (rc != ITUNA_OK) return ilua_raise(L, rc, err);
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
 * A message that arrives meanwhile is kept by the core and is the next one
 * poll()/messages()/each() hands out.  [-0, +1, e] */
static int consumer_wait_assigned(lua_State *L) {
    ilua_consumer *c = check_consumer(L, 1);
    lua_Number s = luaL_checknumber(L, 2);
    luaL_argcheck(L, s >= 0 && s <= 86400.0, 2, "seconds from 0 to 86400 expected");
    int assigned = 0;
    char err[ILUA_ERRSTR] = "";
    ituna_err rc = ituna_consumer_wait_assigned(c->c, (int)(s * 1000 + 0.5), &assigned, err, sizeof err);
    if (rc != ITUNA_OK) return ilua_raise(L, rc, err);
    lua_pushboolean(L, assigned);
    return 1;
}

/* consumer:stop(): end the running loop at its next iteration.  [-0, +0, -] */
static int consumer_stop(lua_State *L) {
    ilua_consumer *c = luaL_checkudata(L, 1, ILUA_CONSUMER);
    if (c->c) ituna_consumer_stop(c->c);
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

/* Close: the core finishes the message in hand, if any (an error: redelivered),
 * commits and leaves the group; then the Lua message lets go of it.
 * [-0, +0, -] */
static ituna_err close_consumer(lua_State *L, ilua_consumer *c) {
    in_hand(L, 1, 0);
    ituna_err rc = ituna_consumer_close(c->c);
    in_hand(L, 1, 1);
    ituna_consumer_destroy(c->c);
    c->c = NULL;
    return rc;
}

/* consumer:close(): commit, leave the group, free. Idempotent.  [-0, +0, e] */
static int consumer_close(lua_State *L) {
    ilua_consumer *c = luaL_checkudata(L, 1, ILUA_CONSUMER);
    if (c->c && close_consumer(L, c) != ITUNA_OK) return luaL_error(L, "consumer close failed");
    return 0;
}

/* __gc/__close: close without raising. Messages of this consumer were created
 * later, so Lua finalises them first.  [-0, +0, -] */
static int consumer_gc(lua_State *L) {
    ilua_consumer *c = luaL_checkudata(L, 1, ILUA_CONSUMER);
    if (c->c) close_consumer(L, c);
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
    lua_pushcfunction(L, glue_consumer);
    lua_setfield(L, -2, "consumer");
    lua_pushcfunction(L, glue_context_mode);
    lua_setfield(L, -2, "context_mode");
}
