"""Honest export results: a tracer whose spans did not all reach the collector says
so. C: ituna_tracer_flush/shutdown return ITUNA_ERR_EXPORT (span_driver prints the
code); Python: Tracer.flush()/shutdown() and ituna.shutdown() return False; Lua:
ituna.shutdown() and tracer:flush() return false and a message with the counts.
Two dead collectors: one refusing connections, one accepting them and never
answering. A live receiver gives success, so the checks can fail both ways."""
import os
import re
import socket
import subprocess
import sys
import textwrap

import pytest

import ituna
from otlp_receiver import OtlpReceiver, find_driver, run_driver, skip_or_fail


def refusing_endpoint():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


class SilentCollector:
    """Accepts TCP connections (the kernel completes the handshake) and never reads
    or answers: the exporter waits until its export timeout."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.endpoint = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        return self

    def __exit__(self, *exc):
        self.sock.close()


FAST = ["exporter.schedule-delay=20", "exporter.export-timeout=800"]


def test_c_shutdown_reports_export_error_when_the_collector_refuses():
    if find_driver("span_driver") is None:
        skip_or_fail("span_driver not built")
    stats, err = run_driver(["-n", "50", "-shutdown-ms", "3000", f"exporter.endpoint={refusing_endpoint()}"] + FAST)
    assert stats["spans_exported"] == 0 and stats["spans_export_failed"] == 50, stats
    assert stats["shutdown_rc"] == "ITUNA_ERR_EXPORT", stats
    assert "50 of 50 ended span(s) lost" in err, err


def test_c_flush_then_shutdown_report_export_error_when_the_collector_never_answers():
    if find_driver("span_driver") is None:
        skip_or_fail("span_driver not built")
    with SilentCollector() as sc:
        stats, err = run_driver(["-n", "20", "-flush-ms", "5000", "-shutdown-ms", "3000",
                                 f"exporter.endpoint={sc.endpoint}"] + FAST)
    assert stats["spans_exported"] == 0 and stats["spans_export_failed"] == 20, stats
    assert stats["flush_rc"] == "ITUNA_ERR_EXPORT", stats
    assert stats["shutdown_rc"] == "ITUNA_ERR_EXPORT", stats
    assert "lost since the last flush" in err, err


def test_c_success_when_every_span_is_exported():
    if find_driver("span_driver") is None:
        skip_or_fail("span_driver not built")
    with OtlpReceiver() as rx:
        stats, err = run_driver(["-n", "50", "-flush-ms", "5000", "-shutdown-ms", "3000",
                                 f"exporter.endpoint={rx.endpoint}"] + FAST)
        rx.check()
    assert stats["spans_exported"] == 50
    assert stats["flush_rc"] == "ITUNA_OK" and stats["shutdown_rc"] == "ITUNA_OK", (stats, err)


def test_c_queue_drops_are_reported_even_when_what_was_queued_was_exported():
    if find_driver("span_driver") is None:
        skip_or_fail("span_driver not built")
    with OtlpReceiver() as rx:
        stats, err = run_driver(["-n", "2000", "-shutdown-ms", "10000", f"exporter.endpoint={rx.endpoint}",
                                 "exporter.max-queue-size=16", "exporter.max-export-batch-size=16",
                                 "exporter.schedule-delay=600000"])
    assert stats["spans_dropped"] > 0 and stats["spans_export_failed"] == 0, stats
    assert stats["shutdown_rc"] == "ITUNA_ERR_EXPORT", stats


def _tracer(endpoint):
    return ituna.Tracer(env=False, settings=[("service_name", "honesty"), ("exporter.endpoint", endpoint),
                                             ("exporter.schedule-delay", "20"),
                                             ("exporter.export-timeout", "800")])


@pytest.mark.parametrize("collector", ["refusing", "silent"])
def test_python_flush_and_shutdown_return_false_when_spans_were_lost(collector):
    if collector == "silent":
        sc = SilentCollector().__enter__()
        endpoint = sc.endpoint
    else:
        sc, endpoint = None, refusing_endpoint()
    try:
        t = _tracer(endpoint)
        for i in range(10):
            with t.span(f"work-{i}"):
                pass
        assert t.flush(timeout=5) is False
        assert t.shutdown(timeout=3) is False
        st = t.stats()
        assert st["spans_export_failed"] == 10 and st["spans_exported"] == 0, st
    finally:
        if sc:
            sc.__exit__()


def test_python_flush_is_true_again_once_nothing_new_was_lost():
    with OtlpReceiver() as rx:
        t = _tracer(rx.endpoint)
        with t.span("one"):
            pass
        assert t.flush(timeout=5) is True
        assert t.shutdown(timeout=3) is True
        assert t.stats()["spans_exported"] == 1


def test_python_module_shutdown_returns_false_and_the_service_exits_nonzero(tmp_path):
    # a whole process: ituna.init + ituna.shutdown, as the services do
    code = textwrap.dedent(f"""
        import sys, ituna
        ituna.init("lost", env=False, settings={{"exporter.endpoint": "{refusing_endpoint()}",
                   "exporter.schedule-delay": "20", "exporter.export-timeout": "800"}})
        with ituna.span("s"):
            pass
        sys.exit(0 if ituna.shutdown(timeout=3) else 3)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert p.returncode == 3, p.stderr
    assert "1 of 1 ended span(s) lost" in p.stderr, p.stderr


