"""ituna-report on hand-built OTLP JSON fixtures whose answers are known: the planted slow
stage, queue waits, rejected and direct orders, broken traces, clock skew, waterfalls,
Jaeger's /api/v3 answer, directories of per-service files, and streaming in bounded memory.
Expected figures are derived from the fixture generator's plan, not copied from output."""

import http.server
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "report"
sys.path.insert(0, str(FIX))
import make_fixtures as mf  # noqa: E402

# The installed ituna_report, else the source tree's (scripts/): it is pure Python and
# imports nothing from the ituna library, so it needs no built C extension.
try:
    import ituna_report as R
except ImportError as e:
    print("ituna_report not installed (%s): testing it from the source tree" % e)
    sys.path.insert(0, str(ROOT / "scripts"))
    import ituna_report as R
CLI = ["-m", "ituna_report"]
from ituna_report import load as L  # noqa: E402

# The fixtures are the restaurant's traces: read with the restaurant's profile (the
# report alone knows no restaurant; test_report_any_pipeline.py reads other shapes).
PROFILE = ROOT / "scripts" / "restaurant-profile.ini"


def analyze(*a, **k):
    return R.analyze_paths(*a, profile=str(PROFILE), **k)


# Where ituna_report was found, for subprocesses.
PYPATH = str(Path(R.__file__).resolve().parents[1])
REL = 0.004  # the histogram's documented accuracy


def run_cli(*args, check=True):
    env = dict(os.environ, PYTHONPATH=PYPATH + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, *CLI, "--profile", str(PROFILE), *map(str, args)], capture_output=True,
                       text=True, env=env, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError("ituna-report failed (%d): %s" % (p.returncode, p.stderr))
    return p


def near(value, expected, rel=REL, abs_=1e-6):
    return value is not None and abs(value - expected) <= max(abs_, rel * abs(expected))


@pytest.fixture(scope="module")
def restaurant(tmp_path_factory):
    """The restaurant fixture rebuilt from its seed, with the orders' planted facts."""
    d = tmp_path_factory.mktemp("restaurant")
    orders, spans = mf.restaurant(random.Random(8))
    path = d / "restaurant.jsonl"
    mf.write_jsonl(path, mf.to_requests(spans))
    return orders, path, analyze(path)


def _stage(report, service, name):
    return next(s for s in report.stages if s["service"] == service and s["name"] == name)


def _queue(report, topic):
    return next(q for q in report.queues if q["topic"] == topic)


def test_committed_fixtures_match_their_generator(tmp_path):
    mf.main(str(tmp_path))
    for name in ["restaurant.jsonl", "broken.jsonl", "skew.jsonl", "link_mode.jsonl", "jaeger_v3_answer.json",
                 "restaurant-dir/kitchen-service.jsonl"]:
        assert (tmp_path / name).read_bytes() == (FIX / name).read_bytes(), name


def test_planted_slow_stage_ranks_first_with_its_share(restaurant):
    orders, _, r = restaurant
    served = [o for o in orders if not o.rejected]
    total_ms = sum(mf.chain_ms(o.source, reject=o.rejected) for o in orders)
    roll_ms = len(served) * mf.PLAN["roll"]
    top = r.ranking[0]
    assert top["stage"] == "kitchen-service / roll"
    assert near(top["share"], roll_ms / total_ms, rel=0.002)
    assert near(top["totalMs"], roll_ms)
    assert near(r.cp_total_ms, total_ms)
    assert [x["share"] for x in r.ranking] == sorted((x["share"] for x in r.ranking), reverse=True)
    # The two Kafka waits come next: 30 ms per kitchen hop, 20 ms per validation hop.
    n_kitchen_hops = len(served)
    n_validation_hops = sum(1 for o in orders if o.source != "direct")
    assert r.ranking[1]["stage"] == "queue wait kitchen-orders"
    assert near(r.ranking[1]["totalMs"], n_kitchen_hops * mf.PLAN["q_kitchen"])
    assert r.ranking[2]["stage"] == "queue wait ituna-orders"
    assert near(r.ranking[2]["totalMs"], n_validation_hops * mf.PLAN["q_orders"])
    assert abs(sum(x["share"] for x in r.ranking) - 1.0) < 1e-9


