"""OpenTelemetry's Python API on ituna's core (ituna.otel, issue 13): code written
against opentelemetry.trace runs on ituna.otel.TracerProvider, and every check is
made on the OTLP the core exported, decoded with opentelemetry-proto by a real
local receiver (otlp_receiver.py). Also: one current span shared between ituna's
own API and OpenTelemetry code of any provider (the SDK's included)."""
import asyncio
import contextvars
import os
import subprocess
import sys
import threading
import time

import pytest

import ituna
from otlp_receiver import OtlpReceiver

from opentelemetry import context as otel_context  # noqa: E402
from opentelemetry import propagate, trace  # noqa: E402
from opentelemetry.proto.trace.v1 import trace_pb2  # noqa: E402
from opentelemetry.trace import Link, SpanKind, Status, StatusCode  # noqa: E402

import ituna.otel  # noqa: E402

PSpan = trace_pb2.Span


@pytest.fixture(scope="module")
def rx():
    with OtlpReceiver() as r:
        yield r


def make_tracer(rx, **kw):
    return ituna._core.Tracer(env=False, settings=[
        ("exporter.endpoint", rx.endpoint), ("exporter.schedule-delay", "20"),
        ("service_name", kw.pop("service", "otel-api-test"))] + [(k, v) for k, v in kw.items()])


@pytest.fixture(scope="module")
def core(rx):
    t = make_tracer(rx)
    yield t
    t.shutdown(timeout=5)


@pytest.fixture
def provider(core):
    return ituna.otel.TracerProvider(core)


