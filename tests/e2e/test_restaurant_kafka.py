"""The restaurant on the real Kafka broker, exporting to Jaeger (CI starts both with
tools/kafka.sh and tools/jaeger.sh): every placed order ends exactly once in the
ready or rejected topic, as the failure rates allow; each order's trace, read back
through Jaeger's query API, is one trace across the processes with the right
producer/consumer parents and service.name per process; and the run all-Lua,
all-Python and mixed gives the same trace shape."""
import collections

import pytest

import traceshape
from restaurant_util import (ALL_LUA, ALL_PYTHON, MIXED, RunLogs, check_trace_in_jaeger, consume_outcomes,
                             run_restaurant, write_config)

ORDERS = 15
VARIANTS = {"python": ALL_PYTHON, "lua": ALL_LUA, "mixed": MIXED}
# Stages with a failure rate above 0 in fixtures/e2e.ini: the only ones that may reject.
MAY_REJECT = {"address_validation", "kitchen-service"}

_runs = {}


def restaurant_run(variant, kafka, jaeger, ituna_lua, tmp_path_factory):
    """One launcher run per variant, shared by the tests of this module."""
    if variant in _runs:
        return _runs[variant]
    d = tmp_path_factory.mktemp(f"run-{variant}")
    cfg, topics = write_config(d)
    r = run_restaurant(["--config", cfg, "--bootstrap", kafka, "--otlp-endpoint", jaeger["otlp"],
                        "--orders", str(ORDERS), "--run-dir", str(d / "run"), "--progress-interval", "2"]
                       + VARIANTS[variant], env_extra={"ITUNA_LUA": ituna_lua})
    assert r.returncode == 0, f"launcher failed ({variant}):\n{r.stdout}\n{r.stderr}"
    logs = RunLogs(str(d / "run"))
    shapes = {}
    for oid, (source, trace_id, _) in logs.placed.items():
        outcome = logs.outcome(oid)
        spans = check_trace_in_jaeger(jaeger["query"], oid, source, outcome, trace_id, topics)
        shapes[oid] = (source, outcome, traceshape.shape(spans, topics))
    _runs[variant] = (r, logs, topics, shapes)
    return _runs[variant]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_order_ends_once_with_one_trace_in_jaeger(variant, kafka_bootstrap, jaeger, binding, ituna_lua,
                                                        tmp_path_factory):
    r, logs, topics, shapes = restaurant_run(variant, kafka_bootstrap, jaeger, ituna_lua, tmp_path_factory)
    assert len(logs.placed) == ORDERS
    assert not logs.bad_lines, "log lines without the seed format + ids:\n" + "\n".join(logs.bad_lines[:5])
    seen = consume_outcomes(kafka_bootstrap, topics, set(logs.placed))
    lost = set(logs.placed) - set(seen)
    assert not lost, f"orders in neither {topics['ready']} nor {topics['rejected']}: {sorted(lost)}"
    extra = set(seen) - set(logs.placed)
    assert not extra, f"orders nobody placed: {sorted(extra)}"
    twice = {o: len(v) for o, v in seen.items() if len(v) != 1}
    assert not twice, f"orders that ended more than once: {twice}"
    by_source = collections.Counter()
    for oid, [(topic, payload, traceparent)] in seen.items():
        source, trace_id, _ = logs.placed[oid]
        by_source[source] += 1
        assert payload["source"] == source
        # the context travelled in the Kafka headers, to the last topic
        assert traceparent and traceparent.split("-")[1] == trace_id
        if topic == topics["rejected"]:
            assert payload["rejected_by"] in MAY_REJECT, payload
            assert logs.outcome(oid) == ("rejected", payload["rejected_by"])
            if source == "direct":
                assert payload["rejected_by"] == "kitchen-service"  # direct orders skip validation
        else:
            assert payload["ready"] is True and logs.outcome(oid) == "served"
            if source != "direct":
                assert payload["validated"] is True
        # the log lines of every stage carry the order's trace id
        assert logs.log_trace[oid] == {trace_id}
    assert set(by_source) == {"website", "on-site", "direct"}
    # every trace was checked in Jaeger while the run was read (restaurant_run)
    assert len(shapes) == ORDERS


def test_lua_python_and_mixed_give_the_same_trace_shape(kafka_bootstrap, jaeger, binding, ituna_lua,
                                                        tmp_path_factory):
    reference = None
    for variant in VARIANTS:
        _, _, _, shapes = restaurant_run(variant, kafka_bootstrap, jaeger, ituna_lua, tmp_path_factory)
        served = {}
        for source, outcome, shape in shapes.values():
            if outcome == "served":
                # within a run every served order of a source has one shape
                assert served.setdefault(source, shape) == shape, f"{variant}: two shapes for {source}"
        assert set(served) == {"website", "on-site", "direct"}, f"{variant}: no served order for some source"
        if reference is None:
            reference = (variant, served)
            continue
        for source in served:
            assert served[source] == reference[1][source], (
                f"{variant} and {reference[0]} differ for {source} orders:\n"
                + "\n".join(str(x) for x in sorted(set(served[source]) ^ set(reference[1][source]))))
