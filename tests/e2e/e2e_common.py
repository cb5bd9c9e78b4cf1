"""e2e_common.py - what the end-to-end tests share: where the repository, the
scripts and the launcher are, running the launcher, the skip-or-fail rule for
missing real components (skipped with the reason locally, failed when CI=true),
and small HTTP/process helpers. (Named uniquely: pytest may load other test
directories' conftest.py modules under the same name.)"""
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(REPO, "scripts")
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def in_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(condition, why):
    """Skip (locally) or fail (CI=true) when a real component is missing."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"CI=true but {why}")
    print(f"SKIP: {why}", file=sys.stderr)
    pytest.skip(why)


def launcher_env(extra=None):
    """Environment for a launcher subprocess: the installed ituna package, or the
    source tree's bindings/python and scripts/ (the applications) when the package is
    not installed."""
    env = dict(os.environ)
    for k in ("ITUNA_KAFKA_BOOTSTRAP", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
              "OTEL_TRACES_EXPORTER", "ITUNA_TRACES_FILE", "ITUNA_ORDERS_LIMIT", "ITUNA_CONFIG"):
        env.pop(k, None)
    probe = subprocess.run([sys.executable, "-c", "import ituna_restaurant"], env=env,
                           capture_output=True, cwd="/")
    if probe.returncode != 0:
        env["PYTHONPATH"] = os.pathsep.join(p for p in [os.path.join(REPO, "bindings", "python"),
                                                        os.path.join(REPO, "scripts"),
                                                        env.get("PYTHONPATH", "")] if p)
    if extra:
        env.update(extra)
    return env


def run_launcher(args, env=None, timeout=300, cwd=None):
    cmd = [sys.executable, "-m", "ituna_restaurant"] + list(args)
    return subprocess.run(cmd, env=env or launcher_env(), capture_output=True, text=True, timeout=timeout,
                          cwd=cwd or REPO)


def processes_mentioning(text):
    """Pids of live processes whose command line contains text (read from /proc)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmd:
            out.append(int(pid))
    return out


def _http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def ituna_lua_path():
    env = os.environ.get("ITUNA_LUA")
    if env and os.access(env, os.X_OK):
        return env
    found = shutil.which("ituna-lua")
    if found:
        return found
    import glob
    # as the launcher: build/ first, sanitizer builds last, newest first
    hits = [p for p in glob.glob(os.path.join(REPO, "build*", "**", "ituna-lua"), recursive=True)
            if os.path.isfile(p) and os.access(p, os.X_OK)]
    hits.sort(key=lambda p: (os.path.relpath(p, REPO).split(os.sep)[0] != "build",
                             "san" in os.path.relpath(p, REPO).split(os.sep)[0], -os.path.getmtime(p)))
    return hits[0] if hits else None


def have_binding():
    env = launcher_env()
    r = subprocess.run([sys.executable, "-c", "import ituna; ituna.init; ituna.Producer"], env=env,
                       capture_output=True, cwd="/")
    return r.returncode == 0


def fetch_json(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode("utf-8"))


def wait_for(fn, timeout, interval=0.5):
    """Poll fn until it returns a truthy value or timeout passes; return the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
