"""OTLP/HTTP export end to end: the span_driver program (public C API: config,
tracer, spans, flush, shutdown, stats) exports to a real local receiver
(otlp_receiver.py) that decodes every body with opentelemetry-proto."""
import re
import socket
import time

import pytest
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp_receiver import OtlpReceiver, Response, find_driver, run_driver, skip_or_fail

Span = trace_pb2.Span
HAS_REMOTE = trace_pb2.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
IS_REMOTE = trace_pb2.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK

if find_driver("span_driver") is None:
    skip_or_fail("span_driver not built: run cmake --build <build dir> first", module=True)

# fast batches for tests: export as soon as possible
FAST = ["exporter.schedule-delay=20"]


def otlp(rx, protocol="http/protobuf", *extra):
    return [f"exporter.endpoint={rx.endpoint}", f"exporter.protocol={protocol}",
            "tracer.service-name=export-test"] + FAST + list(extra)


def attr_map(kvs):
    out = {}
    for kv in kvs:
        v = kv.value
        which = v.WhichOneof("value")
        out[kv.key] = ([getattr(x, x.WhichOneof("value")) for x in v.array_value.values]
                       if which == "array_value" else getattr(v, which))
    return out


@pytest.mark.parametrize("protocol,ctype", [("http/protobuf", "application/x-protobuf"),
                                            ("http/json", "application/json")])
def test_every_field_decodes_with_opentelemetry_proto(protocol, ctype):
    with OtlpReceiver() as rx:
        stats, err = run_driver(["-rich", "-n", "0", "-extra-attrs", "3", "-flush-ms", "5000"] + otlp(
            rx, protocol, "tracer.attribute-count-limit=12", "tracer.event-count-limit=2",
            "tracer.link-count-limit=2"))
        rx.check()
        assert rx.requests and all(r.content_type == ctype for r in rx.requests)
        assert all(r.headers.get("user-agent") == "ituna-core/0.1.0" for r in rx.requests)
        got = rx.spans()
    assert stats["spans_exported"] == 2 and stats["spans_export_failed"] == 0
    by_name = {sp.name: (res, scope, sp) for res, scope, sp in got}
    res, scope, sp = by_name["process ituna-orders"]
    _, _, child = by_name["address_validation"]

    ra = attr_map(res.attributes)
    assert ra["service.name"] == "export-test"
    assert ra["telemetry.sdk.name"] == "ituna-core" and ra["telemetry.sdk.language"] == "c"
    assert scope.name == "ituna-core" and scope.version == "0.1.0"

    assert sp.trace_id.hex() == stats["rich_trace_id"] == bytes(range(0x40, 0x50)).hex()
    assert sp.span_id.hex() == stats["rich_span_id"]
    assert sp.parent_span_id == bytes(range(0x70, 0x78))
    assert sp.trace_state == "vendor=a1,other=b2"
    assert sp.flags == 0x01 | HAS_REMOTE | IS_REMOTE
    assert sp.kind == Span.SPAN_KIND_CONSUMER
    assert sp.start_time_unix_nano == 1700000000123456789
    assert sp.end_time_unix_nano == 1700000000987654321
    a = attr_map(sp.attributes)
    expected = {
        "messaging.system": "kafka", "messaging.kafka.offset": 42, "ratio": 0.1, "ok": True,
        "sarr": ["a", "", 'c"q'], "iarr": [1, -2, 2**63 - 1], "darr": [0.5, -1e300, 3.0], "barr": [True, False],
        'name with "quotes"': "line1\nline2\ttab \x01 café", "neg": -(2**63), "extra.0": 0, "extra.1": 1,
    }
    assert a == expected
    assert sp.dropped_attributes_count == 1  # 13 set, limit 12
    assert [e.name for e in sp.events] == ["checkpoint", "exception"]
    assert sp.dropped_events_count == 1
    ev0, ev1 = sp.events
    assert ev0.time_unix_nano == 1700000000200000000
    assert attr_map(ev0.attributes) == {"stage": "validate", "zero": 0}
    assert attr_map(ev1.attributes) == {"exception.type": "ValueError", "exception.message": 'bad "order"',
                                        "exception.stacktrace": "trace line 1\ntrace line 2"}
    assert ev1.time_unix_nano > 0
    assert len(sp.links) == 2 and sp.dropped_links_count == 1
    l0, l1 = sp.links
    assert l0.trace_id == bytes(range(0xE0, 0xF0)) and l0.span_id == bytes(range(0x30, 0x38))
    assert l0.trace_state == "k=v" and l0.flags == 0x01 | HAS_REMOTE | IS_REMOTE
    assert len(l0.attributes) == 0
    l2_span = bytearray(range(0x30, 0x38))
    l2_span[7] ^= 0xFF
    assert l1.trace_id == bytes(range(0xE0, 0xF0)) and l1.span_id == bytes(l2_span)
    assert l1.trace_state == "" and l1.flags == 0x01 | HAS_REMOTE
    assert attr_map(l1.attributes) == {"link.kind": "retry"}
    assert sp.status.code == trace_pb2.Status.STATUS_CODE_ERROR
    assert sp.status.message == 'boom: "bad" order'

    assert child.trace_id == sp.trace_id and child.parent_span_id == sp.span_id
    assert child.span_id.hex() == stats["child_span_id"]
    assert child.kind == Span.SPAN_KIND_INTERNAL
    assert child.flags == 0x01 | HAS_REMOTE  # local parent
    assert child.status.code == trace_pb2.Status.STATUS_CODE_OK and child.status.message == ""
    assert child.end_time_unix_nano >= child.start_time_unix_nano > 0


