"""The ituna Python Kafka clients on real brokers: librdkafka's embedded mock
cluster (always) and a real Apache Kafka broker when ITUNA_TEST_KAFKA=host:port
is set (tools/kafka.sh start). Without it the real-broker runs are skipped with
the reason printed locally, and FAIL when CI=true.

Checked on the exported spans (OTLP JSON-lines file exporter): one trace from
the publishing span through `send <topic>` to `process <topic>`; redelivery on
errors, the dead-letter topic for MalformedPayload, delivery failures raised,
timeouts and closed handles reported clearly."""
import json
import os
import signal
import sys
import threading
import time
import uuid

import pytest

import ituna  # noqa: E402  (conftest.py picks which ituna)


from kafka_helpers import bootstrap, consumer, embedded, next_message, spans_of, topic_name, traced  # noqa: F401


# ---- round trip -------------------------------------------------------------------------

def test_round_trip_continues_the_trace(bootstrap, traced):
    tracer, path = traced
    topic = topic_name("rt")
    with ituna.Producer(bootstrap, linger_ms=1) as p:
        with tracer.span("main-website-order") as order:
            p.publish(topic, {"order_id": "o-1", "dishes": {"tuna": 2}}, key="o-1", headers={"x-source": "web"})
        p.publish(topic, b"raw-bytes")
        p.publish(topic, "text \u00e9")
        p.publish(topic, None, key=b"tombstone")
        p.flush(timeout=30)
    with consumer(topic, bootstrap) as c:
        got = []
        while len(got) < 4:
            m = next_message(c)
            with m:
                assert ituna.current_span() is m.span
                m.span.set_attribute("handled.by", "test")
                with tracer.span("main-kitchen"):
                    pass
                got.append((m.value, m.key, m.headers, m.topic, m.partition, m.offset, m.timestamp, m.span.context))
            assert m.finished == "ok" and ituna.current_span() is None
    by_value = {g[0]: g for g in got}
    first = by_value[b'{"order_id":"o-1","dishes":{"tuna":2}}']  # dicts are sent as compact JSON
    assert first[1] == b"o-1" and first[3] == topic and 0 <= first[4] < 4 and first[5] >= 0
    assert ("x-source", b"web") in first[2] and any(k == "traceparent" for k, _ in first[2])
    assert abs(first[6] - time.time()) < 120
    assert b"raw-bytes" in by_value and "text \u00e9".encode() in by_value
    assert by_value[None][1] == b"tombstone"

    spans = spans_of(tracer, path)
    send = [s for s in spans if s["name"] == "send " + topic and s.get("parentSpanId") == order.context.span_id]
    assert len(send) == 1, "the PRODUCER span continues the current span"
    proc = [s for s in spans if s["name"] == "process " + topic and s.get("parentSpanId") == send[0]["spanId"]]
    assert len(proc) == 1 and proc[0]["traceId"] == order.context.trace_id
    assert proc[0]["kind"] == 5 and send[0]["kind"] == 4  # CONSUMER, PRODUCER
    assert proc[0]["attrs"]["handled.by"] == "test"
    kitchen = [s for s in spans if s["name"] == "main-kitchen" and s["traceId"] == order.context.trace_id]
    assert kitchen and kitchen[0]["parentSpanId"] == proc[0]["spanId"]


def test_publish_attributes_are_on_the_send_span(embedded, traced):
    tracer, path = traced
    topic = topic_name("attrs")
    attrs = {"order.id": "o-9", "order.source": "website", "order.items": 3, "order.dishes": ["tuna", "roll"]}
    with ituna.Producer(embedded.bootstrap, linger_ms=1) as p:
        p.publish(topic, {"order_id": "o-9"}, key="o-9", attributes=attrs)
        attrs["order.id"] = "changed"  # copied at publish time
        p.publish(topic, b"plain", attributes=None)
        p.flush(timeout=30)
    send = [s for s in spans_of(tracer, path) if s["name"] == "send " + topic]
    assert len(send) == 2
    with_attrs = [s for s in send if "order.id" in s["attrs"]]
    assert len(with_attrs) == 1, send
    a = with_attrs[0]["attrs"]
    assert a["order.id"] == "o-9" and a["order.source"] == "website"
    assert a["order.items"] in (3, "3")  # OTLP JSON writes int64 as a string
    assert a["messaging.destination.name"] == topic


