/* kafka_producer.c - ituna.Producer (its DeliveryReport is ituna/_support.py's) over the core's
 * producer: reports are served on the calling thread (publish, flush, close), so
 * on_delivery runs where the GIL is; failures are kept and attributed by the core
 * and only turned into DeliveryError here. Blocking calls run without the GIL, in
 * slices so Ctrl-C is seen. */
#include "module.h" /* Python.h first */

#include <math.h>
#include <string.h>

/* ---- Producer ---------------------------------------------------------------------- */

typedef struct {
    CLIENT_HEAD
    PyObject *on_delivery;
} ProducerObject;

/* A DeliveryReport of r, built by ituna/_support.py (with a DeliveryError when it failed). */
static PyObject *report_to_py(module_state *st, const ituna_delivery_report *r) {
    char what[600] = "";
    if (r->err != ITUNA_OK) ituna_delivery_report_describe(r, what, sizeof what);
    PyObject *topic = PyUnicode_DecodeUTF8(r->topic, (Py_ssize_t)strlen(r->topic), "replace");
    PyObject *ctx = topic ? context_new(st, &r->span) : NULL;
    if (!ctx) {
        Py_XDECREF(topic);
        return NULL;
    }
    return PyObject_CallFunction(st->delivery_report, "NiLisssN", topic, (int)r->partition,
                                 (long long)r->offset, (int)r->err, ituna_err2name(r->err),
                                 r->error_name ? r->error_name : "", what, ctx);
}

/* Runs on the thread that serves reports (publish, flush, close: the caller's). */
static void on_delivery_cb(const ituna_delivery_report *r, void *opaque) {
    ProducerObject *self = opaque;
    PyGILState_STATE g = PyGILState_Ensure();
    /* re-read under the GIL: the garbage collector may have cleared it */
    PyObject *cb = self->on_delivery ? Py_NewRef(self->on_delivery) : NULL;
    if (cb) {
        PyObject *rep = report_to_py(state_of_type(Py_TYPE(self)), r);
        PyObject *res = rep ? PyObject_CallOneArg(cb, rep) : NULL;
        if (!res) PyErr_WriteUnraisable(cb); /* printed with its traceback */
        Py_XDECREF(res);
        Py_XDECREF(rep);
        Py_DECREF(cb);
    }
    PyGILState_Release(g);
}

typedef struct {
    module_state *st;
    PyObject *list;
    char first[700];
    ituna_err code;
} failures;

static void collect_failure(const ituna_delivery_report *r, void *opaque) {
    failures *f = opaque;
    if (PyList_GET_SIZE(f->list) == 0) {
        ituna_delivery_report_describe(r, f->first, sizeof f->first);
        f->code = r->err;
    }
    PyObject *rep = report_to_py(f->st, r);
    if (!rep || PyList_Append(f->list, rep) < 0) PyErr_Clear();
    Py_XDECREF(rep);
}

/* The consumed message of this context (Message.__enter__), or NULL. */
static ituna_message *current_message(module_state *st) {
    PyObject *m = NULL;
    if (PyContextVar_Get(st->current_msg, NULL, &m) < 0 || !m) {
        PyErr_Clear();
        return NULL;
    }
    ituna_message *cm = message_core(m);
    Py_DECREF(m);
    return cm;
}

/* Raise DeliveryError for the failures the core kept for this context's publishes
 * (those of the message being handled, or of no message). 0 if none. */
static int raise_failures(ProducerObject *self) {
    if (!self->p || self->on_delivery) return 0;
    module_state *st = state_of_type(Py_TYPE(self));
    failures f = { .st = st, .list = PyList_New(0) };
    if (!f.list) return -1;
    size_t n = ituna_producer_take_failures(self->p, current_message(st), collect_failure, &f);
    if (n) {
        PyObject *exc = PyObject_CallFunction(st->delivery_failed, "nsisO", (Py_ssize_t)n, f.first,
                                              (int)f.code, ituna_err2name(f.code), f.list);
        if (exc) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
    }
    Py_DECREF(f.list);
    return n ? -1 : 0;
}

static ituna_err create_producer(ituna_tracer *t, const void *opts, void **core, char *errstr, size_t size) {
    ituna_producer *p = NULL;
    ituna_err err = ituna_producer_create(t, ituna_tracer_config(t), opts, &p, errstr, size);
    *core = p;
    return err;
}

