"""Issue 8 against the live Jaeger: the restaurant runs on the embedded broker and
exports over OTLP/HTTP to the Jaeger v2 the suite starts (tools/jaeger.sh), with one
stage planted slow; then `ituna-report --jaeger URL --service kitchen-service --since
...` reads the traces back through Jaeger's /api/v3 and must find what was planted:
the planted stage first in the ranking, one trace per order placed, every order
served, queue wait on both topics, and an order's waterfall by --order.

The Jaeger is shared with the other tests of the run, which also send restaurant
services' spans. The --since window is therefore the time since this run started
(the report accepts fractional seconds), so only this run's kitchen spans match."""
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import uuid

from e2e_common import FIXTURES, REPO, launcher_env, run_launcher
from restaurant_util import RunLogs

ORDERS = 18
SLOW_MS = 250
PLANTED_KEY = "order-validation-name"
PLANTED_STAGE = "order-validation / name_validation"


def planted_config(directory):
    """bottleneck.ini (every stage fast, no failures) with topics of this run and
    PLANTED_KEY slowed to SLOW_MS; returns (path, run id)."""
    run = uuid.uuid4().hex[:10]
    with open(os.path.join(FIXTURES, "bottleneck.ini"), encoding="utf-8") as f:
        text = f.read().replace("{run}", run)
    head, sep, rest = text.partition("[simulated-delays]\n")
    delays, nxt, tail = rest.partition("\n[")
    delays, n = re.subn(rf"(?m)^{re.escape(PLANTED_KEY)} = \d+$", f"{PLANTED_KEY} = {SLOW_MS}", delays)
    assert sep and n == 1, f"bottleneck.ini has no [simulated-delays] {PLANTED_KEY}"
    text = head + sep + delays + nxt + tail
    others = [int(v) for k, v in re.findall(r"(?m)^([a-z-]+) = (\d+)$", delays) if k != PLANTED_KEY]
    assert others and max(others) * 4 < SLOW_MS, "bottleneck.ini is not fast enough to plant a stage"
    path = os.path.join(str(directory), f"report-jaeger-{run}.ini")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path, run


def report_cmd():
    exe = shutil.which("ituna-report")
    return [exe] if exe else [sys.executable, "-m", "ituna_report"]


def run_report(args, timeout=120):
    # the restaurant's traces, read with the restaurant's profile (served, rejected, orders)
    profile = ["--profile", os.path.join(REPO, "scripts", "restaurant-profile.ini")]
    return subprocess.run(report_cmd() + profile + list(args), env=launcher_env(), capture_output=True,
                          text=True, timeout=timeout)