def test_message_json_on_a_non_json_payload_goes_to_the_dlq(bootstrap, traced):
    tracer, path = traced
    topic = topic_name("dlq")
    with ituna.Producer(bootstrap) as p:
        p.publish(topic, b"{not json")
        p.publish(topic, {"ok": True})
    with consumer(topic, bootstrap) as c:
        seen = []
        for _ in range(2):
            m = next_message(c)
            with m:  # MalformedPayload is swallowed: the loop goes on
                seen.append(m.json())
            assert m.finished in ("ok", "dead-letter")
        assert seen == [{"ok": True}]
    with consumer(topic + ".dlq", bootstrap) as d:
        m = next_message(d)
        assert m.value == b"{not json"
        reasons = [v for k, v in m.headers if "reason" in k or "error" in k]
        assert reasons and b"JSON" in reasons[0], m.headers
        m.ack()
    proc = [s for s in spans_of(tracer, path) if s["name"] == "process " + topic and s.get("status", {}).get("code") == 2]
    assert len(proc) == 1 and "JSON" in proc[0]["status"]["message"]


def test_handler_error_redelivers_and_marks_the_span(bootstrap, traced):
    tracer, path = traced
    topic = topic_name("redo")
    with ituna.Producer(bootstrap) as p:
        p.publish(topic, b"once", partition=0)
    with consumer(topic, bootstrap) as c:
        m = next_message(c)
        with pytest.raises(RuntimeError, match="kitchen on fire"):
            with m:
                raise RuntimeError("kitchen on fire")
        assert m.finished == "error"
        again = next_message(c)
        assert (again.value, again.offset, again.partition) == (m.value, m.offset, m.partition)
        with again:
            pass
    procs = [s for s in spans_of(tracer, path) if s["name"] == "process " + topic]
    assert sorted(s.get("status", {}).get("code", 0) for s in procs) == [0, 2]
    bad = next(s for s in procs if s.get("status", {}).get("code") == 2)
    assert bad["events"][0]["name"] == "exception"


def test_unfinished_message_is_redelivered_after_close_acked_one_is_not(bootstrap, traced):
    topic = topic_name("commit")
    group = "g-" + uuid.uuid4().hex[:8]
    with ituna.Producer(bootstrap) as p:
        for i in range(3):
            p.publish(topic, b"m%d" % i, partition=0)
    # the embedded mock cluster rebalances only after the leaver's session times out
    fast = dict(session_timeout_ms=6000, heartbeat_interval_ms=500)
    with consumer(topic, bootstrap, group, **fast) as c:
        a = next_message(c)  # not used with `with`: acknowledged when the next one is asked for
        b = next_message(c)
        assert a.finished == "ok" and b.finished is None
        # closing with b unfinished: not committed
    assert b.finished == "error"
    with consumer(topic, bootstrap, group, **fast) as c2:
        m = next_message(c2)
        assert m.value == b.value, "the unfinished message is delivered again"
        m.ack()


# ---- delivery reports and failures ---------------------------------------------------------

def test_on_delivery_gets_every_report(bootstrap, traced):
    reports = []
    done = threading.Event()

    def cb(rep):
        reports.append(rep)
        if len(reports) == 3:
            done.set()

    topic = topic_name("dr")
    with ituna.Producer(bootstrap, on_delivery=cb) as p:
        with ituna.span("pub") as s:
            for i in range(3):
                p.publish(topic, b"%d" % i)
        p.flush(timeout=30)
    assert done.wait(5)
    assert all(r.error is None and r.offset >= 0 and r.topic == topic for r in reports)
    assert all(r.context.trace_id == s.context.trace_id for r in reports)


def test_undeliverable_messages_raise_delivery_error(traced):
    p = ituna.Producer("127.0.0.1:1", message_timeout_ms=1500, config={"reconnect.backoff.max.ms": 200})
    p.publish(topic_name("lost"), b"x")
    with pytest.raises(ituna.TimeoutError, match="still in flight") as ei:
        p.flush(timeout=0.2)
    assert isinstance(ei.value, TimeoutError)  # also the builtin
    with pytest.raises(ituna.DeliveryError) as ei:
        p.flush(timeout=20)
    rep = ei.value.reports[0]
    assert isinstance(rep.error, ituna.DeliveryError) and rep.offset == -1 and rep.topic.startswith("py-lost-")
    assert rep.error.error_name == "_MSG_TIMED_OUT" and "_MSG_TIMED_OUT" in str(ei.value)
    assert isinstance(ei.value, ituna.KafkaError) and ei.value.name in ("ITUNA_ERR_TIMEOUT", "ITUNA_ERR_KAFKA")
    p.close()
    with pytest.raises(ituna.StateError):
        p.publish("t", b"x")
    p.close()  # idempotent


