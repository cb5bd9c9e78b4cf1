"""The @tracer.traced decorator: runs a function or a coroutine function inside
``with tracer.span(name)``. For a generator function the span covers only the call
that creates the generator (a span kept current across yields would leak into the
caller's context)."""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Dict, Optional, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def traced(tracer: Any, name: Optional[str] = None, attributes: Optional[Dict[str, Any]] = None,
           kind: Any = None) -> Callable[[F], F]:
    """Return a decorator that wraps each call of the function in a span named
    ``name`` (default: the function's ``__qualname__``)."""
    if callable(name) and not isinstance(name, str):
        # used bare: @tracer.traced
        return traced(tracer)(name)

    def decorate(fn: F) -> F:
        span_name = name or fn.__qualname__

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with tracer.span(span_name, attributes=attributes, kind=kind):
                    return await fn(*args, **kwargs)
            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with tracer.span(span_name, attributes=attributes, kind=kind):
                return fn(*args, **kwargs)
        return wrapper  # type: ignore[return-value]

    return decorate
