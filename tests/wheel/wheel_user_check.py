"""wheel_user_check.py BOOTSTRAP ENDPOINT - run by user_machine.sh with the venv's
Python, where only the installed wheel provides ituna: checks that the extension
and the wheel's ituna-lua load their libraries from the wheel, then produces one
message and consumes it on a real broker, with spans exported over OTLP/HTTP to
ENDPOINT. Prints one JSON line with what it saw; the pytest side checks the rest."""
import glob
import json
import os
import subprocess
import sys
import uuid

import ituna

bootstrap, endpoint = sys.argv[1], sys.argv[2]
site = os.path.dirname(os.path.dirname(os.path.abspath(ituna.__file__)))


def mapped_libs():
    with open("/proc/self/maps") as f:
        return sorted({line.split()[-1] for line in f if ".so" in line.split()[-1]})


libs = mapped_libs()
# the extension's own libraries are the wheel's (ituna_core.libs), none the system's
for name in ("librdkafka", "libcurl", "libcjson"):
    sys_copies = [p for p in libs if os.path.basename(p).startswith(name) and not p.startswith(site)]
    assert not sys_copies, f"{name} loaded from the system: {sys_copies}"
lua = os.path.join(os.path.dirname(ituna.__file__), "bin", "ituna-lua")
lua_ok = subprocess.run([lua, "--version"], capture_output=True, text=True)
assert lua_ok.returncode == 0, f"the wheel's ituna-lua does not run: {lua_ok.stderr}"

tracer = ituna.init(service_name="wheel-user", env=False, type="otlp", endpoint=endpoint,
                    settings={"exporter.schedule-delay": "50"})
topic = "wheel-user-" + uuid.uuid4().hex[:10]
producer = ituna.Producer(bootstrap)
with tracer.span("wheel-user-order") as root:
    producer.publish(topic, b"one order", key=b"k1")
    producer.flush(timeout=30)  # raises DeliveryError when it was not delivered
consumer = ituna.Consumer([topic], "g-" + uuid.uuid4().hex[:8], bootstrap, auto_offset_reset="earliest")
msg = consumer.poll(timeout=60)
assert msg is not None, "no message consumed within 60 s"
with msg:
    value = msg.value.decode()
consumer.close()
producer.close()
assert ituna.shutdown(timeout=15), "the OTLP export did not finish"
print(json.dumps({
    "rdkafka": ituna.RDKAFKA_VERSION, "topic": topic, "trace_id": root.context.trace_id,
    "value": value, "libs": [p for p in libs if p.startswith(site)],
    "ituna_lua": lua_ok.stdout.strip(), "wheel_libs": sorted(os.path.basename(p) for p in glob.glob(
        os.path.join(site, "ituna_core.libs", "*"))),
}))