def test_close_reports_what_it_could_not_deliver(traced):
    p = ituna.Producer("127.0.0.1:1")
    p.publish(topic_name("lost"), b"x")
    with pytest.raises(ituna.DeliveryError):
        p.close(timeout=0.5)


def test_delivery_failures_reach_the_callback_instead(traced):
    got = []
    p = ituna.Producer("127.0.0.1:1", message_timeout_ms=1000, on_delivery=got.append)
    p.publish(topic_name("lost"), b"x")
    p.flush(timeout=20)  # no raise: the callback owns failures
    p.close()
    assert len(got) == 1 and isinstance(got[0].error, ituna.DeliveryError) and got[0].offset == -1


# ---- errors -------------------------------------------------------------------------------------

def test_unreachable_broker_gives_a_clear_error_to_the_consumer(tmp_path):
    ituna.init(service_name="unreach", env=False, type="none", settings={"messaging.connect-timeout": "1000"})
    with ituna.Consumer("t", "g", "127.0.0.1:1") as c:
        t0 = time.monotonic()
        # the core reports ITUNA_ERR_TIMEOUT: nothing answered within connect-timeout
        with pytest.raises(ituna.TimeoutError, match="no Kafka broker reachable at 127.0.0.1:1") as ei:
            c.poll(timeout=30)
        assert ei.value.name == "ITUNA_ERR_TIMEOUT" and isinstance(ei.value, TimeoutError)
        assert time.monotonic() - t0 < 15


def test_closed_consumer(bootstrap, traced):
    c = consumer(topic_name("closed"), bootstrap)
    c.close()
    c.close()  # idempotent
    assert c.closed
    with pytest.raises(ituna.StateError, match="closed"):
        c.poll(timeout=0.1)
    with pytest.raises(ituna.StateError):
        next(iter(c))


def test_bad_arguments(embedded, traced):
    b = embedded.bootstrap
    with pytest.raises(ituna.ConfigError, match="no.such.property"):
        ituna.Producer(b, no_such_property=1)
    with pytest.raises(ituna.ConfigError, match="acks"):
        ituna.Producer(b, acks="sometimes")
    with pytest.raises(TypeError):
        ituna.Producer(b, linger_ms=object())
    with pytest.raises(TypeError):
        ituna.Producer(b, config=["not", "a", "dict"])
    with pytest.raises(TypeError):
        ituna.Consumer(["t"], 42, b)
    with pytest.raises(ValueError):
        ituna.Consumer([], "g", b)
    with pytest.raises(ValueError):
        ituna.Consumer("t", "g", b, context_mode="sideways")
    with ituna.Producer(b) as p:
        with pytest.raises(TypeError):
            p.publish(42, b"x")
        with pytest.raises(TypeError):
            p.publish("t", 42)
        with pytest.raises(TypeError):
            p.publish("t", b"x", key=3.5)
        with pytest.raises(TypeError):
            p.publish("t", b"x", headers=[("k", 1)])
        with pytest.raises(ValueError):
            p.publish("t", b"x", partition=-3)
        with pytest.raises(TypeError, match="attributes must be a dict"):
            p.publish("t", b"x", attributes=[("order.id", "o-1")])
        with pytest.raises(TypeError, match="order.id"):
            p.publish("t", b"x", attributes={"order.id": object()})
        with pytest.raises(ValueError, match="empty"):
            p.publish("t", b"x", attributes={"": "x"})
        with pytest.raises(TypeError):
            p.flush(timeout="soon")


def test_clients_need_a_tracer(embedded):
    ituna._core.set_default_tracer(None)
    with pytest.raises(ituna.StateError, match="ituna.init"):
        ituna.Producer(embedded.bootstrap)


# ---- blocking calls: stop(), Ctrl-C, other threads -----------------------------------------------