@pytest.mark.parametrize("status", [502, 503, 504])
def test_retry_on_retryable_status_then_200(status):
    with OtlpReceiver(responses=[status, 200]) as rx:
        stats, _ = run_driver(["-n", "50", "-flush-ms", "10000"] + otlp(rx))
        rx.check()
    assert [r.status for r in rx.requests] == [status, 200]
    assert rx.requests[0].body == rx.requests[1].body
    assert stats["spans_exported"] == 50 and stats["spans_export_failed"] == 0
    assert stats["export_retries"] == 1 and stats["export_requests"] == 2
    assert len(rx.spans()) == 50


def test_429_retry_after_is_honoured():
    with OtlpReceiver(responses=[(429, {"Retry-After": "1"}), 200]) as rx:
        stats, _ = run_driver(["-n", "10", "-flush-ms", "10000"] + otlp(rx))
        rx.check()
    assert [r.status for r in rx.requests] == [429, 200]
    gap = rx.requests[1].t - rx.requests[0].t
    assert 0.95 <= gap < 2.5, f"retry came {gap:.3f}s after a Retry-After: 1"
    assert stats["spans_exported"] == 10


def test_503_retry_after_is_honoured():
    with OtlpReceiver(responses=[(503, {"Retry-After": "1"}), 200]) as rx:
        stats, _ = run_driver(["-n", "10", "-flush-ms", "10000"] + otlp(rx))
        rx.check()
    assert [r.status for r in rx.requests] == [503, 200]
    gap = rx.requests[1].t - rx.requests[0].t
    # the backoff alone would retry within 200 ms (first step, full jitter)
    assert 0.95 <= gap < 2.5, f"retry came {gap:.3f}s after a Retry-After: 1"
    assert stats["spans_exported"] == 10 and stats["export_retries"] == 1


def test_retry_after_as_an_http_date_is_honoured():
    from email.utils import formatdate

    # An HTTP-date has whole seconds: 3 s ahead, truncated, is 2..3 s after the answer.
    when = formatdate(time.time() + 3, usegmt=True)
    with OtlpReceiver(responses=[(429, {"Retry-After": when}), 200]) as rx:
        stats, _ = run_driver(["-n", "5", "-flush-ms", "10000"] + otlp(rx))
        rx.check()
    assert [r.status for r in rx.requests] == [429, 200]
    gap = rx.requests[1].t - rx.requests[0].t
    assert 1.8 <= gap < 4.0, f"retry came {gap:.3f}s after Retry-After: {when}"
    assert stats["spans_exported"] == 5 and stats["export_retries"] == 1


def test_400_is_not_retried():
    with OtlpReceiver(responses=[Response(status=400, body=b"bad data")]) as rx:
        stats, err = run_driver(["-n", "20", "-flush-ms", "5000"] + otlp(rx))
        rx.check()
    assert [r.status for r in rx.requests] == [400]
    assert stats["spans_export_failed"] == 20 and stats["spans_exported"] == 0 and stats["export_retries"] == 0
    assert "HTTP 400" in err


