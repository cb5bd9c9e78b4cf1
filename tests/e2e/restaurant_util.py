"""restaurant_util.py - what the restaurant's end-to-end tests share: a test config
with topics of its own, running the launcher, reading the run's logs (orders placed,
their trace ids and outcomes), reading the outcome topics back from Kafka, and
fetching traces from Jaeger."""
import collections
import json
import os
import re
import shutil
import sys
import time
import urllib.error
import uuid

from e2e_common import FIXTURES, REPO, SCRIPTS, fetch_json, launcher_env
import traceshape

import subprocess

SOURCES = {"website-ordering": "website", "onsite-ordering": "on-site", "direct-kitchen-ordering": "direct"}
RE_PLACED = re.compile(r" - INFO - (?:Placing an online order with id|Placing an on-site order with id|"
                       r"Placing a direct order for the kitchen:) (\S+) trace_id=([0-9a-f]{32}) span_id=([0-9a-f]{16})$")
RE_REJECTED = re.compile(r" - INFO - Rejected order (\S+): (.*) trace_id=([0-9a-f]{32}) span_id=")
RE_SERVED = re.compile(r" - INFO - Your order is ready\. Please enjoy your (.+) and other food! - Order id = (\S+) "
                       r"trace_id=([0-9a-f]{32}) span_id=")
_IDS = r" trace_id=([0-9a-f]{32}) span_id=([0-9a-f]{16})$"
# The log lines issue 7 names, per service (identical in Lua and Python): kind ->
# pattern whose first group is the order id (None: the line names no order).
ORDER_LINES = {
    "website-ordering": {"placing": (r"Placing an online order with id (\S+)", 1),
                         "placed": (r"The online order has been placed successfully!", None)},
    "onsite-ordering": {"placing": (r"Placing an on-site order with id (\S+)", 1),
                        "placed": (r"The on-site order has been placed successfully!", None)},
    "direct-kitchen-ordering": {"placing": (r"Placing a direct order for the kitchen: (\S+)", 1)},
    "order-validation": {"received": (r"Received order (\S+) for validation", 1),
                         "validated": (r"Validated and republished order for kitchen: (\S+)", 1)},
    "kitchen-service": {"received": (r"Received order (\S+) for processing", 1),
                        "ready": (r"Your order is ready\. Please enjoy your (.+) and other food! - Order id = (\S+)", 2)},
}
_ORDER_LINE_RE = {svc: {kind: (re.compile(r" - INFO - " + pat + _IDS), grp) for kind, (pat, grp) in kinds.items()}
                  for svc, kinds in ORDER_LINES.items()}
RE_FAILED = re.compile(r" - ERROR - Failed to handle a message from (\S+) \[(\d+)\] @(\d+) "
                       r"\(it will be redelivered\): (.*)" + _IDS)
RE_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - [a-z-]+ - (INFO|ERROR) - .* trace_id=[0-9a-f]{32} "
                     r"span_id=[0-9a-f]{16}$")
# The reason each stage gives when it rejects (identical in Lua and Python).
REASON_STEP = {
    "the address could not be validated": "address_validation",
    "the customer name could not be validated": "name_validation",
    "an ingredient ran out": "inventory_validation",
    "the kitchen spoiled the order": "kitchen-service",
}
ALL_PYTHON = ["--lang", "website-ordering=python", "--lang", "onsite-ordering=python", "--lang",
              "order-validation=python", "--lang", "direct-kitchen-ordering=python", "--lang", "kitchen-service=python"]
ALL_LUA = ["--lang", "website-ordering=lua", "--lang", "onsite-ordering=lua", "--lang", "order-validation=lua",
           "--lang", "direct-kitchen-ordering=lua", "--lang", "kitchen-service=lua"]
MIXED = ["--lang", "website-ordering=python", "--lang", "onsite-ordering=lua", "--lang", "order-validation=python",
         "--lang", "direct-kitchen-ordering=lua", "--lang", "kitchen-service=lua"]