static PyObject *producer_new(PyTypeObject *tp, PyObject *args, PyObject *kw) {
    module_state *st = state_of_type(tp);
    /* ituna/_support.py checks the arguments and gathers the librdkafka properties */
    PyObject *r = call_support("Producer", args, kw), *props_t, *on_delivery, *tracer;
    const char *bootstrap, **props = NULL;
    int carrier;
    PyObject *res = NULL;
    if (!r ||
        !PyArg_ParseTuple(r, "zO!OOi", &bootstrap, st->TracerType, &tracer, &props_t, &on_delivery,
                          &carrier) ||
        !(props = str_array(props_t)))
        goto done;
    ProducerObject *self = (ProducerObject *)tp->tp_alloc(tp, 0);
    if (!self) goto done;
    self->tracer = Py_NewRef(tracer);
    self->on_delivery = on_delivery != Py_None ? Py_NewRef(on_delivery) : NULL;
    ituna_producer_options o;
    memset(&o, 0, sizeof o);
    o.bootstrap = bootstrap;
    o.properties = props;
    o.on_delivery = self->on_delivery ? on_delivery_cb : NULL; /* without it the core keeps failures */
    o.opaque = self;
    o.payload_carrier = carrier;
    o.reports_on_poll = 1;
    res = client_create(st, (PyObject *)self, create_producer, &o);
done:
    PyMem_Free(props);
    Py_XDECREF(r);
    return res;
}

/* Wait for in-flight messages, in slices so signals are seen. timeout_ms < 0: no limit.
 * Returns ITUNA_OK, ITUNA_ERR_TIMEOUT, or -1 with a Python exception (signal). */
static int producer_wait(ProducerObject *self, int timeout_ms) {
    uint64_t deadline = ituna_deadline_ms(timeout_ms);
    for (;;) {
        int slice = ituna_slice_ms(deadline, SLICE_MS);
        ituna_err err;
        Py_BEGIN_ALLOW_THREADS err = ituna_producer_flush(self->p, slice);
        Py_END_ALLOW_THREADS if (err != ITUNA_ERR_TIMEOUT) return err;
        if (PyErr_CheckSignals() < 0) return -1;
        if (ituna_now_ns() / 1000000 >= deadline) return ITUNA_ERR_TIMEOUT;
    }
}

/* 1 when orjson writes v byte for byte as the compact json encoder does: exact dicts
 * with str keys, lists, tuples, bool, None, ints of 64 bits, strs of printable ASCII
 * (json escapes the rest as \uXXXX, orjson writes UTF-8 and DEL raw), finite floats
 * without an exponent in their repr (1e-05 vs 0.00001); not too deep. Anything else
 * goes to json, as before (its output or its error). */
static int json_plain(PyObject *v, int depth) {
    if (v == Py_None || v == Py_True || v == Py_False) return 1;
    if (PyUnicode_CheckExact(v))
        return PyUnicode_IS_ASCII(v) &&
               !memchr(PyUnicode_1BYTE_DATA(v), 0x7f, (size_t)PyUnicode_GET_LENGTH(v));
    if (PyLong_CheckExact(v)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        (void)x;
        return !overflow;
    }
    if (PyFloat_CheckExact(v)) {
        double a = fabs(PyFloat_AS_DOUBLE(v));
        return a == 0.0 || (a >= 1e-4 && a < 1e16);
    }
    if (depth >= 64) return 0;
    if (PyDict_CheckExact(v)) {
        Py_ssize_t pos = 0;
        PyObject *k, *x;
        while (PyDict_Next(v, &pos, &k, &x))
            if (!PyUnicode_CheckExact(k) || !json_plain(k, depth) || !json_plain(x, depth + 1)) return 0;
        return 1;
    }
    if (PyList_CheckExact(v) || PyTuple_CheckExact(v)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
        for (Py_ssize_t i = 0; i < n; i++)
            if (!json_plain(PySequence_Fast_GET_ITEM(v, i), depth + 1)) return 0;
        return 1;
    }
    return 0;
}

/* v as compact JSON (bytes or str), new reference; NULL with json's exception. */
static PyObject *json_encode(module_state *st, PyObject *v) {
    if (st->fast_dumps && json_plain(v, 0)) {
        PyObject *r = PyObject_CallOneArg(st->fast_dumps, v);
        if (r) return r;
        PyErr_Clear(); /* json says what is wrong */
    }
    return PyObject_CallOneArg(st->json_encode, v);
}

