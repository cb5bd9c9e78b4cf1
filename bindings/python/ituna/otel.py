"""OpenTelemetry's Python API on ituna's C core.

``ituna.otel.TracerProvider`` implements ``opentelemetry.trace.TracerProvider``:
tracers, spans, sampling, limits, resource and export are the core's, so code
written against ``opentelemetry.trace`` (and the ``opentelemetry-instrumentation-*``
packages) runs on it unchanged::

    from opentelemetry import trace
    import ituna.otel
    trace.set_tracer_provider(ituna.otel.TracerProvider())

or, with no code change, ``OTEL_PYTHON_TRACER_PROVIDER=ituna`` (entry point ``ituna``
in the group ``opentelemetry_tracer_provider``).

Importing this module (or ``opentelemetry.trace`` after ``ituna``) turns on the
context bridge: ituna's current span lives in OpenTelemetry's context, so ituna's
own spans, Kafka publishes and consumer spans, and OpenTelemetry API code of any
provider (the SDK's included) see one current span.
"""
from __future__ import annotations

import functools
import inspect
import logging
import traceback
from typing import Any, Iterator, Mapping, Optional, Sequence

from opentelemetry import baggage as _baggage
from opentelemetry import context as _context_api
from opentelemetry import propagate as _propagate
from opentelemetry import trace as _trace
from opentelemetry.propagators import textmap as _textmap
from opentelemetry.context.context import Context as _Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext as _CVRuntime
from opentelemetry.trace import propagation as _propagation
from opentelemetry.trace.span import (
    DEFAULT_TRACE_STATE as _DEFAULT_TS,
    SpanContext as _OSpanContext,
    TraceFlags as _TraceFlags,
    TraceState as _TraceState,
)
from opentelemetry.trace.status import Status as _Status

from . import _core

__all__ = ["TracerProvider", "Tracer", "Span", "NonRecordingSpan", "Propagator"]

_log = logging.getLogger("ituna.otel")

# OpenTelemetry's SpanKind (0-based) -> the OTLP proto's numbers the core uses
_KIND = {
    _trace.SpanKind.INTERNAL: 1,
    _trace.SpanKind.SERVER: 2,
    _trace.SpanKind.CLIENT: 3,
    _trace.SpanKind.PRODUCER: 4,
    _trace.SpanKind.CONSUMER: 5,
}
# the core's SPAN_OTEL_* flags (bindings/python/_core/module.h)
_NO_ATTACH, _NO_RECORD, _NO_STATUS, _NO_END = 1, 2, 4, 8

_INTERNAL = _trace.SpanKind.INTERNAL
_base_recording = _core.Span.is_recording.__get__  # the base class's property
_base_set_status = _core.Span.set_status
_base_add_link = _core.Span.add_link


def _span_context(trace_id: int, span_id: int, flags: int, tracestate: Optional[str],
                  is_remote: bool) -> _OSpanContext:
    ts = _TraceState.from_header([tracestate]) if tracestate else _DEFAULT_TS
    return _OSpanContext(trace_id, span_id, is_remote, _TraceFlags(flags), ts)


def _to_ituna(sc: Any) -> Optional[_core.SpanContext]:
    """An ituna SpanContext for an OpenTelemetry SpanContext (None if invalid)."""
    if isinstance(sc, (_core.SpanContext, _core.Span)):
        return sc if isinstance(sc, _core.SpanContext) else sc.context
    if sc is None or not sc.is_valid:
        return None
    ts = sc.trace_state.to_header() if sc.trace_state else None
    return _core.SpanContext("%032x" % sc.trace_id, "%016x" % sc.span_id, int(sc.trace_flags),
                             ts or None, bool(sc.is_remote))