def test_queue_waits_equal_planted_values(restaurant):
    orders, _, r = restaurant
    p = mf.PLAN
    for topic, planted in (("ituna-orders", p["q_orders"]), ("kitchen-orders", p["q_kitchen"])):
        q = _queue(r, topic)
        for k in ("p50Ms", "p95Ms", "p99Ms", "maxMs"):
            assert near(q[k], planted), (topic, k, q[k])
        # The consumer's own figure runs from the message timestamp, taken inside the send span.
        assert near(q["attr"]["p50Ms"], planted + p["send"] - p["ts_offset"])
        assert q["overlap"] == 0 and q["missingProducer"] == 0
    assert _queue(r, "ituna-orders")["count"] == sum(1 for o in orders if o.source != "direct")


def test_stage_percentiles_and_error_rate(restaurant):
    orders, _, r = restaurant
    roll = _stage(r, "kitchen-service", "roll")
    assert roll["count"] == sum(1 for o in orders if not o.rejected)
    assert near(roll["p50Ms"], 200) and near(roll["p99Ms"], 200) and near(roll["maxMs"], 200)
    inv = _stage(r, "order-validation", "inventory_validation")
    n_val = sum(1 for o in orders if o.source != "direct")
    n_rej = sum(1 for o in orders if o.rejected)
    assert inv["count"] == n_val and inv["errors"] == n_rej
    assert near(inv["errorRate"], n_rej / n_val)


def test_rejected_order_ends_at_rejection_and_is_not_broken(restaurant):
    orders, _, r = restaurant
    n_rej = sum(1 for o in orders if o.rejected)
    assert r.outcomes["rejected"] == n_rej > 0
    rej = next(e for e in r.e2e if e["outcome"] == "rejected")
    assert rej["source"] == "website" and rej["count"] == n_rej
    assert near(rej["maxMs"], mf.chain_ms("website", reject=True))
    assert r.broken == []
    graph = {(e["from"], e["to"]): e["messages"] for e in r.graph["edges"]}
    assert graph[("order-validation", "topic:ituna-rejected")] == n_rej


def test_order_the_kitchen_rejects_counts_as_rejected(tmp_path):
    """main-kitchen in error with the order sent to the rejection topic (kitchen-service's
    spoiled order), and main-kitchen in error with no message at all: both rejected, not
    served, ending at the order's last span; a served order beside them stays served."""
    rng = random.Random(21)
    spoiled = mf.build_spoiled_order(rng, "order-spoiled", "website", 0)
    direct = mf.build_spoiled_order(rng, "order-spoiled-direct", "direct", 400)
    silent = mf.build_spoiled_order(rng, "order-spoiled-silent", "on-site", 800, publish=False)
    good = mf.build_order(rng, "order-served", "website", 1200)
    path = tmp_path / "kitchen-reject.jsonl"
    mf.write_jsonl(path, mf.to_requests([s for o in (spoiled, direct, silent, good) for s in o.spans]))
    r = analyze(path)
    assert r.outcomes == {"rejected": 3, "served": 1}
    assert r.broken == []
    by = {(e["source"], e["outcome"]): e for e in r.e2e}
    assert set(by) == {("website", "rejected"), ("direct", "rejected"), ("on-site", "rejected"),
                       ("website", "served")}
    # the kitchen's consumer span is the spoiled order's last span: it ends there
    assert near(by[("website", "rejected")]["maxMs"], mf.chain_ms("website"))
    assert near(by[("direct", "rejected")]["maxMs"], mf.chain_ms("direct"))
    graph = {(e["from"], e["to"]): e["messages"] for e in r.graph["edges"]}
    assert graph[("kitchen-service", "topic:ituna-rejected")] == 2
    assert graph[("kitchen-service", "topic:ituna-ready")] == 1
    assert "(1 served, 3 rejected, 0 incomplete)" in r.to_text()
    w = analyze(path, want_order="order-spoiled").found[0]
    assert w["outcome"] == "rejected"


