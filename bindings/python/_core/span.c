/* span.c - the Tracer and Span types: tracer setup from config, span start with
 * the parent taken from the current-span ContextVar, the span context manager
 * (current inside `with`, error + exception recorded on the way out), and the
 * span's attribute, event, status and link methods. */
#include "module.h"

/* ---- helpers ------------------------------------------------------------------ */

/* An enum given as an IntEnum/int in 0..n-1 (*out set, returns 1) or its name (*name
 * set, returns 0; the core reads it); -1 with TypeError for another type. */
static int enum_arg(PyObject *o, int n, const char *what, const char *type, int *out, const char **name) {
    if (PyLong_Check(o) && !PyBool_Check(o)) {
        long k = PyLong_AsLong(o);
        if (k == -1 && PyErr_Occurred()) return -1;
        *out = k >= 0 && k < n ? (int)k : -1;
        *name = NULL;
        return 1;
    }
    if (PyUnicode_Check(o)) return (*name = PyUnicode_AsUTF8(o)) ? 0 : -1;
    PyErr_Format(PyExc_TypeError, "%s must be an ituna.%s, int or str, not %.100s", what, type,
                 Py_TYPE(o)->tp_name);
    return -1;
}

static int parse_kind(PyObject *o, ituna_span_kind *out) {
    int k;
    const char *name;
    *out = ITUNA_SPAN_KIND_INTERNAL;
    if (!o || o == Py_None) return 0;
    switch (enum_arg(o, 6, "kind", "SpanKind", &k, &name)) {
    case -1: return -1;
    case 1: *out = (ituna_span_kind)k; break;
    default: k = ituna_span_kind_from_name(name, out) == ITUNA_OK ? 0 : -1;
    }
    if (k >= 0) return 0;
    PyErr_Format(PyExc_ValueError, "unknown kind %R (internal, server, client, producer, consumer)", o);
    return -1;
}

static int parse_status(PyObject *o, ituna_status_code *out) {
    int k;
    const char *name;
    switch (enum_arg(o, 3, "status", "StatusCode", &k, &name)) {
    case -1: return -1;
    case 1: *out = (ituna_status_code)k; break;
    default: k = ituna_status_code_from_name(name, out) == ITUNA_OK ? 0 : -1;
    }
    if (k >= 0) return 0;
    PyErr_Format(PyExc_ValueError, "unknown status %R (unset, ok, error)", o);
    return -1;
}