def write_config(directory, extra="", failures=True, failure_rates=None):
    """The e2e fixture config with topics of this run (failures=False: every failure
    rate 0; failure_rates: {key: rate} set in [failure-rates]); returns (path, topics)."""
    run = uuid.uuid4().hex[:10]
    with open(os.path.join(FIXTURES, "e2e.ini"), encoding="utf-8") as f:
        text = f.read().replace("{run}", run)
    if not failures:
        head, sep, rest = text.partition("[failure-rates]")
        body, nxt, tail = rest.partition("\n[")
        body = re.sub(r"(?m)^([a-z-]+) = [0-9.]+$", r"\1 = 0", body)
        text = head + sep + body + nxt + tail
    for key, rate in (failure_rates or {}).items():
        head, sep, rest = text.partition("[failure-rates]")
        body, nxt, tail = rest.partition("\n[")
        body, n = re.subn(rf"(?m)^{re.escape(key)} = [0-9.]+$", f"{key} = {rate}", body)
        assert n == 1, f"[failure-rates] {key} is not in e2e.ini"
        text = head + sep + body + nxt + tail
    path = os.path.join(str(directory), f"e2e-{run}.ini")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n" + extra)
    topics = {"orders": f"e2e-{run}-orders", "kitchen": f"e2e-{run}-kitchen",
              "rejected": f"e2e-{run}-rejected", "ready": f"e2e-{run}-ready"}
    return path, topics


def launcher_cmd():
    exe = shutil.which("ituna-restaurant")
    return [exe] if exe else [sys.executable, "-m", "ituna_restaurant"]


def run_restaurant(args, cwd=None, env_extra=None, timeout=240):
    env = launcher_env(env_extra)
    t0 = time.monotonic()
    r = subprocess.run(launcher_cmd() + list(args), env=env, capture_output=True, text=True,
                       timeout=timeout, cwd=cwd or REPO)
    r.elapsed = time.monotonic() - t0
    return r


class RunLogs:
    """Orders read from one run directory's service logs."""

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.placed = {}       # order id -> (source, trace id, instance)
        self.served = collections.Counter()
        self.rejected = {}     # order id -> stage
        self.rejected_count = collections.Counter()
        self.served_by = collections.defaultdict(list)  # instance -> order ids
        self.log_trace = {}    # order id -> trace ids seen on its lines
        self.bad_lines = []
        # service -> kind -> count of ORDER_LINES lines seen with non-zero ids
        self.line_kinds = collections.defaultdict(collections.Counter)
        self.line_ids = collections.defaultdict(list)  # order id -> [(service, kind, trace id, span id)]
        self.dish = {}         # order id -> the dish its ready line names
        for name in sorted(os.listdir(run_dir)):
            if not name.endswith(".log"):
                continue
            instance = name[:-4]
            service = re.sub(r"-\d+$", "", instance) if instance.startswith("kitchen-service-") or \
                instance.startswith("order-validation-") else instance
            with open(os.path.join(run_dir, name), encoding="utf-8", errors="replace") as f:
                for line in f:
                    line = line.rstrip("\n")
                    if " - INFO - " in line and not RE_LINE.match(line):
                        self.bad_lines.append(line)
                    for kind, (rx, grp) in _ORDER_LINE_RE.get(service, {}).items():
                        m = rx.search(line)
                        if not m:
                            continue
                        tid, sid = m.group(m.lastindex - 1), m.group(m.lastindex)
                        if tid != "0" * 32 and sid != "0" * 16:
                            self.line_kinds[service][kind] += 1
                        if grp is not None:
                            self.line_ids[m.group(grp)].append((service, kind, tid, sid))
                            if kind == "ready":
                                self.dish[m.group(2)] = m.group(1)
                    m = RE_PLACED.search(line)
                    if m:
                        self.placed[m.group(1)] = (SOURCES[service], m.group(2), instance)
                        continue
                    m = RE_REJECTED.search(line)
                    if m:
                        self.rejected[m.group(1)] = REASON_STEP.get(m.group(2), "unknown reason " + m.group(2))
                        self.rejected_count[m.group(1)] += 1
                        self.log_trace.setdefault(m.group(1), set()).add(m.group(3))
                        continue
                    m = RE_SERVED.search(line)
                    if m:
                        self.served[m.group(2)] += 1
                        self.served_by[instance].append(m.group(2))
                        self.log_trace.setdefault(m.group(2), set()).add(m.group(3))

    def missing_lines(self, services=None):
        """(service, kind) of ORDER_LINES never logged with real ids."""
        return [(s, k) for s in (services or ORDER_LINES) for k in ORDER_LINES[s] if not self.line_kinds[s][k]]

    def outcome(self, oid):
        if oid in self.rejected:
            return ("rejected", self.rejected[oid])
        return "served"



