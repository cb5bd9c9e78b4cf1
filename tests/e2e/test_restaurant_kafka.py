"""The restaurant on the real Kafka broker, exporting to Jaeger (CI starts both with
tools/kafka.sh and tools/jaeger.sh): every placed order ends exactly once in the
ready or rejected topic, as the failure rates allow; each order's trace, read back
through Jaeger's query API, is one trace across the processes with the right
producer/consumer parents and service.name per process; every service logs the seed's
lines with the ids of the span they belong to, in Lua and in Python; the launcher ends
with the report's table, read back from Jaeger; and the run all-Lua, all-Python and
mixed gives the same trace shape, for served orders and for orders rejected by
validation and by the kitchen (a second, small run per variant plants them)."""
import collections
import re

import pytest

import traceshape
from restaurant_util import (ALL_LUA, ALL_PYTHON, MIXED, ORDER_LINES, RunLogs, check_trace_in_jaeger,
                             consume_outcomes, run_restaurant, write_config)

ORDERS = 15
VARIANTS = {"python": ALL_PYTHON, "lua": ALL_LUA, "mixed": MIXED}
# Stages with a failure rate above 0 in fixtures/e2e.ini: the only ones that may reject.
MAY_REJECT = {"address_validation", "kitchen-service"}
# The planted run: every order through validation fails name_validation (after the
# address check passed), every direct order is spoiled by the kitchen.
PLANTED_ORDERS = 6
PLANTED_RATES = {"order-validation-address": 0, "order-validation-name": 1, "kitchen-service": 1}
PLANTED = {("website", ("rejected", "name_validation")), ("on-site", ("rejected", "name_validation")),
           ("direct", ("rejected", "kitchen-service"))}
# The span a log line belongs to (its span_id), per service.
LINE_SPAN = {"website-ordering": "main-website-order", "onsite-ordering": "main-onsite-order",
             "direct-kitchen-ordering": "main-direct-order", "order-validation": "main-order-validation",
             "kitchen-service": "main-kitchen"}

_runs = {}


def restaurant_run(variant, kafka, jaeger, ituna_lua, tmp_path_factory, planted=False):
    """One launcher run per variant (and one planted-rejections run per variant),
    shared by the tests of this module."""
    key = (variant, planted)
    if key in _runs:
        return _runs[key]
    d = tmp_path_factory.mktemp(f"run-{variant}" + ("-planted" if planted else ""))
    cfg, topics = write_config(d, failure_rates=PLANTED_RATES if planted else None)
    r = run_restaurant(["--config", cfg, "--bootstrap", kafka, "--otlp-endpoint", jaeger["otlp"],
                        "--jaeger-query", jaeger["query"],
                        "--orders", str(PLANTED_ORDERS if planted else ORDERS), "--run-dir", str(d / "run"),
                        "--progress-interval", "2"]
                       + VARIANTS[variant], env_extra={"ITUNA_LUA": ituna_lua})
    assert r.returncode == 0, f"launcher failed ({variant}):\n{r.stdout}\n{r.stderr}"
    logs = RunLogs(str(d / "run"))
    shapes, spans_of = {}, {}
    for oid, (source, trace_id, _) in logs.placed.items():
        outcome = logs.outcome(oid)
        spans = check_trace_in_jaeger(jaeger["query"], oid, source, outcome, trace_id, topics)
        shapes[oid] = (source, outcome, traceshape.shape(spans, topics))
        spans_of[oid] = spans
    _runs[key] = (r, logs, topics, shapes, spans_of)
    return _runs[key]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_order_ends_once_with_one_trace_in_jaeger(variant, kafka_bootstrap, jaeger, binding, ituna_lua,
                                                        tmp_path_factory):
    r, logs, topics, shapes, _ = restaurant_run(variant, kafka_bootstrap, jaeger, ituna_lua, tmp_path_factory)
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
            # "Please enjoy your <first dish>": the alphabetically first, in both languages
            assert logs.dish[oid] == sorted(payload["order_details"])[0], (logs.dish[oid], payload)
        # the log lines of every stage carry the order's trace id
        assert logs.log_trace[oid] == {trace_id}
    assert set(by_source) == {"website", "on-site", "direct"}
    # every trace was checked in Jaeger while the run was read (restaurant_run)
    assert len(shapes) == ORDERS
    # the run ends with the report's table, over this run's traces read back from Jaeger,
    # with the outcomes the logs show (kitchen rejections included, on this run's topic)
    served = sum(1 for oid in logs.placed if logs.outcome(oid) == "served")
    assert "WHERE THE TIME GOES" in r.stdout, r.stdout
    assert f"ituna-report: {ORDERS} orders/traces ({served} served, {ORDERS - served} rejected, 0 incomplete)" \
        in r.stdout, r.stdout
    m = re.search(r"^\s+(\d+) of them read back from \S+ into (\S+) ", r.stdout, re.M)
    assert m and int(m.group(1)) == ORDERS, r.stdout
    saved = traceshape.by_trace(traceshape.read_jsonl(m.group(2)))
    assert set(saved) == {trace_id for _, trace_id, _ in logs.placed.values()}


