"""otlp_receiver.py - a real local OTLP/HTTP traces receiver for tests.

A threaded HTTP/1.1 server on 127.0.0.1 (port 0 = any free port) that accepts
POST /v1/traces, un-gzips the body when Content-Encoding says so, and decodes
EVERY body with the official opentelemetry-proto definitions:
  * application/x-protobuf: ExportTraceServiceRequest.ParseFromString;
  * application/json: ids checked as lowercase hex of the right length (the
    OTLP JSON rule), converted to base64 (what proto3's JSON mapping expects),
    then google.protobuf.json_format.Parse(ignore_unknown_fields=False).
A body that fails to decode is recorded in .errors and answered with 400, and
check() raises, so a wrong field fails a test loudly.

Responses are scriptable: OtlpReceiver(responses=[503, 200]) answers the first
request 503 and the next 200; an entry may be an int, (status, headers) or a
Response(...) with an optional partial success and a delay. Once the script is
used up, `default` answers (200 unless told otherwise). Every request is kept
with a monotonic timestamp.

Usable as a library by other tests (integration, report):
    with OtlpReceiver() as rx:
        ... export to rx.endpoint ...
        rx.wait_for_spans(10)
        spans = rx.spans()
"""
import base64
import dataclasses
import gzip
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_HEX = {32: re.compile(r"^[0-9a-f]{32}$"), 16: re.compile(r"^[0-9a-f]{16}$")}


class DecodeError(Exception):
    pass


def _hex_to_b64(obj, key, nbytes, where, required):
    if key not in obj:
        if required:
            raise DecodeError(f"{where}: missing {key}")
        return
    v = obj[key]
    if not isinstance(v, str) or not _HEX[2 * nbytes].match(v):
        raise DecodeError(f"{where}.{key} is not {2 * nbytes} lowercase hex chars: {v!r}")
    obj[key] = base64.b64encode(bytes.fromhex(v)).decode()


_INT64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64,
          FieldDescriptor.TYPE_SFIXED64, FieldDescriptor.TYPE_SINT64}


def _strict_otlp_json(obj, desc, where):
    """The OTLP JSON rules json_format.Parse lets through: keys must be the
    camelCase json_name (Parse also takes snake_case), enums integers (Parse also
    takes names), 64-bit integers strings (Parse also takes numbers)."""
    if not isinstance(obj, dict):
        raise DecodeError(f"{where} is not a JSON object")
    fields = {f.json_name: f for f in desc.fields}
    for key, v in obj.items():
        f = fields.get(key)
        if f is None:
            raise DecodeError(f"{where}: {key!r} is not a camelCase field of {desc.full_name}")
        repeated = f.is_repeated if hasattr(f, "is_repeated") else f.label == FieldDescriptor.LABEL_REPEATED
        if repeated and not isinstance(v, list):
            raise DecodeError(f"{where}.{key} is repeated but not a JSON array")
        for i, x in enumerate(v if repeated else [v]):
            w = f"{where}.{key}" + (f"[{i}]" if repeated else "")
            if f.type == FieldDescriptor.TYPE_MESSAGE:
                _strict_otlp_json(x, f.message_type, w)
            elif f.type == FieldDescriptor.TYPE_ENUM and (not isinstance(x, int) or isinstance(x, bool)):
                raise DecodeError(f"{w}: an enum is an integer in OTLP JSON, got {x!r}")
            elif f.type in _INT64 and not isinstance(x, str):
                raise DecodeError(f"{w}: a 64-bit integer is a decimal string in OTLP JSON, got {x!r}")


def decode_json_request(text):
    """OTLP JSON (hex ids) -> ExportTraceServiceRequest; DecodeError when invalid."""
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise DecodeError(f"not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise DecodeError("top level is not an object")
    _strict_otlp_json(obj, ExportTraceServiceRequest.DESCRIPTOR, "request")
    for i, rs in enumerate(obj.get("resourceSpans", [])):
        for j, ss in enumerate(rs.get("scopeSpans", [])):
            for k, sp in enumerate(ss.get("spans", [])):
                w = f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]"
                _hex_to_b64(sp, "traceId", 16, w, True)
                _hex_to_b64(sp, "spanId", 8, w, True)
                _hex_to_b64(sp, "parentSpanId", 8, w, False)
                for m, ln in enumerate(sp.get("links", [])):
                    _hex_to_b64(ln, "traceId", 16, f"{w}.links[{m}]", True)
                    _hex_to_b64(ln, "spanId", 8, f"{w}.links[{m}]", True)
    msg = ExportTraceServiceRequest()
    try:
        json_format.Parse(json.dumps(obj), msg, ignore_unknown_fields=False)
    except json_format.ParseError as e:
        raise DecodeError(f"json_format: {e}") from None
    return msg


