"""ituna-restaurant: run the ITuna restaurant - five services, each its own OS
process in Lua or Python, talking through Kafka - and report where orders spend
their time.

Kafka, first match: --bootstrap HOST:PORT, ITUNA_KAFKA_BOOTSTRAP, then the config:
[restaurant] broker = embedded, else [queue] bootstrap, else the seed's [queue]
host/port. Nothing set (or --bootstrap embedded, or broker = embedded as in the
shipped config): the launcher starts the embedded broker (librdkafka's built-in
Kafka-protocol test cluster, not Apache Kafka) inside this process on 127.0.0.1 and
hands its address to every service.

Traces: --otlp-endpoint URL (or an OTLP endpoint in the environment or the config)
sends spans to a collector or Jaeger; otherwise every service writes OTLP JSON lines
into the run directory and the launcher merges them into --traces-file at the end.
Either way the run ends with ituna-report's table of where the time goes: from the
merged file, which with an endpoint holds each service's local copy of what it
exported (the core's [exporter] copy-file), or from the traces read back through
--jaeger-query URL (Jaeger's query API; they are also saved as the run's traces file).

The run ends after --orders N (split across the ordering services by their rates),
after --duration S, or on Ctrl-C; then the launcher waits until every placed order
is served or rejected, stops the services with SIGTERM (they commit offsets and
flush spans), merges the traces and prints the per-stage summary. A service that
exits non-zero after SIGTERM (a failed commit or flush), or that has to be killed
because it did not stop in time, fails the run (exit 1) with its exit code and last
log lines. A service that stopped well but could not export all its spans exits 3;
the launcher names it with its counts and exits 3 itself (the traces are incomplete).
The configuration file is checked whole by the core before anything starts.
"""

import argparse
import collections
import datetime
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

__all__ = ["main", "Restaurant", "RestaurantError"]

SERVICES = ["order-validation", "kitchen-service", "website-ordering", "onsite-ordering",
            "direct-kitchen-ordering"]
CONSUMERS = ("order-validation", "kitchen-service")
ORDERING = {"website-ordering": "website", "onsite-ordering": "on-site", "direct-kitchen-ordering": "direct"}
# The restaurant's config sections, types and defaults (one place; the core checks them)
SCHEMA_FILE = "restaurant-schema.ini"
# What the restaurant's traces mean to ituna-report (served, rejected, sources), as data
PROFILE_FILE = "restaurant-profile.ini"

_UUID = r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
RE_READY = re.compile(r" - INFO - READY (\S+)")
RE_DONE = re.compile(r" - INFO - DONE (\S+)")
RE_ASSIGNED = re.compile(r" - INFO - ASSIGNED (\S+) partitions=(\d+)")
RE_PLACED = re.compile(r" - INFO - (?:Placing an online order with id|Placing an on-site order with id"
                       r"|Placing a direct order for the kitchen:) " + _UUID + r"(?: trace_id=([0-9a-f]{32}))?")
RE_VALIDATED = re.compile(r" - INFO - Validated and republished order for kitchen: " + _UUID)
RE_REJECTED = re.compile(r" - INFO - Rejected order " + _UUID + ":")
RE_SERVED = re.compile(r" - INFO - Your order is ready\. .* - Order id = " + _UUID)

TAIL_LINES = 15


# A service's (and the launcher's) exit status when everything ran but spans were lost.
EXIT_SPANS_LOST = 3


class RestaurantError(Exception):
    """A run that cannot start or did not finish cleanly; the message says why."""


# ---- locating the scripts and ituna-lua ----------------------------------------------

def _package_dir():
    return os.path.dirname(os.path.abspath(__file__))


def find_scripts_dir(explicit=None):
    """scripts/ holding python/ and lua/: --scripts-dir, $ITUNA_SCRIPTS_DIR, the copy
    installed with this package (ituna_restaurant/scripts/), the source tree's scripts/
    this package lives in, or the current directory and its parents."""
    candidates = []
    if explicit:
        candidates.append(explicit)
    if os.environ.get("ITUNA_SCRIPTS_DIR"):
        candidates.append(os.environ["ITUNA_SCRIPTS_DIR"])
    pkg = _package_dir()
    candidates.append(os.path.join(pkg, "scripts"))
    candidates.append(os.path.dirname(pkg))
    d = os.getcwd()
    while True:
        candidates.append(os.path.join(d, "scripts"))
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    for c in candidates:
        if os.path.isdir(os.path.join(c, "python")) and os.path.isdir(os.path.join(c, "lua")):
            return os.path.abspath(c)
    if explicit:
        raise RestaurantError(f"--scripts-dir {explicit}: no python/ and lua/ service scripts there")
    raise RestaurantError("cannot find the restaurant's scripts/ directory (python/ and lua/); "
                          "run from the source tree or set ITUNA_SCRIPTS_DIR")


def find_ituna_lua(scripts_dir):
    """$ITUNA_LUA, ituna-lua on PATH, next to this Python, the wheel's own, or a build tree
    of the repository."""
    env = os.environ.get("ITUNA_LUA")
    if env:
        if os.access(env, os.X_OK):
            return env
        raise RestaurantError(f"ITUNA_LUA={env} is not an executable file")
    found = shutil.which("ituna-lua")
    if found:
        return found
    near = os.path.join(os.path.dirname(sys.executable), "ituna-lua")
    if os.access(near, os.X_OK):
        return near
    # the binary wheel carries its own (tools/build-wheel.sh)
    import ituna

    shipped = os.path.join(os.path.dirname(os.path.abspath(ituna.__file__)), "bin", "ituna-lua")
    if os.access(shipped, os.X_OK):
        return shipped
    # A source tree: the README's build/ first, then other build directories,
    # newest first, sanitizer builds last (slow, and noisy on stderr).
    root = os.path.dirname(scripts_dir)
    hits = [p for p in glob.glob(os.path.join(root, "build*", "**", "ituna-lua"), recursive=True)
            if os.path.isfile(p) and os.access(p, os.X_OK)]
    hits.sort(key=lambda p: (os.path.relpath(p, root).split(os.sep)[0] != "build",
                             "san" in os.path.relpath(p, root).split(os.sep)[0], -os.path.getmtime(p)))
    return hits[0] if hits else None


# ---- configuration ---------------------------------------------------------------------

def _free_admin_clients():
    """Destroy confluent-kafka admin clients now, while the broker is up: one left to a
    later garbage collection can be destroyed during a broker outage, where its
    librdkafka aborts the launcher (rd_kafka_enq_once_del_source_return assertion,
    seen in the fault suite)."""
    import gc

    gc.collect()


