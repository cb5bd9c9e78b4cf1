"""common.py - what the five Python services of the ITuna restaurant share: the
config values they read (delays, rates, failure rates, topics), the menu and the
order payload, the seed-format log line with trace ids, failure injection, the
tracer/producer/consumer set-up on the ituna binding, and clean stop on SIGTERM.

scripts/lua/common.lua is the same for the Lua services: topics, span names,
attributes and log lines must stay identical between the two.
"""

import datetime
import os
import random
import signal
import sys
import time
import uuid

import ituna

# The seed's ITuna menu, all 8 dishes, so that orders placed by the seed's own ordering
# services pass our validation and ours pass the seed's. "UNAGI DON" is not on it and
# sold out: an order naming it fails inventory validation (only tests write one).
MENU = [
    "ITUNA SOUP", "TUNA SALAD", "TUNA MAKI", "TUNA SASHIMI", "TUNA NIGIRI", "SPICY TUNA NIGIRI",
    "ITUNA ROLL", "SPICY ITUNA ROLL",
]
SOLD_OUT = {"UNAGI DON"}

FIRST_NAMES = ["Aiko", "Ben", "Chiara", "Dmitri", "Emeka", "Fatima", "Goro", "Hana", "Ivan", "Jun",
               "Kemal", "Lena", "Mateo", "Noor", "Oskar", "Priya", "Quinn", "Rei", "Sven", "Tomoko"]
LAST_NAMES = ["Sato", "Okafor", "Rossi", "Novak", "Kim", "Haddad", "Silva", "Tanaka", "Berg", "Costa"]
STREETS = ["Harbour Street", "Fish Market Lane", "Pier Road", "Kelp Avenue", "Tide Way", "Wharf Street"]
ZIP_CODES = ["90901", "90902", "90903", "90910"]

CONSUMER_GROUP = "ituna"  # the seed's group id; one group per consuming service below
ASSIGN_TIMEOUT_S = 30.0   # how long a consuming service waits for its partitions before going on
ZERO_TRACE = "0" * 32
ZERO_SPAN = "0" * 16


# Exit status of a service that ran and stopped well but lost spans (not exported);
# the launcher reports it apart from a failure.
EXIT_SPANS_LOST = 3


def _scripts_dir():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_config_path():
    """--config PATH, else $ITUNA_CONFIG, else scripts/ituna-config.ini."""
    argv = sys.argv[1:]
    for i, a in enumerate(argv):
        if a == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--config="):
            return a.split("=", 1)[1]
    env = os.environ.get("ITUNA_CONFIG")
    if env:
        return env
    return os.path.join(_scripts_dir(), "ituna-config.ini")


def schema_path():
    """The restaurant's config schema: $ITUNA_CONFIG_SCHEMA, else scripts/restaurant-schema.ini."""
    return os.environ.get("ITUNA_CONFIG_SCHEMA") or os.path.join(_scripts_dir(), "restaurant-schema.ini")


class Config:
    """The restaurant's settings as the core loaded and checked them: the value set in
    the file, else the default of restaurant-schema.ini (common.lua reads them alike)."""

    def __init__(self, tracer):
        self.tracer = tracer

    def get(self, section, key):
        return self.tracer.config_value(section, key)

    def delay_s(self, key):
        """One draw of [simulated-delays] key in seconds: "140" or a range "2000-4000" (ms)."""
        text = self.get("simulated-delays", key) or "0"
        lo, sep, hi = text.partition("-")
        lo_ms = float(lo)
        hi_ms = float(hi) if sep else lo_ms
        return random.uniform(lo_ms, hi_ms) / 1000.0

    def rate(self, service):
        return float(self.get("rates", service) or 0)

    def failure_rate(self, key):
        return float(self.get("failure-rates", key) or 0)

    def topic(self, which):
        return {
            "orders": self.get("initial-order", "queue-topic"),
            "kitchen": self.get("kitchen-queue", "queue-topic"),
            "rejected": self.get("topics", "rejected"),
            "ready": self.get("topics", "ready"),
        }[which]


def fails(rate):
    """Failure injection: True with probability rate."""
    return rate > 0 and random.random() < rate


# ---- logging ---------------------------------------------------------------------

def _ids(span):
    if span is None:
        return ZERO_TRACE, ZERO_SPAN
    ctx = span.context
    return ctx.trace_id, ctx.span_id


class Log:
    """The seed's line format, plus the ids of the span the line belongs to:
    `YYYY-mm-dd HH:MM:SS - <service> - INFO - <message> trace_id=<32hex> span_id=<16hex>`.
    Lines outside any span carry all-zero ids (W3C's "no trace")."""

    def __init__(self, service):
        self.service = service

    def _emit(self, level, message, span):
        trace_id, span_id = _ids(span)
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        sys.stdout.write(f"{stamp} - {self.service} - {level} - {message} trace_id={trace_id} span_id={span_id}\n")
        sys.stdout.flush()

    def info(self, message, span=None):
        self._emit("INFO", message, span)

    def error(self, message, span=None):
        self._emit("ERROR", message, span)


