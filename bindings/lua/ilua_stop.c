/* ilua_stop.c - the process's stop request: the flag a host's signal handling
 * raises (ituna_lua_request_stop; the core stops every consumer) and
 * ituna.running/stop/sleep. */
#include <signal.h>
#include <time.h>

#include "lua_internal.h"

static volatile sig_atomic_t stop_flag;

void ituna_lua_request_stop(void) {
    stop_flag = 1;
    ituna_consumer_stop_all();
}

int ituna_lua_stop_requested(void) {
    return stop_flag != 0;
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