/* Nanoseconds since the epoch from an int (ns) or None (0 = now). */
static int parse_time_ns(PyObject *o, uint64_t *out, const char *what) {
    *out = 0;
    if (!o || o == Py_None) return 0;
    if (!PyLong_Check(o) || PyBool_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be int nanoseconds since the epoch, not %.100s", what,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}

static const char *str_arg(PyObject *o, const char *what) {
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be str, not %.100s", what, Py_TYPE(o)->tp_name);
        return NULL;
    }
    return PyUnicode_AsUTF8(o);
}

int span_record_pyexc(module_state *st, ituna_span *span, PyObject *exc, int set_status) {
    /* _support.exception_fields: (type name, message, stack trace, status description) */
    PyObject *f = PyObject_CallOneArg(st->exception_fields, exc);
    const char *v[4];
    int n = 0;
    while (f && n < 4 && (v[n] = PyUnicode_AsUTF8(PyTuple_GET_ITEM(f, n)))) n++;
    if (n == 4) {
        ituna_span_record_exception(span, v[0], v[1], v[2]);
        if (set_status) ituna_span_set_status(span, ITUNA_STATUS_ERROR, v[3]);
    }
    Py_XDECREF(f);
    return n == 4 ? 0 : -1;
}

/* ---- Span ----------------------------------------------------------------------- */

/* Keep the ids for .context, end the span at end_time (0: now) unless borrowed. */
static void span_detach_at(SpanObject *s, uint64_t end_time) {
    if (!s->span) return;
    const ituna_span_context *c = ituna_span_get_context(s->span);
    memcpy(s->trace_id, c->trace_id, 16);
    memcpy(s->span_id, c->span_id, 8);
    s->trace_flags = c->trace_flags;
    s->recording = 0;
    if (c->tracestate_len && !s->tracestate) {
        s->tracestate = PyUnicode_FromStringAndSize(c->tracestate, c->tracestate_len);
        if (!s->tracestate) PyErr_Clear(); /* out of memory: the context loses only its tracestate */
    }
    if (!s->borrowed) ituna_span_end(s->span, end_time);
    s->span = NULL;
}

void span_detach(SpanObject *s) {
    span_detach_at(s, 0);
}

static SpanObject *span_alloc(PyTypeObject *tp, ituna_span *span, PyObject *tracer, int borrowed) {
    /* ituna.otel's Python subclasses are GC types: tp_alloc tracks them */
    SpanObject *s = (tp->tp_flags & Py_TPFLAGS_HAVE_GC) ? (SpanObject *)tp->tp_alloc(tp, 0)
                                                        : PyObject_New(SpanObject, tp);
    if (!s) return NULL;
    s->span = span;
    s->owner = NULL;
    s->cm_args = NULL;
    s->is_remote = 0;
    s->otel_flags = 0;
    s->tracer = Py_NewRef(tracer);
    s->token = NULL;
    s->ctx_obj = NULL;
    s->tracestate = NULL;
    s->borrowed = (uint8_t)borrowed;
    s->recording = (uint8_t)ituna_span_is_recording(span);
    return s;
}

PyObject *span_wrap_borrowed(module_state *st, ituna_span *span, PyObject *tracer) {
    return (PyObject *)span_alloc(st->SpanType, span, tracer, 1);
}

static void span_dealloc(PyObject *self) {
    SpanObject *s = (SpanObject *)self;
    PyTypeObject *tp = Py_TYPE(self);
    /* A span never ended is ended when collected, so the core frees it and the
     * tracer can shut down; an exported span's end time is then the GC time. */
    if (s->span && !s->borrowed) ituna_span_end(s->span, 0);
    s->span = NULL;
    Py_CLEAR(s->token);
    Py_CLEAR(s->ctx_obj);
    Py_CLEAR(s->tracestate);
    Py_CLEAR(s->tracer);
    Py_CLEAR(s->owner);
    Py_CLEAR(s->cm_args);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *span_enter(PyObject *self, PyObject *Py_UNUSED(a)) {
    SpanObject *s = (SpanObject *)self;
    module_state *st = state_of_type(Py_TYPE(self));
    if (s->otel_flags & SPAN_OTEL_NO_ATTACH) return Py_NewRef(self);
    if (s->token) {
        PyErr_SetString(st->StateError,
                        "span is already entered (a span can be used in one `with` at a time)");
        return NULL;
    }
    s->token = context_attach(st, self);
    if (!s->token) return NULL;
    return Py_NewRef(self);
}

static PyObject *span_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    SpanObject *s = (SpanObject *)self;
    module_state *st = state_of_type(Py_TYPE(self));
    PyObject *exc = nargs >= 2 ? args[1] : Py_None;
    int fl = s->otel_flags;
    /* OpenTelemetry records only Exception subclasses (not GeneratorExit and the like) */
    if ((fl & SPAN_OTEL) && exc != Py_None && !PyErr_GivenExceptionMatches(exc, PyExc_Exception))
        exc = Py_None;
    if (s->span && exc != Py_None && s->recording) {
        /* never mask the user's error */
        if (!(fl & SPAN_OTEL_NO_RECORD) &&
            span_record_pyexc(st, s->span, exc, !(fl & SPAN_OTEL_NO_STATUS)) < 0)
            PyErr_Clear();
        else if ((fl & SPAN_OTEL_NO_RECORD) && !(fl & SPAN_OTEL_NO_STATUS))
            ituna_span_set_status(s->span, ITUNA_STATUS_ERROR, NULL);
    } else if (s->span && exc != Py_None && !(fl & SPAN_OTEL_NO_STATUS)) {
        ituna_span_set_status(s->span, ITUNA_STATUS_ERROR, NULL);
    }
    if (s->token) {
        PyObject *tok = s->token;
        s->token = NULL;
        context_detach(st, tok);
        Py_DECREF(tok);
    }
    if (!(fl & SPAN_OTEL_NO_END)) span_detach(s);
    Py_RETURN_FALSE;
}

static PyObject *span_end(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = { "end_time" };
    PyObject *a[1];
    if (fast_args("end", args, nargs, kwnames, names, 1, 1, a) < 0) return NULL;
    SpanObject *s = span_target(self);
    uint64_t t;
    if (parse_time_ns(a[0], &t, "end_time") < 0) return NULL;
    if (s->span && !s->borrowed) span_detach_at(s, t);
    Py_RETURN_NONE; /* ending twice, or a message's span, is a no-op */
}

static PyObject *span_set_attribute(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "set_attribute() takes 2 arguments (%zd given)", nargs);
    SpanObject *s = span_target(self);
    attrbuf b;
    ituna_attr a;
    attrbuf_init(&b);
    b.lenient = (((SpanObject *)self)->otel_flags | s->otel_flags) & SPAN_OTEL;
    /* convert even when not recording, so a wrong type is reported the same way */
    if (attr_convert(&b, args[0], args[1], &a) < 0) {
        int dropped = attr_dropped(&b);
        attrbuf_free(&b);
        if (dropped) Py_RETURN_NONE;
        return NULL;
    }
    if (s->span && s->recording) ituna_span_set_attr(s->span, &a);
    attrbuf_free(&b);
    Py_RETURN_NONE;
}

static PyObject *span_set_attributes(PyObject *self, PyObject *dict) {
    SpanObject *s = span_target(self);
    attrbuf b;
    attrbuf_init(&b);
    b.lenient = (((SpanObject *)self)->otel_flags | s->otel_flags) & SPAN_OTEL;
    if (attrbuf_from_dict(&b, dict) < 0) {
        attrbuf_free(&b);
        return NULL;
    }
    if (s->span && s->recording)
        for (size_t i = 0; i < b.n; i++) ituna_span_set_attr(s->span, &b.attrs[i]);
    attrbuf_free(&b);
    Py_RETURN_NONE;
}

