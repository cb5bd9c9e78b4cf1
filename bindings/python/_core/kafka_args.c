/* kafka_args.c - what the Kafka types share: the call into ituna/_support.py that
 * checks their arguments, optional str arguments, the tracer a client uses, and the
 * set of open clients that ituna.shutdown() closes. */
#include "module.h"

/* The function name of ituna/_support.py called with args and kw (cold paths only:
 * the module is imported by then, so this is a dict lookup). */
PyObject *call_support(const char *name, PyObject *args, PyObject *kw) {
    PyObject *mod = PyImport_ImportModule("ituna._support");
    PyObject *fn = mod ? PyObject_GetAttrString(mod, name) : NULL;
    Py_XDECREF(mod);
    PyObject *r = fn ? PyObject_Call(fn, args, kw) : NULL;
    Py_XDECREF(fn);
    return r;
}

PyObject *support_repr(PyObject *self) {
    PyObject *args = PyTuple_Pack(1, self), *r = args ? call_support("repr_of", args, NULL) : NULL;
    Py_XDECREF(args);
    return r;
}

/* A NULL-terminated array of the UTF-8 of a tuple of str (checked by the caller),
 * valid while the tuple lives; free with PyMem_Free. NULL with an exception. */
const char **str_array(PyObject *tuple) {
    Py_ssize_t n = PyTuple_GET_SIZE(tuple);
    const char **v = PyMem_Calloc((size_t)n + 1, sizeof *v);
    if (!v) {
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (!(v[i] = PyUnicode_AsUTF8(PyTuple_GET_ITEM(tuple, i)))) {
            PyMem_Free(v);
            return NULL;
        }
    return v;
}

const char *opt_str(PyObject *o, const char *what) {
    if (!o || o == Py_None) return NULL;
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be str or None, not %.100s", what, Py_TYPE(o)->tp_name);
        return NULL;
    }
    return PyUnicode_AsUTF8(o);
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
