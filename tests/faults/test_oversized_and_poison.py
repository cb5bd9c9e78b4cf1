"""Oversized and poison messages never block a partition, on the fault suite's own real
broker, with the shipped kitchen-service (Python and Lua) and its shipped settings
(max-redeliveries 9: ten attempts):

- a poison order: its "ready" publish is refused by the broker (the ready topic takes
  at most 2,000 bytes), so the handler fails on every attempt;
- a ~1 MB order: the broker takes it (its limit is 1 MiB), but the service's producer
  may not send anything over 1,000,000 bytes, so its "ready" publish is refused before
  it starts and its DLQ copy would not fit either;
- then a good order on the same partition.

Each bad order is tried exactly ten times, then lands in <topic>.dlq with the reason,
its topic, partition, offset, its own headers, and (the 1 MB one) the value cut and
flagged with its original size; the good order behind them is served. Python prints
no "Exception ignored". Also: a publish over the producer's own limit is refused
before its span starts, naming the local limit, in Python and Lua alike; and a DLQ
write that fails goes with the handler's exception, not to stderr as GC noise."""
import json
import os
import re
import subprocess
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import traceshape  # noqa: E402
from e2e_common import ituna_lua_path, launcher_env  # noqa: E402
from restaurant_util import kitchen_service, write_config  # noqa: E402

ATTEMPTS = 10  # [messaging] max-redeliveries 9 (the default) + the first attempt
BIG_NAME = 1_040_000  # the order's customer_name: the record is ~1.04 MB, under the broker's 1,048,588
READY_LIMIT = 2000  # the ready topic's max.message.bytes: the poison order's "ready" copy is over it
SERVICE_BOUND_S = 180  # from the service's start to the good order served (about 10 s unloaded)


def admin(bootstrap):
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topics(bootstrap, topics):
    from confluent_kafka.admin import NewTopic
    a = admin(bootstrap)
    new = [NewTopic(topics["kitchen"], 1, 1),
           NewTopic(topics["ready"], 1, 1, config={"max.message.bytes": str(READY_LIMIT)}),
           NewTopic(topics["rejected"], 1, 1)]
    for f in a.create_topics(new).values():
        f.result(30)


def produce(bootstrap, topic, records):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 2_000_000, "linger.ms": 0})
    errors = []
    for key, value, headers in records:
        p.produce(topic, value=value, key=key, headers=headers, partition=0,
                  on_delivery=lambda err, msg: err and errors.append(err))
        p.flush(60)  # one at a time: they must land in this order
    assert not errors, errors


def read_topic(bootstrap, topic, n, timeout=60):
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "read-" + uuid.uuid4().hex[:8],
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got, end = [], time.monotonic() + timeout
    try:
        while len(got) < n and time.monotonic() < end:
            m = c.poll(1.0)
            if m is not None and not m.error():
                got.append(m)
        # nothing more than n
        end = time.monotonic() + 3
        while time.monotonic() < end:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m)
    finally:
        c.close()
    return got


def order(order_id, name="Aiko Sato"):
    return json.dumps({"order_id": order_id, "customer_id": "c-1", "source": "direct", "customer_name": name,
                       "order_details": {"TUNA MAKI": 1}}).encode()