def test_rejection_topic_comes_from_the_cli_or_the_config(tmp_path):
    """A run with topics of its own (as the e2e tests have): sends to that topic count as
    rejections once the report is told the name, by --rejected-topic or --config."""
    rng = random.Random(22)
    orders = [mf.build_spoiled_order(rng, "order-own-topic-%d" % i, "direct", i * 400.0, topic="run7-rejected")
              for i in range(2)]
    # the kitchen sent the order away without marking its span: only the topic tells
    for o in orders:
        for _, d in o.spans:
            if d["name"] == "main-kitchen":
                d["status"] = {}
    path = tmp_path / "own-topic.jsonl"
    mf.write_jsonl(path, mf.to_requests([s for o in orders for s in o.spans]))
    assert analyze(path).outcomes == {"served": 2}
    assert analyze(path, reject_topics={"run7-rejected"}).outcomes == {"rejected": 2}
    out = run_cli(path, "--rejected-topic", "run7-rejected", "--width", "80").stdout
    assert "(0 served, 2 rejected, 0 incomplete)" in out
    cfg = tmp_path / "run.ini"
    cfg.write_text("[topics]\nrejected = run7-rejected\n")
    out = run_cli(path, "--config", cfg, "--width", "80").stdout
    assert "(0 served, 2 rejected, 0 incomplete)" in out


def test_direct_kitchen_order_skips_validation(restaurant):
    orders, path, r = restaurant
    direct = [o for o in orders if o.source == "direct"]
    e = next(e for e in r.e2e if e["source"] == "direct")
    assert e["outcome"] == "served" and e["count"] == len(direct)
    assert near(e["p50Ms"], mf.chain_ms("direct")) and near(e["maxMs"], mf.chain_ms("direct"))
    w = analyze(path, want_order=direct[0].order_id).found[0]
    names = {s["name"] for s in w["spans"]}
    assert "main-direct-order" in names and "main-kitchen" in names
    assert not names & {"main-order-validation", "address_validation", "process ituna-orders"}
    graph = {(e["from"], e["to"]) for e in r.graph["edges"]}
    assert ("direct-kitchen-ordering", "topic:kitchen-orders") in graph


def test_end_to_end_per_source(restaurant):
    orders, _, r = restaurant
    for src in ("website", "on-site"):
        e = next(e for e in r.e2e if e["source"] == src and e["outcome"] == "served")
        assert e["count"] == sum(1 for o in orders if o.source == src and not o.rejected)
        assert near(e["p50Ms"], mf.chain_ms(src)) and near(e["p99Ms"], mf.chain_ms(src))


def test_broken_traces_are_counted_and_listed():
    r = analyze(FIX / "broken.jsonl")
    kinds = {b["kind"]: b for b in r.broken}
    rng = random.Random(9)  # rebuild to learn the planted trace ids
    planted = {o.order_id: o.trace_id for o in
               [mf.build_order(rng, "order-missing-producer", "website", 0, drop=("send ituna-orders",)),
                mf.build_order(rng, "order-orphan", "on-site", 100, drop=("main-order-validation",)),
                mf.build_order(rng, "order-cut-short", "website", 200, drop=("kitchen",)),
                mf.build_order(rng, "order-good", "website", 300)]}
    assert kinds["consumer without producer"]["count"] == 1
    assert kinds["consumer without producer"]["examples"] == [planted["order-missing-producer"]]
    assert kinds["orphan span (parent missing)"]["examples"] == [planted["order-orphan"]]
    assert kinds["cut short (no kitchen, no rejection)"]["examples"] == [planted["order-cut-short"]]
    assert len(kinds) == 3
    assert r.traces == 4 and r.outcomes == {"served": 3, "incomplete": 1}
    assert _queue(r, "ituna-orders")["missingProducer"] == 1
    assert "PROBLEMS FOUND" in r.to_text() and "consumer without producer" in r.to_text()


def test_clock_skew_of_50ms_is_detected_and_corrected():
    r = analyze(FIX / "skew.jsonl")
    assert len(r.skew) == 1
    s = r.skew[0]
    assert (s["from"], s["to"], s["traces"]) == ("website-ordering", "order-validation", 10)
    # A lower bound of the true 50 ms, tight up to the 1 ms wait and the timestamp offset.
    assert 45 <= s["estimatedSkewMs"] <= 50
    plan = dict(mf.PLAN, q_orders=1.0)
    # Ordering and kitchen clocks are right: the end-to-end time is the planted one, and
    # the critical path adds up to it instead of losing the skew.
    e = next(e for e in r.e2e if e["outcome"] == "served")
    assert e["count"] == 10 and near(e["maxMs"], mf.chain_ms("website", plan)) and near(e["p50Ms"], mf.chain_ms("website", plan))
    assert near(r.cp_total_ms, 10 * mf.chain_ms("website", plan))
    q1, q2 = _queue(r, "ituna-orders"), _queue(r, "kitchen-orders")
    assert q1["p50Ms"] >= 0 and q1["maxMs"] <= plan["q_orders"]
    under = 50 - s["estimatedSkewMs"]  # what the lower bound left uncorrected
    assert plan["q_kitchen"] <= q2["p50Ms"] <= plan["q_kitchen"] + under + 0.01
    assert "clock skew website-ordering -> order-validation" in r.to_text()
    # Uncorrected, the consumer would have started ~47 ms before its producer.
    w = r.found or analyze(FIX / "skew.jsonl", want_order="order-skew-3").found
    sp = next(x for x in w[0]["spans"] if x["name"] == "process ituna-orders")
    assert near(sp["skewShiftMs"], s["estimatedSkewMs"], rel=0.05)


