"""What the C extension (ituna._core) takes from Python when it loads: the JSON
functions of payloads and the traceback formatter of recorded exceptions."""
import json as _json
import traceback as _traceback

# compact payloads; one encoder, as json.dumps(v, **kw) would build one per call
encode = _json.JSONEncoder(separators=(",", ":")).encode
loads = _json.loads
format_exception = _traceback.format_exception
try:  # ituna's dependency, ~3-4x faster; json.loads alone without it
    from orjson import loads as fast_loads
except ImportError:
    fast_loads = None