def test_stop_from_another_thread_ends_iteration(embedded, traced):
    c = consumer(topic_name("stop"), embedded.bootstrap)
    threading.Timer(0.5, c.stop).start()
    t0 = time.monotonic()
    assert list(c) == []
    assert time.monotonic() - t0 < 5
    c.close()


def test_ctrl_c_interrupts_a_blocked_poll(embedded, traced):
    c = consumer(topic_name("sigint"), embedded.bootstrap)
    main = threading.main_thread().ident
    done = threading.Event()

    def ctrl_c():
        # Again every 0.5 s until the loop is out: a first Ctrl-C that lands before the
        # loop blocks (on a loaded machine, in a finalizer run by the GC) is reported as
        # "Exception ignored" by CPython and lost, and the loop would wait forever.
        for _ in range(40):
            if done.wait(0.5):
                return
            signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=ctrl_c, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            for _ in c:
                pass
    finally:
        done.set()
    c.close()


def test_other_threads_run_while_polling(embedded, traced):
    c = consumer(topic_name("gil"), embedded.bootstrap)
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    c.poll(timeout=1.0)  # the GIL is released while polling
    stop.set()
    t.join()
    c.close()
    assert counter[0] > 100_000


# ---- partition assignment -------------------------------------------------------------------

def test_wait_assigned_reports_partitions_and_loses_no_message(embedded, traced):
    topic = topic_name("assign")
    n = 40
    with ituna.Producer(embedded.bootstrap, linger_ms=1) as p:
        for i in range(n):
            p.publish(topic, b"m%d" % i, key=b"k%d" % i)
        p.flush(timeout=30)
    with consumer(topic, embedded.bootstrap) as c:
        assert c.assignment_count == 0, "nothing is assigned before the consumer is polled"
        assert c.wait_assigned(0) is False or c.assignment_count > 0
        assert c.wait_assigned(30) is True
        assert c.assignment_count == 4  # the embedded broker's 4 partitions, one member
        assert c.wait_assigned(30) is True  # already assigned: returns at once
        seen = []
        while len(seen) < n:
            m = next_message(c, timeout=15)
            with m:
                seen.append(m.value)
        assert sorted(seen) == sorted(b"m%d" % i for i in range(n)), "every message once, none lost"
        assert c.poll(timeout=1.0) is None
    assert c.assignment_count == 0


def test_wait_assigned_is_interruptible_and_checks_its_arguments(embedded, traced):
    c = consumer(topic_name("assign-stop"), embedded.bootstrap)
    with pytest.raises(TypeError):
        c.wait_assigned()
    with pytest.raises(ValueError):
        c.wait_assigned(-1)
    with pytest.raises(TypeError):
        c.wait_assigned("1")
    c.stop()
    t0 = time.monotonic()
    assert c.wait_assigned(30) is False, "stop() ends the wait"
    assert time.monotonic() - t0 < 5
    assert list(c) == [], "the stop request still ends the following iteration"
    c.close()
    with pytest.raises(ituna.StateError):
        c.wait_assigned(1)
    assert c.assignment_count == 0


def split_done(a, b):
    na, nb = a.assignment_count, b.assignment_count
    return na > 0 and nb > 0 and na + nb == 4


def test_two_members_split_the_partitions(embedded, traced):
    topic = topic_name("assign-split")
    group = "g-" + uuid.uuid4().hex[:8]
    with ituna.Producer(embedded.bootstrap) as p:
        p.publish(topic, b"x")
    fast = dict(session_timeout_ms=6000, heartbeat_interval_ms=500)
    a = consumer(topic, embedded.bootstrap, group, **fast)
    b = consumer(topic, embedded.bootstrap, group, **fast)
    got = []

    def run_a():  # one thread per consumer; a's rebalance happens only while it polls
        assert a.wait_assigned(30)
        end = time.monotonic() + 30
        while time.monotonic() < end and not split_done(a, b):
            m = a.poll(timeout=0.1)
            if m is not None:
                got.append(m.value)
                m.ack()

    t = threading.Thread(target=run_a)
    t.start()
    assert b.wait_assigned(30)
    end = time.monotonic() + 30
    while time.monotonic() < end and not split_done(a, b):
        m = b.poll(timeout=0.1)
        if m is not None:
            got.append(m.value)
            m.ack()
    t.join()
    assert a.assignment_count > 0 and b.assignment_count > 0
    assert a.assignment_count + b.assignment_count == 4
    a.close()
    b.close()
