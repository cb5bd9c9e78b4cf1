"""The OpenTelemetry SDK's configuration rules across a Kafka hop (issue 13): a
middle service started with OTEL_SDK_DISABLED=True (any case) and invalid OTEL_*
values starts (each invalid value a warning naming its variable, the default kept),
records and exports nothing, and passes its parent's context on unchanged: the
next service's consumer span points at the first service's producer span, never
at a span id that was not exported. Real broker (ITUNA_TEST_KAFKA) or the embedded
one, as the other Kafka tests."""
import os
import subprocess
import sys

import ituna
from kafka_helpers import bootstrap, consumer, embedded, next_message, spans_of, topic_name, traced  # noqa: F401

SERVICE_NAME = "hop-edge"

MIDDLE = r"""
import sys, uuid
import ituna
tracer = ituna.init(service_name="hop-middle")  # env=True: the OTEL_* variables below
src, dst, bootstrap = sys.argv[1:4]
with ituna.Consumer([src], "g-" + uuid.uuid4().hex[:8], bootstrap, auto_offset_reset="earliest") as c, \
        ituna.Producer(bootstrap) as p:
    m = c.poll(timeout=60)
    assert m is not None, "no message"
    with m:
        with tracer.span("middle-work") as w:
            print("CTX", w.context.traceparent, flush=True)
            p.publish(dst, m.value)
    p.flush(timeout=30)
st = tracer.stats()
print("STATS", st["spans_started"], st["spans_exported"], flush=True)
"""


def test_disabled_middle_service_passes_its_parent_through(bootstrap, traced):
    tracer, path = traced
    t1, t2 = topic_name("hop-a"), topic_name("hop-b")
    with ituna.Producer(bootstrap, linger_ms=1) as p:
        with tracer.span("origin"):
            p.publish(t1, b"order")
        p.flush(timeout=30)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OTEL_SDK_DISABLED="True",
               OTEL_TRACES_SAMPLER="sometimes", OTEL_BSP_SCHEDULE_DELAY="soon", OTEL_TRACES_EXPORTER="CONSOLE",
               OTEL_PROPAGATORS="tracecontext,jaeger")
    out = subprocess.run([sys.executable, "-c", MIDDLE, t1, t2, bootstrap], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for var in ("OTEL_TRACES_SAMPLER", "OTEL_BSP_SCHEDULE_DELAY", "OTEL_PROPAGATORS"):
        assert var in out.stderr, "no warning naming " + var + ": " + out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    assert lines["STATS"] == "0 0"  # disabled: nothing recorded, nothing exported
    with consumer([t2], bootstrap) as c:
        m = next_message(c)
        with m:
            pass
        last = m.span.context
    spans = spans_of(tracer, path)
    send = [s for s in spans if s["name"] == "send " + t1]
    recv = [s for s in spans if s["name"] == "process " + t2]
    assert len(send) == 1 and len(recv) == 1
    # the middle's spans carried the producer span's context unchanged
    assert lines["CTX"] == "00-%s-%s-01" % (send[0]["traceId"], send[0]["spanId"])
    assert recv[0]["traceId"] == send[0]["traceId"] and recv[0]["parentSpanId"] == send[0]["spanId"]
    assert last.trace_id == send[0]["traceId"]