def decode_proto_request(body):
    msg = ExportTraceServiceRequest()
    try:
        msg.ParseFromString(body)
    except Exception as e:  # google.protobuf.message.DecodeError and friends
        raise DecodeError(f"protobuf: {e}") from None
    # Fields of unknown number or wrong wire type are kept as unknown fields and
    # re-serialised at the end of their message, so a byte-exact round trip
    # proves the body used only the schema's fields, in field order.
    again = msg.SerializeToString(deterministic=True)
    if again != body:
        at = next((i for i, (a, b) in enumerate(zip(again, body)) if a != b), min(len(again), len(body)))
        raise DecodeError(f"protobuf: body is not the canonical encoding of what it decodes to "
                          f"(first difference at byte {at} of {len(body)})")
    return msg


@dataclasses.dataclass
class Response:
    status: int = 200
    headers: dict = dataclasses.field(default_factory=dict)
    rejected_spans: int = 0
    error_message: str = ""
    delay: float = 0.0  # seconds to wait before answering
    body: bytes = None  # raw body, overrides the generated one


@dataclasses.dataclass
class Request:
    t: float  # time.monotonic() when the body was read
    path: str
    headers: dict  # lower-case names
    raw: bytes  # as received
    body: bytes  # after gunzip
    content_type: str
    message: ExportTraceServiceRequest = None
    error: str = None
    status: int = 0
    peer_cert: dict = None  # the client's verified certificate (mutual TLS), else None


def _as_response(r):
    if isinstance(r, Response):
        return r
    if isinstance(r, int):
        return Response(status=r)
    if isinstance(r, tuple):
        return Response(status=r[0], headers=dict(r[1]) if len(r) > 1 else {})
    raise TypeError(f"bad scripted response {r!r}")


class OtlpReceiver:
    def __init__(self, responses=(), default=200, host="127.0.0.1", port=0, tls=None, client_ca=None):
        """tls: (certfile, keyfile) to serve HTTPS instead of HTTP. client_ca (with tls):
        a CA file; then a client certificate signed by it is required (mutual TLS) and
        a client without one fails the handshake."""
        self._script = [_as_response(r) for r in responses]
        self._default = _as_response(default)
        self._lock = threading.Condition()
        self.requests = []
        self.errors = []
        self._conns = set()  # open client connections: stop() closes them, as a dying collector does
        rx = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                rx._conns.add(self.connection)

            def do_POST(self):
                rx._handle(self)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._tls = tls is not None
        if tls:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls[0], tls[1])
            if client_ca:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(cafile=client_ca)
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle ------------------------------------------------------------
    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        import socket

        for c in list(self._conns):  # kept-alive connections would otherwise still be served
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def endpoint(self):
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def traces_url(self):
        return self.endpoint + "/v1/traces"

    # -- handling -------------------------------------------------------------
    def _next_response(self):
        with self._lock:
            return self._script.pop(0) if self._script else self._default

    def _handle(self, h):
        n = int(h.headers.get("Content-Length", "0"))
        raw = h.rfile.read(n)
        headers = {k.lower(): v for k, v in h.headers.items()}
        ctype = headers.get("content-type", "")
        req = Request(t=time.monotonic(), path=h.path, headers=headers, raw=raw, body=raw, content_type=ctype)
        if self._tls:
            req.peer_cert = h.connection.getpeercert() or None
        try:
            if h.path != "/v1/traces":
                raise DecodeError(f"unexpected path {h.path}")
            enc = headers.get("content-encoding", "")
            if enc == "gzip":
                req.body = gzip.decompress(raw)
            elif enc:
                raise DecodeError(f"unexpected Content-Encoding {enc!r}")
            if ctype == "application/x-protobuf":
                req.message = decode_proto_request(req.body)
            elif ctype == "application/json":
                req.message = decode_json_request(req.body.decode("utf-8"))
            else:
                raise DecodeError(f"unexpected Content-Type {ctype!r}")
        except (DecodeError, OSError, UnicodeDecodeError, EOFError) as e:
            req.error = str(e)
        if req.error:
            resp = Response(status=400, body=req.error.encode())
        else:
            resp = self._next_response()
        if resp.delay:
            time.sleep(resp.delay)
        body = resp.body
        out_type = ctype if ctype in ("application/json", "application/x-protobuf") else "text/plain"
        if body is None:
            if 200 <= resp.status < 300:
                r = ExportTraceServiceResponse()
                if resp.rejected_spans or resp.error_message:
                    r.partial_success.rejected_spans = resp.rejected_spans
                    r.partial_success.error_message = resp.error_message
                body = (json_format.MessageToJson(r).encode() if out_type == "application/json"
                        else r.SerializeToString())
            else:
                body = f"scripted {resp.status}".encode()
                out_type = "text/plain"
        req.status = resp.status
        with self._lock:
            self.requests.append(req)
            if req.error:
                self.errors.append(req.error)
            self._lock.notify_all()
        h.send_response(resp.status)
        h.send_header("Content-Type", out_type)
        h.send_header("Content-Length", str(len(body)))
        for k, v in resp.headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    # -- results --------------------------------------------------------------
    def check(self):
        """Raise if any body failed to decode."""
        if self.errors:
            raise AssertionError("OTLP receiver could not decode: " + "; ".join(self.errors))

    def accepted(self):
        """Requests answered 2xx."""
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300 and r.message is not None]

    def spans(self, accepted_only=True):
        """(resource, scope, span) for every span received."""
        out = []
        with self._lock:
            reqs = list(self.requests)
        for r in reqs:
            if r.message is None or (accepted_only and not 200 <= r.status < 300):
                continue
            for rs in r.message.resource_spans:
                for ss in rs.scope_spans:
                    for sp in ss.spans:
                        out.append((rs.resource, ss.scope, sp))
        return out

    def wait_for_spans(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.spans()) >= n:
                return True
            with self._lock:
                self._lock.wait(0.05)
        return len(self.spans()) >= n