# ---- orders ---------------------------------------------------------------------

def make_order(source):
    """The seed's payload plus source and customer_name. source: website, on-site, direct."""
    dishes = random.sample(MENU, random.randint(2, 5))
    order = {
        "order_id": str(uuid.uuid4()),
        "customer_id": str(uuid.uuid4()),
        "order_details": {d: random.randint(1, 3) for d in dishes},
    }
    if source == "website":
        order["address"] = f"{random.randint(1, 250)} {random.choice(STREETS)}, {random.choice(ZIP_CODES)} ITuna Bay"
    elif source == "on-site":
        order["table"] = random.randint(1, 24)
    order["source"] = source
    order["customer_name"] = f"{random.choice(FIRST_NAMES)} {random.choice(LAST_NAMES)}"
    return order


def first_dish(order):
    """The dish the kitchen names: alphabetically first, so that Lua (whose tables
    have no key order) and Python name the same one."""
    details = order.get("order_details") or {}
    return sorted(details)[0] if details else "food"


def order_attrs(order):
    """order.id and order.source: on every span of an order."""
    return {"order.id": str(order.get("order_id", "")), "order.source": str(order.get("source", "unknown"))}


def mark_error(span, description):
    span.set_status("error", description)


# ---- process set-up -----------------------------------------------------------------

class Service:
    """One service process: config, tracer, log, and the stop flag set by SIGTERM/SIGINT."""

    def __init__(self, name):
        self.name = name
        self.config_path = default_config_path()
        self.log = Log(name)
        self.tracer = ituna.init(service_name=os.environ.get("OTEL_SERVICE_NAME") or name,
                                 config=self.config_path, schema=schema_path())
        self.config = Config(self.tracer)
        self.stopping = False
        self._consumers = []
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    # A stop request ends waits and consumer loops; an order in hand is finished
    # (and committed) first.
    def _on_signal(self, signum, frame):
        self.stopping = True
        for c in self._consumers:
            c.stop()

    def sleep(self, seconds):
        """Interruptible wait: returns early (False) once a stop was requested."""
        end = time.monotonic() + seconds
        while not self.stopping:
            left = end - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, 0.1))
        return False

    def ready(self, what):
        self.log.info(f"READY {self.name} ({what})")

    def producer(self):
        return ituna.Producer()

    def wait_assigned(self, consumer, timeout=ASSIGN_TIMEOUT_S):
        """Poll until the group gave this member partitions, then say so with an
        ASSIGNED line (the launcher waits for it before orders start). A message that
        arrives meanwhile is kept by the binding for the loop; a stop request ends the
        wait early."""
        if self.stopping:
            return
        if consumer.wait_assigned(timeout):
            self.log.info(f"ASSIGNED {self.name} partitions={consumer.assignment_count}")
        elif not self.stopping:
            self.log.error(f"no partitions assigned to {self.name} within {timeout:g} s; consuming anyway")

    def consumer(self, topic):
        # earliest: a group that has never committed must not skip the orders placed
        # while it was joining.
        conf = {"auto.offset.reset": "earliest"}
        if os.environ.get("ITUNA_GROUP_INSTANCE_ID"):  # static membership (the launcher sets it)
            # with the topic: a member of an earlier run on other topics must not hand
            # this one its old assignment (a known static member gets it back unchanged)
            conf["group.instance.id"] = os.environ["ITUNA_GROUP_INSTANCE_ID"] + "@" + topic
        c = ituna.Consumer([topic], CONSUMER_GROUP + "-" + self.name, **conf)
        self._consumers.append(c)
        if self.stopping:
            c.stop()
        return c

    def shutdown(self, *closables):
        """Close consumers (final commit) and producers, flush the spans; exit 1 when
        closing failed, 3 (EXIT_SPANS_LOST) when only spans were lost, so the launcher
        knows the stop was not clean and why."""
        ok = True
        for c in closables:
            try:
                c.close()
            except Exception as exc:  # report, and still close the others and flush spans
                ok = False
                self.log.error(f"close failed: {exc}")
        spans_ok = ituna.shutdown(timeout=10)
        if not spans_ok:
            st = self.tracer.stats()
            self.log.error(f"SPANS LOST: {st['spans_dropped']} dropped, {st['spans_export_failed']} export failed, "
                           f"{st['export_partial_rejected']} rejected by the collector, of {st['spans_ended']} ended")
        self.log.info(f"Stopped {self.name}")
        if not ok:
            raise SystemExit(1)
        if not spans_ok:
            raise SystemExit(EXIT_SPANS_LOST)


