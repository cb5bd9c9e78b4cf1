/* lua_internal.h - what the files of the Lua binding share: userdata layouts and
 * type names, the conversions of ilua_convert.c, the span userdata of
 * ilua_trace.c, JSON, the stop request, and each part's opener. Private to
 * bindings/lua/. Files call down this list, never up:
 *   ituna_lua.c (luaopen_ituna) > ilua_consumer.c, ilua_producer.c, ilua_broker.c
 *   > ilua_trace.c, ilua_json.c, ilua_stop.c > ilua_convert.c
 *
 * Stack effects are documented as in the Lua manual: [-o, +p, x] where o values
 * are popped, p pushed, and x is '-' (never raises), 'm' (memory errors only),
 * 'v' (raises on bad arguments) or 'e' (raises any error). */
#ifndef ITUNA_LUA_INTERNAL_H
#define ITUNA_LUA_INTERNAL_H

#include <lauxlib.h>
#include <lua.h>

#include "ituna/ituna.h"
#include "ituna_lua.h"

/* One type name per userdata: the luaL_newmetatable key and what type errors print. */
#define ILUA_TRACER         "ituna.Tracer"
#define ILUA_SPAN           "ituna.Span"
#define ILUA_PRODUCER       "ituna.Producer"
#define ILUA_CONSUMER       "ituna.Consumer"
#define ILUA_MESSAGE        "ituna.Message"
#define ILUA_LOOP           "ituna.MessageLoop"
#define ILUA_BROKER         "ituna.EmbeddedBroker"
#define ILUA_MALFORMED      "ituna.Malformed"
#define ILUA_DELIVERY_ERROR "ituna.DeliveryError"

/* Registry key of the tracer ituna.init() made (or the host handed over). */
#define ILUA_REG_TRACER "ituna.current_tracer"
/* the INI file the host tracer was set up from (absent: none) */
#define ILUA_REG_HOST_CONFIG "ituna.host_config"
/* the application schema the host registered (absent: $ITUNA_CONFIG_SCHEMA) */
#define ILUA_REG_HOST_SCHEMA "ituna.host_schema"
/* the table of C functions ituna_glue.lua was given, with what it adds for C to call */
#define ILUA_REG_GLUE "ituna.glue"

#define ILUA_ERRSTR 512

typedef struct ilua_tracer {
    ituna_tracer *t; /* NULL after destroy */
    int owned;       /* 0: the host owns it (ituna-lua) */
} ilua_tracer;

/* A span userdata. Created with span == NULL (already "ended"), then the span is
 * started, so a failed start leaves a consistent object. Ends exactly once. */
typedef struct ilua_span {
    ituna_span *span;     /* NULL once ended (or, borrowed, once its message finished) */
    int token;            /* ituna_context_attach() token while current, else -1 */
    int borrowed;         /* a message's CONSUMER span: ituna_message_done() ends it */
    uint8_t trace_id[16]; /* kept at end so :context() still answers */
    uint8_t span_id[8];
    uint8_t trace_flags;
} ilua_span;

/* ---- ilua_convert.c: conversions every part uses ---- */

/* Raise a Lua error carrying the core's message (errstr, else the code's text).
 * [-0, +0, v] */
int ilua_raise(lua_State *L, ituna_err err, const char *errstr);
/* Push nil and the message ilua_raise would raise, for a function of
 * ituna_glue.lua's C table (the glue raises it at its caller's line).
 * [-0, +2, m] */
int ilua_fail(lua_State *L, ituna_err err, const char *errstr);

/* Milliseconds from a timeout in seconds at idx (none/nil: def_ms; negative: wait as
 * long as the core's default).
 * [-0, +0, v] */
int ilua_timeout_ms(lua_State *L, int idx, int def_ms);

/* Push a context as a table {trace_id, span_id, trace_flags, tracestate?, is_remote}.
 * [-0, +1, m] */
void ilua_push_context(lua_State *L, const ituna_span_context *ctx);

/* The context of a span userdata: its live span's, or the ids kept at its end
 * (no tracestate then).
 * [-0, +0, -] */
void ilua_span_ctx(const ilua_span *s, ituna_span_context *out);

