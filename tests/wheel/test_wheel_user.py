"""The binary wheel on a wheel user's machine: tests/wheel/user_machine.sh installs
ITUNA_TEST_WHEEL (built by tools/build-wheel.sh; tools/test.sh sets it) into a fresh
venv inside a mount namespace where the C headers, the compiler and the system's
librdkafka, libcurl, cJSON and Lua libraries are hidden, then produces and consumes
on the real broker (ITUNA_TEST_KAFKA) with spans exported over OTLP/HTTP to a local
receiver, runs `ituna-restaurant --orders 5` on the embedded broker and
`ituna-report` on its traces. Skipped (failing when CI=true) without the wheel,
the broker or root."""
import json
import os
import subprocess
import sys
import zipfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from otlp_receiver import OtlpReceiver  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WHEEL = os.environ.get("ITUNA_TEST_WHEEL", "")
BOOTSTRAP = os.environ.get("ITUNA_TEST_KAFKA", "")


def _missing():
    if not WHEEL or not os.path.isfile(WHEEL):
        return "ITUNA_TEST_WHEEL is not a wheel file (bash tools/build-wheel.sh makes one)"
    if not BOOTSTRAP:
        return "ITUNA_TEST_KAFKA not set (start a broker with tools/kafka.sh start)"
    if os.geteuid() != 0:
        return "hiding the system's libraries needs root (mount namespace)"
    return None


@pytest.fixture(scope="module")
def wheel_user(tmp_path_factory):
    why = _missing()
    if why:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("required in CI: " + why)
        print("SKIP: " + why, file=sys.stderr)
        pytest.skip(why)
    work = tmp_path_factory.mktemp("wheel-user")
    with OtlpReceiver() as rx:
        p = subprocess.run(["bash", os.path.join(HERE, "user_machine.sh"), WHEEL, str(work), BOOTSTRAP, rx.endpoint],
                           capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, f"user_machine.sh failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
        rx.wait_for_spans(3, timeout=10)
        rx.check()
        spans = rx.spans()
    return {"work": work, "log": p.stdout + p.stderr, "spans": spans,
            "check": json.loads((work / "check.json").read_text().strip().splitlines()[-1])}


def test_the_wheel_is_manylinux_and_carries_its_libraries():
    why = _missing()
    if why and not (WHEEL and os.path.isfile(WHEEL)):
        pytest.fail(why) if os.environ.get("CI", "").lower() == "true" else pytest.skip(why)
    name = os.path.basename(WHEEL)
    assert name.startswith("ituna_core-") and "-manylinux_" in name, name
    names = zipfile.ZipFile(WHEEL).namelist()
    libs = sorted(os.path.basename(n) for n in names if n.startswith("ituna_core.libs/") and not n.endswith("/"))
    assert any(n.startswith("ituna/_core.") and n.endswith(".so") for n in names)
    assert "ituna/bin/ituna-lua" in names
    # the restaurant (an application of the library) ships in its own package
    for data in ("ituna-config.ini", "restaurant-schema.ini", "restaurant-profile.ini"):
        assert "ituna_restaurant/scripts/" + data in names, data
    assert not any(n.startswith("ituna/scripts/") for n in names)
    # exactly these: one TLS library (OpenSSL), no GnuTLS, LDAP, Kerberos, ssh, idn2...
    # (libcurl is linked into the extension, Lua into ituna-lua)
    assert sorted(n.split("-")[0] for n in libs) == ["libcjson", "libcrypto", "librdkafka", "libssl", "libzstd"], libs


def test_hidden_system_and_hidden_headers(wheel_user):
    log = wheel_user["log"]
    assert "hid the headers, the compiler and" in log, log
    assert "librdkafka 2.12.1" in log, log


def test_produce_consume_export_over_otlp(wheel_user):
    check = wheel_user["check"]
    assert check["rdkafka"] == "2.12.1"
    assert check["value"] == "one order"
    assert check["ituna_lua"].startswith("ituna-lua "), check
    # the extension mapped the wheel's copies, never the system's
    assert any("ituna_core.libs/libssl-" in p for p in check["libs"]), check["libs"]
    by_name = {sp.name: sp for _res, _scope, sp in wheel_user["spans"]}
    topic = check["topic"]
    for name in ("wheel-user-order", "send " + topic, "process " + topic):
        assert name in by_name, (name, sorted(by_name))
    trace = bytes.fromhex(check["trace_id"])
    assert all(by_name[n].trace_id == trace for n in ("send " + topic, "process " + topic)), \
        "the consumer span continues the producer's trace"
    assert by_name["process " + topic].parent_span_id == by_name["send " + topic].span_id
    services = {a.value.string_value for res, _s, _sp in wheel_user["spans"] for a in res.attributes
                if a.key == "service.name"}
    assert services == {"wheel-user"}


def test_restaurant_and_report_from_the_wheel(wheel_user):
    work = wheel_user["work"]
    log = (work / "restaurant.log").read_text()
    traces = work / "run" / "traces.jsonl"
    assert traces.is_file() and traces.stat().st_size > 0, log
    roots = set()
    for line in traces.read_text().splitlines():
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for sp in ss["spans"]:
                    roots.add(sp["traceId"])
    assert len(roots) >= 5, f"5 orders, {len(roots)} traces:\n{log}"
    # every order finished (served, or rejected by validation), the Lua services on
    # the wheel's own ituna-lua
    assert "kitchen-service=lua" in log and "placed 5," in log and "unfinished 0" in log, log
    # the consumer groups formed before the orders (the launcher creates the topics)
    assert "no partitions assigned" not in log, log
    report = (work / "report.txt").read_text()
    assert "inventory_validation" in report, report
