/* kafka_consumer.c - ituna.Consumer and ituna.Message over the core's consumer,
 * whose loop policy (the message left open, waiting for the assignment, stop,
 * bounded redelivery, DLQ) is the core's. Here: Python types, the `with msg:` and
 * iteration idioms, the GIL released around blocking calls, polled in slices so
 * Ctrl-C is seen. */
#include "module.h"

typedef struct MessageObject MessageObject;

typedef struct {
    CLIENT_HEAD
    MessageObject *pending; /* borrowed: the last message handed out, while unfinished */
    PyObject *topic;        /* the last message's topic str, reused while it is the same */
} ConsumerObject;

/* A header kept in a message's one block (Message.hdr): its key's and value's
 * lengths, their bytes following the entries; vlen < 0: a null value. */
typedef struct {
    size_t klen;
    Py_ssize_t vlen;
} hdr_ent;

struct MessageObject {
    PyObject_HEAD ituna_message *m; /* NULL once released to the core */
    ConsumerObject *consumer;       /* strong */
    PyObject *span;                 /* Span wrapper (borrowed C span) */
    PyObject *token, *msg_token;    /* current span / current message while entered */
    PyObject *topic, *value, *key;
    PyObject *headers; /* list built from hdr when first asked for, or NULL */
    hdr_ent *hdr;      /* the headers copied out of the core's message (PyMem), or NULL */
    size_t n_hdr;
    int32_t partition;
    int64_t offset, timestamp_ms;
    const char *outcome; /* "ok", "error", "dead-letter" once finished */
};

ituna_message *message_core(PyObject *o) {
    module_state *st = state_of_type(Py_TYPE(o));
    if (!st || !PyObject_TypeCheck(o, st->MessageType)) return NULL;
    MessageObject *msg = (MessageObject *)o;
    return msg->outcome ? NULL : msg->m;
}

static int consumer_enter_busy(ConsumerObject *c) {
    if (c->busy) {
        PyErr_SetString(state_of_type(Py_TYPE(c))->StateError,
                        "consumer is in use by another thread (one thread per consumer)");
        return -1;
    }
    c->busy = 1;
    return 0;
}