@pytest.mark.parametrize("variant", ["python", "lua"])
def test_every_service_logs_the_seed_lines_with_its_span_ids(variant, kafka_bootstrap, jaeger, binding, ituna_lua,
                                                             tmp_path_factory):
    """Issue 7's log lines, in each language: every one appears, and each carries the
    trace id of its order and the span id of the span it was logged in."""
    _, logs, _, _, spans_of = restaurant_run(variant, kafka_bootstrap, jaeger, ituna_lua, tmp_path_factory)
    assert logs.missing_lines() == [], f"{variant}: lines never logged (with ids): {logs.missing_lines()}"
    checked = collections.Counter()
    for oid, lines in logs.line_ids.items():
        assert oid in logs.placed, f"a line names an order nobody placed: {oid}"
        trace_id = logs.placed[oid][1]
        by_id = {s.span_id: s for s in spans_of[oid]}
        for service, kind, tid, sid in lines:
            assert tid == trace_id, f"{service} {kind} line of {oid}: trace_id {tid}, the order's is {trace_id}"
            assert sid in by_id and by_id[sid].name == LINE_SPAN[service], (
                f"{service} {kind} line of {oid}: span_id {sid} is not its {LINE_SPAN[service]} span")
            checked[(service, kind)] += 1
    for service, kinds in ORDER_LINES.items():
        for kind, (_, grp) in kinds.items():
            if grp is not None:
                assert checked[(service, kind)], f"{variant}: no {service} '{kind}' line checked"


def test_lua_python_and_mixed_give_the_same_trace_shape(kafka_bootstrap, jaeger, binding, ituna_lua,
                                                        tmp_path_factory):
    """Per (source, outcome), served and rejected alike: one shape within a run, the same
    shape in every variant. The planted run gives each variant the same rejections
    (validation and kitchen); the random rejections of the main run are compared
    wherever two variants both have them."""
    by_variant = {}
    for variant in VARIANTS:
        shapes_of = {}
        for planted in (False, True):
            r, logs, _, shapes, _ = restaurant_run(variant, kafka_bootstrap, jaeger, ituna_lua, tmp_path_factory,
                                                   planted)
            if planted:
                assert len(logs.placed) == PLANTED_ORDERS, r.stdout
                kinds = {(source, outcome) for source, outcome, _ in shapes.values()}
                assert kinds == PLANTED, f"{variant}: the planted run gave {kinds}"
            for source, outcome, shape in shapes.values():
                # within a variant every order of one source and outcome has one shape
                assert shapes_of.setdefault((source, outcome), shape) == shape, \
                    f"{variant}: two shapes for {source} orders {outcome}"
        served = {s for s, o in shapes_of if o == "served"}
        assert served == {"website", "on-site", "direct"}, f"{variant}: no served order for some source"
        by_variant[variant] = shapes_of
    compared = collections.Counter()
    reference = {}
    for variant, shapes_of in by_variant.items():
        for key, shape in shapes_of.items():
            if key not in reference:
                reference[key] = (variant, shape)
                continue
            ref_variant, ref = reference[key]
            assert shape == ref, (
                f"{variant} and {ref_variant} differ for {key[0]} orders {key[1]}:\n"
                + "\n".join(str(x) for x in sorted(set(shape) ^ set(ref))))
            compared[key] += 1
    # served and planted-rejected shapes were compared across all three variants
    for key in PLANTED | {(s, "served") for s in ("website", "on-site", "direct")}:
        assert compared[key] == len(VARIANTS) - 1, (key, compared)
