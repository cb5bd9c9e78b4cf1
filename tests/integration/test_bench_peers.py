"""The cross-peer Kafka hop harness (bench/kafka_peers.py) works end to end, with tiny
counts so it stays quick: its venv of peers from PyPI, every case in a fresh process
on the real broker, every span of each traced case at its OTLP sink and none of an
untraced one, the table printed and BENCHMARKS.md written. No timing is asserted."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HARNESS = os.path.join(ROOT, "bench", "kafka_peers.py")
LABELS = ["ituna Python, traced", "ituna Python, OTEL_SDK_DISABLED=true",
          "ituna Python, traced, default queue (2048)", "ituna Lua, traced",
          "ituna Lua, OTEL_SDK_DISABLED=true", "ituna C, traced", "ituna C, OTEL_SDK_DISABLED=true",
          "confluent-kafka, untraced", "confluent-kafka + opentelemetry-sdk",
          "kafka-python + opentelemetry-sdk (the seed's stack)"]


def test_harness_runs_every_case_and_every_span_arrives(tmp_path):
    bootstrap = os.environ.get("ITUNA_TEST_KAFKA")
    if not bootstrap:
        pytest.skip("ITUNA_TEST_KAFKA is not set (tools/test.sh starts the broker)")
    out = tmp_path / "BENCHMARKS.md"
    env = {k: v for k, v in os.environ.items() if k != "ITUNA_BENCH_IN_VENV"}
    p = subprocess.run([sys.executable, HARNESS, "--messages", "30", "--warm", "3", "--rounds", "1",
                        "--bootstrap", bootstrap, "--sink-port", "0", "--out", str(out), "--strict"],
                       env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    table = [line for line in p.stdout.splitlines() if line.startswith("| ")]
    for label in LABELS:
        rows = [line for line in table if line.startswith("| " + label + " |")]
        assert len(rows) == 1, (label, p.stdout)
        assert "marked" not in rows[0], rows[0]
        assert rows[0].split("|")[2].strip() not in ("", "-"), rows[0]  # a CPU figure was measured
    text = out.read_text()
    assert "## Machine" in text and "## Goals (issue 14)" in text
    for label in LABELS:
        assert label in text
