"""The OTLP encoders' output for hand-built spans (tests/c/span_fixture.h via the
encode_dump driver), decoded with the official opentelemetry-proto package:
protobuf byte-exact against the canonical encoding, JSON through the OTLP JSON
rules, every field compared with what the fixture put in."""
import subprocess

import pytest
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp_receiver import decode_json_request, decode_proto_request, find_driver, skip_or_fail

Span = trace_pb2.Span


def dump(tmp_path, fmt):
    exe = find_driver("encode_dump")
    if exe is None:
        skip_or_fail("encode_dump driver not built: build the project first (cmake --build <build dir>)")
    out = tmp_path / f"dump.{fmt}"
    subprocess.run([exe, fmt, str(out)], check=True)
    return out.read_bytes()


@pytest.fixture(params=["proto", "json"])
def request_msg(request, tmp_path):
    raw = dump(tmp_path, request.param)
    if request.param == "proto":
        return decode_proto_request(raw)
    assert b"\n" not in raw, "JSON must be one line"
    return decode_json_request(raw.decode("utf-8"))


def attr_map(kvs):
    out = {}
    for kv in kvs:
        v = kv.value
        which = v.WhichOneof("value")
        if which == "array_value":
            out[kv.key] = [getattr(x, x.WhichOneof("value")) for x in v.array_value.values]
        else:
            out[kv.key] = getattr(v, which)
    return out


def test_resource_and_scope(request_msg):
    assert len(request_msg.resource_spans) == 1
    rs = request_msg.resource_spans[0]
    assert attr_map(rs.resource.attributes) == {
        "service.name": "order-validation",
        "telemetry.sdk.name": "ituna-core",
        "telemetry.sdk.language": "c",
        "process.pid": 4242,
    }
    assert len(rs.scope_spans) == 1
    assert rs.scope_spans[0].scope.name == "ituna-core"
    assert rs.scope_spans[0].scope.version == "0.1.0"
    assert len(rs.scope_spans[0].spans) == 4


def test_rich_span_every_field(request_msg):
    sp = request_msg.resource_spans[0].scope_spans[0].spans[0]
    assert sp.trace_id == bytes(range(0x11, 0x21))
    assert sp.span_id == bytes(range(0xA1, 0xA9))
    assert sp.trace_state == "vendor=a1,other=b2"
    assert sp.parent_span_id == bytes(range(0x10, 0x18))
    # control characters survive, the invalid byte 0xff became U+FFFD
    assert sp.name == 'process "ituna-orders"\\\n\t\x01 café \ufffd end'
    assert sp.kind == Span.SPAN_KIND_CONSUMER
    assert sp.start_time_unix_nano == 1700000000123456789
    assert sp.end_time_unix_nano == 1700000000987654321
    assert sp.flags == 0x01 | trace_pb2.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK | trace_pb2.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
    assert attr_map(sp.attributes) == {
        "messaging.system": "kafka",
        "messaging.kafka.offset": 42,
        "neg": -(2**63),
        "ratio": 0.1,
        "ok": True,
        "bad": False,
        "sarr": ["a", "", 'c"q'],
        "iarr": [1, -2, 2**63 - 1],
        "darr": [0.5, -1e300, 3.0],
        "barr": [True, False],
    }
    assert [kv.key for kv in sp.attributes][:3] == ["messaging.system", "messaging.kafka.offset", "neg"]
    assert sp.dropped_attributes_count == 3
    assert len(sp.events) == 2
    e0, e1 = sp.events
    assert (e0.name, e0.time_unix_nano, e0.dropped_attributes_count) == ("exception", 1700000000500000000, 1)
    assert attr_map(e0.attributes) == {"exception.type": "ValueError", "zero": 0}
    assert (e1.name, e1.time_unix_nano, len(e1.attributes), e1.dropped_attributes_count) == (
        "plain", 1700000000600000000, 0, 0)
    assert sp.dropped_events_count == 4
    assert len(sp.links) == 2
    l0, l1 = sp.links
    assert l0.trace_id == bytes(0xF0 - i for i in range(16))
    assert l0.span_id == bytes(range(0x50, 0x58))
    assert l0.trace_state == "k=v"
    assert attr_map(l0.attributes) == {"link.kind": "producer"}
    assert l0.dropped_attributes_count == 2
    assert l0.flags == 0x301
    assert l1.trace_id == bytes(range(1, 17)) and l1.span_id == bytes(range(0x61, 0x69))
    assert l1.trace_state == "" and len(l1.attributes) == 0 and l1.flags == 0x100
    assert sp.dropped_links_count == 5
    assert sp.status.code == trace_pb2.Status.STATUS_CODE_ERROR
    assert sp.status.message == 'boom: "bad" order'


def test_root_and_typical_spans(request_msg):
    spans = request_msg.resource_spans[0].scope_spans[0].spans
    root = spans[1]
    assert root.parent_span_id == b""
    assert root.kind == Span.SPAN_KIND_PRODUCER
    assert root.status.code == trace_pb2.Status.STATUS_CODE_OK and root.status.message == ""
    assert root.flags == 0x101
    assert root.trace_state == ""
    for i, sp in zip((1, 2), spans[2:]):
        assert sp.name == "inventory_validation"
        assert sp.kind == Span.SPAN_KIND_INTERNAL
        assert sp.parent_span_id == bytes(k + 1 + i for k in range(8))
        assert sp.start_time_unix_nano == 1700000000000000000 + i * 1000
        assert sp.end_time_unix_nano - sp.start_time_unix_nano == 140000000
        assert attr_map(sp.attributes) == {
            "order.id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "order.dishes": 3, "order.validated": True}
        assert (sp.dropped_attributes_count, sp.dropped_events_count, sp.dropped_links_count) == (0, 0, 0)
        assert not sp.HasField("status")


def test_protobuf_and_json_carry_the_same_message(tmp_path):
    a = decode_proto_request(dump(tmp_path, "proto"))
    b = decode_json_request(dump(tmp_path, "json").decode())
    assert a == b
