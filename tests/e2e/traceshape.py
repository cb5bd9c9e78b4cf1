"""traceshape.py - reading restaurant traces (OTLP JSON lines from the file
exporter, or Jaeger's /api/v3 answer) and checking one order's trace: one trace id,
the expected spans per source and outcome, producer -> consumer parents, service.name
per process, order.id/order.source on the order's spans; plus a language-free
"shape" of a trace for comparing runs."""
import base64
import binascii
import collections
import json
import re

KIND = {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2, "SPAN_KIND_CLIENT": 3,
        "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}
STATUS = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
INTERNAL, PRODUCER, CONSUMER = 1, 4, 5
_HEX = re.compile(r"^[0-9a-f]*$")

ORDERING = {"website": ("website-ordering", "main-website-order"),
            "on-site": ("onsite-ordering", "main-onsite-order"),
            "direct": ("direct-kitchen-ordering", "main-direct-order")}
VALIDATION_STEPS = ["address_validation", "name_validation", "inventory_validation"]
COOKING_STEPS = ["cut-fish", "roll", "plate"]

Span = collections.namedtuple("Span", "trace_id span_id parent name kind status status_message attrs "
                                      "service instance start end")


def _id(value, nbytes):
    if not value:
        return ""
    v = value.lower()
    if len(v) == 2 * nbytes and _HEX.match(v):
        return v
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4)).hex()
    except (binascii.Error, ValueError):
        return value


def _value(v):
    for k in ("stringValue", "boolValue", "doubleValue"):
        if k in v:
            return v[k]
    if "intValue" in v:
        return int(v["intValue"])
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    return None


def _attrs(lst):
    return {a["key"]: _value(a.get("value", {})) for a in lst or []}


def spans_of_request(req):
    """Flatten one ExportTraceServiceRequest (OTLP JSON) into Span tuples."""
    out = []
    for rs in req.get("resourceSpans", []):
        res = _attrs(rs.get("resource", {}).get("attributes"))
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                kind = s.get("kind", 0)
                kind = KIND.get(kind, kind) if isinstance(kind, str) else kind
                st = s.get("status") or {}
                code = st.get("code", 0)
                code = STATUS.get(code, code) if isinstance(code, str) else code
                out.append(Span(_id(s.get("traceId"), 16), _id(s.get("spanId"), 8), _id(s.get("parentSpanId"), 8),
                                s.get("name"), kind, code, st.get("message", ""), _attrs(s.get("attributes")),
                                res.get("service.name"), res.get("service.instance.id"),
                                int(s.get("startTimeUnixNano", 0)), int(s.get("endTimeUnixNano", 0))))
    return out


def read_jsonl(path):
    """Every span of an OTLP JSON-lines file; a bad line fails naming the line."""
    spans = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                req = json.loads(line)
            except ValueError as exc:
                raise AssertionError(f"{path}:{n}: not JSON: {exc}") from None
            spans.extend(spans_of_request(req))
    return spans


def spans_of_jaeger_v3(answer):
    result = answer.get("result", answer)
    return spans_of_request(result)


def by_trace(spans):
    out = collections.defaultdict(list)
    for s in spans:
        out[s.trace_id].append(s)
    return out


def order_trace_ids(spans, order_id):
    """Trace ids of the spans carrying order.id = order_id."""
    return {s.trace_id for s in spans if s.attrs.get("order.id") == order_id}