static PyObject *producer_publish(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = { "topic", "value", "key", "headers", "partition", "attributes" };
    PyObject *a[6];
    if (fast_args("publish", args, nargs, kwnames, names, 6, 6, a) < 0) return NULL;
    ProducerObject *self = (ProducerObject *)op;
    module_state *st = state_of_type(Py_TYPE(op));
    if (!a[0] || !a[1])
        return PyErr_Format(PyExc_TypeError,
                            "publish(topic, value, key=None, headers=None, partition=None, attributes=None)");
    if (self->closed) {
        PyErr_SetString(st->StateError, "producer is closed");
        return NULL;
    }
    ituna_message_out m;
    memset(&m, 0, sizeof m);
    m.partition = -1;
    PyObject *json = NULL, *keep = NULL, *akeep = NULL, *res = NULL;
    Py_buffer vbuf = { 0 }, kbuf = { 0 };
    ituna_header *hdrs = NULL;
    attrbuf ab;
    attrbuf_init(&ab);
    if (!(m.topic = opt_str(a[0], "topic"))) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "topic must be str");
        return NULL;
    }
    /* value: bytes-like, str, or dict/list sent as JSON */
    PyObject *v = a[1];
    if (PyDict_Check(v) || PyList_Check(v) || PyTuple_Check(v)) {
        json = json_encode(st, v);
        if (!json) goto done;
        v = json;
    }
    if (PyUnicode_Check(v)) {
        Py_ssize_t n;
        if (!(m.value = PyUnicode_AsUTF8AndSize(v, &n))) goto done;
        m.value_len = (size_t)n;
    } else if (v == Py_None) {
        m.value = NULL;
    } else if (PyObject_CheckBuffer(v)) {
        if (PyObject_GetBuffer(v, &vbuf, PyBUF_SIMPLE) < 0) goto done;
        m.value = vbuf.buf;
        m.value_len = (size_t)vbuf.len;
    } else {
        PyErr_Format(PyExc_TypeError,
                     "value must be bytes, str, dict or list (sent as JSON) or None, not %.100s",
                     Py_TYPE(v)->tp_name);
        goto done;
    }
    PyObject *k = a[2];
    if (k && k != Py_None) {
        if (PyUnicode_Check(k)) {
            Py_ssize_t n;
            if (!(m.key = PyUnicode_AsUTF8AndSize(k, &n))) goto done;
            m.key_len = (size_t)n;
        } else if (PyObject_CheckBuffer(k)) {
            if (PyObject_GetBuffer(k, &kbuf, PyBUF_SIMPLE) < 0) goto done;
            m.key = kbuf.buf;
            m.key_len = (size_t)kbuf.len;
        } else {
            PyErr_Format(PyExc_TypeError, "key must be bytes, str or None, not %.100s", Py_TYPE(k)->tp_name);
            goto done;
        }
    }
    if (a[3] && a[3] != Py_None) {
        PyObject *items = PyDict_Check(a[3]) ? PyDict_Items(a[3]) : PySequence_List(a[3]);
        if (!items) goto done;
        keep = items;
        Py_ssize_t n = PyList_GET_SIZE(items);
        hdrs = PyMem_Calloc((size_t)(n ? n : 1), sizeof *hdrs);
        if (!hdrs) {
            PyErr_NoMemory();
            goto done;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *it = PyList_GET_ITEM(items, i);
            if (!PyTuple_Check(it) || PyTuple_GET_SIZE(it) != 2 ||
                !PyUnicode_Check(PyTuple_GET_ITEM(it, 0))) {
                PyErr_SetString(PyExc_TypeError,
                                "headers must be a dict or a list of (str, bytes|str|None) pairs");
                goto done;
            }
            PyObject *hv = PyTuple_GET_ITEM(it, 1);
            if (!(hdrs[i].key = PyUnicode_AsUTF8(PyTuple_GET_ITEM(it, 0)))) goto done;
            if (hv == Py_None) {
                hdrs[i].value = NULL;
            } else if (PyBytes_Check(hv)) {
                hdrs[i].value = PyBytes_AS_STRING(hv);
                hdrs[i].value_len = (size_t)PyBytes_GET_SIZE(hv);
            } else if (PyUnicode_Check(hv)) {
                Py_ssize_t hl;
                if (!(hdrs[i].value = PyUnicode_AsUTF8AndSize(hv, &hl))) goto done;
                hdrs[i].value_len = (size_t)hl;
            } else {
                PyErr_Format(PyExc_TypeError, "header %R: value must be bytes, str or None, not %.100s",
                             PyTuple_GET_ITEM(it, 0), Py_TYPE(hv)->tp_name);
                goto done;
            }
        }
        m.headers = hdrs;
        m.n_headers = (size_t)n;
    }
    if (a[4] && a[4] != Py_None) {
        long part = PyLong_AsLong(a[4]);
        if (part == -1 && PyErr_Occurred()) goto done;
        if (part < 0 || part > INT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "partition must be >= 0");
            goto done;
        }
        m.partition = (int32_t)part;
        m.partition_set = 1;
    }
    if (attrbuf_from_dict_snapshot(&ab, a[5], &akeep) < 0) goto done;
    m.attrs = ab.attrs;
    m.n_attrs = ab.n;
    ituna_span_context ptmp;
    m.parent = context_current(st, &ptmp); /* NULL: no current span, a new trace */
    m.owner = current_message(st);
    ituna_baggage *bag = context_baggage(st); /* OpenTelemetry's current baggage travels too */
    m.baggage = bag;
    char errstr[ERRSTR_SIZE] = "";
    ituna_err err;
    self->busy++;
    Py_BEGIN_ALLOW_THREADS err = ituna_producer_publish(self->p, &m, errstr, sizeof errstr);
    Py_END_ALLOW_THREADS self->busy--;
    ituna_baggage_destroy(bag);
    if (err != ITUNA_OK) {
        raise_err(st, err, errstr);
        goto done;
    }
    if (self->on_delivery) ituna_producer_poll(self->p, 0);
    res = Py_NewRef(Py_None);