LUA_SCRIPT = """
local ituna = require "ituna"
local t = ituna.tracer() -- the host's, from --config
for i = 1, 5 do t:span("work", function() end) end
local ok, msg = t:flush(5)
print("flush", ok, msg)
if arg[1] == "shutdown" then
  ok, msg = ituna.shutdown(3)
  print("shutdown", ok, msg)
end
"""


def _lua_run(tmp_path, endpoint, *args):
    exe = os.environ.get("ITUNA_LUA")
    if not exe or not os.path.exists(exe):
        skip_or_fail("ITUNA_LUA (the built ituna-lua host) is not set")
    script = tmp_path / "lost.lua"
    script.write_text(LUA_SCRIPT)
    ini = tmp_path / "lost.ini"
    ini.write_text(f"[exporter]\nendpoint = {endpoint}\nschedule-delay = 20\nexport-timeout = 800\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and not k.startswith("ITUNA_")}
    return subprocess.run([exe, "--config", str(ini), "--service", "lost-lua", str(script)] + list(args),
                          capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("collector", ["refusing", "silent"])
def test_lua_flush_and_shutdown_return_false_with_the_counts(tmp_path, collector):
    with SilentCollector() as sc:
        endpoint = sc.endpoint if collector == "silent" else refusing_endpoint()
        p = _lua_run(tmp_path, endpoint, "shutdown")
    assert "flush\tfalse\tflush: spans lost (0 dropped, 5 export failed, 0 rejected, of 5 ended)" in p.stdout, \
        p.stdout + p.stderr
    assert "shutdown\tfalse\tshutdown: spans lost (0 dropped, 5 export failed" in p.stdout, p.stdout
    assert p.returncode == 0, p.stderr  # the script reported it; its own exit status stands


def test_lua_host_exits_3_when_its_final_shutdown_lost_spans(tmp_path):
    p = _lua_run(tmp_path, refusing_endpoint())
    assert "flush\tfalse" in p.stdout, p.stdout + p.stderr
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert "spans lost" in p.stderr, p.stderr


def test_lua_host_exits_0_when_every_span_was_exported(tmp_path):
    with OtlpReceiver() as rx:
        p = _lua_run(tmp_path, rx.endpoint)
        rx.check()
        assert len(rx.spans()) == 5
    assert "flush\ttrue" in p.stdout, p.stdout + p.stderr
    assert p.returncode == 0, p.stderr


def test_the_launcher_reports_services_that_lost_spans_and_exits_3(tmp_path):
    # the restaurant on the embedded broker, exporting to a collector that refuses
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k not in
           ("ITUNA_KAFKA_BOOTSTRAP", "ITUNA_CONFIG", "ITUNA_TRACES_FILE", "ITUNA_ORDERS_LIMIT")}
    env["OTEL_EXPORTER_OTLP_TIMEOUT"] = "1000"
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    cfg = tmp_path / "fast.ini"
    cfg.write_text("[simulated-delays]\nwebsite-ordering = 100\non-site-ordering = 100\n"
                   "direct-kitchen-ordering = 100\n[rates]\nwebsite-ordering = 5\nonsite-ordering = 5\n"
                   "direct-kitchen-ordering = 5\n")
    args = ["--config", str(cfg), "--bootstrap", "embedded", "--orders", "3", "--no-progress",
            "--otlp-endpoint", refusing_endpoint(), "--run-dir", str(tmp_path / "run")]
    if os.environ.get("ITUNA_LUA"):
        env["ITUNA_LUA"] = os.environ["ITUNA_LUA"]
    p = subprocess.run([sys.executable, "-m", "ituna.restaurant"] + args, capture_output=True, text=True,
                       timeout=240, env=env, cwd=str(tmp_path))
    out = p.stdout + p.stderr
    assert "Traceback" not in out, out
    assert p.returncode == 3, out
    assert re.search(r"the run lost spans: \d service\(s\) could not export all their spans \(exit 3\)", p.stderr), out
    assert re.search(r"spans lost by [a-z-]+: .*export failed", p.stderr), p.stderr
    assert "placed 3, served 3" in p.stdout, p.stdout
