"""The test receiver's OTLP JSON decoder is strict where protobuf's json_format is
lenient, so an encoder that drifts from the OTLP JSON rules fails the export tests."""
import json

import pytest

from otlp_receiver import DecodeError, decode_json_request

GOOD = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "x"}}]},
                           "scopeSpans": [{"scope": {"name": "ituna-core"}, "spans": [{
                               "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
                               "name": "s", "kind": 4, "startTimeUnixNano": "1", "endTimeUnixNano": "2",
                               "attributes": [{"key": "n", "value": {"intValue": "42"}}],
                               "status": {"code": 2}}]}]}]}


def mutate(path, value):
    obj = json.loads(json.dumps(GOOD))
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    if value is KeyError:
        cur.pop(path[-1])
    else:
        cur[path[-1]] = value
    return obj


def span_path(*rest):
    return ["resourceSpans", 0, "scopeSpans", 0, "spans", 0, *rest]


def test_the_good_request_decodes():
    msg = decode_json_request(json.dumps(GOOD))
    sp = msg.resource_spans[0].scope_spans[0].spans[0]
    assert sp.kind == 4 and sp.attributes[0].value.int_value == 42 and sp.trace_id.hex() == GOOD[
        "resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]


@pytest.mark.parametrize("path,value,why", [
    (span_path("kind"), "SPAN_KIND_PRODUCER", "enum"),
    (span_path("status", "code"), "STATUS_CODE_ERROR", "enum"),
    (span_path("startTimeUnixNano"), 1, "64-bit"),
    (span_path("attributes", 0, "value", "intValue"), 42, "64-bit"),
    (span_path("spanId"), "t6drcWkgMzE=", "hex"),
])
def test_rule_breaking_values_are_refused(path, value, why):
    with pytest.raises(DecodeError, match=why):
        decode_json_request(json.dumps(mutate(path, value)))


def test_snake_case_keys_are_refused():
    obj = mutate(span_path("startTimeUnixNano"), KeyError)
    obj["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["start_time_unix_nano"] = "1"
    with pytest.raises(DecodeError, match="camelCase"):
        decode_json_request(json.dumps(obj))
