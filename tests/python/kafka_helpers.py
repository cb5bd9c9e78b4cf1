"""What the Python Kafka tests share: the embedded mock cluster and the real broker
as one parametrized `bootstrap` fixture (the real one skipped with the reason when
ITUNA_TEST_KAFKA is unset, failing when CI=true), a file-exporting tracer, and
readers of the exported spans. Test modules import the fixtures by name."""
import json
import os
import sys
import uuid

import pytest

import ituna  # noqa: E402  (conftest.py picks which ituna)


@pytest.fixture(scope="module")
def embedded():
    b = ituna.start_embedded_broker(n_brokers=1, partitions=4)
    yield b
    b.stop()


def real_bootstrap():
    """ITUNA_TEST_KAFKA, else skip with the reason (a failure when CI=true)."""
    real = os.environ.get("ITUNA_TEST_KAFKA")
    if not real:
        msg = "ITUNA_TEST_KAFKA not set (start a broker with tools/kafka.sh start)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("real Kafka broker required in CI: " + msg)
        print("SKIP real broker: " + msg, file=sys.stderr)
        pytest.skip(msg)
    return real


@pytest.fixture(params=["embedded", "real"])
def bootstrap(request, embedded):
    return embedded.bootstrap if request.param == "embedded" else real_bootstrap()


@pytest.fixture
def traced(tmp_path, request):
    path = tmp_path / "spans.jsonl"
    service = getattr(request.module, "SERVICE_NAME", "kafka-binding")
    tracer = ituna.init(service_name=service, env=False, type="file", file=str(path),
                        settings={"exporter.schedule-delay": "50"})
    yield tracer, path
    ituna.shutdown(timeout=5)


def topic_name(tag, prefix="py"):
    return "%s-%s-%s" % (prefix, tag, uuid.uuid4().hex[:10])


def spans_of(tracer, path):
    assert tracer.flush(timeout=10)
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    s["attrs"] = {a["key"]: next(iter(a["value"].values())) for a in s.get("attributes", [])}
                    out.append(s)
    return out


def consumer(topics, bootstrap, group=None, **kw):
    return ituna.Consumer(topics, group or "g-" + uuid.uuid4().hex[:8], bootstrap,
                          auto_offset_reset="earliest", **kw)


def next_message(c, timeout=30.0):
    m = c.poll(timeout=timeout)
    assert m is not None, "no message within %.0f s" % timeout
    return m