def wait_line(path, needle, proc, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        text = path.read_text(errors="replace") if path.exists() else ""
        if needle in text:
            return text
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    text = path.read_text(errors="replace") if path.exists() else ""
    raise AssertionError(f"no {needle!r} within {timeout} s (service exit {proc.poll()}):\n{text[-4000:]}")


@pytest.mark.parametrize("lang", ["python", "lua"])
def test_poison_and_1mb_orders_go_to_the_dlq_after_ten_attempts_and_the_partition_moves_on(broker, tmp_path, lang):
    if lang == "lua" and not ituna_lua_path():
        pytest.fail("ituna-lua is not built (cmake --build build, or set ITUNA_LUA)")
    cfg, topics = write_config(tmp_path, failures=False)
    text = open(cfg).read()
    open(cfg, "w").write(re.sub(r"(?m)^kitchen-service = 20$", "kitchen-service = 0", text))
    create_topics(broker.bootstrap, topics)
    tag = uuid.uuid4().hex[:6]
    poison_id, big_id, good_id = f"poison-{tag}", f"big-{tag}", f"good-{tag}"
    kept = [("x-test", b"kept"), ("x-lang", lang.encode())]
    produce(broker.bootstrap, topics["kitchen"], [
        (poison_id.encode(), order(poison_id, "P" * 3000), kept),
        (big_id.encode(), order(big_id, "B" * BIG_NAME), kept),
        (good_id.encode(), order(good_id), None)])

    log = tmp_path / "kitchen-service.log"
    spans_path = tmp_path / "spans.jsonl"
    cmd, env = kitchen_service(lang, cfg, ituna_lua_path(), broker.bootstrap, spans_path)
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_line(log, f"Order id = {good_id}", proc, SERVICE_BOUND_S)
        took = time.monotonic() - t0
        # the bad ones are not tried again once the partition moved on
        time.sleep(2)
    finally:
        proc.terminate()
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
    text = log.read_text(errors="replace")
    print(f"{lang}: good order served {took:.1f} s after the service started")
    assert rc == 0, f"{lang} kitchen-service did not stop cleanly (exit {rc}):\n{text[-3000:]}"
    assert "Exception ignored" not in text and "Traceback" not in text, text[-4000:]

    # redelivery is bounded: ten attempts each, said in the service's failure line
    failed = re.findall(r"Failed to handle a message from \S+ \[0\] @(\d+) ", text)
    assert failed.count("0") == ATTEMPTS and failed.count("1") == ATTEMPTS and "2" not in failed, failed
    assert f"Received order {poison_id} for processing" in text and f"Received order {big_id}" in text
    # the 1 MB order's publish was refused locally, naming the limit (not "Broker: ...")
    assert "over this producer's message.max.bytes of 1000000 (a local limit" in text, text[-3000:]

    # the DLQ holds both, with the reason, where they came from, their headers; the
    # 1 MB one cut below the producer's limit and flagged
    dlq = read_topic(broker.bootstrap, topics["kitchen"] + ".dlq", 2)
    assert len(dlq) == 2, [m.key() for m in dlq]
    by_key = {m.key().decode(): m for m in dlq}
    for oid, offset in ((poison_id, 0), (big_id, 1)):
        m = by_key[oid]
        h = {}
        for k, v in m.headers() or []:
            h.setdefault(k, v)
        assert h["ituna.dlq.reason"].decode().startswith(f"handler failed {ATTEMPTS} times: "), h
        assert h["ituna.dlq.topic"].decode() == topics["kitchen"]
        assert h["ituna.dlq.partition"] == b"0" and h["ituna.dlq.offset"] == str(offset).encode()
        assert h["x-test"] == b"kept" and h["x-lang"] == lang.encode(), h
    poison, big = by_key[poison_id], by_key[big_id]
    assert poison.value() == order(poison_id, "P" * 3000)
    assert "ituna.dlq.value-cut" not in dict(poison.headers())
    bh = dict(big.headers())
    original = order(big_id, "B" * BIG_NAME)
    assert bh["ituna.dlq.value-cut"] == b"true" and bh["ituna.dlq.original-size"] == str(len(original)).encode()
    assert 900_000 < len(big.value()) < 1_000_000 and original.startswith(big.value()), len(big.value())
    print(f"{lang}: DLQ copy of the {len(original)}-byte order cut to {len(big.value())} bytes")
    reason = bh["ituna.dlq.reason"].decode()
    assert "message.max.bytes of 1000000" in reason, reason
    assert "too large" in dict(poison.headers())["ituna.dlq.reason"].decode().lower()

    # the spans say the same: ten CONSUMER spans per bad order, all in error, the last
    # naming the DLQ topic (and the 1 MB one its original size)
    spans = traceshape.read_jsonl(str(spans_path))
    for offset in (0, 1):
        process = [s for s in spans if s.name == f"process {topics['kitchen']}"
                   and str(s.attrs.get("messaging.kafka.offset")) == str(offset)]
        assert len(process) == ATTEMPTS, (offset, len(process))
        assert all(s.status == 2 for s in process)
        dl = [s for s in process if s.attrs.get("ituna.dlq.topic") == topics["kitchen"] + ".dlq"]
        assert len(dl) == 1, offset
        assert str(dl[0].attrs.get("ituna.delivery.attempt")) == str(ATTEMPTS)
        if offset == 1:
            assert str(dl[0].attrs.get("ituna.dlq.original_size")) == str(len(original))


def test_a_publish_over_the_local_limit_is_refused_before_its_span_in_python_and_lua(broker, tmp_path):
    """The check lives in the core: the same refusal, with size and limit, from both."""
    topic = "big-" + uuid.uuid4().hex[:8]
    py = f"""
import ituna
t = ituna.init(service_name="size", env=False, type="file", file={str(tmp_path / 'py.jsonl')!r})
p = ituna.Producer({broker.bootstrap!r})
try:
    p.publish({topic!r}, b"x" * 1_000_001)
except ituna.Error as e:
    print("REFUSED", type(e).__name__, e.name, e)
p.publish({topic!r}, b"small")
p.flush(30)
p.close()
ituna.shutdown(timeout=10)
"""
    lua = f"""
local ituna = require("ituna")
local p = ituna.producer {{ bootstrap = "{broker.bootstrap}" }}
local ok, err = pcall(p.publish, p, "{topic}", string.rep("x", 1000001))
print(ok and "SENT" or ("REFUSED " .. tostring(err)))
p:publish("{topic}", "small")
p:flush(30)
p:close()
"""
    (tmp_path / "size.lua").write_text(lua)
    env = launcher_env()
    rp = subprocess.run([sys.executable, "-c", py], env=env, capture_output=True, text=True, timeout=120)
    lua_bin = ituna_lua_path()
    assert lua_bin, "ituna-lua is not built"
    lua_env = dict(env, OTEL_TRACES_EXPORTER="file", ITUNA_TRACES_FILE=str(tmp_path / "lua.jsonl"),
                   OTEL_SERVICE_NAME="size")
    rl = subprocess.run([lua_bin, str(tmp_path / "size.lua")], env=lua_env, capture_output=True, text=True,
                        timeout=120)
    want = (f"kafka publish to '{topic}': the record is 1000037 bytes (value 1000001, key and headers "
            "included), over this producer's message.max.bytes of 1000000 (a local limit: not sent to the broker)")
    assert rp.returncode == 0 and f"REFUSED Error ITUNA_ERR_INVALID_ARG {want}" in rp.stdout, rp.stdout + rp.stderr
    assert rl.returncode == 0 and "REFUSED " in rl.stdout and want in rl.stdout, rl.stdout + rl.stderr
    for name in ("py.jsonl", "lua.jsonl"):
        sends = [s for s in traceshape.read_jsonl(str(tmp_path / name)) if s.name == f"send {topic}"]
        assert len(sends) == 1 and sends[0].status != 2, (name, sends)  # only the small one has a span


def test_a_failed_dlq_write_goes_with_the_handlers_exception_not_to_stderr(broker, tmp_path):
    """A handler that always raises, and a DLQ that cannot be written (the suffix makes
    an invalid topic name): the message is redelivered (never dropped), each attempt's
    exception carries why finishing failed, and stderr has no "Exception ignored"."""
    topic = "dlqfail-" + uuid.uuid4().hex[:8]
    script = f"""
import sys, ituna
ituna.init(service_name="dlqfail", env=False, type="none", settings={{"messaging.max-redeliveries": "1"}})
with ituna.Producer({broker.bootstrap!r}) as p:
    p.publish({topic!r}, b"poison", partition=0)
    p.flush(30)
c = ituna.Consumer([{topic!r}], "g-" + {topic!r}, {broker.bootstrap!r}, dlq_suffix="/not a topic",
                   auto_offset_reset="earliest")
attempts = 0
for msg in c:
    try:
        with msg:
            raise RuntimeError("poison")
    except RuntimeError as e:
        attempts += 1
        print("ATTEMPT", attempts, getattr(e, "__notes__", None))
    if attempts >= 4:
        break
c.close()
ituna.shutdown(timeout=5)
"""
    r = subprocess.run([sys.executable, "-c", script], env=launcher_env(), capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Exception ignored" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.startswith("ATTEMPT")]
    assert len(lines) == 4, r.stdout
    assert lines[0].endswith("None")  # attempt 1: redelivered, nothing failed but the handler
    for l in lines[1:]:  # then the DLQ write fails each time, and the message stays
        assert "ituna: finishing the message failed: " in l and "not a topic" in l, l
    assert r.stderr.count("the message will be redelivered") == 3, r.stderr