def find_data_file(scripts_dir, name):
    """One of the restaurant's data files (its config schema, its report profile): the
    scripts directory's, else the one shipped with this package (installed:
    ituna_restaurant/scripts/; source tree: scripts/)."""
    for d in (scripts_dir, os.path.join(_package_dir(), "scripts"), os.path.dirname(_package_dir())):
        if d is None:
            continue
        path = os.path.join(d, name)
        if os.path.isfile(path):
            return os.path.abspath(path)
    raise RestaurantError(f"cannot find the restaurant's {name}")


def check_config(path, schema=None, env=True):
    """Validate the whole file with the core and the restaurant's schema, as every
    service will when it starts (sections, keys, values, duplicates, file:line in the
    message), so a bad file stops the launcher before it starts a broker or a service.
    Any file content, binary included, gives a RestaurantError, never a traceback.
    Returns {section: {key: value}}, the schema's defaults included."""
    import ituna

    if schema is None:
        schema = find_data_file(None, SCHEMA_FILE)
    try:
        # env=True: the environment counts as the services see it
        values = ituna.load_config(path, schema=schema, env=env)
    except ituna.Error as exc:  # ConfigError and the rest (an unreadable file)
        msg = str(exc)
        raise RestaurantError(msg if path in msg else f"{path}: {msg}") from None
    for section, keys in values.items():
        for key, value in keys.items():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # undecodable bytes (surrogateescape)
                raise RestaurantError(f"{path}: [{section}] {key}: the value is not UTF-8 text") from None
    return values


class RunConfig:
    """The values the launcher itself reads from the INI file, loaded by the core with
    the restaurant's schema: the whole file is checked (file:line: [section] key
    messages) and keys it leaves out read as the schema's defaults."""

    def __init__(self, path, schema):
        self.path = path
        check_config(path, schema)
        self.values = check_config(path, schema, env=False)

    def get(self, section, key, default=None):
        v = self.values.get(section, {}).get(key)
        return v if v not in (None, "") else default

    def language(self, service):
        return self.get("services", service)

    def rate(self, service):
        return float(self.get("rates", service))

    def topic(self, section, key):
        return self.get(section, key)


# ---- one service process ----------------------------------------------------------------

