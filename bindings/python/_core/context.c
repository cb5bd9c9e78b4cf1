/* context.c - SpanContext (an immutable W3C context value), the current-span
 * ContextVar lookup, and inject/extract over Python carriers. */
#include "module.h"

#include <strings.h>

PyObject *context_new(module_state *st, const ituna_span_context *c) {
    SpanContextObject *o = PyObject_New(SpanContextObject, st->SpanContextType);
    if (!o) return NULL;
    memcpy(o->trace_id, c->trace_id, 16);
    memcpy(o->span_id, c->span_id, 8);
    o->trace_flags = c->trace_flags;
    o->is_remote = c->is_remote;
    o->hash = -1;
    o->tracestate = NULL;
    if (c->tracestate_len) {
        o->tracestate = PyUnicode_FromStringAndSize(c->tracestate, c->tracestate_len);
        if (!o->tracestate) {
            Py_DECREF(o);
            return NULL;
        }
    }
    return (PyObject *)o;
}

static int fill_tracestate(PyObject *ts, ituna_span_context *out) {
    out->tracestate_len = 0;
    out->tracestate[0] = 0;
    if (!ts) return 0;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(ts, &n);
    if (!s) return -1;
    if (n > ITUNA_TRACESTATE_MAX) n = ITUNA_TRACESTATE_MAX; /* validated at creation; defensive */
    memcpy(out->tracestate, s, (size_t)n);
    out->tracestate[n] = 0;
    out->tracestate_len = (uint16_t)n;
    return 0;
}

const ituna_span_context *context_from_object(module_state *st, PyObject *o, ituna_span_context *tmp) {
    if (Py_IS_TYPE(o, st->SpanType) || PyObject_TypeCheck(o, st->SpanType)) {
        SpanObject *s = span_target(o);
        if (s->span) return ituna_span_get_context(s->span);
        memcpy(tmp->trace_id, s->trace_id, 16);
        memcpy(tmp->span_id, s->span_id, 8);
        tmp->trace_flags = s->trace_flags;
        tmp->is_remote = s->is_remote;
        if (fill_tracestate(s->tracestate, tmp) < 0) return NULL;
        return tmp;
    }
    if (Py_IS_TYPE(o, st->SpanContextType)) {
        SpanContextObject *c = (SpanContextObject *)o;
        memcpy(tmp->trace_id, c->trace_id, 16);
        memcpy(tmp->span_id, c->span_id, 8);
        tmp->trace_flags = c->trace_flags;
        tmp->is_remote = c->is_remote;
        if (fill_tracestate(c->tracestate, tmp) < 0) return NULL;
        return tmp;
    }
    PyErr_Format(PyExc_TypeError, "expected a Span or SpanContext, not %.100s", Py_TYPE(o)->tp_name);
    return NULL;
}

/* An OpenTelemetry SpanContext of another provider's span, into tmp: its hex ids,
 * flags, is_remote and tracestate header as _support.otel_context reads them (None
 * when it has none). NULL if invalid. */
static const ituna_span_context *from_otel(PyObject *sc, ituna_span_context *tmp) {
    PyObject *args = PyTuple_Pack(1, sc), *f = args ? call_support("otel_context", args, NULL) : NULL;
    const char *tid, *sid, *ts, *why = NULL;
    int flags, remote;
    int ok = f && f != Py_None && PyArg_ParseTuple(f, "ssipz", &tid, &sid, &flags, &remote, &ts) &&
             ituna_span_context_from_hex(tid, sid, flags, NULL, tmp, &why) == ITUNA_OK;
    if (ok) tmp->is_remote = (uint8_t)remote;
    if (ok && ts) ituna_tracestate_parse(ts, strlen(ts), tmp, &why); /* an invalid one alone is dropped */
    Py_XDECREF(args);
    Py_XDECREF(f);
    PyErr_Clear();
    return ok ? tmp : NULL;
}

const ituna_span_context *context_of_any(module_state *st, PyObject *o, ituna_span_context *tmp) {
    if (!o || o == Py_None) return NULL;
    const ituna_span_context *c = NULL;
    if (PyObject_TypeCheck(o, st->SpanType) || Py_IS_TYPE(o, st->SpanContextType)) {
        c = context_from_object(st, o, tmp);
    } else if (st->otel_cv) { /* another provider's span (e.g. the SDK's) */
        PyObject *sc = PyObject_CallMethod(o, "get_span_context", NULL);
        if (sc) c = from_otel(sc, tmp);
        Py_XDECREF(sc);
    }
    if (!c) PyErr_Clear();
    return c;
}

/* The OTel current Context (new reference) or NULL. */
static PyObject *otel_context(module_state *st) {
    PyObject *v = NULL;
    if (PyContextVar_Get(st->otel_cv, NULL, &v) < 0) PyErr_Clear();
    if (v && !PyDict_Check(v)) Py_CLEAR(v);
    return v;
}

/* The current-span object (borrowed from *hold, which the caller releases): OTel's
 * Context first when bridged, then ituna's own ContextVar (spans made current
 * before the bridge was turned on). */
