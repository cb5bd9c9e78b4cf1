"""ituna: tracing for Kafka pipelines, on the ituna-core C library.

Spans are exported over OTLP (or to an OTLP JSON-lines file), the W3C trace
context travels in Kafka headers, and the current span follows ``contextvars``,
so threads and asyncio tasks each see their own.

Quick start::

    import ituna
    tracer = ituna.init(service_name="kitchen-service", config="ituna-config.ini")
    with tracer.span("cook", attributes={"dish": "tuna"}) as span:
        span.set_attribute("minutes", 12)

All tracing and Kafka logic lives in the C core; this package holds only type
conversion (in the ``ituna._core`` extension) and Python idioms.
"""
from __future__ import annotations

import atexit as _atexit
import contextlib as _contextlib
import enum as _enum
import os as _os
from typing import Any, Iterator, Mapping, Optional, Union

from . import _core
from ._core import (  # noqa: F401  (re-exported names)
    ConfigError,
    Consumer,
    DeliveryError,
    DeliveryReport,
    Error,
    KafkaError,
    MalformedPayload,
    Message,
    Producer,
    Span,
    SpanContext,
    StateError,
    TimeoutError,
    Tracer,
    extract,
    extract_baggage,
    inject,
    traceparent_parse,
)
from ._broker import EmbeddedBroker, start_embedded_broker  # noqa: F401  (re-exported names)

__version__ = "0.1.0"
CORE_VERSION: str = _core.CORE_VERSION
RDKAFKA_VERSION: str = _core.RDKAFKA_VERSION  # the librdkafka in use

__all__ = [
    "init", "load_config", "shutdown", "get_tracer", "span", "current_span", "current_context", "use_context",
    "inject", "extract", "extract_baggage", "traceparent_parse",
    "Tracer", "Span", "SpanContext", "SpanKind", "StatusCode",
    "Producer", "Consumer", "Message", "DeliveryReport", "start_embedded_broker", "EmbeddedBroker",
    "Error", "ConfigError", "KafkaError", "TimeoutError", "DeliveryError", "MalformedPayload", "StateError",
]


class SpanKind(_enum.IntEnum):
    """Span kinds, with the OTLP proto's numbers."""

    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


class StatusCode(_enum.IntEnum):
    """Span status codes, with the OTLP proto's numbers."""

    UNSET = 0
    OK = 1
    ERROR = 2


def _setting_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, _os.PathLike):
        return str(_os.fspath(value))
    if isinstance(value, Mapping):  # e.g. resource_attributes={"team": "kitchen"}
        return ",".join("%s=%s" % (k, v) for k, v in value.items())
    raise TypeError("setting value must be str, int, float, bool, a path or a dict, not %s"
                    % type(value).__name__)


def _pairs(settings: Optional[Mapping[str, Any]]) -> list:
    return [(str(key), _setting_value(value)) for key, value in (settings or {}).items()]


def init(service_name: Optional[str] = None, config: Union[str, "_os.PathLike[str]", None] = None, *,
         env: bool = True, settings: Optional[Mapping[str, Any]] = None,
         schema: Union[str, "_os.PathLike[str]", None] = None, **overrides: Any) -> Tracer:
    """Set up the process's tracer and return it.

    ``schema`` (else ``$ITUNA_CONFIG_SCHEMA``) names an application's schema file: its
    sections become known, checked as strictly as the core's, and their defaults are
    answered by :meth:`Tracer.config_value` (see :func:`load_config`).
    Settings are applied in this order, later ones winning: the INI file ``config``,
    the ``OTEL_*`` environment variables (``env=True``), ``settings`` (a dict with
    ``"section.key"`` names, e.g. ``{"exporter.endpoint": "http://127.0.0.1:4318"}``),
    then ``service_name`` and the keyword ``overrides``. A keyword is a bare key of the
    core (``sampler="always_on"``, ``file="spans.jsonl"``; ``_`` is read as ``-``) or
    ``section__key`` for ``section.key``. Booleans become ``true``/``false``.
    Unknown keys and bad values raise :class:`ituna.ConfigError` naming them.

    The tracer becomes the default for :class:`Producer`/:class:`Consumer` and for
    :func:`span`; calling ``init()`` again replaces the default (objects made with the
    previous tracer keep it). At interpreter exit, open producers and consumers are
    closed and the tracer is flushed and shut down (see :func:`shutdown`).
    """
    pairs = _pairs(settings)
    if service_name is not None:
        if not isinstance(service_name, str):
            raise TypeError("service_name must be str, not %s" % type(service_name).__name__)
        pairs.append(("service_name", service_name))
    for key, value in overrides.items():
        if value is None:
            continue
        pairs.append((key.replace("__", "."), _setting_value(value)))
    tracer = _core.Tracer(config=config, env=env, settings=pairs, schema=schema)
    previous = _core.get_default_tracer()
    _core.set_default_tracer(tracer)
    if previous is not None:
        previous.flush(timeout=5.0)
    return tracer


