"""Streaming input for ituna-report: OTLP JSON requests from files, directories and
Jaeger's /api/v3 search, flattened into spans one at a time.

Nothing here holds more than one request (one line of a .jsonl file) at a time, so
memory does not grow with the size of the input. Ids are normalised to lowercase hex;
Jaeger may answer base64 ids, which are detected and converted.
"""

import base64
import binascii
import datetime as _dt
import heapq
import json

try:  # orjson parses OTLP JSON lines ~3x faster than the json module, the fallback
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is a declared dependency
    _loads = json.loads
import os
import re
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["ReportInputError", "iter_requests", "iter_spans", "spans_of_request",
           "fetch_jaeger", "parse_since", "norm_id", "attr_value", "attrs_to_dict"]

# A pretty-printed (multi-line) JSON object larger than this is refused rather than
# buffered without limit.
MAX_OBJECT_BYTES = 512 * 1024 * 1024

KIND_NAMES = {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
              "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}
STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_HEX = re.compile(r"^[0-9a-fA-F]*$")


class ReportInputError(Exception):
    """Input that cannot be read: the message names the file and line."""


# ---- ids and attribute values ------------------------------------------------

def norm_id(value, nbytes):
    """Lowercase hex id from hex or base64 (std or url-safe); '' for empty/None.
    An id that is neither is returned unchanged so it still groups consistently."""
    if not value:
        return ""
    if len(value) == 2 * nbytes and _HEX.match(value):
        return value.lower()
    try:
        pad = "=" * (-len(value) % 4)
        raw = base64.b64decode(value + pad, altchars=b"-_" if ("-" in value or "_" in value) else None,
                               validate=True)
    except (binascii.Error, ValueError):
        return value
    if len(raw) == nbytes:
        return raw.hex()
    return value



def normalise_span_ids(sp):
    """A span's and its links' ids as lowercase hex, whatever encoding the file used."""
    sp["traceId"] = norm_id(sp.get("traceId"), 16)
    sp["spanId"] = norm_id(sp.get("spanId"), 8)
    sp["parentSpanId"] = norm_id(sp.get("parentSpanId"), 8)
    for ln in sp.get("links") or ():
        ln["traceId"] = norm_id(ln.get("traceId"), 16)
        ln["spanId"] = norm_id(ln.get("spanId"), 8)


def attr_value(v):
    """Python value of an OTLP AnyValue dict."""
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            return v["intValue"]
    if "doubleValue" in v:
        try:
            return float(v["doubleValue"])
        except (TypeError, ValueError):
            return v["doubleValue"]
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [attr_value(x) for x in (v["arrayValue"] or {}).get("values", []) or []]
    if "kvlistValue" in v:
        return attrs_to_dict((v["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def attrs_to_dict(attrs):
    out = {}
    for kv in attrs or ():
        try:
            out[kv["key"]] = attr_value(kv.get("value"))
        except (KeyError, TypeError, AttributeError):
            continue
    return out


def find_attr(attrs, key):
    """One attribute's value from an OTLP attribute list, without building a dict."""
    for kv in attrs or ():
        if kv.get("key") == key:
            return attr_value(kv.get("value"))
    return None


# ---- reading JSON objects from a file, one at a time -------------------------

def _iter_json_objects(path):
    """Yield (line_no, obj) for every top-level JSON object in path: one per line
    (JSON lines) or, for pretty-printed files, objects spanning several lines."""
    dec = json.JSONDecoder()
    loads = _loads
    try:
        f = open(path, "r", encoding="utf-8")
    except OSError as e:
        raise ReportInputError("%s: cannot open: %s" % (path, e.strerror or e)) from None
    with f:
        pending = ""
        pending_line = 0
        lineno = 0
        try:
            for line in f:
                lineno += 1
                if not pending:
                    if not line.strip():
                        continue
                    try:
                        obj = loads(line)
                    except ValueError as e:
                        t = line.strip()
                        if len(t) > 1 and t[0] == "{" and t[-1] == "}" and "\n" not in t:
                            # A whole one-line object that does not parse: bad input, not a
                            # pretty-printed object's first line.
                            raise ReportInputError("%s:%d: invalid JSON: %s" % (path, lineno, e)) from None
                        pending, pending_line = line, lineno
                    else:
                        yield lineno, obj
                        continue
                else:
                    pending += line
                    if len(pending) > MAX_OBJECT_BYTES:
                        raise ReportInputError("%s:%d: JSON object larger than %d bytes"
                                               % (path, pending_line, MAX_OBJECT_BYTES))
                # Multi-line objects (or several objects on one line): decode what is complete.
                while pending:
                    s = pending.lstrip()
                    if not s:
                        pending = ""
                        break
                    try:
                        obj, end = dec.raw_decode(s)
                    except ValueError:
                        break  # incomplete so far: read more lines (EOF reports it)
                    yield pending_line, obj
                    pending = s[end:]
                    if not pending.strip():
                        pending = ""
        except UnicodeDecodeError as e:
            raise ReportInputError("%s:%d: not UTF-8 text: %s" % (path, lineno + 1, e)) from None
        if pending.strip():
            try:
                dec.raw_decode(pending.lstrip())
            except ValueError as e:
                raise ReportInputError("%s:%d: invalid or truncated JSON: %s" % (path, pending_line, e)) from None


def _requests_of(obj, where):
    """ExportTraceServiceRequest dicts inside one decoded object: a request itself, a
    Jaeger /api/v3 answer {"result": {...}}, or a list of either."""
    if isinstance(obj, list):
        for x in obj:
            yield from _requests_of(x, where)
        return
    if not isinstance(obj, dict):
        raise ReportInputError("%s: expected a JSON object with resourceSpans, got %s"
                               % (where, type(obj).__name__))
    if "resourceSpans" in obj:
        yield obj
    elif "result" in obj and isinstance(obj["result"], dict):
        yield from _requests_of(obj["result"], where)
    elif "error" in obj:
        err = obj["error"]
        msg = err.get("message") if isinstance(err, dict) else err
        raise ReportInputError("%s: the server answered an error: %s" % (where, msg))
    elif not obj:
        return
    else:
        raise ReportInputError("%s: JSON object has no resourceSpans (keys: %s)"
                               % (where, ", ".join(sorted(obj)[:5])))


def _file_requests(path):
    for lineno, obj in _iter_json_objects(path):
        yield from _requests_of(obj, "%s:%d" % (path, lineno))


def _request_time(req):
    """Sort key used to interleave per-service files: the first span's end time."""
    for rs in req.get("resourceSpans") or ():
        for ss in rs.get("scopeSpans") or ():
            for sp in ss.get("spans") or ():
                try:
                    return int(sp.get("endTimeUnixNano") or 0)
                except (TypeError, ValueError):
                    return 0
    return 0


def expand_paths(paths):
    files = []
    for p in paths:
        if os.path.isdir(p):
            names = sorted(n for n in os.listdir(p) if n.endswith((".jsonl", ".json")))
            if not names:
                raise ReportInputError("%s: directory holds no *.jsonl or *.json file" % p)
            files.extend(os.path.join(p, n) for n in names)
        elif os.path.exists(p):
            files.append(p)
        else:
            raise ReportInputError("%s: no such file or directory" % p)
    return files


def iter_requests(paths):
    """Yield OTLP ExportTraceServiceRequest dicts from files and directories. Several
    files (one per service, as the restaurant writes them) are interleaved by time so
    that one order's spans arrive close together and its trace can be finalised early."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = expand_paths([os.fspath(p) for p in paths])
    if len(files) == 1:
        yield from _file_requests(files[0])
        return
    yield from heapq.merge(*(_file_requests(f) for f in files), key=_request_time)


def spans_of_request(req, normalise_ids=False):
    """Yield (service, span_dict) for each span of one request. With normalise_ids the
    span's id fields are rewritten to lowercase hex in place."""
    for rs in req.get("resourceSpans") or ():
        service = "unknown_service"
        res = rs.get("resource") or {}
        for kv in res.get("attributes") or ():
            if kv.get("key") == "service.name":
                service = str(attr_value(kv.get("value")))
                break
        for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or ():
            for sp in ss.get("spans") or ():
                if normalise_ids:
                    normalise_span_ids(sp)
                yield service, sp


def iter_spans(requests, normalise_ids=False):
    for req in requests:
        yield from spans_of_request(req, normalise_ids)


# ---- Jaeger /api/v3 ----------------------------------------------------------

def parse_since(text):
    """'10m', '2h', '30s', '1d' or plain seconds -> seconds (float)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", str(text))
    if not m:
        raise ReportInputError("--since %r: expected a duration like 30s, 10m, 2h, 1d" % text)
    n = float(m.group(1))
    return n * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _rfc3339(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def jaeger_url(base, service, since_s, now=None, limit=1000):
    now = now or _dt.datetime.now(_dt.timezone.utc)
    q = urllib.parse.urlencode({
        "query.service_name": service,
        "query.start_time_min": _rfc3339(now - _dt.timedelta(seconds=since_s)),
        "query.start_time_max": _rfc3339(now),
        "query.num_traces": str(limit),
    })
    return base.rstrip("/") + "/api/v3/traces?" + q


def parse_jaeger_body(text, where="jaeger"):
    """Requests from a /api/v3 answer: one JSON object, or several concatenated (the
    gRPC gateway streams one object per chunk), each {"result": {"resourceSpans": [...]}}."""
    dec = json.JSONDecoder()
    pos, n = 0, len(text)
    while True:
        while pos < n and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= n:
            return
        try:
            obj, pos = dec.raw_decode(text, pos)
        except ValueError as e:
            raise ReportInputError("%s: invalid JSON in the answer: %s" % (where, e)) from None
        yield from _requests_of(obj, where)


def fetch_jaeger(base, service, since="10m", limit=1000, timeout=30.0):
    """Requests for one service's traces of the last `since` from Jaeger's /api/v3."""
    url = jaeger_url(base, service, parse_since(since), limit=limit)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")[:300]
        # Jaeger answers 404 when no trace matches: v1 "trace not found", v2's /api/v3
        # {"error":{"httpCode":404,"message":"No traces found"}}
        if e.code == 404 and re.search(r"not found|no traces found", detail, re.I):
            return
        raise ReportInputError("%s: HTTP %d: %s" % (url, e.code, detail)) from None
    except (urllib.error.URLError, OSError) as e:
        raise ReportInputError("%s: cannot reach Jaeger: %s" % (url, getattr(e, "reason", e))) from None
    yield from parse_jaeger_body(body, url)