class Proc:
    """One service instance: its process (own process group), its log file, the
    tail of its output, and the events read from it."""

    def __init__(self, instance, service, lang, cmd, env, log_path):
        self.instance = instance
        self.service = service
        self.lang = lang
        self.cmd = cmd
        self.env = env
        self.log_path = log_path
        self.popen = None
        self.tail = collections.deque(maxlen=TAIL_LINES)
        self.ready = threading.Event()
        self.assigned = threading.Event()  # printed ASSIGNED: its consumer group gave it partitions
        self.partitions = None             # the count that line reported
        self.done = False          # printed DONE (an ordering service that finished its orders)
        self.reader = None
        self.returncode = None
        self.stop_sent = False
        self.killed = False        # did not stop after SIGTERM in time: SIGKILLed

    def start(self, on_line):
        kwargs = {}
        if sys.platform.startswith("linux"):
            kwargs["preexec_fn"] = _die_with_parent
        self.popen = subprocess.Popen(self.cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
        self.reader = threading.Thread(target=self._read, args=(on_line,), name=f"log-{self.instance}", daemon=True)
        self.reader.start()

    def _read(self, on_line):
        with open(self.log_path, "a", encoding="utf-8", errors="replace") as log:
            for raw in self.popen.stdout:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                log.write(line + "\n")
                log.flush()
                self.tail.append(line)
                m = RE_ASSIGNED.search(line)
                if RE_READY.search(line):
                    self.ready.set()
                elif m:
                    self.partitions = int(m.group(2))
                    self.assigned.set()
                elif RE_DONE.search(line):
                    self.done = True
                on_line(self, line)

    def poll(self):
        if self.popen is None:
            return None
        rc = self.popen.poll()
        if rc is not None:
            self.returncode = rc
        return rc

    def signal(self, sig):
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def wait_reader(self, timeout=5.0):
        if self.reader is not None:
            self.reader.join(timeout)


def _die_with_parent():
    """In the child before exec: get SIGKILL if the launcher dies without cleaning up,
    so a killed launcher leaves no orphan services."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


# ---- counting orders from the services' log lines ---------------------------------------------

class Tally:
    """Orders seen in the log lines, by id: placed (with source), validated, rejected,
    served. Thread-safe (one reader thread per service)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.placed = {}                       # order id -> instance that placed it
        self.trace_of = {}                     # order id -> its trace id (from the log line)
        self.validated = collections.Counter()
        self.rejected = collections.Counter()
        self.served = collections.Counter()

    def on_line(self, proc, line):
        m = RE_PLACED.search(line)
        if m:
            with self.lock:
                self.placed[m.group(1)] = proc.service
                if m.group(2) and m.group(2) != "0" * 32:
                    self.trace_of[m.group(1)] = m.group(2)
            return
        m = RE_VALIDATED.search(line)
        if m:
            with self.lock:
                self.validated[m.group(1)] += 1
            return
        m = RE_REJECTED.search(line)
        if m:
            with self.lock:
                self.rejected[m.group(1)] += 1
            return
        m = RE_SERVED.search(line)
        if m:
            with self.lock:
                self.served[m.group(1)] += 1

    def counts(self):
        with self.lock:
            return (len(self.placed), sum(self.validated.values()), sum(self.rejected.values()),
                    sum(self.served.values()))

    def unfinished(self):
        with self.lock:
            return [o for o in self.placed if o not in self.served and o not in self.rejected]

    def summary(self):
        with self.lock:
            by_source = collections.OrderedDict()
            for service in ORDERING:
                by_source[ORDERING[service]] = {"placed": 0, "served": 0, "rejected": 0, "unfinished": 0}
            for oid, service in self.placed.items():
                row = by_source[ORDERING.get(service, service)]
                row["placed"] += 1
                if oid in self.served:
                    row["served"] += 1
                elif oid in self.rejected:
                    row["rejected"] += 1
                else:
                    row["unfinished"] += 1
            twice = sorted(o for o in set(self.served) | set(self.rejected)
                           if self.served[o] + self.rejected[o] > 1)
            unknown = sorted(o for o in set(self.served) | set(self.rejected) if o not in self.placed)
            return by_source, twice, unknown


# ---- progress ---------------------------------------------------------------------------------

class Progress:
    """Orders placed/validated/rejected/served and their rates over the last few
    seconds: one updating line on a terminal, a plain line every few seconds otherwise."""

    WINDOW = 5.0

    def __init__(self, tally, stream, enabled=True, interval=5.0):
        self.tally = tally
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.interval = 0.5 if self.tty else interval
        self.started = time.monotonic()
        self.last = 0.0
        self.history = collections.deque()
        self.dirty = False

    def tick(self, force=False):
        now = time.monotonic()
        counts = self.tally.counts()
        self.history.append((now, counts))
        while len(self.history) > 2 and now - self.history[0][0] > self.WINDOW:
            self.history.popleft()
        if not self.enabled or (not force and now - self.last < self.interval):
            return
        self.last = now
        t0, c0 = self.history[0]
        span = max(now - t0, 1e-9)
        rates = [(c - b) / span for c, b in zip(counts, c0)] if span > 0.5 else [0.0] * 4
        placed, validated, rejected, served = counts
        text = (f"[{now - self.started:6.1f}s] placed {placed} ({rates[0]:.1f}/s)  validated {validated} "
                f"({rates[1]:.1f}/s)  rejected {rejected}  served {served} ({rates[3]:.1f}/s)  "
                f"in flight {max(0, placed - rejected - served)}")
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self.dirty = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def end_line(self):
        if self.tty and self.dirty:
            self.stream.write("\n")
            self.stream.flush()
            self.dirty = False


# ---- the run ------------------------------------------------------------------------------------

def split_orders(total, rates):
    """Split total orders across sources in proportion to their rates (largest remainder)."""
    active = {s: r for s, r in rates.items() if r > 0}
    if not active or total <= 0:
        return {s: 0 for s in rates}
    whole = sum(active.values())
    exact = {s: total * r / whole for s, r in active.items()}
    share = {s: int(v) for s, v in exact.items()}
    left = total - sum(share.values())
    for s in sorted(active, key=lambda s: (exact[s] - share[s], active[s]), reverse=True)[:left]:
        share[s] += 1
    return {s: share.get(s, 0) for s in rates}


def parse_assignments(items, what, allowed_values=None, services=SERVICES):
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip()
        value = value.strip()
        if not sep or not name or not value:
            raise RestaurantError(f"--{what} {item!r}: expected SERVICE=VALUE")
        if name not in services:
            raise RestaurantError(f"--{what} {item!r}: unknown service {name!r} (one of {', '.join(services)})")
        if allowed_values is not None and value not in allowed_values:
            raise RestaurantError(f"--{what} {item!r}: {value!r} is not one of {', '.join(allowed_values)}")
        out[name] = value
    return out


class Restaurant:
    """One run of the restaurant. Use run(); it returns the exit status."""

    def __init__(self, args, out=sys.stdout, err=sys.stderr):
        self.args = args
        self.out = out
        self.err = err
        self.procs = []
        self.broker = None
        self.tally = Tally()
        self.interrupted = 0
        self.failed = None           # (proc, returncode) of a service that died
        self.stop_failures = []      # services that did not stop cleanly on SIGTERM
        self.spans_lost = []         # services that stopped well but lost spans (exit 3)
        self.restarts = collections.Counter()  # instance -> restarts after a crash
        self.consumers_ready_at = None

    # -- set-up --
    def _say(self, text):
        self.out.write(text + "\n")
        self.out.flush()

    def prepare(self):
        a = self.args
        self.scripts_dir = find_scripts_dir(a.scripts_dir)
        self.config_path = os.path.abspath(a.config or os.path.join(self.scripts_dir, "ituna-config.ini"))
        if not os.path.isfile(self.config_path):
            raise RestaurantError(f"config file not found: {self.config_path}")
        self.schema_path = find_data_file(self.scripts_dir, SCHEMA_FILE)
        self.profile_path = find_data_file(self.scripts_dir, PROFILE_FILE)
        self.cfg = RunConfig(self.config_path, self.schema_path)

        langs = {s: self.cfg.language(s) for s in SERVICES}
        langs.update(parse_assignments(a.lang, "lang", ("lua", "python")))
        self.langs = langs

        scale = {s: 1 for s in SERVICES}
        cfg_scale = int(self.cfg.get("restaurant", "scale-kitchen-service"))
        scale["kitchen-service"] = cfg_scale
        for s, v in parse_assignments(a.scale, "scale").items():
            if s not in CONSUMERS:
                raise RestaurantError(f"--scale {s}={v}: only consumer services scale "
                                      f"({', '.join(CONSUMERS)}); ordering rates are set in [rates]")
            try:
                n = int(v)
            except ValueError:
                raise RestaurantError(f"--scale {s}={v}: expected a whole number") from None
            if not 1 <= n <= 64:
                raise RestaurantError(f"--scale {s}={v}: expected 1 to 64 instances")
            scale[s] = n
        self.scale = scale

        orders = a.orders
        duration = a.duration
        if orders is None and duration is None:
            orders = int(self.cfg.get("restaurant", "orders"))
            duration = float(self.cfg.get("restaurant", "duration"))
        if orders is not None and orders < 0:
            raise RestaurantError("--orders must be >= 0")
        if duration is not None and duration < 0:
            raise RestaurantError("--duration must be >= 0")
        self.orders = orders or None
        self.duration = duration or None
        if self.orders is None and self.duration is None:
            raise RestaurantError("nothing ends the run: give --orders N or --duration S (or press Ctrl-C)")

        self.rates = {s: self.cfg.rate(s) for s in ORDERING}
        if all(r <= 0 for r in self.rates.values()):
            raise RestaurantError(f"{self.config_path}: every rate in [rates] is 0, so no order is ever placed")
        self.limits = split_orders(self.orders, self.rates) if self.orders else {s: None for s in ORDERING}

        if any(l == "lua" for l in langs.values()):
            self.ituna_lua = find_ituna_lua(self.scripts_dir)
            if self.ituna_lua is None:
                lua_services = ", ".join(s for s in SERVICES if langs[s] == "lua")
                raise RestaurantError(
                    f"ituna-lua not found, but these services run in Lua: {lua_services}. Build it "
                    "(see README.md), put it on PATH or set ITUNA_LUA=/path/to/ituna-lua, or run them "
                    "in Python with --lang SERVICE=python")
        else:
            self.ituna_lua = None

        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        if a.run_dir:
            self.run_dir = os.path.abspath(a.run_dir)
        else:
            log_dir = self.cfg.get("restaurant", "log-dir", "logs")
            self.run_dir = os.path.abspath(os.path.join(log_dir, f"run-{stamp}"))
        os.makedirs(self.run_dir, exist_ok=True)
        self.traces_dir = os.path.join(self.run_dir, "traces")
        self.traces_file = os.path.abspath(a.traces_file) if a.traces_file else os.path.join(self.run_dir, "traces.jsonl")

        self.topics = {
            "orders": self.cfg.topic("initial-order", "queue-topic"),
            "kitchen": self.cfg.topic("kitchen-queue", "queue-topic"),
            "rejected": self.cfg.topic("topics", "rejected"),
            "ready": self.cfg.topic("topics", "ready"),
        }

    def _exporter_env(self):
        """The exporter settings every service gets: an OTLP endpoint, or a JSON-lines
        file of its own in the run directory."""
        a = self.args
        if a.otlp_endpoint:
            self.export_mode = "otlp"
            self.export_target = a.otlp_endpoint
            return {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": a.otlp_endpoint}
        env_endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        cfg_endpoint = self.cfg.get("exporter", "traces-endpoint") or self.cfg.get("exporter", "endpoint")
        chosen = os.environ.get("OTEL_TRACES_EXPORTER") or self.cfg.get("exporter", "type")
        if chosen in ("console", "none"):
            self.export_mode = chosen
            self.export_target = None
            return {}
        if env_endpoint or cfg_endpoint or chosen == "otlp":
            self.export_mode = "otlp"
            self.export_target = env_endpoint or cfg_endpoint or "http://localhost:4318"
            return {}
        self.export_mode = "file"
        self.export_target = self.traces_file
        return {"OTEL_TRACES_EXPORTER": "file"}

    @property
    def local_traces(self):
        """True when the run's traces come from the services' own files: the file
        exporter's, or with an endpoint their copy-file copies (unless --jaeger-query
        reads them back from Jaeger instead)."""
        return self.export_mode == "file" or (self.export_mode == "otlp" and not self.args.jaeger_query)

    def _config_broker(self):
        """(bootstrap, where it came from) named by the config, or (None, None) for the
        embedded broker: [restaurant] broker, then [queue] bootstrap, then the seed's
        [queue] host and port."""
        path = self.config_path
        mode = self.cfg.get("restaurant", "broker")
        if mode == "embedded":
            return None, None
        bootstrap = self.cfg.get("queue", "bootstrap")
        if bootstrap:
            return bootstrap, f"[queue] bootstrap of {path}"
        host = self.cfg.get("queue", "host")
        if host:
            return f"{host}:{self.cfg.get('queue', 'port') or '9092'}", f"[queue] host/port of {path}"
        if mode == "queue":
            raise RestaurantError(f"{path}: [restaurant] broker = queue, but [queue] names no broker "
                                  "(bootstrap, or host and port)")
        return None, None

    def _kafka(self):
        a = self.args
        chosen = (a.bootstrap or "").strip()
        if chosen == "embedded":
            bootstrap, origin = None, None
        elif chosen:
            bootstrap, origin = chosen, "--bootstrap"
        elif os.environ.get("ITUNA_KAFKA_BOOTSTRAP"):
            bootstrap, origin = os.environ["ITUNA_KAFKA_BOOTSTRAP"], "ITUNA_KAFKA_BOOTSTRAP"
        else:
            bootstrap, origin = self._config_broker()
        self.bootstrap_origin = origin
        if bootstrap:
            self.bootstrap = bootstrap
            self.kafka_kind = "broker"
            self._ensure_partitions()
            _free_admin_clients()
            return
        import ituna
        # librdkafka's test cluster auto-creates topics with its own partition count
        # (4 in librdkafka 2.0); ask for more only when a scaled group needs them.
        parts = max([4, self.args.partitions or 0] + list(self.scale.values()))
        try:
            self.broker = ituna.start_embedded_broker(n_brokers=1, partitions=parts)
        except ituna.Error as exc:
            raise RestaurantError(f"cannot start the embedded broker with {parts} partitions per topic: {exc}") from None
        # Its topics exist before any service subscribes: librdkafka 2.12 (the wheel's)
        # gives a group no partitions of a topic nothing was produced to yet.
        try:
            for topic in self.topics.values():
                self.broker.create_topic(topic, parts)
        except ituna.Error as exc:
            raise RestaurantError(f"cannot create the topics on the embedded broker: {exc}") from None
        self.bootstrap = _broker_bootstrap(self.broker)
        self.kafka_kind = "embedded"

    def _ensure_partitions(self):
        """On a real broker: create the restaurant's topics that are missing (so consumers
        never wait on a topic that does not exist yet), and give a scaled consumer group
        at least as many partitions as members."""
        if self.args.no_topic_setup:
            return
        why = _unreachable(self.bootstrap)
        if why:
            raise RestaurantError(f"cannot reach Kafka at {self.bootstrap} (from {self.bootstrap_origin}): {why}. "
                                  "Name a reachable broker with --bootstrap HOST:PORT, or run on the embedded "
                                  "test broker with --bootstrap embedded")
        need = {t: 0 for t in self.topics.values()}
        need[self.topics["orders"]] = self.scale["order-validation"]
        need[self.topics["kitchen"]] = self.scale["kitchen-service"]
        if self.args.partitions:
            need = {t: max(n, self.args.partitions) for t, n in need.items()}
        try:
            from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
        except ImportError:
            if any(n > 1 for n in need.values()):
                self.err.write("note: confluent-kafka is not installed, so topic partitions were not checked; "
                               f"scaled consumers need {need}\n")
            return
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 3})
        try:
            md = admin.list_topics(timeout=15)
        except Exception as exc:
            raise RestaurantError(f"cannot reach Kafka at {self.bootstrap}: {exc}") from None
        create, grow = [], []
        for topic, n in need.items():
            t = md.topics.get(topic)
            if t is None or t.error is not None:
                # -1: the broker's default partition count (num.partitions)
                create.append(NewTopic(topic, num_partitions=n if n > 1 else -1, replication_factor=-1))
            elif n > 1 and len(t.partitions) < n:
                grow.append(NewPartitions(topic, n))
        futures = {}
        if create:
            futures.update(admin.create_topics(create, request_timeout=15))
        if grow:
            futures.update(admin.create_partitions(grow, request_timeout=15))
        for topic, fut in futures.items():
            try:
                fut.result(20)
            except Exception as exc:  # created meanwhile by someone else: fine
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise RestaurantError(f"cannot set up topic {topic} ({need[topic] or 'default'} partitions): "
                                          f"{exc}") from None

    def _service_cmd(self, service, lang):
        if lang == "python":
            script = os.path.join(self.scripts_dir, "python", f"{service}.py")
            cmd = [sys.executable, "-u", script, "--config", self.config_path]
        else:
            script = os.path.join(self.scripts_dir, "lua", f"{service}.lua")
            cmd = [self.ituna_lua, "--config", self.config_path, script]
        if not os.path.isfile(script):
            raise RestaurantError(f"service script missing: {script}")
        return cmd

    def _base_env(self, export_env):
        env = dict(os.environ)
        env.update(export_env)
        env["ITUNA_KAFKA_BOOTSTRAP"] = self.bootstrap
        env["ITUNA_CONFIG"] = self.config_path
        env["ITUNA_CONFIG_SCHEMA"] = self.schema_path  # the services register it (Lua host and Python)
        env["PYTHONUNBUFFERED"] = "1"
        # The services import the same ituna package as this launcher.
        import ituna
        pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(ituna.__file__)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in [pkg_parent, env.get("PYTHONPATH", "")] if p)
        lua_dir = os.path.join(self.scripts_dir, "lua")
        env["LUA_PATH"] = f"{lua_dir}/?.lua;" + (env.get("LUA_PATH") or ";")
        env.pop("ITUNA_ORDERS_LIMIT", None)
        return env

    def build_procs(self):
        export_env = self._exporter_env()
        base = self._base_env(export_env)
        if self.local_traces:
            os.makedirs(self.traces_dir, exist_ok=True)
        for service in SERVICES:
            lang = self.langs[service]
            if service in ORDERING:
                if self.rates[service] <= 0 or self.limits[service] == 0:
                    continue
            n = self.scale[service]
            for i in range(1, n + 1):
                instance = service if n == 1 else f"{service}-{i}"
                env = dict(base)
                env["OTEL_SERVICE_NAME"] = service
                env["ITUNA_SERVICE_INSTANCE"] = instance
                if self.local_traces:  # with an endpoint the spans go out and a copy stays for the table
                    var = "ITUNA_TRACES_FILE" if self.export_mode == "file" else "ITUNA_TRACES_COPY_FILE"
                    env[var] = os.path.join(self.traces_dir, f"{instance}.jsonl")
                if service in ORDERING and self.limits[service] is not None:
                    env["ITUNA_ORDERS_LIMIT"] = str(self.limits[service])
                if service in CONSUMERS and self.kafka_kind != "embedded":
                    # static membership: a restarted instance gets its partitions back at once
                    env["ITUNA_GROUP_INSTANCE_ID"] = instance
                self.procs.append(Proc(instance, service, lang, self._service_cmd(service, lang), env,
                                       os.path.join(self.run_dir, f"{instance}.log")))

    # -- supervision --
    def _on_signal(self, signum, frame):
        self.interrupted += 1
        if self.interrupted >= 2:
            raise KeyboardInterrupt

    def _check_deaths(self, expected_exit=()):
        """The first service that exited unexpectedly, or None. Ordering services exit
        0 by themselves after placing their share (they print DONE)."""
        for p in self.procs:
            rc = p.poll()
            if rc is None or p.stop_sent:
                continue
            if rc == 0 and (p.done or p.service in expected_exit):
                continue
            if rc == EXIT_SPANS_LOST and (p.done or p.service in expected_exit):
                self._note_spans_lost(p)  # finished its orders; only its spans did not all get out
                continue
            return p
        return None

    def _report_death(self, p, how=None):
        p.wait_reader(2.0)
        rc = p.returncode
        if how is None:
            how = f"was killed by signal {-rc}" if rc is not None and rc < 0 else f"exited with code {rc}"
        self.err.write(f"\nerror: service {p.instance} ({p.lang}) {how}. Last lines of {p.log_path}:\n")
        for line in list(p.tail):
            self.err.write(f"    {line}\n")
        self.err.flush()

    def _check_stopped(self, p, timeout):
        """After p ended: a stop that was not clean fails the run. A service asked to stop
        exits 0 once it has committed its offsets and flushed its spans; one that exits
        otherwise, or had to be killed, may have lost both. (An ordering service that
        ended by itself exits 0 too; the service that died during the run is reported
        already.)"""
        rc = p.returncode
        if p is self.failed or p in self.stop_failures or (rc == 0 and not p.killed):
            return
        if rc == EXIT_SPANS_LOST and not p.killed:
            self._note_spans_lost(p)
            return
        if p.killed:
            how = (f"did not stop within {timeout:g} s of SIGTERM and was killed (exit {rc}): "
                   "its offsets and spans may be lost")
        elif rc is None:
            how = "could not be stopped"
        elif rc < 0:
            how = f"was killed by signal {-rc} while stopping"
        else:
            how = (f"exited with code {rc}" + (" after SIGTERM" if p.stop_sent else "") +
                   " (a clean stop exits 0: a commit or a span flush may have failed)")
        self.stop_failures.append(p)
        self._report_death(p, how)

    def _note_spans_lost(self, p):
        if p not in self.spans_lost:
            self.spans_lost.append(p)

    def _start_group(self, procs, deadline):
        for p in procs:
            p.start(self.tally.on_line)
        while True:
            dead = self._check_deaths()
            if dead is not None:
                self.failed = dead
                self._report_death(dead)
                return False
            if all(p.ready.is_set() for p in procs):
                return True
            if self.interrupted:
                return False
            if time.monotonic() > deadline:
                late = ", ".join(p.instance for p in procs if not p.ready.is_set())
                raise RestaurantError(f"not ready after {self.args.ready_timeout:.0f} s: {late} "
                                      f"(logs in {self.run_dir})")
            time.sleep(0.05)

    def _wait_groups_stable(self, timeout=30.0):
        """Wait until each consumer group has all its members with partitions assigned,
        so no rebalance moves partitions while orders are in flight (a message handled
        by one member and not yet committed would be handled again by the next).
        On the embedded broker: every consuming instance's ASSIGNED line (bounded by
        --embedded-join-wait). On a real broker: confluent-kafka's admin client;
        without it (or if the broker cannot describe groups) the run goes on at once."""
        groups = {f"ituna-{s}": self.scale[s] for s in CONSUMERS}
        if self.args.no_topic_setup:
            return
        if self.kafka_kind == "embedded":
            # librdkafka's test cluster cannot describe groups: each consuming service
            # says ASSIGNED once its member has partitions (it polls until then, so
            # the group forms: the broker's 3 s initial rebalance delay, SyncGroup,
            # OffsetFetch). Wait for every instance, scaled ones too, so the first
            # orders do not sit in a topic while the group forms (it would show as
            # queue wait). --embedded-join-wait bounds the wait.
            procs = [p for p in self.procs if p.service in CONSUMERS]
            end = (self.consumers_ready_at or time.monotonic()) + self.args.embedded_join_wait
            while not all(p.assigned.is_set() for p in procs):
                if self.interrupted or self._check_deaths() is not None:
                    return
                if time.monotonic() >= end:
                    late = ", ".join(p.instance for p in procs if not p.assigned.is_set())
                    self.err.write(f"warning: no partitions assigned after {self.args.embedded_join_wait:g} s: "
                                   f"{late}; starting the orders anyway\n")
                    return
                time.sleep(0.05)
            return
        try:
            from confluent_kafka.admin import AdminClient
        except ImportError:
            return
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 3})
        deadline = time.monotonic() + timeout
        pending = dict(groups)
        while pending and time.monotonic() < deadline and not self.interrupted:
            if self._check_deaths() is not None:
                return
            try:
                futures = admin.describe_consumer_groups(list(pending), request_timeout=5)
                for gid, fut in futures.items():
                    d = fut.result(6)
                    members = [m for m in d.members if m.assignment and m.assignment.topic_partitions]
                    if str(d.state).endswith("STABLE") and len(d.members) == pending[gid] and \
                            len(members) == len(d.members):
                        del pending[gid]
            except Exception as exc:
                self.err.write(f"note: cannot describe consumer groups ({exc}); not waiting for them to settle\n")
                return
            if pending:
                time.sleep(0.2)
        if pending:
            self.err.write(f"warning: consumer groups not settled after {timeout:.0f} s: {', '.join(pending)}\n")

    def _stop(self, procs, timeout):
        for p in procs:
            if p.poll() is None:
                p.stop_sent = True
                p.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in procs:
            if p.popen is None:
                continue
            try:
                p.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.err.write(f"warning: {p.instance} did not stop within {timeout:.0f} s of SIGTERM; killing it\n")
                p.killed = True
                p.signal(signal.SIGKILL)
                try:
                    p.popen.wait(5)
                except subprocess.TimeoutExpired:
                    pass
            p.poll()
            # Anything left in the service's process group goes too.
            p.signal(signal.SIGKILL)
            p.wait_reader(2.0)
            self._check_stopped(p, timeout)

    def run(self):
        self.prepare()
        self._kafka()
        self.build_procs()
        progress = Progress(self.tally, self.out, enabled=not self.args.no_progress,
                            interval=self.args.progress_interval)
        old_int = signal.signal(signal.SIGINT, self._on_signal)
        old_term = signal.signal(signal.SIGTERM, self._on_signal)
        status = 0
        started = time.monotonic()
        self.started_wall = time.time()
        try:
            lang_text = ", ".join(f"{s}={self.langs[s]}" + (f" x{self.scale[s]}" if self.scale[s] > 1 else "")
                                  for s in SERVICES)
            kafka_text = (f"embedded test broker (librdkafka mock cluster) at {self.bootstrap}"
                          if self.kafka_kind == "embedded" else
                          f"Kafka at {self.bootstrap} (from {self.bootstrap_origin})")
            target = f"OTLP {self.export_target}" if self.export_mode == "otlp" else (
                f"{self.traces_file}" if self.export_mode == "file" else self.export_mode)
            ends = []
            if self.orders:
                ends.append(f"{self.orders} orders (" + ", ".join(
                    f"{ORDERING[s]} {n}" for s, n in self.limits.items() if n) + ")")
            if self.duration:
                ends.append(f"{self.duration:g} s")
            self._say(f"ITuna restaurant: {lang_text}")
            self._say(f"  kafka: {kafka_text}")
            self._say(f"  traces: {target}")
            self._say(f"  run: {' or '.join(ends)}; logs in {self.run_dir}")

            deadline = time.monotonic() + self.args.ready_timeout
            consumers = [p for p in self.procs if p.service in CONSUMERS]
            ordering = [p for p in self.procs if p.service in ORDERING]
            ok = self._start_group(consumers, deadline)
            self.consumers_ready_at = time.monotonic()
            if ok:
                self._wait_groups_stable()
                _free_admin_clients()
            ok = ok and self._start_group(ordering, deadline)
            if ok:
                status = self._supervise(progress, ordering, started)
            elif self.interrupted and self.failed is None:
                self._say("interrupted while the services started; stopping")
                status = 130
            progress.end_line()
        except KeyboardInterrupt:
            progress.end_line()
            self.err.write("interrupted twice: stopping now\n")
            status = 130
        finally:
            # Ordering services first, so no new orders arrive while consumers shut down.
            self._stop([p for p in self.procs if p.service in ORDERING], self.args.stop_timeout)
            # Consumers one at a time: members of one group leaving together make their
            # final commits race the rebalance their leaving starts (and fail).
            for p in [p for p in self.procs if p.service not in ORDERING]:
                self._stop([p], self.args.stop_timeout)
            if self.broker is not None:
                _broker_stop(self.broker)
                self.broker = None
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, old_term)
        if self.failed is not None:
            self.err.write(f"the run stopped because {self.failed.instance} died\n")
            status = 1
        if self.stop_failures:
            self.err.write("the run failed: not stopped cleanly: "
                           + ", ".join(p.instance for p in self.stop_failures) + "\n")
            status = status or 1
        elapsed = time.monotonic() - started
        self._merge_traces()
        if self._summary(elapsed) and status == 0:
            status = 1
        if self.spans_lost:
            # orders were handled, but the traces are incomplete: not a clean run
            for p in self.spans_lost:
                p.wait_reader(2.0)
                why = next((l.split("SPANS LOST: ", 1)[1] for l in reversed(list(p.tail)) if "SPANS LOST: " in l),
                           "see its log")
                self.err.write(f"spans lost by {p.instance}: {why}\n")
            self.err.write(f"the run lost spans: {len(self.spans_lost)} service(s) could not export all "
                           "their spans (exit 3)\n")
            status = status or EXIT_SPANS_LOST
        return status

    def _supervise(self, progress, ordering, started):
        """Run until the orders are placed (or the duration ends, or Ctrl-C), then
        until every placed order is served or rejected (bounded)."""
        stop_ordering_at = started + self.duration if self.duration else None
        stopped_ordering = False
        drain_deadline = None
        while True:
            progress.tick()
            dead = self._check_deaths()
            if dead is not None:
                progress.end_line()
                if self._restart(dead):
                    continue
                self.failed = dead
                self._report_death(dead)
                return 1
            now = time.monotonic()
            if not stopped_ordering:
                finished = all(p.poll() is not None for p in ordering)
                timed_out = stop_ordering_at is not None and now >= stop_ordering_at
                if finished or timed_out or self.interrupted:
                    if not finished:
                        why = "interrupted" if self.interrupted else "duration reached"
                        progress.end_line()
                        self._say(f"{why}: no more orders; waiting for the orders in flight")
                        self._stop(ordering, self.args.stop_timeout)
                    stopped_ordering = True
                    drain_deadline = time.monotonic() + self.args.drain_timeout
                    interrupts_at_drain = self.interrupted
            else:
                if not self.tally.unfinished():
                    progress.tick(force=True)
                    return 0
                if now >= drain_deadline or self.interrupted > interrupts_at_drain:
                    progress.tick(force=True)
                    progress.end_line()
                    n = len(self.tally.unfinished())
                    why = "interrupted" if self.interrupted > interrupts_at_drain else \
                        f"after waiting {self.args.drain_timeout:.0f} s"
                    self.err.write(f"warning: {n} orders neither served nor rejected ({why})\n")
                    return 0
            time.sleep(0.1)

    def _restart(self, dead):
        """A consumer service that crashed is started again while the restart budget
        lasts: its group gives it back its partitions (static membership on a real
        broker) or the other members have taken them over; what it had not finished is
        redelivered. Ordering services are not restarted: their order count would
        start again."""
        used = sum(self.restarts.values())
        if dead.service not in CONSUMERS or used >= self.args.restart_budget or self.interrupted:
            return False
        rc = dead.returncode
        how = f"was killed by signal {-rc}" if rc is not None and rc < 0 else f"exited with code {rc}"
        self._report_death(dead, how)
        fresh = Proc(dead.instance, dead.service, dead.lang, dead.cmd, dead.env, dead.log_path)
        self.procs[self.procs.index(dead)] = fresh
        self.restarts[dead.instance] += 1
        self.err.write(f"restarting {dead.instance} (restart {used + 1} of {self.args.restart_budget})\n")
        self.err.flush()
        fresh.start(self.tally.on_line)
        return True

    def _merge_traces(self):
        if not self.local_traces:
            return
        parts = sorted(glob.glob(os.path.join(self.traces_dir, "*.jsonl")))
        os.makedirs(os.path.dirname(self.traces_file) or ".", exist_ok=True)
        tmp = self.traces_file + ".tmp"
        lines = 0
        with open(tmp, "w", encoding="utf-8") as out:
            for part in parts:
                with open(part, "r", encoding="utf-8", errors="replace") as f:
                    for line in f:
                        if line.strip():
                            out.write(line if line.endswith("\n") else line + "\n")
                            lines += 1
        os.replace(tmp, self.traces_file)
        self.trace_lines = lines

    def _summary(self, elapsed):
        """Print the outcome; True if orders were lost or handled twice."""
        by_source, twice, unknown = self.tally.summary()
        placed = sum(r["placed"] for r in by_source.values())
        served = sum(r["served"] for r in by_source.values())
        rejected = sum(r["rejected"] for r in by_source.values())
        unfinished = sum(r["unfinished"] for r in by_source.values())
        self._say("")
        self._say(f"Orders in {elapsed:.1f} s: placed {placed}, served {served}, rejected {rejected}, "
                  f"unfinished {unfinished}")
        for source, r in by_source.items():
            if r["placed"]:
                self._say(f"  {source:8s} placed {r['placed']:4d}  served {r['served']:4d}  "
                          f"rejected {r['rejected']:4d}  unfinished {r['unfinished']:4d}")
        if twice:
            self._say(f"  handled twice: {len(twice)} orders, e.g. {twice[0]}")
        if self.restarts:
            self._say("  restarts after a crash: " + ", ".join(f"{i} x{n}" for i, n in sorted(self.restarts.items())))
        if unknown:
            self._say(f"  {len(unknown)} orders from an earlier run were finished too")
        fetched = None
        if self.local_traces:
            if os.path.exists(self.traces_file):
                self._report()
        elif self.export_mode == "otlp":
            fetched = self._report_from_jaeger()
        self._say(f"Logs:   {self.run_dir}/<service>.log")
        if self.export_mode == "file":
            self._say(f"Traces: {self.traces_file} (OTLP JSON lines; "
                      f"`ituna-report {self.traces_file} --profile {self.profile_path} --html report.html` for the full report)")
        elif self.export_mode == "otlp":
            self._say(f"Traces: sent to {self.export_target}")
            if self.local_traces and os.path.exists(self.traces_file):
                self._say(f"        a copy in {self.traces_file} (`ituna-report {self.traces_file} --profile {self.profile_path} --html report.html` "
                          "for the full report)")
            if fetched:
                self._say(f"        {fetched} of them read back from {self.args.jaeger_query} into {self.traces_file} "
                          f"(`ituna-report {self.traces_file} --profile {self.profile_path} --html report.html` for the full report)")
        return bool(twice) or (unfinished > 0 and self.failed is None and not self.interrupted)

    def _report(self):
        """The per-stage latency summary from ituna_report, when it is there."""
        try:
            import ituna_report as report
        except Exception as exc:  # the report package is optional for a run
            self._say(f"(per-stage report unavailable: {exc})")
            return
        fn = getattr(report, "print_summary", None)
        try:
            if fn is not None:
                fn(self.traces_file, out=self.out, reject_topics={self.topics["rejected"]},
                   profile=self.profile_path)
            elif hasattr(report, "main"):
                self.out.flush()
                report.main([self.traces_file])
        except SystemExit:
            pass
        except Exception as exc:
            self._say(f"(per-stage report failed: {exc})")

    def _report_from_jaeger(self):
        """With --jaeger-query: read this run's traces back from Jaeger, save them as the
        run's traces file and print the report's table. Returns the number of traces
        read, or None."""
        q = self.args.jaeger_query
        with self.tally.lock:
            want = dict(self.tally.trace_of)  # order id -> trace id
            services = sorted({self.tally.placed[o] for o in want})
        if not want:
            self._say("(no per-stage table: no order was placed)")
            return None
        try:
            from ituna_report import analyze_requests
            requests, found = _fetch_run_traces(q, services, set(want.values()), self.started_wall,
                                                self.args.jaeger_wait)
        except Exception as exc:
            self._say(f"(per-stage table unavailable: reading the traces back from {q} failed: {exc})")
            return None
        missing = len(set(want.values())) - found
        if missing:
            self._say(f"note: {missing} of {len(want)} orders' traces were not in Jaeger at {q} after "
                      f"{self.args.jaeger_wait:g} s; the table covers the other {found}")
        if not found:
            return None
        os.makedirs(os.path.dirname(self.traces_file) or ".", exist_ok=True)
        with open(self.traces_file, "w", encoding="utf-8") as f:
            for req in requests:
                f.write(json.dumps(req, separators=(",", ":")) + "\n")
        try:
            report = analyze_requests(requests, normalise_ids=True, reject_topics={self.topics["rejected"]},
                                      profile=self.profile_path)
            self.out.write(report.to_text(min(shutil.get_terminal_size((80, 24)).columns, 120)))
            self.out.flush()
        except Exception as exc:
            self._say(f"(per-stage report failed: {exc})")
        return found