static PyObject *current_object(module_state *st, PyObject **hold) {
    *hold = NULL;
    if (st->otel_cv) {
        PyObject *ctx = otel_context(st);
        PyObject *o = ctx ? PyDict_GetItemWithError(ctx, st->otel_key) : NULL;
        if (o) {
            *hold = ctx;
            return o;
        }
        PyErr_Clear();
        Py_XDECREF(ctx);
    }
    PyObject *v = NULL;
    if (PyContextVar_Get(st->current, NULL, &v) < 0) PyErr_Clear();
    *hold = v;
    return v;
}

const ituna_span_context *context_current(module_state *st, ituna_span_context *tmp) {
    PyObject *hold;
    PyObject *o = current_object(st, &hold);
    const ituna_span_context *c = context_of_any(st, o, tmp);
    Py_XDECREF(hold); /* the ContextVar keeps a live span's object alive */
    return c;
}

PyObject *context_current_object(module_state *st) {
    PyObject *hold;
    PyObject *o = current_object(st, &hold);
    PyObject *r;
    if (!o || o == Py_None) {
        r = Py_NewRef(Py_None);
    } else if (PyObject_TypeCheck(o, st->SpanType)) {
        SpanObject *s = (SpanObject *)o;
        if (s->owner)
            r = Py_NewRef(s->owner);
        else if (s->is_remote) /* a remote context made current */
            r = PyObject_GetAttrString(o, "context");
        else
            r = Py_NewRef(o);
    } else if (Py_IS_TYPE(o, st->SpanContextType)) {
        r = Py_NewRef(o);
    } else {
        ituna_span_context tmp;
        const ituna_span_context *c = context_of_any(st, o, &tmp);
        r = c ? context_new(st, c) : Py_NewRef(Py_None);
    }
    Py_XDECREF(hold);
    return r;
}

/* ---- OpenTelemetry bridge --------------------------------------------------- */

PyObject *otel_span_context(module_state *st, const ituna_span_context *c, int is_remote) {
    char t[33], s[17];
    ituna_trace_id_hex(c, t);
    ituna_span_id_hex(c, s);
    PyObject *tid = PyLong_FromString(t, NULL, 16), *sid = tid ? PyLong_FromString(s, NULL, 16) : NULL;
    PyObject *ts = c->tracestate_len ? PyUnicode_FromStringAndSize(c->tracestate, c->tracestate_len)
                                     : Py_NewRef(Py_None);
    PyObject *r = NULL;
    if (sid && ts) {
        PyObject *args[5] = { tid, sid, PyLong_FromLong(c->trace_flags), ts, PyBool_FromLong(is_remote) };
        if (args[2]) r = PyObject_Vectorcall(st->otel_sc_factory, args, 5, NULL);
        Py_XDECREF(args[2]);
        Py_DECREF(args[4]);
    }
    Py_XDECREF(tid);
    Py_XDECREF(sid);
    Py_XDECREF(ts);
    return r;
}

static PyObject *otel_remote_span(module_state *st, const ituna_span_context *c);

/* What goes under OTel's span key for o: an OTel-shaped object. An ituna.Span gets
 * a view (same methods, acting on it); a SpanContext a non-recording remote span. */
static PyObject *otel_value(module_state *st, PyObject *o) {
    if (o == Py_None || PyObject_TypeCheck(o, st->otel_span_type) ||
        PyObject_TypeCheck(o, st->otel_nonrec_type))
        return Py_NewRef(o);
    if (Py_IS_TYPE(o, st->SpanType)) {
        PyTypeObject *tp = ((SpanObject *)o)->recording ? st->otel_span_type : st->otel_nonrec_type;
        SpanObject *v = (SpanObject *)tp->tp_alloc(tp, 0); /* zeroed */
        if (!v) return NULL;
        v->tracer = Py_NewRef(((SpanObject *)o)->tracer);
        v->owner = Py_NewRef(o);
        return (PyObject *)v;
    }
    ituna_span_context tmp;
    const ituna_span_context *c = context_from_object(st, o, &tmp);
    return c ? otel_remote_span(st, c) : NULL;
}

/* A non-recording OTel-shaped span carrying the remote context c. */
static PyObject *otel_remote_span(module_state *st, const ituna_span_context *c) {
    SpanObject *v = (SpanObject *)st->otel_nonrec_type->tp_alloc(st->otel_nonrec_type, 0);
    if (!v) return NULL;
    v->tracer = Py_NewRef(Py_None);
    memcpy(v->trace_id, c->trace_id, 16);
    memcpy(v->span_id, c->span_id, 8);
    v->trace_flags = c->trace_flags;
    v->is_remote = 1;
    if (c->tracestate_len &&
        !(v->tracestate = PyUnicode_FromStringAndSize(c->tracestate, c->tracestate_len))) {
        Py_DECREF(v);
        return NULL;
    }
    return (PyObject *)v;
}

PyObject *context_attach(module_state *st, PyObject *o) {
    if (!st->otel_cv) return PyContextVar_Set(st->current, o);
    PyObject *val = otel_value(st, o);
    if (!val) return NULL;
    PyObject *cur = otel_context(st);
    /* a Context is a dict subclass whose Python-level setters refuse changes; it is
     * built here like opentelemetry.context.set_value() does, without the copy calls */
    PyObject *nc = st->otel_ctx_type->tp_new(st->otel_ctx_type, st->empty_tuple, NULL);
    PyObject *tok = NULL;
    if (nc && (!cur || PyDict_Update(nc, cur) == 0) && PyDict_SetItem(nc, st->otel_key, val) == 0)
        tok = PyContextVar_Set(st->otel_cv, nc);
    Py_XDECREF(nc);
    Py_XDECREF(cur);
    Py_DECREF(val);
    return tok;
}

