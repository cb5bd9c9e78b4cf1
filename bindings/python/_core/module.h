/* module.h - what the files of the ituna._core extension share: the module state
 * (types, exception classes, the current-span ContextVar), the span and context
 * object layouts, and the helpers that convert between Python and the core. */
#ifndef ITUNA_PY_MODULE_H
#define ITUNA_PY_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h> /* PyMemberDef, T_PYSSIZET */

#include "ituna/ituna.h"

#define ERRSTR_SIZE 512

/* Object references only (strong, or NULL): module.c visits and clears the struct
 * as an array of them. */
typedef struct {
    /* types */
    PyTypeObject *SpanContextType;
    PyTypeObject *SpanType;
    PyTypeObject *TracerType;
    PyTypeObject *ProducerType;
    PyTypeObject *ConsumerType;
    PyTypeObject *MessageType;
    /* exceptions: Error is the base of all others */
    PyObject *Error;
    PyObject *ConfigError;
    PyObject *KafkaError;
    PyObject *TimeoutError;
    PyObject *DeliveryError;
    PyObject *MalformedPayload;
    PyObject *StateError;
    /* the current span: holds a Span or a SpanContext (or is unset) */
    PyObject *current;
    /* the Message being handled (`with msg:`): owner of the publishes made meanwhile */
    PyObject *current_msg;
    /* the tracer set by ituna.init() (a Tracer) or NULL */
    PyObject *default_tracer;
    /* from ituna/_support.py: loads (json.loads, MalformedPayload when not JSON), orjson.loads,
     * exception_fields (what a span records of an exception) */
    PyObject *json_loads;
    PyObject *fast_loads; /* orjson.loads when installed (ituna's dependency), else NULL */
    PyObject *exception_fields;
    PyObject *live;        /* weakref.WeakSet of open Producers and Consumers, closed at exit */
    PyObject *json_encode; /* a compact json.JSONEncoder's encode */
    PyObject *fast_dumps;  /* orjson.dumps when installed, else NULL (see json_plain) */
    PyObject *delivery_report, *delivery_failed; /* ituna/_support.py's DeliveryReport and DeliveryError */
    PyObject *from_core;                         /* ituna/_errors.py's exception of a core error code */
    /* interned strings */
    PyObject *str_traceparent;
    PyObject *str_tracestate;
    PyObject *str_baggage;
    /* OpenTelemetry bridge (context.c), all NULL until ituna.otel turns it on:
     * OTel's current-Context ContextVar, the current-span key in a Context, the
     * Context class, a factory making an OTel SpanContext, and the OTel-shaped Span
     * subclasses (recording / not sampled) defined in ituna/otel.py. */
    PyObject *otel_cv;
    PyObject *otel_key;
    PyTypeObject *otel_ctx_type;
    PyObject *otel_sc_factory;
    PyTypeObject *otel_span_type;
    PyTypeObject *otel_nonrec_type;
    PyObject *otel_baggage_key; /* OpenTelemetry's baggage key in a Context, or NULL */
    PyObject *otel_getter;      /* textmap.default_getter / default_setter: the fast paths */
    PyObject *otel_setter;
    PyObject *empty_tuple;
} module_state;
_Static_assert(sizeof(module_state) % sizeof(PyObject *) == 0, "module_state: object references only");

/* SpanContext: an immutable W3C context value. tracestate is kept as a Python
 * str (or NULL) so the object stays small. */
typedef struct {
    PyObject_HEAD uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t trace_flags;
    uint8_t is_remote;
    PyObject *tracestate; /* str or NULL */
    Py_hash_t hash;
} SpanContextObject;

/* Span: wraps an ituna_span until it ends; afterwards only the copied ids stay. */
typedef struct {
    PyObject_HEAD ituna_span *span; /* NULL once ended */
    PyObject *tracer;               /* strong: the Tracer (or the consumer's tracer) */
    PyObject *token;                /* ContextVar token while entered with `with` */
    PyObject *ctx_obj;              /* cached SpanContext, or NULL */
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t trace_flags;
    uint8_t recording;
    uint8_t borrowed;     /* a consumer message's span: ended by the message, not by us */
    uint8_t is_remote;    /* a remote context made current (OTel bridge), never a live span */
    uint8_t otel_flags;   /* SPAN_OTEL_*: OpenTelemetry `with` semantics */
    PyObject *tracestate; /* str or NULL (copied at start) */
    PyObject *owner;      /* OTel view of an ituna.Span: every method acts on owner */
    PyObject *cm_args;    /* ituna.otel start_as_current_span's arguments (a decorator's), or NULL */
} SpanObject;

/* OpenTelemetry start_span / start_as_current_span flags (SpanObject.otel_flags). */
#define SPAN_OTEL_NO_ATTACH 1  /* start_span: `with span` ends it but does not make it current */
#define SPAN_OTEL_NO_RECORD 2  /* record_exception=False */
#define SPAN_OTEL_NO_STATUS 4  /* set_status_on_exception=False */
#define SPAN_OTEL_NO_END    8  /* end_on_exit=False */
#define SPAN_OTEL           16 /* OTel span: only Exception subclasses are recorded */