def test_report_reads_the_planted_bottleneck_back_from_jaeger(binding, ituna_lua, jaeger, tmp_path):
    config, run = planted_config(tmp_path)
    run_dir = tmp_path / "run"
    t0 = time.time()
    r = run_launcher(["--config", config, "--orders", str(ORDERS), "--run-dir", str(run_dir), "--no-progress",
                      "--otlp-endpoint", jaeger["otlp"], "--lang", "order-validation=python"],
                     env=launcher_env({"ITUNA_LUA": ituna_lua}), timeout=180, cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "embedded test broker" in r.stdout
    # without --jaeger-query the table comes from the services' local copies (copy-file)
    assert "WHERE THE TIME GOES" in r.stdout and "a copy in" in r.stdout, r.stdout
    assert (run_dir / "traces.jsonl").stat().st_size > 0
    logs = RunLogs(str(run_dir))
    assert len(logs.placed) == ORDERS, r.stdout
    assert all(logs.served[oid] == 1 for oid in logs.placed), r.stdout
    our_traces = {trace_id for _, trace_id, _ in logs.placed.values()}
    validated = sum(1 for source, _, _ in logs.placed.values() if source != "direct")
    assert validated > 0, "no order went through validation: the planted stage was never exercised"

    out_json = tmp_path / "report.json"

    def report_once():
        # this run only: kitchen spans that started since the launcher did
        since = "%.3fs" % (time.time() - t0 + 0.2)
        rr = run_report(["--jaeger", jaeger["query"], "--service", "kitchen-service", "--since", since,
                         "--json", str(out_json), "--width", "100"])
        d = None
        if rr.returncode == 0 and out_json.is_file():
            with open(out_json, encoding="utf-8") as f:
                d = json.load(f)
        return rr, d

    # Jaeger ingests asynchronously: ask again until every order's trace is whole
    deadline = time.monotonic() + 30
    while True:
        rr, d = report_once()
        if (d and d["outcomes"].get("served", 0) >= ORDERS) or time.monotonic() >= deadline:
            break
        time.sleep(1)
    assert rr.returncode == 0 and d is not None, f"ituna-report --jaeger failed:\n{rr.stdout}\n{rr.stderr}"
    print(rr.stdout)

    # exactly this run's orders, each one trace, all served
    assert d["traces"] == ORDERS, d["outcomes"]
    assert d["outcomes"] == {"served": ORDERS}, d["outcomes"]
    assert set(d["slowestTraces"]) <= our_traces, "the report read traces of another run"
    assert not d["broken"], d["broken"]
    # Jaeger returned whole traces, not only the kitchen's spans
    services = {s["service"] for s in d["stages"]}
    assert services == {"website-ordering", "onsite-ordering", "direct-kitchen-ordering", "order-validation",
                        "kitchen-service"}, services
    by_source = {}
    for e in d["endToEnd"]:
        by_source[e["source"]] = by_source.get(e["source"], 0) + e["count"]
    placed_by_source = {}
    for source, _, _ in logs.placed.values():
        placed_by_source[source] = placed_by_source.get(source, 0) + 1
    assert by_source == placed_by_source

    # the planted stage: slow on every validated order, first in the ranking, and in the table
    [st] = [s for s in d["stages"] if s["service"] == "order-validation" and s["name"] == "name_validation"]
    assert st["count"] == validated and st["p50Ms"] >= 0.95 * SLOW_MS, st
    ranking = d["ranking"]
    assert ranking[0]["stage"] == PLANTED_STAGE, "\n".join(
        f"{x['stage']}: {x['share']:.1%}" for x in ranking[:6])
    # the other validation steps stayed fast
    for other in ("address_validation", "inventory_validation"):
        assert all(x["share"] < ranking[0]["share"] / 2 for x in ranking
                   if x["stage"] == f"order-validation / {other}"), ranking[:6]
    assert math.isclose(ranking[0]["meanPerTraceMs"] * ORDERS / validated, st["p50Ms"], rel_tol=0.25), \
        (ranking[0], st)
    table = rr.stdout.splitlines()
    first = next(line for line in table if re.match(r"^\s*1 ", line))
    assert PLANTED_STAGE in first, rr.stdout
    assert re.search(rf"^ituna-report: {ORDERS} orders/traces \({ORDERS} served, 0 rejected, 0 incomplete\)",
                     rr.stdout, re.M), rr.stdout

    # queue wait on both hops, one message per order that took the hop
    queues = {q["topic"]: q for q in d["queueWait"]}
    orders_topic, kitchen_topic = f"bn-{run}-orders", f"bn-{run}-kitchen"
    assert set(queues) >= {orders_topic, kitchen_topic}, list(queues)
    assert queues[orders_topic]["count"] == validated
    assert queues[kitchen_topic]["count"] == ORDERS
    for q in (queues[orders_topic], queues[kitchen_topic]):
        assert q["p50Ms"] is not None and q["p50Ms"] >= 0 and q["missingProducer"] == 0, q
        assert q["attr"]["count"] == q["count"], q  # the consumer's ituna.queue_wait_ms too

    # one validated order as a waterfall, read from Jaeger by its order id
    oid = next(o for o, (source, _, _) in logs.placed.items() if source != "direct")
    since = "%.3fs" % (time.time() - t0 + 0.2)
    wf = run_report(["--jaeger", jaeger["query"], "--service", "kitchen-service", "--since", since,
                     "--order", oid, "--width", "120"])
    assert wf.returncode == 0, wf.stdout + wf.stderr
    assert wf.stdout.startswith(f"order {oid} ("), wf.stdout
    assert logs.placed[oid][1] in wf.stdout.splitlines()[0]
    row = next(line for line in wf.stdout.splitlines() if "name_validation" in line)
    assert "#" in row, wf.stdout  # on the critical path


def test_report_jaeger_errors_are_clear(jaeger):
    # a service nobody sent: no traces, exit 1 with the reason
    r = run_report(["--jaeger", jaeger["query"], "--service", "no-such-service-" + uuid.uuid4().hex[:8],
                    "--since", "1m"])
    assert r.returncode == 1, r.stdout + r.stderr
    assert "held no spans" in r.stderr
    # a bad window
    r = run_report(["--jaeger", jaeger["query"], "--service", "kitchen-service", "--since", "soon"])
    assert r.returncode == 1 and "--since" in r.stderr, r.stderr
    # nobody listening
    r = run_report(["--jaeger", "http://127.0.0.1:9", "--service", "kitchen-service"])
    assert r.returncode == 1 and "cannot reach Jaeger" in r.stderr, r.stderr
