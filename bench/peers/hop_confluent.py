"""One Kafka hop with confluent-kafka, untraced, or with --otel the same hop traced
by opentelemetry-sdk as its Kafka instrumentations do it: context extracted from and
injected into the headers, the messaging attributes ituna sets, a BatchSpanProcessor
exporting OTLP/HTTP protobuf to the harness's sink. Producer settings are ituna's
defaults (idempotent, acks=all, linger.ms=5); offsets are stored after the hop, as
ituna's at-least-once consumer does."""
import json
import sys
import time

from confluent_kafka import Consumer, Producer
from hopcommon import BOOTSTRAP, GROUP, IN_TOPIC, N, OTLP, OUT_TOPIC, SDK_QUEUE, SERVICE, WARM, Clock

OTEL = "--otel" in sys.argv
host, port = BOOTSTRAP.split(",")[0].rsplit(":", 1)
consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": GROUP, "auto.offset.reset": "earliest",
                     "enable.auto.offset.store": False, "client.id": SERVICE})
consumer.subscribe([IN_TOPIC])
producer = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True, "acks": "all",
                     "linger.ms": 5, "message.timeout.ms": 30000, "client.id": SERVICE})
clock = Clock()
lat = clock.lat
pn = time.perf_counter_ns
poll = consumer.poll
produce = producer.produce
ppoll = producer.poll
store = consumer.store_offsets
loads, dumps = json.loads, json.dumps

if OTEL:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=OTLP + "/v1/traces"),
                                                   max_queue_size=SDK_QUEUE))
    tracer = provider.get_tracer("hop")
    prop = TraceContextTextMapPropagator()
    start = tracer.start_as_current_span
    CONSUMER, PRODUCER = SpanKind.CONSUMER, SpanKind.PRODUCER
    PROCESS, SEND = "process " + IN_TOPIC, "send " + OUT_TOPIC
    port = int(port)


def hop_plain(count, timed):
    for i in range(count):
        msg = poll(10.0)
        if msg is None:
            raise SystemExit("hop_confluent: no message within 10 s after %d" % i)
        if msg.error():
            raise SystemExit("hop_confluent: %s" % msg.error())
        t0 = pn()
        order = loads(msg.value())
        ok = "address" in order or "table" in order
        ok = ok and bool(order.get("customer_name"))
        order["validated"] = ok
        produce(OUT_TOPIC, dumps(order).encode(), key=msg.key())
        ppoll(0)
        store(msg)
        if timed:
            lat[i] = pn() - t0
    if timed:
        clock.i = count


def hop_otel(count, timed):
    for i in range(count):
        msg = poll(10.0)
        if msg is None:
            raise SystemExit("hop_confluent: no message within 10 s after %d" % i)
        if msg.error():
            raise SystemExit("hop_confluent: %s" % msg.error())
        t0 = pn()
        value, key = msg.value(), msg.key()
        ctx = prop.extract({k: v.decode() for k, v in msg.headers() or ()})
        attrs = {"messaging.system": "kafka", "messaging.operation.name": "process",
                 "messaging.operation.type": "process", "messaging.destination.name": IN_TOPIC,
                 "messaging.destination.partition.id": str(msg.partition()),
                 "messaging.kafka.offset": msg.offset(), "messaging.consumer.group.name": GROUP,
                 "messaging.kafka.message.key": key.decode(), "messaging.message.body.size": len(value),
                 "server.address": host, "server.port": port, "messaging.client.id": SERVICE}
        with start(PROCESS, context=ctx, kind=CONSUMER, attributes=attrs):
            order = loads(value)
            with start("address_validation"):
                ok = "address" in order or "table" in order
            with start("name_validation"):
                ok = ok and bool(order.get("customer_name"))
            order["validated"] = ok
            out = dumps(order).encode()
            with start(SEND, kind=PRODUCER, attributes={
                    "messaging.system": "kafka", "messaging.operation.name": "send",
                    "messaging.operation.type": "send", "messaging.destination.name": OUT_TOPIC,
                    "messaging.kafka.message.key": key.decode(), "messaging.message.body.size": len(out),
                    "server.address": host, "server.port": port, "messaging.client.id": SERVICE}):
                headers = {}
                prop.inject(headers)
                produce(OUT_TOPIC, out, key=key, headers=headers)
                ppoll(0)
        store(msg)
        if timed:
            lat[i] = pn() - t0
    if timed:
        clock.i = count


hop = hop_otel if OTEL else hop_plain
hop(WARM, False)
producer.flush(30)
if OTEL:
    provider.force_flush(60000)
clock.start()
hop(N, True)
left = producer.flush(30)
if OTEL:
    provider.force_flush(60000)
clock.stop()
clock.report(undelivered=left)
consumer.close()
if OTEL:
    provider.shutdown()
