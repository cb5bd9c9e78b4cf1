"""Message.json() gives json.loads's result for every payload, whichever parser ran
(orjson for speed when installed, json.loads for what orjson refuses or reads
differently): big integers stay exact, NaN/Infinity parse as json.loads parses them,
and what is not JSON raises MalformedPayload. publish(dict/list) sends the bytes of
json.dumps(v, separators=(",", ":")) whichever encoder ran (orjson for plain values)."""
import json
import uuid

import ituna
import pytest

PAYLOADS = [b'{"order_id":"6f1c","order_details":{"TUNA MAKI":2},"table":12}', b'-0', b'-0.0', b'0.1',
            b'[1e400]', b'NaN', b'{"x":Infinity}', b'12345678901234567890123', b'{"x":-9223372036854775809}',
            b'{"x":18446744073709551615}', b'{"a":1,"a":2}', b' [1, 2.5e3, "\\u00e9", "\\ud83d\\ude00"] ',
            b'"\\ud800"', b'"\xc3\xa9"', b'1E2']
NOT_JSON = [b'{"a":1,}', b'[1 2]', b'\xff', b'']


@pytest.fixture(scope="module")
def roundtrip():
    tracer = ituna._core.Tracer(env=False, settings=[("tracer.service-name", "json-test"), ("exporter.type", "none")])
    broker = ituna.start_embedded_broker()
    topic = "json-" + uuid.uuid4().hex[:8]
    producer = ituna.Producer(broker.bootstrap, tracer=tracer)
    consumer = ituna.Consumer([topic], group=topic, bootstrap=broker.bootstrap, tracer=tracer,
                              **{"auto.offset.reset": "earliest"})

    def send(value):
        producer.publish(topic, value)
        producer.flush(10)
        msg = consumer.poll(20)
        assert msg is not None
        return msg
    yield send
    consumer.close()
    producer.close()
    broker.stop()


def test_json_is_json_loads_for_every_payload(roundtrip):
    for raw in PAYLOADS:
        msg = roundtrip(raw)
        want = json.loads(raw)
        got = msg.json()
        assert repr(got) == repr(want), raw  # repr: -0.0 vs 0, nan, types of numbers
        msg.ack()


def test_not_json_is_malformed(roundtrip):
    for raw in NOT_JSON:
        msg = roundtrip(raw)
        with pytest.raises(ituna.MalformedPayload):
            msg.json()
        msg.ack()


class Key(str):
    pass


def nested(depth):
    v = [0]
    for _ in range(depth):
        v = [v]
    return v


# What orjson writes differently from json (non-ASCII, DEL, exponents, NaN, subclasses,
# non-str keys, big ints, deep nesting) next to plain values it writes the same.
VALUES = [{"order_id": "6f1c", "order_details": {"TUNA MAKI": 2}, "table": 12, "ok": True, "x": None},
          [1, -2, 0.1, 2.5, -0.0, 0.0, 1e-4, 9.5e15, (3, "t")], {"name": "Jos\u00e9"}, ["a\x7fb", "\ud800"],
          {"tab": "a\tb\n\x01\"\\/"}, [1e16, 1e-5, 1.5e300, float("nan"), float("inf")], {1: "int key"},
          {Key("k"): 1}, [2 ** 63 - 1, -2 ** 63, 2 ** 63, 2 ** 70], nested(20), {"deep": nested(80)}, [], {}]


def test_publish_sends_json_dumps_bytes(roundtrip):
    for value in VALUES:
        msg = roundtrip(value)
        assert msg.value == json.dumps(value, separators=(",", ":")).encode(), value
        msg.ack()


def test_publish_refuses_what_json_refuses(roundtrip):
    for value in ({"t": {1, 2}}, {(1, 2): 3}, [b"bytes"]):
        with pytest.raises(TypeError):
            roundtrip(value)
