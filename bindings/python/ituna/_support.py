"""What the C extension (ituna._core) takes from Python: the JSON functions of
payloads, what a span records of an exception, the @tracer.traced decorator, the
delivery reports and errors of the producer, and the checked arguments of Tracer(),
Producer() and Consumer() (cold code, once a client, kept out of the C)."""
import json as _json
import logging as _logging
import os as _os
import traceback as _traceback
from typing import Any, NamedTuple, Optional

from ._decorators import traced  # noqa: F401  (Tracer.traced, the C extension's)
from ._errors import DeliveryError, MalformedPayload, from_core  # noqa: F401  (the C extension's)

# compact payloads; one encoder, as json.dumps(v, **kw) would build one per call
encode = _json.JSONEncoder(separators=(",", ":")).encode
try:  # ituna's dependency, ~3-4x faster (dumps ~10x); json alone without it
    from orjson import dumps as fast_dumps
    from orjson import loads as fast_loads
except ImportError:
    fast_loads = fast_dumps = None


def loads(payload: Any) -> Any:
    """json.loads for Message.json(): a payload that is not JSON is malformed, and
    MalformedPayload raised inside `with message:` sends the message to the DLQ."""
    try:
        return _json.loads(payload)
    except ValueError as error:
        raise MalformedPayload("payload is not JSON: %s" % error) from error


def exception_fields(exc: BaseException) -> tuple:
    """What a span records of exc: (type name, message, stack trace, status description);
    the type name is module-qualified but for builtins."""
    cls = type(exc)
    module, message = cls.__module__, str(exc)
    name = cls.__qualname__
    if isinstance(module, str) and module != "builtins":
        name = module + "." + name
    stack = "".join(_traceback.format_exception(exc))
    return name, message, stack, "%s: %s" % (cls.__qualname__, message)


class DeliveryReport(NamedTuple):
    """Outcome of one published message, passed to Producer(on_delivery=...) and listed in
    DeliveryError.reports."""

    topic: str  #: topic the message was published to
    partition: int  #: partition (-1 if unknown)
    offset: int  #: offset in the partition, -1 on failure
    error: Optional[DeliveryError]  #: None on success, else an ituna.DeliveryError
    context: Any  #: SpanContext of the PRODUCER span


DeliveryReport.__module__ = "ituna"


def _delivery_error(message: str, code: int, name: str, reports: Optional[list]) -> DeliveryError:
    error = DeliveryError(message)
    error.code, error.name, error.reports = code, name, reports
    return error


def delivery_report(topic: str, partition: int, offset: int, code: int, name: str, error_name: str,
                    described: str, context: Any) -> DeliveryReport:
    """A report as the producer's C code has it (code 0: delivered)."""
    error = None
    if code:
        error = _delivery_error("delivery failed: " + described, code, name, None)
        error.error_name = error_name
    return DeliveryReport(topic, partition, offset, error, context)


def delivery_failed(count: int, first: str, code: int, name: str, reports: list) -> DeliveryError:
    """What flush()/close() raise for the failed deliveries they take."""
    return _delivery_error("%d message(s) not delivered; first: %s" % (count, first), code, name, reports)


def _opt_str(value: Any, what: str) -> Optional[str]:
    if value is None or isinstance(value, str):
        return value
    raise TypeError("%s must be str or None, not %s" % (what, type(value).__name__))


def _property(key: Any, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TypeError("librdkafka property %r: value must be str, int, float or bool, not %s"
                    % (key, type(value).__name__))


def _properties(config: Any, conf: dict) -> tuple:
    """librdkafka properties as (name, value, name, value, ...): config={...} first (names
    that are not identifiers), the keyword ones after, with _ read as . (linger_ms)."""
    if config is not None and not isinstance(config, dict):
        raise TypeError("config must be a dict of librdkafka properties, not %s" % type(config).__name__)
    flat: list = []
    for key, value in (config or {}).items():
        if not isinstance(key, str):
            raise TypeError("librdkafka property names must be str, not %s" % type(key).__name__)
        flat += (key, _property(key, value))
    for key, value in conf.items():
        flat += (key.replace("_", "."), _property(key, value))
    return tuple(flat)


def _path(value: Any) -> Optional[bytes]:
    if value is None:
        return None
    path = _os.fsencode(value)
    if b"\0" in path:
        raise ValueError("embedded null byte")
    return path


# Named as the classes whose arguments they check, so that Python's own errors
# (a missing or extra argument) name Tracer(), Producer() and Consumer().
def Tracer(config: Any = None, env: Any = True, settings: Any = (), schema: Any = None) -> tuple:
    """Tracer()'s (and config_entries()'s) arguments as the core loads them: (schema,
    config: file system bytes or None, env, the settings flattened: key, value, ...)."""
    if settings is None:
        settings = ()
    elif not isinstance(settings, (list, tuple)):
        try:
            settings = tuple(settings)
        except TypeError:
            raise TypeError("settings must be a sequence of (key, value) pairs") from None
    flat: list = []
    for pair in settings:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)
                and isinstance(pair[1], str)):
            raise TypeError("settings must be (str, str) pairs")
        flat += pair
    return _path(schema), _path(config), bool(env), tuple(flat)


