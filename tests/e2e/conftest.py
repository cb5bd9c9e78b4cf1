"""Fixtures of the end-to-end tests: the real Kafka and Jaeger the CI starts
(tools/kafka.sh, tools/jaeger.sh), ituna-lua and the Python binding; each missing
one skips with the reason locally and fails when CI=true (e2e_common.need)."""
import os

import pytest

from e2e_common import _http_ok, have_binding, ituna_lua_path, need


@pytest.fixture
def kafka_bootstrap():
    bs = os.environ.get("ITUNA_TEST_KAFKA")
    need(bool(bs), "ITUNA_TEST_KAFKA is not set (start a broker with tools/kafka.sh)")
    return bs


@pytest.fixture
def jaeger():
    otlp = os.environ.get("ITUNA_TEST_JAEGER_OTLP")
    query = os.environ.get("ITUNA_TEST_JAEGER_QUERY")
    need(bool(otlp and query), "ITUNA_TEST_JAEGER_OTLP / ITUNA_TEST_JAEGER_QUERY are not set "
                               "(start Jaeger with tools/jaeger.sh start; tools/jaeger.sh env prints them)")
    need(_http_ok(query.rstrip("/") + "/api/services"), f"Jaeger query API at {query} does not answer")
    return {"otlp": otlp.rstrip("/"), "query": query.rstrip("/")}


@pytest.fixture
def ituna_lua():
    path = ituna_lua_path()
    need(path is not None, "ituna-lua is not built (cmake --build, or set ITUNA_LUA)")
    return path


@pytest.fixture
def binding():
    need(have_binding(), "the ituna Python binding is not importable (pip install .)")
