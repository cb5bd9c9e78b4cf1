"""Kafka hops with OpenTelemetry in the process (issue 13): Producer.publish inside an
OpenTelemetry span continues its trace; OpenTelemetry's baggage travels in the
"baggage" header and reads back as Message.baggage; OTEL_PROPAGATORS picks the
headers (b3multi here); and the messaging conventions: the consumer span links the
producer's context in parent mode too, a null value is marked a tombstone, and in
link mode the process span keeps the ambient span as its parent."""
import ituna
from kafka_helpers import bootstrap, consumer, embedded, next_message, spans_of, topic_name, traced  # noqa: F401

from opentelemetry import baggage, context as otel_context, trace  # noqa: E402

import ituna.otel  # noqa: E402

SERVICE_NAME = "otel-kafka"


def by_name(spans, name):
    got = [s for s in spans if s["name"] == name]
    assert len(got) == 1, (name, [s["name"] for s in spans])
    return got[0]


def test_publish_in_an_otel_span_carries_trace_and_baggage(bootstrap, traced):
    tracer, path = traced
    tr = ituna.otel.TracerProvider(tracer).get_tracer("test.kafka")
    topic = topic_name("otel-bag")
    with ituna.Producer(bootstrap, linger_ms=1) as p:
        with tr.start_as_current_span("checkout") as span:
            token = otel_context.attach(baggage.set_baggage("customer.tier", "gold plus"))
            try:
                p.publish(topic, b"order", key="k1")
                p.publish(topic, None, key="k1")  # a tombstone
            finally:
                otel_context.detach(token)
        p.flush(timeout=30)
    with consumer([topic], bootstrap) as c:
        m1 = next_message(c)
        with m1:
            assert m1.baggage == {"customer.tier": "gold plus"}
            assert trace.get_current_span().get_span_context().span_id == int(m1.span.context.span_id, 16)
        m2 = next_message(c)
        with m2:
            pass
    spans = spans_of(tracer, path)
    sends = [s for s in spans if s["name"] == "send " + topic]
    procs = [s for s in spans if s["name"] == "process " + topic]
    root = by_name(spans, "checkout")
    assert len(sends) == 2 and all(s["parentSpanId"] == root["spanId"] for s in sends)
    for proc in procs:
        send = [s for s in sends if s["spanId"] == proc["parentSpanId"]][0]
        # parent mode: the producer's context is the parent and also a link (conventions' SHOULD)
        assert [(l["traceId"], l["spanId"]) for l in proc.get("links", [])] == [(send["traceId"], send["spanId"])]
    tomb = [p for p in procs if p["attrs"].get("messaging.kafka.message.tombstone")]
    assert len(tomb) == 1 and tomb[0]["attrs"]["messaging.kafka.message.tombstone"] is True
    assert all("messaging.kafka.message.tombstone" not in p["attrs"] for p in procs if p is not tomb[0])


def test_link_mode_keeps_the_ambient_parent_and_propagators_pick_headers(bootstrap, tmp_path):
    path = tmp_path / "spans.jsonl"
    tracer = ituna.init(service_name="link-mode", env=False, type="file", file=str(path),
                        settings={"exporter.schedule-delay": "50", "messaging.consumer-context": "link",
                                  "tracer.propagators": "b3multi,baggage"})
    try:
        topic = topic_name("link")
        with ituna.Producer(bootstrap, linger_ms=1) as p:
            with tracer.span("producer-side"):
                p.publish(topic, b"x")
            p.flush(timeout=30)
        with consumer([topic], bootstrap) as c:
            with tracer.span("batch-job") as job:
                m = next_message(c)
                headers = dict(m.headers)
                assert "traceparent" not in headers and headers["X-B3-SpanId"]
                with m:
                    pass
        spans = spans_of(tracer, path)
        send, proc = by_name(spans, "send " + topic), by_name(spans, "process " + topic)
        assert headers["X-B3-SpanId"].decode() == send["spanId"]
        # link mode: the ambient span is the parent, the producer a link
        assert proc["parentSpanId"] == job.context.span_id and proc["traceId"] == job.context.trace_id
        assert [l["spanId"] for l in proc["links"]] == [send["spanId"]]
    finally:
        ituna.shutdown(timeout=5)
