/* host.c - ituna-lua: a Lua 5.4 interpreter with ituna-core built in, and the
 * worked example of embedding the core in a C host. It sets the tracer up from
 * the INI file and the environment before the script runs (ituna.init in the
 * script returns that tracer), turns SIGINT/SIGTERM into a graceful stop
 * (consumer loops end and commit, sleeps return), and on the way out closes Lua
 * (finishing spans, consumers, producers) and flushes the spans.
 *
 *   ituna-lua [--config PATH] [--schema PATH] [--service NAME] script.lua [args...]
 *
 * Exit status: the script's os.exit code, 0 after a normal end or a stop by
 * signal, 1 on a script error, 2 on bad usage or configuration, 3 when the script
 * ended well but spans were lost at the final flush (dropped or not exported). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "ituna/ituna.h"
#include "ituna_lua.h"

#define SHUTDOWN_TIMEOUT_MS 10000

static const char *progname = "ituna-lua";

/* ituna_host.lua's bytes (made in the build directory by embed_lua.cmake) */
extern const unsigned char ilua_host[];
extern const size_t ilua_host_size;

/* ituna_host.lua, called with the program's name, its version line and argv, reads
 * the command line (printing the usage, the version or what is wrong) and leaves an
 * exit status, or a table: the config and schema paths, the service name or its
 * default (the script's base name), and run(), which runs the script. Returns the
 * stack index of that table, or 0 with *status set. */
static int read_command_line(lua_State *L, char **argv, int argc, int *status) {
    luaL_checkstack(L, argc + 2, "too many arguments");
    int rc = luaL_loadbufferx(L, (const char *)ilua_host, ilua_host_size, "=ituna_host.lua", "t");
    if (rc == LUA_OK) {
        lua_pushstring(L, progname);
        lua_pushfstring(L, "ituna-lua %s (%s)", ituna_version(), LUA_RELEASE);
        for (int i = 0; i < argc; i++) lua_pushstring(L, argv[i]);
        rc = lua_pcall(L, argc + 2, 1, 0);
    }
    *status = rc != LUA_OK ? EXIT_FAILURE : (int)lua_tointeger(L, -1);
    if (rc != LUA_OK) fprintf(stderr, "%s: %s\n", progname, lua_tostring(L, -1));
    return rc == LUA_OK && lua_istable(L, -1) ? lua_gettop(L) : 0;
}

/* Field key of the table at idx as a string, or NULL (the table keeps it). */
static const char *field(lua_State *L, int idx, const char *key) {
    lua_getfield(L, idx, key);
    return lua_tostring(L, -1);
}

int main(int argc, char **argv) {
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "%s: cannot create a Lua state (out of memory)\n", progname);
        return 2;
    }
    luaL_openlibs(L);
    int status, cli = read_command_line(L, argv, argc, &status);
    if (!cli) {
        lua_close(L);
        return status;
    }
    const char *config_path = field(L, cli, "config"), *schema_path = field(L, cli, "schema");
    if (ituna_stop_on_signals(progname) != ITUNA_OK) {
        fprintf(stderr, "%s: cannot set up signal handling: %s\n", progname, strerror(errno));
        lua_close(L);
        return 2;
    }

    /* configuration: application schema (--schema, else $ITUNA_CONFIG_SCHEMA), file,
     * then environment, then the command line */
    char err[512] = "";
    ituna_config *cfg = ituna_config_new();
    if (!cfg) {
        fprintf(stderr, "%s: out of memory\n", progname);
        lua_close(L);
        return 2;
    }
    ituna_err rc = ituna_config_load_host(cfg, schema_path, config_path, 1, NULL, err, sizeof err);
    const char *service = field(L, cli, "service");
    if (rc == ITUNA_OK && !service && !ituna_config_get(cfg, "tracer", "service-name"))
        service = field(L, cli, "script_name");
    if (rc == ITUNA_OK && service)
        rc = ituna_config_set(cfg, "tracer.service-name", service, err, sizeof err);
    ituna_tracer *tracer = NULL;
    if (rc == ITUNA_OK) rc = ituna_tracer_create(cfg, &tracer, err, sizeof err);
    ituna_config_destroy(cfg);
    if (rc != ITUNA_OK) {
        fprintf(stderr, "%s: configuration error: %s\n", progname, err[0] ? err : ituna_err2str(rc));
        lua_close(L);
        return 2;
    }
    ituna_tracer_set_global(tracer);

    luaL_requiref(L, "ituna", luaopen_ituna, 0); /* require "ituna" finds this one */
    lua_pop(L, 1);
    ituna_lua_set_host_tracer(L, tracer);
    ituna_lua_set_host_config(L, config_path); /* ituna.init{} refuses settings it cannot apply */
    ituna_lua_set_host_schema(L, schema_path);

    /* run(): sets `arg`, makes os.exit unwind (so spans, consumers and producers are
     * still finished), adds a traceback to an error and prints it */
    lua_getfield(L, cli, "run");
    if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
        fprintf(stderr, "%s: %s\n", progname, lua_tostring(L, -1));
        status = EXIT_FAILURE;
    } else {
        status = (int)lua_tointeger(L, -1);
    }

    lua_close(L); /* ends open spans, closes consumers (commit), flushes producers */
    rc = ituna_tracer_shutdown(tracer, SHUTDOWN_TIMEOUT_MS);
    if (rc != ITUNA_OK) {
        fprintf(stderr, "%s: %s\n", progname,
                ituna_tracer_describe_loss(tracer, "flushing spans", rc, err, sizeof err));
        if (status == 0) status = 3; /* a clean run that lost spans is not a clean run */
    }
    ituna_tracer_set_global(NULL);
    ituna_tracer_destroy(tracer);
    return status;
}
