/* kafka_broker.c - librdkafka's built-in test cluster for ituna.EmbeddedBroker (the
 * class is ituna/_broker.py's): a capsule holding the running cluster, and the calls
 * the class makes on it. */
#include "module.h"

#define CLUSTER_NAME "ituna.mock_cluster"

/* The capsule's cluster slot (NULL once stopped); NULL with an exception. */
static ituna_mock_cluster **cluster_slot(PyObject *cap) {
    return PyCapsule_GetPointer(cap, CLUSTER_NAME);
}

/* The running cluster of the capsule; NULL with an exception (StateError once stopped). */
static ituna_mock_cluster *live_cluster(PyObject *mod, PyObject *cap) {
    ituna_mock_cluster **slot = cluster_slot(cap);
    if (slot && !*slot) PyErr_SetString(state_of_module(mod)->StateError, "embedded broker is stopped");
    return slot ? *slot : NULL;
}

static void cluster_stop(ituna_mock_cluster **slot) {
    ituna_mock_cluster *m = *slot;
    *slot = NULL;
    if (!m) return;
    Py_BEGIN_ALLOW_THREADS ituna_mock_cluster_stop(m);
    Py_END_ALLOW_THREADS
}

/* A cluster never stopped stops with the last reference to its capsule. */
static void cluster_free(PyObject *cap) {
    ituna_mock_cluster **slot = cluster_slot(cap);
    if (slot) cluster_stop(slot);
    PyMem_Free(slot);
}

PyObject *py_mock_cluster_start(PyObject *mod, PyObject *args) {
    int n, parts;
    if (!PyArg_ParseTuple(args, "ii:mock_cluster_start", &n, &parts)) return NULL;
    ituna_mock_cluster **slot = PyMem_Calloc(1, sizeof *slot);
    if (!slot) return PyErr_NoMemory();
    char errstr[ERRSTR_SIZE] = "";
    ituna_err err;
    Py_BEGIN_ALLOW_THREADS err = ituna_mock_cluster_start(n, parts, slot, errstr, sizeof errstr);
    Py_END_ALLOW_THREADS if (err != ITUNA_OK) {
        PyMem_Free(slot);
        return raise_err(state_of_module(mod), err, errstr);
    }
    PyObject *cap = PyCapsule_New(slot, CLUSTER_NAME, cluster_free);
    if (!cap) {
        cluster_stop(slot);
        PyMem_Free(slot);
    }
    return cap;
}

PyObject *py_mock_cluster_bootstrap(PyObject *mod, PyObject *cap) {
    ituna_mock_cluster *m = live_cluster(mod, cap);
    return m ? PyUnicode_FromString(ituna_mock_cluster_bootstrap(m)) : NULL;
}

PyObject *py_mock_cluster_create_topic(PyObject *mod, PyObject *args) {
    PyObject *cap;
    const char *topic;
    int parts;
    if (!PyArg_ParseTuple(args, "Osi:mock_cluster_create_topic", &cap, &topic, &parts)) return NULL;
    ituna_mock_cluster *m = live_cluster(mod, cap);
    if (!m) return NULL;
    char errstr[ERRSTR_SIZE] = "";
    ituna_err err = ituna_mock_cluster_create_topic(m, topic, parts, errstr, sizeof errstr);
    if (err != ITUNA_OK) return raise_err(state_of_module(mod), err, errstr);
    Py_RETURN_NONE;
}

PyObject *py_mock_cluster_stop(PyObject *mod, PyObject *cap) {
    (void)mod;
    ituna_mock_cluster **slot = cluster_slot(cap);
    if (!slot) return NULL;
    cluster_stop(slot);
    Py_RETURN_NONE;
}
