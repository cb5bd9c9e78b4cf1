"""One Kafka hop in the seed POC's shape: kafka-python + opentelemetry-sdk, the W3C
carrier inside the JSON payload ("carrier", a JSON string of the dict), spans
without messaging attributes, the seed's client defaults; OTLP/HTTP protobuf to the
harness's sink, one flush at the end."""
import json
import time

from hopcommon import BOOTSTRAP, GROUP, IN_TOPIC, N, OTLP, OUT_TOPIC, SDK_QUEUE, SERVICE, WARM, Clock
from kafka import KafkaConsumer, KafkaProducer
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
consumer = KafkaConsumer(IN_TOPIC, bootstrap_servers=BOOTSTRAP, group_id=GROUP, auto_offset_reset="earliest",
                         consumer_timeout_ms=10000)
producer = KafkaProducer(bootstrap_servers=BOOTSTRAP)
clock = Clock()
lat = clock.lat
pn = time.perf_counter_ns
start = tracer.start_as_current_span
loads, dumps = json.loads, json.dumps
PROCESS, SEND = "process " + IN_TOPIC, "send " + OUT_TOPIC
it = iter(consumer)


def hop(count, timed):
    for i in range(count):
        msg = next(it, None)
        if msg is None:
            raise SystemExit("hop_seed: no message within 10 s after %d" % i)
        t0 = pn()
        order = loads(msg.value)
        ctx = prop.extract(carrier=loads(order.get("carrier", "{}")))
        with start(PROCESS, context=ctx, kind=SpanKind.CONSUMER):
            with start("address_validation"):
                ok = "address" in order or "table" in order
            with start("name_validation"):
                ok = ok and bool(order.get("customer_name"))
            order["validated"] = ok
            with start(SEND, kind=SpanKind.PRODUCER):
                carrier = {}
                prop.inject(carrier)
                order["carrier"] = dumps(carrier)
                producer.send(OUT_TOPIC, dumps(order).encode(), key=msg.key)
        if timed:
            lat[i] = pn() - t0
    if timed:
        clock.i = count


hop(WARM, False)
producer.flush(30)
provider.force_flush(60000)
clock.start()
hop(N, True)
producer.flush(30)
provider.force_flush(60000)
clock.stop()
clock.report()
consumer.close()
producer.close()
provider.shutdown()