static PyObject *span_add_event(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = { "name", "attributes", "timestamp" };
    PyObject *a[3];
    if (fast_args("add_event", args, nargs, kwnames, names, 3, 3, a) < 0) return NULL;
    if (!a[0]) return PyErr_Format(PyExc_TypeError, "add_event() missing required argument 'name'");
    SpanObject *s = span_target(self);
    const char *name = str_arg(a[0], "event name");
    uint64_t t;
    if (!name || parse_time_ns(a[2], &t, "timestamp") < 0) return NULL;
    attrbuf b;
    attrbuf_init(&b);
    b.lenient = (((SpanObject *)self)->otel_flags | s->otel_flags) & SPAN_OTEL;
    if (attrbuf_from_dict(&b, a[1]) < 0) {
        attrbuf_free(&b);
        return NULL;
    }
    ituna_err err = ITUNA_OK;
    if (s->span && s->recording) err = ituna_span_add_event(s->span, name, b.attrs, b.n, t);
    attrbuf_free(&b);
    if (err != ITUNA_OK) return raise_err(state_of_type(Py_TYPE(self)), err, NULL);
    Py_RETURN_NONE;
}

static PyObject *span_add_link(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = { "context", "attributes" };
    PyObject *a[2];
    if (fast_args("add_link", args, nargs, kwnames, names, 2, 2, a) < 0) return NULL;
    if (!a[0]) return PyErr_Format(PyExc_TypeError, "add_link() missing required argument 'context'");
    SpanObject *s = span_target(self);
    module_state *st = state_of_type(Py_TYPE(self));
    ituna_span_context tmp;
    const ituna_span_context *c = context_from_object(st, a[0], &tmp);
    if (!c) return NULL;
    attrbuf b;
    attrbuf_init(&b);
    b.lenient = (((SpanObject *)self)->otel_flags | s->otel_flags) & SPAN_OTEL;
    if (attrbuf_from_dict(&b, a[1]) < 0) {
        attrbuf_free(&b);
        return NULL;
    }
    ituna_err err = ITUNA_OK;
    if (s->span && s->recording) err = ituna_span_add_link(s->span, c, b.attrs, b.n);
    attrbuf_free(&b);
    if (err != ITUNA_OK) return raise_err(st, err, NULL);
    Py_RETURN_NONE;
}

static PyObject *span_set_status(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = { "status", "description" };
    PyObject *a[2];
    if (fast_args("set_status", args, nargs, kwnames, names, 2, 2, a) < 0) return NULL;
    if (!a[0]) return PyErr_Format(PyExc_TypeError, "set_status() missing required argument 'status'");
    ituna_status_code code;
    if (parse_status(a[0], &code) < 0) return NULL;
    const char *desc = NULL;
    if (a[1] && a[1] != Py_None && !(desc = str_arg(a[1], "description"))) return NULL;
    SpanObject *s = span_target(self);
    if (s->span) ituna_span_set_status(s->span, code, desc);
    Py_RETURN_NONE;
}