def test_link_mode_consumers_join_their_producers_trace():
    r = analyze(FIX / "link_mode.jsonl")
    assert r.traces == 5 and r.outcomes == {"served": 5} and r.broken == []
    assert near(_queue(r, "ituna-orders")["p50Ms"], mf.PLAN["q_orders"])
    assert near(_queue(r, "kitchen-orders")["p50Ms"], mf.PLAN["q_kitchen"])
    assert r.ranking[0]["stage"] == "kitchen-service / roll"


def test_directory_of_per_service_files_equals_merged_file(restaurant, tmp_path):
    """A run directory holds one file per service; read side by side in time order, the
    orders' spans meet within a small window of traces in flight."""
    _, _, r = restaurant
    d = analyze(FIX / "restaurant-dir", max_in_flight=48)
    assert d.late_spans == 0 and d.peak_in_flight <= 48
    # The same files merely concatenated need the whole run in flight: with the same
    # window, spans arrive after their trace was closed, and the report says so.
    cat = tmp_path / "cat.jsonl"
    cat.write_text("".join(f.read_text() for f in sorted((FIX / "restaurant-dir").iterdir())))
    c = analyze(cat, max_in_flight=48)
    assert c.late_spans > 0 and "raise --max-in-flight" in c.to_text()
    assert d.traces == r.traces and d.spans == r.spans
    assert [(x["stage"], round(x["share"], 9)) for x in d.ranking] == [(x["stage"], round(x["share"], 9)) for x in r.ranking]


def test_order_waterfall_in_the_terminal(restaurant):
    orders, path, _ = restaurant
    o = next(o for o in orders if o.source == "website" and not o.rejected)
    out = run_cli(path, "--order", o.order_id, "--width", "80").stdout
    lines = out.splitlines()
    assert o.order_id in lines[0] and "served" in lines[0]
    assert all(len(line) <= 80 for line in lines)
    for name in ("main-website-order", "send ituna-orders", "process ituna-orders", "main-order-validation",
                 "address_validation", "main-kitchen", "roll", "plate"):
        assert any(line.strip().startswith(name[:14]) for line in lines), name
    roll = next(line for line in lines if line.strip().startswith("roll "))
    assert roll.count("#") >= 15  # 200 of 284 ms of bar, on the critical path
    assert "." in next(line for line in lines if line.strip().startswith("process kit"))
    by_trace = run_cli(path, "--trace", o.trace_id).stdout
    assert by_trace.splitlines()[0] == lines[0]
    miss = run_cli(path, "--order", "no-such-order", check=False)
    assert miss.returncode == 1 and "no trace found for order no-such-order" in miss.stderr


def test_table_fits_80_columns_and_json_has_the_same_figures(restaurant, tmp_path):
    _, path, r = restaurant
    p = run_cli(path, "--json", tmp_path / "r.json", "--width", "80")
    lines = p.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    first = next(i for i, line in enumerate(lines) if line.lstrip().startswith("1 "))
    assert "kitchen-service / roll" in lines[first]
    d = json.loads((tmp_path / "r.json").read_text())
    assert d["ranking"][0]["stage"] == "kitchen-service / roll"
    assert d["ranking"][0]["share"] == pytest.approx(r.ranking[0]["share"])
    assert {q["topic"] for q in d["queueWait"]} == {"ituna-orders", "kitchen-orders"}
    assert d["traces"] == r.traces and d["spans"] == r.spans


def test_html_is_self_contained(restaurant, tmp_path):
    _, path, r = restaurant
    html = r.to_html(tmp_path / "r.html")
    assert html.startswith("<!DOCTYPE html>")
    low = html.lower()
    for bad in ("<link", " src=", "@import", "url(http", "fetch(", "xmlhttprequest"):
        assert bad not in low, bad
    assert "</script>" not in html.split('id="report-data">', 1)[1].split("</script>", 1)[0]


