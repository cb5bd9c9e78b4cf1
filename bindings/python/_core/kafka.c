/* kafka.c - Producer, Consumer, Message and EmbeddedBroker: the traced Kafka
 * clients of the core as Python objects. Blocking calls run without the GIL and
 * in 100 ms slices so Ctrl-C is seen; delivery reports arrive on the core's
 * delivery thread and take the GIL only when a Python callback must run. */
#include "module.h"

#include <structmember.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define SLICE_MS 100

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* ---- librdkafka properties from keyword arguments ------------------------------ */

typedef struct {
    char **v; /* key, value, ..., NULL */
    size_t n, cap;
} props;

static void props_free(props *p) {
    for (size_t i = 0; i < p->n; i++) PyMem_Free(p->v[i]);
    PyMem_Free(p->v);
    p->v = NULL;
    p->n = p->cap = 0;
}

static int props_push(props *p, const char *s, size_t len) {
    if (p->n + 2 > p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 16;
        char **nv = PyMem_Realloc(p->v, nc * sizeof *nv);
        if (!nv) {
            PyErr_NoMemory();
            return -1;
        }
        p->v = nv;
        p->cap = nc;
    }
    char *d = PyMem_Malloc(len + 1);
    if (!d) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(d, s, len);
    d[len] = 0;
    p->v[p->n++] = d;
    p->v[p->n] = NULL;
    return 0;
}

