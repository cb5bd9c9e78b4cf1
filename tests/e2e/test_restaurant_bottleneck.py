"""Issue 8: on a real restaurant run with one stage made slow in the config, the
report ranks that stage first. The launcher runs on the embedded broker (no broker,
no endpoint) with tests/e2e/fixtures/bottleneck.ini, where every stage is fast; the
test plants one stage by rewriting its delay, then analyses the merged traces file
with ituna_report. Two variants plant different stages (in different languages), so
the ranking must follow the config, not a fixed answer."""
import os
import re
import uuid

import pytest

from e2e_common import FIXTURES, REPO, launcher_env, run_launcher
from restaurant_util import RunLogs

ORDERS = 18
SLOW_MS = 250
FAST_MAX_MS = 20

PLANTS = [
    pytest.param("order-validation-inventory", "order-validation / inventory_validation",
                 ["--lang", "order-validation=python"], id="inventory-in-python"),
    pytest.param("order-validation-address", "order-validation / address_validation",
                 ["--lang", "order-validation=lua"], id="address-in-lua"),
]


def planted_config(directory, key):
    """bottleneck.ini with topics of this run and `key` slowed to SLOW_MS; the path."""
    run = uuid.uuid4().hex[:10]
    with open(os.path.join(FIXTURES, "bottleneck.ini"), encoding="utf-8") as f:
        text = f.read().replace("{run}", run)
    section = re.search(r"(?ms)^\[simulated-delays\]\n(.*?)(?=^\[)", text).group(1)
    delays = dict(re.findall(r"(?m)^([a-z-]+) = (\d+)$", section))
    assert key in delays, f"bottleneck.ini has no [simulated-delays] {key}"
    # the planted stage must be the only slow one, or the test would prove nothing
    assert all(int(v) <= FAST_MAX_MS for v in delays.values()), delays
    text = re.sub(rf"(?m)^{re.escape(key)} = \d+$", f"{key} = {SLOW_MS}", text, count=1)
    path = os.path.join(str(directory), f"bottleneck-{run}.ini")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def top(ranking, n=6):
    return "\n".join(f"  {i + 1}. {r['stage']}: {r['share']:.1%} ({r['meanPerTraceMs']:.0f} ms/order)"
                     for i, r in enumerate(ranking[:n]))


@pytest.mark.parametrize("key,expected,lang", PLANTS)
def test_the_stage_made_slow_ranks_first(binding, ituna_lua, tmp_path, key, expected, lang):
    from ituna_report import analyze_paths

    config = planted_config(tmp_path, key)
    run_dir = tmp_path / "run"
    env = launcher_env({"ITUNA_LUA": ituna_lua})
    r = run_launcher(["--config", config, "--orders", str(ORDERS), "--run-dir", str(run_dir), "--no-progress"]
                     + lang, env=env, timeout=120, cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "embedded test broker" in r.stdout
    traces_file = run_dir / "traces.jsonl"
    assert traces_file.is_file() and traces_file.stat().st_size > 0, r.stdout

    # the run really happened: every order placed, and each served once (no failures planted)
    logs = RunLogs(str(run_dir))
    assert len(logs.placed) == ORDERS
    assert all(logs.served[oid] == 1 for oid in logs.placed), r.stdout
    validated = sum(1 for source, _, _ in logs.placed.values() if source != "direct")
    assert validated > 0

    report = analyze_paths(str(traces_file), profile=os.path.join(REPO, "scripts", "restaurant-profile.ini"))
    assert report.traces == ORDERS and report.outcomes.get("served") == ORDERS, report.outcomes

    # the planted stage ran slow on every order through validation, as configured
    step = expected.split(" / ")[1]
    stats = [s for s in report.stages if s["service"] == "order-validation" and s["name"] == step]
    assert len(stats) == 1, report.stages
    assert stats[0]["count"] == validated
    assert stats[0]["p50Ms"] >= 0.95 * SLOW_MS, stats[0]

    ranking = report.ranking
    print(f"{key} = {SLOW_MS} ms ({lang[1]}); critical-path ranking:\n{top(ranking)}")
    assert ranking and ranking[0]["stage"] == expected, \
        f"{key} was made slow, but the ranking is:\n{top(ranking)}"
    assert report.bottleneck() == expected
    # the other validation steps stayed fast, so they rank below it
    for other in ("address_validation", "name_validation", "inventory_validation"):
        if other != step:
            label = f"order-validation / {other}"
            assert all(row["share"] < ranking[0]["share"] / 2 for row in ranking if row["stage"] == label), \
                top(ranking)
