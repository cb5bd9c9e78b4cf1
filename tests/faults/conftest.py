"""The fault suite shares the Python tests' helpers (otlp_receiver, kafka_helpers)
and their rule for which ituna package to load (tests/python/conftest.py), and one
broker of its own for the session (brokers.py; started once: a start costs a minute
on a loaded machine)."""
import os
import sys

_PY_TESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python")
sys.path.insert(0, os.path.abspath(_PY_TESTS))
exec(open(os.path.join(_PY_TESTS, "conftest.py")).read())


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    from brokers import PORT, OwnBroker
    b = OwnBroker(PORT, tmp_path_factory.mktemp(f"kafka-{PORT}"))
    try:
        b.start()
    except Exception as exc:  # a missing broker is a failure in CI, as for every real-broker test
        from otlp_receiver import skip_or_fail
        skip_or_fail(f"cannot start the fault suite's own broker: {exc}")
    yield b
    b.stop()
