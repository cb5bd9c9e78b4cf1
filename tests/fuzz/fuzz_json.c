/* fuzz_json.c - libFuzzer target for the Lua binding's JSON payload decoder
 * (ilua_json_decode, what msg:json() runs on every consumed message): any bytes
 * decode or fail with a reason, never crash; what decodes encodes again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lua_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a state per input: every allocation is freed within the run, so libFuzzer's
     * leak check (malloc/free counts per run) does not scan the heap each time */
    lua_State *L = luaL_newstate();
    if (!L) abort();
    char *text = malloc(size ? size : 1);
    if (!text) return 0;
    memcpy(text, data, size);
    /* room for the longest message: the elided key path plus the reason, so the
     * reason checked below is never cut off */
    char err[1024] = "";
    int top = lua_gettop(L);
    if (ilua_json_decode(L, text, size, err, sizeof err)) {
        if (lua_gettop(L) != top + 1) abort();
        size_t n = 0;
        char eerr[1024] = ""; /* the encoder's message names the path, which can be long */
        char *again = ilua_json_encode(L, -1, &n, eerr, sizeof eerr);
        /* decoded values are strings, numbers, booleans, null and tables: all encodable,
         * except "\u0000" in a string (the encoder refuses NUL bytes) and a number out of
         * double range such as 1e400 (decodes as inf, as Python's json.loads does) */
        if (!again && !strstr(eerr, "NUL") && !strstr(eerr, "not a JSON number")) abort();
        free(again);
        lua_settop(L, top);
    } else if (!err[0] || lua_gettop(L) != top) {
        abort();
    }
    lua_close(L);
    free(text);
    return 0;
}
