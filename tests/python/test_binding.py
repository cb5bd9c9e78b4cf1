"""The ituna Python binding (tracer, spans, propagation, config errors, threads,
asyncio, reference counting, OTLP export) on the real C core. Spans are checked
on what the core exported: the OTLP JSON-lines file exporter or a real OTLP/HTTP
receiver decoding every request with opentelemetry-proto.

The in-tree build (python setup.py build_ext --inplace) is used when present,
else the installed package (pip install .)."""
import asyncio
import gc
import json
import os
import re
import sys
import threading
import time

import pytest

import ituna  # noqa: E402  (conftest.py picks which ituna)


# ---- helpers -------------------------------------------------------------------------

def file_tracer(tmp_path, **overrides):
    path = tmp_path / "spans.jsonl"
    tracer = ituna.init(service_name=overrides.pop("service_name", "binding-test"), env=False,
                        type="file", file=str(path), **overrides)
    return tracer, path


def exported(tracer, path):
    """Flush and return the exported spans, each a dict with 'service' added."""
    assert tracer.flush(timeout=10), "flush timed out"
    spans = []
    if not path.exists():
        return spans
    for line in path.read_text().splitlines():
        req = json.loads(line)
        for rs in req["resourceSpans"]:
            svc = next(a["value"]["stringValue"] for a in rs["resource"]["attributes"] if a["key"] == "service.name")
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    s["service"] = svc
                    s["attrs"] = {a["key"]: next(iter(a["value"].values())) for a in s.get("attributes", [])}
                    spans.append(s)
    return spans


def by_name(spans):
    out = {}
    for s in spans:
        out.setdefault(s["name"], []).append(s)
    return out


# ---- spans -----------------------------------------------------------------------------

def test_with_span_nests_and_exports_parent_ids(tmp_path):
    tracer, path = file_tracer(tmp_path)
    with tracer.span("order", attributes={"order.id": "o-1", "dishes": 3}) as outer:
        assert ituna.current_span() is outer
        with tracer.span("validate-address", kind=ituna.SpanKind.INTERNAL) as inner:
            assert ituna.current_span() is inner
            inner.set_attribute("valid", True)
        assert ituna.current_span() is outer
    assert ituna.current_span() is None
    assert outer.ended and inner.ended and not outer.is_recording
    spans = by_name(exported(tracer, path))
    o, i = spans["order"][0], spans["validate-address"][0]
    assert o["traceId"] == i["traceId"] == outer.context.trace_id
    assert i["parentSpanId"] == o["spanId"] == outer.context.span_id
    assert not o.get("parentSpanId")
    assert o["attrs"] == {"order.id": "o-1", "dishes": "3"}  # OTLP JSON encodes int64 as a string
    assert i["attrs"]["valid"] is True
    assert o["service"] == "binding-test"
    assert len(outer.context.trace_id) == 32 and len(outer.context.span_id) == 16


def test_exception_marks_error_records_it_and_propagates(tmp_path):
    tracer, path = file_tracer(tmp_path)

    def boom():
        raise ValueError("bad address: 'nowhere'")

    with pytest.raises(ValueError, match="bad address"):
        with tracer.span("validate-address"):
            boom()
    assert ituna.current_span() is None
    s = exported(tracer, path)[0]
    assert s["status"]["code"] == 2  # STATUS_CODE_ERROR
    assert "bad address" in s["status"]["message"]
    ev = s["events"][0]
    assert ev["name"] == "exception"
    attrs = {a["key"]: a["value"]["stringValue"] for a in ev["attributes"]}
    assert attrs["exception.type"] == "ValueError"
    assert attrs["exception.message"] == "bad address: 'nowhere'"
    assert "in boom" in attrs["exception.stacktrace"] and "Traceback" in attrs["exception.stacktrace"]


