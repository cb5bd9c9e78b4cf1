"""The analysis behind ituna-report: spans grouped into traces as they stream in, each
trace finalised once (skew correction, critical path, broken-trace checks) and folded
into bounded aggregates (per-stage histograms, queue waits, bottleneck ranking).

Memory grows with the number of distinct stages and with the traces in flight, not with
the number of spans: a trace is finalised when it has not been seen for a generation of
`max_in_flight / 2` new traces, or at the end of the input.

Decisions where the spec is silent (also in the README of the report):
- Clock skew: only a cross-service edge (parent/child or producer/consumer in different
  services) can be skewed. When the child (consumer) starts before its parent (producer)
  started, or its ituna.queue_wait_ms is negative, the child's service clock is behind.
  The child and its same-service descendants are shifted forward by the smallest amount
  that removes the violation (a lower bound of the real skew: we never invent time that
  causality does not force). A clock that is ahead cannot be told from a real wait.
- Critical path: from the span that ends last, walk back through parent/child and
  producer->consumer edges; the gap between a producer's end and its consumer's start is
  the stage "queue wait <topic>"; time where no child runs is the parent's self time.
- Hops: a CONSUMER span's producer is its parent PRODUCER span (or a linked one), the
  Kafka hop of messaging.destination.name; a SERVER span whose parent is a CLIENT span
  of another service is an HTTP hop. Both appear in the service graph.
- Outcome of a trace: from the trace graph by default (profile.py: "incomplete" when
  the graph is broken, "error" when an error was not retried with success, else "ok");
  an application's notions ("served", "rejected") come from its profile, as data
  (--profile; the restaurant's is scripts/restaurant-profile.ini).
"""

import gc
import heapq
import operator

from .histogram import LogHistogram
from .load import attr_value, attrs_to_dict, find_attr, iter_requests, iter_spans, norm_id, normalise_span_ids
from .profile import GENERIC, Profile, load_profile

__all__ = ["Analyzer", "Report", "analyze_paths", "analyze_requests", "TraceAssembler"]

INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER = 1, 2, 3, 4, 5
KIND_LABEL = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_KIND_BY_NAME = {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
                 "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}
_STATUS_BY_NAME = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}

# Problems that make a trace's graph broken: its outcome is then "incomplete".
BROKEN_GRAPH = frozenset({"consumer without producer", "orphan span (parent missing)"})
MAX_EXAMPLES = 50          # trace ids listed per broken-trace category
SLOWEST_KEPT = 20          # waterfalls of the slowest traces in the report
MAX_IN_FLIGHT = 4000       # traces kept open while reading: memory ~ this x spans x ~3 KB
MAX_EMBEDDED = 1000        # traces whose waterfall the HTML page can open by search
MAX_DONE_IDS = 4_000_000   # finalised trace ids remembered to detect late spans