void context_detach(module_state *st, PyObject *token) {
    PyObject *et, *ev, *tb; /* never mask the caller's error */
    PyErr_Fetch(&et, &ev, &tb);
    /* a token from another Context (the span crossed threads or tasks) cannot be
     * reset there; the other Context is left as it was */
    if (!st->otel_cv || PyContextVar_Reset(st->otel_cv, token) < 0) {
        PyErr_Clear();
        if (PyContextVar_Reset(st->current, token) < 0) PyErr_Clear();
    }
    PyErr_Restore(et, ev, tb);
}

static ituna_baggage *baggage_from(PyObject *d);

/* The baggage of an OTel Context (values sent as their str()); NULL when it has
 * none, or with an exception set and *failed when it cannot be sent. */
static ituna_baggage *baggage_of_ctx(module_state *st, PyObject *ctx, int *failed) {
    *failed = 0;
    PyObject *d = ctx && st->otel_baggage_key ? PyDict_GetItemWithError(ctx, st->otel_baggage_key) : NULL;
    if (!d || !PyDict_Check(d) || !PyDict_GET_SIZE(d)) {
        *failed = PyErr_Occurred() != NULL;
        return NULL;
    }
    PyObject *strs = PyDict_New(), *k, *v;
    Py_ssize_t pos = 0;
    while (strs && PyDict_Next(d, &pos, &k, &v)) {
        PyObject *sv = PyObject_Str(v);
        if (!sv || PyDict_SetItem(strs, k, sv) < 0) Py_CLEAR(strs);
        Py_XDECREF(sv);
    }
    ituna_baggage *bag = strs ? baggage_from(strs) : NULL;
    Py_XDECREF(strs);
    *failed = bag == NULL;
    return bag;
}

ituna_baggage *context_baggage(module_state *st) {
    if (!st->otel_cv || !st->otel_baggage_key) return NULL;
    PyObject *ctx = otel_context(st);
    int failed;
    ituna_baggage *bag = baggage_of_ctx(st, ctx, &failed);
    Py_XDECREF(ctx);
    PyErr_Clear(); /* a baggage that cannot be sent never stops a publish */
    return bag;
}

PyObject *py_attach(PyObject *m, PyObject *o) {
    module_state *st = state_of_module(m);
    if (o != Py_None && !PyObject_TypeCheck(o, st->SpanType) && !Py_IS_TYPE(o, st->SpanContextType))
        return PyErr_Format(PyExc_TypeError, "context must be a Span, a SpanContext or None, not %.100s",
                            Py_TYPE(o)->tp_name);
    return context_attach(st, o);
}

PyObject *py_context_of(PyObject *m, PyObject *o) {
    module_state *st = state_of_module(m);
    if (PyObject_TypeCheck(o, st->SpanType) || Py_IS_TYPE(o, st->SpanContextType)) return Py_NewRef(o);
    ituna_span_context tmp;
    const ituna_span_context *c = context_of_any(st, o, &tmp);
    return c ? context_new(st, c) : Py_NewRef(Py_None);
}

PyObject *py_otel_span(PyObject *m, PyObject *o) {
    module_state *st = state_of_module(m);
    if (!st->otel_span_type) return PyErr_Format(PyExc_RuntimeError, "the OpenTelemetry bridge is off");
    if (!PyObject_TypeCheck(o, st->SpanType) && !Py_IS_TYPE(o, st->SpanContextType))
        return PyErr_Format(PyExc_TypeError, "expected a Span or SpanContext, not %.100s",
                            Py_TYPE(o)->tp_name);
    return otel_value(st, o);
}

PyObject *py_detach(PyObject *m, PyObject *token) {
    context_detach(state_of_module(m), token);
    Py_RETURN_NONE;
}

PyObject *py_otel_bridge(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    module_state *st = state_of_module(m);
    if (nargs < 6 || nargs > 9 || !PyType_Check(args[2]) || !PyType_Check(args[4]) || !PyType_Check(args[5]))
        return PyErr_Format(PyExc_TypeError,
                            "otel_bridge(contextvar, span_key, Context, span_context_factory, Span, "
                            "NonRecordingSpan)");
    if (!PyType_IsSubtype((PyTypeObject *)args[4], st->SpanType) ||
        !PyType_IsSubtype((PyTypeObject *)args[5], st->SpanType) ||
        ((PyTypeObject *)args[4])->tp_basicsize != sizeof(SpanObject) ||
        ((PyTypeObject *)args[5])->tp_basicsize != sizeof(SpanObject))
        return PyErr_Format(PyExc_TypeError, "span types must be ituna.Span subclasses with __slots__ = ()");
    Py_XSETREF(st->otel_cv, Py_NewRef(args[0]));
    Py_XSETREF(st->otel_key, Py_NewRef(args[1]));
    Py_XSETREF(st->otel_ctx_type, (PyTypeObject *)Py_NewRef(args[2]));
    Py_XSETREF(st->otel_sc_factory, Py_NewRef(args[3]));
    Py_XSETREF(st->otel_span_type, (PyTypeObject *)Py_NewRef(args[4]));
    Py_XSETREF(st->otel_nonrec_type, (PyTypeObject *)Py_NewRef(args[5]));
    if (nargs >= 7 && args[6] != Py_None) Py_XSETREF(st->otel_baggage_key, Py_NewRef(args[6]));
    if (nargs == 9) {
        Py_XSETREF(st->otel_getter, Py_NewRef(args[7]));
        Py_XSETREF(st->otel_setter, Py_NewRef(args[8]));
    }
    Py_RETURN_NONE;
}

