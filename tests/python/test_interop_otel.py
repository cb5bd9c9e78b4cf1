"""Interop with the official OpenTelemetry SDK over Kafka (issue 5 "Interop").

A service written with opentelemetry-sdk, its W3C TraceContextTextMapPropagator and
confluent-kafka puts the context in the Kafka headers; an ituna Python consumer
continues that trace. An ituna producer's message is continued by an
opentelemetry-sdk consumer. Both are checked on exported spans: ituna's through
its OTLP JSON-lines file exporter, the SDK's through InMemorySpanExporter.

Broker: ITUNA_TEST_KAFKA=host:port (a real Apache Kafka, required when CI=true);
otherwise the embedded librdkafka mock cluster, said so on stderr."""
import json
import os
import sys
import uuid

import pytest

import ituna  # noqa: E402  (conftest.py picks which ituna)

try:
    import confluent_kafka
except ImportError:  # skipped with the reason locally, a failure when CI=true
    from otlp_receiver import skip_or_fail

    skip_or_fail("confluent-kafka not installed (pip install -r tools/requirements-test.txt)", module=True)
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind, set_span_in_context  # noqa: E402
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator  # noqa: E402


@pytest.fixture(scope="module")
def bootstrap():
    real = os.environ.get("ITUNA_TEST_KAFKA")
    if real:
        yield real
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI=true needs a real Kafka broker: set ITUNA_TEST_KAFKA (tools/kafka.sh start)")
    print("interop: ITUNA_TEST_KAFKA not set, using the embedded librdkafka mock cluster", file=sys.stderr)
    b = ituna.start_embedded_broker()
    yield b.bootstrap
    b.stop()


@pytest.fixture
def otel():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("interop-test"), exporter
    provider.shutdown()


@pytest.fixture
def ituna_file(tmp_path):
    path = tmp_path / "ituna.jsonl"
    tracer = ituna.init(service_name="ituna-interop", env=False, type="file", file=str(path))
    yield tracer, path
    ituna.shutdown(timeout=5)


def ituna_spans(tracer, path):
    assert tracer.flush(timeout=10)
    out = []
    for line in path.read_text().splitlines():
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                out.extend(ss["spans"])
    return out


def test_otel_sdk_producer_to_ituna_consumer(bootstrap, otel, ituna_file):
    otracer, exporter = otel
    tracer, path = ituna_file
    topic = "interop-in-" + uuid.uuid4().hex[:8]
    prop = TraceContextTextMapPropagator()

    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    with otracer.start_as_current_span("main-website-order"):
        with otracer.start_as_current_span("send " + topic, kind=SpanKind.PRODUCER) as send:
            carrier = {}
            prop.inject(carrier)  # W3C traceparent from the current (PRODUCER) span
            headers = [(k, v.encode()) for k, v in carrier.items()]
            producer.produce(topic, value=json.dumps({"order_id": "o-7"}).encode(), headers=headers)
    assert producer.flush(30) == 0

    with ituna.Consumer(topic, "interop-" + uuid.uuid4().hex[:6], bootstrap, auto_offset_reset="earliest") as c:
        m = c.poll(timeout=30)
        assert m is not None, "the SDK's message did not arrive"
        with m:
            assert m.json() == {"order_id": "o-7"}
            with tracer.span("main-order-validation"):
                pass

    sent = send.get_span_context()
    trace_hex = format(sent.trace_id, "032x")
    spans = {s["name"]: s for s in ituna_spans(tracer, path)}
    proc = spans["process " + topic]
    assert proc["traceId"] == trace_hex
    assert proc["parentSpanId"] == format(sent.span_id, "016x")
    assert spans["main-order-validation"]["traceId"] == trace_hex
    assert spans["main-order-validation"]["parentSpanId"] == proc["spanId"]
    names = {s.name for s in exporter.get_finished_spans()}
    assert {"main-website-order", "send " + topic} <= names


def test_ituna_producer_to_otel_sdk_consumer(bootstrap, otel, ituna_file):
    otracer, exporter = otel
    tracer, path = ituna_file
    topic = "interop-out-" + uuid.uuid4().hex[:8]
    prop = TraceContextTextMapPropagator()

    with ituna.Producer(bootstrap) as p:
        with tracer.span("main-onsite-order") as order:
            p.publish(topic, {"order_id": "o-8", "table": 4})
        p.flush(timeout=30)

    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "otel-" + uuid.uuid4().hex[:6],
                                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        msg = None
        for _ in range(300):
            msg = consumer.poll(0.1)
            if msg is not None and not msg.error():
                break
        assert msg is not None and not msg.error(), "ituna's message did not arrive"
        carrier = {k: v.decode() for k, v in (msg.headers() or []) if v is not None}
        ctx = prop.extract(carrier)
        with otracer.start_as_current_span("process " + topic, context=ctx, kind=SpanKind.CONSUMER):
            with otracer.start_as_current_span("main-kitchen"):
                pass
    finally:
        consumer.close()

    send = next(s for s in ituna_spans(tracer, path) if s["name"] == "send " + topic)
    assert send["parentSpanId"] == order.context.span_id
    got = {s.name: s for s in exporter.get_finished_spans()}
    proc = got["process " + topic]
    assert format(proc.context.trace_id, "032x") == order.context.trace_id == send["traceId"]
    assert format(proc.parent.span_id, "016x") == send["spanId"]
    assert proc.parent.is_remote
    assert got["main-kitchen"].parent.span_id == proc.context.span_id


def test_inject_extract_match_the_sdk_propagator():
    """Without Kafka: our carrier dict and the SDK's are interchangeable."""
    ituna.init(service_name="prop-interop", env=False, type="none")
    prop = TraceContextTextMapPropagator()
    with ituna.span("ours") as s:
        carrier = ituna.inject()
    sdk_ctx = prop.extract(carrier)
    from opentelemetry.trace import get_current_span
    sc = get_current_span(sdk_ctx).get_span_context()
    assert format(sc.trace_id, "032x") == s.context.trace_id and format(sc.span_id, "016x") == s.context.span_id
    provider = TracerProvider()
    with provider.get_tracer("t").start_as_current_span("theirs") as theirs:
        c2 = {}
        prop.inject(c2, context=set_span_in_context(theirs))
    ctx = ituna.extract(c2)
    assert ctx.trace_id == format(theirs.get_span_context().trace_id, "032x")
    assert ctx.span_id == format(theirs.get_span_context().span_id, "016x")