class TraceCheck:
    """Checks one order's trace; raises AssertionError naming the order and what is wrong."""

    def __init__(self, spans, order_id, source, outcome, topics):
        self.spans = spans
        self.order_id = order_id
        self.source = source
        self.outcome = outcome        # "served" or ("rejected", rejected_by)
        self.topics = topics
        self.by_id = {s.span_id: s for s in spans}
        self.children = collections.defaultdict(list)
        for s in spans:
            self.children[s.parent].append(s)
        for lst in self.children.values():
            lst.sort(key=lambda s: s.start)

    def fail(self, what):
        listing = "\n".join(f"    {s.service}: {s.name} kind={s.kind} id={s.span_id} parent={s.parent}"
                            for s in sorted(self.spans, key=lambda s: s.start))
        raise AssertionError(f"order {self.order_id} ({self.source}, {self.outcome}): {what}\n{listing}")

    def one_child(self, parent, name, kind=None, service=None):
        found = [c for c in self.children[parent.span_id] if c.name == name]
        if len(found) != 1:
            self.fail(f"expected one '{name}' under '{parent.name}', found {len(found)}")
        c = found[0]
        if kind is not None and c.kind != kind:
            self.fail(f"'{name}' has kind {c.kind}, expected {kind}")
        if service is not None and c.service != service:
            self.fail(f"'{name}' was exported by service.name={c.service!r}, expected {service!r}")
        return c

    def order_attrs(self, s):
        if s.attrs.get("order.id") != self.order_id or s.attrs.get("order.source") != self.source:
            self.fail(f"'{s.name}' lacks order.id/order.source (has {s.attrs.get('order.id')!r}, "
                      f"{s.attrs.get('order.source')!r})")

    def messaging(self, s, topic, op):
        a = s.attrs
        if a.get("messaging.system") != "kafka" or a.get("messaging.destination.name") != topic:
            self.fail(f"'{s.name}' messaging attributes wrong: {a}")
        if op == "process" and "messaging.kafka.offset" not in a:
            self.fail(f"'{s.name}' has no messaging.kafka.offset")

    def hop(self, producer_parent, topic, consumer_service):
        """PRODUCER 'send topic' under producer_parent, CONSUMER 'process topic' under it."""
        send = self.one_child(producer_parent, f"send {topic}", PRODUCER, producer_parent.service)
        self.messaging(send, topic, "send")
        self.order_attrs(send)
        if consumer_service is None:
            return send, None
        proc = self.one_child(send, f"process {topic}", CONSUMER, consumer_service)
        self.messaging(proc, topic, "process")
        self.order_attrs(proc)
        return send, proc

    def run(self):
        trace_ids = {s.trace_id for s in self.spans}
        if len(trace_ids) != 1:
            self.fail(f"spans in {len(trace_ids)} trace ids")
        service, root_name = ORDERING[self.source]
        roots = [s for s in self.spans if not s.parent or s.parent not in self.by_id]
        if len(roots) != 1 or roots[0].name != root_name or roots[0].parent:
            self.fail(f"expected one root '{root_name}', found {[r.name for r in roots]}")
        root = roots[0]
        if root.service != service:
            self.fail(f"root exported by {root.service!r}, expected {service!r}")
        self.order_attrs(root)
        t = self.topics
        rejected_by = self.outcome[1] if isinstance(self.outcome, tuple) else None
        if self.source == "direct":
            _, kproc = self.hop(root, t["kitchen"], "kitchen-service")
        else:
            _, vproc = self.hop(root, t["orders"], "order-validation")
            val = self.one_child(vproc, "main-order-validation", INTERNAL, "order-validation")
            self.order_attrs(val)
            steps = [c for c in self.children[val.span_id] if c.name in VALIDATION_STEPS]
            names = [c.name for c in steps]
            for c in steps:
                self.order_attrs(c)
            if rejected_by in VALIDATION_STEPS:
                want = VALIDATION_STEPS[:VALIDATION_STEPS.index(rejected_by) + 1]
                if names != want:
                    self.fail(f"validation steps {names}, expected {want}")
                if steps[-1].status != 2 or val.status != 2:
                    self.fail("the failing step and main-order-validation must have error status")
                self.hop(val, t["rejected"], None)
                self.whole_trace(root)
                return
            if names != VALIDATION_STEPS:
                self.fail(f"validation steps {names}, expected {VALIDATION_STEPS}")
            if any(c.status == 2 for c in steps) or val.status == 2:
                self.fail("a validated order has an error span")
            _, kproc = self.hop(val, t["kitchen"], "kitchen-service")
        kit = self.one_child(kproc, "main-kitchen", INTERNAL, "kitchen-service")
        self.order_attrs(kit)
        cooking = [c.name for c in self.children[kit.span_id] if c.name in COOKING_STEPS]
        if cooking != COOKING_STEPS:
            self.fail(f"cooking steps {cooking}, expected {COOKING_STEPS}")
        for c in self.children[kit.span_id]:
            if c.name in COOKING_STEPS:
                self.order_attrs(c)
        if rejected_by == "kitchen-service":
            if kit.status != 2:
                self.fail("a spoiled order's main-kitchen must have error status")
            self.hop(kit, t["rejected"], None)
        else:
            self.hop(kit, t["ready"], None)
        self.whole_trace(root)

    def whole_trace(self, root):
        # every span of the order is reachable from the root: nothing stray in the trace
        seen, stack = set(), [root]
        while stack:
            s = stack.pop()
            seen.add(s.span_id)
            stack.extend(self.children[s.span_id])
        if len(seen) != len(self.spans):
            self.fail(f"{len(self.spans) - len(seen)} spans not connected to the root")
        # the rule is "every span of an order": none may slip past the checks above
        for s in self.spans:
            self.order_attrs(s)


def check_order_trace(spans, order_id, source, outcome, topics):
    TraceCheck(spans, order_id, source, outcome, topics).run()


def shape(spans, topics=None):
    """A language-free description of a trace: per span (name, kind, parent's name,
    service, sorted attribute keys), sorted. Equal shapes = same span names, kinds,
    parents, processes and attribute keys. topics (role -> name) are written as
    <role> in span names, so runs with topics of their own compare."""
    by_id = {s.span_id: s for s in spans}
    names = {}
    for s in spans:
        n = s.name
        for role, topic in (topics or {}).items():
            if n.endswith(" " + topic):
                n = n[:-len(topic)] + f"<{role}>"
        names[s.span_id] = n
    rows = []
    for s in spans:
        parent = by_id.get(s.parent)
        # Jaeger adds "@jaeger@warnings" (its clock-skew notes) depending on timing: not ours.
        keys = tuple(sorted(k for k in s.attrs if not k.startswith("@jaeger@")))
        rows.append((names[s.span_id], s.kind, names[parent.span_id] if parent else "", s.service, keys))
    return sorted(rows)