def flush(log, producer, span=None):
    """Wait up to 10 s for the delivery reports. A timeout (broker unreachable) is not
    a failure: the messages stay queued in the producer, which delivers them when the
    broker is back (message.timeout.ms: 10 min); failing the order would publish it
    twice. A delivery that failed for good still raises."""
    try:
        producer.flush(10)
    except ituna.TimeoutError as exc:
        log.error(f"DELIVERY DELAYED (kept, sent when the broker is back): {exc}", span)


def drain(svc, producer, limit_s=600.0):
    """Before exiting, wait for the orders still queued in the producer (a broker
    outage): closing would purge them. Up to message.timeout.ms (10 min), or until
    asked to stop."""
    end = time.monotonic() + limit_s
    while not svc.stopping and time.monotonic() < end:
        try:
            producer.flush(10)
            return
        except ituna.TimeoutError as exc:
            svc.log.error(f"DELIVERY DELAYED at exit, waiting for the broker: {exc}")


def orders_limit():
    """ITUNA_ORDERS_LIMIT: orders this ordering service places before it exits (None: no limit)."""
    text = os.environ.get("ITUNA_ORDERS_LIMIT")
    if not text:
        return None
    n = int(text)
    if n < 0:
        raise SystemExit(f"ITUNA_ORDERS_LIMIT must be >= 0, got {text}")
    return n


def run_ordering(service_name, source, span_name, delay_key, topic_which, placing_line, placed_line):
    """The loop every ordering service runs: on a timer (rate from [rates]), an order
    inside span_name, the simulated work delay, a publish to the topic."""
    svc = Service(service_name)
    topic = svc.config.topic(topic_which)
    rate = svc.config.rate(service_name)
    limit = orders_limit()
    producer = svc.producer()
    svc.ready(f"publishing to {topic}")
    placed = 0
    while not svc.stopping and (limit is None or placed < limit) and rate > 0:
        started = time.monotonic()
        order = make_order(source)
        with svc.tracer.span(span_name, attributes=order_attrs(order)) as span:
            span.set_attribute("order.items", len(order["order_details"]))
            svc.log.info(placing_line(order["order_id"]), span)
            # The seed's simulated work happens inside the order span.
            time.sleep(svc.config.delay_s(delay_key))
            producer.publish(topic, order, key=order["order_id"], attributes=order_attrs(order))
            flush(svc.log, producer, span)
            svc.log.info(placed_line, span)
        placed += 1
        if limit is not None and placed >= limit:
            break
        svc.sleep(max(0.0, 1.0 / rate - (time.monotonic() - started)))
    svc.log.info(f"DONE {service_name} placed={placed}")
    drain(svc, producer)
    svc.shutdown(producer)


# ---- consuming services ---------------------------------------------------------------

def parse_order(msg):
    """The order in a message, or ituna.MalformedPayload (the message then goes to the DLQ)."""
    try:
        order = msg.json()
    except ituna.MalformedPayload:
        raise
    except ValueError as exc:
        raise ituna.MalformedPayload(f"payload is not JSON: {exc}") from None
    if not isinstance(order, dict) or not isinstance(order.get("order_id"), str) or not order["order_id"]:
        raise ituna.MalformedPayload("payload is not an order: no order_id")
    if not isinstance(order.get("order_details"), dict):
        raise ituna.MalformedPayload("payload is not an order: no order_details")
    order.pop("carrier", None)  # the seed's context field: never forwarded as stale context
    order.setdefault("source", "unknown")
    return order


def run_consumer(service_name, topic_which, handle):
    """The loop every consuming service runs: one CONSUMER span per message (current
    while handle runs), commit after handle returns, stop on SIGTERM/SIGINT."""
    svc = Service(service_name)
    topic = svc.config.topic(topic_which)
    producer = svc.producer()
    consumer = svc.consumer(topic)
    svc.ready(f"consuming {topic} as group {CONSUMER_GROUP}-{service_name}")
    svc.wait_assigned(consumer)
    handled = 0
    for msg in consumer:
        try:
            # `with msg`: its CONSUMER span is current; a normal exit commits,
            # MalformedPayload sends it to the DLQ, another exception leaves it
            # uncommitted (redelivered) and is logged here so the loop goes on.
            with msg:
                order = parse_order(msg)
                for k, v in order_attrs(order).items():
                    msg.span.set_attribute(k, v)
                handle(svc, producer, order)
            handled += 1
        except Exception as exc:
            # the same line as common.lua's, with the ids of the message's CONSUMER span
            svc.log.error(f"Failed to handle a message from {msg.topic} [{msg.partition}] @{msg.offset} "
                          f"(it will be redelivered): {type(exc).__name__}: {exc}", msg.span)
        if svc.stopping:
            break
    svc.log.info(f"DONE {service_name} handled={handled}")
    svc.shutdown(consumer, producer)