done:
    if (vbuf.obj) PyBuffer_Release(&vbuf);
    if (kbuf.obj) PyBuffer_Release(&kbuf);
    PyMem_Free(hdrs);
    attrbuf_free(&ab);
    Py_XDECREF(akeep);
    Py_XDECREF(keep);
    Py_XDECREF(json);
    return res;
}

static PyObject *producer_flush(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = { "timeout" };
    PyObject *a[1];
    if (fast_args("flush", args, nargs, kwnames, names, 1, 1, a) < 0) return NULL;
    ProducerObject *self = (ProducerObject *)op;
    module_state *st = state_of_type(Py_TYPE(op));
    int ms = timeout_ms_from(a[0], -1);
    if (ms == -2) return NULL;
    if (self->closed) {
        if (raise_failures(self) < 0) return NULL;
        Py_RETURN_NONE;
    }
    int rc = producer_wait(self, ms);
    if (rc == -1) return NULL;
    if (raise_failures(self) < 0) return NULL;
    if (rc == ITUNA_ERR_TIMEOUT) {
        int n = ituna_producer_in_flight(self->p);
        char msg[256];
        snprintf(msg, sizeof msg,
                 "%d message(s) still in flight after %.1f s (is the broker reachable?); they are not lost: "
                 "they are delivered later or reported as failed",
                 n, ms / 1000.0);
        return raise_err(st, ITUNA_ERR_TIMEOUT, msg);
    }
    if (rc != ITUNA_OK) return raise_err(st, (ituna_err)rc, NULL);
    Py_RETURN_NONE;
}

/* Close the C producer (GIL released); it is freed by the dealloc. */
static ituna_err producer_close_core(ProducerObject *self, int timeout_ms) {
    self->closed = 1;
    while (self->busy) { /* publishes in other threads must leave first */
        Py_BEGIN_ALLOW_THREADS struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
        Py_END_ALLOW_THREADS
    }
    ituna_err err = ITUNA_OK;
    if (self->p) {
        Py_BEGIN_ALLOW_THREADS err = ituna_producer_close(self->p, timeout_ms);
        Py_END_ALLOW_THREADS
    }
    return err;
}

/* Flush within timeout_ms (interruptibly), close; -1 with the failures raised. */
static int producer_close_ms(PyObject *op, int ms) {
    ProducerObject *self = (ProducerObject *)op;
    if (!self->closed && self->p) {
        uint64_t start = ituna_now_ns() / 1000000;
        if (producer_wait(self, ms) == -1) return -1; /* interruptible part */
        int left = ms - (int)(ituna_now_ns() / 1000000 - start);
        producer_close_core(self, left < 0 ? 0 : left); /* undelivered ones are reported as failed */
    }
    return raise_failures(self);
}

static PyObject *producer_close(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = { "timeout" };
    PyObject *a[1];
    if (fast_args("close", args, nargs, kwnames, names, 1, 1, a) < 0) return NULL;
    int ms = timeout_ms_from(a[0], 30000);
    if (ms == -2 || producer_close_ms(op, ms) < 0) return NULL;
    Py_RETURN_NONE;
}

static int producer_close_default(PyObject *op) {
    return producer_close_ms(op, 30000);
}

