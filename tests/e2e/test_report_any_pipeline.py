"""ituna-report on pipelines that are not the restaurant, made for real in the test with
ituna's API (one tracer per service, each writing its own OTLP JSON-lines file, Kafka on
the embedded broker): the report reads them with no profile, from the trace graph alone.

- A Kafka chain of 4 services with a fan-out (two consumer groups on one topic), a retry
  (a handler that fails once per message, redelivered and then handled), a poison message
  (dead-lettered: an unrecovered error) and a planted slow stage: the report names the
  planted stage first, calls every complete trace ok (the retried ones too), the poison
  one error, and none incomplete.
- An HTTP-plus-Kafka shape: a gateway calls a web service over HTTP (CLIENT span,
  traceparent header, SERVER span), which publishes to Kafka for a worker: the planted
  stage inside the HTTP server is named, the HTTP hop is counted, no trace is incomplete.
- `ituna-report --follow` on the growing files of the Kafka chain while it runs: the
  ranking is refreshed live (several refreshes, more spans each time) and ends on the
  full report.
"""
import http.server
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

ituna = pytest.importorskip("ituna")
from ituna_report import analyze_paths  # noqa: E402

N_ITEMS = 12
SLOW_MS = 400      # the planted stage: scorer / score-model
FAST_MS = 5
PACE_S = 0.6       # between items: the planted stage keeps up, so no queue builds in front of it
RETRIED = 3        # items whose first enrich attempt fails
POISON = "item-poison"


def tracer_for(service, traces_dir):
    """One service's tracer: its own file, exported every 200 ms (so a follower sees
    the spans while the pipeline runs)."""
    return ituna.Tracer(env=False, settings=[
        ("service_name", service), ("exporter.type", "file"),
        ("exporter.file", str(traces_dir / f"{service}.jsonl")), ("exporter.schedule-delay", "200")])


class ConsumerLoop(threading.Thread):
    """A consuming service: handle(msg, tracer, producer) inside `with msg:` (commit on
    success, redelivery on an exception, DLQ on MalformedPayload)."""

    def __init__(self, name, tracer, bootstrap, topic, group, handle, producer=None):
        super().__init__(daemon=True, name=name)
        self.tracer, self.handle, self.producer = tracer, handle, producer
        # fetch.wait.max.ms: the embedded test broker answers an empty fetch only after this
        # wait (500 ms by default), which would be queue wait the pipeline does not have.
        # latest: the warm-up message that created the topic is not consumed (it would
        # have waited seconds for the group to join: a queue the pipeline does not have).
        self.consumer = ituna.Consumer([topic], group, bootstrap, tracer=tracer,
                                       **{"auto.offset.reset": "latest", "fetch.wait.max.ms": "20"})
        self.handled = 0
        self.errors = []

    def run(self):
        for msg in self.consumer:
            try:
                with msg:
                    self.handle(msg, self.tracer, self.producer)
                self.handled += 1
            except Exception as exc:  # redelivered (or dead-lettered): the loop goes on
                self.errors.append(repr(exc))

    def close(self):
        self.consumer.stop()
        self.join(20)
        self.consumer.close()
        if self.producer is not None:
            self.producer.close()


def warm_up(bootstrap, topics):
    """Create the topics (the test cluster creates one on its first message, which takes
    up to a second) with an untraced producer, so no trace holds that set-up time."""
    quiet = ituna.Tracer(env=False, settings=[("service_name", "set-up"), ("tracer.disabled", "true")])
    with ituna.Producer(bootstrap, tracer=quiet) as p:
        for t in topics:
            p.publish(t, b"{}", key="warm-up")
        p.flush(10)
    quiet.shutdown(timeout=5)


