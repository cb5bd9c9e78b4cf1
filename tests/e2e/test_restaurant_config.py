"""Which Kafka and which settings the launcher takes from a config file: the seed POC's
own file runs the restaurant (on the embedded broker, with the seed's delays) with one
trace per order; a config's [queue] host/port points the launcher at that broker;
one it cannot reach fails at once, naming where the address came from."""
import os
import re
import socket

import traceshape
from e2e_common import REPO
from restaurant_util import RunLogs, processes_in, run_restaurant, write_config

SEED_CONFIG = os.path.join(REPO, "tests", "fixtures", "seed-ituna-config.ini")
SEED_ORDERS = 6
# The seed's file names no topics of ours: the defaults.
DEFAULT_TOPICS = {"orders": "ituna-orders", "kitchen": "kitchen-orders", "rejected": "ituna-rejected",
                  "ready": "ituna-ready"}


def test_the_seed_config_runs_the_restaurant_with_one_trace_per_order(binding, ituna_lua, tmp_path):
    # The seed's [queue] names docker-compose's "broker": --bootstrap embedded overrides it.
    run_dir = tmp_path / "run"
    r = run_restaurant(["--config", SEED_CONFIG, "--bootstrap", "embedded", "--orders", str(SEED_ORDERS),
                        "--run-dir", str(run_dir), "--progress-interval", "5"],
                       cwd=str(tmp_path), env_extra={"ITUNA_LUA": ituna_lua}, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    # the seed's delays (ordering 2-4 s an order) keep it short, but not instant
    assert r.elapsed < 60, f"the seed's config took {r.elapsed:.0f} s"
    assert "embedded test broker" in r.stdout
    assert processes_in(tmp_path) == [], "service processes outlived the launcher"
    assert "WHERE THE TIME GOES" in r.stdout
    assert f"ituna-report: {SEED_ORDERS} orders/traces ({SEED_ORDERS} served, 0 rejected, 0 incomplete)" in r.stdout

    logs = RunLogs(str(run_dir))
    assert len(logs.placed) == SEED_ORDERS
    assert not logs.bad_lines, "\n".join(logs.bad_lines[:5])
    spans = traceshape.read_jsonl(str(run_dir / "traces.jsonl"))
    traces = traceshape.by_trace(spans)
    assert len(traces) == SEED_ORDERS, f"{len(traces)} traces for {SEED_ORDERS} orders"
    sources = set()
    for oid, (source, trace_id, _) in logs.placed.items():
        # no failure rates in the seed's file: every order is served, once
        assert logs.served[oid] == 1 and not logs.rejected_count[oid], oid
        assert traceshape.order_trace_ids(spans, oid) == {trace_id}, f"order {oid} is in several traces"
        traceshape.check_order_trace(traces[trace_id], oid, source, "served", DEFAULT_TOPICS)
        sources.add(source)
        # the seed's kitchen-service = 140 ms of cooking
        kitchen = [s for s in traces[trace_id] if s.name == "main-kitchen"]
        assert len(kitchen) == 1 and (kitchen[0].end - kitchen[0].start) / 1e6 >= 140 * 0.95, kitchen
    assert sources == {"website", "on-site", "direct"}


def test_queue_host_and_port_of_the_config_point_the_launcher_at_that_broker(binding, ituna_lua, kafka_bootstrap,
                                                                              tmp_path):
    host, _, port = kafka_bootstrap.rpartition(":")
    cfg, topics = write_config(tmp_path, extra=f"[queue]\nhost = {host}\nport = {port}\n", failures=False)
    run_dir = tmp_path / "run"
    r = run_restaurant(["--config", cfg, "--orders", "4", "--run-dir", str(run_dir), "--no-progress"],
                       cwd=str(tmp_path), env_extra={"ITUNA_LUA": ituna_lua}, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"kafka: Kafka at {host}:{port} (from [queue] host/port of {cfg})" in r.stdout, r.stdout
    assert "embedded" not in r.stdout.split("traces:")[0]
    logs = RunLogs(str(run_dir))
    assert len(logs.placed) == 4 and all(logs.served[o] == 1 for o in logs.placed), r.stdout


def test_an_unreachable_queue_broker_fails_at_once_naming_its_origin(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    cfg, _ = write_config(tmp_path, extra=f"[queue]\nhost = 127.0.0.1\nport = {port}\n")
    r = run_restaurant(["--config", cfg, "--orders", "1", "--run-dir", str(tmp_path / "run")],
                       cwd=str(tmp_path), timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert re.search(rf"cannot reach Kafka at 127\.0\.0\.1:{port} \(from \[queue\] host/port of .*\): ", r.stderr), \
        r.stderr
    assert "--bootstrap embedded" in r.stderr
    assert r.elapsed < 20
