"""The exception hierarchy of ituna, raised by the C extension (ituna._core imports
it at load) and by the package; ``ituna`` re-exports every class. Instances raised
for a core error carry ``.code`` (the core's ituna_err number) and ``.name``."""
import builtins as _builtins


class Error(Exception):
    """Base of every ituna exception; .code is the core's ituna_err number and .name its enum name."""


class ConfigError(Error, ValueError):
    """Unknown configuration key, bad value or unparsable input."""


class KafkaError(Error):
    """An error reported by librdkafka or the broker."""


class TimeoutError(Error, _builtins.TimeoutError):
    """A wait ran out of time (also a builtin TimeoutError)."""


class DeliveryError(KafkaError):
    """Published messages were not delivered; .reports lists their DeliveryReports."""


class MalformedPayload(Error):
    """Raise inside `with message:` to send the message to the dead-letter topic
    (<topic>.dlq) with str(exc) as the reason; the exception is then swallowed."""


class StateError(Error):
    """The object is closed or in the wrong state for the call."""


for _cls in (Error, ConfigError, KafkaError, TimeoutError, DeliveryError, MalformedPayload, StateError):
    _cls.__module__ = "ituna"  # where users name them


_CLASS_OF = {"ITUNA_ERR_CONFIG": ConfigError, "ITUNA_ERR_PARSE": ConfigError, "ITUNA_ERR_TIMEOUT": TimeoutError,
             "ITUNA_ERR_KAFKA": KafkaError, "ITUNA_ERR_STATE": StateError, "ITUNA_ERR_MALFORMED": MalformedPayload}


def from_core(code: int, name: str, message: str) -> Error:
    """The exception the C extension raises for the core's error code (its enum name):
    .code and .name let callers branch without parsing the message."""
    error = _CLASS_OF.get(name, Error)(message)
    error.code, error.name = code, name
    return error
