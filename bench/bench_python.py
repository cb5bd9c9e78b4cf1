#!/usr/bin/env python3
"""Python binding benchmark: ituna against opentelemetry-sdk, run side by side.

1. span: ``with tracer.span(name, attributes={2 attrs})`` against the SDK's
   ``start_as_current_span`` with a BatchSpanProcessor + OTLPSpanExporter (http)
   pointed at an unreachable endpoint with a long schedule delay, so only the
   span cost is measured (both sides queue and drop when their queue is full).
2. propagation: ``ituna.inject()`` + ``ituna.extract()`` against
   ``TraceContextTextMapPropagator`` inject + extract, each inside a current span.

3. span, exported: the same span loop with both tracers exporting for real
   (OTLP/HTTP protobuf, default batch settings, a queue big enough that nothing
   drops) to a local sink in another process, timed until flush returns: the
   whole cost of a span, the SDK's Python encoder and export thread included.

Prints ns/op and the ratio for each; targets: 50x (span) and 20x (inject+extract).
Usage: python3 bench/bench_python.py [--n N] [--repeat R] [--profile]
"""
import argparse
import gc
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
_TREE = os.path.join(HERE, "..", "bindings", "python")
# the in-tree build (setup.py build_ext --inplace) when there is one, else the installed package
if any(f.startswith("_core.") and f.endswith(".so") for f in os.listdir(os.path.join(_TREE, "ituna"))):
    sys.path.insert(0, _TREE)

DEAD_ENDPOINT = "http://127.0.0.1:9"  # discard port: nothing listens, and nothing is sent in time


def best_ns(fn, n, repeat):
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter_ns()
        fn(n)
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


