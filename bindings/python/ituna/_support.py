"""What the C extension (ituna._core) takes from Python when it loads: the JSON
functions of payloads, the traceback formatter of recorded exceptions, and the
delivery reports and errors of the producer."""
import json as _json
import traceback as _traceback
from typing import Any, NamedTuple, Optional

from ._errors import DeliveryError

# compact payloads; one encoder, as json.dumps(v, **kw) would build one per call
encode = _json.JSONEncoder(separators=(",", ":")).encode
loads = _json.loads
format_exception = _traceback.format_exception
try:  # ituna's dependency, ~3-4x faster; json.loads alone without it
    from orjson import loads as fast_loads
except ImportError:
    fast_loads = None


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
