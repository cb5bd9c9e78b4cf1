"""The launcher's process handling on stand-in services (tests/e2e/fixtures/dummy_service.py,
real OS processes printing the real services' log lines, no Kafka): every service
started and ready, orders split across sources and counted, the run drained and
stopped with no process left behind, a dying service reported with its exit code
and last lines, a service that ignores SIGTERM killed, and a stop that is not clean
(killed, or a non-zero exit after SIGTERM) failing the run."""
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from e2e_common import FIXTURES, launcher_env, processes_mentioning, run_launcher

SERVICES = ["website-ordering", "onsite-ordering", "direct-kitchen-ordering", "order-validation", "kitchen-service"]

CONFIG = """
[services]
website-ordering = python
onsite-ordering = python
order-validation = python
direct-kitchen-ordering = python
kitchen-service = python

[rates]
website-ordering = 2
onsite-ordering = 1
direct-kitchen-ordering = 1

[restaurant]
orders = 12
"""


@pytest.fixture
def stage(tmp_path):
    scripts = tmp_path / "scripts"
    (scripts / "python").mkdir(parents=True)
    (scripts / "lua").mkdir()
    for s in SERVICES:
        shutil.copy(os.path.join(FIXTURES, "dummy_service.py"), scripts / "python" / f"{s}.py")
    cfg = tmp_path / "test.ini"
    cfg.write_text(CONFIG)
    spool = tmp_path / "spool"
    spool.mkdir()
    return tmp_path, scripts, cfg, spool


def launch(stage, *extra, mode="", timeout=120):
    tmp, scripts, cfg, spool = stage
    env = launcher_env({"DUMMY_SPOOL": str(spool), "DUMMY_MODE": mode})
    args = ["--scripts-dir", str(scripts), "--config", str(cfg), "--bootstrap", "127.0.0.1:9", "--no-topic-setup",
            "--run-dir", str(tmp / "run"), "--progress-interval", "0.5"] + list(extra)
    t0 = time.monotonic()
    r = run_launcher(args, env=env, timeout=timeout)
    return r, time.monotonic() - t0


def test_orders_split_counted_and_drained_with_no_process_left(stage):
    tmp = stage[0]
    r, _ = launch(stage, "--orders", "20")
    assert r.returncode == 0, r.stdout + r.stderr
    # 20 orders split 2:1:1 by [rates]
    assert "20 orders (website 10, on-site 5, direct 5)" in r.stdout
    m = re.search(r"placed (\d+), served (\d+), rejected (\d+), unfinished (\d+)", r.stdout)
    assert m, r.stdout
    placed, served, rejected, unfinished = map(int, m.groups())
    assert placed == 20 and served + rejected == 20 and unfinished == 0
    # progress lines were printed (not a terminal: plain lines)
    assert re.search(r"\] placed \d+ \(", r.stdout)
    # every instance has its log, with its READY line
    for s in SERVICES:
        text = (tmp / "run" / f"{s}.log").read_text()
        assert f"READY {s}" in text
    assert processes_mentioning(str(tmp)) == []


def test_scale_runs_several_instances(stage):
    tmp = stage[0]
    # --no-topic-setup: the launcher does not ask the (fake) broker for partitions
    r, _ = launch(stage, "--orders", "12", "--scale", "kitchen-service=3", "--no-topic-setup")
    assert r.returncode == 0, r.stdout + r.stderr
    logs = sorted(p.name for p in (tmp / "run").glob("kitchen-service-*.log"))
    assert logs == ["kitchen-service-1.log", "kitchen-service-2.log", "kitchen-service-3.log"]
    assert "kitchen-service=python x3" in r.stdout


def test_a_dying_service_is_reported_and_the_run_stops(stage):
    tmp = stage[0]
    r, took = launch(stage, "--orders", "50", mode="crash-kitchen-service")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "service kitchen-service (python) exited with code 3" in r.stderr
    assert "Traceback: simulated failure" in r.stderr
    assert took < 30
    assert processes_mentioning(str(tmp)) == []


def test_a_service_ignoring_sigterm_is_killed_and_fails_the_run(stage):
    # Killed, it committed no offsets and flushed no spans: the run is not a success.
    tmp = stage[0]
    r, took = launch(stage, "--orders", "6", "--stop-timeout", "1", mode="hang-order-validation")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "order-validation did not stop within 1 s of SIGTERM; killing it" in r.stderr
    assert "error: service order-validation (python) did not stop within 1 s of SIGTERM and was killed" in r.stderr
    assert "READY order-validation" in r.stderr  # its last lines are shown
    assert "the run failed: not stopped cleanly: order-validation" in r.stderr
    # the orders themselves went through
    assert re.search(r"placed 6, served \d+, rejected \d+, unfinished 0", r.stdout), r.stdout
    assert processes_mentioning(str(tmp)) == []


def test_a_service_failing_its_stop_fails_the_run(stage):
    tmp = stage[0]
    r, took = launch(stage, "--orders", "6", mode="failstop-kitchen-service")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "error: service kitchen-service (python) exited with code 4 after SIGTERM" in r.stderr
    assert "close failed: Local: Broker transport failure (simulated)" in r.stderr  # its last lines
    assert "the run failed: not stopped cleanly: kitchen-service" in r.stderr
    assert processes_mentioning(str(tmp)) == []


def test_duration_ends_an_unlimited_run(stage):
    r, took = launch(stage, "--duration", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "duration reached" in r.stdout
    assert took < 30


def test_ctrl_c_stops_cleanly(stage):
    tmp, scripts, cfg, spool = stage
    env = launcher_env({"DUMMY_SPOOL": str(spool)})
    p = subprocess.Popen([sys.executable, "-m", "ituna_restaurant", "--scripts-dir", str(scripts), "--config",
                          str(cfg), "--bootstrap", "127.0.0.1:9", "--no-topic-setup", "--run-dir", str(tmp / "run"), "--duration", "60"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    p.send_signal(2)
    out, err = p.communicate(timeout=60)
    assert "interrupted" in out, out + err
    assert processes_mentioning(str(tmp)) == []


@pytest.mark.parametrize("args,message", [
    (["--lang", "kitchen-service=cobol"], "is not one of lua, python"),
    (["--scale", "website-ordering=2"], "only consumer services scale"),
    (["--scale", "kitchen-service=x"], "expected a whole number"),
    (["--lang", "nosuch=lua"], "unknown service 'nosuch'"),
])
def test_bad_arguments_get_a_clear_error(stage, args, message):
    r, _ = launch(stage, "--orders", "1", *args)
    assert r.returncode == 2
    assert message in r.stderr


def test_missing_ituna_lua_is_explained(stage):
    tmp, scripts, cfg, spool = stage
    env = launcher_env({"DUMMY_SPOOL": str(spool), "ITUNA_LUA": str(tmp / "nope"), "PATH": "/usr/bin:/bin"})
    r = run_launcher(["--scripts-dir", str(scripts), "--config", str(cfg), "--bootstrap", "127.0.0.1:9",
                      "--lang", "kitchen-service=lua", "--orders", "1"], env=env)
    assert r.returncode == 2
    assert "is not an executable file" in r.stderr