/* ---- SpanContext type ------------------------------------------------------- */

static PyObject *sc_new(PyTypeObject *tp, PyObject *args, PyObject *kw) {
    static char *kwlist[] = { "trace_id", "span_id", "trace_flags", "tracestate", "is_remote", NULL };
    const char *tid, *sid, *ts = NULL; /* "s"/"z": an embedded NUL is a ValueError, never cut at */
    int flags = ITUNA_TRACE_FLAG_SAMPLED, remote = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "ss|izp:SpanContext", kwlist, &tid, &sid, &flags, &ts,
                                     &remote))
        return NULL;
    ituna_span_context c;
    const char *reason = NULL;
    if (ituna_span_context_from_hex(tid, sid, flags, ts, &c, &reason) != ITUNA_OK)
        return PyErr_Format(PyExc_ValueError, "invalid span context: %s", reason ? reason : "parse error");
    c.is_remote = (uint8_t)remote;
    return context_new(state_of_type(tp), &c);
}

static void sc_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    Py_CLEAR(((SpanContextObject *)self)->tracestate);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *sc_trace_id(PyObject *self, void *c) {
    (void)c;
    char buf[32];
    ituna_hex_encode(((SpanContextObject *)self)->trace_id, 16, buf);
    return PyUnicode_FromStringAndSize(buf, 32);
}

static PyObject *sc_span_id(PyObject *self, void *c) {
    (void)c;
    char buf[16];
    ituna_hex_encode(((SpanContextObject *)self)->span_id, 8, buf);
    return PyUnicode_FromStringAndSize(buf, 16);
}

static PyObject *sc_flags(PyObject *self, void *c) {
    (void)c;
    return PyLong_FromLong(((SpanContextObject *)self)->trace_flags);
}

static PyObject *sc_sampled(PyObject *self, void *c) {
    (void)c;
    return PyBool_FromLong(((SpanContextObject *)self)->trace_flags & ITUNA_TRACE_FLAG_SAMPLED);
}

static PyObject *sc_remote(PyObject *self, void *c) {
    (void)c;
    return PyBool_FromLong(((SpanContextObject *)self)->is_remote);
}

static PyObject *sc_tracestate(PyObject *self, void *c) {
    (void)c;
    PyObject *ts = ((SpanContextObject *)self)->tracestate;
    return ts ? Py_NewRef(ts) : PyUnicode_FromString("");
}

static PyObject *sc_traceparent(PyObject *self, void *c) {
    (void)c;
    module_state *st = state_of_type(Py_TYPE(self));
    ituna_span_context tmp;
    const ituna_span_context *ctx = context_from_object(st, self, &tmp);
    if (!ctx) return NULL;
    char buf[64];
    size_t n = ituna_traceparent_format(ctx, buf, sizeof buf);
    return PyUnicode_FromStringAndSize(buf, (Py_ssize_t)n);
}

static Py_hash_t sc_hash(PyObject *self) {
    SpanContextObject *o = (SpanContextObject *)self;
    if (o->hash != -1) return o->hash;
    Py_uhash_t h = 1469598103934665603ULL;
    for (int i = 0; i < 16; i++) h = (h ^ o->trace_id[i]) * 1099511628211ULL;
    for (int i = 0; i < 8; i++) h = (h ^ o->span_id[i]) * 1099511628211ULL;
    h ^= o->trace_flags;
    if (h == (Py_uhash_t)-1) h = (Py_uhash_t)-2;
    o->hash = (Py_hash_t)h;
    return o->hash;
}

