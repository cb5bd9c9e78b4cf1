"""ituna-report's HTML page in Debian's headless Chromium, driven by npm's playwright-core
(tests/browser/check_report.js): no console error, no network request, the planted
bottleneck first, the search box opening an order's waterfall. Fails (never skips) when
node, Chromium or playwright-core are missing: CI must have them."""

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "report"
BROWSER = ROOT / "tests" / "browser"
sys.path.insert(0, str(FIX))
import make_fixtures as mf  # noqa: E402

try:
    import ituna_report as R
except ImportError as e:
    print("ituna_report not installed (%s): testing it from the source tree" % e)
    sys.path.insert(0, str(ROOT / "scripts"))
    import ituna_report as R


def _artifacts():
    d = Path(os.environ.get("ITUNA_ARTIFACTS") or ROOT / "build" / "artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _node_ready():
    node = shutil.which("node")
    if not node:
        pytest.fail("node is not installed (apt-get install nodejs npm): the HTML report test needs it")
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(chromium):
        pytest.fail("Chromium not found at %s (apt-get install chromium)" % chromium)
    if not (BROWSER / "node_modules" / "playwright-core").is_dir():
        npm = shutil.which("npm")
        if not npm:
            pytest.fail("npm is missing, so playwright-core cannot be installed in tests/browser")
        env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
        p = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=BROWSER, env=env,
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            pytest.fail("npm ci in tests/browser failed:\n" + p.stdout + p.stderr)
    return node


def test_html_report_in_headless_chromium(tmp_path):
    node = _node_ready()
    # A run where the kitchen's roll step is slow, as the restaurant plants it.
    orders, spans = mf.restaurant(random.Random(8))
    traces = tmp_path / "traces.jsonl"
    mf.write_jsonl(traces, mf.to_requests(spans))
    report = R.analyze_paths(traces, profile=str(ROOT / "scripts" / "restaurant-profile.ini"))
    art = _artifacts()
    html = art / "ituna-report.html"
    report.to_html(html)
    expect = report.ranking[0]["stage"]
    assert expect == "kitchen-service / roll"
    order = next(o for o in orders if o.source == "on-site" and not o.rejected)
    shot = art / "ituna-report.png"
    if shot.exists():
        shot.unlink()
    p = subprocess.run([node, str(BROWSER / "check_report.js"), "--html", str(html), "--expect-first", expect,
                        "--order", order.order_id, "--screenshot", str(shot)],
                       capture_output=True, text=True, timeout=180)
    print(p.stdout)
    assert p.returncode == 0, "browser check failed:\n" + p.stdout + p.stderr
    assert shot.exists() and shot.stat().st_size > 10000
