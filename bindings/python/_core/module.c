/* module.c - the ituna._core module: multi-phase init, module state, the exception
 * hierarchy and the one place where core error codes become Python exceptions. */
#include "module.h"

#include <math.h>

#include <librdkafka/rdkafka.h>

module_state *state_of_type(PyTypeObject *tp) {
    /* ituna.otel's Python subclasses of Span have no module: use their C base's */
    while (tp->tp_base && (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE) || !((PyHeapTypeObject *)tp)->ht_module))
        tp = tp->tp_base;
    return (module_state *)PyType_GetModuleState(tp);
}
module_state *state_of_module(PyObject *m) {
    return (module_state *)PyModule_GetState(m);
}

PyObject *raise_err(module_state *st, ituna_err err, const char *msg) {
    if (err == ITUNA_ERR_NOMEM) return PyErr_NoMemory();
    if (!msg || !*msg) msg = ituna_err2str(err);
    /* _errors.from_core: the class of err, with .code and .name */
    PyObject *exc = PyObject_CallFunction(st->from_core, "isN", (int)err, ituna_err2name(err),
                                          PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "replace"));
    if (exc) PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_XDECREF(exc);
    return NULL;
}

int timeout_ms_from(PyObject *o, int dflt) {
    if (!o || o == Py_None) return dflt;
    if (PyBool_Check(o) || !(PyFloat_Check(o) || PyLong_Check(o))) {
        PyErr_Format(PyExc_TypeError, "timeout must be a number of seconds or None, not %.100s",
                     Py_TYPE(o)->tp_name);
        return -2;
    }
    double s = PyFloat_AsDouble(o);
    if (s == -1.0 && PyErr_Occurred()) return -2;
    if (isnan(s) || s < 0) {
        PyErr_SetString(PyExc_ValueError, "timeout must be >= 0 seconds");
        return -2;
    }
    if (s > 2147483.0) return INT32_MAX;
    return (int)(s * 1000.0 + 0.5);
}

int fast_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
              const char *const *names, int nout, int npos, PyObject **out) {
    for (int i = 0; i < nout; i++) out[i] = NULL;
    if (nargs > npos) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional argument%s (%zd given)", fname, npos,
                     npos == 1 ? "" : "s", nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) out[i] = args[i];
    if (!kwnames) return 0;
    Py_ssize_t nk = PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t i = 0; i < nk; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        int j;
        for (j = 0; j < nout; j++)
            if (PyUnicode_CompareWithASCIIString(k, names[j]) == 0) break;
        if (j == nout) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname, k);
            return -1;
        }
        if (out[j]) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fname, names[j]);
            return -1;
        }
        out[j] = args[nargs + i];
    }
    return 0;
}

/* ---- module functions ------------------------------------------------------ */

static PyObject *py_version(PyObject *m, PyObject *Py_UNUSED(a)) {
    (void)m;
    return PyUnicode_FromString(ituna_version());
}

static PyObject *py_set_default_tracer(PyObject *m, PyObject *t) {
    module_state *st = state_of_module(m);
    if (t != Py_None && !PyObject_TypeCheck(t, st->TracerType))
        return PyErr_Format(PyExc_TypeError, "expected a Tracer or None, not %.100s", Py_TYPE(t)->tp_name);
    if (t == Py_None) {
        ituna_tracer_set_global(NULL);
        Py_CLEAR(st->default_tracer);
    } else {
        Py_INCREF(t);
        Py_XSETREF(st->default_tracer, t);
        ituna_tracer_set_global(((TracerObject *)t)->tracer);
    }
    Py_RETURN_NONE;
}

static PyObject *py_get_default_tracer(PyObject *m, PyObject *Py_UNUSED(a)) {
    module_state *st = state_of_module(m);
    if (!st->default_tracer) Py_RETURN_NONE;
    return Py_NewRef(st->default_tracer);
}

static PyObject *py_current(PyObject *m, PyObject *Py_UNUSED(a)) {
    return context_current_object(state_of_module(m));
}

static PyObject *py_err2name(PyObject *m, PyObject *arg) {
    (void)m;
    long c = PyLong_AsLong(arg);
    if (c == -1 && PyErr_Occurred()) return NULL;
    return PyUnicode_FromString(ituna_err2name((ituna_err)c));
}

/* Diagnostics from the core go to the Python logger "ituna" when a handler is
 * installed; the core may call from any thread, so the GIL is taken here. */
static PyObject *log_callback; /* protected by the GIL; one per process like the core's hook */