static PyObject *span_record_exception(PyObject *self, PyObject *exc) {
    if (!PyExceptionInstance_Check(exc))
        return PyErr_Format(PyExc_TypeError, "record_exception() needs an exception instance, not %.100s",
                            Py_TYPE(exc)->tp_name);
    SpanObject *s = span_target(self);
    if (s->span && s->recording && span_record_pyexc(state_of_type(Py_TYPE(self)), s->span, exc, 0) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *span_update_name(PyObject *self, PyObject *name) {
    const char *n = str_arg(name, "span name");
    if (!n) return NULL;
    SpanObject *s = span_target(self);
    if (s->span) {
        ituna_err err = ituna_span_update_name(s->span, n);
        if (err != ITUNA_OK) return raise_err(state_of_type(Py_TYPE(self)), err, NULL);
    }
    Py_RETURN_NONE;
}

static PyObject *span_get_context(PyObject *self, void *c) {
    (void)c;
    SpanObject *s = span_target(self);
    if (s->ctx_obj) return Py_NewRef(s->ctx_obj);
    module_state *st = state_of_type(Py_TYPE(self));
    ituna_span_context tmp;
    const ituna_span_context *ctx = context_from_object(st, self, &tmp);
    if (!ctx) return NULL;
    PyObject *o = context_new(st, ctx);
    if (!o) return NULL;
    ((SpanContextObject *)o)->is_remote = s->is_remote;
    s->ctx_obj = Py_NewRef(o);
    return o;
}

static PyObject *span_get_recording(PyObject *self, void *c) {
    (void)c;
    SpanObject *s = span_target(self);
    return PyBool_FromLong(s->span && s->recording);
}

static PyObject *span_get_ended(PyObject *self, void *c) {
    (void)c;
    return PyBool_FromLong(span_target(self)->span == NULL);
}

/* get_span_context() of the OTel-shaped subclasses (ituna/otel.py). */
static PyObject *span_otel_context(PyObject *self, PyObject *Py_UNUSED(a)) {
    module_state *st = state_of_type(Py_TYPE(self));
    if (!st->otel_sc_factory) return PyErr_Format(PyExc_RuntimeError, "the OpenTelemetry bridge is off");
    ituna_span_context tmp;
    const ituna_span_context *ctx = context_from_object(st, self, &tmp);
    return ctx ? otel_span_context(st, ctx, span_target(self)->is_remote) : NULL;
}

/* _discard(): drop a span never entered, unexported and uncounted (ituna.otel's
 * start_as_current_span used as a decorator starts a span per call instead). */
static PyObject *span_discard(PyObject *self, PyObject *Py_UNUSED(a)) {
    SpanObject *s = (SpanObject *)self;
    ituna_span *sp = s->span;
    if (sp && !s->borrowed && !s->token) {
        s->borrowed = 1; /* detach copies the ids and leaves the span to us */
        span_detach(s);
        ituna_span_discard(sp);
    }
    Py_RETURN_NONE;
}

static PyMethodDef span_methods[] = {
    { "__enter__", span_enter, METH_NOARGS,
      "__enter__($self, /)\n--\n\n"
      "Make the span current in this context; returns the span." },
    { "__exit__", (PyCFunction)(void (*)(void))span_exit, METH_FASTCALL,
      "__exit__($self, exc_type=None, exc_value=None, traceback=None, /)\n--\n\n"
      "Restore the previous current span and end this one; an exception marks the span\n"
      "ERROR, is recorded as an event (type, message, stack) and propagates." },
    { "end", (PyCFunction)(void (*)(void))span_end, METH_FASTCALL | METH_KEYWORDS,
      "end($self, /, end_time=None)\n--\n\n"
      "end(end_time=None): end the span (end_time: ns since the epoch). Ending twice is a no-op." },
    { "set_attribute", (PyCFunction)(void (*)(void))span_set_attribute, METH_FASTCALL,
      "set_attribute($self, key, value, /)\n--\n\n"
      "set_attribute(key, value): value is str, bool, int, float or a homogeneous list of them." },
    { "set_attributes", span_set_attributes, METH_O,
      "set_attributes($self, attributes, /)\n--\n\n"
      "set_attributes(dict): set_attribute for each item." },
    { "add_event", (PyCFunction)(void (*)(void))span_add_event, METH_FASTCALL | METH_KEYWORDS,
      "add_event($self, /, name, attributes=None, timestamp=None)\n--\n\n"
      "add_event(name, attributes=None, timestamp=None): add a timed event (timestamp in ns)." },
    { "add_link", (PyCFunction)(void (*)(void))span_add_link, METH_FASTCALL | METH_KEYWORDS,
      "add_link($self, /, context, attributes=None)\n--\n\n"
      "add_link(context, attributes=None): link to another span's context." },
    { "set_status", (PyCFunction)(void (*)(void))span_set_status, METH_FASTCALL | METH_KEYWORDS,
      "set_status($self, /, status, description=None)\n--\n\n"
      "set_status(status, description=None): status is ituna.StatusCode or 'unset'/'ok'/'error'.\n"
      "OK is final; the description is kept with ERROR only (OpenTelemetry rules)." },
    { "record_exception", span_record_exception, METH_O,
      "record_exception($self, exc, /)\n--\n\n"
      "record_exception(exc): add an 'exception' event with exception.type, .message and\n"
      ".stacktrace. Does not change the status." },
    { "_otel_context", span_otel_context, METH_NOARGS,
      "_otel_context($self, /)\n--\n\n"
      "The span's context as an opentelemetry.trace.SpanContext (ituna.otel)." },
    { "_discard", span_discard, METH_NOARGS,
      "_discard($self, /)\n--\n\n"
      "Drop a span never entered: not exported, its start uncounted (ituna.otel)." },
    { "update_name", span_update_name, METH_O,
      "update_name($self, name, /)\n--\n\n"
      "update_name(name): rename the span." },
    { NULL, NULL, 0, NULL },
};

static PyMemberDef span_members[] = {
    { "_cm", T_OBJECT, offsetof(SpanObject, cm_args), READONLY,
      "start_as_current_span's arguments (ituna.otel), or None." },
    { NULL, 0, 0, 0, NULL },
};

static PyGetSetDef span_getset[] = {
    { "context", span_get_context, NULL, "The span's SpanContext (.trace_id, .span_id); valid after end too.",
      NULL },
    { "is_recording", span_get_recording, NULL, "True while the span records (sampled, not ended).", NULL },
    { "ended", span_get_ended, NULL, "True once the span has ended.", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyObject *span_new_refused(PyTypeObject *tp, PyObject *a, PyObject *k) {
    (void)a;
    (void)k;
    return PyErr_Format(PyExc_TypeError, "cannot create '%s' instances: use tracer.span()", tp->tp_name);
}

static PyType_Slot span_slots[] = {
    { Py_tp_doc, "A span started by Tracer.span(). Use it with `with` to make it current and end it\n"
                 "on exit, or call end(). A span that is garbage-collected unended is ended then." },
    { Py_tp_new, span_new_refused },
    { Py_tp_dealloc, span_dealloc },
    { Py_tp_methods, span_methods },
    { Py_tp_getset, span_getset },
    { Py_tp_members, span_members },
    { Py_tp_repr, support_repr },
    { 0, NULL },
};

PyType_Spec Span_spec = {
    .name = "ituna.Span",
    .basicsize = sizeof(SpanObject),
    /* a base type for ituna.otel's OpenTelemetry-shaped spans (__slots__ = ()) */
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_BASETYPE,
    .slots = span_slots,
};

/* ---- Tracer ---------------------------------------------------------------------- */

/* The configuration ituna.init() describes: application schema (path, else
 * $ITUNA_CONFIG_SCHEMA), then the file, the environment and the (key, value) settings,
 * from Tracer()'s arguments. NULL with an exception set on failure. */
static ituna_config *load_config(module_state *st, PyObject *args, PyObject *kw) {
    char errstr[ERRSTR_SIZE] = "";
    ituna_err err = ITUNA_ERR_NOMEM;
    PyObject *schema, *path, *settings;
    int env;
    const char **overrides = NULL;
    ituna_config *cfg = NULL;
    /* ituna/_support.py checks them: paths as file system bytes, the settings flattened */
    PyObject *r = call_support("Tracer", args, kw);
    if (!r || !PyArg_ParseTuple(r, "OOpO", &schema, &path, &env, &settings) ||
        !(overrides = str_array(settings)))
        goto done;
    if ((cfg = ituna_config_new()))
        err = ituna_config_load_host(cfg, schema == Py_None ? NULL : PyBytes_AS_STRING(schema),
                                     path == Py_None ? NULL : PyBytes_AS_STRING(path), env, overrides, errstr,
                                     sizeof errstr);
    if (err != ITUNA_OK) {
        raise_err(st, err, errstr);
        ituna_config_destroy(cfg);
        cfg = NULL;
    }
done:
    PyMem_Free(overrides);
    Py_XDECREF(r);
    return cfg;
}

static PyObject *tracer_new(PyTypeObject *tp, PyObject *args, PyObject *kw) {
    module_state *st = state_of_type(tp);
    char errstr[ERRSTR_SIZE] = "";
    ituna_err err = ITUNA_OK;
    ituna_tracer *t = NULL;
    PyObject *res = NULL;
    ituna_config *cfg = load_config(st, args, kw);
    if (!cfg) return NULL;
    Py_BEGIN_ALLOW_THREADS err = ituna_tracer_create(cfg, &t, errstr, sizeof errstr);
    Py_END_ALLOW_THREADS if (err != ITUNA_OK) goto done;
    TracerObject *o = (TracerObject *)tp->tp_alloc(tp, 0);
    if (!o) {
        Py_BEGIN_ALLOW_THREADS ituna_tracer_destroy(t);
        Py_END_ALLOW_THREADS goto done;
    }
    o->tracer = t;
    o->shut_down = 0;
    o->scope = NULL;
    o->parent = NULL;
    res = (PyObject *)o;
done:
    if (err != ITUNA_OK && !PyErr_Occurred()) raise_err(st, err, errstr);
    ituna_config_destroy(cfg);
    return res;
}

/* [(section, key, value or None)] of the effective configuration (every known key,
 * then the keys set in open sections), loaded as ituna.init() would. */
PyObject *py_config_entries(PyObject *module, PyObject *args, PyObject *kw) {
    ituna_config *cfg = load_config(state_of_module(module), args, kw);
    if (!cfg) return NULL;
    PyObject *out = PyList_New(0);
    size_t it[3] = { 0, 0, 0 };
    const char *sec, *key, *val;
    while (out && ituna_config_next_effective(cfg, it, &sec, &key, &val)) {
        /* surrogateescape: a value that is not UTF-8 reaches the caller, who can name it */
        PyObject *pv =
            val ? PyUnicode_DecodeUTF8(val, (Py_ssize_t)strlen(val), "surrogateescape") : Py_NewRef(Py_None);
        PyObject *t = pv ? Py_BuildValue("(ssN)", sec, key, pv) : NULL;
        if (!t || PyList_Append(out, t) < 0) Py_CLEAR(out);
        Py_XDECREF(t);
    }
    ituna_config_destroy(cfg);
    return out;
}

static void tracer_dealloc(PyObject *self) {
    TracerObject *o = (TracerObject *)self;
    PyTypeObject *tp = Py_TYPE(self);
    if (o->parent) { /* a scoped() view: the parent owns the core tracer */
        o->tracer = NULL;
        Py_CLEAR(o->parent);
    }
    if (o->tracer) {
        if (ituna_tracer_global() == o->tracer) ituna_tracer_set_global(NULL);
        ituna_tracer *t = o->tracer;
        o->tracer = NULL;
        Py_BEGIN_ALLOW_THREADS ituna_tracer_destroy(
            t); /* every Span holds a reference, so all spans have ended */
        Py_END_ALLOW_THREADS
    }
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* Start name on t with o and the attributes dict attrs (None: none). NULL with an
 * exception set. */
static ituna_span *start_span(module_state *st, TracerObject *t, const char *name, ituna_span_options *o,
                              PyObject *attrs, int lenient) {
    attrbuf b;
    attrbuf_init(&b);
    b.lenient = lenient;
    ituna_span *span = NULL;
    if (attrbuf_from_dict(&b, attrs) == 0) {
        o->attrs = b.attrs;
        o->n_attrs = b.n;
        o->scope = t->scope;
        ituna_err err = t->tracer ? ituna_span_start(t->tracer, name, o, &span) : ITUNA_ERR_STATE;
        if (err != ITUNA_OK) {
            span = NULL;
            raise_err(st, err, t->tracer ? NULL : "tracer is destroyed");
        }
    }
    attrbuf_free(&b);
    return span;
}

static PyObject *tracer_span(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = {
        "name", "attributes", "kind", "parent", "links", "start_time", "root"
    };
    PyObject *a[7];
    if (fast_args("span", args, nargs, kwnames, names, 7, 4, a) < 0) return NULL;
    if (!a[0]) return PyErr_Format(PyExc_TypeError, "span() missing required argument 'name'");
    TracerObject *t = (TracerObject *)self;
    module_state *st = state_of_type(Py_TYPE(self));
    const char *name = str_arg(a[0], "span name");
    if (!name) return NULL;
    ituna_span_options o;
    memset(&o, 0, sizeof o);
    if (parse_kind(a[2], &o.kind) < 0 || parse_time_ns(a[5], &o.start_time_ns, "start_time") < 0) return NULL;
    int root = 0;
    if (a[6] && (root = PyObject_IsTrue(a[6])) < 0) return NULL;
    ituna_span_context ptmp;
    ituna_span_context *links = NULL;
    if (a[3] && a[3] != Py_None) {
        if (!(o.parent = context_from_object(st, a[3], &ptmp))) return NULL;
    } else if (!root) {
        o.parent = context_current(st, &ptmp);
    }
    /* Python's current span lives in the ContextVar, never in the core's
     * thread-local, so with no parent this is a new trace. */
    o.root = o.parent == NULL;
    PyObject *res = NULL;
    if (a[4] && a[4] != Py_None) {
        PyObject *seq = PySequence_Fast(a[4], "links must be a sequence of SpanContext or Span");
        if (!seq) goto done;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        links = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *links);
        if (!links) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            goto done;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            const ituna_span_context *c =
                context_from_object(st, PySequence_Fast_GET_ITEM(seq, i), &links[i]);
            if (!c) {
                Py_DECREF(seq);
                goto done;
            }
            if (c != &links[i]) memcpy(&links[i], c, sizeof *c);
        }
        Py_DECREF(seq);
        o.links = links;
        o.n_links = (size_t)n;
    }
    ituna_span *span = start_span(st, t, name, &o, a[1], 0);
    if (span && !(res = (PyObject *)span_alloc(st->SpanType, span, self, 0))) ituna_span_end(span, 0);
done:
    PyMem_Free(links);
    return res;
}

/* _start(name, context, kind, attributes, start_time, flags): OpenTelemetry's
 * start_span for ituna.otel. context is an OTel Context (its span, if any, is the
 * parent; none: a new trace) or None (the current span); kind an ituna kind number;
 * flags SPAN_OTEL_*. Returns the OTel-shaped span type registered by the bridge. */
static PyObject *tracer_otel_start(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    TracerObject *t = (TracerObject *)self;
    module_state *st = state_of_type(Py_TYPE(self));
    if ((nargs != 6 && nargs != 7) || !st->otel_span_type)
        return PyErr_Format(PyExc_TypeError,
                            "_start(name, context, kind, attributes, start_time, flags, cm_args=None)");
    const char *name = str_arg(args[0], "span name");
    if (!name) return NULL;
    ituna_span_options o;
    memset(&o, 0, sizeof o);
    long kind = PyLong_AsLong(args[2]), flags = PyLong_AsLong(args[5]);
    if ((kind == -1 || flags == -1) && PyErr_Occurred()) return NULL;
    o.kind = kind >= 1 && kind <= 5 ? (ituna_span_kind)kind : ITUNA_SPAN_KIND_INTERNAL;
    if (parse_time_ns(args[4], &o.start_time_ns, "start_time") < 0) return NULL;
    ituna_span_context ptmp;
    PyObject *ctx = args[1];
    if (ctx == Py_None) {
        o.parent = context_current(st, &ptmp);
    } else if (PyDict_Check(ctx)) {
        PyObject *p = PyDict_GetItemWithError(ctx, st->otel_key);
        if (!p && PyErr_Occurred()) return NULL;
        o.parent = context_of_any(st, p, &ptmp);
    } else {
        return PyErr_Format(PyExc_TypeError, "context must be an opentelemetry Context or None, not %.100s",
                            Py_TYPE(ctx)->tp_name);
    }
    o.root = o.parent == NULL;
    PyObject *res = NULL;
    /* OTel's attributes may be any Mapping (e.g. BoundedAttributes) */
    PyObject *attrs = args[3], *tmpd = NULL;
    if (attrs != Py_None && !PyDict_Check(attrs)) {
        if (!(tmpd = PyDict_New()) || PyDict_Update(tmpd, attrs) < 0) goto done;
        attrs = tmpd;
    }
    ituna_span *span = start_span(st, t, name, &o, attrs, 1);
    if (!span) goto done;
    SpanObject *so =
        span_alloc(ituna_span_is_recording(span) ? st->otel_span_type : st->otel_nonrec_type, span, self, 0);
    if (!so) {
        ituna_span_end(span, 0);
        goto done;
    }
    so->otel_flags = (uint8_t)(flags | SPAN_OTEL);
    if (nargs == 7 && args[6] != Py_None) so->cm_args = Py_NewRef(args[6]);
    res = (PyObject *)so;
done:
    Py_XDECREF(tmpd);
    return res;
}

/* scoped(name, version=None, schema_url=None, attributes=None): a Tracer sharing this
 * one's core tracer whose spans carry that instrumentation scope (ituna.otel). */
static PyObject *tracer_scoped(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = { "name", "version", "schema_url", "attributes" };
    PyObject *a[4];
    if (fast_args("scoped", args, nargs, kwnames, names, 4, 4, a) < 0) return NULL;
    TracerObject *t = (TracerObject *)self;
    module_state *st = state_of_type(Py_TYPE(self));
    const char *name = a[0] ? str_arg(a[0], "scope name") : NULL;
    const char *ver = a[1] && a[1] != Py_None ? str_arg(a[1], "version") : NULL;
    const char *url = a[2] && a[2] != Py_None ? str_arg(a[2], "schema_url") : NULL;
    if (!name || (a[1] && a[1] != Py_None && !ver) || (a[2] && a[2] != Py_None && !url)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "scoped() missing required argument 'name'");
        return NULL;
    }
    if (!t->tracer) return PyErr_Format(st->StateError, "tracer is destroyed");
    attrbuf b;
    attrbuf_init(&b);
    const ituna_scope *sc = NULL;
    ituna_err err = attrbuf_from_dict(&b, a[3]) < 0
                        ? ITUNA_ERR_INVALID_ARG
                        : ituna_tracer_scope(t->tracer, name, ver, url, b.attrs, b.n, &sc);
    attrbuf_free(&b);
    if (PyErr_Occurred()) return NULL;
    if (err != ITUNA_OK) return raise_err(st, err, NULL);
    TracerObject *o = (TracerObject *)Py_TYPE(self)->tp_alloc(Py_TYPE(self), 0);
    if (!o) return NULL;
    o->tracer = t->tracer;
    o->scope = sc;
    o->parent = Py_NewRef(t->parent ? t->parent : self);
    return (PyObject *)o;
}

static PyObject *tracer_flush(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = { "timeout" };
    PyObject *a[1];
    if (fast_args("flush", args, nargs, kwnames, names, 1, 1, a) < 0) return NULL;
    int ms = timeout_ms_from(a[0], -1);
    if (ms == -2) return NULL;
    TracerObject *t = (TracerObject *)self;
    ituna_err err;
    Py_BEGIN_ALLOW_THREADS err = ituna_tracer_flush(t->tracer, ms);
    Py_END_ALLOW_THREADS if (err == ITUNA_OK) Py_RETURN_TRUE;
    if (err == ITUNA_ERR_TIMEOUT || err == ITUNA_ERR_STATE || err == ITUNA_ERR_EXPORT) Py_RETURN_FALSE;
    return raise_err(state_of_type(Py_TYPE(self)), err, NULL);
}

static PyObject *tracer_shutdown(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = { "timeout" };
    PyObject *a[1];
    if (fast_args("shutdown", args, nargs, kwnames, names, 1, 1, a) < 0) return NULL;
    int ms = timeout_ms_from(a[0], -1);
    if (ms == -2) return NULL;
    TracerObject *t = (TracerObject *)self;
    ituna_err err;
    Py_BEGIN_ALLOW_THREADS err = ituna_tracer_shutdown(t->tracer, ms);
    Py_END_ALLOW_THREADS t->shut_down = 1;
    if (err == ITUNA_OK) Py_RETURN_TRUE;
    if (err == ITUNA_ERR_TIMEOUT || err == ITUNA_ERR_EXPORT) Py_RETURN_FALSE;
    return raise_err(state_of_type(Py_TYPE(self)), err, NULL);
}

static PyObject *tracer_stats(PyObject *self, PyObject *Py_UNUSED(a)) {
    ituna_tracer_stats s;
    memset(&s, 0, sizeof s);
    ituna_tracer_get_stats(((TracerObject *)self)->tracer, &s);
    PyObject *d = PyDict_New();
    uint64_t v;
    const char *name;
    for (size_t i = 0; d && (name = ituna_tracer_stats_field(&s, i, &v)); i++) {
        PyObject *pv = PyLong_FromUnsignedLongLong(v);
        if (!pv || PyDict_SetItemString(d, name, pv) < 0) Py_CLEAR(d);
        Py_XDECREF(pv);
    }
    return d;
}

/* config_get/config_value(section, key, default=None) with the core's lookup. */
static PyObject *config_lookup(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                               const char *fname,
                               const char *(*lookup)(const ituna_config *, const char *, const char *)) {
    static const char *const names[] = { "section", "key", "default" };
    PyObject *a[3];
    if (fast_args(fname, args, nargs, kwnames, names, 3, 3, a) < 0) return NULL;
    if (!a[0] || !a[1]) return PyErr_Format(PyExc_TypeError, "%s(section, key, default=None)", fname);
    const char *sec = str_arg(a[0], "section"), *key = sec ? str_arg(a[1], "key") : NULL;
    if (!key) return NULL;
    const char *v = lookup(ituna_tracer_config(((TracerObject *)self)->tracer), sec, key);
    return v ? PyUnicode_FromString(v) : Py_NewRef(a[2] ? a[2] : Py_None);
}

static PyObject *tracer_config_get(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                   PyObject *kwnames) {
    return config_lookup(self, args, nargs, kwnames, "config_get", ituna_config_get);
}

static PyObject *tracer_config_value(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                     PyObject *kwnames) {
    return config_lookup(self, args, nargs, kwnames, "config_value", ituna_config_value);
}

static PyObject *tracer_config_section(PyObject *self, PyObject *arg) {
    const char *sec = str_arg(arg, "section");
    if (!sec) return NULL;
    const ituna_config *cfg = ituna_tracer_config(((TracerObject *)self)->tracer);
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    size_t it = 0;
    const char *k, *v;
    while (ituna_config_next(cfg, sec, &it, &k, &v)) {
        PyObject *pv = PyUnicode_FromString(v);
        if (!pv || PyDict_SetItemString(d, k, pv) < 0) {
            Py_XDECREF(pv);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(pv);
    }
    return d;
}

static PyObject *tracer_traced(PyObject *self, PyObject *args, PyObject *kw) {
    /* the decorator is Python-level code (ituna/_decorators.py: sync, async and generator
     * functions), called with this tracer first */
    PyObject *head = PyTuple_Pack(1, self), *full = head ? PySequence_Concat(head, args) : NULL;
    PyObject *r = full ? call_support("traced", full, kw) : NULL;
    Py_XDECREF(head);
    Py_XDECREF(full);
    return r;
}

static PyObject *tracer_service_name(PyObject *self, void *c) {
    (void)c;
    const char *n = ituna_tracer_service_name(((TracerObject *)self)->tracer);
    return PyUnicode_FromString(n ? n : "");
}

#define SPAN_DOC                                                                                             \
    "span(name, attributes=None, kind=None, parent=None, links=None, start_time=None, root=False) -> "       \
    "Span\n\n"                                                                                               \
    "Start a span. Its parent is `parent` (a Span or SpanContext) or else the current span\n"                \
    "of this thread/task (contextvars); root=True starts a new trace. Use the result with\n"                 \
    "`with` to make it current and end it on exit."

static PyMethodDef tracer_methods[] = {
    { "span", (PyCFunction)(void (*)(void))tracer_span, METH_FASTCALL | METH_KEYWORDS,
      "span($self, /, name, attributes=None, kind=None, parent=None, *, links=None, start_time=None, "
      "root=False)\n--\n\n" SPAN_DOC },
    { "start_span", (PyCFunction)(void (*)(void))tracer_span, METH_FASTCALL | METH_KEYWORDS,
      "start_span($self, /, name, attributes=None, kind=None, parent=None, *, links=None, start_time=None, "
      "root=False)\n--\n\n"
      "Same as span(): the span is current only inside `with`." },
    { "scoped", (PyCFunction)(void (*)(void))tracer_scoped, METH_FASTCALL | METH_KEYWORDS,
      "scoped($self, /, name, version=None, schema_url=None, attributes=None)\n--\n\n"
      "scoped(name, version=None, schema_url=None, attributes=None) -> Tracer: the same tracer\n"
      "(resource, sampler, export), its spans recorded under that instrumentation scope." },
    { "_start", (PyCFunction)(void (*)(void))tracer_otel_start, METH_FASTCALL,
      "_start($self, name, context, kind, attributes, start_time, flags, /)\n--\n\n"
      "OpenTelemetry's start_span for ituna.otel (see ituna/otel.py)." },
    { "flush", (PyCFunction)(void (*)(void))tracer_flush, METH_FASTCALL | METH_KEYWORDS,
      "flush($self, /, timeout=None)\n--\n\n"
      "flush(timeout=None) -> bool: export every ended span; False if spans were lost since the\n"
      "last flush (dropped, export failed, rejected: see stats()) or if the timeout (seconds;\n"
      "None: the configured export timeout) passed first. Releases the GIL." },
    { "shutdown", (PyCFunction)(void (*)(void))tracer_shutdown, METH_FASTCALL | METH_KEYWORDS,
      "shutdown($self, /, timeout=None)\n--\n\n"
      "shutdown(timeout=None) -> bool: flush, stop the export thread; False if any span this\n"
      "tracer ended was lost (see stats()) or the timeout passed. Idempotent." },
    { "stats", tracer_stats, METH_NOARGS,
      "stats($self, /)\n--\n\n"
      "stats() -> dict of the tracer's counters (spans_started, spans_dropped, ...)." },
    { "config_get", (PyCFunction)(void (*)(void))tracer_config_get, METH_FASTCALL | METH_KEYWORDS,
      "config_get($self, /, section, key, default=None)\n--\n\n"
      "config_get(section, key, default=None) -> str: a setting as loaded (file, env, overrides)." },
    { "config_value", (PyCFunction)(void (*)(void))tracer_config_value, METH_FASTCALL | METH_KEYWORDS,
      "config_value($self, /, section, key, default=None)\n--\n\n"
      "config_value(section, key, default=None) -> str: a setting as loaded, else the default of the core's\n"
      "or the registered application schema's table." },
    { "config_section", tracer_config_section, METH_O,
      "config_section($self, section, /)\n--\n\n"
      "config_section(section) -> dict of the keys set there." },
    { "traced", (PyCFunction)(void (*)(void))tracer_traced, METH_VARARGS | METH_KEYWORDS,
      "traced($self, /, name=None, attributes=None, kind=None)\n--\n\n"
      "traced(name=None, attributes=None, kind=None): decorator running the function inside\n"
      "`with self.span(name or function.__qualname__)`; works on async functions too." },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef tracer_getset[] = {
    { "service_name", tracer_service_name, NULL, "service.name of this tracer.", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyType_Slot tracer_slots[] = {
    { Py_tp_doc, "Tracer(config=None, env=True, settings=(), schema=None)\n--\n\n"
                 "Build a tracer from an INI file, then the OTEL_* environment (env=True), then\n"
                 "settings: (key, value) string pairs for ituna_config_set. Use ituna.init()." },
    { Py_tp_new, tracer_new },
    { Py_tp_dealloc, tracer_dealloc },
    { Py_tp_methods, tracer_methods },
    { Py_tp_getset, tracer_getset },
    { 0, NULL },
};

PyType_Spec Tracer_spec = {
    .name = "ituna.Tracer",
    .basicsize = sizeof(TracerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = tracer_slots,
};