def test_jaeger_v3_answer_is_parsed_with_base64_ids_and_enum_names():
    body = (FIX / "jaeger_v3_answer.json").read_text()
    reqs = list(L.parse_jaeger_body(body))
    assert len(reqs) == 4
    r = R.analyze_requests(reqs, normalise_ids=True, profile=str(PROFILE))
    want = json.loads((FIX / "jaeger_v3_answer.orders.json").read_text())
    assert r.traces == 4 and r.outcomes == {"served": 3, "rejected": 1} and r.broken == []
    assert {t["traceId"] for t in r.embedded} == {o["trace_id"] for o in want}
    assert r.ranking[0]["stage"] == "kitchen-service / roll"
    assert near(_queue(r, "ituna-orders")["p50Ms"], mf.PLAN["q_orders"])
    assert L.norm_id("AAECAwQFBgcICQoLDA0ODw==", 16) == "000102030405060708090a0b0c0d0e0f"
    assert L.norm_id("AAECAwQFBgc", 8) == "0001020304050607"
    assert L.norm_id("0001020304050607", 8) == "0001020304050607"


class _FakeJaeger(http.server.BaseHTTPRequestHandler):
    body = b""
    seen = []

    def do_GET(self):  # noqa: N802
        _FakeJaeger.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(_FakeJaeger.body)

    def log_message(self, *a):
        pass


def test_jaeger_query_over_http():
    """--jaeger against a local HTTP server answering the recorded /api/v3 body."""
    _FakeJaeger.body = (FIX / "jaeger_v3_answer.json").read_bytes()
    _FakeJaeger.seen = []
    srv = http.server.HTTPServer(("127.0.0.1", 0), _FakeJaeger)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        url = "http://127.0.0.1:%d" % srv.server_address[1]
        p = run_cli("--jaeger", url, "--service", "website-ordering", "--since", "15m", "--width", "80")
    finally:
        srv.shutdown()
        srv.server_close()
    assert "kitchen-service / roll" in p.stdout.splitlines()[5]
    u = urllib.parse.urlparse(_FakeJaeger.seen[0])
    q = urllib.parse.parse_qs(u.query)
    assert u.path == "/api/v3/traces"
    assert q["query.service_name"] == ["website-ordering"] and q["query.num_traces"] == ["1000"]
    assert q["query.start_time_min"][0].endswith("Z") and q["query.start_time_min"][0] < q["query.start_time_max"][0]


class _GrowingJaeger(_FakeJaeger):
    """Answers no trace for the first requests, then the recorded answer: a Jaeger that
    receives the traces while ituna-report --follow watches it."""
    empty_first = 3

    def do_GET(self):  # noqa: N802
        _FakeJaeger.seen.append(self.path)
        body = b'{"result": {"resourceSpans": []}}' if len(_FakeJaeger.seen) <= self.empty_first \
            else _FakeJaeger.body
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)


def test_follow_on_jaeger_refreshes_until_idle():
    _FakeJaeger.body = (FIX / "jaeger_v3_answer.json").read_bytes()
    _FakeJaeger.seen = []
    srv = http.server.HTTPServer(("127.0.0.1", 0), _GrowingJaeger)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = "http://127.0.0.1:%d" % srv.server_address[1]
        p = run_cli("--jaeger", url, "--service", "website-ordering", "--follow", "--interval", "0.2",
                    "--until-idle", "1", "--width", "80")
    finally:
        srv.shutdown()
        srv.server_close()
    heads = [int(x) for x in re.findall(r"^ituna-report: (\d+) orders/traces", p.stdout, re.M)]
    assert heads[0] == 0 and heads[-1] == 4, heads  # empty at first, then the traces as they came
    assert len(re.findall(r"^ituna-report --follow: refresh \d+ ", p.stdout, re.M)) >= 5
    assert "kitchen-service / roll" in p.stdout.split("refresh")[-1]