static PyObject *producer_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return client_exit(self, args, nargs, producer_close_default);
}

static PyObject *producer_in_flight(PyObject *op, void *c) {
    (void)c;
    ProducerObject *self = (ProducerObject *)op;
    return PyLong_FromLong(self->p ? ituna_producer_in_flight(self->p) : 0);
}

static int producer_traverse(PyObject *op, visitproc visit, void *arg) {
    Py_VISIT(((ProducerObject *)op)->on_delivery);
    return client_traverse(op, visit, arg);
}

/* Breaks cycles through the callback (a closure holding the producer). The C
 * producer stays until dealloc. */
static int producer_clear(PyObject *op) {
    Py_CLEAR(((ProducerObject *)op)->on_delivery);
    return 0;
}

/* Not closed by the program: deliver what we can; failures are logged and counted
 * by the core, or reach on_delivery. */
static void producer_before_destroy(PyObject *op) {
    ProducerObject *self = (ProducerObject *)op;
    if (self->p && !self->closed && producer_close_core(self, 10000) != ITUNA_OK)
        ituna_log(ITUNA_LOG_ERROR, "ituna.Producer collected with undelivered messages");
}

static void producer_destroy(void *p) {
    ituna_producer_destroy(p, 0);
}

static void producer_dealloc(PyObject *op) {
    client_dealloc(op, producer_before_destroy, producer_destroy);
}

static PyMethodDef producer_methods[] = {
    { "publish", (PyCFunction)(void (*)(void))producer_publish, METH_FASTCALL | METH_KEYWORDS,
      "publish($self, /, topic, value, key=None, headers=None, partition=None, attributes=None)\n--\n\n"
      "publish(topic, value, key=None, headers=None, partition=None, attributes=None)\n\n"
      "Publish one message in a PRODUCER span 'send <topic>' whose parent is the current span;\n"
      "the context travels in the traceparent/tracestate headers. value: bytes, str, or a\n"
      "dict/list sent as compact JSON. headers: dict or list of (str, bytes|str|None).\n"
      "attributes: dict of extra attributes for the send span, as Span.set_attributes().\n"
      "Does not wait for delivery; failures surface in on_delivery or flush()/close()." },
    { "flush", (PyCFunction)(void (*)(void))producer_flush, METH_FASTCALL | METH_KEYWORDS,
      "flush($self, /, timeout=None)\n--\n\n"
      "flush(timeout=None): wait for every delivery report (timeout in seconds, None: no limit).\n"
      "Raises ituna.DeliveryError for failed deliveries (when no on_delivery callback is set)\n"
      "and ituna.TimeoutError if messages are still in flight. Releases the GIL." },
    { "close", (PyCFunction)(void (*)(void))producer_close, METH_FASTCALL | METH_KEYWORDS,
      "close($self, /, timeout=30.0)\n--\n\n"
      "close(timeout=30.0): flush, then close; messages still undelivered are reported as\n"
      "failed (DeliveryError). Idempotent." },
    CLIENT_WITH_METHODS(producer_exit),
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef producer_getset[] = {
    { "in_flight", producer_in_flight, NULL, "Messages published and not yet reported.", NULL },
    { "closed", client_closed, NULL, "True after close().", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyType_Slot producer_slots[] = {
    { Py_tp_doc, "Producer(bootstrap=None, *, tracer=None, config=None, on_delivery=None, "
                 "payload_carrier=None, **librdkafka_conf)\n--\n\n"
                 "A traced Kafka producer. bootstrap: 'host:port,...' (None: ITUNA_KAFKA_BOOTSTRAP or\n"
                 "the INI's [queue]). Keyword properties map '_' to '.' (linger_ms=5 -> linger.ms);\n"
                 "config={...} passes properties whose names are not identifiers. on_delivery(report)\n"
                 "is called for every message with an ituna.DeliveryReport (on the thread that publishes,\n"
                 "flushes or closes; what it raises is printed through sys.unraisablehook); without it, "
                 "failures are raised by\n"
                 "flush()/close() as ituna.DeliveryError." },
    { Py_tp_new, producer_new },
    { Py_tp_dealloc, producer_dealloc },
    { Py_tp_traverse, producer_traverse },
    { Py_tp_clear, producer_clear },
    { Py_tp_methods, producer_methods },
    { Py_tp_getset, producer_getset },
    { Py_tp_members, client_members },
    { 0, NULL },
};

PyType_Spec Producer_spec = {
    .name = "ituna.Producer",
    .basicsize = sizeof(ProducerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = producer_slots,
};
