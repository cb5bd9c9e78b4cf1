/* ituna_lua.h - what a C host embedding Lua sees of the `ituna` Lua module: the
 * opener, handing the module a tracer the host owns, and the stop request a
 * signal handler raises. ituna-lua (host.c) is the worked example. */
#ifndef ITUNA_LUA_H
#define ITUNA_LUA_H

#include <lua.h>

#include "ituna/ituna.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from the module .so even though the build hides symbols by default. */
#define ITUNA_LUA_API __attribute__((visibility("default")))

/* The module opener, for luaL_requiref() or package.preload.
 * [-0, +1, m] */
ITUNA_LUA_API int luaopen_ituna(lua_State *L);

/* Make t the tracer that ituna.init() returns in L (module already required).
 * The host keeps ownership: it must call ituna_tracer_shutdown()/destroy() after
 * lua_close(L). Not thread-safe: the thread that runs L.
 * [-0, +0, m] */
ITUNA_LUA_API void ituna_lua_set_host_tracer(lua_State *L, ituna_tracer *t);

/* Tell the module which INI file the host's tracer was set up from (NULL: none).
 * With a host tracer, ituna.init{} accepts service_name (a different one is
 * ignored with a warning) and a config naming that same file; any other setting
 * raises an error saying where to put it instead, since the tracer already exists.
 * [-0, +0, m] */
ITUNA_LUA_API void ituna_lua_set_host_config(lua_State *L, const char *config_path);

/* Tell the module which application schema the host registered (NULL: the one named
 * by $ITUNA_CONFIG_SCHEMA, else none): with a host tracer, ituna.init{} accepts a
 * schema naming that same file and refuses another one.
 * [-0, +0, m] */
ITUNA_LUA_API void ituna_lua_set_host_schema(lua_State *L, const char *schema_path);

/* Ask every consumer loop to end at its next iteration (committing what was
 * handled), wake consumers blocked in poll, and make ituna.running() false and
 * ituna.sleep() return early. Async-signal-safe; may be called from any thread. */
ITUNA_LUA_API void ituna_lua_request_stop(void);

/* 1 once ituna_lua_request_stop() was called. Thread-safe. */
ITUNA_LUA_API int ituna_lua_stop_requested(void);

#ifdef __cplusplus
}
#endif
#endif
