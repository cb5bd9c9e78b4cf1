"""The embedded default, as a newcomer runs it: one command, no broker, no
endpoint, the shipped config (mixed Lua and Python). Orders end served or rejected
once each, every order is one trace in the traces file with the full shape, every
log line carries its ids, and no service process is left behind."""
import os
import re

import traceshape
from e2e_common import SCRIPTS
from restaurant_util import RunLogs, processes_in, run_restaurant

ORDERS = 10


def test_newcomer_run_on_the_embedded_broker_writes_one_trace_per_order(binding, ituna_lua, tmp_path):
    env = {"ITUNA_LUA": ituna_lua}
    r = run_restaurant(["--orders", str(ORDERS)], cwd=str(tmp_path), env_extra=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "embedded test broker" in r.stdout
    assert processes_in(tmp_path) == [], "service processes outlived the launcher"

    m = re.search(r"^Traces: (\S+)", r.stdout, re.M)
    assert m, r.stdout
    traces_file = m.group(1)
    assert traces_file.startswith(str(tmp_path)) and os.path.getsize(traces_file) > 0
    run_dir = os.path.dirname(traces_file)
    logs = RunLogs(run_dir)
    assert len(logs.placed) == ORDERS
    assert not logs.bad_lines, "\n".join(logs.bad_lines[:5])

    spans = traceshape.read_jsonl(traces_file)
    traces = traceshape.by_trace(spans)
    # the shipped config's topics
    topics = {"orders": "ituna-orders", "kitchen": "kitchen-orders", "rejected": "ituna-rejected",
              "ready": "ituna-ready"}
    services = set()
    for oid, (source, trace_id, _) in logs.placed.items():
        assert logs.served[oid] + logs.rejected_count[oid] == 1, f"order {oid} ended {logs.served[oid]} + " \
                                                                 f"{logs.rejected_count[oid]} times"
        assert traceshape.order_trace_ids(spans, oid) == {trace_id}, f"order {oid} is in several traces"
        traceshape.check_order_trace(traces[trace_id], oid, source, logs.outcome(oid), topics)
        assert logs.log_trace[oid] == {trace_id}
        services |= {s.service for s in traces[trace_id]}
    assert services == {"website-ordering", "onsite-ordering", "direct-kitchen-ordering", "order-validation",
                        "kitchen-service"}
    # the shipped config really mixes languages (so traces cross Lua and Python)
    with open(os.path.join(SCRIPTS, "ituna-config.ini"), encoding="utf-8") as f:
        text = f.read()
    assert re.search(r"^\s*\S+\s*=\s*lua\s*$", text, re.M) and re.search(r"^\s*\S+\s*=\s*python\s*$", text, re.M)