def test_span_methods(tmp_path):
    tracer, path = file_tracer(tmp_path)
    linked = ituna.SpanContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    with tracer.span("work") as s:
        s.set_attributes({"f": 1.5, "ints": [1, 2, 3], "strs": ("a", "b"), "flags": [True, False]})
        s.add_event("step", {"n": 1})
        s.add_event("stamped", timestamp=1_700_000_000_000_000_000)
        s.add_link(linked, {"why": "batch"})
        s.update_name("work-renamed")
        s.set_status(ituna.StatusCode.OK)
        s.set_status("error", "ignored after OK")  # OK is final (OpenTelemetry rule)
        try:
            raise KeyError("k")
        except KeyError as e:
            s.record_exception(e)
    s.end()  # ending twice is a no-op
    s.set_attribute("late", 1)  # ignored on an ended span
    sp = exported(tracer, path)[0]
    assert sp["name"] == "work-renamed"
    assert sp["status"]["code"] == 1
    assert sp["attrs"]["f"] == 1.5
    assert [v["intValue"] for v in sp["attrs"]["ints"]["values"]] == ["1", "2", "3"]
    assert [v["stringValue"] for v in sp["attrs"]["strs"]["values"]] == ["a", "b"]
    assert "late" not in sp["attrs"]
    assert [e["name"] for e in sp["events"]] == ["step", "stamped", "exception"]
    assert sp["events"][1]["timeUnixNano"] == "1700000000000000000"
    assert sp["links"][0]["traceId"] == linked.trace_id and sp["links"][0]["spanId"] == linked.span_id


def test_explicit_parent_root_and_start_span(tmp_path):
    tracer, path = file_tracer(tmp_path)
    remote = ituna.SpanContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", tracestate="k=v")
    with tracer.span("outer") as outer:
        child = tracer.start_span("explicit", parent=remote)  # not current
        assert ituna.current_span() is outer
        child.end()
        with tracer.span("fresh", root=True) as fresh:
            pass
        with tracer.span("of-span", parent=outer):
            pass
    spans = by_name(exported(tracer, path))
    e = spans["explicit"][0]
    assert e["traceId"] == remote.trace_id and e["parentSpanId"] == remote.span_id
    assert e.get("traceState") == "k=v"
    assert child.context.tracestate == "k=v"
    assert spans["fresh"][0]["traceId"] != outer.context.trace_id and not spans["fresh"][0].get("parentSpanId")
    assert fresh.context.trace_id != outer.context.trace_id
    assert spans["of-span"][0]["parentSpanId"] == outer.context.span_id