def test_full_queue_drops_are_counted_exactly():
    # A slow collector (0.3 s per request) and a 64-span queue: most spans are dropped.
    with OtlpReceiver(default=Response(delay=0.3)) as rx:
        stats, _ = run_driver(["-n", "5000", "-shutdown-ms", "20000"] + otlp(
            rx, "http/protobuf", "exporter.max-queue-size=64", "exporter.max-export-batch-size=32"))
        rx.check()
        received = len(rx.spans())
    assert stats["spans_ended"] == 5000
    assert stats["spans_dropped"] > 0
    assert stats["spans_enqueued"] + stats["spans_dropped"] == stats["spans_ended"]
    assert received == stats["spans_enqueued"] == stats["spans_exported"]


def test_shutdown_flushes_everything_that_fit_in_the_queue():
    # Long schedule delay: nothing is exported until shutdown drains the queue.
    with OtlpReceiver() as rx:
        stats, _ = run_driver(["-n", "1500", "-shutdown-ms", "20000",
                               f"exporter.endpoint={rx.endpoint}", "exporter.schedule-delay=600000",
                               "exporter.max-queue-size=2048", "exporter.max-export-batch-size=512"])
        rx.check()
        got = rx.spans()
    assert stats["spans_dropped"] == 0 and stats["spans_enqueued"] == 1500
    assert len(got) == 1500
    assert sorted(sp.name for _, _, sp in got) == sorted(f"work-{i}" for i in range(1500))
    assert stats["shutdown_rc"] == "ITUNA_OK"


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_dead_endpoint_span_end_stays_fast_and_shutdown_is_bounded():
    port = closed_port()
    stats, err = run_driver(["-n", "20000", "-shutdown-ms", "1500",
                             f"exporter.endpoint=http://127.0.0.1:{port}", "exporter.schedule-delay=10",
                             "exporter.export-timeout=1000", "exporter.max-export-batch-size=256"])
    assert stats["spans_exported"] == 0
    assert stats["spans_export_failed"] > 0
    # a refused connection is retried (with backoff) before a batch is given up
    assert stats["export_retries"] > 0, stats
    assert stats["export_requests"] > stats["export_retries"], stats
    assert stats["spans_enqueued"] + stats["spans_dropped"] == 20000
    # span end is an enqueue: it does not wait on the failing network
    assert stats["end_ns_median"] < 5000, stats
    assert stats["end_ns_p99"] < 50000, stats
    # shutdown keeps to its documented budget ("May block up to timeout_ms"), with
    # 500 ms of slack for thread joins and process noise
    assert stats["shutdown_ms"] < 1500 + 500, stats
    print(f"dead endpoint: span end median {stats['end_ns_median']} ns, p99 {stats['end_ns_p99']} ns, "
          f"shutdown {stats['shutdown_ms']:.0f} ms, retries {stats['export_retries']}")


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_gzip(protocol):
    with OtlpReceiver() as rx:
        stats, _ = run_driver(["-n", "300", "-flush-ms", "5000"] + otlp(rx, protocol, "exporter.compression=gzip"))
        rx.check()
    assert rx.requests and all(r.headers.get("content-encoding") == "gzip" for r in rx.requests)
    assert all(r.raw[:2] == b"\x1f\x8b" and len(r.raw) < len(r.body) for r in rx.requests)
    assert len(rx.spans()) == 300 == stats["spans_exported"]


def test_headers_are_sent_percent_decoded():
    with OtlpReceiver() as rx:
        run_driver(["-n", "1", "-flush-ms", "5000"] + otlp(
            rx, "http/protobuf", "exporter.headers=x-api-key=secret%20value%2C1, tenant=acme"))
        rx.check()
    h = rx.requests[0].headers
    assert h.get("x-api-key") == "secret value,1"
    assert h.get("tenant") == "acme"


def test_env_traces_endpoint_is_used_as_is():
    with OtlpReceiver() as rx:
        stats, _ = run_driver(["-n", "3", "-flush-ms", "5000"] + FAST,
                              env_extra={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": rx.traces_url,
                                         "OTEL_TRACES_EXPORTER": "otlp"})
        rx.check()
    assert [r.path for r in rx.requests] == ["/v1/traces"]
    assert stats["spans_exported"] == 3


