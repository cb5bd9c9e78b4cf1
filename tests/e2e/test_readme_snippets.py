"""The README's Python and Lua examples, taken from README.md's fenced code blocks and run
as written against the embedded broker, so they cannot rot: each consumes an order placed
by the test, publishes it on (with its trace context in the headers) and prints its
spans with the console exporter (on stderr). Their consumer loops run forever by design; a harness
line before each snippet stops the loop after one message, so the lines after the loop
run too and the snippet exits 0."""
import json
import os
import re
import subprocess
import sys
import uuid

import pytest

from e2e_common import REPO

ituna = pytest.importorskip("ituna")

README = os.path.join(REPO, "README.md")

PY_HARNESS = '''
import ituna
_Consumer = ituna.Consumer


class _OneMessage:
    """Test harness: the README's consumer, stopped after one message."""

    def __init__(self, *a, **k):
        self._c = _Consumer(*a, **k)

    def __getattr__(self, name):
        return getattr(self._c, name)

    def __enter__(self):
        self._c.__enter__()
        return self

    def __exit__(self, *exc):
        return self._c.__exit__(*exc)

    def __iter__(self):
        for msg in self._c:
            yield msg
            self._c.stop()


ituna.Consumer = _OneMessage
'''

LUA_HARNESS = '''
local ituna = require "ituna"
local real_consumer = ituna.consumer
-- Test harness: the README's consumer, stopped after one message.
ituna.consumer = function(opts)
  local c = real_consumer(opts)
  return setmetatable({}, { __index = function(_, k)
    if k == "messages" then
      return function()
        local iter, st, ctl = c:messages()
        local n = 0
        return function(s, v)
          if n >= 1 then c:stop() end
          n = n + 1
          return iter(s, v)
        end, st, ctl
      end
    end
    local v = c[k]
    if type(v) == "function" then return function(_, ...) return v(c, ...) end end
    return v
  end })
end
'''


def readme_blocks(lang):
    text = open(README, encoding="utf-8").read()
    blocks = re.findall(r"^```%s\n(.*?)^```" % lang, text, re.S | re.M)
    assert blocks, f"README.md has no ```{lang} block"
    return blocks


def place_order(bootstrap, topic):
    from confluent_kafka import Producer
    order_id = str(uuid.uuid4())
    p = Producer({"bootstrap.servers": bootstrap})
    p.produce(topic, json.dumps({"order_id": order_id, "order_details": {"ITUNA ROLL": 1}}).encode(), key=order_id)
    assert p.flush(15) == 0
    return order_id


def read_one(bootstrap, topic, timeout=30):
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "readme-check-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    try:
        import time
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = c.poll(0.5)
            if m is not None and not m.error():
                return json.loads(m.value()), dict((k, v.decode()) for k, v in (m.headers() or []))
        raise AssertionError(f"nothing arrived on {topic} within {timeout} s")
    finally:
        c.close()


def snippet_env(bootstrap):
    env = dict(os.environ)
    for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER",
              "ITUNA_CONFIG", "ITUNA_CONFIG_SCHEMA", "OTEL_SERVICE_NAME"):
        env.pop(k, None)
    env["ITUNA_KAFKA_BOOTSTRAP"] = bootstrap
    env["OTEL_BSP_SCHEDULE_DELAY"] = "100"
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(ituna.__file__)),
                                         env.get("PYTHONPATH", "")])
    return env


def check_run(p, order_id, topic_out, bootstrap, span_names):
    out, headers = read_one(bootstrap, topic_out)
    try:
        stdout, stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, f"the snippet failed ({p.returncode}):\n{stdout[-3000:]}\n{stderr[-3000:]}"
    assert out["order_id"] == order_id
    trace_id = headers["traceparent"].split("-")[1]
    for name in span_names:
        assert name in stderr, f"span {name} not printed by the console exporter:\n{stderr[-3000:]}"
    assert trace_id in stderr, "the published message's trace is not the one printed"


def test_readme_python_snippet_runs(tmp_path):
    broker = ituna.start_embedded_broker(n_brokers=1)
    try:
        order_id = place_order(broker.bootstrap, "ituna-orders")
        code = PY_HARNESS + "\n".join(readme_blocks("python"))
        script = tmp_path / "readme_snippet.py"
        script.write_text(code)
        p = subprocess.Popen([sys.executable, str(script)], env=snippet_env(broker.bootstrap),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(tmp_path))
        check_run(p, order_id, "kitchen-orders", broker.bootstrap,
                  ["main-order-validation", "address_validation", "process ituna-orders"])
    finally:
        broker.stop()


def test_readme_lua_snippet_runs(tmp_path, ituna_lua):
    lua = "/usr/bin/lua5.4" if os.path.exists("/usr/bin/lua5.4") else None
    if lua is None:
        pytest.fail("lua5.4 is not installed (tools/install-deps.sh installs it)")
    libdir = os.path.dirname(ituna_lua)
    broker = ituna.start_embedded_broker(n_brokers=1)
    try:
        order_id = place_order(broker.bootstrap, "kitchen-orders")
        script = tmp_path / "readme_snippet.lua"
        script.write_text(LUA_HARNESS + "\n".join(readme_blocks("lua")))
        env = snippet_env(broker.bootstrap)
        env["LUA_CPATH"] = f"{libdir}/lib/?.so;{libdir}/?.so;;"
        p = subprocess.Popen([lua, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=str(tmp_path))
        check_run(p, order_id, "ituna-ready", broker.bootstrap, ["main-kitchen", "cut-fish", "process kitchen-orders"])
    finally:
        broker.stop()
