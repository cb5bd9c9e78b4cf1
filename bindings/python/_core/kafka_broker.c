/* kafka_broker.c - ituna.EmbeddedBroker: librdkafka's built-in test cluster. */
#include "module.h"

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

static PyObject *broker_create_topic(PyObject *op, PyObject *args, PyObject *kw) {
    static char *kwlist[] = { "topic", "partitions", NULL };
    const char *topic = NULL;
    int parts = 4;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|i:create_topic", kwlist, &topic, &parts)) return NULL;
    BrokerObject *b = (BrokerObject *)op;
    module_state *st = state_of_type(Py_TYPE(op));
    if (!b->m) return PyErr_Format(st->StateError, "embedded broker is stopped");
    char errstr[ERRSTR_SIZE] = "";
    ituna_err err = ituna_mock_cluster_create_topic(b->m, topic, parts, errstr, sizeof errstr);
    if (err != ITUNA_OK) return raise_err(st, err, errstr);
    Py_RETURN_NONE;
}

static PyMethodDef broker_methods[] = {
    { "create_topic", (PyCFunction)(void (*)(void))broker_create_topic, METH_VARARGS | METH_KEYWORDS,
      "create_topic($self, /, topic, partitions=4)\n--\n\n"
      "create_topic(topic, partitions=4): create the topic now (an existing one is kept), so\n"
      "consumers can subscribe before anything is produced." },
    { "stop", broker_stop, METH_NOARGS,
      "stop($self, /)\n--\n\n"
      "stop(): stop the embedded broker. Idempotent." },
    { "__enter__", self_enter, METH_NOARGS,
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