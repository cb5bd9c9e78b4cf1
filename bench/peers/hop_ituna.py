"""One Kafka hop with ituna's Python API: consume an order (CONSUMER span), two
child spans, publish it on (PRODUCER span, context in the headers). Traced unless
OTEL_SDK_DISABLED=true; the exporter comes from OTEL_EXPORTER_OTLP_* (the harness's
sink) with ituna's default batch settings."""
import time

import ituna
from hopcommon import BOOTSTRAP, GROUP, IN_TOPIC, N, OUT_TOPIC, SERVICE, WARM, Clock

tracer = ituna.init(service_name=SERVICE)
consumer = ituna.Consumer([IN_TOPIC], group=GROUP, bootstrap=BOOTSTRAP, **{"auto.offset.reset": "earliest"})
producer = ituna.Producer(BOOTSTRAP)
clock = Clock()
lat = clock.lat
span = tracer.span
poll = consumer.poll
publish = producer.publish
pn = time.perf_counter_ns


def hop(count, timed):
    for i in range(count):
        msg = poll(10.0)
        if msg is None:
            raise SystemExit("hop_ituna: no message within 10 s after %d" % i)
        t0 = pn()
        with msg:
            order = msg.json()
            with span("address_validation"):
                ok = "address" in order or "table" in order
            with span("name_validation"):
                ok = ok and bool(order.get("customer_name"))
            order["validated"] = ok
            publish(OUT_TOPIC, order, key=msg.key)
        if timed:
            lat[i] = pn() - t0
    if timed:
        clock.i = count


hop(WARM, False)
producer.flush(30)
tracer.flush(30)
clock.start()
hop(N, True)
producer.flush(30)
tracer.flush(30)
clock.stop()
st = tracer.stats()
clock.report(spans_dropped=st.get("spans_dropped", 0), spans_export_failed=st.get("spans_export_failed", 0))
consumer.close()
producer.close()
ituna.shutdown()
