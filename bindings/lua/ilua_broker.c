/* ilua_broker.c - ituna.start_embedded_broker: librdkafka's built-in
 * Kafka-protocol test cluster, started through the core. */
#include <string.h>

#include "lua_internal.h"

typedef struct ilua_broker {
    ituna_mock_cluster *m;
} ilua_broker;

/* C.start_embedded_broker(brokers, partitions) -> broker with .bootstrap and
 * :stop(), or nil and the core's message: librdkafka's built-in test cluster, in
 * this process (ituna_glue.lua checked the counts).  [-0, +(1|2), m] */
static int glue_start_embedded_broker(lua_State *L) {
    ilua_broker *b = lua_newuserdatauv(L, sizeof(*b), 0);
    b->m = NULL;
    luaL_setmetatable(L, ILUA_BROKER);
    char err[ILUA_ERRSTR] = "";
    ituna_err rc =
        ituna_mock_cluster_start((int)lua_tointeger(L, 1), (int)lua_tointeger(L, 2), &b->m, err, sizeof err);
    if (rc != ITUNA_OK) return ilua_fail(L, rc, err);
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

static const luaL_Reg broker_metamethods[] = {
    { "__index", broker_index },
    { "__gc", broker_stop },
    { "__close", broker_stop },
    { NULL, NULL },
};

void ilua_open_broker(lua_State *L) {
    ilua_new_class(L, ILUA_BROKER, broker_metamethods, NULL, NULL);
    lua_pushcfunction(L, glue_start_embedded_broker);
    lua_setfield(L, -2, "start_embedded_broker");
}
