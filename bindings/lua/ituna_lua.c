/* ituna_lua.c - the `ituna` Lua 5.4 module's entry point: luaopen_ituna gathers
 * what each part registers (ilua_trace.c, ilua_producer.c, ilua_consumer.c,
 * ilua_broker.c, ilua_stop.c) and ituna_glue.lua adds, and ituna.now, ituna.log, ituna.null,
 * ituna.version. Type conversion and Lua idioms only: every behaviour is the core's. */
#include "lua_internal.h"

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

static const luaL_Reg module_functions[] = {
    { "now", l_now },
    { "log", l_log },
    { NULL, NULL },
};

int luaopen_ituna(lua_State *L) {
    luaL_checkversion(L);
    luaL_newlib(L, module_functions);
    ilua_open_trace(L);
    ilua_open_stop(L);
    /* ituna_glue.lua(M, C) adds the module's Lua functions over C's */
    if (luaL_loadbufferx(L, (const char *)ilua_glue, ilua_glue_size, "=ituna_glue.lua", "t") != LUA_OK)
        return lua_error(L);
    lua_pushvalue(L, -2);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, ILUA_REG_GLUE);
    ilua_open_convert(L);
    ilua_open_broker(L);
    ilua_open_producer(L);
    ilua_open_consumer(L);
    ilua_glue_trace(L);
    lua_call(L, 2, 0);
    ilua_push_null(L);
    lua_setfield(L, -2, "null");
    lua_pushstring(L, ituna_version());
    lua_setfield(L, -2, "version");
    return 1;
}
