"""Compatibility with the seed POC, for each language: a message in the seed's shape
(W3C carrier as a JSON string in the payload, no Kafka headers) is continued by our
order-validation; with [compat] payload-carrier = true, a consumer that reads only
the payload carrier (as the seed's do, with opentelemetry's propagator) gets our
producer's context."""
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

import traceshape
from e2e_common import SCRIPTS, launcher_env, need
from restaurant_util import write_config


@pytest.fixture
def broker(binding):
    """ITUNA_TEST_KAFKA when set, else the embedded broker started here."""
    bs = os.environ.get("ITUNA_TEST_KAFKA")
    if bs:
        yield bs
        return
    try:
        import ituna
    except ImportError as exc:
        need(False, f"ituna is not importable in the test process: {exc}")
    b = ituna.start_embedded_broker(partitions=4)
    yield b.bootstrap
    b.stop()


class Service:
    """One service script run directly (no launcher), its stdout collected."""

    def __init__(self, lang, name, cfg, bootstrap, traces, ituna_lua, extra_env=None):
        env = launcher_env({"ITUNA_KAFKA_BOOTSTRAP": bootstrap, "OTEL_TRACES_EXPORTER": "file",
                            "ITUNA_TRACES_FILE": traces, "OTEL_SERVICE_NAME": name})
        env.update(extra_env or {})
        if lang == "python":
            cmd = [sys.executable, os.path.join(SCRIPTS, "python", f"{name}.py"), "--config", cfg]
        else:
            cmd = [ituna_lua, "--schema", os.path.join(SCRIPTS, "restaurant-schema.ini"), "--config", cfg,
                   os.path.join(SCRIPTS, "lua", f"{name}.lua")]
        self.lines = []
        self.p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, pattern, timeout=30):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                m = rx.search(line)
                if m:
                    return m
            if self.p.poll() is not None and not self.t.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r}; output:\n" + "\n".join(self.lines))

    def stop(self, timeout=20):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        rc = self.p.wait(timeout)
        self.t.join(5)
        return rc


def read_topic(bootstrap, topic, order_id, timeout=30):
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "e2e-compat-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            payload = json.loads(m.value())
            if payload.get("order_id") == order_id:
                return payload, dict((k, v.decode()) for k, v in (m.headers() or []))
    finally:
        c.close()
    raise AssertionError(f"order {order_id} not found in {topic}")


@pytest.mark.parametrize("lang", ["python", "lua"])
def test_a_seed_shaped_message_is_continued(lang, broker, ituna_lua, tmp_path):
    from confluent_kafka import Producer
    cfg, topics = write_config(tmp_path, failures=False)
    traces = str(tmp_path / "validation.jsonl")
    svc = Service(lang, "order-validation", cfg, broker, traces, ituna_lua)
    try:
        svc.wait_line(r" - INFO - READY order-validation ")
        trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
        order_id = str(uuid.uuid4())
        # the seed's payload: no source, no customer_name, the carrier as a JSON string
        order = {"order_id": order_id, "customer_id": str(uuid.uuid4()),
                 "order_details": {"ITUNA ROLL": 2, "ITUNA SOUP": 1}, "address": "1 Pier Road, 90901 ITuna Bay",
                 "carrier": json.dumps({"traceparent": f"00-{trace_id}-{span_id}-01"})}
        p = Producer({"bootstrap.servers": broker})
        p.produce(topics["orders"], json.dumps(order).encode("ascii"))  # no headers, as the seed
        assert p.flush(15) == 0
        m = svc.wait_line(r"Validated and republished order for kitchen: " + order_id + r" trace_id=([0-9a-f]{32}) ")
        assert m.group(1) == trace_id, "the service did not continue the seed's trace"
        payload, headers = read_topic(broker, topics["kitchen"], order_id)
        assert headers["traceparent"].split("-")[1] == trace_id
        assert "carrier" not in payload  # the stale payload carrier is not forwarded
    finally:
        assert svc.stop() == 0, "\n".join(svc.lines)
    spans = traceshape.read_jsonl(traces)
    consumer = [s for s in spans if s.name == f"process {topics['orders']}" and s.attrs.get("order.id") == order_id]
    assert len(consumer) == 1
    assert consumer[0].trace_id == trace_id and consumer[0].parent == span_id


@pytest.mark.parametrize("lang", ["python", "lua"])
def test_payload_carrier_lets_a_payload_only_consumer_continue(lang, broker, ituna_lua, tmp_path):
    from opentelemetry.trace import get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    cfg, topics = write_config(tmp_path, "[compat]\npayload-carrier = true\n")
    traces = str(tmp_path / "website.jsonl")
    svc = Service(lang, "website-ordering", cfg, broker, traces, ituna_lua, {"ITUNA_ORDERS_LIMIT": "1"})
    try:
        m = svc.wait_line(r"Placing an online order with id (\S+) trace_id=([0-9a-f]{32}) ")
        order_id, trace_id = m.group(1), m.group(2)
        assert svc.p.wait(30) == 0, "\n".join(svc.lines)
    finally:
        svc.stop()
    payload, _ = read_topic(broker, topics["orders"], order_id)
    # what the seed's order-validation does with the payload, and nothing else
    ctx = TraceContextTextMapPropagator().extract(carrier=json.loads(payload["carrier"]))
    sc = get_current_span(ctx).get_span_context()
    assert sc.is_valid and f"{sc.trace_id:032x}" == trace_id
    spans = traceshape.read_jsonl(traces)
    send = [s for s in spans if s.name == f"send {topics['orders']}" and s.trace_id == trace_id]
    assert len(send) == 1 and f"{sc.span_id:016x}" == send[0].span_id
