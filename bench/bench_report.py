#!/usr/bin/env python3
"""Benchmark of ituna-report: N restaurant-shaped spans (default 1,000,000) written as OTLP
JSON lines to a temp file, then analysed. Prints seconds, spans/s and peak RSS of the
report, beside a peer run over the same file that only json.loads every line (the I/O +
parse floor). Each run is its own process so peak RSS is its own. Target: <= 10 s and
<= 500 MB for 1M spans.

    python3 bench/bench_report.py [--spans N] [--keep FILE]
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "report"))
import make_fixtures as mf  # noqa: E402

_IMPORT = r"""
import sys, types, time, resource, json
try:
    import ituna.report
except ImportError:  # source tree without the built extension: the report alone
    p = types.ModuleType('ituna'); p.__path__ = [%r]; sys.modules['ituna'] = p
""" % str(ROOT / "bindings" / "python" / "ituna")

PEER = _IMPORT + r"""
t = time.perf_counter(); n = 0
with open(sys.argv[1]) as f:
    for line in f:
        req = json.loads(line)
        for rs in req["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                n += len(ss["spans"])
dt = time.perf_counter() - t
print(json.dumps({"s": dt, "spans": n, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

REPORT = _IMPORT + r"""
from ituna.report import analyze_paths
t = time.perf_counter()
r = analyze_paths(sys.argv[1])
dt = time.perf_counter() - t
text = r.to_text(80)
print(json.dumps({"s": dt, "spans": r.spans, "traces": r.traces, "late": r.late_spans,
                  "peak_in_flight": r.peak_in_flight, "top": r.ranking[0]["stage"],
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def generate(path, n_spans, seed=1):
    rng = random.Random(seed)
    sources = ("website", "on-site", "direct")
    written = 0
    i = 0
    with open(path, "w") as f:
        while written < n_spans:
            spans = []
            for _ in range(500):
                src = sources[i % 3]
                o = mf.build_order(rng, "order-%d" % i, src, i * 5.0, reject=(i % 17 == 0 and src != "direct"))
                spans += o.spans
                i += 1
            for req in mf.to_requests(spans, batch=256):
                f.write(json.dumps(req, separators=(",", ":")))
                f.write("\n")
            written += len(spans)
    return written, i


def run(code, path):
    env = dict(os.environ)
    p = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit("run failed:\n" + p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--keep", help="write the generated traces here and keep them")
    args = ap.parse_args()
    tmp = None
    if args.keep:
        path = args.keep
    else:
        tmp = tempfile.NamedTemporaryFile(prefix="ituna-bench-", suffix=".jsonl", delete=False)
        tmp.close()
        path = tmp.name
    try:
        t = time.perf_counter()
        n, orders = generate(path, args.spans)
        size = os.path.getsize(path) / 1e6
        print("generated %d spans (%d orders, %.0f MB) in %.1f s" % (n, orders, size, time.perf_counter() - t))
        peer = run(PEER, path)
        rep = run(REPORT, path)
        assert rep["spans"] == peer["spans"] == n, (rep, peer, n)
        print("%-32s %8s %12s %10s" % ("run", "seconds", "spans/s", "peak RSS"))
        print("%-32s %8.2f %12.0f %7.0f MB" % ("peer: json.loads every line", peer["s"], n / peer["s"], peer["rss_mb"]))
        print("%-32s %8.2f %12.0f %7.0f MB" % ("ituna-report analysis", rep["s"], n / rep["s"], rep["rss_mb"]))
        print("ratio report / peer: %.2fx time, %.2fx memory" % (rep["s"] / peer["s"], rep["rss_mb"] / peer["rss_mb"]))
        print("traces %d, late spans %d, peak traces in flight %d, bottleneck: %s"
              % (rep["traces"], rep["late"], rep["peak_in_flight"], rep["top"]))
        ok = rep["s"] <= 10 and rep["rss_mb"] <= 500
        print("target (<= 10 s, <= 500 MB for 1M spans): %s" % ("met" if ok else "NOT met"))
    finally:
        if tmp is not None:
            os.unlink(path)


if __name__ == "__main__":
    main()