def load_config(config: Union[str, "_os.PathLike[str]", None] = None, *,
                schema: Union[str, "_os.PathLike[str]", None] = None, env: bool = True,
                settings: Optional[Mapping[str, Any]] = None) -> dict:
    """Load and check a configuration as :func:`init` would, without a tracer:
    ``{section: {key: value}}`` with every known key (the core's, and the sections of
    the application schema ``schema``, else ``$ITUNA_CONFIG_SCHEMA``) at its value or
    default. An unknown section or key, or a bad value, raises :class:`ConfigError`
    naming ``file:line: [section] key``."""
    values: dict = {}
    for section, key, value in _core.config_entries(config=config, schema=schema, env=env,
                                                    settings=_pairs(settings)):
        keys = values.setdefault(section, {})
        if value is not None:
            keys[key] = value
    return values


def get_tracer() -> Optional[Tracer]:
    """The tracer set up by :func:`init`, or None."""
    return _core.get_default_tracer()


def _require_tracer() -> Tracer:
    t = _core.get_default_tracer()
    if t is None:
        raise StateError("no tracer: call ituna.init() first")
    return t


def span(name: str, attributes: Optional[Mapping[str, Any]] = None, kind: Any = None,
         parent: Union[Span, SpanContext, None] = None, **kwargs: Any) -> Span:
    """Start a span on the default tracer (see :meth:`Tracer.span`)."""
    return _require_tracer().span(name, attributes, kind, parent, **kwargs)


def _close_all(timeout: float) -> list:
    """Close every open Producer and Consumer; returns the exceptions they raised
    (never raises them, so one failure does not keep the others open)."""
    errors = []
    for client in list(_core.live_clients):
        try:
            client.close(timeout) if isinstance(client, Producer) else client.close()
        except BaseException as e:  # noqa: B036  (each one is reported by the caller)
            errors.append(e)
    return errors


def shutdown(timeout: Optional[float] = 5.0) -> bool:
    """Close open producers and consumers, flush the default tracer (waiting at most
    ``timeout`` seconds) and stop it. Returns False if spans were lost (dropped,
    export failed or rejected by the collector: ``tracer.stats()`` has the counts)
    or still queued when the timeout passed. Safe to call twice; also run at
    interpreter exit."""
    errors = _close_all(timeout if timeout is not None else 30.0)
    t = _core.get_default_tracer()
    ok = True if t is None else t.shutdown(timeout=timeout)
    if errors:
        raise errors[0]  # e.g. DeliveryError: undelivered messages are never silent
    return ok


def current_span() -> Optional[Span]:
    """The current span of this thread/task, or None (a remote context set with
    :func:`use_context`, or another OpenTelemetry provider's span, is not an ituna
    span: see :func:`current_context`)."""
    cur = _core.current()
    return cur if isinstance(cur, Span) else None


def current_context() -> Optional[SpanContext]:
    """The current span context of this thread/task, or None. With OpenTelemetry
    in the process this is also the context of another provider's current span."""
    cur = _core.current()
    if cur is None:
        return None
    return cur.context if isinstance(cur, Span) else cur


@_contextlib.contextmanager
def use_context(context: Union[Span, SpanContext, None]) -> Iterator[None]:
    """Make ``context`` (e.g. from :func:`extract`) current inside the ``with``, so new
    spans and published messages continue it. ``None`` clears the current span."""
    if context is not None and not isinstance(context, (Span, SpanContext)):
        raise TypeError("context must be a Span, a SpanContext or None, not %s" % type(context).__name__)
    token = _core.attach(context)
    try:
        yield
    finally:
        _core.detach(token)


class _OtelWatch:
    """Turns the OpenTelemetry context bridge on once ``opentelemetry.trace`` is
    imported (imported after ituna); a process without OpenTelemetry keeps ituna's
    own ContextVar and its speed."""

    @classmethod
    def find_spec(cls, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "opentelemetry.trace":
            return None
        import importlib.util
        import sys
        sys.meta_path.remove(cls)  # type: ignore[arg-type]
        spec = importlib.util.find_spec(name)
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module: Any) -> None:
            run(module)
            _otel_bridge()

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _otel_bridge() -> None:
    try:
        from . import otel  # noqa: F401  (turns the bridge on at import)
    except Exception as exc:  # an OpenTelemetry API too old or too new: say so, keep tracing
        import sys
        print("ituna: OpenTelemetry context bridge off: %s: %s" % (type(exc).__name__, exc), file=sys.stderr)


def _watch_otel() -> None:
    import sys
    if "opentelemetry.trace" in sys.modules:
        _otel_bridge()
    elif _OtelWatch not in sys.meta_path:
        sys.meta_path.insert(0, _OtelWatch)  # type: ignore[arg-type]


def _at_exit() -> None:
    try:
        shutdown(timeout=5.0)
    except Exception as exc:  # exit path: report, never hide
        import sys
        print("ituna: at exit: %s: %s" % (type(exc).__name__, exc), file=sys.stderr)


# Registered at import, so clients made with an explicit tracer= are closed too
# before the interpreter (and the GIL their delivery threads may need) goes away.
_atexit.register(_at_exit)
_watch_otel()
