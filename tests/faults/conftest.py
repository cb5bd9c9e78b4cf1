"""The fault suite shares the Python tests' helpers (otlp_receiver, kafka_helpers)
and their rule for which ituna package to load (tests/python/conftest.py)."""
import os
import sys

_PY_TESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python")
sys.path.insert(0, os.path.abspath(_PY_TESTS))
exec(open(os.path.join(_PY_TESTS, "conftest.py")).read())