def _jaeger_get(url, timeout=15.0):
    """Body of a Jaeger query API answer; '' when it found no trace (HTTP 404)."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return ""
        raise RuntimeError(f"{url}: HTTP {e.code}: {e.read().decode('utf-8', 'replace')[:200]}") from None


def _fetch_run_traces(query, services, trace_ids, started_wall, wait_s):
    """OTLP requests holding only the spans of trace_ids, searched per ordering service
    (each order's root is in one) over the run's time range of Jaeger's /api/v3. Jaeger
    ingests asynchronously: search again until every trace is there and the span count
    held still between two searches, or wait_s passed. Returns (requests, traces found)."""
    from ituna_report.load import jaeger_url, norm_id, parse_jaeger_body
    deadline = time.monotonic() + wait_s
    last = None
    limit = 2 * len(trace_ids) + 100
    while True:
        now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=5)
        since = time.time() - started_wall + 30
        requests, seen, spans = [], set(), 0
        for service in services:
            url = jaeger_url(query, service, since, now=now, limit=limit)
            for req in parse_jaeger_body(_jaeger_get(url), url):
                out_rs = []
                for rs in req.get("resourceSpans") or ():
                    out_ss = []
                    for ss in rs.get("scopeSpans") or ():
                        keep = [sp for sp in ss.get("spans") or () if norm_id(sp.get("traceId"), 16) in trace_ids]
                        if keep:
                            seen.update(norm_id(sp.get("traceId"), 16) for sp in keep)
                            spans += len(keep)
                            out_ss.append(dict(ss, spans=keep))
                    if out_ss:
                        out_rs.append(dict(rs, scopeSpans=out_ss))
                if out_rs:
                    requests.append({"resourceSpans": out_rs})
        complete = seen >= trace_ids
        if (complete and spans == last) or time.monotonic() >= deadline:
            return requests, len(seen)
        last = spans if complete else None
        time.sleep(1.0)


def _unreachable(bootstrap, timeout=5.0):
    """None when a TCP connection to one of the bootstrap servers succeeds, else why not
    (a broker that is down or a host that does not resolve fails here at once, not as
    services that never get ready)."""
    errors = []
    for item in bootstrap.split(","):
        hostport = item.strip().split("://", 1)[-1]
        if not hostport:
            continue
        host, sep, port = hostport.rpartition(":")
        if not sep:
            host, port = hostport, "9092"
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return None
        except (OSError, ValueError) as exc:
            errors.append(f"{hostport}: {exc}")
    return "; ".join(errors) or "no address"


def _broker_bootstrap(broker):
    bs = getattr(broker, "bootstrap", None)
    if callable(bs):
        bs = bs()
    if not bs:
        raise RestaurantError("the embedded broker gave no bootstrap address")
    return bs


def _broker_stop(broker):
    for name in ("stop", "close"):
        fn = getattr(broker, name, None)
        if fn is not None:
            fn()
            return


def build_parser():
    p = argparse.ArgumentParser(
        prog="ituna-restaurant",
        description="Run the ITuna restaurant: five services as separate processes (Lua or Python) "
                    "talking through Kafka, one trace per order.")
    p.add_argument("--orders", type=int, metavar="N",
                   help="orders to place in total, split across the ordering services by [rates] "
                        "(default: [restaurant] orders)")
    p.add_argument("--duration", type=float, metavar="S", help="stop placing orders after S seconds")
    p.add_argument("--config", metavar="PATH", help="INI file (default: scripts/ituna-config.ini)")
    p.add_argument("--bootstrap", metavar="HOST:PORT",
                   help="a real Kafka broker, or 'embedded' for the built-in test broker whatever the config "
                        "says (default: $ITUNA_KAFKA_BOOTSTRAP, else the config's [restaurant] broker / "
                        "[queue] bootstrap / [queue] host+port, else the embedded test broker)")
    p.add_argument("--otlp-endpoint", metavar="URL",
                   help="send traces to this OTLP/HTTP endpoint (e.g. http://127.0.0.1:4318)")
    p.add_argument("--jaeger-query", metavar="URL",
                   help="with an OTLP endpoint that is a Jaeger: its query API (e.g. http://127.0.0.1:16686); "
                        "the run's traces are read back from it for the table at the end and saved as the "
                        "traces file")
    # How long to wait for Jaeger to hold every trace of the run (it ingests asynchronously).
    p.add_argument("--jaeger-wait", type=float, default=20.0, metavar="S", help=argparse.SUPPRESS)
    p.add_argument("--traces-file", metavar="PATH",
                   help="merge the services' trace files into PATH (default: RUN_DIR/traces.jsonl)")
    p.add_argument("--scale", action="append", metavar="SERVICE=N",
                   help="run N instances of a consumer service in one group (repeatable)")
    p.add_argument("--lang", action="append", metavar="SERVICE=lua|python",
                   help="run a service in this language (repeatable)")
    p.add_argument("--run-dir", metavar="DIR", help="logs and traces of this run (default: logs/run-<time>)")
    p.add_argument("--scripts-dir", metavar="DIR", help=argparse.SUPPRESS)
    p.add_argument("--no-topic-setup", action="store_true", help=argparse.SUPPRESS)
    # Upper bound, in seconds, on the wait for every consuming service's ASSIGNED line
    # on the embedded broker before orders start.
    p.add_argument("--embedded-join-wait", type=float, default=30.0, metavar="S", help=argparse.SUPPRESS)
    p.add_argument("--partitions", type=int, default=0, metavar="N",
                   help="partitions per topic (embedded broker: default 4 or the largest --scale)")
    p.add_argument("--drain-timeout", type=float, default=60.0, metavar="S",
                   help="how long to wait for orders in flight once ordering stops (default 60)")
    p.add_argument("--ready-timeout", type=float, default=60.0, metavar="S",
                   help="how long services may take to start (default 60)")
    p.add_argument("--stop-timeout", type=float, default=15.0, metavar="S",
                   help="how long a service may take to stop after SIGTERM (default 15)")
    p.add_argument("--restart-budget", type=int, default=3, metavar="N",
                   help="restarts of crashed consumer services allowed in one run before the run "
                        "fails (default 3; 0: the first crash ends the run)")
    p.add_argument("--no-progress", action="store_true", help="no live progress line")
    p.add_argument("--progress-interval", type=float, default=5.0, metavar="S",
                   help="seconds between progress lines when not on a terminal (default 5)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return Restaurant(args).run()
    except RestaurantError as exc:
        sys.stderr.write(f"ituna-restaurant: error: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
