/* attrs.c - converting Python attribute values (str, bool, int, float and
 * homogeneous lists/tuples of them) into the core's ituna_attr. Strings are
 * borrowed from the Python objects, which the caller keeps alive for the call. */
#include "module.h"

void attrbuf_init(attrbuf *b) {
    b->attrs = b->inline_attrs;
    b->n = 0;
    b->allocs = NULL;
    b->n_allocs = b->cap_allocs = 0;
    b->lenient = 0;
}

int attr_dropped(attrbuf *b) {
    if (!b->lenient ||
        (!PyErr_ExceptionMatches(PyExc_TypeError) && !PyErr_ExceptionMatches(PyExc_ValueError) &&
         !PyErr_ExceptionMatches(PyExc_OverflowError)))
        return 0;
    /* as opentelemetry-sdk does: a warning on the logger (_support), the attribute left out */
    PyObject *tp, *exc, *tb;
    PyErr_Fetch(&tp, &exc, &tb);
    PyErr_NormalizeException(&tp, &exc, &tb);
    PyObject *args = PyTuple_Pack(1, exc), *r = args ? call_support("attribute_dropped", args, NULL) : NULL;
    Py_XDECREF(r);
    Py_XDECREF(args);
    Py_XDECREF(tp);
    Py_XDECREF(exc);
    Py_XDECREF(tb);
    PyErr_Clear();
    return 1;
}

void attrbuf_free(attrbuf *b) {
    for (size_t i = 0; i < b->n_allocs; i++) PyMem_Free(b->allocs[i]);
    PyMem_Free(b->allocs);
    if (b->attrs != b->inline_attrs) PyMem_Free(b->attrs);
    attrbuf_init(b);
}

static void *attrbuf_alloc(attrbuf *b, size_t size) {
    if (b->n_allocs == b->cap_allocs) {
        size_t nc = b->cap_allocs ? b->cap_allocs * 2 : 4;
        void **na = PyMem_Realloc(b->allocs, nc * sizeof *na);
        if (!na) {
            PyErr_NoMemory();
            return NULL;
        }
        b->allocs = na;
        b->cap_allocs = nc;
    }
    void *p = PyMem_Malloc(size ? size : 1);
    if (!p) {
        PyErr_NoMemory();
        return NULL;
    }
    b->allocs[b->n_allocs++] = p;
    return p;
}

/* v as the core's item (bool before int: it is one): 0, 1 when v is no str, bool, int
 * or float, -1 with an exception. */
static int item_of(PyObject *v, ituna_attr_item *it) {
    if (PyUnicode_Check(v)) {
        Py_ssize_t len;
        it->type = ITUNA_ATTR_STRING;
        it->v.s.ptr = PyUnicode_AsUTF8AndSize(v, &len);
        it->v.s.len = (size_t)len;
        return it->v.s.ptr ? 0 : -1;
    }
    if (PyBool_Check(v)) {
        it->type = ITUNA_ATTR_BOOL;
        it->v.b = v == Py_True;
    } else if (PyLong_Check(v)) {
        it->type = ITUNA_ATTR_INT;
        it->v.i = PyLong_AsLongLong(v);
        if (it->v.i == -1 && PyErr_Occurred()) return -1;
    } else if (PyFloat_Check(v)) {
        it->type = ITUNA_ATTR_DOUBLE;
        it->v.d = PyFloat_AS_DOUBLE(v);
    } else {
        return 1;
    }
    return 0;
}

/* The core's reader of item i of a list or tuple. */
static int array_item(void *seq, size_t i, ituna_attr_item *it) {
    return item_of(PySequence_Fast_ITEMS((PyObject *)seq)[i], it);
}