static inline SpanObject *span_target(PyObject *self) {
    SpanObject *s = (SpanObject *)self;
    return s->owner ? (SpanObject *)s->owner : s;
}

typedef struct {
    PyObject_HEAD ituna_tracer *tracer;
    int shut_down;
    const ituna_scope *scope; /* spans' instrumentation scope; NULL: the core's own */
    PyObject *parent;         /* a scoped() view: the Tracer that owns the core tracer */
} TracerObject;

/* module.c */
module_state *state_of_type(PyTypeObject *tp);
module_state *state_of_module(PyObject *m);
/* Raise the ituna exception matching err with message msg (or the code's text).
 * Returns NULL for `return raise_err(...)`. */
PyObject *raise_err(module_state *st, ituna_err err, const char *msg);
/* Seconds (float/int/None) -> ms; None -> dflt. -2 with an exception set on bad input. */
int timeout_ms_from(PyObject *o, int dflt);

/* Fastcall argument parsing: fills out[0..nout) from positionals (at most npos)
 * and keywords named names[]; missing ones stay NULL. -1 with TypeError. */
int fast_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
              const char *const *names, int nout, int npos, PyObject **out);

/* context.c */
extern PyType_Spec SpanContext_spec;
PyObject *context_new(module_state *st, const ituna_span_context *c);
/* Fill *tmp from a SpanContext or Span object and return the context to use
 * (may point into the live span). NULL with TypeError for other objects. */
const ituna_span_context *context_from_object(module_state *st, PyObject *o, ituna_span_context *tmp);
/* The current context from the ContextVar, or NULL (no exception) if none. */
const ituna_span_context *context_current(module_state *st, ituna_span_context *tmp);
/* The context of any current-span object: an ituna Span/SpanContext, or (bridge on)
 * an OpenTelemetry span of another provider. NULL (no exception) if it has none. */
const ituna_span_context *context_of_any(module_state *st, PyObject *o, ituna_span_context *tmp);
/* Make o (Span, SpanContext or None) current: OTel's Context when the bridge is on,
 * else ituna's ContextVar. New token or NULL with an exception. */
PyObject *context_attach(module_state *st, PyObject *o);
/* Undo context_attach(); never raises (a token from another Context is ignored). */
void context_detach(module_state *st, PyObject *token);
/* The current-span object as ituna sees it (Span, SpanContext or None). New reference. */
PyObject *context_current_object(module_state *st);
/* OpenTelemetry's current baggage (bridge on) as a core baggage the caller destroys;
 * NULL when there is none. Never raises. */