class Span(_core.Span):
    """An ``opentelemetry.trace.Span`` recorded by ituna's core. Started by
    :meth:`Tracer.start_span`; attributes, events, status and end are C calls."""

    __slots__ = ()

    def is_recording(self) -> bool:  # type: ignore[override]  # a method in OpenTelemetry
        return _base_recording(self)

    get_span_context = _core.Span._otel_context

    def set_status(self, status: Any, description: Optional[str] = None) -> None:  # type: ignore[override]
        if isinstance(status, _Status):
            if description is not None:
                _log.warning("description %r ignored: set_status() was given a Status", description)
            status, description = status.status_code, status.description
        _base_set_status(self, status.value if hasattr(status, "value") else status, description)

    def record_exception(self, exception: BaseException,  # type: ignore[override]
                         attributes: Optional[Mapping[str, Any]] = None,
                         timestamp: Optional[int] = None, escaped: bool = False) -> None:
        if not self.is_recording():
            return
        tp = type(exception)
        name = tp.__qualname__ if tp.__module__ == "builtins" else "%s.%s" % (tp.__module__, tp.__qualname__)
        attrs = {
            "exception.type": name,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
        }
        if attributes:
            attrs.update(attributes)
        self.add_event("exception", attrs, timestamp)

    def add_link(self, context: Any, attributes: Optional[Mapping[str, Any]] = None) -> None:  # type: ignore[override]
        ctx = _to_ituna(context)
        if ctx is not None:
            _base_add_link(self, ctx, dict(attributes) if attributes else None)

    def __call__(self, func: Any) -> Any:
        """``@tracer.start_as_current_span(...)`` on a function: each call runs in a new
        span started with the same arguments, as OpenTelemetry's API does. The span
        made at decoration time is dropped (never exported, never counted). A coroutine
        function's span lasts until its coroutine finishes; any other function's lasts
        for the call (a generator function's only while it creates the generator)."""
        cm = self._cm
        if cm is None:
            raise TypeError("only start_as_current_span(...) can decorate a function, not a started span")
        self._discard()
        tracer, args = cm[0], cm[1:]
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*a: Any, **kw: Any) -> Any:
                with tracer.start_as_current_span(*args):
                    return await func(*a, **kw)
            return async_wrapper

        @functools.wraps(func)
        def wrapper(*a: Any, **kw: Any) -> Any:
            with tracer.start_as_current_span(*args):
                return func(*a, **kw)
        return wrapper

    def __repr__(self) -> str:
        return "<ituna.otel.%s %r>" % (type(self).__name__, self.context)


class NonRecordingSpan(Span):
    """A span the sampler did not record (or a remote context made current): it
    carries its context and ignores everything else, as OpenTelemetry's
    ``NonRecordingSpan`` does (``isinstance`` checks against that class hold)."""

    __slots__ = ()


_trace.Span.register(Span)
_trace.NonRecordingSpan.register(NonRecordingSpan)


def _links(span: Span, links: Optional[Sequence[Any]]) -> None:
    for link in links or ():
        span.add_link(link.context, link.attributes)


class Tracer(_trace.Tracer):
    """An ``opentelemetry.trace.Tracer`` for one instrumentation scope."""

    def __init__(self, core: _core.Tracer, name: str, version: Optional[str] = None,
                 schema_url: Optional[str] = None, attributes: Optional[Mapping[str, Any]] = None) -> None:
        self._core = core.scoped(name, version, schema_url, dict(attributes) if attributes else None)
        self._start = self._core._start
        self.name, self.version, self.schema_url = name, version, schema_url
        self.attributes = dict(attributes) if attributes else None

    def start_span(self, name: str, context: Optional[_Context] = None,  # type: ignore[override]
                   kind: _trace.SpanKind = _trace.SpanKind.INTERNAL,
                   attributes: Optional[Mapping[str, Any]] = None, links: Optional[Sequence[Any]] = None,
                   start_time: Optional[int] = None, record_exception: bool = True,
                   set_status_on_exception: bool = True) -> Span:
        flags = _NO_ATTACH | (0 if record_exception else _NO_RECORD) | (0 if set_status_on_exception else _NO_STATUS)
        span = self._start(name, context, 1 if kind is _INTERNAL else _KIND.get(kind, 1), attributes, start_time,
                           flags)
        if links:
            _links(span, links)
        return span

    def start_as_current_span(self, name: str, context: Optional[_Context] = None,  # type: ignore[override]
                              kind: _trace.SpanKind = _trace.SpanKind.INTERNAL,
                              attributes: Optional[Mapping[str, Any]] = None,
                              links: Optional[Sequence[Any]] = None, start_time: Optional[int] = None,
                              record_exception: bool = True, set_status_on_exception: bool = True,
                              end_on_exit: bool = True) -> Iterator[Span]:
        # The span is its own context manager: current inside `with`, ended on exit;
        # called on a function (a decorator) it is dropped and each call gets a span.
        flags = ((0 if record_exception else _NO_RECORD) | (0 if set_status_on_exception else _NO_STATUS)
                 | (0 if end_on_exit else _NO_END))
        span = self._start(name, context, 1 if kind is _INTERNAL else _KIND.get(kind, 1), attributes, start_time,
                           flags, (self, name, context, kind, attributes, links, start_time, record_exception,
                                   set_status_on_exception, end_on_exit))  # kept in case it decorates
        if links:
            _links(span, links)
        return span  # type: ignore[return-value]


