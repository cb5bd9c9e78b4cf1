"""The launcher validates the whole configuration file with the core before it
starts anything (no broker, no service, no run directory): every bad file gives
exit 2 and the core's `file:line: [section] key: ...` message, never a Python
traceback, whatever the file holds (binary included). A missing file is a
ConfigError in the Python API."""
import os
import subprocess
import sys
import time

import pytest

import ituna

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def launcher(args, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k not in
           ("ITUNA_KAFKA_BOOTSTRAP", "ITUNA_CONFIG", "ITUNA_TRACES_FILE")}
    probe = subprocess.run([sys.executable, "-c", "import ituna.restaurant"], env=env, capture_output=True, cwd="/")
    if probe.returncode != 0:
        env["PYTHONPATH"] = os.path.join(REPO, "bindings", "python")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "ituna.restaurant"] + args + ["--orders", "1", "--bootstrap",
                                                                           "embedded", "--run-dir",
                                                                           str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=60, env=env, cwd=str(tmp_path))
    return r, time.monotonic() - t0


CASES = {
    "duplicate-key": (b"[rates]\nwebsite-ordering = 1\nwebsite-ordering = 2\n",
                      ":3: [rates] website-ordering: duplicate key (first set on line 2)"),
    "unknown-key": (b"[rates]\nwebsite-orderin = 1\n", ":2: [rates] website-orderin: "),
    "non-numeric-delay": (b"[simulated-delays]\nkitchen-service = fast\n", ":2: [simulated-delays] kitchen-service: "),
    "negative-rate": (b"[rates]\nonsite-ordering = -1\n", ":2: [rates] onsite-ordering: "),
    "unknown-section": (b"[restaurnt]\norders = 3\n", ":1: [restaurnt]: "),
    "binary-with-nul": (bytes(range(256)) * 4, ": contains a NUL byte; not an INI text file"),
    "binary-no-nul": (b"\xff\xfe\x89PNG\r\n\x1a\n\xc3(\xa0\xa1 = \xe2\x28\xa1\n" + bytes(range(1, 256)),
                      ":1: expected 'key = value' or '[section]'"),
    "latin1-value": (b"[restaurant]\nlog-dir = caf\xe9\n", None),  # the core takes it; the launcher's read must not crash
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_config_stops_the_launcher_before_anything_starts(tmp_path, case):
    content, expect = CASES[case]
    cfg = tmp_path / "bad.ini"
    cfg.write_bytes(content)
    r, took = launcher(["--config", str(cfg)], tmp_path)
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out
    assert r.returncode == 2, out
    assert r.stderr.startswith("ituna-restaurant: error: "), out
    if expect:
        assert str(cfg) + expect in r.stderr, r.stderr
    else:
        assert str(cfg) in r.stderr, r.stderr
    # nothing started: no broker line, no service, no run directory
    assert "kafka:" not in r.stdout and "ITuna restaurant" not in r.stdout, r.stdout
    assert not (tmp_path / "run").exists()
    assert took < 15, f"{case}: {took:.1f} s"


def test_a_missing_config_file_stops_the_launcher_with_a_message(tmp_path):
    r, _ = launcher(["--config", str(tmp_path / "nope.ini")], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "config file not found: " + str(tmp_path / "nope.ini") in r.stderr


def test_a_missing_config_file_is_a_config_error_in_the_api(tmp_path):
    missing = str(tmp_path / "nope.ini")
    with pytest.raises(ituna.ConfigError, match="nope.ini: cannot open"):
        ituna.Tracer(config=missing, env=False)
    with pytest.raises(ituna.ConfigError, match="nope.ini: cannot open"):
        ituna.init("x", config=missing, env=False)


def test_the_shipped_and_the_seed_config_pass_the_check():
    from ituna.restaurant import check_config
    check_config(os.path.join(REPO, "scripts", "ituna-config.ini"))
    check_config(os.path.join(REPO, "tests", "fixtures", "seed-ituna-config.ini"))
