"""The consumer-loop scenario table (tests/scenarios/kafka_scenarios.json) through the
Python binding on the real broker: outcomes, exported spans, what the handler was told
about its publishes, and the committed offset (what a fresh member reads first) must
equal the table, as they must for the C host (ctest scenarios_c) and Lua."""
import json
import os
import uuid

import pytest

import ituna  # noqa: E402  (conftest.py picks which ituna)

from kafka_helpers import real_bootstrap, spans_of  # noqa: E402

TABLE = json.load(open(os.path.join(os.path.dirname(__file__), "..", "scenarios", "kafka_scenarios.json")))
BIG = b"x" * 1_500_000  # within the producer's message.max.bytes (3000000), beyond the broker's


@pytest.fixture
def broker():
    return real_bootstrap()


def read_all(bootstrap, topic, first_only=False, idle=4.0):
    got = []
    with ituna.Consumer(topic, "g-read-" + uuid.uuid4().hex[:8], bootstrap, auto_offset_reset="earliest") as c:
        m = c.poll(timeout=30 if first_only else idle + 6)
        while m is not None:
            got.append(m.value)
            m.ack()
            if first_only:
                break
            m = c.poll(timeout=idle)
    return got


def run(sc, bootstrap, tmp_path):
    path = tmp_path / "spans.jsonl"
    settings = {"exporter.schedule-delay": "50", "messaging.max-redeliveries": str(sc.get("max_redeliveries", 9))}
    tracer = ituna.init(service_name="scenarios-py", env=False, type="file", file=str(path), settings=settings)
    tag = uuid.uuid4().hex[:8]
    topic, out, group = "sc-py-%s-%s" % (sc["name"][:20], tag), "sc-py-out-" + tag, "g-sc-" + tag
    got = {"handled": 0, "failed_publishes_seen": []}
    with ituna.Producer(bootstrap, linger_ms=1) as p:
        for v in sc["input"]:
            p.publish(topic, v.encode(), partition=0)
        p.flush(30)
    with ituna.Producer(bootstrap, linger_ms=1, message_max_bytes=3000000, message_timeout_ms=10000) as p, \
            ituna.Consumer(topic, group, bootstrap, auto_offset_reset="earliest") as c:
        assert c.wait_assigned(30)
        for msg in c:
            step = sc["handler"][min(got["handled"], len(sc["handler"]) - 1)]
            got["handled"] += 1
            seen = None
            try:
                with msg:
                    for kind in step.get("publish", []):
                        p.publish(out, BIG if kind == "too_large" else {"order": msg.value.decode()})
                    if step.get("flush"):
                        seen = []
                        try:
                            p.flush(30)
                        except ituna.DeliveryError as e:  # only this message's own publishes
                            tickets = [r.context.span_id for r in e.reports]
                            seen = sorted(i for i, s in enumerate(msg_sends(tracer, tmp_path, msg)) if s in tickets)
                    if step["then"] == "raise":
                        raise RuntimeError("kitchen on fire")
                    if step["then"] == "malformed":
                        raise ituna.MalformedPayload("not an order")
                    if step["then"] == "stop":
                        c.stop()
            except RuntimeError:
                pass
            got["failed_publishes_seen"].append(seen)
            if got["handled"] >= len(sc["expect"]["attempts"]) and step["then"] != "stop":
                break  # (with "stop" only stop() may end the loop)
        p.flush(30)
    with ituna.Producer(bootstrap) as p:
        p.publish(topic, b"end", partition=0)
    first = read_all(bootstrap, topic, first_only=True)
    probe = None
    with ituna.Consumer(topic, group, bootstrap) as c:  # the same group: where it committed
        m = c.poll(timeout=30)
        got["next_member_first"] = m.value.decode() if m is not None else None
        if m is not None:
            probe = m.span.context.span_id
            m.nack()
    assert first[0] == sc["input"][0].encode()
    got["out"] = len(read_all(bootstrap, out))
    got["dlq"] = len(read_all(bootstrap, topic + ".dlq", idle=3.0))
    procs = [s for s in spans_of(tracer, path) if s["name"] == "process " + topic
             and s["attrs"].get("messaging.consumer.group.name") == group and s["spanId"] != probe]
    procs.sort(key=lambda s: int(s["startTimeUnixNano"]))
    got["attempts"] = [{"status": "error" if s.get("status", {}).get("code") == 2 else "ok",
                        "error_type": s["attrs"].get("error.type"),
                        "dlq": "ituna.dlq.topic" in s["attrs"]} for s in procs]
    ituna.shutdown(timeout=5)
    return got


def msg_sends(tracer, tmp_path, msg):
    """span ids of the send spans made under msg's CONSUMER span, in publish order"""
    spans = spans_of(tracer, tmp_path / "spans.jsonl")
    sends = [s for s in spans if s.get("parentSpanId") == msg.span.context.span_id and s["name"].startswith("send ")]
    return [s["spanId"] for s in sorted(sends, key=lambda s: int(s["startTimeUnixNano"]))]


@pytest.mark.parametrize("sc", TABLE["scenarios"], ids=[s["name"] for s in TABLE["scenarios"]])
def test_scenario(sc, broker, tmp_path):
    got = run(sc, broker, tmp_path)
    exp = sc["expect"]
    for key in exp:
        if key == "attempts":
            # error_type null in the table: any (the handler's own exception or the delivery)
            assert len(got["attempts"]) == len(exp["attempts"]), got["attempts"]
            for g, e in zip(got["attempts"], exp["attempts"]):
                assert g["status"] == e["status"] and g["dlq"] == e["dlq"], got["attempts"]
                if e["error_type"] is not None:
                    assert g["error_type"] == e["error_type"], got["attempts"]
        else:
            assert got[key] == exp[key], (key, got)