def wait_until(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def run_kafka_chain(traces_dir, on_started=None):
    """ingest -> p-raw -> enricher (fails once per message, then handles it; a poison
    message goes to the DLQ) -> p-enriched -> {scorer (planted: SLOW_MS), archiver} ->
    scorer publishes p-scored (a sink). Returns the item ids placed."""
    broker = ituna.start_embedded_broker(n_brokers=1)
    tracers = {s: tracer_for(s, traces_dir) for s in ("ingest", "enricher", "scorer", "archiver")}
    bs = broker.bootstrap
    attempts = {}

    def enrich(msg, tracer, producer):
        item = msg.json()
        if "id" not in item:
            return  # the warm-up message
        if item["id"] == POISON:
            raise ituna.MalformedPayload("not an item")
        attempts[item["id"]] = attempts.get(item["id"], 0) + 1
        with tracer.span("enrich", attributes={"item.id": item["id"]}):
            time.sleep(FAST_MS / 1000)
            if attempts[item["id"]] == 1 and int(item["id"].split("-")[1]) < RETRIED:
                raise RuntimeError("lookup timed out")  # the retry: redelivered, then handled
            producer.publish("p-enriched", dict(item, enriched=True), key=item["id"])
            producer.flush(10)

    def score(msg, tracer, producer):
        item = msg.json()
        if "id" not in item:
            return
        with tracer.span("score-model", attributes={"item.id": item["id"]}):
            time.sleep(SLOW_MS / 1000)
        producer.publish("p-scored", dict(item, score=0.5), key=item["id"])
        producer.flush(10)

    def archive(msg, tracer, producer):
        with tracer.span("archive-write"):
            time.sleep(FAST_MS / 1000)

    loops = [
        ConsumerLoop("enricher", tracers["enricher"], bs, "p-raw", "g-enricher", enrich,
                     ituna.Producer(bs, tracer=tracers["enricher"])),
        ConsumerLoop("scorer", tracers["scorer"], bs, "p-enriched", "g-scorer", score,
                     ituna.Producer(bs, tracer=tracers["scorer"])),
        ConsumerLoop("archiver", tracers["archiver"], bs, "p-enriched", "g-archiver", archive),
    ]
    ids = [f"item-{i}" for i in range(N_ITEMS)] + [POISON]
    try:
        ingest = ituna.Producer(bs, tracer=tracers["ingest"])
        warm_up(bs, ("p-raw", "p-enriched", "p-scored", "p-raw.dlq"))
        for lp in loops:
            assert lp.consumer.wait_assigned(30), f"{lp.name} got no partitions"
            lp.start()
        time.sleep(0.5)  # positions resolved (latest) before the first item
        if on_started:
            on_started()
        for item_id in ids:
            with tracers["ingest"].span("ingest-item", attributes={"item.id": item_id}):
                time.sleep(0.02)
                ingest.publish("p-raw", {"id": item_id}, key=item_id)
                ingest.flush(10)
            time.sleep(PACE_S)
        ingest.close()
        wait_until(lambda: loops[1].handled >= N_ITEMS and loops[2].handled >= N_ITEMS, 60,
                   "the scorer and the archiver to handle every item")
    finally:
        for lp in loops:
            lp.close()
        for t in tracers.values():
            t.shutdown(timeout=10)
        broker.stop()
    return ids


def test_kafka_chain_with_fan_out_retry_and_planted_stage(tmp_path):
    traces = tmp_path / "traces"
    traces.mkdir()
    ids = run_kafka_chain(traces)
    r = analyze_paths(str(traces))
    assert r.traces == len(ids), r.to_text(100)
    # every item's trace is whole: ok (the retried ones too), the poison one error
    assert r.outcomes.get("incomplete", 0) == 0, r.to_text(100)
    assert r.outcomes.get("error") == 1, r.outcomes
    assert r.outcomes.get("ok") == r.traces - 1, r.outcomes
    assert not [b for b in r.broken if b["kind"] != "trace too deep to analyse"], r.broken
    # the planted stage is named first
    assert r.bottleneck() == "scorer / score-model", r.to_text(100)
    # hops: both topics, the fan-out's two groups on p-enriched
    kafka = {h["topic"]: h["hops"] for h in r.hops if h["via"] == "kafka"}
    assert kafka.get("p-raw", 0) == N_ITEMS + RETRIED + 1  # items, the retries, poison
    assert kafka.get("p-enriched", 0) == 2 * N_ITEMS  # two groups
    # the retried enrich attempts are errors of their stage, not of the traces
    enrich = next(s for s in r.stages if s["service"] == "enricher" and s["name"] == "enrich")
    assert enrich["errors"] == RETRIED
    text = r.to_text(100)
    assert re.search(r"^ituna-report: %d traces \(%d ok, 1 error, 0 incomplete\)" % (r.traces, r.traces - 1),
                     text, re.M), text


class _Web(http.server.BaseHTTPRequestHandler):
    tracer = producer = None

    def do_POST(self):
        ctx = ituna.extract(dict(self.headers.items()))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.tracer.span("POST /orders", kind="server", parent=ctx,
                              attributes={"http.request.method": "POST", "url.path": "/orders"}):
            with self.tracer.span("db-write"):
                time.sleep(0.08)  # the planted stage of this shape
            self.producer.publish("h-events", body, key="k")
            self.producer.flush(10)
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, *a):
        pass


