/* kafka_args.c - what the Kafka types share: librdkafka properties from keyword
 * arguments, optional str arguments, the tracer a client uses, and the set of open
 * clients that ituna.shutdown() closes. */
#include "module.h"

void props_free(props *p) {
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
int split_kwargs(PyObject *kw, const char *const *known, PyObject **out, int nknown, props *p) {
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

const char *opt_str(PyObject *o, const char *what) {
    if (!o || o == Py_None) return NULL;
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be str or None, not %.100s", what, Py_TYPE(o)->tp_name);
        return NULL;
    }
    return PyUnicode_AsUTF8(o);
}

PyObject *resolve_tracer(module_state *st, PyObject *t) {
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
PyObject *track_live(module_state *st, PyObject *o) {
    PyObject *r = PyObject_CallMethod(st->live, "add", "O", o);
    if (!r) {
        Py_DECREF(o);
        return NULL;
    }
    Py_DECREF(r);
    return o;
}

PyObject *self_enter(PyObject *self, PyObject *Py_UNUSED(a)) {
    return Py_NewRef(self);
}

PyObject *client_exit(PyObject *op, PyObject *const *args, Py_ssize_t nargs, int (*close)(PyObject *op)) {
    if (close(op) < 0) {
        if (nargs < 2 || args[1] == Py_None) return NULL;
        PyErr_WriteUnraisable(op);
    }
    Py_RETURN_FALSE;
}

void client_dealloc(PyObject *op, void (*before)(PyObject *op), void (*destroy)(void *core)) {
    ClientObject *self = (ClientObject *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if (self->weakreflist) PyObject_ClearWeakRefs(op);
    if (before) before(op);
    if (self->core) {
        void *core = self->core;
        self->core = NULL;
        Py_BEGIN_ALLOW_THREADS destroy(core);
        Py_END_ALLOW_THREADS
    }
    inquiry clear = (inquiry)PyType_GetSlot(tp, Py_tp_clear);
    if (clear) clear(op);
    Py_CLEAR(self->tracer);
    tp->tp_free(op);
    Py_DECREF(tp);
}

PyObject *client_create(module_state *st, PyObject *op,
                        ituna_err (*create)(ituna_tracer *t, const void *opts, void **core, char *errstr,
                                            size_t errstr_size),
                        const void *opts) {
    ClientObject *self = (ClientObject *)op;
    ituna_tracer *t = ((TracerObject *)self->tracer)->tracer;
    char errstr[ERRSTR_SIZE] = "";
    ituna_err err;
    Py_BEGIN_ALLOW_THREADS err = create(t, opts, &self->core, errstr, sizeof errstr);
    Py_END_ALLOW_THREADS if (err == ITUNA_OK) return track_live(st, op);
    self->closed = 1;
    Py_DECREF(op);
    return raise_err(st, err, errstr);
}

PyObject *client_closed(PyObject *op, void *c) {
    (void)c;
    return PyBool_FromLong(((ClientObject *)op)->closed);
}

PyMemberDef client_members[] = {
    { "__weaklistoffset__", T_PYSSIZET, offsetof(ClientObject, weakreflist), READONLY, NULL },
    { NULL, 0, 0, 0, NULL },
};

int client_traverse(PyObject *op, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(((ClientObject *)op)->tracer);
    return 0;
}

PyObject *no_new(PyTypeObject *tp, PyObject *a, PyObject *k) {
    (void)a;
    (void)k;
    return PyErr_Format(PyExc_TypeError, "cannot create '%s' instances directly", tp->tp_name);
}