def _tracer(tracer: Any) -> Any:
    """The tracer a Producer or Consumer uses: tracer=, else ituna.init()'s."""
    from . import _core
    if tracer is None:
        tracer = _core.get_default_tracer()
        if tracer is None:
            raise _core.StateError("no tracer: call ituna.init() first or pass tracer=")
    elif not isinstance(tracer, _core.Tracer):
        raise TypeError("tracer must be an ituna.Tracer, not %s" % type(tracer).__name__)
    return tracer


def Producer(bootstrap: Optional[str] = None, *, tracer: Any = None, config: Any = None,
             on_delivery: Any = None, payload_carrier: Any = None, **conf: Any) -> tuple:
    """Producer()'s arguments as its C constructor takes them: (bootstrap, tracer,
    properties, on_delivery, payload_carrier: -1 from the configuration, else 0/1)."""
    if on_delivery is not None and not callable(on_delivery):
        raise TypeError("on_delivery must be callable")
    carrier = -1 if payload_carrier is None else int(bool(payload_carrier))
    bootstrap, properties = _opt_str(bootstrap, "bootstrap"), _properties(config, conf)
    return bootstrap, _tracer(tracer), properties, on_delivery, carrier


def Consumer(topics: Any, group: str, bootstrap: Optional[str] = None, *, tracer: Any = None,
             config: Any = None, context_mode: Optional[str] = None, dlq_suffix: Optional[str] = None,
             **conf: Any) -> tuple:
    """Consumer()'s arguments as its C constructor takes them: (topics, group, bootstrap,
    tracer, properties, context_mode, dlq_suffix); the core checks context_mode."""
    topics = (topics,) if isinstance(topics, str) else tuple(topics)
    if not topics:
        raise ValueError("Consumer needs at least one topic")
    for topic in topics:
        if not isinstance(topic, str):
            raise TypeError("topics must be str, not %s" % type(topic).__name__)
    if not isinstance(group, str):
        raise TypeError("group must be str, not %s" % type(group).__name__)
    bootstrap, properties = _opt_str(bootstrap, "bootstrap"), _properties(config, conf)
    return (topics, group, bootstrap, _tracer(tracer), properties, _opt_str(context_mode, "context_mode"),
            _opt_str(dlq_suffix, "dlq_suffix"))


def otel_context(sc: Any) -> Optional[tuple]:
    """Another OpenTelemetry provider's SpanContext (a tuple: trace_id, span_id,
    is_remote, trace_flags, trace_state, ...) as the C extension makes a parent of it:
    (trace id hex, span id hex, flags, is_remote, tracestate header or None); None when
    it is not one (the C refuses invalid ids)."""
    if not isinstance(sc, tuple) or len(sc) < 5 or not isinstance(sc[0], int) or not isinstance(sc[1], int):
        return None
    state = sc[4]
    return ("%032x" % (sc[0] & (1 << 128) - 1), "%016x" % (sc[1] & (1 << 64) - 1), int(sc[3]) & 0xFF,
            bool(sc[2]), state.to_header() if state else None)


def repr_of(obj: Any) -> str:
    """repr() of the C extension's SpanContext, Span and Message."""
    from . import _core
    if isinstance(obj, _core.SpanContext):
        return "SpanContext(trace_id=%r, span_id=%r, trace_flags=%d, is_remote=%s)" % (
            obj.trace_id, obj.span_id, obj.trace_flags, obj.is_remote)
    if isinstance(obj, _core.Span):
        return "<ituna.Span %r%s>" % (obj.context, " ended" if obj.ended else "")
    return "<ituna.Message %s [%d] @%d%s>" % (obj.topic, obj.partition, obj.offset,
                                             " " + obj.finished if obj.finished else "")


def finish_failed_note(exc: BaseException, error: Any) -> None:
    """A handler's exception propagates out of `with message:`; when finishing the message
    failed too (a DLQ write after the last redelivery: the core logged it and set it on
    the span), that goes with it as a note, once, not as "Exception ignored" printed on
    every attempt."""
    if hasattr(exc, "add_note"):
        exc.add_note("ituna: finishing the message failed: %s" % (error,))


def attribute_dropped(error: BaseException) -> None:
    """An invalid attribute given through ituna.otel is left out with a warning, as
    opentelemetry-sdk does (the OpenTelemetry API must not raise)."""
    _logging.getLogger("ituna.otel").warning("attribute dropped: %s", error)