static void log_trampoline(ituna_log_level level, const char *message, void *opaque) {
    (void)opaque;
    if (!Py_IsInitialized()) return;
    PyGILState_STATE g = PyGILState_Ensure();
    if (log_callback) {
        PyObject *r = PyObject_CallFunction(log_callback, "is", (int)level, message);
        if (!r) PyErr_WriteUnraisable(log_callback);
        Py_XDECREF(r);
    }
    PyGILState_Release(g);
}

static PyObject *py_set_log_handler(PyObject *m, PyObject *fn) {
    (void)m;
    if (fn == Py_None) {
        ituna_log_set_handler(NULL, NULL);
        Py_CLEAR(log_callback);
        Py_RETURN_NONE;
    }
    if (!PyCallable_Check(fn)) return PyErr_Format(PyExc_TypeError, "log handler must be callable");
    Py_INCREF(fn);
    Py_XSETREF(log_callback, fn);
    ituna_log_set_handler(log_trampoline, NULL);
    Py_RETURN_NONE;
}

static PyObject *py_set_log_level(PyObject *m, PyObject *arg) {
    (void)m;
    long lv = PyLong_AsLong(arg);
    if (lv == -1 && PyErr_Occurred()) return NULL;
    if (lv < ITUNA_LOG_DEBUG || lv > ITUNA_LOG_NONE) return PyErr_Format(PyExc_ValueError, "log level 0..4");
    ituna_log_set_level((ituna_log_level)lv);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    { "version", py_version, METH_NOARGS,
      "version($module, /)\n--\n\n"
      "version() -> str: the C core's version string." },
    { "set_default_tracer", py_set_default_tracer, METH_O,
      "set_default_tracer($module, tracer, /)\n--\n\n"
      "set_default_tracer(tracer or None): tracer used by Producer/Consumer when none is given;\n"
      "also made the core's global tracer." },
    { "get_default_tracer", py_get_default_tracer, METH_NOARGS,
      "get_default_tracer($module, /)\n--\n\n"
      "get_default_tracer() -> Tracer or None." },
    { "current", py_current, METH_NOARGS,
      "current($module, /)\n--\n\n"
      "current() -> Span, SpanContext or None: this context's current span (with the\n"
      "OpenTelemetry bridge on, another provider's current span as its SpanContext)." },
    { "attach", py_attach, METH_O,
      "attach($module, context, /)\n--\n\n"
      "attach(context) -> token: make a Span, SpanContext or None current (OpenTelemetry's\n"
      "Context when the bridge is on); undo with detach(token)." },
    { "context_of", py_context_of, METH_O,
      "context_of($module, span, /)\n--\n\n"
      "context_of(span) -> Span, SpanContext or None: what inject() takes for an ituna span\n"
      "or another OpenTelemetry provider's span (its SpanContext); None if it has none." },
    { "otel_span", py_otel_span, METH_O,
      "otel_span($module, context, /)\n--\n\n"
      "otel_span(context) -> an OpenTelemetry span for a Span or a (remote) SpanContext (ituna.otel)." },
    { "detach", py_detach, METH_O,
      "detach($module, token, /)\n--\n\n"
      "detach(token): undo attach()." },
    { "otel_bridge", (PyCFunction)(void (*)(void))py_otel_bridge, METH_FASTCALL,
      "otel_bridge($module, contextvar, span_key, context_type, span_context_factory, span_type,\n"
      "            nonrecording_span_type, baggage_key=None, getter=None, setter=None, /)\n--\n\n"
      "Share the current span with OpenTelemetry's context (called by ituna.otel)." },
    { "otel_inject", (PyCFunction)(void (*)(void))py_otel_inject, METH_FASTCALL | METH_KEYWORDS,
      "otel_inject($module, /, carrier, context=None, setter=None)\n--\n\n"
      "OpenTelemetry's TextMapPropagator.inject on the core (ituna.otel.Propagator)." },
    { "otel_extract", (PyCFunction)(void (*)(void))py_otel_extract, METH_FASTCALL | METH_KEYWORDS,
      "otel_extract($module, /, carrier, context=None, getter=None)\n--\n\n"
      "OpenTelemetry's TextMapPropagator.extract on the core (ituna.otel.Propagator)." },
    { "inject", (PyCFunction)(void (*)(void))py_inject, METH_FASTCALL | METH_KEYWORDS,
      "inject($module, /, carrier=None, context=None, *, baggage=None)\n--\n\n"
      "inject(carrier=None, context=None, *, baggage=None) -> carrier\n\n"
      "Write context (a Span or SpanContext; default: the current span) with the tracer's\n"
      "propagators (OTEL_PROPAGATORS: 'traceparent'/'tracestate', 'b3', 'X-B3-*'), and\n"
      "baggage (a dict of str) as W3C 'baggage', into carrier (a mutable mapping; default:\n"
      "a new dict) and return it. With no context, only the baggage is written." },
    { "extract_baggage", py_extract_baggage, METH_O,
      "extract_baggage($module, carrier, /)\n--\n\n"
      "extract_baggage(carrier) -> dict: the W3C 'baggage' header's entries (decoded), {} when\n"
      "absent or invalid." },
    { "extract", (PyCFunction)(void (*)(void))py_extract, METH_FASTCALL | METH_KEYWORDS,
      "extract($module, /, carrier, errors=False)\n--\n\n"
      "extract(carrier, errors=False) -> SpanContext or None\n\n"
      "Read the context with the tracer's propagators (OTEL_PROPAGATORS; W3C traceparent/\n"
      "tracestate by default, b3, b3multi) from carrier: a mapping (str or bytes values,\n"
      "keys matched case-insensitively) or a list of (key, value) pairs such as Kafka\n"
      "headers. Returns None for a missing or invalid traceparent. With errors=True\n"
      "returns (context_or_None, reason_or_None): the reason says why the context is None,\n"
      "or, with a context, why an invalid tracestate was dropped." },
    { "traceparent_parse", py_traceparent_parse, METH_O,
      "traceparent_parse($module, value, /)\n--\n\n"
      "traceparent_parse(value) -> SpanContext: strict W3C parse; invalid input raises\n"
      "ituna.ConfigError (a ValueError) carrying the reason." },
    { "config_entries", (PyCFunction)(void (*)(void))py_config_entries, METH_VARARGS | METH_KEYWORDS,
      "config_entries($module, /, config=None, schema=None, env=True, settings=())\n--\n\n"
      "config_entries(...) -> [(section, key, value or None)]: a configuration loaded as ituna.init()\n"
      "loads it (errors raise ConfigError): every known key, then the keys set in open sections." },
    { "mock_cluster_start", py_mock_cluster_start, METH_VARARGS,
      "mock_cluster_start($module, n_brokers, partitions, /)\n--\n\n"
      "Start librdkafka's built-in test cluster: a capsule for ituna.EmbeddedBroker." },
    { "mock_cluster_bootstrap", py_mock_cluster_bootstrap, METH_O,
      "mock_cluster_bootstrap($module, cluster, /)\n--\n\n"
      "The bootstrap address of a running test cluster (StateError once stopped)." },
    { "mock_cluster_create_topic", py_mock_cluster_create_topic, METH_VARARGS,
      "mock_cluster_create_topic($module, cluster, topic, partitions, /)\n--\n\n"
      "Create a topic on the test cluster (an existing one is kept)." },
    { "mock_cluster_stop", py_mock_cluster_stop, METH_O,
      "mock_cluster_stop($module, cluster, /)\n--\n\n"
      "Stop the test cluster. Idempotent." },
    { "err2name", py_err2name, METH_O,
      "err2name($module, code, /)\n--\n\n"
      "err2name(code) -> str: the core's enum name of an error code." },
    { "set_log_handler", py_set_log_handler, METH_O,
      "set_log_handler($module, fn, /)\n--\n\n"
      "set_log_handler(fn(level:int, message:str) or None): route the core's diagnostics." },
    { "set_log_level", py_set_log_level, METH_O,
      "set_log_level($module, level, /)\n--\n\n"
      "set_log_level(level:int): 0 debug .. 4 none." },
    { NULL, NULL, 0, NULL },
};