def assert_every_order_once(out, err, run_dir, orders, returncode):
    """A launcher run that rode through a fault: exit 0, no traceback, every one of
    `orders` placed and served or rejected exactly once (the summary and the logs agree),
    none handled twice. Returns the run's RunLogs."""
    assert returncode == 0, out[-3000:] + err[-3000:]
    assert "Traceback" not in out + err
    m = re.search(r"Orders in [0-9.]+ s: placed (\d+), served (\d+), rejected (\d+), unfinished (\d+)", out)
    assert m, out
    placed, served, rejected, unfinished = map(int, m.groups())
    assert placed == orders and served + rejected == placed and unfinished == 0, m.group(0)
    assert "handled twice" not in out, out
    logs = RunLogs(str(run_dir))
    assert len(logs.placed) == orders
    for oid in logs.placed:
        assert logs.served[oid] + logs.rejected_count[oid] == 1, oid
    return logs


def kitchen_service(lang, cfg, ituna_lua, bootstrap, spans_path):
    """(command, environment) to run the shipped kitchen-service alone in `lang`
    ("python" or "lua") on `bootstrap`, its spans going to the JSON-lines file spans_path."""
    env = launcher_env({"ITUNA_KAFKA_BOOTSTRAP": bootstrap, "OTEL_TRACES_EXPORTER": "file",
                        "ITUNA_TRACES_FILE": str(spans_path), "OTEL_SERVICE_NAME": "kitchen-service",
                        "PYTHONUNBUFFERED": "1"})
    if lang == "python":
        return [sys.executable, "-u", os.path.join(SCRIPTS, "python", "kitchen-service.py"), "--config", cfg], env
    return [ituna_lua, "--schema", os.path.join(SCRIPTS, "restaurant-schema.ini"), "--config", cfg,
            os.path.join(SCRIPTS, "lua", "kitchen-service.lua")], env

def consume_outcomes(bootstrap, topics, want_ids, timeout=45):
    """Read the ready and rejected topics from the start: order id -> list of
    (topic, payload, traceparent header)."""
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "e2e-check-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topics["ready"], topics["rejected"]])
    seen = collections.defaultdict(list)
    deadline = time.monotonic() + timeout
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                if want_ids <= set(seen):
                    # everything is there; keep reading briefly to catch duplicates
                    quiet_until = quiet_until or time.monotonic() + 2
                    if time.monotonic() >= quiet_until:
                        break
                continue
            if m.error():
                continue
            payload = json.loads(m.value())
            headers = dict((k, v.decode() if v else None) for k, v in (m.headers() or []))
            seen[payload.get("order_id")].append((m.topic(), payload, headers.get("traceparent")))
    finally:
        c.close()
    return seen


def jaeger_trace(query_url, trace_id):
    """Spans of one trace from Jaeger's /api/v3 (OTLP JSON); [] when not (yet) there."""
    try:
        answer = fetch_json(f"{query_url}/api/v3/traces/{trace_id}")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise
    return traceshape.spans_of_jaeger_v3(answer)


def check_trace_in_jaeger(query_url, oid, source, outcome, trace_id, topics, timeout=30):
    """Poll Jaeger until the order's trace passes the checks (ingestion is
    asynchronous); the last failure is raised when time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        spans = jaeger_trace(query_url, trace_id)
        try:
            traceshape.check_order_trace(spans, oid, source, outcome, topics)
            return spans
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.5)


def processes_in(directory):
    """Pids of live processes whose working directory is under directory."""
    out = []
    directory = os.path.realpath(str(directory))
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cwd == directory or cwd.startswith(directory + os.sep):
            out.append(int(pid))
    return out
