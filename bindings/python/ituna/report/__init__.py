"""ituna-report: which stage makes orders slow? Reads OTLP JSON (files, directories,
Jaeger's /api/v3) and answers with per-stage latency, queue wait per Kafka topic, the
critical-path bottleneck ranking and trace waterfalls: as text, JSON and one HTML page.

Pure Python: imports nothing from ituna._core, so it runs without the C extension.

    from ituna.report import analyze_paths
    report = analyze_paths("traces.jsonl")
    print(report.to_text(width=80))
"""

from .analyze import Analyzer, Report, analyze_paths, analyze_requests
from .load import ReportInputError, fetch_jaeger, iter_requests

__all__ = ["Analyzer", "Report", "ReportInputError", "analyze_paths", "analyze_requests",
           "analyze_jaeger", "fetch_jaeger", "iter_requests"]


def analyze_jaeger(url, service, since="10m", limit=1000, **kw):
    """Report for one service's traces of the last `since` from Jaeger's /api/v3."""
    return analyze_requests(fetch_jaeger(url, service, since, limit), normalise_ids=True, **kw)
