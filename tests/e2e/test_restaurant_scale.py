"""--scale kitchen-service=3 on the real broker: three kitchen processes in one
consumer group split the partitions (disjoint partition sets, each cooks), and no
order is lost or cooked twice. (The real broker, because the launcher waits there
until the group is stable before orders flow; librdkafka's test cluster cannot
describe groups, so on it a late rebalance may redeliver an uncommitted order.)"""
import collections

import traceshape
from restaurant_util import RunLogs, consume_outcomes, processes_in, run_restaurant, write_config

ORDERS = 40


def test_three_kitchens_split_the_partitions_and_cook_each_order_once(binding, ituna_lua, kafka_bootstrap,
                                                                      tmp_path):
    kafka = kafka_bootstrap
    cfg, topics = write_config(tmp_path)
    args = ["--config", cfg, "--orders", str(ORDERS), "--scale", "kitchen-service=3", "--run-dir",
            str(tmp_path / "run"), "--traces-file", str(tmp_path / "traces.jsonl"), "--bootstrap", kafka]
    r = run_restaurant(args, cwd=str(tmp_path), env_extra={"ITUNA_LUA": ituna_lua})
    assert r.returncode == 0, r.stdout + r.stderr
    assert processes_in(tmp_path) == []
    logs = RunLogs(str(tmp_path / "run"))
    assert len(logs.placed) == ORDERS
    for oid in logs.placed:
        assert logs.served[oid] + logs.rejected_count[oid] == 1, oid
    assert sorted(logs.served_by) == ["kitchen-service-1", "kitchen-service-2", "kitchen-service-3"], \
        f"not every kitchen cooked: {dict((k, len(v)) for k, v in logs.served_by.items())}"
    cooked = [o for lst in logs.served_by.values() for o in lst]
    assert len(cooked) == len(set(cooked)), "an order was cooked twice"

    # partitions per kitchen instance, from the CONSUMER spans of the kitchen topic
    spans = traceshape.read_jsonl(str(tmp_path / "traces.jsonl"))
    parts = collections.defaultdict(set)
    for s in spans:
        if s.kind == traceshape.CONSUMER and s.name == f"process {topics['kitchen']}":
            parts[s.instance].add(s.attrs["messaging.destination.partition.id"])
    assert len(parts) == 3, parts
    all_parts = [p for ps in parts.values() for p in ps]
    assert len(all_parts) == len(set(all_parts)), f"a partition was consumed by two kitchens: {dict(parts)}"
    seen = consume_outcomes(kafka, topics, set(logs.placed))
    assert set(seen) == set(logs.placed)
    assert all(len(v) == 1 for v in seen.values())