/* ---- init ------------------------------------------------------------------- */

static int add_type(PyObject *m, PyTypeObject **slot, PyType_Spec *spec) {
    *slot = (PyTypeObject *)PyType_FromModuleAndSpec(m, spec, NULL);
    if (!*slot) return -1;
    return PyModule_AddType(m, *slot);
}

/* The exceptions, defined in ituna/_errors.py, as module attributes and in st. */
static int add_exceptions(PyObject *m, module_state *st) {
    PyObject **const slots[] = { &st->Error,        &st->ConfigError,   &st->KafkaError,
                                 &st->TimeoutError, &st->DeliveryError, &st->MalformedPayload,
                                 &st->StateError };
    static const char *const names[] = { "Error",         "ConfigError",      "KafkaError", "TimeoutError",
                                         "DeliveryError", "MalformedPayload", "StateError" };
    PyObject *mod = PyImport_ImportModule("ituna._errors");
    int rc = mod ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < sizeof names / sizeof names[0]; i++)
        if (!(*slots[i] = PyObject_GetAttrString(mod, names[i])) ||
            PyModule_AddObjectRef(m, names[i], *slots[i]) < 0)
            rc = -1;
    Py_XDECREF(mod);
    return rc;
}

static int module_exec(PyObject *m) {
    module_state *st = state_of_module(m);
    if (add_type(m, &st->SpanContextType, &SpanContext_spec) < 0) return -1;
    if (add_type(m, &st->SpanType, &Span_spec) < 0) return -1;
    if (add_type(m, &st->TracerType, &Tracer_spec) < 0) return -1;
    if (add_type(m, &st->ProducerType, &Producer_spec) < 0) return -1;
    if (add_type(m, &st->ConsumerType, &Consumer_spec) < 0) return -1;
    if (add_type(m, &st->MessageType, &Message_spec) < 0) return -1;

    if (add_exceptions(m, st) < 0) return -1;

    st->current_msg = PyContextVar_New("ituna.current_message", NULL);
    if (!st->current_msg) return -1;
    st->current = PyContextVar_New("ituna.current_span", NULL);
    if (!st->current || PyModule_AddObjectRef(m, "current_var", st->current) < 0) return -1;

    PyObject *weakref = PyImport_ImportModule("_weakrefset");
    if (!weakref) return -1;
    st->live = PyObject_CallMethod(weakref, "WeakSet", NULL);
    Py_DECREF(weakref);
    if (!st->live || PyModule_AddObjectRef(m, "live_clients", st->live) < 0) return -1;
    PyObject *sup = PyImport_ImportModule("ituna._support");
    if (!sup) return -1;
    st->json_encode = PyObject_GetAttrString(sup, "encode");
    st->json_loads = PyObject_GetAttrString(sup, "loads");
    st->fast_loads = PyObject_GetAttrString(sup, "fast_loads");
    st->exception_fields = PyObject_GetAttrString(sup, "exception_fields");
    st->fast_dumps = PyObject_GetAttrString(sup, "fast_dumps");
    st->delivery_report = PyObject_GetAttrString(sup, "delivery_report");
    st->delivery_failed = PyObject_GetAttrString(sup, "delivery_failed");
    st->from_core = PyObject_GetAttrString(sup, "from_core");
    PyObject *report_type = PyObject_GetAttrString(sup, "DeliveryReport");
    Py_DECREF(sup);
    int rc = report_type ? PyModule_AddObjectRef(m, "DeliveryReport", report_type) : -1;
    Py_XDECREF(report_type);
    if (rc < 0 || !st->json_encode || !st->json_loads || !st->fast_loads || !st->fast_dumps ||
        !st->exception_fields || !st->delivery_report || !st->delivery_failed || !st->from_core)
        return -1;
    if (st->fast_loads == Py_None) Py_CLEAR(st->fast_loads);
    if (st->fast_dumps == Py_None) Py_CLEAR(st->fast_dumps);
    st->str_traceparent = PyUnicode_InternFromString("traceparent");
    st->str_tracestate = PyUnicode_InternFromString("tracestate");
    st->str_baggage = PyUnicode_InternFromString("baggage");
    if (!st->str_traceparent || !st->str_tracestate || !st->str_baggage) return -1;
    st->empty_tuple = PyTuple_New(0);
    if (!st->empty_tuple) return -1;

    if (PyModule_AddStringConstant(m, "CORE_VERSION", ituna_version()) < 0) return -1;
    /* the librdkafka actually loaded (a wheel links its own; a source build the system's) */
    if (PyModule_AddStringConstant(m, "RDKAFKA_VERSION", rd_kafka_version_str()) < 0) return -1;
    return 0;
}

/* module_state holds only object references (module.h), each visited and cleared
 * here: a field added there needs no line here. */
#define STATE_REFS (sizeof(module_state) / sizeof(PyObject *))

static int module_traverse(PyObject *m, visitproc visit, void *arg) {
    PyObject **refs = (PyObject **)state_of_module(m);
    for (size_t i = 0; i < STATE_REFS; i++) Py_VISIT(refs[i]);
    return 0;
}

static int module_clear(PyObject *m) {
    module_state *st = state_of_module(m);
    if (st->default_tracer) ituna_tracer_set_global(NULL);
    PyObject **refs = (PyObject **)st;
    for (size_t i = 0; i < STATE_REFS; i++) Py_CLEAR(refs[i]);
    return 0;
}

static void module_free(void *m) {
    module_clear((PyObject *)m);
}

static PyModuleDef_Slot module_slots[] = {
    { Py_mod_exec, module_exec },
    { 0, NULL },
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ituna._core",
    .m_doc = "C extension of ituna: tracer, spans, W3C propagation and traced Kafka clients\n"
             "on the ituna-core C library. Use the `ituna` package, not this module.",
    .m_size = sizeof(module_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__core(void) {
    return PyModuleDef_Init(&module_def);
}