# -- the C test drivers (tests/c/drivers, built into <build>/tests/drivers) ------

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def skip_or_fail(why, module=False):
    """The project's rule for a missing prerequisite: skip, printing why, locally;
    fail when CI=true (CI installs and builds everything, so a skip there hides a gap).
    module=True when called at import time of a test module."""
    import os
    import sys

    import pytest

    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but {why}", pytrace=False)
    print(f"SKIP: {why}", file=sys.stderr)
    pytest.skip(why, allow_module_level=module)


def find_driver(name):
    """Path of a built driver: $ITUNA_BUILD_DIR/tests/drivers/<name>, else the
    newest <repo>/build*/tests/drivers/<name>; None when not built."""
    import os

    bd = os.environ.get("ITUNA_BUILD_DIR")
    if bd:
        p = __import__("pathlib").Path(bd) / "tests" / "drivers" / name
        return str(p) if p.exists() else None
    found = sorted(REPO.glob(f"build*/tests/drivers/{name}"), key=lambda p: p.stat().st_mtime, reverse=True)
    return str(found[0]) if found else None


def run_driver(args, env_extra=None, timeout=120, check=True):
    """Run span_driver with args; returns (stats dict, stderr text)."""
    import os
    import subprocess

    exe = find_driver("span_driver")
    if exe is None:
        raise FileNotFoundError("span_driver is not built (cmake --build <build dir>)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and not k.startswith("ITUNA_")}
    env.update(env_extra or {})
    p = subprocess.run([exe] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"span_driver failed ({p.returncode}): {p.stderr}")
    stats = json.loads(p.stdout) if p.returncode == 0 else None
    return stats, p.stderr


if __name__ == "__main__":  # a manual receiver: prints what arrives
    import sys

    with OtlpReceiver() as rx:
        print(f"listening on {rx.traces_url}", file=sys.stderr)
        seen = 0
        try:
            while True:
                time.sleep(0.5)
                for r in rx.requests[seen:]:
                    n = sum(len(ss.spans) for rs in r.message.resource_spans for ss in rs.scope_spans) if r.message else 0
                    print(f"{r.content_type} {len(r.raw)} bytes, {n} spans, error={r.error}", file=sys.stderr)
                seen = len(rx.requests)
        except KeyboardInterrupt:
            pass