/* key: str; underscores become dots when from_kw (linger_ms -> linger.ms). */
static int props_add(props *p, PyObject *key, PyObject *value, int from_kw) {
    if (!PyUnicode_Check(key)) {
        PyErr_Format(PyExc_TypeError, "librdkafka property names must be str, not %.100s",
                     Py_TYPE(key)->tp_name);
        return -1;
    }
    Py_ssize_t kl;
    const char *k = PyUnicode_AsUTF8AndSize(key, &kl);
    if (!k) return -1;
    if (props_push(p, k, (size_t)kl) < 0) return -1;
    if (from_kw)
        for (char *c = p->v[p->n - 1]; *c; c++)
            if (*c == '_') *c = '.';
    PyObject *s;
    if (value == Py_True)
        s = PyUnicode_FromString("true");
    else if (value == Py_False)
        s = PyUnicode_FromString("false");
    else if (PyUnicode_Check(value) || PyLong_Check(value) || PyFloat_Check(value))
        s = PyObject_Str(value);
    else {
        PyErr_Format(PyExc_TypeError,
                     "librdkafka property %R: value must be str, int, float or bool, not %.100s", key,
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    if (!s) return -1;
    Py_ssize_t vl;
    const char *v = PyUnicode_AsUTF8AndSize(s, &vl);
    int rc = v ? props_push(p, v, (size_t)vl) : -1;
    Py_DECREF(s);
    return rc;
}

/* Pops the known keyword arguments into out[], the rest become properties. */
static int split_kwargs(PyObject *kw, const char *const *known, PyObject **out, int nknown, props *p) {
    for (int i = 0; i < nknown; i++) out[i] = NULL;
    if (!kw) return 0;
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    PyObject *config = NULL;
    while (PyDict_Next(kw, &pos, &k, &v)) {
        int i;
        for (i = 0; i < nknown; i++)
            if (PyUnicode_CompareWithASCIIString(k, known[i]) == 0) break;
        if (i < nknown) {
            out[i] = v;
            if (strcmp(known[i], "config") == 0) config = v;
        }
    }
    /* config={...} first (keys that are not identifiers), keyword properties after */
    if (config && config != Py_None) {
        if (!PyDict_Check(config)) {
            PyErr_Format(PyExc_TypeError, "config must be a dict of librdkafka properties, not %.100s",
                         Py_TYPE(config)->tp_name);
            return -1;
        }
        pos = 0;
        while (PyDict_Next(config, &pos, &k, &v))
            if (props_add(p, k, v, 0) < 0) return -1;
    }
    pos = 0;
    while (PyDict_Next(kw, &pos, &k, &v)) {
        int i;
        for (i = 0; i < nknown; i++)
            if (PyUnicode_CompareWithASCIIString(k, known[i]) == 0) break;
        if (i == nknown && props_add(p, k, v, 1) < 0) return -1;
    }
    return 0;
}

static const char *opt_str(PyObject *o, const char *what) {
    if (!o || o == Py_None) return NULL;
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be str or None, not %.100s", what, Py_TYPE(o)->tp_name);
        return NULL;
    }
    return PyUnicode_AsUTF8(o);
}

static PyObject *resolve_tracer(module_state *st, PyObject *t) {
    if (t && t != Py_None) {
        if (!PyObject_TypeCheck(t, st->TracerType)) {
            PyErr_Format(PyExc_TypeError, "tracer must be an ituna.Tracer, not %.100s", Py_TYPE(t)->tp_name);
            return NULL;
        }
        return t;
    }
    if (!st->default_tracer) {
        PyErr_SetString(st->StateError, "no tracer: call ituna.init() first or pass tracer=");
        return NULL;
    }
    return st->default_tracer;
}

/* Remember an open client so ituna.shutdown()/exit can close it. */
static PyObject *track_live(module_state *st, PyObject *o) {
    PyObject *r = PyObject_CallMethod(st->live, "add", "O", o);
    if (!r) {
        Py_DECREF(o);
        return NULL;
    }
    Py_DECREF(r);
    return o;
}

/* ---- DeliveryReport ---------------------------------------------------------------- */

static PyStructSequence_Field dr_fields[] = {
    { "topic", "topic the message was published to" },
    { "partition", "partition (-1 if unknown)" },
    { "offset", "offset in the partition, -1 on failure" },
    { "error", "None on success, else an ituna.DeliveryError" },
    { "context", "SpanContext of the PRODUCER span" },
    { NULL, NULL },
};

PyStructSequence_Desc DeliveryReport_desc = {
    "ituna.DeliveryReport",
    "Outcome of one published message, passed to Producer(on_delivery=...) and listed in\n"
    "DeliveryError.reports.",
    dr_fields,
    5,
};

/* ---- Producer ---------------------------------------------------------------------- */

typedef struct failure {
    struct failure *next;
    ituna_delivery_report r; /* strings below are private copies */
    char topic[256];
    char errstr[256];
    char error_name[64];
} failure;

typedef struct {
    PyObject_HEAD ituna_producer *p;
    PyObject *tracer;
    PyObject *on_delivery;
    PyObject *weakreflist;
    pthread_mutex_t lock; /* guards the failure list (filled on the delivery thread) */
    failure *fail_head, **fail_tail;
    size_t n_fail;
    int busy; /* publishes running without the GIL; guarded by the GIL */
    int closed;
    int has_callback; /* set once at creation: whether reports need the GIL */
} ProducerObject;

static PyObject *make_delivery_error(module_state *st, const char *msg, ituna_err code, PyObject *reports) {
    PyObject *exc = PyObject_CallFunction(st->DeliveryError, "s", msg);
    if (!exc) return NULL;
    PyObject *c = PyLong_FromLong(code);
    PyObject *n = PyUnicode_FromString(ituna_err2name(code));
    int rc = (c && n && PyObject_SetAttrString(exc, "code", c) == 0 &&
              PyObject_SetAttrString(exc, "name", n) == 0 &&
              PyObject_SetAttrString(exc, "reports", reports ? reports : Py_None) == 0)
                 ? 0
                 : -1;
    Py_XDECREF(c);
    Py_XDECREF(n);
    if (rc < 0) Py_CLEAR(exc);
    return exc;
}

static PyObject *report_to_py(module_state *st, const ituna_delivery_report *r, int with_error) {
    PyObject *rep = PyStructSequence_New(st->DeliveryReportType);
    if (!rep) return NULL;
    PyObject *err = Py_NewRef(Py_None);
    if (with_error && r->err != ITUNA_OK) {
        char msg[700];
        snprintf(msg, sizeof msg, "delivery to %s [%d] failed: %s (%s)", r->topic, (int)r->partition,
                 r->errstr, r->error_name);
        Py_DECREF(err);
        err = make_delivery_error(st, msg, r->err, NULL);
        PyObject *ename = err ? PyUnicode_FromString(r->error_name) : NULL;
        if (!ename || PyObject_SetAttrString(err, "error_name", ename) < 0) Py_CLEAR(err);
        Py_XDECREF(ename);
    }
    PyObject *ctx = context_new(st, &r->span);
    PyObject *topic = PyUnicode_DecodeUTF8(r->topic, (Py_ssize_t)strlen(r->topic), "replace");
    PyObject *part = PyLong_FromLong(r->partition);
    PyObject *off = PyLong_FromLongLong(r->offset);
    if (!err || !ctx || !topic || !part || !off) {
        Py_XDECREF(err);
        Py_XDECREF(ctx);
        Py_XDECREF(topic);
        Py_XDECREF(part);
        Py_XDECREF(off);
        Py_DECREF(rep);
        return NULL;
    }
    PyStructSequence_SetItem(rep, 0, topic);
    PyStructSequence_SetItem(rep, 1, part);
    PyStructSequence_SetItem(rep, 2, off);
    PyStructSequence_SetItem(rep, 3, err);
    PyStructSequence_SetItem(rep, 4, ctx);
    return rep;
}

/* Runs on the producer's delivery thread (or a thread inside flush/close). */
static void on_delivery_cb(const ituna_delivery_report *r, void *opaque) {
    ProducerObject *self = opaque;
    if (self->has_callback) {
        PyGILState_STATE g = PyGILState_Ensure();
        /* re-read under the GIL: the garbage collector may have cleared it */
        PyObject *cb = self->on_delivery ? Py_NewRef(self->on_delivery) : NULL;
        if (cb) {
            module_state *st = state_of_type(Py_TYPE(self));
            PyObject *rep = report_to_py(st, r, 1);
            PyObject *res = rep ? PyObject_CallOneArg(cb, rep) : NULL;
            if (!res) PyErr_WriteUnraisable(cb); /* printed with its traceback */
            Py_XDECREF(res);
            Py_XDECREF(rep);
            Py_DECREF(cb);
            PyGILState_Release(g);
            return;
        }
        PyGILState_Release(g);
    }
    if (r->err == ITUNA_OK) return; /* success without a callback: no GIL needed */
    failure *f = calloc(1, sizeof *f);
    if (!f) return; /* the core has logged the failure and counted it */
    f->r = *r;
    snprintf(f->topic, sizeof f->topic, "%s", r->topic);
    snprintf(f->errstr, sizeof f->errstr, "%s", r->errstr);
    snprintf(f->error_name, sizeof f->error_name, "%s", r->error_name);
    f->r.topic = f->topic;
    f->r.errstr = f->errstr;
    f->r.error_name = f->error_name;
    pthread_mutex_lock(&self->lock);
    *self->fail_tail = f;
    self->fail_tail = &f->next;
    self->n_fail++;
    pthread_mutex_unlock(&self->lock);
}

/* Raise DeliveryError for the failures collected so far (and forget them). 0 if none. */
static int raise_failures(ProducerObject *self) {
    pthread_mutex_lock(&self->lock);
    failure *head = self->fail_head;
    size_t n = self->n_fail;
    self->fail_head = NULL;
    self->fail_tail = &self->fail_head;
    self->n_fail = 0;
    pthread_mutex_unlock(&self->lock);
    if (!head) return 0;
    module_state *st = state_of_type(Py_TYPE(self));
    PyObject *reports = PyList_New(0);
    int ok = reports != NULL;
    for (failure *f = head; f && ok; f = f->next) {
        PyObject *rep = report_to_py(st, &f->r, 1);
        ok = rep && PyList_Append(reports, rep) == 0;
        Py_XDECREF(rep);
    }
    char msg[800];
    snprintf(msg, sizeof msg, "%zu message(s) not delivered; first: %s [%d]: %s (%s)", n, head->topic,
             (int)head->r.partition, head->errstr, head->error_name);
    ituna_err code = head->r.err;
    while (head) {
        failure *nx = head->next;
        free(head);
        head = nx;
    }
    if (!ok) {
        Py_XDECREF(reports);
        return -1;
    }
    PyObject *exc = make_delivery_error(st, msg, code, reports);
    Py_DECREF(reports);
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return -1;
}

static PyObject *producer_new(PyTypeObject *tp, PyObject *args, PyObject *kw) {
    static const char *const known[] = { "bootstrap", "tracer", "config", "on_delivery", "payload_carrier" };
    PyObject *a[5];
    props p = { 0 };
    module_state *st = state_of_type(tp);
    if (PyTuple_GET_SIZE(args) > 1)
        return PyErr_Format(PyExc_TypeError, "Producer() takes at most 1 positional argument");
    if (split_kwargs(kw, known, a, 5, &p) < 0) goto fail;
    if (PyTuple_GET_SIZE(args) == 1) {
        if (a[0]) {
            PyErr_SetString(PyExc_TypeError, "Producer() got multiple values for argument 'bootstrap'");
            goto fail;
        }
        a[0] = PyTuple_GET_ITEM(args, 0);
    }
    const char *bootstrap = opt_str(a[0], "bootstrap");
    if (!bootstrap && PyErr_Occurred()) goto fail;
    PyObject *tracer = resolve_tracer(st, a[1]);
    if (!tracer) goto fail;
    if (a[3] && a[3] != Py_None && !PyCallable_Check(a[3])) {
        PyErr_SetString(PyExc_TypeError, "on_delivery must be callable");
        goto fail;
    }
    int carrier = -1;
    if (a[4] && a[4] != Py_None && (carrier = PyObject_IsTrue(a[4])) < 0) goto fail;
    ProducerObject *self = (ProducerObject *)tp->tp_alloc(tp, 0);
    if (!self) goto fail;
    pthread_mutex_init(&self->lock, NULL);
    self->fail_tail = &self->fail_head;
    self->tracer = Py_NewRef(tracer);
    self->on_delivery = (a[3] && a[3] != Py_None) ? Py_NewRef(a[3]) : NULL;
    self->has_callback = self->on_delivery != NULL;
    ituna_producer_options o;
    memset(&o, 0, sizeof o);
    o.bootstrap = bootstrap;
    o.properties = (const char *const *)p.v;
    o.on_delivery = on_delivery_cb;
    o.opaque = self;
    o.payload_carrier = carrier;
    ituna_tracer *t = ((TracerObject *)tracer)->tracer;
    char errstr[ERRSTR_SIZE] = "";
    ituna_err err;
    Py_BEGIN_ALLOW_THREADS err =
        ituna_producer_create(t, ituna_tracer_config(t), &o, &self->p, errstr, sizeof errstr);
    Py_END_ALLOW_THREADS props_free(&p);
    if (err != ITUNA_OK) {
        self->closed = 1;
        Py_DECREF(self);
        return raise_err(st, err, errstr);
    }
    return track_live(st, (PyObject *)self);
fail:
    props_free(&p);
    return NULL;
}

/* Wait for in-flight messages, in slices so signals are seen. timeout_ms < 0: no limit.
 * Returns ITUNA_OK, ITUNA_ERR_TIMEOUT, or -1 with a Python exception (signal). */
static int producer_wait(ProducerObject *self, int timeout_ms) {
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - mono_ms();
        int slice = left < SLICE_MS ? (int)(left < 0 ? 0 : left) : SLICE_MS;
        ituna_err err;
        Py_BEGIN_ALLOW_THREADS err = ituna_producer_flush(self->p, slice);
        Py_END_ALLOW_THREADS if (err == ITUNA_OK) return ITUNA_OK;
        if (err != ITUNA_ERR_TIMEOUT) return err;
        if (PyErr_CheckSignals() < 0) return -1;
        if (mono_ms() >= deadline) return ITUNA_ERR_TIMEOUT;
    }
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
        json = PyObject_CallOneArg(st->json_encode, v);
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
    char errstr[ERRSTR_SIZE] = "";
    ituna_err err;
    self->busy++;
    Py_BEGIN_ALLOW_THREADS err = ituna_producer_publish(self->p, &m, errstr, sizeof errstr);
    Py_END_ALLOW_THREADS self->busy--;
    if (err != ITUNA_OK) {
        raise_err(st, err, errstr);
        goto done;
    }
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

/* Destroy the C producer (GIL released). */
static ituna_err producer_destroy(ProducerObject *self, int timeout_ms) {
    self->closed = 1;
    while (self->busy) { /* publishes in other threads must leave first */
        Py_BEGIN_ALLOW_THREADS sleep_ms(1);
        Py_END_ALLOW_THREADS
    }
    ituna_producer *p = self->p;
    self->p = NULL;
    if (!p) return ITUNA_OK;
    ituna_err err;
    Py_BEGIN_ALLOW_THREADS err = ituna_producer_destroy(p, timeout_ms);
    Py_END_ALLOW_THREADS return err;
}

static PyObject *producer_close(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = { "timeout" };
    PyObject *a[1];
    if (fast_args("close", args, nargs, kwnames, names, 1, 1, a) < 0) return NULL;
    ProducerObject *self = (ProducerObject *)op;
    int ms = timeout_ms_from(a[0], 30000);
    if (ms == -2) return NULL;
    if (!self->closed && self->p) {
        int64_t start = mono_ms();
        int rc = producer_wait(self, ms); /* interruptible part */
        if (rc == -1) return NULL;
        int left = ms - (int)(mono_ms() - start);
        producer_destroy(self, left < 0 ? 0 : left); /* undelivered ones are reported as failed */
    }
    if (raise_failures(self) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *producer_enter(PyObject *self, PyObject *Py_UNUSED(a)) {
    return Py_NewRef(self);
}

static PyObject *producer_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *r = producer_close(self, NULL, 0, NULL);
    if (!r) {
        /* an exception already on its way out wins; ours is chained as context */
        if (nargs >= 2 && args[1] != Py_None) {
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            PyErr_NormalizeException(&t, &v, &tb);
            PyErr_WriteUnraisable(self);
            Py_XDECREF(t);
            Py_XDECREF(v);
            Py_XDECREF(tb);
            Py_RETURN_FALSE;
        }
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

static PyObject *producer_in_flight(PyObject *op, void *c) {
    (void)c;
    ProducerObject *self = (ProducerObject *)op;
    return PyLong_FromLong(self->p ? ituna_producer_in_flight(self->p) : 0);
}

static PyObject *producer_closed(PyObject *op, void *c) {
    (void)c;
    return PyBool_FromLong(((ProducerObject *)op)->closed);
}

static int producer_traverse(PyObject *op, visitproc visit, void *arg) {
    ProducerObject *self = (ProducerObject *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->on_delivery);
    Py_VISIT(self->tracer);
    return 0;
}

/* Breaks cycles through the callback (a closure holding the producer). The C
 * producer stays until dealloc; reports then fall back to the failure list. */
static int producer_clear(PyObject *op) {
    Py_CLEAR(((ProducerObject *)op)->on_delivery);
    return 0;
}

static void producer_dealloc(PyObject *op) {
    ProducerObject *self = (ProducerObject *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if (self->weakreflist) PyObject_ClearWeakRefs(op);
    if (self->p) {
        /* not closed by the program: deliver what we can; failures are logged by the core
         * (with no callback) or reach on_delivery */
        ituna_err err = producer_destroy(self, 10000);
        if (err != ITUNA_OK) ituna_log(ITUNA_LOG_ERROR, "ituna.Producer collected with undelivered messages");
    }
    pthread_mutex_lock(&self->lock);
    size_t n = self->n_fail;
    failure *f = self->fail_head;
    pthread_mutex_unlock(&self->lock);
    if (n) ituna_log(ITUNA_LOG_ERROR, "ituna.Producer collected with %zu unreported delivery failure(s)", n);
    while (f) {
        failure *nx = f->next;
        free(f);
        f = nx;
    }
    pthread_mutex_destroy(&self->lock);
    Py_CLEAR(self->on_delivery);
    Py_CLEAR(self->tracer);
    tp->tp_free(op);
    Py_DECREF(tp);
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
    { "__enter__", producer_enter, METH_NOARGS,
      "__enter__($self, /)\n--\n\n"
      "Return the producer." },
    { "__exit__", (PyCFunction)(void (*)(void))producer_exit, METH_FASTCALL,
      "__exit__($self, exc_type=None, exc_value=None, traceback=None, /)\n--\n\n"
      "close() the producer." },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef producer_getset[] = {
    { "in_flight", producer_in_flight, NULL, "Messages published and not yet reported.", NULL },
    { "closed", producer_closed, NULL, "True after close().", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyMemberDef producer_members[] = {
    { "__weaklistoffset__", T_PYSSIZET, offsetof(ProducerObject, weakreflist), READONLY, NULL },
    { NULL, 0, 0, 0, NULL },
};

static PyType_Slot producer_slots[] = {
    { Py_tp_doc, "Producer(bootstrap=None, *, tracer=None, config=None, on_delivery=None, "
                 "payload_carrier=None, **librdkafka_conf)\n--\n\n"
                 "A traced Kafka producer. bootstrap: 'host:port,...' (None: ITUNA_KAFKA_BOOTSTRAP or\n"
                 "the INI's [queue]). Keyword properties map '_' to '.' (linger_ms=5 -> linger.ms);\n"
                 "config={...} passes properties whose names are not identifiers. on_delivery(report)\n"
                 "is called for every message with an ituna.DeliveryReport (on another thread; what it\n"
                 "raises is printed through sys.unraisablehook); without it, failures are raised by\n"
                 "flush()/close() as ituna.DeliveryError." },
    { Py_tp_new, producer_new },
    { Py_tp_dealloc, producer_dealloc },
    { Py_tp_traverse, producer_traverse },
    { Py_tp_clear, producer_clear },
    { Py_tp_methods, producer_methods },
    { Py_tp_getset, producer_getset },
    { Py_tp_members, producer_members },
    { 0, NULL },
};

PyType_Spec Producer_spec = {
    .name = "ituna.Producer",
    .basicsize = sizeof(ProducerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = producer_slots,
};

/* ---- Consumer and Message ------------------------------------------------------------ */

typedef struct MessageObject MessageObject;

typedef struct {
    PyObject_HEAD ituna_consumer *c;
    PyObject *tracer;
    MessageObject *pending; /* borrowed: the last message handed out and not finished */
    MessageObject *open;    /* borrowed: every unfinished message (linked through open_next) */
    ituna_message *held;    /* polled by wait_assigned() and not handed out yet: the next poll returns it */
    PyObject *weakreflist;
    atomic_int stop;
    int busy; /* a poll/finish runs without the GIL; guarded by the GIL */
    int closed;
} ConsumerObject;

struct MessageObject {
    PyObject_HEAD ituna_message *m; /* NULL once finished */
    ConsumerObject *consumer;       /* strong */
    PyObject *span;                 /* Span wrapper (borrowed C span) */
    PyObject *token;
    PyObject *topic, *value, *key, *headers;
    int32_t partition;
    int64_t offset, timestamp_ms;
    const char *outcome; /* "ok", "error", "dead-letter" once finished */
    MessageObject *open_prev, *open_next;
};

static void open_remove(MessageObject *msg) {
    ConsumerObject *c = msg->consumer;
    if (msg->open_prev)
        msg->open_prev->open_next = msg->open_next;
    else if (c->open == msg)
        c->open = msg->open_next;
    if (msg->open_next) msg->open_next->open_prev = msg->open_prev;
    msg->open_prev = msg->open_next = NULL;
    if (c->pending == msg) c->pending = NULL;
}

static int consumer_enter_busy(ConsumerObject *c) {
    if (c->busy) {
        module_state *st = state_of_type(Py_TYPE(c));
        PyErr_SetString(st->StateError, "consumer is in use by another thread (one thread per consumer)");
        return -1;
    }
    c->busy = 1;
    return 0;
}

/* Finish msg with result. Releases the GIL (a DLQ write may wait for confirmation). */
static int message_finish(MessageObject *msg, ituna_handler_result result, const char *reason) {
    module_state *st = state_of_type(Py_TYPE(msg));
    if (!msg->m) {
        PyErr_Format(st->StateError, "message already finished (%s)", msg->outcome);
        return -1;
    }
    ConsumerObject *c = msg->consumer;
    if (consumer_enter_busy(c) < 0) return -1;
    span_detach((SpanObject *)msg->span); /* copy the ids; the message ends the C span */
    ituna_message *m = msg->m;
    msg->m = NULL;
    msg->outcome = result == ITUNA_HANDLED_OK      ? "ok"
                   : result == ITUNA_HANDLED_ERROR ? "error"
                                                   : "dead-letter";
    open_remove(msg);
    char errstr[ERRSTR_SIZE] = "";
    ituna_err err;
    Py_BEGIN_ALLOW_THREADS err = ituna_message_done(m, result, reason, errstr, sizeof errstr);
    Py_END_ALLOW_THREADS c->busy = 0;
    if (err != ITUNA_OK) {
        raise_err(st, err, errstr);
        return -1;
    }
    return 0;
}

static PyObject *message_from(ConsumerObject *c, ituna_message *m) {
    module_state *st = state_of_type(Py_TYPE(c));
    MessageObject *o = (MessageObject *)st->MessageType->tp_alloc(st->MessageType, 0);
    if (!o) return NULL;
    o->m = m;
    o->consumer = (ConsumerObject *)Py_NewRef(c);
    o->partition = ituna_message_partition(m);
    o->offset = ituna_message_offset(m);
    o->timestamp_ms = ituna_message_timestamp_ms(m);
    const char *topic = ituna_message_topic(m);
    size_t vlen = 0, klen = 0;
    const void *val = ituna_message_value(m, &vlen), *key = ituna_message_key(m, &klen);
    o->topic = PyUnicode_DecodeUTF8(topic ? topic : "", (Py_ssize_t)strlen(topic ? topic : ""), "replace");
    o->value = val ? PyBytes_FromStringAndSize(val, (Py_ssize_t)vlen) : Py_NewRef(Py_None);
    o->key = key ? PyBytes_FromStringAndSize(key, (Py_ssize_t)klen) : Py_NewRef(Py_None);
    size_t nh = ituna_message_header_count(m);
    o->headers = PyList_New((Py_ssize_t)nh);
    o->span = span_wrap_borrowed(st, ituna_message_span(m), c->tracer);
    if (!o->topic || !o->value || !o->key || !o->headers || !o->span) goto fail;
    for (size_t i = 0; i < nh; i++) {
        const char *hk;
        const void *hv;
        size_t hl;
        if (!ituna_message_header(m, i, &hk, &hv, &hl)) {
            hk = "";
            hv = NULL;
        }
        PyObject *t = Py_BuildValue("(Ny#)", PyUnicode_DecodeUTF8(hk, (Py_ssize_t)strlen(hk), "replace"),
                                    (const char *)hv, (Py_ssize_t)(hv ? hl : 0));
        if (!t) goto fail;
        if (!hv) { /* a null header value */
            PyObject *k2 = Py_NewRef(PyTuple_GET_ITEM(t, 0));
            Py_DECREF(t);
            t = PyTuple_Pack(2, k2, Py_None);
            Py_DECREF(k2);
            if (!t) goto fail;
        }
        PyList_SET_ITEM(o->headers, (Py_ssize_t)i, t);
    }
    c->pending = o;
    o->open_next = c->open;
    if (c->open) c->open->open_prev = o;
    c->open = o;
    return (PyObject *)o;
fail:
    /* o->m is finished as an error (redelivered) by the dealloc */
    Py_DECREF(o);
    return NULL;
}

/* Poll once for up to timeout_ms in slices. Returns a Message, Py_None (timeout or
 * stop), or NULL with an exception. */
static PyObject *consumer_poll_ms(ConsumerObject *self, int timeout_ms, int *stopped) {
    module_state *st = state_of_type(Py_TYPE(self));
    if (stopped) *stopped = 0;
    if (self->closed || !self->c) {
        PyErr_SetString(st->StateError, "consumer is closed");
        return NULL;
    }
    /* the program moved on without finishing the previous message: it is done */
    if (self->pending && self->pending->m && !self->pending->token) {
        if (message_finish(self->pending, ITUNA_HANDLED_OK, NULL) < 0) return NULL;
    }
    if (self->held) { /* kept by wait_assigned(): handed out before polling again */
        ituna_message *m = self->held;
        self->held = NULL;
        return message_from(self, m);
    }
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : mono_ms() + timeout_ms;
    for (;;) {
        if (atomic_exchange(&self->stop, 0)) {
            if (stopped) *stopped = 1;
            Py_RETURN_NONE;
        }
        int64_t left = deadline - mono_ms();
        int slice = left < SLICE_MS ? (int)(left < 0 ? 0 : left) : SLICE_MS;
        if (consumer_enter_busy(self) < 0) return NULL;
        ituna_message *m = NULL;
        char errstr[ERRSTR_SIZE] = "";
        ituna_err err;
        Py_BEGIN_ALLOW_THREADS err = ituna_consumer_poll(self->c, slice, &m, errstr, sizeof errstr);
        Py_END_ALLOW_THREADS self->busy = 0;
        if (err != ITUNA_OK) return raise_err(st, err, errstr);
        if (m) return message_from(self, m);
        if (PyErr_CheckSignals() < 0) return NULL;
        if (mono_ms() >= deadline) Py_RETURN_NONE;
    }
}

static PyObject *consumer_new(PyTypeObject *tp, PyObject *args, PyObject *kw) {
    static const char *const known[] = { "topics", "group",        "bootstrap", "tracer",
                                         "config", "context_mode", "dlq_suffix" };
    PyObject *a[7];
    props p = { 0 };
    PyObject *topics_seq = NULL;
    const char **topics = NULL;
    module_state *st = state_of_type(tp);
    Py_ssize_t np = PyTuple_GET_SIZE(args);
    if (np > 3) return PyErr_Format(PyExc_TypeError, "Consumer() takes at most 3 positional arguments");
    if (split_kwargs(kw, known, a, 7, &p) < 0) goto fail;
    for (Py_ssize_t i = 0; i < np; i++) {
        if (a[i]) {
            PyErr_Format(PyExc_TypeError, "Consumer() got multiple values for argument '%s'", known[i]);
            goto fail;
        }
        a[i] = PyTuple_GET_ITEM(args, i);
    }
    if (!a[0] || !a[1]) {
        PyErr_SetString(PyExc_TypeError, "Consumer(topics, group, bootstrap=None, **librdkafka_conf)");
        goto fail;
    }
    if (PyUnicode_Check(a[0]))
        topics_seq = PyTuple_Pack(1, a[0]);
    else
        topics_seq = PySequence_Tuple(a[0]);
    if (!topics_seq) goto fail;
    Py_ssize_t nt = PyTuple_GET_SIZE(topics_seq);
    if (nt == 0) {
        PyErr_SetString(PyExc_ValueError, "Consumer needs at least one topic");
        goto fail;
    }
    topics = PyMem_Calloc((size_t)nt + 1, sizeof *topics);
    if (!topics) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < nt; i++)
        if (!(topics[i] = opt_str(PyTuple_GET_ITEM(topics_seq, i), "topic"))) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "topics must be str");
            goto fail;
        }
    const char *group = opt_str(a[1], "group");
    if (!group) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "group must be str");
        goto fail;
    }
    const char *bootstrap = opt_str(a[2], "bootstrap");
    if (!bootstrap && PyErr_Occurred()) goto fail;
    PyObject *tracer = resolve_tracer(st, a[3]);
    if (!tracer) goto fail;
    ituna_consumer_context_mode mode = ITUNA_CONTEXT_FROM_CONFIG;
    const char *ms = opt_str(a[5], "context_mode");
    if (ms) {
        if (strcmp(ms, "parent") == 0)
            mode = ITUNA_CONTEXT_PARENT;
        else if (strcmp(ms, "link") == 0)
            mode = ITUNA_CONTEXT_LINK;
        else {
            PyErr_Format(PyExc_ValueError, "context_mode must be 'parent', 'link' or None, not '%s'", ms);
            goto fail;
        }
    } else if (PyErr_Occurred())
        goto fail;
    const char *dlq = opt_str(a[6], "dlq_suffix");
    if (!dlq && PyErr_Occurred()) goto fail;

    ConsumerObject *self = (ConsumerObject *)tp->tp_alloc(tp, 0);
    if (!self) goto fail;
    self->tracer = Py_NewRef(tracer);
    ituna_consumer_options o;
    memset(&o, 0, sizeof o);
    o.bootstrap = bootstrap;
    o.group = group;
    o.topics = topics;
    o.properties = (const char *const *)p.v;
    o.context_mode = mode;
    o.dlq_suffix = dlq;
    ituna_tracer *t = ((TracerObject *)tracer)->tracer;
    char errstr[ERRSTR_SIZE] = "";
    ituna_err err;
    Py_BEGIN_ALLOW_THREADS err =
        ituna_consumer_create(t, ituna_tracer_config(t), &o, &self->c, errstr, sizeof errstr);
    Py_END_ALLOW_THREADS props_free(&p);
    PyMem_Free(topics);
    Py_DECREF(topics_seq);
    if (err != ITUNA_OK) {
        self->closed = 1;
        Py_DECREF(self);
        return raise_err(st, err, errstr);
    }
    return track_live(st, (PyObject *)self);
fail:
    props_free(&p);
    PyMem_Free(topics);
    Py_XDECREF(topics_seq);
    return NULL;
}

static PyObject *consumer_poll(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = { "timeout" };
    PyObject *a[1];
    if (fast_args("poll", args, nargs, kwnames, names, 1, 1, a) < 0) return NULL;
    int ms = timeout_ms_from(a[0], -1);
    if (ms == -2) return NULL;
    return consumer_poll_ms((ConsumerObject *)op, ms, NULL);
}

static PyObject *consumer_iternext(PyObject *op) {
    int stopped = 0;
    PyObject *r = consumer_poll_ms((ConsumerObject *)op, -1, &stopped);
    if (r == Py_None) {
        Py_DECREF(r);
        return NULL; /* stop(): StopIteration */
    }
    return r;
}

/* Poll in slices until partitions are assigned, stop() or timeout_ms. A message
 * that arrives meanwhile is kept in self->held (one at most: a message means an
 * assignment, so polling ends there) and returned by the next poll/iteration.
 * Returns 1 assigned, 0 not, -1 with an exception. */
static int consumer_wait_assigned_ms(ConsumerObject *self, int timeout_ms) {
    module_state *st = state_of_type(Py_TYPE(self));
    if (self->closed || !self->c) {
        PyErr_SetString(st->StateError, "consumer is closed");
        return -1;
    }
    int64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        if (ituna_consumer_assignment_count(self->c) > 0) return 1;
        /* a held message must be handed out before polling again (no second buffer);
         * stop() stays pending for the loop that follows */
        if (self->held || atomic_load(&self->stop)) return 0;
        int64_t left = deadline - mono_ms();
        if (left <= 0) return 0;
        int slice = left < SLICE_MS ? (int)left : SLICE_MS;
        if (consumer_enter_busy(self) < 0) return -1;
        ituna_message *m = NULL;
        char errstr[ERRSTR_SIZE] = "";
        ituna_err err;
        Py_BEGIN_ALLOW_THREADS err = ituna_consumer_poll(self->c, slice, &m, errstr, sizeof errstr);
        Py_END_ALLOW_THREADS self->busy = 0;
        if (err != ITUNA_OK) {
            raise_err(st, err, errstr);
            return -1;
        }
        if (m) self->held = m;
        if (PyErr_CheckSignals() < 0) return -1;
    }
}

static PyObject *consumer_wait_assigned(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                                        PyObject *kwnames) {
    static const char *const names[] = { "timeout" };
    PyObject *a[1];
    if (fast_args("wait_assigned", args, nargs, kwnames, names, 1, 1, a) < 0) return NULL;
    if (!a[0]) {
        PyErr_SetString(PyExc_TypeError, "wait_assigned() missing required argument 'timeout' (seconds)");
        return NULL;
    }
    int ms = timeout_ms_from(a[0], 0);
    if (ms == -2) return NULL;
    int r = consumer_wait_assigned_ms((ConsumerObject *)op, ms);
    if (r < 0) return NULL;
    return PyBool_FromLong(r);
}

static PyObject *consumer_assignment_count(PyObject *op, void *c) {
    (void)c;
    ConsumerObject *self = (ConsumerObject *)op;
    return PyLong_FromLong(self->c ? ituna_consumer_assignment_count(self->c) : 0);
}

/* A message polled by wait_assigned() and never handed out is not committed: it
 * is redelivered (to this member or, after close, to another). */
static void consumer_drop_held(ConsumerObject *self) {
    if (!self->held || !self->c) return;
    ituna_message *m = self->held;
    self->held = NULL;
    char errstr[ERRSTR_SIZE] = "";
    ituna_message_done(m, ITUNA_HANDLED_ERROR, "consumer closed before the message was handed out", errstr,
                       sizeof errstr);
}

static PyObject *consumer_stop(PyObject *op, PyObject *Py_UNUSED(a)) {
    ConsumerObject *self = (ConsumerObject *)op;
    atomic_store(&self->stop, 1);
    if (self->c) ituna_consumer_wakeup(self->c);
    Py_RETURN_NONE;
}

static int consumer_close_impl(ConsumerObject *self) {
    if (self->closed || !self->c) {
        self->closed = 1;
        return 0;
    }
    if (self->busy) {
        module_state *st = state_of_type(Py_TYPE(self));
        PyErr_SetString(st->StateError, "consumer is in use by another thread; call stop() there first");
        return -1;
    }
    int rc = 0;
    /* unfinished messages at close are not committed: they are redelivered */
    while (self->open) {
        if (message_finish(self->open, ITUNA_HANDLED_ERROR,
                           "consumer closed before the message was finished") < 0) {
            if (rc == 0)
                rc = -1;
            else
                PyErr_Clear();
        }
    }
    consumer_drop_held(self);
    ituna_consumer *c = self->c;
    self->c = NULL;
    self->closed = 1;
    Py_BEGIN_ALLOW_THREADS ituna_consumer_close(c);
    ituna_consumer_destroy(c);
    Py_END_ALLOW_THREADS return rc;
}

static PyObject *consumer_close(PyObject *op, PyObject *Py_UNUSED(a)) {
    if (consumer_close_impl((ConsumerObject *)op) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *consumer_commit(PyObject *op, PyObject *Py_UNUSED(a)) {
    ConsumerObject *self = (ConsumerObject *)op;
    module_state *st = state_of_type(Py_TYPE(op));
    if (self->closed || !self->c) {
        PyErr_SetString(st->StateError, "consumer is closed");
        return NULL;
    }
    if (consumer_enter_busy(self) < 0) return NULL;
    char errstr[ERRSTR_SIZE] = "";
    ituna_err err;
    Py_BEGIN_ALLOW_THREADS err = ituna_consumer_commit(self->c, errstr, sizeof errstr);
    Py_END_ALLOW_THREADS self->busy = 0;
    if (err != ITUNA_OK) return raise_err(st, err, errstr);
    Py_RETURN_NONE;
}

static PyObject *consumer_enter(PyObject *self, PyObject *Py_UNUSED(a)) {
    return Py_NewRef(self);
}

static PyObject *consumer_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)args;
    (void)nargs;
    if (consumer_close_impl((ConsumerObject *)self) < 0) return NULL;
    Py_RETURN_FALSE;
}

static PyObject *consumer_closed(PyObject *op, void *c) {
    (void)c;
    return PyBool_FromLong(((ConsumerObject *)op)->closed);
}

static int consumer_traverse(PyObject *op, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(((ConsumerObject *)op)->tracer);
    return 0;
}

static void consumer_dealloc(PyObject *op) {
    ConsumerObject *self = (ConsumerObject *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if (self->weakreflist) PyObject_ClearWeakRefs(op);
    /* every Message holds a reference, so none is outstanding here */
    if (self->c) {
        consumer_drop_held(self);
        ituna_consumer *c = self->c;
        self->c = NULL;
        Py_BEGIN_ALLOW_THREADS ituna_consumer_close(c);
        ituna_consumer_destroy(c);
        Py_END_ALLOW_THREADS
    }
    Py_CLEAR(self->tracer);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef consumer_methods[] = {
    { "poll", (PyCFunction)(void (*)(void))consumer_poll, METH_FASTCALL | METH_KEYWORDS,
      "poll($self, /, timeout=None)\n--\n\n"
      "poll(timeout=None) -> Message or None: wait up to timeout seconds (None: until a\n"
      "message or stop()). Releases the GIL; Ctrl-C interrupts it." },
    { "wait_assigned", (PyCFunction)(void (*)(void))consumer_wait_assigned, METH_FASTCALL | METH_KEYWORDS,
      "wait_assigned($self, /, timeout)\n--\n\n"
      "wait_assigned(timeout) -> bool: poll until the group gave this member partitions (True)\n"
      "or timeout seconds passed / stop() was called (False). Releases the GIL. A message\n"
      "that arrives meanwhile is not lost: the next poll()/iteration returns it." },
    { "stop", consumer_stop, METH_NOARGS,
      "stop($self, /)\n--\n\n"
      "stop(): make a blocked poll() return None and end iteration. Thread-safe." },
    { "commit", consumer_commit, METH_NOARGS,
      "commit($self, /)\n--\n\n"
      "commit(): commit the offsets of finished messages now." },
    { "close", consumer_close, METH_NOARGS,
      "close($self, /)\n--\n\n"
      "close(): commit finished messages, leave the group and close. An unfinished message is\n"
      "not committed (it is redelivered). Idempotent; later polls raise ituna.StateError." },
    { "__enter__", consumer_enter, METH_NOARGS,
      "__enter__($self, /)\n--\n\n"
      "Return the consumer." },
    { "__exit__", (PyCFunction)(void (*)(void))consumer_exit, METH_FASTCALL,
      "__exit__($self, exc_type=None, exc_value=None, traceback=None, /)\n--\n\n"
      "close() the consumer." },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef consumer_getset[] = {
    { "closed", consumer_closed, NULL, "True after close().", NULL },
    { "assignment_count", consumer_assignment_count, NULL,
      "Partitions currently assigned to this member (0 before the first rebalance; assignment\n"
      "only happens while the consumer is polled, see wait_assigned()).",
      NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyMemberDef consumer_members[] = {
    { "__weaklistoffset__", T_PYSSIZET, offsetof(ConsumerObject, weakreflist), READONLY, NULL },
    { NULL, 0, 0, 0, NULL },
};

static PyObject *self_iter(PyObject *self) {
    return Py_NewRef(self);
}

static PyType_Slot consumer_slots[] = {
    { Py_tp_doc, "Consumer(topics, group, bootstrap=None, *, tracer=None, config=None, "
                 "context_mode=None, dlq_suffix=None, **librdkafka_conf)\n--\n\n"
                 "A traced Kafka consumer in group `group` subscribed to `topics` (str or list).\n"
                 "Iterating yields Messages (blocking, Ctrl-C and stop() end it). Use each message\n"
                 "with `with`: its CONSUMER span is current inside; a normal exit commits, an exception\n"
                 "marks the span error and the message is redelivered, ituna.MalformedPayload sends it\n"
                 "to <topic>.dlq. A message not used with `with` nor finished by ack()/nack()/\n"
                 "dead_letter() is acknowledged when the next one is requested." },
    { Py_tp_new, consumer_new },
    { Py_tp_dealloc, consumer_dealloc },
    { Py_tp_traverse, consumer_traverse },
    { Py_tp_iter, self_iter },
    { Py_tp_iternext, consumer_iternext },
    { Py_tp_methods, consumer_methods },
    { Py_tp_getset, consumer_getset },
    { Py_tp_members, consumer_members },
    { 0, NULL },
};

PyType_Spec Consumer_spec = {
    .name = "ituna.Consumer",
    .basicsize = sizeof(ConsumerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = consumer_slots,
};

/* ---- Message -------------------------------------------------------------------------- */

static PyObject *message_enter(PyObject *op, PyObject *Py_UNUSED(a)) {
    MessageObject *msg = (MessageObject *)op;
    module_state *st = state_of_type(Py_TYPE(op));
    if (!msg->m) return PyErr_Format(st->StateError, "message already finished (%s)", msg->outcome);
    if (msg->token) return PyErr_Format(st->StateError, "message is already entered");
    msg->token = context_attach(st, msg->span);
    if (!msg->token) return NULL;
    return Py_NewRef(op);
}

static void message_reset_token(MessageObject *msg, module_state *st) {
    if (!msg->token) return;
    PyObject *tok = msg->token;
    msg->token = NULL;
    context_detach(st, tok);
    Py_DECREF(tok);
}

static PyObject *message_exit(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    MessageObject *msg = (MessageObject *)op;
    module_state *st = state_of_type(Py_TYPE(op));
    PyObject *exc = nargs >= 2 ? args[1] : Py_None;
    message_reset_token(msg, st);
    if (!msg->m) Py_RETURN_FALSE; /* finished inside the block by ack()/nack()/dead_letter() */
    if (exc == Py_None) {
        if (message_finish(msg, ITUNA_HANDLED_OK, NULL) < 0) return NULL;
        Py_RETURN_FALSE;
    }
    PyObject *desc = PyObject_Str(exc);
    if (!desc) return NULL;
    const char *reason = PyUnicode_AsUTF8(desc);
    if (!reason) {
        Py_DECREF(desc);
        return NULL;
    }
    int malformed = PyObject_TypeCheck(exc, (PyTypeObject *)st->MalformedPayload);
    SpanObject *sp = (SpanObject *)msg->span;
    if (!malformed && sp->span && sp->recording && span_record_pyexc(st, sp->span, exc, 0) < 0) PyErr_Clear();
    int rc = message_finish(msg, malformed ? ITUNA_HANDLED_MALFORMED : ITUNA_HANDLED_ERROR,
                            *reason ? reason : NULL);
    Py_DECREF(desc);
    if (rc < 0) {
        if (!malformed) {
            PyErr_WriteUnraisable(op); /* the handler's exception propagates; ours is printed */
            Py_RETURN_FALSE;
        }
        return NULL; /* the DLQ write failed: the message is redelivered; say so */
    }
    if (malformed) Py_RETURN_TRUE; /* handled: dead-lettered, the loop goes on */
    Py_RETURN_FALSE;
}

static PyObject *message_ack(PyObject *op, PyObject *Py_UNUSED(a)) {
    if (message_finish((MessageObject *)op, ITUNA_HANDLED_OK, NULL) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *message_nack(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = { "reason" };
    PyObject *a[1];
    if (fast_args("nack", args, nargs, kwnames, names, 1, 1, a) < 0) return NULL;
    const char *reason = opt_str(a[0], "reason");
    if (!reason && PyErr_Occurred()) return NULL;
    if (message_finish((MessageObject *)op, ITUNA_HANDLED_ERROR, reason) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *message_dead_letter(PyObject *op, PyObject *reason_o) {
    const char *reason = opt_str(reason_o, "reason");
    if (!reason && PyErr_Occurred()) return NULL;
    if (message_finish((MessageObject *)op, ITUNA_HANDLED_MALFORMED, reason) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *message_json(PyObject *op, PyObject *Py_UNUSED(a)) {
    MessageObject *msg = (MessageObject *)op;
    module_state *st = state_of_type(Py_TYPE(op));
    if (msg->value == Py_None) return PyErr_Format(st->MalformedPayload, "message has no value");
    PyObject *r = PyObject_CallOneArg(st->json_loads, msg->value);
    if (!r && PyErr_ExceptionMatches(PyExc_ValueError)) {
        /* a payload that is not JSON is malformed: raised inside `with`, it goes to the DLQ */
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyErr_NormalizeException(&t, &v, &tb);
        PyObject *s = v ? PyObject_Str(v) : NULL;
        PyErr_Format(st->MalformedPayload, "payload is not JSON: %S", s ? s : Py_None);
        Py_XDECREF(s);
        PyObject *t2, *v2, *tb2;
        PyErr_Fetch(&t2, &v2, &tb2);
        PyErr_NormalizeException(&t2, &v2, &tb2);
        if (v2 && v) PyException_SetCause(v2, Py_NewRef(v));
        PyErr_Restore(t2, v2, tb2);
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
    }
    return r;
}

#define MSG_GET(fname, expr)                                                                                 \
    static PyObject *fname(PyObject *op, void *c) {                                                          \
        (void)c;                                                                                             \
        MessageObject *msg = (MessageObject *)op;                                                            \
        (void)msg;                                                                                           \
        return expr;                                                                                         \
    }
MSG_GET(msg_topic, Py_NewRef(msg->topic))
MSG_GET(msg_value, Py_NewRef(msg->value))
MSG_GET(msg_key, Py_NewRef(msg->key))
MSG_GET(msg_headers, PyList_GetSlice(msg->headers, 0, PY_SSIZE_T_MAX))
MSG_GET(msg_partition, PyLong_FromLong(msg->partition))
MSG_GET(msg_offset, PyLong_FromLongLong(msg->offset))
MSG_GET(msg_timestamp,
        msg->timestamp_ms < 0 ? Py_NewRef(Py_None) : PyFloat_FromDouble(msg->timestamp_ms / 1000.0))
MSG_GET(msg_span, Py_NewRef(msg->span))
MSG_GET(msg_finished, msg->outcome ? PyUnicode_FromString(msg->outcome) : Py_NewRef(Py_None))

static PyObject *message_repr(PyObject *op) {
    MessageObject *msg = (MessageObject *)op;
    return PyUnicode_FromFormat("<ituna.Message %U [%d] @%lld%s%s>", msg->topic, (int)msg->partition,
                                (long long)msg->offset, msg->outcome ? " " : "",
                                msg->outcome ? msg->outcome : "");
}

static int message_traverse(PyObject *op, visitproc visit, void *arg) {
    MessageObject *msg = (MessageObject *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(msg->consumer);
    Py_VISIT(msg->span);
    Py_VISIT(msg->token);
    return 0;
}

static void message_dealloc(PyObject *op) {
    MessageObject *msg = (MessageObject *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if (msg->m) {
        /* dropped unfinished: not committed, so it is redelivered (at-least-once) */
        open_remove(msg);
        if (msg->span) span_detach((SpanObject *)msg->span);
        ituna_message *m = msg->m;
        msg->m = NULL;
        char errstr[ERRSTR_SIZE];
        Py_BEGIN_ALLOW_THREADS ituna_message_done(m, ITUNA_HANDLED_ERROR, "message dropped unfinished",
                                                  errstr, sizeof errstr);
        Py_END_ALLOW_THREADS
    }
    Py_CLEAR(msg->token);
    Py_CLEAR(msg->span);
    Py_CLEAR(msg->topic);
    Py_CLEAR(msg->value);
    Py_CLEAR(msg->key);
    Py_CLEAR(msg->headers);
    Py_CLEAR(msg->consumer);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef message_methods[] = {
    { "__enter__", message_enter, METH_NOARGS,
      "__enter__($self, /)\n--\n\n"
      "Make the message's CONSUMER span current; returns the message." },
    { "__exit__", (PyCFunction)(void (*)(void))message_exit, METH_FASTCALL,
      "__exit__($self, exc_type=None, exc_value=None, traceback=None, /)\n--\n\n"
      "Finish the message: normal exit -> committed; ituna.MalformedPayload -> dead-letter topic,\n"
      "exception swallowed; any other exception -> span error, redelivered, exception propagates." },
    { "ack", message_ack, METH_NOARGS,
      "ack($self, /)\n--\n\n"
      "ack(): finish as handled; the offset is committed." },
    { "nack", (PyCFunction)(void (*)(void))message_nack, METH_FASTCALL | METH_KEYWORDS,
      "nack($self, /, reason=None)\n--\n\n"
      "nack(reason=None): finish as failed; span error, the message is redelivered." },
    { "dead_letter", message_dead_letter, METH_O,
      "dead_letter($self, reason, /)\n--\n\n"
      "dead_letter(reason): send to <topic>.dlq with the reason in a header; then commit." },
    { "json", message_json, METH_NOARGS,
      "json($self, /)\n--\n\n"
      "json(): the value parsed as JSON; raises ituna.MalformedPayload if it is not JSON." },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef message_getset[] = {
    { "topic", msg_topic, NULL, "Topic name.", NULL },
    { "value", msg_value, NULL, "Payload bytes (None for a null value).", NULL },
    { "key", msg_key, NULL, "Key bytes or None.", NULL },
    { "headers", msg_headers, NULL, "List of (str, bytes or None) headers, in order.", NULL },
    { "partition", msg_partition, NULL, "Partition number.", NULL },
    { "offset", msg_offset, NULL, "Offset in the partition.", NULL },
    { "timestamp", msg_timestamp, NULL, "Message timestamp in seconds since the epoch, or None.", NULL },
    { "span", msg_span, NULL, "The CONSUMER span 'process <topic>' (set attributes on it).", NULL },
    { "finished", msg_finished, NULL, "None while open, else 'ok', 'error' or 'dead-letter'.", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyObject *no_new(PyTypeObject *tp, PyObject *a, PyObject *k) {
    (void)a;
    (void)k;
    return PyErr_Format(PyExc_TypeError, "cannot create '%s' instances directly", tp->tp_name);
}

static PyType_Slot message_slots[] = {
    { Py_tp_doc, "A consumed Kafka message with its CONSUMER span. Use it with `with` (see Consumer)." },
    { Py_tp_new, no_new },
    { Py_tp_dealloc, message_dealloc },
    { Py_tp_traverse, message_traverse },
    { Py_tp_methods, message_methods },
    { Py_tp_getset, message_getset },
    { Py_tp_repr, message_repr },
    { 0, NULL },
};

PyType_Spec Message_spec = {
    .name = "ituna.Message",
    .basicsize = sizeof(MessageObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = message_slots,
};

/* ---- EmbeddedBroker --------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD ituna_mock_cluster *m;
} BrokerObject;

PyObject *py_start_embedded_broker(PyObject *mod, PyObject *args, PyObject *kw) {
    static char *kwlist[] = { "n_brokers", "partitions", NULL };
    int n = 1, parts = 4;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|ii:start_embedded_broker", kwlist, &n, &parts)) return NULL;
    module_state *st = state_of_module(mod);
    ituna_mock_cluster *m = NULL;
    char errstr[ERRSTR_SIZE] = "";
    ituna_err err;
    Py_BEGIN_ALLOW_THREADS err = ituna_mock_cluster_start(n, parts, &m, errstr, sizeof errstr);
    Py_END_ALLOW_THREADS if (err != ITUNA_OK) return raise_err(st, err, errstr);
    BrokerObject *b = (BrokerObject *)st->BrokerType->tp_alloc(st->BrokerType, 0);
    if (!b) {
        ituna_mock_cluster_stop(m);
        return NULL;
    }
    b->m = m;
    return (PyObject *)b;
}

static void broker_stop_impl(BrokerObject *b) {
    ituna_mock_cluster *m = b->m;
    b->m = NULL;
    if (!m) return;
    Py_BEGIN_ALLOW_THREADS ituna_mock_cluster_stop(m);
    Py_END_ALLOW_THREADS
}

static PyObject *broker_stop(PyObject *op, PyObject *Py_UNUSED(a)) {
    broker_stop_impl((BrokerObject *)op);
    Py_RETURN_NONE;
}

static PyObject *broker_exit(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    (void)args;
    (void)nargs;
    broker_stop_impl((BrokerObject *)op);
    Py_RETURN_FALSE;
}

static PyObject *broker_bootstrap(PyObject *op, void *c) {
    (void)c;
    BrokerObject *b = (BrokerObject *)op;
    if (!b->m) return PyErr_Format(state_of_type(Py_TYPE(op))->StateError, "embedded broker is stopped");
    return PyUnicode_FromString(ituna_mock_cluster_bootstrap(b->m));
}

static void broker_dealloc(PyObject *op) {
    PyTypeObject *tp = Py_TYPE(op);
    broker_stop_impl((BrokerObject *)op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef broker_methods[] = {
    { "stop", broker_stop, METH_NOARGS,
      "stop($self, /)\n--\n\n"
      "stop(): stop the embedded broker. Idempotent." },
    { "__enter__", consumer_enter, METH_NOARGS,
      "__enter__($self, /)\n--\n\n"
      "Return the broker." },
    { "__exit__", (PyCFunction)(void (*)(void))broker_exit, METH_FASTCALL,
      "__exit__($self, exc_type=None, exc_value=None, traceback=None, /)\n--\n\n"
      "stop() the broker." },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef broker_getset[] = {
    { "bootstrap", broker_bootstrap, NULL, "'127.0.0.1:port,...' of the embedded broker.", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyType_Slot broker_slots[] = {
    { Py_tp_doc, "librdkafka's built-in Kafka-protocol TEST cluster running in this process\n"
                 "(not Apache Kafka). Made by ituna.start_embedded_broker()." },
    { Py_tp_new, no_new },
    { Py_tp_dealloc, broker_dealloc },
    { Py_tp_methods, broker_methods },
    { Py_tp_getset, broker_getset },
    { 0, NULL },
};

PyType_Spec Broker_spec = {
    .name = "ituna.EmbeddedBroker",
    .basicsize = sizeof(BrokerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = broker_slots,
};
