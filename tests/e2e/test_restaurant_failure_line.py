"""A consuming service whose handler fails logs the same line in Lua and in Python:
`Failed to handle a message from <topic> [<partition>] @<offset> (it will be
redelivered): <error>` with the trace_id and span_id of the message's CONSUMER span
(so the line leads to the span that recorded the error), and still stops cleanly.

The failure is planted deterministically: [kafka] message.max.bytes below the size of
the order the test sends, so kitchen-service's publish to the ready topic fails."""
import os
import subprocess
import time

import pytest

import traceshape
from restaurant_util import RE_FAILED, kitchen_service, write_config

MAX_BYTES = 2000


def wait_for(path, pattern, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if pattern in line:
                        return line.rstrip("\n")
        time.sleep(0.1)
    with open(path, encoding="utf-8", errors="replace") as f:
        raise AssertionError(f"no line with {pattern!r} within {timeout:g} s:\n{f.read()[-3000:]}")


@pytest.fixture
def broker(binding):
    import ituna
    b = ituna.start_embedded_broker(n_brokers=1, partitions=4)
    yield b
    b.stop()


@pytest.mark.parametrize("lang", ["python", "lua"])
def test_a_failing_handler_logs_the_failure_line_with_the_consumer_span_ids(lang, broker, ituna_lua, tmp_path):
    import ituna
    cfg, topics = write_config(tmp_path, extra=f"[kafka]\nmessage.max.bytes = {MAX_BYTES}\n", failures=False)
    log_path = tmp_path / "kitchen-service.log"
    spans_path = tmp_path / "spans.jsonl"
    cmd, env = kitchen_service(lang, cfg, ituna_lua, broker.bootstrap, spans_path)
    with open(log_path, "w") as log:
        p = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for(log_path, "ASSIGNED kitchen-service")
        # An order bigger than the service may publish (this producer has no such limit).
        order = {"order_id": "order-too-big-" + lang, "customer_id": "c1", "source": "direct",
                 "order_details": {"EDAMAME": 1, "MISO SOUP": 2}, "customer_name": "X" * (MAX_BYTES + 500)}
        ituna.init(service_name="failure-line-test", env=False, type="none")
        with ituna.Producer(broker.bootstrap) as prod:
            prod.publish(topics["kitchen"], order, key=order["order_id"])
            prod.flush(10)
        ituna.shutdown(timeout=5)
        line = wait_for(log_path, "Failed to handle a message from")
    finally:
        p.terminate()
        rc = p.wait(30)
    text = log_path.read_text(errors="replace")
    assert rc == 0, f"{lang} kitchen-service did not stop cleanly after the failure (exit {rc}):\n{text[-3000:]}"

    m = RE_FAILED.search(line)
    assert m, f"{lang}: not the common failure line: {line}"
    topic, partition, offset, error, trace_id, span_id = m.groups()
    assert topic == topics["kitchen"] and int(partition) >= 0 and int(offset) >= 0, line
    assert "- kitchen-service - ERROR - " in line
    # the error itself, as the core words it for both languages (Python prefixes the
    # exception's type, Lua the script position): the local limit, not the broker
    assert f"kafka publish to '{topics['ready']}': the record is " in error, line
    assert error.endswith(f"over this producer's message.max.bytes of {MAX_BYTES} (a local limit: not sent "
                          "to the broker)"), line
    assert "DONE kitchen-service handled=0" in text  # a failed message is not counted as handled
    assert trace_id != "0" * 32 and span_id != "0" * 16, f"{lang}: the failure line has no ids: {line}"

    # the ids lead to the CONSUMER span of that message, which recorded the error
    spans = traceshape.read_jsonl(str(spans_path))
    span = next((s for s in spans if s.span_id == span_id), None)
    assert span is not None, f"{lang}: span {span_id} of the failure line was not exported"
    assert span.trace_id == trace_id
    assert span.kind == traceshape.CONSUMER and span.name == f"process {topics['kitchen']}"
    assert span.status == 2, f"{lang}: the failed message's span is not in error: {span}"
    assert span.attrs.get("order.id") == order["order_id"]
    assert f"Received order {order['order_id']} for processing" in text  # the handler had the order