/* Finish msg with result. Releases the GIL (a DLQ write is waited for). */
static int message_finish(MessageObject *msg, ituna_handler_result result, const char *reason) {
    module_state *st = state_of_type(Py_TYPE(msg));
    if (msg->outcome) {
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
    if (c->pending == msg) c->pending = NULL;
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

/* The message's topic as a str: the consumer's last one while the name is the same. */
static PyObject *topic_str(ConsumerObject *c, const char *topic) {
    Py_ssize_t n;
    const char *last = c->topic ? PyUnicode_AsUTF8AndSize(c->topic, &n) : NULL;
    if (last && strcmp(last, topic) == 0) return Py_NewRef(c->topic);
    PyErr_Clear();
    PyObject *t = PyUnicode_DecodeUTF8(topic, (Py_ssize_t)strlen(topic), "replace");
    if (t) Py_XSETREF(c->topic, Py_NewRef(t));
    return t;
}

/* Copy m's headers into one block (Python objects are made only when asked for:
 * most handlers never read them). 0, or -1 with MemoryError. */
static int headers_copy(MessageObject *o, ituna_message *m) {
    size_t nh = ituna_message_header_count(m), size = 0;
    if (!nh) return 0;
    for (size_t i = 0; i < nh; i++) {
        const char *hk;
        const void *hv;
        size_t hl;
        if (ituna_message_header(m, i, &hk, &hv, &hl)) size += strlen(hk) + (hv ? hl : 0);
    }
    hdr_ent *e = PyMem_Malloc(nh * sizeof *e + size + 1);
    if (!e) {
        PyErr_NoMemory();
        return -1;
    }
    char *data = (char *)(e + nh);
    for (size_t i = 0; i < nh; i++) {
        const char *hk = "";
        const void *hv = NULL;
        size_t hl = 0;
        if (!ituna_message_header(m, i, &hk, &hv, &hl)) {
            hk = "";
            hv = NULL;
        }
        e[i].klen = strlen(hk);
        memcpy(data, hk, e[i].klen);
        data += e[i].klen;
        e[i].vlen = hv ? (Py_ssize_t)hl : -1;
        if (hv && hl) memcpy(data, hv, hl);
        data += hv ? hl : 0;
    }
    o->hdr = e;
    o->n_hdr = nh;
    return 0;
}

/* The headers list, built on first use. Borrowed; NULL with an exception. */
static PyObject *message_headers(MessageObject *o) {
    if (o->headers) return o->headers;
    PyObject *l = PyList_New((Py_ssize_t)o->n_hdr);
    if (!l) return NULL;
    const char *data = (const char *)(o->hdr + o->n_hdr);
    for (size_t i = 0; i < o->n_hdr; i++) {
        const hdr_ent *e = &o->hdr[i];
        const char *hv = data + e->klen;
        /* y# of a NULL pointer (a null header value) is None */
        PyObject *t = Py_BuildValue("(Ny#)", PyUnicode_DecodeUTF8(data, (Py_ssize_t)e->klen, "replace"),
                                    e->vlen < 0 ? NULL : hv, e->vlen < 0 ? (Py_ssize_t)0 : e->vlen);
        if (!t) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, t);
        data = hv + (e->vlen < 0 ? 0 : e->vlen);
    }
    o->headers = l;
    return l;
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
    o->topic = topic_str(c, topic ? topic : "");
    o->value = val ? PyBytes_FromStringAndSize(val, (Py_ssize_t)vlen) : Py_NewRef(Py_None);
    o->key = key ? PyBytes_FromStringAndSize(key, (Py_ssize_t)klen) : Py_NewRef(Py_None);
    o->span = span_wrap_borrowed(st, ituna_message_span(m), c->tracer);
    if (!o->topic || !o->value || !o->key || !o->span || headers_copy(o, m) < 0) goto fail;
    c->pending = o;
    return (PyObject *)o;
fail:
    /* o->m is finished as an error (redelivered) by the dealloc */
    Py_DECREF(o);
    return NULL;
}

/* Poll once for up to timeout_ms (< 0: no limit) in slices. Returns a Message, Py_None
 * (timeout or stop), or NULL with an exception. */
static PyObject *consumer_poll_ms(ConsumerObject *self, int timeout_ms, int *stopped) {
    module_state *st = state_of_type(Py_TYPE(self));
    if (stopped) *stopped = 0;
    if (self->closed || !self->c) {
        PyErr_SetString(st->StateError, "consumer is closed");
        return NULL;
    }
    MessageObject *prev = self->pending;
    if (prev && !prev->token) { /* the loop came back without `with`: the message was handled */
        if (message_finish(prev, ITUNA_HANDLED_OK, NULL) < 0) return NULL;
    } else if (prev) { /* polled inside its `with`: the core finishes it as an error */
        span_detach((SpanObject *)prev->span);
        prev->outcome = "error";
        self->pending = NULL;
    }
    uint64_t deadline = ituna_deadline_ms(timeout_ms);
    for (;;) {
        int slice = ituna_slice_ms(deadline, SLICE_MS);
        if (consumer_enter_busy(self) < 0) return NULL;
        ituna_message *m = NULL;
        char errstr[ERRSTR_SIZE] = "";
        ituna_err err;
        /* Python's current span (contextvars or OpenTelemetry's context) is the core
         * thread's during the poll: the ambient parent in link mode, a link in parent mode */
        ituna_span_context amb_tmp;
        const ituna_span_context *amb = context_current(st, &amb_tmp);
        int tok = 0;
        if (amb && ituna_context_attach(amb, &tok) != ITUNA_OK) amb = NULL;
        Py_BEGIN_ALLOW_THREADS err = ituna_consumer_poll(self->c, slice, &m, errstr, sizeof errstr);
        Py_END_ALLOW_THREADS self->busy = 0;
        if (amb) ituna_context_detach(tok);
        if (err != ITUNA_OK) return raise_err(st, err, errstr);
        if (m) return message_from(self, m);
        if (ituna_consumer_stopped(self->c)) { /* one stop() ends one loop */
            ituna_consumer_resume(self->c);
            if (stopped) *stopped = 1;
            Py_RETURN_NONE;
        }
        if (PyErr_CheckSignals() < 0) return NULL;
        if (ituna_now_ns() / 1000000 >= deadline) Py_RETURN_NONE;
    }
}

static ituna_err create_consumer(ituna_tracer *t, const void *opts, void **core, char *errstr, size_t size) {
    ituna_consumer *c = NULL;
    ituna_err err = ituna_consumer_create(t, ituna_tracer_config(t), opts, &c, errstr, size);
    *core = c;
    return err;
}

static PyObject *consumer_new(PyTypeObject *tp, PyObject *args, PyObject *kw) {
    module_state *st = state_of_type(tp);
    /* ituna/_support.py checks the arguments and gathers the librdkafka properties */
    PyObject *r = call_support("Consumer", args, kw), *topics_t, *props_t;
    const char *group, *bootstrap, *mode_name, *dlq, **topics = NULL, **props = NULL;
    ituna_consumer_context_mode mode = ITUNA_CONTEXT_FROM_CONFIG;
    PyObject *res = NULL, *tracer;
    if (!r || !PyArg_ParseTuple(r, "OszO!Ozz", &topics_t, &group, &bootstrap, st->TracerType, &tracer,
                                &props_t, &mode_name, &dlq))
        goto done;
    if (mode_name && ituna_context_mode_from_name(mode_name, &mode) != ITUNA_OK) {
        PyErr_Format(PyExc_ValueError, "context_mode must be 'parent', 'link' or None, not '%s'", mode_name);
        goto done;
    }
    if (!(topics = str_array(topics_t)) || !(props = str_array(props_t))) goto done;
    ConsumerObject *self = (ConsumerObject *)tp->tp_alloc(tp, 0);
    if (!self) goto done;
    self->tracer = Py_NewRef(tracer);
    ituna_consumer_options o;
    memset(&o, 0, sizeof o);
    o.bootstrap = bootstrap;
    o.group = group;
    o.topics = topics;
    o.properties = props;
    o.context_mode = mode;
    o.dlq_suffix = dlq;
    res = client_create(st, (PyObject *)self, create_consumer, &o);
done:
    PyMem_Free(topics);
    PyMem_Free(props);
    Py_XDECREF(r);
    return res;
}

static PyObject *consumer_poll(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = { "timeout" };
    PyObject *a[1];
    if (fast_args("poll", args, nargs, kwnames, names, 1, 1, a) < 0) return NULL;
    /* a negative timeout waits as None does (Lua's poll(-1), confluent-kafka's poll(-1)) */
    if (a[0] && !PyBool_Check(a[0]) && (PyFloat_Check(a[0]) || PyLong_Check(a[0]))) {
        double s = PyFloat_AsDouble(a[0]);
        if (s == -1.0 && PyErr_Occurred())
            PyErr_Clear(); /* out of range: timeout_ms_from says so */
        else if (s < 0)
            a[0] = NULL;
    }
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

/* A message that arrives while waiting is kept by the core for the next poll. */
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
    ConsumerObject *self = (ConsumerObject *)op;
    module_state *st = state_of_type(Py_TYPE(op));
    if (self->closed || !self->c) return PyErr_Format(st->StateError, "consumer is closed");
    uint64_t deadline = ituna_deadline_ms(ms);
    int assigned = 0;
    for (;;) { /* in slices so Ctrl-C is seen */
        int slice = ituna_slice_ms(deadline, SLICE_MS);
        if (consumer_enter_busy(self) < 0) return NULL;
        char errstr[ERRSTR_SIZE] = "";
        ituna_err err;
        Py_BEGIN_ALLOW_THREADS err =
            ituna_consumer_wait_assigned(self->c, slice, &assigned, errstr, sizeof errstr);
        Py_END_ALLOW_THREADS self->busy = 0;
        if (err != ITUNA_OK) return raise_err(st, err, errstr);
        if (assigned || slice < SLICE_MS || ituna_consumer_stopped(self->c)) break;
        if (PyErr_CheckSignals() < 0) return NULL;
    }
    return PyBool_FromLong(assigned);
}

static PyObject *consumer_assignment_count(PyObject *op, void *c) {
    (void)c;
    ConsumerObject *self = (ConsumerObject *)op;
    return PyLong_FromLong(self->c ? ituna_consumer_assignment_count(self->c) : 0);
}

static PyObject *consumer_stop(PyObject *op, PyObject *Py_UNUSED(a)) {
    ConsumerObject *self = (ConsumerObject *)op;
    if (self->c) ituna_consumer_stop(self->c);
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
    /* an unfinished message at close is not committed: it is redelivered */
    int rc = 0;
    if (self->pending && !self->pending->outcome)
        rc = message_finish(self->pending, ITUNA_HANDLED_ERROR,
                            "consumer closed before the message was finished");
    ituna_consumer *c = self->c;
    self->closed = 1;
    Py_BEGIN_ALLOW_THREADS ituna_consumer_close(c);
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

static int consumer_close_op(PyObject *op) {
    return consumer_close_impl((ConsumerObject *)op);
}

static PyObject *consumer_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return client_exit(self, args, nargs, consumer_close_op);
}

static void consumer_destroy(void *c) {
    ituna_consumer_destroy(c);
}

/* every Message holds a reference, so none is alive here */
static void consumer_clear_topic(PyObject *op) {
    Py_CLEAR(((ConsumerObject *)op)->topic);
}

static void consumer_dealloc(PyObject *op) {
    client_dealloc(op, consumer_clear_topic, consumer_destroy);
}

static PyMethodDef consumer_methods[] = {
    { "poll", (PyCFunction)(void (*)(void))consumer_poll, METH_FASTCALL | METH_KEYWORDS,
      "poll($self, /, timeout=None)\n--\n\n"
      "poll(timeout=None) -> Message or None: wait up to timeout seconds (None or < 0: until a\n"
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
    CLIENT_WITH_METHODS(consumer_exit),
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef consumer_getset[] = {
    { "closed", client_closed, NULL, "True after close().", NULL },
    { "assignment_count", consumer_assignment_count, NULL,
      "Partitions currently assigned to this member (0 before the first rebalance; assignment\n"
      "only happens while the consumer is polled, see wait_assigned()).",
      NULL },
    { NULL, NULL, NULL, NULL, NULL },
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
    { Py_tp_traverse, client_traverse },
    { Py_tp_iter, self_iter },
    { Py_tp_iternext, consumer_iternext },
    { Py_tp_methods, consumer_methods },
    { Py_tp_getset, consumer_getset },
    { Py_tp_members, client_members },
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
    if (msg->outcome) return PyErr_Format(st->StateError, "message already finished (%s)", msg->outcome);
    if (msg->token) return PyErr_Format(st->StateError, "message is already entered");
    if (!(msg->token = context_attach(st, msg->span))) return NULL;
    if (!(msg->msg_token = PyContextVar_Set(st->current_msg, op))) return NULL;
    return Py_NewRef(op);
}

static void message_reset_token(MessageObject *msg, module_state *st) {
    if (msg->msg_token) {
        if (PyContextVar_Reset(st->current_msg, msg->msg_token) < 0) PyErr_Clear();
        Py_CLEAR(msg->msg_token);
    }
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
    if (msg->outcome) Py_RETURN_FALSE; /* finished inside the block (ack/nack/dead_letter, a poll) */
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
        if (!malformed) { /* the handler's exception propagates, ours as its note (_support) */
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            PyObject *pair = v ? PyTuple_Pack(2, exc, v) : NULL;
            PyObject *r = pair ? call_support("finish_failed_note", pair, NULL) : NULL;
            if (!r) PyErr_Clear();
            Py_XDECREF(r);
            Py_XDECREF(pair);
            Py_XDECREF(t);
            Py_XDECREF(v);
            Py_XDECREF(tb);
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

static inline int is_digit(unsigned char c) {
    return (unsigned char)(c - '0') < 10;
}

/* 1 if the bytes hold 19 or more ASCII digits in a row. Looks at every 19th byte
 * while they are not digits: a run of 19 covers one of them. */
static int long_digit_run(PyObject *bytes) {
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(bytes);
    Py_ssize_t n = PyBytes_GET_SIZE(bytes), i = 18; /* the last byte of a first possible run */
    while (i < n) {
        if (!is_digit(p[i])) {
            i += 19;
            continue;
        }
        Py_ssize_t s = i, e = i + 1; /* the run around i: [s, e) */
        while (s > 0 && i - s < 18 && is_digit(p[s - 1])) s--;
        while (e < n && e - s < 19 && is_digit(p[e])) e++;
        if (e - s >= 19) return 1;
        i = e + 19; /* p[e] is not a digit: a run starts after it */
    }
    return 0;
}

static PyObject *message_json(PyObject *op, PyObject *Py_UNUSED(a)) {
    MessageObject *msg = (MessageObject *)op;
    module_state *st = state_of_type(Py_TYPE(op));
    if (msg->value == Py_None) return PyErr_Format(st->MalformedPayload, "message has no value");
    PyObject *r = NULL;
    /* orjson parses ~3-4x faster and gives json.loads's results on what it accepts,
     * except integers beyond 64 bits (some versions make them floats): a payload with
     * 19 digits in a row goes to json.loads, as does anything orjson refuses (NaN,
     * Infinity, ...), so the outcome is json.loads's in every case. */
    if (st->fast_loads && PyBytes_Check(msg->value) && !long_digit_run(msg->value) &&
        !(r = PyObject_CallOneArg(st->fast_loads, msg->value))) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError) && !PyErr_ExceptionMatches(PyExc_TypeError))
            return NULL;
        PyErr_Clear();
    }
    /* _support.loads: json.loads, raising MalformedPayload for a payload that is not JSON */
    if (!r) r = PyObject_CallOneArg(st->json_loads, msg->value);
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
static PyObject *msg_headers(PyObject *op, void *c) {
    (void)c;
    PyObject *l = message_headers((MessageObject *)op);
    return l ? PyList_GetSlice(l, 0, PY_SSIZE_T_MAX) : NULL;
}

static PyObject *msg_baggage(PyObject *op, void *c) {
    (void)c;
    PyObject *l = message_headers((MessageObject *)op);
    return l ? baggage_of_carrier(state_of_type(Py_TYPE(op)), l) : NULL;
}
MSG_GET(msg_partition, PyLong_FromLong(msg->partition))
MSG_GET(msg_offset, PyLong_FromLongLong(msg->offset))
MSG_GET(msg_timestamp,
        msg->timestamp_ms < 0 ? Py_NewRef(Py_None) : PyFloat_FromDouble(msg->timestamp_ms / 1000.0))
MSG_GET(msg_span, Py_NewRef(msg->span))
MSG_GET(msg_finished, msg->outcome ? PyUnicode_FromString(msg->outcome) : Py_NewRef(Py_None))

static int message_traverse(PyObject *op, visitproc visit, void *arg) {
    MessageObject *msg = (MessageObject *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(msg->consumer);
    Py_VISIT(msg->span);
    Py_VISIT(msg->token);
    Py_VISIT(msg->msg_token);
    return 0;
}

static void message_dealloc(PyObject *op) {
    MessageObject *msg = (MessageObject *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if (msg->m) {
        /* dropped unfinished: not committed, so it is redelivered (at-least-once); one
         * the core finished already is only released */
        if (msg->consumer->pending == msg) msg->consumer->pending = NULL;
        if (msg->span) span_detach((SpanObject *)msg->span);
        ituna_message *m = msg->m;
        msg->m = NULL;
        char errstr[ERRSTR_SIZE];
        Py_BEGIN_ALLOW_THREADS ituna_message_done(m, ITUNA_HANDLED_ERROR, "message dropped unfinished",
                                                  errstr, sizeof errstr);
        Py_END_ALLOW_THREADS
    }
    Py_CLEAR(msg->token);
    Py_CLEAR(msg->msg_token);
    Py_CLEAR(msg->span);
    Py_CLEAR(msg->topic);
    Py_CLEAR(msg->value);
    Py_CLEAR(msg->key);
    Py_CLEAR(msg->headers);
    PyMem_Free(msg->hdr);
    msg->hdr = NULL;
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
    { "baggage", msg_baggage, NULL,
      "The W3C baggage the producer sent (dict; {} when none, or baggage not in OTEL_PROPAGATORS).", NULL },
    { "finished", msg_finished, NULL, "None while open, else 'ok', 'error' or 'dead-letter'.", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyType_Slot message_slots[] = {
    { Py_tp_doc, "A consumed Kafka message with its CONSUMER span. Use it with `with` (see Consumer)." },
    { Py_tp_new, no_new },
    { Py_tp_dealloc, message_dealloc },
    { Py_tp_traverse, message_traverse },
    { Py_tp_methods, message_methods },
    { Py_tp_getset, message_getset },
    { Py_tp_repr, support_repr },
    { 0, NULL },
};

PyType_Spec Message_spec = {
    .name = "ituna.Message",
    .basicsize = sizeof(MessageObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = message_slots,
};
