"""Payload and header faults on a real broker (ITUNA_TEST_KAFKA): a JSON payload with
invalid UTF-8 is dead-lettered with a reason by Python and Lua alike, and a
tracestate over the W3C limits (10 KB) is recorded on the CONSUMER span that
dropped it. The raw messages are written with confluent_kafka, so the headers are
exactly what a foreign producer might send."""
import json
import os
import subprocess
import uuid

import pytest
from confluent_kafka import Consumer as CkConsumer
from confluent_kafka import Producer as CkProducer

import ituna
from otlp_receiver import skip_or_fail

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
BAD_UTF8 = b'{"order_id": "o-1", "customer_name": "Gr\xfc\xdfe \xff"}'


@pytest.fixture
def broker():
    b = os.environ.get("ITUNA_TEST_KAFKA")
    if not b:
        skip_or_fail("ITUNA_TEST_KAFKA not set (a real broker: tools/kafka.sh start)")
    return b


def raw_publish(bootstrap, topic, value, headers):
    p = CkProducer({"bootstrap.servers": bootstrap})
    p.produce(topic, value=value, key=b"k", headers=headers, partition=0)
    assert p.flush(30) == 0


def dlq_records(bootstrap, topic, n, timeout=30):
    c = CkConsumer({"bootstrap.servers": bootstrap, "group.id": "dlq-read-" + uuid.uuid4().hex[:8],
                    "auto.offset.reset": "earliest"})
    c.subscribe([topic + ".dlq"])
    out = []
    import time
    end = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < end:
        m = c.poll(1.0)
        if m is not None and not m.error():
            out.append(m)
    c.close()
    return out


def spans_in(path):
    out = []
    for line in path.read_text().splitlines():
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    s["attrs"] = {a["key"]: next(iter(a["value"].values())) for a in s.get("attributes", [])}
                    out.append(s)
    return out


def test_python_dead_letters_a_json_payload_with_invalid_utf8(broker, tmp_path):
    topic = "fault-utf8-py-" + uuid.uuid4().hex[:8]
    raw_publish(broker, topic, BAD_UTF8, [("traceparent", TP)])
    path = tmp_path / "spans.jsonl"
    tracer = ituna.Tracer(env=False, settings=[("service_name", "utf8-py"), ("exporter.type", "file"),
                                               ("exporter.file", str(path))])
    with ituna.Consumer([topic], "g-" + topic, broker, tracer=tracer, **{"auto.offset.reset": "earliest"}) as c:
        msg = None
        for _ in range(60):
            msg = c.poll(timeout=1.0)
            if msg is not None:
                break
        assert msg is not None, "the message never arrived"
        with msg:
            msg.json()
        assert msg.finished == "dead-letter"
    [rec] = dlq_records(broker, topic, 1)
    h = dict(rec.headers())
    assert rec.value() == BAD_UTF8
    assert b"utf-8" in h["ituna.dlq.reason"].lower(), h
    assert tracer.shutdown(timeout=10)
    [proc] = [s for s in spans_in(path) if s["name"] == "process " + topic]
    assert proc["status"]["code"] == 2 and "utf-8" in proc["status"]["message"].lower(), proc


LUA_CONSUME = """
local ituna = require "ituna"
local bootstrap, topic = arg[1], arg[2]
local c = ituna.consumer { bootstrap = bootstrap, group = "g-" .. topic, topics = { topic },
  ["auto.offset.reset"] = "earliest" }
local n = c:each(function(msg) msg:json() end, { max = 1, idle = 30 })
c:close()
print("handled", n)
"""


def test_lua_dead_letters_a_json_payload_with_invalid_utf8_like_python(broker, tmp_path):
    exe = os.environ.get("ITUNA_LUA")
    if not exe or not os.path.exists(exe):
        skip_or_fail("ITUNA_LUA (the built ituna-lua host) is not set")
    topic = "fault-utf8-lua-" + uuid.uuid4().hex[:8]
    raw_publish(broker, topic, BAD_UTF8, [("traceparent", TP)])
    script = tmp_path / "consume.lua"
    script.write_text(LUA_CONSUME)
    path = tmp_path / "spans.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_TRACES_EXPORTER="file", ITUNA_TRACES_FILE=str(path))
    ini = tmp_path / "c.ini"
    ini.write_text(f"[exporter]\ntype = file\nfile = {path}\n")
    p = subprocess.run([exe, "--config", str(ini), "--service", "utf8-lua", str(script), broker, topic],
                       capture_output=True, text=True, timeout=90, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "handled\t1" in p.stdout, p.stdout + p.stderr
    [rec] = dlq_records(broker, topic, 1)
    h = dict(rec.headers())
    assert rec.value() == BAD_UTF8, "the original bytes go to the DLQ, not a forwarded copy"
    assert b"utf-8" in h["ituna.dlq.reason"].lower(), h
    [proc] = [s for s in spans_in(path) if s["name"] == "process " + topic]
    assert proc["status"]["code"] == 2 and "utf-8" in proc["status"]["message"].lower(), proc


def test_a_tracestate_over_the_limit_is_recorded_on_the_consumer_span(broker, tmp_path):
    topic = "fault-tracestate-" + uuid.uuid4().hex[:8]
    big = ",".join(f"vendor{i}=" + "x" * 250 for i in range(40))  # 40 members, ~10 KB
    fits = "congo=t61rcWkgMzE," + ",".join(f"k{i}=" + "v" * 120 for i in range(8))  # ~1 KB: cut to 512
    raw_publish(broker, topic, b"{}", [("traceparent", TP), ("tracestate", big)])
    raw_publish(broker, topic, b"{}", [("traceparent", TP), ("tracestate", fits)])
    raw_publish(broker, topic, b"{}", [("traceparent", TP), ("tracestate", "congo=t61rcWkgMzE")])
    path = tmp_path / "spans.jsonl"
    tracer = ituna.Tracer(env=False, settings=[("service_name", "ts"), ("exporter.type", "file"),
                                               ("exporter.file", str(path))])
    with ituna.Consumer([topic], "g-" + topic, broker, tracer=tracer, **{"auto.offset.reset": "earliest"}) as c:
        got = 0
        for _ in range(60):
            msg = c.poll(timeout=1.0)
            if msg is not None:
                with msg:
                    got += 1
                if got == 3:
                    break
        assert got == 3
    assert tracer.shutdown(timeout=10)
    procs = sorted((s for s in spans_in(path) if s["name"] == "process " + topic),
                   key=lambda s: int(s["attrs"]["messaging.kafka.offset"]))
    assert len(procs) == 3
    # still the producer's trace: a bad tracestate alone never breaks the trace (W3C)
    assert all(s["traceId"] == TP.split("-")[1] for s in procs)
    assert procs[0]["attrs"]["ituna.tracestate.dropped"] == \
        f"tracestate: more than 32 list-members ({len(big)} bytes)"
    assert procs[1]["attrs"]["ituna.tracestate.dropped"] == \
        f"tracestate: truncated to 512 chars ({len(fits)} bytes)"
    assert "ituna.tracestate.dropped" not in procs[2]["attrs"]