def test_follow_reads_a_file_that_grows(tmp_path, restaurant):
    """--follow on a file another process appends to: each refresh reads the new whole
    lines (a half-written last line waits), and the last one holds every trace."""
    _, path, r = restaurant
    lines = Path(path).read_text().splitlines(keepends=True)
    grow = tmp_path / "growing.jsonl"
    grow.write_text("")
    env = dict(os.environ, PYTHONPATH=PYPATH + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.Popen([sys.executable, *CLI, "--profile", str(PROFILE), str(grow), "--follow", "--interval",
                          "0.2", "--until-idle", "1.5", "--width", "80"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        step = max(1, len(lines) // 6)
        with open(grow, "a") as f:
            for i in range(0, len(lines), step):
                chunk = "".join(lines[i:i + step])
                f.write(chunk[:-5])  # a half-written line first
                f.flush()
                time.sleep(0.15)
                f.write(chunk[-5:])
                f.flush()
                time.sleep(0.3)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    spans = [int(x) for x in re.findall(r"^ituna-report: \d+ orders/traces \(.*\), (\d+) spans$", out, re.M)]
    assert spans[-1] == r.spans, (spans, r.spans)
    assert any(0 < x < r.spans for x in spans), spans  # refreshes while it grew
    final = out[out.index("ituna-report --follow: final"):]
    assert "ituna-report: %d orders/traces" % r.traces in final


def test_unreachable_jaeger_and_bad_input_get_clear_errors(tmp_path):
    p = run_cli("--jaeger", "http://127.0.0.1:9", "--service", "x", check=False)
    assert p.returncode == 1 and "cannot reach Jaeger" in p.stderr
    bad = tmp_path / "bad.jsonl"
    good = (FIX / "broken.jsonl").read_text().splitlines()[0]
    bad.write_text(good + "\n" + '{"resourceSpans": [}\n')
    p = run_cli(bad, check=False)
    assert p.returncode == 1 and "bad.jsonl:2: invalid JSON" in p.stderr
    trunc = tmp_path / "trunc.json"
    trunc.write_text('{\n "resourceSpans": [\n')
    p = run_cli(trunc, check=False)
    assert p.returncode == 1 and "trunc.json:1:" in p.stderr
    p = run_cli(tmp_path / "missing.jsonl", check=False)
    assert p.returncode == 1 and "no such file" in p.stderr
    p = run_cli("--since", "10m", check=False)
    assert p.returncode == 2


def test_pretty_printed_json_file_is_read(tmp_path):
    reqs = mf.to_requests(mf.build_order(random.Random(3), "o1", "on-site", 0).spans, batch=100)
    f = tmp_path / "pretty.json"
    f.write_text("\n".join(json.dumps(x, indent=2) for x in reqs))
    r = analyze(f)
    assert r.traces == 1 and r.outcomes == {"served": 1}


_STREAM_CHILD = r"""
import json, random, resource, sys, types
sys.path.insert(0, sys.argv[1])
from ituna_report import analyze_paths
r = analyze_paths(sys.argv[3], max_in_flight=400, max_embedded=50, profile=sys.argv[4])
print(json.dumps({"rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "spans": r.spans,
                  "traces": r.traces, "late": r.late_spans, "peak": r.peak_in_flight,
                  "top": r.ranking[0]["stage"], "share": r.ranking[0]["share"]}))
"""


def _write_orders(path, n_orders, seed):
    rng = random.Random(seed)
    with open(path, "w") as f:
        for chunk in range(0, n_orders, 500):
            spans = []
            for i in range(chunk, min(n_orders, chunk + 500)):
                spans += mf.build_order(rng, "o%d" % i, ("website", "on-site", "direct")[i % 3], i * 20.0).spans
            for req in mf.to_requests(spans, batch=64):
                f.write(json.dumps(req, separators=(",", ":")) + "\n")


def test_large_input_streams_in_bounded_memory(tmp_path):
    """Memory must follow the traces in flight, not the spans: 4x the input, ~same RSS."""
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    _write_orders(small, 1500, 1)
    _write_orders(large, 6000, 2)
    res = []
    for f in (small, large):
        p = subprocess.run([sys.executable, "-c", _STREAM_CHILD, PYPATH, str(FIX), str(f), str(PROFILE)],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        res.append(json.loads(p.stdout))
    s, big = res
    assert big["spans"] > 70000 and big["traces"] == 6000 and big["late"] == 0
    assert big["peak"] <= 400
    assert big["top"] == "kitchen-service / roll"
    growth_mb = (big["rss_kb"] - s["rss_kb"]) / 1024
    assert growth_mb < 15, "RSS grew by %.1f MB for 4x the spans" % growth_mb