def _int(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def _kind(v):
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        return _KIND_BY_NAME.get(v, _int(v))
    return 0


class Span:
    __slots__ = ("sid", "pid", "name", "kind", "start", "end", "service", "status", "raw",
                 "parent", "pred", "hop", "children", "succ", "shift", "cp_self", "topic",
                 "depth", "tid", "qw", "vis")

    def __init__(self, service, d):
        g = d.get
        self.raw = d
        self.service = service
        try:  # the usual, complete span: subscripts are cheaper than get()
            self.sid = d["spanId"]
            self.tid = d["traceId"]
            self.name = d["name"]
            self.start = int(d["startTimeUnixNano"])
            self.end = int(d["endTimeUnixNano"])
        except (KeyError, TypeError, ValueError):
            self.sid = g("spanId") or ""
            self.tid = g("traceId") or ""
            self.name = g("name") or ""
            self.start = _int(g("startTimeUnixNano"))
            self.end = _int(g("endTimeUnixNano"))
        self.pid = g("parentSpanId") or ""
        k = g("kind", 0)
        self.kind = k if k.__class__ is int else _kind(k)
        if self.end < self.start:
            self.end = self.start
        st = g("status")
        if st:
            code = st.get("code", 0)
            self.status = code if code.__class__ is int else _STATUS_BY_NAME.get(code, _int(code))
        else:
            self.status = 0
        self.parent = None
        self.pred = None       # parent, or the producer for a consumer (hop)
        self.hop = False       # consumer span reached from a producer span
        self.children = _NONE  # parent/child children except hops, for the critical path
        self.succ = _NONE      # everything whose pred is this span
        self.shift = 0
        self.cp_self = 0
        self.topic = None
        self.qw = None
        self.depth = 0
        self.vis = False

    def attr(self, key):
        return find_attr(self.raw.get("attributes"), key)

    def messaging(self):
        """Topic and ituna.queue_wait_ms of a producer/consumer span, in one scan."""
        topic = qw = None
        for kv in self.raw.get("attributes") or ():
            try:
                key = kv["key"]
            except (KeyError, TypeError):
                continue
            if key[0] == "m" and key == "messaging.destination.name":
                topic = attr_value(kv.get("value"))
            elif key == "ituna.queue_wait_ms":
                qw = attr_value(kv.get("value"))
        if not topic:
            n = self.name
            topic = n
            for prefix in ("send ", "process ", "publish ", "receive ", "deliver "):
                if n.startswith(prefix):
                    topic = n[len(prefix):]
                    break
        self.topic = str(topic)
        self.qw = qw if isinstance(qw, (int, float)) and not isinstance(qw, bool) else None


_NONE = ()
_END = operator.attrgetter("end")
_START = operator.attrgetter("start")



class TraceAssembler:
    """Groups streamed spans by trace and calls on_trace(trace_id, items) once per trace.
    Two generations of in-flight traces: when the current one holds `limit` traces, every
    trace of the previous generation (untouched for a whole generation) is finalised.
    A consumer root span linking to a producer in another trace (link mode) merges its
    trace into the producer's, so one order is analysed as one trace."""

    def __init__(self, on_trace, max_in_flight=MAX_IN_FLIGHT):
        self.on_trace = on_trace
        self.limit = max(1, int(max_in_flight) // 2)
        self.cur = {}
        self.prev = {}
        self.done = set()
        self.late_spans = 0
        self.alias = {}
        self.alias_of = {}
        self.spans = 0
        self.peak_in_flight = 0

    def add(self, service, sp):
        self.spans += 1
        tid = sp.get("traceId") or ""
        if len(tid) != 32:  # not our lowercase hex: base64 from a receiver dump, or junk
            normalise_span_ids(sp)
            tid = sp.get("traceId") or ""
        alias = self.alias
        if alias:
            while tid in alias:
                tid = alias[tid]
        lst = self.cur.get(tid)
        if lst is None:
            lst = self.prev.pop(tid, None)
            if lst is None:
                if tid in self.done:
                    self.late_spans += 1
                    return
                lst = []
                if len(self.cur) >= self.limit:
                    self._rotate()
            self.cur[tid] = lst
        lst.append((service, sp))
        if not sp.get("parentSpanId") and sp.get("links"):
            self._link_merge(tid, sp)

    def _link_merge(self, tid, sp):
        for ln in sp["links"]:
            target = ln.get("traceId") or ""
            while target in self.alias:
                target = self.alias[target]
            if not target or target == tid or target in self.done:
                continue
            if _kind(sp.get("kind")) != CONSUMER:
                return
            moved = self.cur.pop(tid, None) or []
            dest = self.cur.get(target)
            if dest is None:
                dest = self.prev.pop(target, None) or []
                self.cur[target] = dest
            dest.extend(moved)
            self.alias[tid] = target
            lst = self.alias_of.setdefault(target, [])
            lst.append(tid)
            lst.extend(self.alias_of.pop(tid, ()))
            return

    def _finalise(self, tid, items):
        if len(self.done) < MAX_DONE_IDS:
            self.done.add(tid)
        for a in self.alias_of.pop(tid, ()):
            self.alias.pop(a, None)
            if len(self.done) < MAX_DONE_IDS:
                self.done.add(a)
        self.on_trace(tid, items)

    def _rotate(self):
        self.peak_in_flight = max(self.peak_in_flight, len(self.prev) + len(self.cur))
        prev, self.prev, self.cur = self.prev, self.cur, {}
        for tid, items in prev.items():
            self._finalise(tid, items)

    def finish(self):
        self.peak_in_flight = max(self.peak_in_flight, len(self.prev) + len(self.cur))
        for gen in (self.prev, self.cur):
            for tid, items in list(gen.items()):
                self._finalise(tid, items)
        self.prev, self.cur = {}, {}


class _StageStats:
    __slots__ = ("hist", "errors", "kind", "pend")

    def __init__(self, kind):
        self.hist = LogHistogram()
        self.errors = 0
        self.kind = kind
        self.pend = []  # durations not yet in the histogram (bounded: flushed at 4096)

    def flush(self):
        self.hist.add_many(self.pend)
        self.pend = []


class _QueueStats:
    __slots__ = ("wait", "attr_wait", "overlap", "missing_producer")

    def __init__(self):
        self.wait = LogHistogram()
        self.attr_wait = LogHistogram()
        self.overlap = 0           # consumer started before the producer span ended
        self.missing_producer = 0


class Analyzer:
    """Feed spans (add_span) or requests (add_request), then call finish() -> Report."""

    def __init__(self, max_in_flight=MAX_IN_FLIGHT, want_trace=None, want_order=None,
                 max_embedded=MAX_EMBEDDED, slowest=SLOWEST_KEPT, reject_topics=None, profile=None):
        self.asm = TraceAssembler(self._on_trace, max_in_flight)
        if profile is None:
            profile = GENERIC
        elif not isinstance(profile, Profile):
            profile = load_profile(profile)
        if reject_topics:  # --rejected-topic: the profile's sends-to topics
            profile = profile.with_topics(reject_topics)
        self.profile = profile
        self.http = {}  # (client service, server service) -> HTTP hops
        self.want_trace = want_trace.lower() if want_trace else None
        self.want_order = want_order
        self.max_embedded = max_embedded
        self.slowest_n = slowest
        self.stages = {}
        self.queues = {}
        self.e2e = {}
        self.cp = {}
        self.cp_traces = {}
        self.cp_total = 0
        self.broken = {}
        self.broken_examples = {}
        self.skew = {}
        self.edges = {}
        self.outcomes = {}
        self.traces = 0
        self.slowest = []   # min-heap of (e2e, seq, compact)
        self.embedded = []  # min-heap of (e2e, seq, compact)
        self.found = []
        self._seq = 0
        self._tid_kinds = None

    # ---- input
    def add_span(self, service, span_dict):
        self.asm.add(service, span_dict)

    def add_spans(self, it):
        add = self.asm.add
        for service, sp in it:
            add(service, sp)

    def add_request(self, req, normalise_ids=False):
        self.add_spans(iter_spans((req,), normalise_ids))

    def finish(self):
        self.asm.finish()
        return Report(self)

    # ---- one trace
    def _broken(self, kind, tid):
        """Count a trace once per kind of problem, and keep a few ids as examples."""
        if self._tid_kinds is not None:
            if kind in self._tid_kinds:
                return
            self._tid_kinds.add(kind)
        self.broken[kind] = self.broken.get(kind, 0) + 1
        ex = self.broken_examples.setdefault(kind, [])
        if len(ex) < MAX_EXAMPLES and tid not in ex:
            ex.append(tid)

    def _on_trace(self, tid, items):
        self.traces += 1
        self._tid_kinds = set()
        byid = {}
        spans = []
        for service, d in items:
            sp = Span(service, d)
            if sp.sid in byid:
                continue  # a duplicate export of the same span
            byid[sp.sid] = sp
            spans.append(sp)
        if not spans:
            return
        try:
            self._analyse(tid, spans, byid)
        finally:
            # Break the parent/child reference cycles so memory is freed by reference
            # counting at once (the analysis runs with the cyclic GC paused).
            for sp in spans:  # lists only point down: clearing the up-links is enough
                sp.parent = sp.pred = None

    def _analyse(self, tid, spans, byid):

        # Pass 1 - relations (parent; producer of a consumer, by parent or by link) and
        # per-stage durations and errors (durations do not depend on skew correction).
        roots = []
        stages = self.stages
        sent_to = set()  # topics the trace's PRODUCER spans sent to
        for sp in spans:
            par = byid.get(sp.pid) if sp.pid else None
            sp.parent = par
            kind = sp.kind
            key = (sp.service, sp.name)
            st = stages.get(key)
            if st is None:
                st = stages[key] = _StageStats(kind)
            pend = st.pend
            pend.append(sp.end - sp.start)
            if len(pend) >= 4096:
                st.flush()
            if sp.status == 2:
                st.errors += 1
            if kind == CONSUMER:
                prod = par if par is not None and par.kind == PRODUCER else None
                if prod is None:
                    for ln in sp.raw.get("links") or ():
                        cand = byid.get(ln.get("spanId") or "")
                        if cand is not None and cand is not sp:
                            prod = cand
                            break
                sp.messaging()
                if prod is not None:
                    sp.pred = prod
                    sp.hop = True
                else:
                    sp.pred = par
                    self._broken("consumer without producer", tid)
                    self.queues.setdefault(sp.topic, _QueueStats()).missing_producer += 1
            else:
                if kind == PRODUCER:
                    sp.messaging()
                    sent_to.add(sp.topic)
                elif kind == SERVER and par is not None and par.kind == CLIENT and par.service != sp.service:
                    hk = (par.service, sp.service)
                    self.http[hk] = self.http.get(hk, 0) + 1
                sp.pred = par
                if par is None and sp.pid:
                    self._broken("orphan span (parent missing)", tid)
            pr = sp.pred
            if pr is None:
                roots.append(sp)
            else:
                if pr.succ is _NONE:
                    pr.succ = [sp]
                else:
                    pr.succ.append(sp)
                if not sp.hop and pr is par:
                    if par.children is _NONE:
                        par.children = [sp]
                    else:
                        par.children.append(sp)
        if not roots:  # a cycle of ids: bad input, analyse from the earliest span
            roots = [min(spans, key=lambda s: s.start)]
            self._broken("cyclic parent ids", tid)

        # Pass 2 - top-down: clock skew on cross-service edges, then the messaging edges
        # and queue waits, on corrected times.
        edges = self.edges
        order = []
        stack = sorted(roots, key=_START, reverse=True) if len(roots) > 1 else list(roots)
        while stack:
            sp = stack.pop()
            if sp.vis:
                continue
            sp.vis = True
            order.append(sp)
            p = sp.pred
            if p is not None:
                sp.depth = p.depth + 1
                if p.service == sp.service:
                    sp.shift = p.shift
                else:
                    need = p.start - sp.start  # p is already corrected: no start before it
                    raw_bound = p.start - p.shift - sp.start
                    if sp.hop:
                        qw = sp.qw
                        if qw is not None and qw < 0:
                            need = max(need, p.shift - int(qw * 1e6))
                            raw_bound = max(raw_bound, -int(qw * 1e6))
                    if need > 0:
                        sp.shift = need
                        key = (p.service, sp.service)
                        sk = self.skew.get(key)
                        if sk is None:
                            sk = self.skew[key] = [0, 0, 0]  # traces, max bound, sum of shifts
                        sk[0] += 1
                        sk[1] = max(sk[1], raw_bound)
                        sk[2] += need
                    else:
                        sp.shift = 0
                if sp.shift:
                    sp.start += sp.shift
                    sp.end += sp.shift
                if sp.start < p.start and p.service == sp.service:
                    self._broken("child starts before parent (same service)", tid)
            kind = sp.kind
            if kind == PRODUCER:
                ek = (sp.service, sp.topic)
                e = edges.get(ek)
                if e is None:
                    e = edges[ek] = [0, None]
                e[0] += 1
            elif kind == CONSUMER:
                ek = (sp.topic, sp.service, 1)
                e = edges.get(ek)
                if e is None:
                    e = edges[ek] = [0, LogHistogram()]
                e[0] += 1
                if sp.hop:
                    q = self.queues.get(sp.topic)
                    if q is None:
                        q = self.queues[sp.topic] = _QueueStats()
                    w = sp.start - p.end
                    if w < 0:
                        q.overlap += 1
                        w = 0
                    q.wait.add(w)
                    e[1].add(w)
                    qw = sp.qw
                    if qw is not None:
                        # Consumer clock minus the producer's timestamp: apply both corrections.
                        q.attr_wait.add(max(0, int(qw * 1e6) + sp.shift - p.shift))
            if sp.succ:
                stack.extend(sp.succ)
        if len(order) < len(spans):
            for sp in spans:
                if not sp.vis:
                    order.append(sp)

        # Critical path.
        last = max(spans, key=lambda s: s.end)
        segs = {}
        try:
            origin = self._critical_path(last, segs)
        except RecursionError:
            self._broken("trace too deep to analyse", tid)
            origin = min(roots, key=lambda s: s.start)
            segs = {}
        for k, v in segs.items():
            if v <= 0:
                continue
            self.cp[k] = self.cp.get(k, 0) + v
            self.cp_traces[k] = self.cp_traces.get(k, 0) + 1
            self.cp_total += v

        # Source, id, outcome (the profile's, else the graph's), end-to-end latency.
        prof = self.profile
        root = min(roots, key=lambda s: s.start)
        source = order_id = None
        sa, ia = prof.source_attr, prof.id_attr
        if sa or ia:
            source = root.attr(sa) if sa else None
            order_id = root.attr(ia) if ia else None
            if (sa and source is None) or (ia and order_id is None):
                for sp in spans:
                    if sa and source is None:
                        source = sp.attr(sa)
                    if ia and order_id is None:
                        order_id = sp.attr(ia)
                    if (not sa or source is not None) and (not ia or order_id is not None):
                        break
        if source is None:
            source = prof.sources.get(root.name, "unknown") if not prof.generic else root.service
        source = str(source)
        broken = bool(self._tid_kinds & BROKEN_GRAPH)
        outcome, end = prof.decide(spans, sent_to, broken)
        if end is None:
            end = last.end
        if outcome == prof.otherwise and prof.otherwise_problem:
            self._broken(prof.otherwise_problem, tid)
        e2e = end - root.start
        h = self.e2e.get((source, outcome))
        if h is None:
            h = self.e2e[(source, outcome)] = LogHistogram()
        h.add(e2e)
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

        # Keep waterfalls: the slowest, a bounded set for search, and the one asked for.
        self._seq += 1
        want = (self.want_trace is not None and (tid == self.want_trace or
                                                 any(sp.tid == self.want_trace for sp in spans))) or \
               (self.want_order is not None and order_id is not None and str(order_id) == str(self.want_order))
        need_slow = self.slowest_n > 0 and (len(self.slowest) < self.slowest_n or e2e > self.slowest[0][0])
        need_emb = self.max_embedded > 0 and (len(self.embedded) < self.max_embedded or e2e > self.embedded[0][0])
        if want or need_slow or need_emb:
            compact = _compact(tid, order_id, source, outcome, root, e2e, order, spans)
            if want:
                self.found.append(compact)
            if need_slow:
                item = (e2e, self._seq, compact)
                if len(self.slowest) < self.slowest_n:
                    heapq.heappush(self.slowest, item)
                else:
                    heapq.heapreplace(self.slowest, item)
            if need_emb:
                item = (e2e, self._seq, compact)
                if len(self.embedded) < self.max_embedded:
                    heapq.heappush(self.embedded, item)
                else:
                    heapq.heapreplace(self.embedded, item)

    def _critical_path(self, last, segs):
        """Fill segs {stage: ns} for the path ending at `last`; return the span it starts at.
        (Plain functions, no closures: a self-referencing closure is a reference cycle,
        and the analysis runs with the cyclic GC paused.)"""
        cur = last
        _descend(cur, cur.end, segs)
        t = cur.start
        guard = 0
        while cur.pred is not None and guard < 100000:
            guard += 1
            p = cur.pred
            if cur.hop:
                qs = min(p.end, t)
                if t > qs:
                    k = (None, cur.topic or "?")
                    segs[k] = segs.get(k, 0) + (t - qs)
                t = qs
            elif t > p.end:
                _self_time(p, t - p.end, segs)  # child outlived by a gap after its parent ended
                t = p.end
            if t < p.start:
                t = p.start
            _descend(p, t, segs)
            t = p.start
            cur = p
        return cur


def _self_time(sp, ns, segs):
    if ns > 0:
        k = (sp.service, sp.name)
        segs[k] = segs.get(k, 0) + ns
        sp.cp_self += ns


def _descend(sp, t, segs):
    """Critical path inside sp up to time t: the child that ends last before the cursor,
    recursively, and the gaps between children as sp's own time."""
    if t > sp.end:
        t = sp.end
    cursor = t
    kids = sp.children
    if kids:
        for c in (sorted(kids, key=_END, reverse=True) if len(kids) > 1 else kids):
            if c.start >= cursor:
                continue
            ce = c.end if c.end < cursor else cursor
            _self_time(sp, cursor - ce, segs)
            _descend(c, ce, segs)
            cursor = c.start if c.start > sp.start else sp.start
            if cursor <= sp.start:
                break
    _self_time(sp, cursor - sp.start, segs)


def _compact(tid, order_id, source, outcome, root, e2e, order, spans):
    """JSON-ready waterfall of one trace: spans in tree order with offsets in ms."""
    t0 = root.start
    for sp in spans:
        if sp.start < t0:
            t0 = sp.start
    idx = {}
    # Tree order: depth-first by start time, following succ (children and hops).
    out_order = []
    seen = set()
    stack = sorted((s for s in spans if s.pred is None), key=lambda s: s.start, reverse=True)
    if not stack:
        stack = [order[0]]
    while stack:
        sp = stack.pop()
        if id(sp) in seen:
            continue
        seen.add(id(sp))
        out_order.append(sp)
        stack.extend(sorted(sp.succ, key=lambda s: s.start, reverse=True))
    for sp in spans:
        if id(sp) not in seen:
            out_order.append(sp)
    for i, sp in enumerate(out_order):
        idx[id(sp)] = i
    rows = []
    for sp in out_order:
        raw = sp.raw
        row = {
            "id": sp.sid, "parent": idx.get(id(sp.pred), -1) if sp.pred is not None else -1,
            "service": sp.service, "name": sp.name, "kind": KIND_LABEL.get(sp.kind, str(sp.kind)),
            "startMs": round((sp.start - t0) / 1e6, 3), "durMs": round((sp.end - sp.start) / 1e6, 3),
            "depth": sp.depth, "error": sp.status == 2,
            "cpMs": round(sp.cp_self / 1e6, 3),
            "attrs": attrs_to_dict(raw.get("attributes")),
        }
        if sp.shift:
            row["skewShiftMs"] = round(sp.shift / 1e6, 3)
        st = raw.get("status") or {}
        if st.get("message"):
            row["statusMessage"] = st["message"]
        if sp.hop:
            row["queueWaitMs"] = round(max(0, sp.start - sp.pred.end) / 1e6, 3)
            row["topic"] = sp.topic
        evs = raw.get("events")
        if evs:
            row["events"] = [{"name": e.get("name", ""),
                              "atMs": round((_int(e.get("timeUnixNano")) + sp.shift - t0) / 1e6, 3),
                              "attrs": attrs_to_dict(e.get("attributes"))} for e in evs[:32]]
        lk = raw.get("links")
        if lk:
            row["links"] = [{"traceId": ln.get("traceId", ""), "spanId": ln.get("spanId", "")} for ln in lk[:16]]
        rows.append(row)
    return {"traceId": tid, "orderId": None if order_id is None else str(order_id), "source": source,
            "outcome": outcome, "startUnixNano": str(t0), "e2eMs": round(e2e / 1e6, 3),
            "totalMs": round((max(s.end for s in spans) - t0) / 1e6, 3), "spans": rows}


def _pcts(h):
    p50, p95, p99 = h.percentiles((50, 95, 99))
    return {"count": h.n, "p50Ms": _ms(p50), "p95Ms": _ms(p95), "p99Ms": _ms(p99),
            "maxMs": _ms(h.max), "meanMs": _ms(h.mean())}


def _ms(ns):
    return None if ns is None else round(ns / 1e6, 3)


class Report:
    """Every figure of one analysis. to_text(), to_dict(), to_json(path), to_html(path)."""

    def __init__(self, a):
        self.spans = a.asm.spans
        self.late_spans = a.asm.late_spans
        self.peak_in_flight = a.asm.peak_in_flight
        self.traces = a.traces
        self.outcomes = dict(a.outcomes)
        prof = a.profile
        self.profile = prof.name
        self.unit = prof.unit
        self.outcome_order = list(prof.order) + sorted(o for o in self.outcomes if o not in prof.order)
        self.good_outcomes = sorted(prof.good)
        self.hops = [{"via": "kafka", "topic": q, "hops": int(q_stats.wait.n)}
                     for q, q_stats in sorted(a.queues.items()) if q_stats.wait.n] + \
                    [{"via": "http", "from": c, "to": sv, "hops": n} for (c, sv), n in sorted(a.http.items())]
        total = a.cp_total or 1
        for st in a.stages.values():
            if st.pend:
                st.flush()
        self.ranking = sorted(
            ({"stage": _stage_label(k), "totalMs": _ms(v), "share": v / total, "traces": a.cp_traces[k],
              "meanPerTraceMs": _ms(v / max(1, a.traces))}
             for k, v in a.cp.items()),
            key=lambda r: (-r["share"], r["stage"]))
        self.cp_total_ms = _ms(a.cp_total)
        self.stages = []
        for (svc, name), st in sorted(a.stages.items()):
            d = {"service": svc, "name": name, "kind": KIND_LABEL.get(st.kind, str(st.kind)),
                 "errors": st.errors, "errorRate": st.errors / st.hist.n if st.hist.n else 0.0}
            d.update(_pcts(st.hist))
            d["histogram"] = [[_ms(lo), _ms(hi), c] for lo, hi, c in st.hist.bins(24)]
            self.stages.append(d)
        self.queues = []
        for topic, q in sorted(a.queues.items()):
            d = {"topic": topic, "overlap": q.overlap, "missingProducer": q.missing_producer}
            d.update(_pcts(q.wait))
            ap = _pcts(q.attr_wait)
            d["attr"] = {"count": ap["count"], "p50Ms": ap["p50Ms"], "p95Ms": ap["p95Ms"], "p99Ms": ap["p99Ms"]}
            self.queues.append(d)
        self.e2e = []
        for (src, outcome), h in sorted(a.e2e.items()):
            d = {"source": src, "outcome": outcome}
            d.update(_pcts(h))
            self.e2e.append(d)
        self.broken = [{"kind": k, "count": v, "examples": list(a.broken_examples.get(k, []))}
                       for k, v in sorted(a.broken.items())]
        self.skew = [{"from": f, "to": t, "traces": s[0], "estimatedSkewMs": _ms(s[1]),
                      "meanShiftMs": _ms(s[2] / s[0])}
                     for (f, t), s in sorted(a.skew.items())]
        self.graph = _graph(a.edges, a.http)
        self.slowest = [c for _, _, c in sorted(a.slowest, key=lambda x: (-x[0], x[1]))]
        self.embedded = [c for _, _, c in sorted(a.embedded, key=lambda x: (-x[0], x[1]))]
        self.found = a.found

    def bottleneck(self):
        return self.ranking[0]["stage"] if self.ranking else None

    def to_dict(self, include_traces=True):
        d = {"spans": self.spans, "traces": self.traces, "outcomes": self.outcomes, "unit": self.unit,
             "profile": self.profile, "outcomeOrder": self.outcome_order, "goodOutcomes": self.good_outcomes,
             "hops": self.hops,
             "lateSpans": self.late_spans, "criticalPathTotalMs": self.cp_total_ms,
             "ranking": self.ranking, "stages": self.stages, "queueWait": self.queues,
             "endToEnd": self.e2e, "broken": self.broken, "clockSkew": self.skew,
             "serviceGraph": self.graph,
             "slowestTraces": [t["traceId"] for t in self.slowest]}
        if include_traces:
            d["traces_embedded"] = self.embedded
        return d

    def to_json(self, path, include_traces=False):
        import json
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(include_traces), f, indent=1)
            f.write("\n")

    def to_text(self, width=80):
        from .render_text import render_report
        return render_report(self, width)

    def waterfall_text(self, trace=None, width=80):
        from .render_text import render_waterfall
        return render_waterfall(trace or (self.found[0] if self.found else self.slowest[0]), width)

    def to_html(self, path=None):
        from .render_html import render_html
        html = render_html(self)
        if path:
            with open(path, "w", encoding="utf-8") as f:
                f.write(html)
        return html


def _stage_label(k):
    return "queue wait " + k[1] if k[0] is None else k[0] + " / " + k[1]


def _graph(edges, http=None):
    """Services and topics as nodes in layers (longest path from a source), edges with
    message counts and queue-wait percentiles; HTTP hops as service -> service edges."""
    # Keys as collected: (service, topic) for producers, (topic, service, 1) for consumers.
    edges = {((k[0], "topic:" + k[1]) if len(k) == 2 else ("topic:" + k[0], k[1])): v for k, v in edges.items()}
    for (client, server), n in (http or {}).items():
        edges[(client, server)] = [n, None]
    nodes = set()
    out = {}
    for (a, b) in edges:
        nodes.add(a)
        nodes.add(b)
        out.setdefault(a, []).append(b)
    indeg = {n: 0 for n in nodes}
    for a, bs in out.items():
        for b in bs:
            indeg[b] += 1
    layer = {n: 0 for n in nodes}
    # Longest-path layering with a bound on passes (cycles simply stop growing).
    for _ in range(len(nodes) + 1):
        changed = False
        for a, bs in out.items():
            for b in bs:
                if layer[b] < layer[a] + 1 and layer[a] + 1 <= 2 * len(nodes):
                    layer[b] = layer[a] + 1
                    changed = True
        if not changed:
            break
    node_list = []
    for n in sorted(nodes, key=lambda n: (layer[n], n)):
        is_topic = n.startswith("topic:")
        node_list.append({"id": n, "label": n[6:] if is_topic else n, "type": "topic" if is_topic else "service",
                          "layer": layer[n]})
    edge_list = []
    for (a, b), (count, h) in sorted(edges.items()):
        e = {"from": a, "to": b, "messages": count}
        if h is not None and h.n:
            p50, p95 = h.percentiles((50, 95))
            e["queueWaitP50Ms"] = _ms(p50)
            e["queueWaitP95Ms"] = _ms(p95)
        edge_list.append(e)
    return {"nodes": node_list, "edges": edge_list}


def analyze_requests(requests, normalise_ids=False, **kw):
    """Report for an iterable of ExportTraceServiceRequest dicts (streamed)."""
    a = Analyzer(**kw)
    # The cyclic GC would rescan every live span dict again and again (2x the run time);
    # the analysis frees its own cycles, so it is paused meanwhile.
    was = gc.isenabled()
    gc.disable()
    try:
        if normalise_ids:
            a.add_spans(iter_spans(requests, True))
        else:
            asm = a.asm
            add = asm.add
            for req in requests:
                for rs in req.get("resourceSpans") or ():
                    service = _service_of(rs)
                    for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or ():
                        # Fast path of TraceAssembler.add, inlined: a span of a trace already
                        # open in the current generation, with a plain parent.
                        cur = asm.cur
                        for sp in ss.get("spans") or ():
                            lst = cur.get(sp.get("traceId"))
                            if lst is not None and sp.get("parentSpanId") and not asm.alias:
                                lst.append((service, sp))
                                asm.spans += 1
                            else:
                                add(service, sp)
                                cur = asm.cur
        return a.finish()
    finally:
        if was:
            gc.enable()


def _service_of(rs):
    for kv in (rs.get("resource") or {}).get("attributes") or ():
        if kv.get("key") == "service.name":
            v = kv.get("value") or {}
            return str(v.get("stringValue", attrs_to_dict([kv]).get("service.name")))
    return "unknown_service"


def analyze_paths(paths, **kw):
    """Report for OTLP JSON files or directories (one path or a list)."""
    return analyze_requests(iter_requests(paths), **kw)
