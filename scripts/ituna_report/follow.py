"""ituna-report --follow: the ranking refreshed live while a pipeline runs, from trace
files that grow (read from where the last refresh stopped, whole lines only) or from
Jaeger's query API (asked again at each refresh).

A trace whose newest span arrived within the last `settle` seconds may still be
growing: it is left out of the snapshot (and counted as "still arriving") so that a
trace caught half-written is not called incomplete. Each refresh analyses every
settled span read so far; the wait between refreshes is the interval asked for, but at
least twice the time the last analysis took, so a large input cannot keep the CPU busy.
"""

import os
import sys
import time

from .analyze import Analyzer
from .load import ReportInputError, _loads, _requests_of, expand_paths, fetch_jaeger, spans_of_request

__all__ = ["FileTail", "follow"]

MIN_INTERVAL_S = 0.2
MAX_INTERVAL_S = 60.0


class FileTail:
    """New spans of growing OTLP JSON-lines files (a directory is listed again at each
    poll, so files that appear later are read too)."""

    def __init__(self, paths):
        self.paths = [os.fspath(p) for p in paths]
        self.offsets = {}
        self.spans = []      # (service, span dict), in arrival order
        self.arrived = {}    # trace id -> monotonic time its newest span was read
        self.lines = {}

    def _files(self):
        """The files to read now: a directory's *.jsonl/*.json as they appear; a file
        that does not exist yet is waited for."""
        out = []
        for p in self.paths:
            if os.path.isdir(p):
                out.extend(os.path.join(p, n) for n in sorted(os.listdir(p)) if n.endswith((".jsonl", ".json")))
            elif os.path.exists(p):
                out.extend(expand_paths([p]))
        return out

    def poll(self):
        """Read what was appended since the last poll; returns the number of new spans."""
        new = 0
        now = time.monotonic()
        for path in self._files():
            off = self.offsets.get(path, 0)
            try:
                with open(path, "rb") as f:
                    f.seek(off)
                    chunk = f.read()
            except OSError as e:
                raise ReportInputError("%s: cannot read: %s" % (path, e.strerror or e)) from None
            cut = chunk.rfind(b"\n")
            if cut < 0:
                continue  # no complete line yet
            self.offsets[path] = off + cut + 1
            for raw in chunk[:cut].split(b"\n"):
                self.lines[path] = self.lines.get(path, 0) + 1
                if not raw.strip():
                    continue
                where = "%s:%d" % (path, self.lines[path])
                try:
                    obj = _loads(raw)
                except ValueError as e:
                    raise ReportInputError("%s: invalid JSON: %s" % (where, e)) from None
                for req in _requests_of(obj, where):
                    for service, sp in spans_of_request(req, True):
                        self.spans.append((service, sp))
                        self.arrived[sp.get("traceId") or ""] = now
                        new += 1
        return new

    def settled(self, settle_s):
        """(spans of the traces quiet for settle_s, number of traces still arriving)."""
        cutoff = time.monotonic() - settle_s
        busy = {t for t, at in self.arrived.items() if at > cutoff}
        if not busy:
            return self.spans, 0
        return [(svc, sp) for svc, sp in self.spans if (sp.get("traceId") or "") not in busy], len(busy)


def _snapshot(spans, kw):
    a = Analyzer(**kw)
    a.add_spans(spans)
    return a.finish()


def follow(args, kw, width, out=None):
    """Refresh until Ctrl-C, or until no new span came for --until-idle seconds. Returns
    (exit status, the last full report)."""
    out = out or sys.stdout
    interval = min(MAX_INTERVAL_S, max(MIN_INTERVAL_S, float(args.interval)))
    tty = out.isatty() if hasattr(out, "isatty") else False
    tail = None if args.jaeger else FileTail(args.paths)
    idle_since = time.monotonic()
    refresh = 0
    report = None
    last_spans = None
    try:
        while True:
            t0 = time.monotonic()
            if tail is not None:
                if tail.poll():
                    idle_since = t0
                spans, busy = tail.settled(interval)
                report = _snapshot(spans, kw)
            else:
                reqs = list(fetch_jaeger(args.jaeger, args.service, args.since, args.limit))
                a = Analyzer(**kw)
                a.add_spans(s for r in reqs for s in spans_of_request(r, True))
                report, busy = a.finish(), 0
                if report.spans != last_spans:
                    idle_since = t0
                last_spans = report.spans
            took = time.monotonic() - t0
            refresh += 1
            head = ("ituna-report --follow: refresh %d at %s, every %.1f s; %d trace(s) still arriving, "
                    "not counted yet\n" % (refresh, time.strftime("%H:%M:%S"), max(interval, 2 * took), busy))
            text = head + report.to_text(width)
            out.write(("\x1b[H\x1b[J" if tty else "\n") + text)
            out.flush()
            if args.until_idle is not None and time.monotonic() - idle_since >= args.until_idle:
                break
            time.sleep(max(interval, 2 * took))
    except KeyboardInterrupt:
        pass
    # the end: every trace, settled or not
    if tail is not None:
        tail.poll()
        report = _snapshot(tail.spans, kw)
        out.write("\nituna-report --follow: final, %d spans read\n" % report.spans)
        out.write(report.to_text(width))
        out.flush()
    return 0, report
