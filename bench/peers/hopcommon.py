"""What every Python hop of bench/kafka_peers.py shares: its settings (environment
variables set by the harness), the order payload, the per-message clock and the one
RESULT line it prints. Only the standard library, so it costs every case the same."""
import json
import os
import time

BOOTSTRAP = os.environ["HOP_BOOTSTRAP"]
IN_TOPIC = os.environ["HOP_IN"]
OUT_TOPIC = os.environ["HOP_OUT"]
N = int(os.environ["HOP_N"])            # measured messages
WARM = int(os.environ["HOP_WARM"])      # handled before the clocks start (connections, group join)
GROUP = os.environ["HOP_GROUP"]
SERVICE = os.environ.get("HOP_SERVICE", "hop")
OTLP = os.environ.get("HOP_OTLP", "")   # the sink's base URL, for the traced cases
TOTAL = WARM + N
# What the OpenTelemetry SDK peers queue: every span of the run, so a slow export
# thread is measured as CPU, not hidden as drops (the figures used 131072).
SDK_QUEUE = max(2048, 4 * TOTAL + 512)


def proc_status():
    """(VmRSS, VmHWM) in MB."""
    rss = hwm = 0.0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024.0
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024.0
    return rss, hwm


class Clock:
    """Process CPU (all threads) and wall time of the measured window, and each
    message's in-hop time (poll returned -> published, span ended, offset stored)."""

    def __init__(self):
        self.lat = [0] * N
        self.i = 0

    def start(self):
        self.cpu0 = time.process_time()
        self.wall0 = time.perf_counter()

    def stop(self):
        self.cpu = time.process_time() - self.cpu0
        self.wall = time.perf_counter() - self.wall0

    def report(self, **extra):
        rss, hwm = proc_status()
        lat = sorted(self.lat[: self.i])

        def pct(p):
            return lat[min(len(lat) - 1, int(p * len(lat)))] / 1000.0 if lat else 0.0

        out = {"n": self.i, "cpu_s": self.cpu, "wall_s": self.wall, "lat_p50_us": pct(0.50),
               "lat_p99_us": pct(0.99), "rss_mb": rss, "hwm_mb": hwm}
        out.update(extra)
        print("RESULT " + json.dumps(out), flush=True)
