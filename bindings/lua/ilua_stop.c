/* ilua_stop.c - the process's stop request: the flag a host's signal handling
 * raises (ituna_lua_request_stop), the registry of consumers it wakes, and
 * ituna.running/stop/sleep. */
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

#include "lua_internal.h"

#define ILUA_MAX_CONSUMERS 64
static volatile sig_atomic_t stop_flag;
static _Atomic(ituna_consumer *) consumer_slots[ILUA_MAX_CONSUMERS];
static atomic_int waking; /* request_stop() calls in progress */

void ituna_lua_request_stop(void) {
    stop_flag = 1;
    atomic_fetch_add(&waking, 1);
    for (int i = 0; i < ILUA_MAX_CONSUMERS; i++) {
        ituna_consumer *c = atomic_load(&consumer_slots[i]);
        if (c) ituna_consumer_stop(c);
    }
    atomic_fetch_sub(&waking, 1);
}

int ituna_lua_stop_requested(void) {
    return stop_flag != 0;
}

int ilua_register_consumer(ituna_consumer *c) {
    for (int i = 0; i < ILUA_MAX_CONSUMERS; i++) {
        ituna_consumer *expected = NULL;
        if (atomic_compare_exchange_strong(&consumer_slots[i], &expected, c)) {
            if (stop_flag) ituna_consumer_stop(c); /* asked before it existed */
            return i;
        }
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

static const luaL_Reg stop_functions[] = {
    { "running", l_running },
    { "stop", l_stop },
    { "sleep", l_sleep },
    { NULL, NULL },
};

void ilua_open_stop(lua_State *L) {
    luaL_setfuncs(L, stop_functions, 0);
}
