#!/usr/bin/env python3
"""The same OpenTelemetry-API code on opentelemetry-sdk and on ituna.otel (issue 13).

Both providers export OTLP/HTTP (protobuf) to one local sink in another process:
the SDK with BatchSpanProcessor + OTLPSpanExporter, ituna.otel with the core's
batch exporter (default batch settings, a queue big enough that nothing drops).
Each workload is timed until force_flush() returns, so the export is paid for:

1. span: ``with tracer.start_as_current_span("op", attributes={2 attributes})``;
2. nested: three nested ``start_as_current_span``;
3. propagate: ``opentelemetry.propagate.inject(carrier)`` + ``extract(carrier)``
   inside a span (the global propagator, tracecontext + baggage by default).

Each provider runs in its own child process (one global TracerProvider per
process), alternately, and the best round is kept. Prints ns per operation and
the ratio SDK / ituna. Target: 20x per span. The "API floor" line runs the
propagate loop with a propagator whose inject/extract are a trivial builtin: the
cost of opentelemetry.propagate's own Python functions, which bounds the ratio
any propagator can reach.
Usage: python3 bench/bench_otel_api.py [--n N] [--rounds R] [--profile ituna|sdk]
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
_TREE = os.path.join(HERE, "..", "bindings", "python")

SINK = r"""
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"""


def provider(kind, sink, n):
    if kind == "sdk":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        p = TracerProvider(resource=Resource.create({"service.name": "bench-sdk"}))
        p.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=sink + "/v1/traces"),
                                                max_queue_size=4 * n))
        return p
    if any(f.startswith("_core.") and f.endswith(".so") for f in os.listdir(os.path.join(_TREE, "ituna"))):
        sys.path.insert(0, _TREE)  # the in-tree build when there is one
    import ituna
    import ituna.otel
    t = ituna.init(service_name="bench-ituna", env=False, type="otlp", endpoint=sink,
                   max_queue_size=4 * n)
    return ituna.otel.TracerProvider(t)


def child(kind, sink, n, profile):
    from opentelemetry import propagate, trace
    prov = provider(kind, sink, n)
    trace.set_tracer_provider(prov)
    tracer = trace.get_tracer("bench", "1.0")

    def span(k):
        for _ in range(k):
            with tracer.start_as_current_span("op", attributes={"order.id": "5d1e82af", "items": 3}):
                pass

    def nested(k):
        for _ in range(k):
            with tracer.start_as_current_span("a"):
                with tracer.start_as_current_span("b"):
                    with tracer.start_as_current_span("c"):
                        pass

    def prop(k):
        with tracer.start_as_current_span("carrier"):
            for _ in range(k):
                carrier = {}
                propagate.inject(carrier)
                propagate.extract(carrier)

    out = {}
    for name, fn, k, spans in (("span", span, n, n), ("nested", nested, n // 3, 3 * (n // 3)),
                               ("propagate", prop, n, 0)):
        fn(min(1000, k))  # warm up
        prov.force_flush()
        if profile:
            import cProfile
            import pstats
            pr = cProfile.Profile()
            pr.enable()
            fn(k)
            prov.force_flush()
            pr.disable()
            pstats.Stats(pr, stream=sys.stderr).sort_stats("tottime").print_stats(12)
        t0 = time.perf_counter_ns()
        fn(k)
        prov.force_flush()
        dt = time.perf_counter_ns() - t0
        out[name] = dt / k
    if kind == "ituna":  # what any propagator pays here: the API's Python wrappers and two trivial C calls
        from opentelemetry.propagators.textmap import TextMapPropagator

        class Floor(TextMapPropagator):
            inject = extract = "".format  # a builtin, not bound; takes any arguments, returns ""
            fields = set()

        real = propagate.get_global_textmap()
        propagate.set_global_textmap(Floor())
        prop(1000)
        t0 = time.perf_counter_ns()
        prop(n)
        out["floor"] = (time.perf_counter_ns() - t0) / n
        propagate.set_global_textmap(real)
    print(json.dumps(out), flush=True)
    prov.shutdown()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", choices=["ituna", "sdk"])
    ap.add_argument("--child", choices=["ituna", "sdk"], help=argparse.SUPPRESS)
    ap.add_argument("--sink", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.sink, a.n, a.profile == a.child)
        return
    sink_proc = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    try:
        sink = "http://127.0.0.1:%s" % sink_proc.stdout.readline().strip()
        best = {"sdk": {}, "ituna": {}}
        for r in range(a.rounds):
            for kind in (("sdk", "ituna") if r % 2 == 0 else ("ituna", "sdk")):
                cmd = [sys.executable, __file__, "--child", kind, "--sink", sink, "--n", str(a.n)]
                if a.profile:
                    cmd += ["--profile", a.profile]
                res = json.loads(subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE).stdout.strip().splitlines()[-1])
                for k, v in res.items():
                    best[kind][k] = min(v, best[kind].get(k, float("inf")))
    finally:
        sink_proc.kill()
        sink_proc.wait()
    print("OpenTelemetry API, exported over OTLP/HTTP to a local sink (best of %d rounds, n=%d)"
          % (a.rounds, a.n))
    print("%-34s %14s %14s %8s" % ("workload", "opentelemetry-sdk", "ituna.otel", "ratio"))
    labels = {"span": "span + 2 attributes (per span)", "nested": "three nested spans (per 3)",
              "propagate": "propagate inject+extract"}
    for k in ("span", "nested", "propagate"):
        s, i = best["sdk"][k], best["ituna"][k]
        print("%-34s %11.0f ns %11.0f ns %7.1fx" % (labels[k], s, i, s / i))
    f = best["ituna"]["floor"]
    print("%-34s %14s %11.0f ns %7.1fx  (the most any propagator can reach)" % (
        "  API floor: no-op C propagator", "", f, best["sdk"]["propagate"] / f))


if __name__ == "__main__":
    main()
