"""An OTLP/HTTP trace receiver for bench/kafka_peers.py, in a process of its own:
decodes every export (protobuf or JSON, gzip or not) with the official
opentelemetry-proto definitions and counts spans per service.name.
GET /counts -> {"service": spans, ..., "_pending": requests not yet decoded,
"_rejected": requests that did not decode}. Answers each export as soon as its body is
read and decodes it on a worker thread, so that the exporters measured never wait on
the sink's Python decoding (a slow sink would make a bounded export queue drop).
Prints its port, then serves until killed."""
import gzip
import json
import queue
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)

COUNTS = {"_pending": 0, "_rejected": 0}
LOCK = threading.Lock()
WORK = queue.Queue()
EMPTY = ExportTraceServiceResponse().SerializeToString()


def service_of(resource):
    for kv in resource.attributes:
        if kv.key == "service.name":
            return kv.value.string_value
    return ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        ctype = self.headers.get("Content-Type", "")
        with LOCK:
            COUNTS["_pending"] += 1
        WORK.put((body, self.headers.get("Content-Encoding", ""), ctype))
        if "json" in ctype:
            out, otype = b"{}", "application/json"
        else:
            out, otype = EMPTY, "application/x-protobuf"
        self.send_response(200)
        self.send_header("Content-Type", otype)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def do_GET(self):
        with LOCK:
            out = json.dumps(COUNTS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def decode_forever():
    while True:
        body, encoding, ctype = WORK.get()
        req = ExportTraceServiceRequest()
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            if "json" in ctype:
                json_format.Parse(body, req)
            else:
                req.ParseFromString(body)
        except Exception:  # counted: the harness reports a case with rejected exports
            with LOCK:
                COUNTS["_pending"] -= 1
                COUNTS["_rejected"] += 1
            continue
        with LOCK:
            for rs in req.resource_spans:
                svc = service_of(rs.resource)
                COUNTS[svc] = COUNTS.get(svc, 0) + sum(len(ss.spans) for ss in rs.scope_spans)
            COUNTS["_pending"] -= 1


def main():
    threading.Thread(target=decode_forever, daemon=True).start()
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
