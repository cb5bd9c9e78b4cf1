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

static void usage(FILE *out) {
    fprintf(out,
            "usage: %s [--config PATH] [--schema PATH] [--service NAME] script.lua [args...]\n"
            "  --config PATH   INI file (default: $ITUNA_CONFIG when set)\n"
            "  --schema PATH   the application's config schema, making its sections known\n"
            "                  (default: $ITUNA_CONFIG_SCHEMA when set)\n"
            "  --service NAME  service.name (default: OTEL_SERVICE_NAME, the INI's\n"
            "                  [tracer] service-name, else the script's base name)\n"
            "  --version       print the versions and exit\n"
            "Settings: INI file < environment (OTEL_*, ITUNA_*) < command line.\n"
            "SIGINT/SIGTERM stop consumer loops gracefully; a second one exits at once.\n",
            progname);
}

/* ituna_host.lua's bytes (made in the build directory by embed_lua.cmake) */
extern const unsigned char ilua_host[];
extern const size_t ilua_host_size;

/* Run the script with its arguments through ituna_host.lua, which sets `arg`, makes
 * os.exit unwind (so spans, consumers and producers are still finished), adds a
 * traceback to an error and prints it. Returns the exit status. */
static int run_script(lua_State *L, char **argv, int argc, int script) {
    luaL_checkstack(L, argc + 2, "too many arguments");
    int rc = luaL_loadbufferx(L, (const char *)ilua_host, ilua_host_size, "=ituna_host.lua", "t");
    if (rc == LUA_OK) {
        lua_pushstring(L, progname);
        lua_pushinteger(L, script);
        for (int i = 0; i < argc; i++) lua_pushstring(L, argv[i]);
        rc = lua_pcall(L, argc + 2, 1, 0);
    }
    if (rc != LUA_OK) {
        fprintf(stderr, "%s: %s\n", progname, lua_tostring(L, -1));
        return EXIT_FAILURE;
    }
    return (int)lua_tointeger(L, -1);
}

/* Base name of path without its extension, for the default service.name. */
static void script_service_name(const char *path, char *out, size_t size) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, size, "%s", base);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = '\0';
}

int main(int argc, char **argv) {
    const char *config_path = getenv("ITUNA_CONFIG"), *schema_path = NULL, *service = NULL;
    int script = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(argv[i], "--schema") == 0 && i + 1 < argc) {
            schema_path = argv[++i];
        } else if (strcmp(argv[i], "--service") == 0 && i + 1 < argc) {
            service = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return EXIT_SUCCESS;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("ituna-lua %s (%s)\n", ituna_version(), LUA_RELEASE);
            return EXIT_SUCCESS;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "%s: unknown or incomplete option '%s'\n", progname, argv[i]);
            usage(stderr);
            return 2;
        } else {
            script = i;
            break;
        }
    }
    if (!script) {
        fprintf(stderr, "%s: no script given\n", progname);
        usage(stderr);
        return 2;
    }
    if (ituna_stop_on_signals(progname) != ITUNA_OK) {
        fprintf(stderr, "%s: cannot set up signal handling: %s\n", progname, strerror(errno));
        return 2;
    }

    /* configuration: application schema (--schema, else $ITUNA_CONFIG_SCHEMA), file,
     * then environment, then the command line */
    char err[512] = "";
    ituna_config *cfg = ituna_config_new();
    if (!cfg) {
        fprintf(stderr, "%s: out of memory\n", progname);
        return 2;
    }
    ituna_err rc = ituna_config_load_host(cfg, schema_path, config_path, 1, NULL, err, sizeof err);
    char default_name[256];
    if (rc == ITUNA_OK && !service && !ituna_config_get(cfg, "tracer", "service-name")) {
        script_service_name(argv[script], default_name, sizeof default_name);
        service = default_name;
    }
    if (rc == ITUNA_OK && service)
        rc = ituna_config_set(cfg, "tracer.service-name", service, err, sizeof err);
    ituna_tracer *tracer = NULL;
    if (rc == ITUNA_OK) rc = ituna_tracer_create(cfg, &tracer, err, sizeof err);
    ituna_config_destroy(cfg);
    if (rc != ITUNA_OK) {
        fprintf(stderr, "%s: configuration error: %s\n", progname, err[0] ? err : ituna_err2str(rc));
        return 2;
    }
    ituna_tracer_set_global(tracer);

    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "%s: cannot create a Lua state (out of memory)\n", progname);
        ituna_tracer_destroy(tracer);
        return 2;
    }
    luaL_openlibs(L);
    luaL_requiref(L, "ituna", luaopen_ituna, 0); /* require "ituna" finds this one */
    lua_pop(L, 1);
    ituna_lua_set_host_tracer(L, tracer);
    ituna_lua_set_host_config(L, config_path); /* ituna.init{} refuses settings it cannot apply */
    ituna_lua_set_host_schema(L, schema_path);

    int status = run_script(L, argv, argc, script);

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
