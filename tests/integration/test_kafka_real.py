"""Kafka layer against a REAL Apache Kafka broker (tools/kafka.sh start).

Each scenario runs separate processes of tests/integration/itest_kafka_tool.c
(build target itest_kafka_tool) and checks what they print and the spans they
export to OTLP JSON-lines files.

Needs ITUNA_TEST_KAFKA=host:port. Without it the tests are skipped with the
reason, except under CI=true where they fail: CI must start the broker.
The tool is found through ITUNA_ITEST_KAFKA_TOOL or in build*/tests/.
"""
import glob
import json
import os
import subprocess
import threading
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _bootstrap():
    bs = os.environ.get("ITUNA_TEST_KAFKA")
    if not bs:
        why = "ITUNA_TEST_KAFKA is not set: start a broker with tools/kafka.sh start and export it"
        if os.environ.get("CI") == "true":
            pytest.fail(why + " (CI must run the real-broker tests)")
        pytest.skip(why)
    return bs


def _tool():
    path = os.environ.get("ITUNA_ITEST_KAFKA_TOOL")
    if not path:
        found = sorted(glob.glob(os.path.join(ROOT, "build*", "tests", "itest_kafka_tool")), key=os.path.getmtime)
        path = found[-1] if found else None
    if not path or not os.access(path, os.X_OK):
        why = "itest_kafka_tool not built (cmake --build <dir> --target itest_kafka_tool)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return path


@pytest.fixture
def kafka():
    return _bootstrap()


@pytest.fixture
def tool():
    return _tool()


