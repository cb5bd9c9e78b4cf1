/* ilua_stop.c - the process's stop request: the flag a host's signal handling
 * raises (ituna_lua_request_stop; the core stops every consumer) and
 * ituna.running/stop/sleep. */
#include "lua_internal.h"

void ituna_lua_request_stop(void) {
    ituna_stop_request();
}

int ituna_lua_stop_requested(void) {
    return ituna_stop_requested();
}

/* ituna.running() -> false once SIGINT/SIGTERM asked the host to stop.  [-0, +1, -] */
static int l_running(lua_State *L) {
    lua_pushboolean(L, !ituna_stop_requested());
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
    lua_pushboolean(L, ituna_sleep((uint64_t)(s * 1000 + 0.5)));
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