static int convert_array(attrbuf *b, PyObject *key, PyObject *seq, ituna_attr *out) {
    size_t n = (size_t)PySequence_Fast_GET_SIZE(seq), bad;
    void *items = attrbuf_alloc(b, ituna_attr_array_size(n));
    if (!items) return -1;
    int rc = ituna_attr_array_build(out, n, array_item, seq, 0, items, &bad);
    if (rc > 0)
        PyErr_Format(PyExc_TypeError,
                     "attribute %R: a sequence value must hold only str, only bool, only int or only float",
                     key);
    return rc == 0 ? 0 : -1;
}

int attr_convert(attrbuf *b, PyObject *key, PyObject *value, ituna_attr *out) {
    if (!PyUnicode_Check(key)) {
        PyErr_Format(PyExc_TypeError, "attribute key must be str, not %.100s", Py_TYPE(key)->tp_name);
        return -1;
    }
    Py_ssize_t klen;
    out->key = PyUnicode_AsUTF8AndSize(key, &klen);
    if (!out->key) return -1;
    out->key_len = (size_t)klen;
    const char *why = ituna_attr_key_error(out->key, out->key_len);
    if (why) {
        PyErr_Format(PyExc_ValueError, "attribute %R: %s", key, why);
        return -1;
    }
    ituna_attr_item it;
    int rc = item_of(value, &it);
    if (rc < 0) return -1;
    if (rc == 0) { /* a single value */
        out->type = it.type;
        if (it.type == ITUNA_ATTR_STRING) {
            out->v.s.ptr = it.v.s.ptr;
            out->v.s.len = it.v.s.len;
        } else if (it.type == ITUNA_ATTR_INT) {
            out->v.i = it.v.i;
        } else if (it.type == ITUNA_ATTR_DOUBLE) {
            out->v.d = it.v.d;
        } else {
            out->v.b = it.v.b;
        }
        return 0;
    }
    if (PyList_Check(value) || PyTuple_Check(value)) return convert_array(b, key, value, out);
    PyErr_Format(PyExc_TypeError,
                 "attribute %R: value must be str, bool, int, float or a list of one of them, not %.100s",
                 key, Py_TYPE(value)->tp_name);
    return -1;
}

int attrbuf_from_dict(attrbuf *b, PyObject *dict) {
    b->n = 0;
    if (!dict || dict == Py_None) return 0;
    if (!PyDict_Check(dict)) {
        PyErr_Format(PyExc_TypeError, "attributes must be a dict, not %.100s", Py_TYPE(dict)->tp_name);
        return -1;
    }
    Py_ssize_t n = PyDict_GET_SIZE(dict);
    if (n > (Py_ssize_t)(sizeof b->inline_attrs / sizeof b->inline_attrs[0])) {
        b->attrs = PyMem_Malloc((size_t)n * sizeof *b->attrs);
        if (!b->attrs) {
            b->attrs = b->inline_attrs;
            PyErr_NoMemory();
            return -1;
        }
    }
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(dict, &pos, &k, &v)) {
        if (attr_convert(b, k, v, &b->attrs[b->n]) == 0)
            b->n++;
        else if (!attr_dropped(b))
            return -1;
    }
    return 0;
}

int attrbuf_from_dict_snapshot(attrbuf *b, PyObject *dict, PyObject **keep) {
    *keep = NULL;
    if (!dict || dict == Py_None || !PyDict_Check(dict)) return attrbuf_from_dict(b, dict);
    /* The copy owns every value, and lists become tuples, so the borrowed strings
     * survive another thread changing the caller's dict or lists meanwhile. */
    PyObject *snap = PyDict_New();
    if (!snap) return -1;
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(dict, &pos, &k, &v)) {
        PyObject *v2 = PyList_Check(v) ? PySequence_Tuple(v) : Py_NewRef(v);
        int rc = v2 ? PyDict_SetItem(snap, k, v2) : -1;
        Py_XDECREF(v2);
        if (rc < 0) {
            Py_DECREF(snap);
            return -1;
        }
    }
    *keep = snap;
    return attrbuf_from_dict(b, snap);
}