def uniq(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


# Group members that die without leaving are noticed after session.timeout.ms.
FAST = ["--prop", "session.timeout.ms=6000", "--prop", "heartbeat.interval.ms=500"]


def run(tool, *args, timeout=90, check=True):
    p = subprocess.run([tool, *args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s %s exited %d\nstdout:\n%s\nstderr:\n%s"
                             % (os.path.basename(tool), " ".join(args), p.returncode, p.stdout, p.stderr))
    return p


def produced(out):
    rows = []
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "produced":
            rows.append({"partition": int(f[1]), "offset": int(f[2]), "trace": f[3], "span": f[4], "key": f[5]})
    return rows


def consumed(out):
    rows, cur = [], None
    for line in out.splitlines():
        f = line.split(" ", 7)
        if f[0] == "consumed":
            cur = {"topic": f[1], "partition": int(f[2]), "offset": int(f[3]), "key": f[4], "trace": f[5],
                   "span": f[6], "value": f[7] if len(f) > 7 else "", "headers": {}}
            rows.append(cur)
        elif f[0] == "header" and cur is not None:
            k, _, v = line[len("header "):].partition(" ")
            cur["headers"][k] = v
    return rows


def spans(path):
    """All spans of an OTLP JSON-lines file, attributes flattened, plus service.name."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as fh:
        for line in fh:
            req = json.loads(line)
            for rs in req.get("resourceSpans", []):
                svc = {a["key"]: a["value"] for a in rs.get("resource", {}).get("attributes", [])}
                for ss in rs.get("scopeSpans", []):
                    for s in ss.get("spans", []):
                        attrs = {}
                        for a in s.get("attributes", []):
                            v = a["value"]
                            attrs[a["key"]] = next(iter(v.values())) if v else None
                        s["attrs"] = attrs
                        s["service"] = svc.get("service.name", {}).get("stringValue")
                        out.append(s)
    return out


def by_id(span_list, span_id):
    m = [s for s in span_list if s["spanId"] == span_id]
    assert m, "span %s not exported" % span_id
    return m[0]


def test_publish_in_one_process_consume_in_another_is_one_trace(kafka, tool, tmp_path):
    topic, group = uniq("it-trace"), uniq("g")
    pf, cf = str(tmp_path / "p.jsonl"), str(tmp_path / "c.jsonl")
    p = run(tool, "produce", "--bootstrap", kafka, "--topic", topic, "--key", "order", "--count", "2",
            "--header", "x-itest=hello", "--header", "x-order=42", "--traces", pf, "--service", "itest-producer")
    prod = produced(p.stdout)
    assert len(prod) == 2
    c = run(tool, "consume", "--bootstrap", kafka, "--topic", topic, "--group", group, "--count", "2",
            "--traces", cf, "--service", "itest-consumer", *FAST)
    cons = consumed(c.stdout)
    assert len(cons) == 2
    psp, csp = spans(pf), spans(cf)
    for msg in cons:
        src = [x for x in prod if x["partition"] == msg["partition"] and x["offset"] == msg["offset"]]
        assert src, "consumed a message that was not produced: %r" % msg
        src = src[0]
        # headers survive, ours and the caller's
        assert msg["headers"]["x-itest"] == "hello" and msg["headers"]["x-order"] == "42"
        assert msg["headers"]["traceparent"] == "00-%s-%s-01" % (src["trace"], src["span"])
        ps, cs = by_id(psp, src["span"]), by_id(csp, msg["span"])
        assert ps["service"] == "itest-producer" and cs["service"] == "itest-consumer"
        assert ps["name"] == "send " + topic and ps["kind"] == 4
        assert cs["name"] == "process " + topic and cs["kind"] == 5
        assert cs["traceId"] == ps["traceId"] == src["trace"]
        assert cs["parentSpanId"] == ps["spanId"]
        for s, op in ((ps, "send"), (cs, "process")):
            a = s["attrs"]
            assert a["messaging.system"] == "kafka"
            assert a["messaging.operation.name"] == op and a["messaging.operation.type"] == op
            assert a["messaging.destination.name"] == topic
            assert a["messaging.destination.partition.id"] == str(msg["partition"])
            assert int(a["messaging.kafka.offset"]) == msg["offset"]
            assert a["messaging.kafka.message.key"] == src["key"]
            assert a["server.address"] == kafka.split(":")[0]
            assert int(a["server.port"]) == int(kafka.rsplit(":", 1)[1])
        ca = cs["attrs"]
        assert ca["messaging.consumer.group.name"] == group
        assert ca["ituna.context.source"] == "header"
        assert 0 <= float(ca["ituna.queue_wait_ms"]) < 120000
        assert int(ca["ituna.message.timestamp_ms"]) > 0


def test_consumer_killed_before_commit_has_message_redelivered_to_next_member(kafka, tool, tmp_path):
    topic, group = uniq("it-crash"), uniq("g")
    prod = produced(run(tool, "produce", "--bootstrap", kafka, "--topic", topic).stdout)
    assert len(prod) == 1
    first = run(tool, "consume", "--bootstrap", kafka, "--topic", topic, "--group", group, "--die-after-poll",
                *FAST, check=False)
    assert first.returncode == 3, first.stderr
    got = consumed(first.stdout)
    assert [(m["partition"], m["offset"]) for m in got] == [(prod[0]["partition"], prod[0]["offset"])]
    t0 = time.time()
    second = run(tool, "consume", "--bootstrap", kafka, "--topic", topic, "--group", group, "--count", "1",
                 *FAST, timeout=120)
    again = consumed(second.stdout)
    assert [(m["partition"], m["offset"]) for m in again] == [(prod[0]["partition"], prod[0]["offset"])]
    assert time.time() - t0 < 60


def test_malformed_payload_lands_in_dlq_with_reason_and_nothing_is_lost(kafka, tool, tmp_path):
    topic, group = uniq("it-dlq"), uniq("g")
    cf = str(tmp_path / "c.jsonl")
    run(tool, "produce", "--bootstrap", kafka, "--topic", topic, "--count", "2", "--value", '{"ok": true}')
    bad = produced(run(tool, "produce", "--bootstrap", kafka, "--topic", topic, "--key", "bad",
                       "--value", "BAD{not json").stdout)[0]
    c = run(tool, "consume", "--bootstrap", kafka, "--topic", topic, "--group", group, "--count", "3",
            "--malformed-if", "BAD", "--traces", cf, *FAST)
    cons = consumed(c.stdout)
    assert len(cons) == 3
    bad_msg = [m for m in cons if m["value"].startswith("BAD")][0]
    cs = by_id(spans(cf), bad_msg["span"])
    assert cs["status"]["code"] == 2 and cs["status"]["message"] == "payload is not valid JSON"
    assert cs["attrs"]["error.type"] == "malformed_payload"
    dlq_send = [s for s in spans(cf) if s["name"] == "send %s.dlq" % topic]
    assert len(dlq_send) == 1 and dlq_send[0]["parentSpanId"] == cs["spanId"]
    # the DLQ holds it with the reason and where it came from
    d = consumed(run(tool, "consume", "--bootstrap", kafka, "--topic", topic + ".dlq", "--group", uniq("dlqr"),
                     "--count", "1", *FAST).stdout)
    assert len(d) == 1
    h = d[0]["headers"]
    assert d[0]["value"] == "BAD{not json"
    assert h["ituna.dlq.reason"] == "payload is not valid JSON"
    assert h["ituna.dlq.topic"] == topic
    assert int(h["ituna.dlq.partition"]) == bad["partition"] and int(h["ituna.dlq.offset"]) == bad["offset"]
    # all three offsets committed: the group has nothing left
    rest = consumed(run(tool, "consume", "--bootstrap", kafka, "--topic", topic, "--group", group, "--count", "0",
                        "--idle-exit-ms", "4000", *FAST).stdout)
    assert rest == []


def test_malformed_traceparent_header_starts_root_span_with_reason(kafka, tool, tmp_path):
    topic, group = uniq("it-badtp"), uniq("g")
    cf = str(tmp_path / "c.jsonl")
    run(tool, "raw-produce", "--bootstrap", kafka, "--topic", topic, "--value", "{}",
        "--header", "traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-zz")
    cons = consumed(run(tool, "consume", "--bootstrap", kafka, "--topic", topic, "--group", group, "--count", "1",
                        "--traces", cf, *FAST).stdout)
    cs = by_id(spans(cf), cons[0]["span"])
    assert not cs.get("parentSpanId")
    assert cs["traceId"] != "0af7651916cd43dd8448eb211c80319c"
    assert cs["attrs"]["ituna.context.source"] == "none"
    assert cs["attrs"]["ituna.context.error"].startswith("traceparent:")


def test_seed_shaped_message_with_payload_carrier_is_continued(kafka, tool, tmp_path):
    topic, group = uniq("it-seed"), uniq("g")
    cf = str(tmp_path / "c.jsonl")
    tid, sid = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    carrier = {"traceparent": "00-%s-%s-01" % (tid, sid)}
    # exactly what the seed's kafka-python producer writes: json.dumps of the carrier as a string field
    payload = json.dumps({"order_id": str(uuid.uuid4()), "order_details": {"tuna": 2},
                          "carrier": json.dumps(carrier)})
    run(tool, "raw-produce", "--bootstrap", kafka, "--topic", topic, "--value", payload)
    cons = consumed(run(tool, "consume", "--bootstrap", kafka, "--topic", topic, "--group", group, "--count", "1",
                        "--traces", cf, *FAST).stdout)
    cs = by_id(spans(cf), cons[0]["span"])
    assert cs["traceId"] == tid and cs["parentSpanId"] == sid
    assert cs["attrs"]["ituna.context.source"] == "payload-carrier"


def test_payload_carrier_switch_writes_the_seed_field(kafka, tool, tmp_path):
    topic, group = uniq("it-pc"), uniq("g")
    prod = produced(run(tool, "produce", "--bootstrap", kafka, "--topic", topic, "--payload-carrier",
                        "--value", '{"order_id": "x"}').stdout)[0]
    cons = consumed(run(tool, "consume", "--bootstrap", kafka, "--topic", topic, "--group", group, "--count", "1",
                        *FAST).stdout)
    body = json.loads(cons[0]["value"])
    assert body["order_id"] == "x"
    assert json.loads(body["carrier"]) == {"traceparent": "00-%s-%s-01" % (prod["trace"], prod["span"])}


def test_consumers_in_one_group_split_partitions_without_loss_or_duplicates(kafka, tool, tmp_path):
    topic, group, n = uniq("it-group"), uniq("g"), 200
    # create the topic (broker default: 4 partitions) before the members join
    run(tool, "raw-produce", "--bootstrap", kafka, "--topic", topic, "--value", "warm-up")
    members = [subprocess.Popen([tool, "consume", "--bootstrap", kafka, "--topic", topic, "--group", group,
                                 "--count", "0", "--idle-exit-ms", "12000", *FAST],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    lines = [[], []]

    def read(i):
        for line in members[i].stdout:
            lines[i].append(line)
    readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(2)]
    for r in readers:
        r.start()

    def assignment(i):
        counts = [int(x.split()[1]) for x in list(lines[i]) if x.startswith("assigned ")]
        return counts[-1] if counts else 0
    # the burst starts once both members hold partitions that add up to the topic's 4
    deadline = time.time() + 60
    while not (assignment(0) > 0 and assignment(1) > 0 and assignment(0) + assignment(1) == 4):
        assert time.time() < deadline, "the group did not settle: %r" % lines
        time.sleep(0.2)
    prod = produced(run(tool, "produce", "--bootstrap", kafka, "--topic", topic, "--count", str(n)).stdout)
    assert len(prod) == n
    for m, r in zip(members, readers):
        m.wait(timeout=120)
        r.join(timeout=10)
    outs = ["".join(x) for x in lines]
    got = [consumed(o) for o in outs]
    keys = [(m["partition"], m["offset"]) for g in got for m in g if m["value"] != "warm-up"]
    assert len(keys) == len(set(keys)), "a message was processed twice"
    assert set(keys) == {(p["partition"], p["offset"]) for p in prod}, "a message was lost"
    # the warm-up was read by whichever member joined first, before the split
    parts = [{m["partition"] for m in g if m["value"] != "warm-up"} for g in got]
    assert all(parts) and not (parts[0] & parts[1]), "partitions not split between members: %r" % parts


def test_unreachable_broker_gives_clear_error_within_bounded_time(tool, tmp_path):
    # needs no broker: runs everywhere the tool is built
    t0 = time.time()
    p = run(tool, "unreachable", "--bootstrap", "127.0.0.1:1", timeout=90)
    took = time.time() - t0
    assert "consumer ITUNA_ERR_TIMEOUT" in p.stdout and "no Kafka broker reachable at 127.0.0.1:1" in p.stdout
    assert "failures=1" in p.stdout
    assert took < 40