def test_env_endpoint_beats_a_file_traces_endpoint(tmp_path):
    # env wins over the file, even the generic variable over the file's signal-specific key
    ini = tmp_path / "x.ini"
    ini.write_text(f"[exporter]\ntraces-endpoint = http://127.0.0.1:{closed_port()}/v1/traces\n")
    with OtlpReceiver() as rx:
        stats, _ = run_driver(["-config", ini, "-n", "3", "-flush-ms", "5000"] + FAST,
                              env_extra={"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint})
        rx.check()
    assert [r.path for r in rx.requests] == ["/v1/traces"]
    assert stats["spans_exported"] == 3


def test_env_traces_endpoint_beats_env_endpoint():
    with OtlpReceiver() as rx:
        stats, _ = run_driver(["-n", "2", "-flush-ms", "5000"] + FAST,
                              env_extra={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
                                         "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": rx.traces_url})
        rx.check()
    assert stats["spans_exported"] == 2 and len(rx.spans()) == 2


def test_otlp_without_endpoint_uses_the_seed_jaeger_exporter(tmp_path):
    # OTEL_TRACES_EXPORTER=otlp and no endpoint: the seed file's [jaeger-exporter]
    # host/port (without it, the spec's http://localhost:4318: see test_config.c)
    with OtlpReceiver() as rx:
        ini = tmp_path / "seed.ini"
        ini.write_text(f"[jaeger-exporter]\nhost: 127.0.0.1\nport: {rx.port}\n")
        stats, _ = run_driver(["-config", ini, "-n", "4", "-flush-ms", "5000"] + FAST,
                              env_extra={"OTEL_TRACES_EXPORTER": "otlp"})
        rx.check()
    assert stats["spans_exported"] == 4 and len(rx.spans()) == 4


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_partial_success_is_counted_and_logged(protocol):
    with OtlpReceiver(responses=[Response(rejected_spans=2, error_message="2 spans too old")]) as rx:
        stats, err = run_driver(["-n", "5", "-flush-ms", "5000"] + otlp(rx, protocol))
        rx.check()
    assert stats["export_partial_rejected"] == 2
    assert stats["spans_exported"] == 3
    assert re.search(r"rejected 2 of 5 spans.*2 spans too old", err), err


def test_partial_success_warning_without_rejections_is_logged():
    with OtlpReceiver(responses=[Response(error_message="schema is deprecated")]) as rx:
        stats, err = run_driver(["-n", "4", "-flush-ms", "5000"] + otlp(rx))
        rx.check()
    assert stats["export_partial_rejected"] == 0 and stats["spans_exported"] == 4
    assert "schema is deprecated" in err, err


def test_https_with_a_ca_file(tmp_path):
    import shutil
    import subprocess
    if shutil.which("openssl") is None:
        skip_or_fail("openssl CLI not installed: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    with OtlpReceiver(tls=(str(cert), str(key))) as rx:
        assert rx.endpoint.startswith("https://")
        stats, _ = run_driver(["-n", "7", "-flush-ms", "5000"] + otlp(rx, "http/protobuf",
                                                                     f"exporter.certificate={cert}"))
        rx.check()
        assert stats["spans_exported"] == 7 and len(rx.spans()) == 7
        # without the CA the self-signed collector is refused, and that is not retried
        stats, err = run_driver(["-n", "2", "-flush-ms", "5000"] + otlp(rx))
        assert stats["spans_export_failed"] == 2 and stats["export_retries"] == 0
        assert "certificate" in err.lower() or "ssl" in err.lower(), err


def test_copy_file_keeps_a_local_copy_beside_otlp(tmp_path):
    """[exporter] copy-file (ITUNA_TRACES_COPY_FILE): every batch goes to the
    collector and, as OTLP JSON lines, to a local file; the same spans in both."""
    from otlp_receiver import decode_json_request

    copy = tmp_path / "copy.jsonl"
    with OtlpReceiver() as rx:
        stats, _ = run_driver(["-n", "25", "-flush-ms", "10000"] + otlp(rx),
                              env_extra={"ITUNA_TRACES_COPY_FILE": str(copy)})
        rx.check()
        sent = {bytes(s.span_id) for _, _, s in rx.spans()}
    assert stats["spans_exported"] == 25 and len(sent) == 25
    kept = set()
    for line in copy.read_text().splitlines():
        for rs in decode_json_request(line).resource_spans:
            for ss in rs.scope_spans:
                kept.update(bytes(s.span_id) for s in ss.spans)
    assert kept == sent


def test_copy_file_that_cannot_be_opened_is_a_clear_error(tmp_path):
    stats, err = run_driver(["-n", "1"] + otlp_to_nowhere(),
                            env_extra={"ITUNA_TRACES_COPY_FILE": str(tmp_path / "no" / "such" / "dir.jsonl")},
                            check=False)
    assert stats is None
    assert "cannot open traces file" in err and "dir.jsonl" in err


def otlp_to_nowhere():
    return ["exporter.endpoint=http://127.0.0.1:9", "tracer.service-name=export-test"] + FAST