/* Read a context from a table or a span userdata at idx into *out. Returns 1, or
 * 0 with *reason set (static string).
 * [-0, +0, m] */
int ilua_to_context(lua_State *L, int idx, ituna_span_context *out, const char **reason);

/* Attributes gathered from a Lua table; strings point into the table, so it must
 * stay on the stack. Scratch userdata may be pushed: the caller restores the top. */
typedef struct ilua_attrs {
    ituna_attr *v;
    size_t n, cap;
    ituna_attr inl[12];
} ilua_attrs;

/* Convert the value at the top (its key below it) into *a; arg names the
 * argument in errors.
 * [-0, +(0|1) below the top 2, v] */
void ilua_attr_value(lua_State *L, int arg, ituna_attr *a);

/* Convert the table at idx (nil/none: no attributes). Raises naming arg and key
 * on a bad key or value type.
 * [-0, +k, v] (k scratch values; restore the top after use) */
void ilua_attrs_from_table(lua_State *L, int idx, int arg, ilua_attrs *out);

/* The list of strings at idx (ituna_glue.lua made it) as a NULL-terminated array;
 * the strings stay anchored in the list.
 * [-0, +1, m] pushes the array userdata */
const char *const *ilua_string_list(lua_State *L, int idx);

/* Is the value at idx an ituna.malformed(reason) object? Pushes its reason if so.
 * [-0, +(0|1), -] */
int ilua_is_malformed(lua_State *L, int idx);

/* Message handler for lua_pcall: returns the original error value and leaves a
 * traceback string in the registry at ILUA_REG_TRACEBACK.
 * [-0, +0, m] */
#define ILUA_REG_TRACEBACK "ituna.traceback"
int ilua_msgh(lua_State *L);

/* Create metatable tname with metamethods mm and, when methods is not NULL, a
 * table of methods in the field methods_field.
 * [-0, +0, m] */
void ilua_new_class(lua_State *L, const char *tname, const luaL_Reg *mm, const luaL_Reg *methods,
                    const char *methods_field);

/* ---- ilua_trace.c: the tracer and span userdata ---- */

/* Push a span userdata wrapping s (borrowed: ended by someone else).
 * [-0, +1, m] */
ilua_span *ilua_push_span(lua_State *L, ituna_span *s, int borrowed);

/* A borrowed span userdata whose message was finished: ended for Lua, detached.
 * [-0, +0, -] */
void ilua_span_invalidate(ilua_span *s);

/* ---- ilua_json.c ---- */

/* Encode the value at idx into a malloc'd string (caller frees) or return NULL
 * with a message in err.
 * [-0, +0, m] */
char *ilua_json_encode(lua_State *L, int idx, size_t *len, char *err, size_t err_size);
/* Decode text and push the Lua value; returns 0 (nothing pushed) with err set
 * when the text is not valid JSON.
 * [-0, +(0|1), m] */
int ilua_json_decode(lua_State *L, const char *text, size_t len, char *err, size_t err_size);
/* Push the ituna.null sentinel (JSON null).
 * [-0, +1, -] */
void ilua_push_null(lua_State *L);

/* ---- openers: each fills the module table at -1 with its functions and creates
 * its metatables; ilua_open_convert, ilua_open_broker, ilua_open_producer,
 * ilua_open_consumer and ilua_glue_trace fill the table at -1 of C functions (and
 * the malformed and delivery-error metatables) that ituna_glue.lua uses.
 * [-0, +0, m] ---- */
void ilua_open_convert(lua_State *L);
void ilua_open_trace(lua_State *L);
void ilua_open_stop(lua_State *L);
void ilua_open_producer(lua_State *L);
void ilua_open_consumer(lua_State *L);
void ilua_open_broker(lua_State *L);
void ilua_glue_trace(lua_State *L);

/* ituna_glue.lua's bytes (ituna_glue.c, made in the build directory by embed_lua.cmake) */
extern const unsigned char ilua_glue[];
extern const size_t ilua_glue_size;

/* Push a table of bag's entries (key -> decoded value). [-0, +1, m] (ilua_trace.c) */
void ilua_push_baggage(lua_State *L, const ituna_baggage *bag);

#endif