_KEYS = ("traceparent", "tracestate", "baggage", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled",
         "x-b3-flags")


class Propagator(_textmap.TextMapPropagator):
    """OpenTelemetry's ``TextMapPropagator`` on ituna's core: the propagators of
    ``OTEL_PROPAGATORS`` (tracecontext, baggage, b3, b3multi; the ituna tracer's
    ``[tracer] propagators``), formatted and parsed in C. :class:`TracerProvider`
    makes it the global propagator when the global one is OpenTelemetry's default
    set, so ``opentelemetry.propagate.inject/extract`` use it.

    ``inject(carrier, context=None, setter=default_setter)`` writes the context's
    span and baggage; ``extract(carrier, context=None, getter=default_getter)``
    returns ``context`` (default: an empty one) with the carrier's remote span and
    its baggage merged over the context's. Other setters and getters are called per
    header, as OpenTelemetry's propagators do. Both are C functions taking no
    ``self``: a builtin function stored on a class is not bound to the instance."""

    inject = _core.otel_inject  # type: ignore[assignment]
    extract = _core.otel_extract  # type: ignore[assignment]

    @property
    def fields(self) -> set:
        return set(_KEYS)


def _default_textmap() -> bool:
    """True when the global propagator is OpenTelemetry's own set from OTEL_PROPAGATORS."""
    g = _propagate.get_global_textmap()
    inner = getattr(g, "_propagators", None)
    return inner is not None and all(type(p).__name__ in ("TraceContextTextMapPropagator", "W3CBaggagePropagator",
                                                          "B3SingleFormat", "B3MultiFormat", "B3Format")
                                     for p in inner)


class TracerProvider(_trace.TracerProvider):
    """``opentelemetry.trace.TracerProvider`` on ituna's core.

    ``tracer``: an :class:`ituna.Tracer`; by default the one :func:`ituna.init` set up,
    else a new one from the ``OTEL_*`` environment (``init_kwargs`` are passed to
    :func:`ituna.init`). Resource, sampler, limits and exporter are that tracer's.
    ``propagator``: make :class:`Propagator` the global propagator when the global
    one is OpenTelemetry's default set."""

    def __init__(self, tracer: Optional[_core.Tracer] = None, *, propagator: bool = True,
                 **init_kwargs: Any) -> None:
        self._tracer = tracer
        self._init_kwargs = init_kwargs
        if propagator and _default_textmap():  # a propagator the user set is left alone
            _propagate.set_global_textmap(Propagator())

    def _core_tracer(self) -> _core.Tracer:
        if self._tracer is None:
            import ituna
            self._tracer = ituna.get_tracer() or ituna.init(**self._init_kwargs)
        return self._tracer

    def get_tracer(self, instrumenting_module_name: str, instrumenting_library_version: Optional[str] = None,
                   schema_url: Optional[str] = None,
                   attributes: Optional[Mapping[str, Any]] = None) -> Tracer:
        if not instrumenting_module_name:
            _log.warning("get_tracer() called with an empty instrumentation scope name")
        return Tracer(self._core_tracer(), instrumenting_module_name or "", instrumenting_library_version,
                      schema_url, attributes)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._core_tracer().flush(timeout=timeout_millis / 1000.0)

    def shutdown(self) -> None:
        self._core_tracer().shutdown()


def _bridge() -> None:
    """Keep ituna's current span in OpenTelemetry's context (contextvars runtime)."""
    runtime = getattr(_context_api, "_RUNTIME_CONTEXT", None)
    if not isinstance(runtime, _CVRuntime):
        _log.warning("OpenTelemetry runtime context %s is not the contextvars one: ituna and OpenTelemetry "
                     "keep separate current spans", type(runtime).__name__)
        return
    _core.otel_bridge(runtime._current_context, _propagation._SPAN_KEY, _Context, _span_context, Span,
                      NonRecordingSpan, _baggage._BAGGAGE_KEY, _textmap.default_getter, _textmap.default_setter)


_bridge()