def exported(rx, core, names, timeout=10.0):
    """name -> (resource, scope, span) for the spans named, waiting for their export."""
    assert core.flush(timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        rx.check()
        got = {sp.name: (res, scope, sp) for res, scope, sp in rx.spans() if sp.name in names}
        if len(got) == len(names) or time.monotonic() > deadline:
            assert set(got) == set(names), "missing %s" % (set(names) - set(got))
            return got
        time.sleep(0.02)


def value(v):
    which = v.WhichOneof("value")
    if which == "array_value":
        return [value(x) for x in v.array_value.values]
    return getattr(v, which)


def attrs(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


def uniq(base):
    return "%s-%s" % (base, os.urandom(4).hex())


def test_nesting_kinds_and_real_span_context(rx, core, provider):
    tr = provider.get_tracer("test.nesting")
    a, b, c = uniq("outer"), uniq("middle"), uniq("inner")
    with tr.start_as_current_span(a, kind=SpanKind.SERVER) as outer:
        assert trace.get_current_span() is outer
        sc = outer.get_span_context()
        assert type(sc) is trace.SpanContext and sc.is_valid and not sc.is_remote
        assert sc.trace_flags.sampled and outer.is_recording()
        with tr.start_as_current_span(b, kind=SpanKind.PRODUCER):
            with tr.start_as_current_span(c, kind=SpanKind.CLIENT) as inner:
                assert inner.get_span_context().trace_id == sc.trace_id
        assert trace.get_current_span() is outer
    assert trace.get_current_span() is trace.INVALID_SPAN
    assert not outer.is_recording()  # ended
    got = exported(rx, core, [a, b, c])
    so, sm, si = got[a][2], got[b][2], got[c][2]
    assert so.trace_id == sm.trace_id == si.trace_id == sc.trace_id.to_bytes(16, "big")
    assert so.span_id == sc.span_id.to_bytes(8, "big") and so.parent_span_id == b""
    assert sm.parent_span_id == so.span_id and si.parent_span_id == sm.span_id
    assert (so.kind, sm.kind, si.kind) == (PSpan.SPAN_KIND_SERVER, PSpan.SPAN_KIND_PRODUCER,
                                          PSpan.SPAN_KIND_CLIENT)
    assert so.start_time_unix_nano <= sm.start_time_unix_nano <= si.end_time_unix_nano <= so.end_time_unix_nano


def test_every_attribute_type(rx, core, provider):
    tr = provider.get_tracer("test.attributes")
    name = uniq("attrs")
    with tr.start_as_current_span(name, attributes={"s": "text", "i": -42, "f": 2.5, "b": True}) as span:
        span.set_attribute("sa", ["x", "y"])
        span.set_attribute("ia", [1, 2, 3])
        span.set_attribute("fa", [0.5, 1.5])
        span.set_attribute("ba", [True, False])
        span.set_attributes({"i": 7, "big": 2**62, "unicode": "\u00e9t\u00e9"})
    a = attrs(exported(rx, core, [name])[name][2].attributes)
    assert a == {"s": "text", "i": 7, "f": 2.5, "b": True, "sa": ["x", "y"], "ia": [1, 2, 3],
                 "fa": [0.5, 1.5], "ba": [True, False], "big": 2**62, "unicode": "\u00e9t\u00e9"}


def test_invalid_attributes_are_dropped_with_a_warning_not_raised(rx, core, provider, caplog):
    # OpenTelemetry's API must not raise into instrumented code: the SDK logs a warning
    # and leaves the attribute out; ituna.otel does the same (ituna's own API raises).
    tr = provider.get_tracer("test.invalid-attributes")
    name = uniq("invalid")
    with caplog.at_level("WARNING", logger="ituna.otel"):
        with tr.start_as_current_span(name, attributes={"ok": 1, "none": None, "obj": object()}) as span:
            span.set_attribute("n", None)
            span.set_attribute("", "empty key")
            span.set_attribute("too_big", 2**70)
            span.set_attributes({"kept": "yes", "bad": {"a": 1}})
            span.add_event("ev", {"e": "fine", "x": object()})
            span.set_attribute("last", True)
    sp = exported(rx, core, [name])[name][2]
    assert attrs(sp.attributes) == {"ok": 1, "kept": "yes", "last": True}
    assert [(e.name, attrs(e.attributes)) for e in sp.events] == [("ev", {"e": "fine"})]
    dropped = [r for r in caplog.records if r.name == "ituna.otel" and "attribute dropped" in r.getMessage()]
    assert len(dropped) == 7, [r.getMessage() for r in dropped]
    # ituna's own API keeps raising on the same values
    with pytest.raises(TypeError):
        with core.span(uniq("strict")) as s2:
            s2.set_attribute("n", None)


def test_events_links_status_and_exceptions(rx, core, provider):
    tr = provider.get_tracer("test.events")
    n1, n2, n3, n4, n5 = (uniq(x) for x in ("ev", "ok-final", "raises", "quiet", "no-status"))
    with tr.start_as_current_span(uniq("linked")) as target:
        tsc = target.get_span_context()
    with tr.start_as_current_span(n1, links=[Link(tsc, {"why": "batch"})]) as span:
        span.add_event("started", {"n": 1}, timestamp=1_700_000_000_000_000_000)
        span.add_event("plain")
        span.add_link(tsc)
        span.update_name(n1)
        span.set_status(Status(StatusCode.ERROR, "bad input"))
        try:
            raise KeyError("k")
        except KeyError as exc:
            span.record_exception(exc, attributes={"handled": True})
    with tr.start_as_current_span(n2) as span:
        span.set_status(StatusCode.OK)
        span.set_status(StatusCode.ERROR, "ignored: OK is final")
    with pytest.raises(ValueError):
        with tr.start_as_current_span(n3):
            raise ValueError("boom")
    with pytest.raises(ValueError):
        with tr.start_as_current_span(n4, record_exception=False):
            raise ValueError("quiet")
    with pytest.raises(ValueError):
        with tr.start_as_current_span(n5, set_status_on_exception=False):
            raise ValueError("no status")
    got = exported(rx, core, [n1, n2, n3, n4, n5])
    s1 = got[n1][2]
    assert [e.name for e in s1.events] == ["started", "plain", "exception"]
    assert s1.events[0].time_unix_nano == 1_700_000_000_000_000_000 and attrs(s1.events[0].attributes) == {"n": 1}
    exc = attrs(s1.events[2].attributes)
    assert exc["exception.type"] == "KeyError" and exc["exception.message"] == "'k'" and exc["handled"] is True
    assert "raise KeyError" in exc["exception.stacktrace"]
    assert len(s1.links) == 2 and all(l.span_id == tsc.span_id.to_bytes(8, "big") for l in s1.links)
    assert attrs(s1.links[0].attributes) == {"why": "batch"}
    assert s1.status.code == trace_pb2.Status.STATUS_CODE_ERROR and s1.status.message == "bad input"
    assert got[n2][2].status.code == trace_pb2.Status.STATUS_CODE_OK and got[n2][2].status.message == ""
    s3 = got[n3][2]
    assert s3.status.code == trace_pb2.Status.STATUS_CODE_ERROR and "boom" in s3.status.message
    assert [e.name for e in s3.events] == ["exception"]
    s4 = got[n4][2]
    assert s4.status.code == trace_pb2.Status.STATUS_CODE_ERROR and not s4.events
    s5 = got[n5][2]
    assert s5.status.code == trace_pb2.Status.STATUS_CODE_UNSET and [e.name for e in s5.events] == ["exception"]


def test_start_span_use_span_times_and_end_on_exit(rx, core, provider):
    tr = provider.get_tracer("test.start")
    p, c, d = uniq("parent"), uniq("child"), uniq("kept")
    parent = tr.start_span(p, start_time=1_600_000_000_000_000_000)
    assert trace.get_current_span() is trace.INVALID_SPAN  # start_span does not make it current
    with trace.use_span(parent, end_on_exit=False):
        child = tr.start_span(c)
        with child:  # a `with` on start_span's span ends it without making it current
            assert trace.get_current_span() is parent
    parent.end(end_time=1_600_000_001_000_000_000)
    with tr.start_as_current_span(d, end_on_exit=False) as kept:
        pass
    assert kept.is_recording()
    kept.end()
    got = exported(rx, core, [p, c, d])
    sp, sc = got[p][2], got[c][2]
    assert sp.start_time_unix_nano == 1_600_000_000_000_000_000
    assert sp.end_time_unix_nano == 1_600_000_001_000_000_000
    assert sc.parent_span_id == sp.span_id


def spans_named(rx, core, name, count, timeout=10.0):
    """The exported spans called name, waiting for count of them (and no more)."""
    assert core.flush(timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        rx.check()
        got = [sp for _, _, sp in rx.spans() if sp.name == name]
        if len(got) >= count or time.monotonic() > deadline:
            assert len(got) == count, "%d spans named %s, expected %d" % (len(got), name, count)
            return sorted(got, key=lambda sp: sp.start_time_unix_nano)


def test_start_as_current_span_as_a_decorator(rx, core, provider):
    """@tracer.start_as_current_span(...) as in OpenTelemetry's API: one span per call
    with every argument honoured, the decoration-time span never exported nor
    counted; a coroutine function's span lasts until the coroutine finishes."""
    tr = provider.get_tracer("test.decorator")
    with tr.start_as_current_span(uniq("linked")) as target:
        tsc = target.get_span_context()
    plain, loud, quiet, kept, timed, rooted, coro, gen = (uniq(x) for x in (
        "plain", "loud", "quiet", "kept", "timed", "rooted", "coro", "gen"))
    before = core.stats()["spans_started"]

    @tr.start_as_current_span(plain, kind=SpanKind.CLIENT, attributes={"a": 1}, links=[Link(tsc, {"l": "x"})])
    def work(x):
        """doc kept"""
        span = trace.get_current_span()
        assert span.is_recording()
        return x * 2, span.get_span_context()

    assert core.stats()["spans_started"] == before  # the decoration-time span is uncounted
    assert work.__name__ == "work" and work.__doc__ == "doc kept"
    with tr.start_as_current_span(uniq("caller")) as caller:
        (r1, sc1) = work(21)
    r2, sc2 = work(1)
    assert (r1, r2) == (42, 2) and sc1.span_id != sc2.span_id
    assert trace.get_current_span() is trace.INVALID_SPAN

    @tr.start_as_current_span(loud)
    def fails_loud():
        raise ValueError("boom")

    @tr.start_as_current_span(quiet, record_exception=False, set_status_on_exception=False)
    def fails_quiet():
        raise ValueError("hush")

    for fn in (fails_loud, fails_quiet):
        with pytest.raises(ValueError):
            fn()

    @tr.start_as_current_span(kept, end_on_exit=False)
    def keeps():
        return trace.get_current_span()

    left_open = keeps()
    assert left_open.is_recording()
    end = time.time_ns() + 1_000_000_000
    left_open.end(end_time=end)

    @tr.start_as_current_span(timed, start_time=1_700_000_001_000_000_000)
    def timed_fn():
        pass

    timed_fn()

    @tr.start_as_current_span(rooted, context=otel_context.Context())
    def rooted_fn():
        pass

    with tr.start_as_current_span(uniq("ambient")):
        rooted_fn()

    @tr.start_as_current_span(coro)
    async def slow():
        await asyncio.sleep(0.05)
        return trace.get_current_span().get_span_context()

    csc = asyncio.run(slow())

    @tr.start_as_current_span(gen)
    def numbers():  # as in OpenTelemetry: the span covers creating the generator only
        yield trace.get_current_span()

    assert next(numbers()) is trace.INVALID_SPAN

    s1, s2 = spans_named(rx, core, plain, 2)
    caller_sc = caller.get_span_context()
    assert s1.parent_span_id == caller_sc.span_id.to_bytes(8, "big") and s2.parent_span_id == b""
    assert {s1.span_id, s2.span_id} == {sc1.span_id.to_bytes(8, "big"), sc2.span_id.to_bytes(8, "big")}
    for sp in (s1, s2):
        assert sp.kind == PSpan.SPAN_KIND_CLIENT and attrs(sp.attributes) == {"a": 1}
        assert len(sp.links) == 1 and sp.links[0].span_id == tsc.span_id.to_bytes(8, "big")
        assert attrs(sp.links[0].attributes) == {"l": "x"}
    (sl,) = spans_named(rx, core, loud, 1)
    assert sl.status.code == trace_pb2.Status.STATUS_CODE_ERROR and [e.name for e in sl.events] == ["exception"]
    (sq,) = spans_named(rx, core, quiet, 1)
    assert sq.status.code == trace_pb2.Status.STATUS_CODE_UNSET and not sq.events
    (sk,) = spans_named(rx, core, kept, 1)
    assert sk.end_time_unix_nano == end
    (st,) = spans_named(rx, core, timed, 1)
    assert st.start_time_unix_nano == 1_700_000_001_000_000_000
    (sr,) = spans_named(rx, core, rooted, 1)
    assert sr.parent_span_id == b""
    (sc,) = spans_named(rx, core, coro, 1)
    assert sc.span_id == csc.span_id.to_bytes(8, "big")
    assert sc.end_time_unix_nano - sc.start_time_unix_nano >= 50_000_000  # ends after the await
    spans_named(rx, core, gen, 1)
    with pytest.raises(TypeError):  # a span from start_span is no decorator
        tr.start_span(uniq("not-a-decorator"))(lambda: None)


def test_sampling_gives_non_recording_spans(rx):
    off = make_tracer(rx, **{"tracer.sampler": "parentbased_always_off", "service": "sampled-off"})
    try:
        tr = ituna.otel.TracerProvider(off).get_tracer("test.sampling")
        name = uniq("never")
        with tr.start_as_current_span(name, attributes={"a": 1}) as span:
            assert isinstance(span, trace.NonRecordingSpan) and not span.is_recording()
            sc = span.get_span_context()
            assert sc.is_valid and not sc.trace_flags.sampled
            carrier = {}
            propagate.inject(carrier)
            assert carrier["traceparent"].endswith("-00")
        # parent-based: a sampled remote parent makes a recording child
        ctx = propagate.extract({"traceparent": "00-%s-%s-01" % ("ab" * 16, "cd" * 8)})
        kept = uniq("kept")
        with tr.start_as_current_span(kept, context=ctx) as child:
            assert child.is_recording() and not isinstance(child, trace.NonRecordingSpan)
        assert off.flush(timeout=10)
        deadline = time.monotonic() + 10
        while kept not in [s.name for _, _, s in rx.spans()] and time.monotonic() < deadline:
            time.sleep(0.02)
        names = [s.name for _, _, s in rx.spans()]
        assert kept in names and name not in names
        assert off.stats()["spans_not_sampled"] >= 1
    finally:
        off.shutdown(timeout=5)


def test_propagate_inject_extract(rx, core, provider):
    tr = provider.get_tracer("test.propagate")
    name = uniq("server")
    with tr.start_as_current_span(uniq("client")) as client:
        carrier = {}
        propagate.inject(carrier)
        csc = client.get_span_context()
        assert carrier["traceparent"] == "00-%032x-%016x-01" % (csc.trace_id, csc.span_id)
    ctx = propagate.extract(carrier)
    assert trace.get_current_span(ctx).get_span_context().span_id == csc.span_id
    with tr.start_as_current_span(name, context=ctx, kind=SpanKind.SERVER):
        pass
    sp = exported(rx, core, [name])[name][2]
    assert sp.trace_id == csc.trace_id.to_bytes(16, "big") and sp.parent_span_id == csc.span_id.to_bytes(8, "big")
    assert sp.flags & trace_pb2.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
    # an explicit Context without a span starts a new trace even inside a span
    root = uniq("root")
    with tr.start_as_current_span(uniq("ambient")):
        with tr.start_as_current_span(root, context=otel_context.Context()):
            pass
    assert exported(rx, core, [root])[root][2].parent_span_id == b""


def test_context_across_threads_and_asyncio_tasks(rx, core, provider):
    tr = provider.get_tracer("test.concurrency")
    parent_name = uniq("parent")
    names = []

    async def work(i):
        n = "%s-task%d" % (parent_name, i)
        names.append(n)
        with tr.start_as_current_span(n):
            await asyncio.sleep(0.01 * (3 - i))  # interleave the tasks
            assert trace.get_current_span().get_span_context() is not None

    def in_thread(i):
        n = "%s-thread%d" % (parent_name, i)
        names.append(n)
        with tr.start_as_current_span(n):
            time.sleep(0.01)

    async def main():
        with tr.start_as_current_span(parent_name):
            await asyncio.gather(*(work(i) for i in range(3)))
            threads = [threading.Thread(target=contextvars.copy_context().run, args=(in_thread, i))
                       for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            orphan = uniq("orphan")
            t = threading.Thread(target=lambda: tr.start_span(orphan).end())  # no copied context
            t.start()
            t.join()
            return orphan

    orphan = asyncio.run(main())
    got = exported(rx, core, [parent_name, orphan] + names)
    pid = got[parent_name][2].span_id
    assert all(got[n][2].parent_span_id == pid for n in names)
    assert got[orphan][2].parent_span_id == b""


def test_one_context_with_ituna_api_both_ways(rx, core, provider):
    tr = provider.get_tracer("test.bridge")
    o1, i1, o2 = uniq("otel-outer"), uniq("ituna-inner"), uniq("otel-in-ituna")
    with tr.start_as_current_span(o1) as outer:
        assert ituna.current_context().span_id == "%016x" % outer.get_span_context().span_id
        with core.span(i1) as inner:
            assert ituna.current_span() is inner
            carrier = {}
            propagate.inject(carrier)
            assert carrier["traceparent"] == inner.context.traceparent
            assert ituna.inject() == carrier
            with tr.start_as_current_span(o2):
                pass
            assert trace.get_current_span().get_span_context().span_id == int(inner.context.span_id, 16)
    got = exported(rx, core, [o1, i1, o2])
    assert got[i1][2].parent_span_id == got[o1][2].span_id
    assert got[o2][2].parent_span_id == got[i1][2].span_id
    # ituna.use_context and ituna.extract are seen by OpenTelemetry code too
    remote = ituna.extract({"traceparent": "00-%s-%s-01" % ("12" * 16, "34" * 8)})
    with ituna.use_context(remote):
        sc = trace.get_current_span().get_span_context()
        assert sc.is_remote and sc.span_id == 0x3434343434343434
    assert ituna.current_context() is None


def test_one_context_with_the_sdk_provider(rx, core):
    from opentelemetry.sdk.trace import TracerProvider as SdkProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    mem = InMemorySpanExporter()
    sdk = SdkProvider()
    sdk.add_span_processor(SimpleSpanProcessor(mem))
    st = sdk.get_tracer("sdk")
    ituna_name, sdk_child = uniq("ituna-in-sdk"), uniq("sdk-in-ituna")
    with st.start_as_current_span("sdk-outer") as so:
        with core.span(ituna_name) as mine:
            assert mine.context.trace_id == "%032x" % so.get_span_context().trace_id
            with st.start_as_current_span(sdk_child):
                pass
            carrier = {}
            propagate.inject(carrier)
            assert carrier["traceparent"] == mine.context.traceparent
        assert ituna.current_context().span_id == "%016x" % so.get_span_context().span_id
    sdk.shutdown()
    got = exported(rx, core, [ituna_name])
    assert got[ituna_name][2].parent_span_id == so.get_span_context().span_id.to_bytes(8, "big")
    child = [s for s in mem.get_finished_spans() if s.name == sdk_child][0]
    assert child.parent.span_id == int(got[ituna_name][2].span_id.hex(), 16)


def test_otel_python_tracer_provider_entry_point(rx, tmp_path):
    """OTEL_PYTHON_TRACER_PROVIDER=ituna selects ituna.otel.TracerProvider with no code change."""
    from importlib.metadata import entry_points
    eps = [e for e in entry_points(group="opentelemetry_tracer_provider") if e.name == "ituna"]
    assert eps and eps[0].value == "ituna.otel:TracerProvider", "entry point not installed (pip install .)"
    code = ("from opentelemetry import trace\n"
            "p = trace.get_tracer_provider()\n"
            "print(type(p).__module__, type(p).__name__)\n"
            "with trace.get_tracer('ep').start_as_current_span('by-entry-point'):\n"
            "    pass\n"
            "p.force_flush()\n")
    env = dict(os.environ, OTEL_PYTHON_TRACER_PROVIDER="ituna", OTEL_SERVICE_NAME="entry-point",
               OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ituna.otel", "TracerProvider"]
    assert rx.wait_for_spans(1)
    mine = [(res, s) for res, _, s in rx.spans() if s.name == "by-entry-point"]
    assert mine and attrs(mine[0][0].attributes)["service.name"] == "entry-point"


# ---- propagators (OTEL_PROPAGATORS) and lengths, parsed in the core ----------------

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def with_propagators(value):
    """A default tracer whose [tracer] propagators is value (as OTEL_PROPAGATORS sets it)."""
    return ituna.init(service_name="props", env=False, type="none", propagators=value)


def test_ituna_inject_extract_honour_the_propagators():
    try:
        with_propagators("tracecontext,baggage,b3,b3multi")
        ctx = ituna.extract({"traceparent": TP})
        out = ituna.inject({}, ctx, baggage={"user": "alice", "tier": "gold plus"})
        assert out["traceparent"] == TP
        assert out["b3"] == "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"
        assert out["X-B3-TraceId"] == "4bf92f3577b34da6a3ce929d0e0e4736" and out["X-B3-Sampled"] == "1"
        assert out["baggage"] == "user=alice,tier=gold%20plus"
        assert ituna.extract_baggage(out) == {"user": "alice", "tier": "gold plus"}
        with_propagators("B3")  # case-insensitive; tracecontext not in the set
        assert ituna.extract({"traceparent": TP}) is None
        got = ituna.extract({"b3": "a3ce929d0e0e4736-00f067aa0ba902b7-0"})
        assert got.trace_id == "0000000000000000a3ce929d0e0e4736" and not got.sampled
        assert set(ituna.inject({}, got)) == {"b3"}
        assert ituna.extract_baggage({"baggage": "a=1"}) == {}  # baggage not in the set
        with_propagators("b3multi")
        got = ituna.extract([("x-b3-traceid", b"4bf92f3577b34da6a3ce929d0e0e4736"),
                             ("x-b3-spanid", b"00f067aa0ba902b7"), ("x-b3-sampled", b"1")])
        assert got.traceparent == TP
    finally:
        ituna.shutdown()


def test_values_are_lengths_not_nul_terminated_strings():
    with_propagators("tracecontext,baggage")
    try:
        assert ituna.extract({"traceparent": TP}) is not None
        assert ituna.extract({"traceparent": TP + "\x00"}) is None
        assert ituna.extract({"traceparent": (TP + "\x00").encode()}) is None
        ctx, why = ituna.extract([("traceparent", TP.encode() + b"\x00junk")], errors=True)
        assert ctx is None and "length" in why
        with pytest.raises(ValueError):
            ituna.inject({}, ituna.extract({"traceparent": TP}), baggage={"k": "v\x00w"})
        with pytest.raises(ValueError):
            ituna.SpanContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b\x00")
    finally:
        ituna.shutdown()


def test_attribute_nul_bytes_reach_otlp_exactly_and_nul_keys_are_refused(rx, core, provider, caplog):
    """Counted strings end to end: a NUL inside a value, a string-array item, an event's
    or a link's attribute arrives in the OTLP whole; a key holding one is refused with
    the core's reason, never cut to its prefix: ituna's API raises, ituna.otel (whose
    API must not raise) drops it with a warning giving that reason."""
    tr = provider.get_tracer("test.nul")
    name = uniq("nul")
    with tr.start_as_current_span(uniq("link-target")) as target:
        tsc = target.get_span_context()
    with tr.start_as_current_span(name, attributes={"v": "a\x00b", "arr": ["x\x00y", "", "\x00"]},
                                  links=[Link(tsc, {"lk": "l\x00m"})]) as span:
        span.set_attribute("tail", "end\x00")
        span.add_event("ev", {"ek": ["p\x00", "q"]})
        with caplog.at_level("WARNING", logger="ituna.otel"):
            for bad in ("k\x00", "\x00", "a\x00b"):
                span.set_attribute(bad, "x")
                span.add_event("bad", {bad: 1})
            span.set_attribute("", "x")
            tr.start_span(uniq("refused"), attributes={"k\x00": 1}).end()
    reasons = [r.getMessage() for r in caplog.records if r.name == "ituna.otel"]
    assert sum("key contains a NUL byte" in m for m in reasons) == 7, reasons
    assert sum("key is empty" in m for m in reasons) == 1, reasons
    own_name = uniq("ituna-api")
    with core.span(own_name) as own:
        own.set_attribute("arr", ["1\x002"])
        with pytest.raises(ValueError, match="key contains a NUL byte"):
            own.set_attribute("arr\x00x", ["1"])
    got = exported(rx, core, [name, own_name])
    assert attrs(got[own_name][2].attributes) == {"arr": ["1\x002"]}
    sp = got[name][2]
    assert attrs(sp.attributes) == {"v": "a\x00b", "arr": ["x\x00y", "", "\x00"], "tail": "end\x00"}
    assert [e.name for e in sp.events] == ["ev", "bad", "bad", "bad"]
    assert attrs(sp.events[0].attributes) == {"ek": ["p\x00", "q"]}
    assert all(not e.attributes for e in sp.events[1:])
    assert attrs(sp.links[0].attributes) == {"lk": "l\x00m"}
    assert sp.dropped_attributes_count == 0


def test_otel_propagate_runs_on_the_core_propagators(provider):
    """TracerProvider makes ituna.otel.Propagator the global propagator: it honours the
    ituna tracer's propagators (b3 here), custom getters/setters and W3C baggage."""
    from opentelemetry import baggage
    assert isinstance(propagate.get_global_textmap(), ituna.otel.Propagator)
    tr = provider.get_tracer("test.propagator")
    try:
        with_propagators("tracecontext,baggage,b3multi")
        with tr.start_as_current_span(uniq("src")) as span:
            token = otel_context.attach(baggage.set_baggage("user", "alice smith"))
            try:
                pairs = []

                class ListSetter:
                    def set(self, carrier, key, value):
                        carrier.append((key, value.encode()))

                propagate.inject(pairs, setter=ListSetter())
            finally:
                otel_context.detach(token)
        got = dict(pairs)
        sc = span.get_span_context()
        assert got["X-B3-SpanId"] == ("%016x" % sc.span_id).encode() and got["traceparent"]
        assert got["baggage"] == b"user=alice%20smith"

        class ListGetter:
            def get(self, carrier, key):
                return [v.decode() for k, v in carrier if k.lower() == key] or None

            def keys(self, carrier):
                return [k for k, _ in carrier]

        only_b3 = [(k, v) for k, v in pairs if k.lower().startswith("x-b3") or k == "baggage"]
        ctx = propagate.extract(only_b3, getter=ListGetter())
        assert trace.get_current_span(ctx).get_span_context().span_id == sc.span_id
        assert baggage.get_all(ctx) == {"user": "alice smith"}
    finally:
        ituna.shutdown()


def test_otel_propagator_context_semantics(provider):
    """ituna.otel.Propagator (C) keeps OpenTelemetry's TextMapPropagator contract:
    extract returns the given Context (or an empty one) with the remote span and the
    baggage merged over the context's own; the default getter reads carrier.get(key)
    as given; inject takes an explicit Context; it works inside a CompositePropagator."""
    from opentelemetry import baggage
    from opentelemetry.propagators.composite import CompositePropagator
    prop = ituna.otel.Propagator()
    tp = "00-%s-%s-01" % ("ab" * 16, "cd" * 8)
    try:
        with_propagators("tracecontext,baggage")
        base = baggage.set_baggage("old", "1", otel_context.set_value("mine", 42))
        ctx = prop.extract({"traceparent": tp, "baggage": "new=2,old=3"}, base)
        assert isinstance(ctx, otel_context.Context) and ctx.get("mine") == 42
        assert baggage.get_all(ctx) == {"old": "3", "new": "2"} and baggage.get_all(base) == {"old": "1"}
        sc = trace.get_current_span(ctx).get_span_context()
        assert sc.is_remote and sc.trace_id == int("ab" * 16, 16) and sc.span_id == int("cd" * 8, 16)
        assert prop.extract({}, base) is base and prop.extract({"traceparent": "junk"}) == {}
        assert isinstance(prop.extract({}), otel_context.Context)
        assert trace.get_current_span(prop.extract({"Traceparent": tp})) is trace.INVALID_SPAN  # carrier.get
        assert ituna.extract({"Traceparent": tp}) is not None  # ituna's own extract ignores case
        out = {}
        prop.inject(out, ctx)  # an explicit Context, not the current one
        assert out["traceparent"] == tp and sorted(out["baggage"].split(",")) == ["new=2", "old=3"]
        comp = CompositePropagator([prop])
        out2 = {}
        comp.inject(out2, context=ctx)
        assert out2 == out
        assert trace.get_current_span(comp.extract(out2)).get_span_context().span_id == sc.span_id
        with pytest.raises(TypeError):
            prop.extract({}, "not a Context")
    finally:
        ituna.shutdown()


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_instrumentation_scope_per_tracer(rx, protocol):
    core = make_tracer(rx, **{"exporter.protocol": protocol, "service": "scopes-" + protocol.split("/")[1]})
    try:
        prov = ituna.otel.TracerProvider(core)
        a = prov.get_tracer("lib.alpha", "1.2.3", "https://opentelemetry.io/schemas/1.26.0",
                            {"team": "kitchen", "shard": 3})
        b = prov.get_tracer("lib.beta")
        na, nb, nc = uniq("a"), uniq("b"), uniq("core")
        with a.start_as_current_span(na):
            with b.start_as_current_span(nb):
                with core.span(nc):  # ituna's own API: the core's scope
                    pass
        assert core.flush(timeout=10)
        got = exported(rx, core, [na, nb, nc])
    finally:
        core.shutdown(timeout=5)
    sa, sb, sc = got[na][1], got[nb][1], got[nc][1]
    assert (sa.name, sa.version) == ("lib.alpha", "1.2.3")
    assert attrs(sa.attributes) == {"team": "kitchen", "shard": 3}
    assert (sb.name, sb.version, list(sb.attributes)) == ("lib.beta", "", [])
    assert sc.name == "ituna-core"
    # schema_url lives on ScopeSpans
    urls = {ss.scope.name: ss.schema_url for r in rx.accepted() for rs in r.message.resource_spans
            for ss in rs.scope_spans}
    assert urls["lib.alpha"] == "https://opentelemetry.io/schemas/1.26.0" and urls["lib.beta"] == ""