static PyObject *sc_richcompare(PyObject *a, PyObject *b, int op) {
    if ((op != Py_EQ && op != Py_NE) || !Py_IS_TYPE(b, Py_TYPE(a))) Py_RETURN_NOTIMPLEMENTED;
    SpanContextObject *x = (SpanContextObject *)a, *y = (SpanContextObject *)b;
    int eq = memcmp(x->trace_id, y->trace_id, 16) == 0 && memcmp(x->span_id, y->span_id, 8) == 0 &&
             x->trace_flags == y->trace_flags;
    if (eq) {
        PyObject *ta = x->tracestate, *tb = y->tracestate;
        if (!ta != !tb)
            eq = 0;
        else if (ta) {
            int r = PyUnicode_Compare(ta, tb);
            if (r == -1 && PyErr_Occurred()) return NULL;
            eq = r == 0;
        }
    }
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static PyGetSetDef sc_getset[] = {
    { "trace_id", sc_trace_id, NULL, "Trace id, 32 lowercase hex chars.", NULL },
    { "span_id", sc_span_id, NULL, "Span id, 16 lowercase hex chars.", NULL },
    { "trace_flags", sc_flags, NULL, "W3C trace-flags byte (bit 0: sampled).", NULL },
    { "sampled", sc_sampled, NULL, "True when the sampled flag is set.", NULL },
    { "is_remote", sc_remote, NULL, "True when extracted from a carrier.", NULL },
    { "tracestate", sc_tracestate, NULL, "W3C tracestate value ('' when none).", NULL },
    { "traceparent", sc_traceparent, NULL, "The W3C traceparent header value.", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyType_Slot sc_slots[] = {
    { Py_tp_doc, "SpanContext(trace_id, span_id, trace_flags=1, tracestate=None, is_remote=True)\n--\n\n"
                 "An immutable W3C trace context: usable as parent= and with inject()." },
    { Py_tp_new, sc_new },
    { Py_tp_dealloc, sc_dealloc },
    { Py_tp_getset, sc_getset },
    { Py_tp_repr, support_repr },
    { Py_tp_hash, sc_hash },
    { Py_tp_richcompare, sc_richcompare },
    { 0, NULL },
};

PyType_Spec SpanContext_spec = {
    .name = "ituna.SpanContext",
    .basicsize = sizeof(SpanContextObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = sc_slots,
};

/* The default tracer's propagators (OTEL_PROPAGATORS), or the default set. */
static unsigned props_of(module_state *st) {
    return ituna_tracer_propagators(st->default_tracer ? ((TracerObject *)st->default_tracer)->tracer : NULL);
}

/* ---- inject / extract -------------------------------------------------------- */

typedef struct {
    PyObject *obj;
    int failed;
} set_carrier;

static void carrier_set(void *carrier, const char *key, const char *value) {
    set_carrier *c = carrier;
    if (c->failed) return;
    PyObject *k = PyUnicode_FromString(key);
    PyObject *v = k ? PyUnicode_FromString(value) : NULL;
    if (!v || PyObject_SetItem(c->obj, k, v) < 0) c->failed = 1;
    Py_XDECREF(k);
    Py_XDECREF(v);
}

/* A core baggage from a dict of str -> str (or None). NULL with an exception. */
static ituna_baggage *baggage_from(PyObject *d) {
    ituna_baggage *bag = ituna_baggage_new();
    if (!bag) return (ituna_baggage *)PyErr_NoMemory();
    if (d == Py_None) return bag;
    if (!PyDict_Check(d)) {
        ituna_baggage_destroy(bag);
        PyErr_Format(PyExc_TypeError, "baggage must be a dict of str, not %.100s", Py_TYPE(d)->tp_name);
        return NULL;
    }
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(d, &pos, &k, &v)) {
        Py_ssize_t kn = 0, vn = 0;
        const char *ks = PyUnicode_Check(k) ? PyUnicode_AsUTF8AndSize(k, &kn) : NULL;
        const char *vs = ks && PyUnicode_Check(v) ? PyUnicode_AsUTF8AndSize(v, &vn) : NULL;
        ituna_err err = ITUNA_ERR_INVALID_ARG;
        /* lengths, not C strings: an embedded NUL is refused, never cut at */
        if (vs && strlen(ks) == (size_t)kn && strlen(vs) == (size_t)vn)
            err = ituna_baggage_set(bag, ks, vs, NULL);
        if (err != ITUNA_OK) {
            ituna_baggage_destroy(bag);
            if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "invalid baggage entry %R: %R", k, v);
            return NULL;
        }
    }
    return bag;
}

/* Write ctx (may be NULL) and bag (may be NULL) into carrier (a new reference:
 * returned, or released with an exception) with the tracer's propagators. */
static PyObject *inject_into(module_state *st, PyObject *carrier, const ituna_span_context *ctx,
                             const ituna_baggage *bag) {
    unsigned props = props_of(st);
    if ((!ctx || !ituna_span_context_is_valid(ctx)) && !bag) return carrier;
    if (PyDict_CheckExact(carrier) && !bag &&
        (props & ~ITUNA_PROPAGATOR_BAGGAGE) == ITUNA_PROPAGATOR_TRACECONTEXT) {
        /* fast path for the common dict carrier: same output as ituna_inject() */
        char buf[64];
        size_t n = ituna_traceparent_format(ctx, buf, sizeof buf);
        /* the value is ASCII by construction: build it without the generic decoder */
        PyObject *v = PyUnicode_New((Py_ssize_t)n, 127);
        if (v) memcpy(PyUnicode_1BYTE_DATA(v), buf, n);
        if (!v || PyDict_SetItem(carrier, st->str_traceparent, v) < 0) goto fail_v;
        Py_DECREF(v);
        if (ctx->tracestate_len) {
            v = PyUnicode_FromStringAndSize(ctx->tracestate, ctx->tracestate_len);
            if (!v || PyDict_SetItem(carrier, st->str_tracestate, v) < 0) goto fail_v;
            Py_DECREF(v);
        }
        return carrier;
    fail_v:
        Py_XDECREF(v);
        Py_DECREF(carrier);
        return NULL;
    }
    set_carrier sc = { carrier, 0 };
    ituna_span_context none;
    memset(&none, 0, sizeof none);
    ituna_err err = ituna_inject_with(props, ctx ? ctx : &none, bag, carrier_set, &sc);
    if (sc.failed) {
        Py_DECREF(carrier);
        return NULL;
    }
    if (err != ITUNA_OK && err != ITUNA_ERR_NOT_FOUND) {
        Py_DECREF(carrier);
        return raise_err(st, err, NULL);
    }
    return carrier;
}

PyObject *py_inject(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = { "carrier", "context", "baggage" };
    PyObject *a[3] = { NULL, NULL, NULL };
    if (fast_args("inject", args, nargs, kwnames, names, 3, 2, a) < 0) return NULL;
    module_state *st = state_of_module(m);
    ituna_span_context tmp;
    const ituna_span_context *ctx;
    if (a[1] && a[1] != Py_None) {
        ctx = context_from_object(st, a[1], &tmp);
        if (!ctx) return NULL;
    } else {
        ctx = context_current(st, &tmp);
    }
    ituna_baggage *bag = NULL;
    if (a[2] && a[2] != Py_None && !(bag = baggage_from(a[2]))) return NULL;
    PyObject *carrier = !a[0] || a[0] == Py_None ? PyDict_New() : Py_NewRef(a[0]);
    PyObject *r = carrier ? inject_into(st, carrier, ctx, bag) : NULL;
    ituna_baggage_destroy(bag);
    return r;
}

/* OpenTelemetry's TextMapPropagator.inject(carrier, context=None, setter=default_setter):
 * the Context's span and baggage, with the tracer's propagators (ituna.otel.Propagator). */
PyObject *py_otel_inject(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = { "carrier", "context", "setter" };
    PyObject *a[3] = { NULL, NULL, NULL };
    if (fast_args("inject", args, nargs, kwnames, names, 3, 3, a) < 0) return NULL;
    module_state *st = state_of_module(m);
    if (!st->otel_cv) return PyErr_Format(PyExc_RuntimeError, "the OpenTelemetry bridge is off");
    PyObject *ctx = a[1] && a[1] != Py_None ? Py_NewRef(a[1]) : otel_context(st);
    if (ctx && !PyDict_Check(ctx)) {
        Py_DECREF(ctx);
        return PyErr_Format(PyExc_TypeError, "context must be an opentelemetry Context or None");
    }
    PyObject *span = ctx ? PyDict_GetItemWithError(ctx, st->otel_key) : NULL, *out = NULL;
    ituna_span_context tmp;
    const ituna_span_context *sc = span ? context_of_any(st, span, &tmp) : NULL;
    int failed = PyErr_Occurred() != NULL, plain = !a[2] || a[2] == Py_None || a[2] == st->otel_setter;
    ituna_baggage *bag = failed ? NULL : baggage_of_ctx(st, ctx, &failed);
    PyObject *carrier = failed ? NULL : plain ? Py_NewRef(a[0]) : PyDict_New();
    if (carrier) out = inject_into(st, carrier, sc, bag); /* sc may point into ctx's span: ctx still held */
    ituna_baggage_destroy(bag);
    Py_XDECREF(ctx);
    if (out && !plain) { /* another setter: each header through setter.set(carrier, key, value) */
        PyObject *k, *v;
        Py_ssize_t pos = 0;
        while (out && PyDict_Next(out, &pos, &k, &v)) {
            PyObject *r = PyObject_CallMethod(a[2], "set", "OOO", a[0], k, v);
            if (!r) Py_CLEAR(out);
            Py_XDECREF(r);
        }
    }
    if (!out) return NULL;
    Py_DECREF(out);
    Py_RETURN_NONE;
}

/* Carrier lookup for extract: values are kept alive in `keep` until extract ends. */
typedef struct {
    PyObject *obj;
    PyObject *keep; /* list, created lazily */
    int failed;
    module_state *st;
    PyObject *getter; /* an OpenTelemetry Getter, or NULL: obj is read directly */
    int exact;        /* dict keys as given only (OpenTelemetry's default getter) */
} get_carrier;

static const char *value_chars(get_carrier *c, PyObject *v, size_t *len) {
    Py_ssize_t n = 0;
    const char *p = NULL;
    if (PyUnicode_Check(v))
        p = PyUnicode_AsUTF8AndSize(v, &n);
    else if (PyBytes_Check(v))
        p = PyBytes_AS_STRING(v), n = PyBytes_GET_SIZE(v);
    else if (PyByteArray_Check(v))
        p = PyByteArray_AS_STRING(v), n = PyByteArray_GET_SIZE(v);
    else if (v == Py_None)
        return NULL;
    else if (PyList_Check(v) || PyTuple_Check(v)) { /* e.g. a multi-valued header: first wins */
        if (PySequence_Fast_GET_SIZE(v) == 0) return NULL;
        return value_chars(c, PySequence_Fast_GET_ITEM(v, 0), len);
    } else {
        PyErr_Format(PyExc_TypeError, "carrier values must be str or bytes, not %.100s", Py_TYPE(v)->tp_name);
        c->failed = 1;
        return NULL;
    }
    if (!p) c->failed = 1;
    *len = (size_t)n; /* the value's length: an embedded NUL is part of it */
    return p;
}

static int key_matches(PyObject *k, const char *key) {
    if (PyUnicode_Check(k)) {
        const char *s = PyUnicode_AsUTF8(k);
        if (!s) {
            PyErr_Clear();
            return 0;
        }
        return strcasecmp(s, key) == 0;
    }
    if (PyBytes_Check(k)) return strcasecmp(PyBytes_AS_STRING(k), key) == 0;
    return 0;
}

static int keep(get_carrier *c, PyObject *v) {
    if (!c->keep && !(c->keep = PyList_New(0))) return -1;
    return PyList_Append(c->keep, v);
}

static const char *carrier_get(void *carrier, const char *key, size_t *len) {
    get_carrier *c = carrier;
    if (c->failed) return NULL;
    PyObject *o = c->obj;
    if (c->getter) { /* getter.get(carrier, key) -> a list of str, or None */
        PyObject *v = PyObject_CallMethod(c->getter, "get", "Os", o, key);
        const char *s = !v || keep(c, v) < 0 ? NULL : value_chars(c, v, len);
        if (!v || (!s && PyErr_Occurred())) c->failed = 1;
        Py_XDECREF(v);
        return s;
    }
    if (PyDict_Check(o)) {
        /* the interned names hash once; other keys go through a temporary str */
        PyObject *name = strcmp(key, "traceparent") == 0  ? c->st->str_traceparent
                         : strcmp(key, "tracestate") == 0 ? c->st->str_tracestate
                         : strcmp(key, "baggage") == 0    ? c->st->str_baggage
                                                          : NULL;
        PyObject *v = name ? PyDict_GetItemWithError(o, name) : PyDict_GetItemString(o, key); /* borrowed */
        if (v) return value_chars(c, v, len);
        if (PyErr_Occurred()) {
            c->failed = 1;
            return NULL;
        }
        if (c->exact) return NULL;
        PyObject *k, *val;
        Py_ssize_t pos = 0;
        while (PyDict_Next(o, &pos, &k, &val))
            if (key_matches(k, key)) return value_chars(c, val, len);
        return NULL;
    }
    if (PyList_Check(o) || PyTuple_Check(o)) { /* Kafka-style [(key, value), ...] */
        Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *it = PySequence_Fast_GET_ITEM(o, i);
            if (!PyTuple_Check(it) || PyTuple_GET_SIZE(it) != 2) {
                PyErr_SetString(PyExc_TypeError, "carrier list items must be (key, value) pairs");
                c->failed = 1;
                return NULL;
            }
            if (key_matches(PyTuple_GET_ITEM(it, 0), key))
                return value_chars(c, PyTuple_GET_ITEM(it, 1), len);
        }
        return NULL;
    }
    if (PyMapping_Check(o)) {
        PyObject *v = PyMapping_GetItemString(o, key);
        if (!v) {
            if (PyErr_ExceptionMatches(PyExc_KeyError))
                PyErr_Clear();
            else
                c->failed = 1;
            return NULL;
        }
        const char *s = keep(c, v) < 0 ? NULL : value_chars(c, v, len);
        Py_DECREF(v);
        if (!s && PyErr_Occurred()) c->failed = 1;
        return s;
    }
    PyErr_Format(PyExc_TypeError, "carrier must be a mapping or a list of (key, value) pairs, not %.100s",
                 Py_TYPE(o)->tp_name);
    c->failed = 1;
    return NULL;
}

PyObject *py_extract_baggage(PyObject *m, PyObject *carrier) {
    return baggage_of_carrier(state_of_module(m), carrier);
}

/* Add bag's entries (values decoded) to the dict d. -1 with an exception. */
static int baggage_into(const ituna_baggage *bag, PyObject *d) {
    const char *k, *val, *meta;
    for (size_t i = 0; i < ituna_baggage_count(bag); i++) {
        ituna_baggage_entry(bag, i, &k, &val, &meta);
        PyObject *pv = PyUnicode_DecodeUTF8(val, (Py_ssize_t)strlen(val), "replace");
        int rc = pv ? PyDict_SetItemString(d, k, pv) : -1;
        Py_XDECREF(pv);
        if (rc < 0) return -1;
    }
    return 0;
}

PyObject *baggage_of_carrier(module_state *st, PyObject *carrier) {
    get_carrier gc = { carrier, NULL, 0, st, NULL, 0 };
    size_t n = 0;
    ituna_baggage *bag = ituna_baggage_new();
    if (!bag) return PyErr_NoMemory();
    const char *v = carrier == Py_None ? NULL : carrier_get(&gc, "baggage", &n);
    PyObject *d = gc.failed ? NULL : PyDict_New();
    const char *why = NULL;
    if (d && v && (props_of(st) & ITUNA_PROPAGATOR_BAGGAGE) &&
        ituna_baggage_parse(bag, v, n, &why) == ITUNA_OK && baggage_into(bag, d) < 0)
        Py_CLEAR(d);
    Py_XDECREF(gc.keep);
    ituna_baggage_destroy(bag);
    return d;
}

PyObject *py_extract(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = { "carrier", "errors" };
    PyObject *a[2] = { NULL, NULL };
    if (fast_args("extract", args, nargs, kwnames, names, 2, 2, a) < 0) return NULL;
    if (!a[0]) return PyErr_Format(PyExc_TypeError, "extract() missing required argument 'carrier'");
    int errors = a[1] ? PyObject_IsTrue(a[1]) : 0;
    if (errors < 0) return NULL;
    module_state *st = state_of_module(m);
    get_carrier gc = { a[0], NULL, 0, st, NULL, 0 };
    ituna_span_context ctx;
    const char *reason = NULL;
    ituna_err err;
    if (a[0] == Py_None) {
        err = ITUNA_ERR_NOT_FOUND;
        reason = "no carrier";
    } else {
        err = ituna_extract_with(props_of(st), carrier_get, &gc, &ctx, NULL, &reason);
    }
    Py_XDECREF(gc.keep);
    if (gc.failed) return NULL;
    PyObject *res;
    if (err == ITUNA_OK) {
        res = context_new(st, &ctx);
        if (!res) return NULL;
    } else {
        res = Py_NewRef(Py_None);
        if (!reason) reason = ituna_err2str(err);
    }
    if (!errors) return res;
    /* on success a reason means an invalid tracestate was dropped (W3C) */
    PyObject *r = !reason ? Py_NewRef(Py_None) : PyUnicode_FromString(reason);
    if (!r) {
        Py_DECREF(res);
        return NULL;
    }
    PyObject *t = PyTuple_Pack(2, res, r);
    Py_DECREF(res);
    Py_DECREF(r);
    return t;
}

/* OpenTelemetry's TextMapPropagator.extract(carrier, context=None, getter=default_getter):
 * context (default: an empty one) plus the carrier's remote span and baggage. */
PyObject *py_otel_extract(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = { "carrier", "context", "getter" };
    PyObject *a[3] = { NULL, NULL, NULL };
    if (fast_args("extract", args, nargs, kwnames, names, 3, 3, a) < 0) return NULL;
    module_state *st = state_of_module(m);
    if (!st->otel_cv) return PyErr_Format(PyExc_RuntimeError, "the OpenTelemetry bridge is off");
    PyObject *base = a[1] && a[1] != Py_None ? a[1] : NULL, *getter = a[2] && a[2] != Py_None ? a[2] : NULL;
    if (base && !PyDict_Check(base))
        return PyErr_Format(PyExc_TypeError, "context must be an opentelemetry Context or None");
    if (!getter || getter == st->otel_getter) /* the default getter is carrier.get(key): read it here */
        getter = PyDict_Check(a[0]) || PyList_Check(a[0]) || PyTuple_Check(a[0]) ? NULL : st->otel_getter;
    get_carrier gc = { a[0], NULL, 0, st, getter, PyDict_Check(a[0]) };
    unsigned props = props_of(st);
    /* a dict read as given has no baggage to parse when its key is absent */
    int want_bag =
        (props & ITUNA_PROPAGATOR_BAGGAGE) && (!gc.exact || PyDict_GetItemWithError(a[0], st->str_baggage));
    ituna_baggage *bag = want_bag ? ituna_baggage_new() : NULL;
    ituna_span_context sc;
    const char *reason = NULL;
    ituna_err err = ituna_extract_with(props, carrier_get, &gc, &sc, bag, &reason);
    Py_XDECREF(gc.keep);
    PyObject *span = NULL, *bagd = NULL, *res = NULL, *old;
    if (gc.failed || (err == ITUNA_OK && !(span = otel_remote_span(st, &sc)))) goto done;
    if (bag && ituna_baggage_count(bag) && st->otel_baggage_key) { /* merged over the context's own */
        old = base ? PyDict_GetItemWithError(base, st->otel_baggage_key) : NULL;
        bagd = old && PyDict_Check(old) ? PyDict_Copy(old) : PyErr_Occurred() ? NULL : PyDict_New();
        if (!bagd || baggage_into(bag, bagd) < 0) goto done;
    }
    if (!span && !bagd) {
        res = base ? Py_NewRef(base) : st->otel_ctx_type->tp_new(st->otel_ctx_type, st->empty_tuple, NULL);
        goto done;
    }
    /* built like context_attach does: Context's Python-level setters refuse changes */
    res = st->otel_ctx_type->tp_new(st->otel_ctx_type, st->empty_tuple, NULL);
    if (res &&
        ((base && PyDict_Update(res, base) < 0) || (span && PyDict_SetItem(res, st->otel_key, span) < 0) ||
         (bagd && PyDict_SetItem(res, st->otel_baggage_key, bagd) < 0)))
        Py_CLEAR(res);
done:
    ituna_baggage_destroy(bag);
    Py_XDECREF(span);
    Py_XDECREF(bagd);
    return res;
}

PyObject *py_traceparent_parse(PyObject *m, PyObject *arg) {
    module_state *st = state_of_module(m);
    Py_ssize_t n;
    const char *s;
    if (PyUnicode_Check(arg))
        s = PyUnicode_AsUTF8AndSize(arg, &n);
    else if (PyBytes_Check(arg)) {
        s = PyBytes_AS_STRING(arg);
        n = PyBytes_GET_SIZE(arg);
    } else
        return PyErr_Format(PyExc_TypeError, "traceparent must be str or bytes, not %.100s",
                            Py_TYPE(arg)->tp_name);
    if (!s) return NULL;
    ituna_span_context ctx;
    const char *reason = NULL;
    ituna_err err = ituna_traceparent_parse(s, (size_t)n, &ctx, &reason);
    if (err != ITUNA_OK) return raise_err(st, err, reason);
    return context_new(st, &ctx);
}