ituna_baggage *context_baggage(module_state *st);
PyObject *py_otel_bridge(PyObject *m, PyObject *const *args, Py_ssize_t nargs);
PyObject *py_attach(PyObject *m, PyObject *o);
PyObject *py_detach(PyObject *m, PyObject *o);
PyObject *py_context_of(PyObject *m, PyObject *o);
PyObject *py_otel_span(PyObject *m, PyObject *o);
PyObject *py_otel_inject(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *py_otel_extract(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
/* An OTel SpanContext for ctx (bridge on). New reference. */
PyObject *otel_span_context(module_state *st, const ituna_span_context *ctx, int is_remote);
PyObject *py_inject(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *py_extract(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *py_traceparent_parse(PyObject *m, PyObject *arg);
PyObject *py_extract_baggage(PyObject *m, PyObject *carrier);
/* The W3C baggage of a carrier (mapping or (key, value) pairs) as a dict; {} if none. */
PyObject *baggage_of_carrier(module_state *st, PyObject *carrier);

/* span.c */
extern PyType_Spec Span_spec;
extern PyType_Spec Tracer_spec;
/* A borrowed Span wrapper around a span owned elsewhere (a consumer message). */
PyObject *span_wrap_borrowed(module_state *st, ituna_span *span, PyObject *tracer);
/* Mark a Span wrapper ended (copies the ids); does not end the C span if borrowed. */
void span_detach(SpanObject *s);
/* Record a Python exception (type, message, formatted stack) on a span and set ERROR. */
int span_record_pyexc(module_state *st, ituna_span *span, PyObject *exc, int set_status);

/* attrs.c: Python values -> ituna_attr. The buffer keeps temporary arrays alive
 * until attrbuf_free(). */
typedef struct {
    ituna_attr *attrs;
    size_t n;
    ituna_attr inline_attrs[8];
    void **allocs; /* PyMem blocks to free */
    size_t n_allocs, cap_allocs;
    int lenient; /* OpenTelemetry's API: an invalid attribute is dropped with a warning, not raised */
} attrbuf;
void attrbuf_init(attrbuf *b);
void attrbuf_free(attrbuf *b);
/* Convert a dict (or None) into b->attrs. -1 with an exception set. */
int attrbuf_from_dict(attrbuf *b, PyObject *dict);
/* attrbuf_from_dict() for use with the GIL released: *keep (new reference or NULL,
 * release after the call) keeps every borrowed value alive. -1 with an exception set. */
int attrbuf_from_dict_snapshot(attrbuf *b, PyObject *dict, PyObject **keep);
/* Convert one key/value into *out; uses b for temporary arrays. -1 with an exception set. */
int attr_convert(attrbuf *b, PyObject *key, PyObject *value, ituna_attr *out);
/* With b->lenient (and the error a TypeError/ValueError/OverflowError): log the
 * exception set as a dropped attribute and clear it, returning 1; else 0. */
int attr_dropped(attrbuf *b);

/* kafka_args.c: ituna/_support.py's function name(*args, **kw); NULL with an exception. */
PyObject *call_support(const char *name, PyObject *args, PyObject *kw);
/* repr() of SpanContext, Span and Message: _support.repr_of. */
PyObject *support_repr(PyObject *self);
/* The tuple of str as a NULL-terminated array (PyMem_Free it); NULL with an exception. */
const char **str_array(PyObject *tuple);
/* o as UTF-8, NULL for None/absent (or with TypeError: check PyErr_Occurred()). */
const char *opt_str(PyObject *o, const char *what);
/* Remember an open client so ituna.shutdown()/exit can close it. Steals o; NULL on error. */
PyObject *track_live(module_state *st, PyObject *o);
PyObject *self_enter(PyObject *self, PyObject *Py_UNUSED(a));
/* The fields a Producer and a Consumer start with. */
#define CLIENT_HEAD                                                                                          \
    PyObject_HEAD union { /* the C client; NULL once destroyed */                                            \
        void *core;                                                                                          \
        ituna_producer *p;                                                                                   \
        ituna_consumer *c;                                                                                   \
    };                                                                                                       \
    PyObject *tracer;                                                                                        \
    PyObject *weakreflist;                                                                                   \
    int busy; /* calls running without the GIL; guarded by the GIL */                                        \
    int closed;
typedef struct {
    CLIENT_HEAD
} ClientObject;
/* __exit__ of a client: close(op); an exception already on its way out wins, and
 * one close raised is printed (sys.unraisablehook). */
PyObject *client_exit(PyObject *op, PyObject *const *args, Py_ssize_t nargs, int (*close)(PyObject *op));
/* tp_dealloc of a client: untracked, weak references cleared, before(op) run (it may
 * call Python), destroy(core) run without the GIL, tp_clear and the tracer released. */
void client_dealloc(PyObject *op, void (*before)(PyObject *op), void (*destroy)(void *core));
int client_traverse(PyObject *op, visitproc visit, void *arg);
/* The end of a client's tp_new: create(tracer, opts, &core, ...) runs without the GIL;
 * on failure op goes (closed) and the error is raised, else op is tracked for
 * ituna.shutdown(). Steals op. */
PyObject *client_create(module_state *st, PyObject *op,
                        ituna_err (*create)(ituna_tracer *t, const void *opts, void **core, char *errstr,
                                            size_t errstr_size),
                        const void *opts);
/* The closed getter, and the members a client has (its weak reference list). */
PyObject *client_closed(PyObject *op, void *c);
extern PyMemberDef client_members[];
/* The with-statement methods of a client: __enter__ returns it, __exit__ closes it. */
#define CLIENT_WITH_METHODS(exit_fn)                                                                         \
    { "__enter__", self_enter, METH_NOARGS, "__enter__($self, /)\n--\n\nReturn the client." }, {             \
        "__exit__", (PyCFunction)(void (*)(void))exit_fn, METH_FASTCALL,                                     \
            "__exit__($self, exc_type=None, exc_value=None, traceback=None, /)\n--\n\nclose() the client."   \
    }
PyObject *no_new(PyTypeObject *tp, PyObject *a, PyObject *k);
#define SLICE_MS 100 /* blocking calls run in slices of this many ms so Ctrl-C is seen */

/* kafka_producer.c, kafka_consumer.c, kafka_broker.c */
extern PyType_Spec Producer_spec;
extern PyType_Spec Consumer_spec;
extern PyType_Spec Message_spec;
PyObject *py_mock_cluster_start(PyObject *m, PyObject *args);
PyObject *py_mock_cluster_bootstrap(PyObject *m, PyObject *cap);
PyObject *py_mock_cluster_create_topic(PyObject *m, PyObject *args);
PyObject *py_mock_cluster_stop(PyObject *m, PyObject *cap);
/* The core message of a Message still being handled, else NULL (no exception). */
ituna_message *message_core(PyObject *o);
PyObject *py_config_entries(PyObject *m, PyObject *args, PyObject *kw); /* span.c */

#endif