def test_http_plus_kafka_shape(tmp_path):
    traces = tmp_path / "traces"
    traces.mkdir()
    broker = ituna.start_embedded_broker(n_brokers=1)
    tr = {s: tracer_for(s, traces) for s in ("gateway", "web", "worker")}

    def notify(msg, tracer, producer):
        with tracer.span("notify"):
            time.sleep(0.005)

    _Web.tracer = tr["web"]
    _Web.producer = ituna.Producer(broker.bootstrap, tracer=tr["web"])
    warm_up(broker.bootstrap, ("h-events",))
    worker = ConsumerLoop("worker", tr["worker"], broker.bootstrap, "h-events", "g-worker", notify)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Web)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    n = 8
    try:
        assert worker.consumer.wait_assigned(30)
        worker.start()
        time.sleep(0.5)
        url = "http://127.0.0.1:%d/orders" % server.server_address[1]
        for i in range(n):
            with tr["gateway"].span("checkout"):
                with tr["gateway"].span("POST /orders", kind="client") as call:
                    req = urllib.request.Request(url, data=b'{"n": %d}' % i, method="POST",
                                                 headers=ituna.inject({}, context=call))
                    with urllib.request.urlopen(req, timeout=10) as resp:
                        assert resp.status == 201
        wait_until(lambda: worker.handled >= n, 30, "the worker to handle every event")
    finally:
        server.shutdown()
        worker.close()
        _Web.producer.close()
        for t in tr.values():
            t.shutdown(timeout=10)
        broker.stop()
    r = analyze_paths(str(traces))
    assert r.traces == n, r.to_text(100)
    assert r.outcomes == {"ok": n}, r.to_text(100)
    assert r.bottleneck() == "web / db-write", r.to_text(100)
    assert {"via": "http", "from": "gateway", "to": "web", "hops": n} in r.hops, r.hops
    assert any(h["via"] == "kafka" and h["topic"] == "h-events" and h["hops"] == n for h in r.hops), r.hops
    assert "gateway -> web" in r.to_text(100)
    graph = {(e["from"], e["to"]) for e in r.graph["edges"]}
    assert ("gateway", "web") in graph and ("web", "topic:h-events") in graph


def test_follow_refreshes_the_ranking_while_the_pipeline_runs(tmp_path):
    traces = tmp_path / "traces"
    traces.mkdir()
    cmd = [sys.executable, "-m", "ituna_report", str(traces), "--follow", "--interval", "0.5",
           "--until-idle", "4", "--width", "100"]
    env = dict(os.environ)
    import ituna_report
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(ituna_report.__file__)),
                                         env.get("PYTHONPATH", "")])
    out = tmp_path / "follow.out"
    with open(out, "w") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        try:
            run_kafka_chain(traces)
            rc = p.wait(timeout=60)  # bounded: it stops 4 s after the last span
        finally:
            if p.poll() is None:
                p.kill()
    text = out.read_text()
    assert rc == 0, text[-3000:]
    refreshes = [int(m) for m in re.findall(r"^ituna-report: \d+ traces \(.*\), (\d+) spans$", text, re.M)]
    heads = re.findall(r"^ituna-report --follow: refresh (\d+) ", text, re.M)
    assert len(heads) >= 3, text[-3000:]
    # live: refreshes while the pipeline ran showed part of the spans, later ones more
    assert any(0 < x < refreshes[-1] for x in refreshes[:-1]), refreshes
    assert refreshes[-2] > refreshes[0], refreshes
    final = text[text.index("ituna-report --follow: final"):]
    assert re.search(r"^ 1 scorer / score-model ", final, re.M), final
    assert re.search(r"\(\d+ ok, 1 error, 0 incomplete\)", final), final