def test_use_context_continues_an_extracted_trace(tmp_path):
    tracer, path = file_tracer(tmp_path)
    ctx = ituna.extract({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    with ituna.use_context(ctx):
        assert ituna.current_context() == ctx
        with tracer.span("continued"):
            pass
    assert ituna.current_context() is None
    s = exported(tracer, path)[0]
    assert s["traceId"] == "0af7651916cd43dd8448eb211c80319c" and s["parentSpanId"] == "b7ad6b7169203331"


def test_traced_decorator_sync_and_async(tmp_path):
    tracer, path = file_tracer(tmp_path)

    @tracer.traced("cook")
    def cook(dish):
        assert ituna.current_span() is not None
        return dish.upper()

    @tracer.traced()
    async def plate():
        return cook("tuna")

    @tracer.traced
    def bare():
        return 7

    assert asyncio.run(plate()) == "TUNA"
    assert bare() == 7
    spans = by_name(exported(tracer, path))
    assert spans["cook"][0]["parentSpanId"] == spans[plate.__qualname__][0]["spanId"]
    assert bare.__qualname__ in spans


def test_module_span_shortcut_and_stats(tmp_path):
    tracer, path = file_tracer(tmp_path)
    with ituna.span("via-module"):
        pass
    assert ituna.get_tracer() is tracer
    assert len(exported(tracer, path)) == 1
    st = tracer.stats()
    assert st["spans_started"] == 1 and st["spans_ended"] == 1 and st["spans_exported"] == 1
    assert tracer.service_name == "binding-test"


def test_sampler_off_gives_non_recording_spans_with_context(tmp_path):
    tracer, path = file_tracer(tmp_path, sampler="always_off")
    with tracer.span("dropped") as s:
        assert not s.is_recording
        s.set_attribute("x", 1)
        assert len(s.context.trace_id) == 32 and not s.context.sampled
    assert exported(tracer, path) == []
    assert tracer.stats()["spans_not_sampled"] == 1


# ---- propagation -----------------------------------------------------------------------

def test_inject_extract_round_trip():
    ituna.init(service_name="prop", env=False, type="none")
    assert ituna.inject() == {}  # no current span: nothing to write
    with ituna.span("p") as s:
        c = ituna.inject()
        assert c == {"traceparent": "00-%s-%s-01" % (s.context.trace_id, s.context.span_id)}
        mine = {"other": "kept"}
        assert ituna.inject(mine) is mine and mine["traceparent"] == c["traceparent"]
    ctx = ituna.extract(c)
    assert ctx.trace_id == s.context.trace_id and ctx.span_id == s.context.span_id and ctx.is_remote
    assert ctx == ituna.traceparent_parse(c["traceparent"]) and hash(ctx) == hash(ituna.extract(c))
    # explicit context, tracestate carried
    remote = ituna.SpanContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", tracestate="a=1,b=2")
    out = ituna.inject(context=remote)
    assert out["tracestate"] == "a=1,b=2"
    assert ituna.extract(out).tracestate == "a=1,b=2"


def test_extract_carrier_forms():
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert ituna.extract({"Traceparent": tp}).span_id == "00f067aa0ba902b7"  # case-insensitive
    assert ituna.extract({"traceparent": tp.encode()}).trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert ituna.extract([("x", b"1"), ("traceparent", tp.encode())]).span_id == "00f067aa0ba902b7"  # Kafka headers


def test_extract_reports_why_it_returns_none():
    assert ituna.extract({}) is None
    assert ituna.extract({}, errors=True) == (None, "no traceparent")
    ctx, why = ituna.extract({"traceparent": "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, errors=True)
    assert ctx is None and "version" in why
    ctx, why = ituna.extract({"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, errors=True)
    assert ctx is None and why
    # an invalid tracestate alone is dropped, the context stays (W3C), and the reason says so
    ctx, why = ituna.extract({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                              "tracestate": "BAD KEY=1"}, errors=True)
    assert ctx is not None and ctx.tracestate == "" and why
    with pytest.raises(ituna.ConfigError):
        ituna.traceparent_parse("00-xyz")


def test_propagation_type_errors():
    with pytest.raises(TypeError):
        ituna.extract(42)
    with pytest.raises(TypeError):
        ituna.extract({"traceparent": 42})
    with pytest.raises(TypeError):
        ituna.inject(context="not a context")
    with pytest.raises(ValueError):
        ituna.SpanContext("xyz", "00f067aa0ba902b7")


# ---- configuration and type errors -----------------------------------------------------

def test_config_precedence_file_env_api(tmp_path, monkeypatch):
    ini = tmp_path / "svc.ini"
    ini.write_text("[tracer]\nservice-name = from-file\n[simulated-delays]\nkitchen-service = 250\n"
                   "[exporter]\ntype = none\n")
    # [simulated-delays] is an application's section: known once its schema is registered
    schema = tmp_path / "app-schema.ini"
    schema.write_text("[simulated-delays]\nkitchen-service = delay 140\norder-validation-pub = delay 100\n")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    assert ituna.init(config=ini, schema=schema).service_name == "from-env"
    assert ituna.init(config=str(ini), env=False, schema=str(schema)).service_name == "from-file"
    t = ituna.init(service_name="from-api", config=ini, schema=schema)
    assert t.service_name == "from-api"
    assert t.config_get("simulated-delays", "kitchen-service") == "250"
    assert t.config_section("simulated-delays") == {"kitchen-service": "250"}
    assert t.config_get("simulated-delays", "nope", "dflt") == "dflt"
    # config_value: the value set, else the schema's default
    assert t.config_value("simulated-delays", "kitchen-service") == "250"
    assert t.config_value("simulated-delays", "order-validation-pub") == "100"
    assert t.config_get("simulated-delays", "order-validation-pub") is None
    with pytest.raises(ituna.ConfigError, match=r"svc.ini:3: \[simulated-delays\]: unknown section"):
        ituna.init(config=ini, env=False)
    monkeypatch.setenv("ITUNA_CONFIG_SCHEMA", str(schema))
    assert ituna.init(config=ini, env=False).config_value("simulated-delays", "kitchen-service") == "250"


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(ituna.ConfigError, match="no_such_key") as ei:
        ituna.init(service_name="x", env=False, no_such_key=1)
    assert ei.value.name == "ITUNA_ERR_CONFIG" and isinstance(ei.value, ValueError)
    with pytest.raises(ituna.ConfigError, match="schedule"):
        ituna.init(service_name="x", env=False, settings={"exporter.schedule-delay": "soon"})
    bad = tmp_path / "bad.ini"
    bad.write_text("[tracer]\nservice-name = ok\n[nonsense]\nfoo = 1\n")
    with pytest.raises(ituna.ConfigError, match="bad.ini"):
        ituna.init(config=bad, env=False)
    with pytest.raises(ituna.Error, match="missing.ini"):
        ituna.init(config=tmp_path / "missing.ini", env=False)
    with pytest.raises(TypeError):
        ituna.init(service_name=12)
    with pytest.raises(TypeError):
        ituna.init(service_name="x", env=False, sampler_arg=object())


def test_wrong_types_raise_type_error(tmp_path):
    tracer, _ = file_tracer(tmp_path)
    with pytest.raises(TypeError):
        tracer.span(42)
    with pytest.raises(TypeError):
        tracer.span("x", attributes=["not", "a", "dict"])
    with pytest.raises(TypeError):
        tracer.span("x", attributes={1: "non-str key"})
    with pytest.raises(TypeError):
        tracer.span("x", parent="nope")
    with pytest.raises(TypeError):
        tracer.span("x", nonsense=1)
    with pytest.raises(ValueError):
        tracer.span("x", kind="sideways")
    with tracer.span("ok") as s:
        for bad in (None, object(), {"a": 1}, [1, "mixed"], b"bytes"):
            with pytest.raises(TypeError):
                s.set_attribute("k", bad)
        with pytest.raises(OverflowError):
            s.set_attribute("big", 2 ** 70)
        with pytest.raises(TypeError):
            s.record_exception("not an exception")
        with pytest.raises(ValueError):
            s.set_status("purple")
        with pytest.raises(ituna.StateError):
            s.__enter__()  # already entered
    with pytest.raises(TypeError):
        ituna.Span()
    with pytest.raises(TypeError):
        tracer.flush(timeout="1")


# ---- threads and asyncio ----------------------------------------------------------------

def test_threads_each_have_their_own_current_span(tmp_path):
    tracer, path = file_tracer(tmp_path)
    barrier = threading.Barrier(8)
    errors = []

    def worker(i):
        try:
            with tracer.span("thread-%d" % i) as parent:
                barrier.wait()  # all parents are current at the same time
                for j in range(50):
                    with tracer.span("child-%d" % i) as c:
                        assert ituna.current_span() is c
                    assert ituna.current_span() is parent
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    with tracer.span("main") as main_span:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert ituna.current_span() is main_span
    assert not errors
    spans = by_name(exported(tracer, path))
    for i in range(8):
        parent = spans["thread-%d" % i][0]
        # a new thread starts with an empty context: its first span is a new trace
        assert not parent.get("parentSpanId")
        kids = spans["child-%d" % i]
        assert len(kids) == 50
        assert all(k["parentSpanId"] == parent["spanId"] and k["traceId"] == parent["traceId"] for k in kids)


def test_context_copied_into_a_thread_continues_the_trace(tmp_path):
    import contextvars
    tracer, path = file_tracer(tmp_path)
    with tracer.span("submit") as parent:
        ctx = contextvars.copy_context()
        t = threading.Thread(target=ctx.run, args=(lambda: tracer.span("in-thread").end(),))
        t.start()
        t.join()
    s = by_name(exported(tracer, path))["in-thread"][0]
    assert s["parentSpanId"] == parent.context.span_id


def test_asyncio_tasks_each_see_their_own_span(tmp_path):
    tracer, path = file_tracer(tmp_path)

    async def order(i):
        with tracer.span("order-%d" % i) as mine:
            for _ in range(5):
                await asyncio.sleep(0.001)  # interleave with the other tasks
                assert ituna.current_span() is mine
                with tracer.span("step-%d" % i):
                    await asyncio.sleep(0)

    async def main():
        with tracer.span("loop") as root:
            await asyncio.gather(*(order(i) for i in range(10)))
            assert ituna.current_span() is root
        return root

    root = asyncio.run(main())
    spans = by_name(exported(tracer, path))
    for i in range(10):
        o = spans["order-%d" % i][0]
        assert o["parentSpanId"] == root.context.span_id  # tasks copy the context at creation
        assert all(s["parentSpanId"] == o["spanId"] for s in spans["step-%d" % i])


# ---- reference counting / leaks -----------------------------------------------------------

def _rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_no_leak_over_100k_spans(tmp_path):
    tracer = ituna.init(service_name="leak", env=False, type="none")
    attrs = {"order.id": "o-1", "n": 2}

    def run(n):
        for i in range(n):
            with tracer.span("leak", attributes=attrs) as s:
                s.set_attribute("i", i)
                s.add_event("e", {"k": "v"})
                s.context.trace_id
            ituna.extract(ituna.inject(context=s))
            try:
                with tracer.span("err"):
                    raise RuntimeError("x")
            except RuntimeError:
                pass

    run(5_000)  # warm up allocators and caches
    gc.collect()
    objs0, rss0 = len(gc.get_objects()), _rss_kb()
    refs0 = sys.getrefcount(attrs), sys.getrefcount(tracer)
    run(100_000)
    gc.collect()
    objs1, rss1 = len(gc.get_objects()), _rss_kb()
    assert (sys.getrefcount(attrs), sys.getrefcount(tracer)) == refs0
    assert objs1 - objs0 < 100, "gc-tracked objects grew by %d" % (objs1 - objs0)
    assert rss1 - rss0 < 8 * 1024, "RSS grew by %d kB over 100k spans" % (rss1 - rss0)
    assert tracer.stats()["spans_started"] == 210_000


# ---- export through a real OTLP receiver -------------------------------------------------

def test_export_to_a_real_otlp_receiver():
    otlp_receiver = pytest.importorskip("otlp_receiver")
    with otlp_receiver.OtlpReceiver() as rx:
        tracer = ituna.init(service_name="otlp-binding", env=False,
                            settings={"exporter.type": "otlp", "exporter.endpoint": rx.endpoint,
                                      "exporter.protocol": "http/protobuf", "exporter.schedule-delay": "20"})
        with tracer.span("parent", attributes={"a": 1}) as p:
            with tracer.span("child", kind="client"):
                pass
        assert tracer.flush(timeout=10)
        assert rx.wait_for_spans(2)
        rx.check()  # every request decoded by opentelemetry-proto
        got = rx.spans()
        spans = {s.name: s for _, _, s in got}
        resource = {kv.key: kv.value.string_value for kv in got[0][0].attributes}
        assert resource["service.name"] == "otlp-binding"
        assert spans["child"].parent_span_id.hex() == p.context.span_id
        assert spans["parent"].trace_id.hex() == p.context.trace_id
        assert spans["child"].kind == 3  # SPAN_KIND_CLIENT
        assert tracer.shutdown(timeout=5)
        with tracer.span("after-shutdown") as late:
            assert not late.is_recording  # the core records nothing after shutdown
        assert tracer.stats()["spans_not_sampled"] == 1


def _run_script(code, tmp_path):
    import subprocess
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(ituna.__file__)))
    return subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=env, capture_output=True,
                          text=True, timeout=120)


def test_exit_flushes_spans_without_shutdown(tmp_path):
    out = tmp_path / "exit.jsonl"
    r = _run_script("import ituna\n"
                    "t = ituna.init(service_name='exiting', env=False, type='file', file=%r,\n"
                    "               settings={'exporter.schedule-delay': '3600000'})\n"
                    "with t.span('last-words'):\n    pass\n" % str(out), tmp_path)
    assert r.returncode == 0, r.stderr
    assert "last-words" in out.read_text()


def test_exit_reports_undelivered_messages(tmp_path):
    r = _run_script("import ituna\n"
                    "ituna.init(service_name='exiting', env=False, type='none')\n"
                    "p = ituna.Producer('127.0.0.1:1')\n"
                    "p.publish('t', b'x')\n", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "DeliveryError" in r.stderr and "not delivered" in r.stderr


def test_shutdown_is_idempotent():
    ituna.init(service_name="x", env=False, type="none")
    assert ituna.shutdown(timeout=2) is True
    assert ituna.shutdown(timeout=2) is True


def test_version_and_docstrings():
    assert ituna.CORE_VERSION == ituna._core.version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", ituna.RDKAFKA_VERSION), ituna.RDKAFKA_VERSION
    for name in ituna.__all__:
        obj = getattr(ituna, name)
        assert obj.__doc__, name
    for cls in (ituna.Tracer, ituna.Span, ituna.SpanContext, ituna.Producer, ituna.Consumer, ituna.Message):
        for attr, val in vars(cls).items():
            if not attr.startswith("_"):
                assert getattr(val, "__doc__", None), "%s.%s" % (cls.__name__, attr)