SINK = r"""
import sys
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


def start_sink():
    """An OTLP/HTTP sink in its own process (so it takes no GIL from either side)."""
    import subprocess
    proc = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    return proc, "http://127.0.0.1:%d" % port


def exported_pair(sink, n_it, n_ot):
    """ns per span, loop + flush, both tracers exporting to the sink."""
    import ituna
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    it = ituna._core.Tracer(env=False, settings=[("tracer.service-name", "bench-ituna-exp"),
                                                 ("exporter.type", "otlp"), ("exporter.endpoint", sink),
                                                 ("exporter.max-queue-size", str(n_it * 2))])
    prov = TracerProvider(resource=Resource.create({"service.name": "bench-otel-exp"}))
    prov.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=sink + "/v1/traces"),
                                               max_queue_size=n_ot * 2))
    ot = prov.get_tracer("bench")

    def timed(start, n, flush):
        """ns per span for n spans through start(), flush included."""
        gc.collect()
        t0 = time.perf_counter_ns()
        for _ in range(n):
            with start("validate-address", attributes={"order.id": "a1b2", "order.dishes": 3}):
                pass
        flush()
        return (time.perf_counter_ns() - t0) / n

    a = min(timed(it.span, n_it, lambda: it.flush(timeout=60)) for _ in range(3))
    b = min(timed(ot.start_as_current_span, n_ot, lambda: prov.force_flush(60_000)) for _ in range(3))
    st = it.stats()
    ok = st["spans_dropped"] == 0 and st["spans_exported"] == st["spans_ended"]
    it.shutdown(timeout=10)
    prov.shutdown()
    return a, b, ok, st


def setup_ituna():
    import ituna
    ituna._core.set_log_level(4)  # silence the expected "export failed" warnings
    tracer = ituna.init(service_name="bench-ituna", env=False,
                        settings={"exporter.type": "otlp", "exporter.endpoint": DEAD_ENDPOINT,
                                  "exporter.schedule-delay": "3600000", "exporter.max-queue-size": "2048"})
    return ituna, tracer


def setup_otel():
    import logging
    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)  # expected export failures
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    provider = TracerProvider(resource=Resource.create({"service.name": "bench-otel"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=DEAD_ENDPOINT + "/v1/traces"),
                                                   schedule_delay_millis=3_600_000, max_queue_size=2048))
    return trace, provider, provider.get_tracer("bench"), TraceContextTextMapPropagator()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000, help="iterations for ituna (otel runs n/10)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="cProfile the ituna loops")
    ap.add_argument("--breakdown", action="store_true", help="time the parts of the ituna span loop")
    ap.add_argument("--no-export", action="store_true", help="skip the exporting comparison")
    args = ap.parse_args()

    ituna, itracer = setup_ituna()
    trace, provider, otracer, prop = setup_otel()
    n_it, n_ot = args.n, max(args.n // 10, 1000)

    def ituna_span(n):
        span = itracer.span
        for _ in range(n):
            with span("validate-address", attributes={"order.id": "a1b2", "order.dishes": 3}):
                pass

    def otel_span(n):
        start = otracer.start_as_current_span
        for _ in range(n):
            with start("validate-address", attributes={"order.id": "a1b2", "order.dishes": 3}):
                pass

    def ituna_prop(n):
        inject, extract = ituna.inject, ituna.extract
        with itracer.span("parent"):
            for _ in range(n):
                extract(inject())

    def otel_prop(n):
        with otracer.start_as_current_span("parent"):
            for _ in range(n):
                carrier = {}
                prop.inject(carrier)
                prop.extract(carrier)

    # sanity: both sides really propagate
    with itracer.span("check") as s:
        assert ituna.extract(ituna.inject()).trace_id == s.context.trace_id
    with otracer.start_as_current_span("check") as s:
        c = {}
        prop.inject(c)
        assert trace.get_current_span(prop.extract(c)).get_span_context().trace_id == s.get_span_context().trace_id

    if args.profile:
        import cProfile
        import pstats
        pr = cProfile.Profile()
        pr.enable()
        ituna_span(args.n)
        ituna_prop(args.n)
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(8)

    if args.breakdown:
        span = itracer.span

        def loop_dict(n):
            for _ in range(n):
                {"order.id": "a1b2", "order.dishes": 3}

        def start_end(n):
            for _ in range(n):
                span("validate-address").end()

        def with_no_attrs(n):
            for _ in range(n):
                with span("validate-address"):
                    pass

        cv = ituna._core.current_var

        def contextvar(n):
            for _ in range(n):
                cv.reset(cv.set(None))

        print("ituna span loop breakdown (ns/op):")
        for f in (loop_dict, contextvar, start_end, with_no_attrs, ituna_span):
            print("  %-16s %6.0f" % (f.__name__, best_ns(f, n_it, args.repeat)))

    results = []
    for label, f_it, f_ot, target in (("span (with + 2 attributes)", ituna_span, otel_span, 50),
                                      ("inject + extract", ituna_prop, otel_prop, 20)):
        it = best_ns(f_it, n_it, args.repeat)
        ot = best_ns(f_ot, n_ot, args.repeat)
        ratio = ot / it
        results.append((label, it, ot, ratio, target))

    print("python %s, ituna core %s, best of %d" % (sys.version.split()[0], ituna.CORE_VERSION, args.repeat))
    print("%-28s %12s %16s %8s %7s" % ("benchmark", "ituna ns/op", "otel-sdk ns/op", "ratio", "target"))
    for label, it, ot, ratio, target in results:
        print("%-28s %12.0f %16.0f %7.1fx %6dx %s" % (label, it, ot, ratio, target,
                                                      "ok" if ratio >= target else "MISSED"))
    st = itracer.stats()
    print("ituna stats: started=%d enqueued=%d dropped=%d (queue full: nothing is exported, by design)"
          % (st["spans_started"], st["spans_enqueued"], st["spans_dropped"]))
    if not args.no_export:
        proc, sink = start_sink()
        try:
            it, ot, ok, est = exported_pair(sink, n_it, n_ot)
        finally:
            proc.kill()
        print("%-28s %12.0f %16.0f %7.1fx %6dx %s" % ("span, exported (loop+flush)", it, ot, ot / it, 50,
                                                      "ok" if ot / it >= 50 else "MISSED"))
        print("  ituna exported %d of %d spans, %d dropped%s" % (est["spans_exported"], est["spans_ended"],
              est["spans_dropped"], "" if ok else "  <- NOT ALL EXPORTED: figure invalid"))
    provider.shutdown = lambda *a, **k: None  # do not wait on the dead endpoint at exit
    itracer.shutdown(timeout=0)


if __name__ == "__main__":
    main()
