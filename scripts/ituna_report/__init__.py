"""ituna-report: which stage makes orders slow? Reads OTLP JSON (files, directories,
Jaeger's /api/v3) and answers with per-stage latency, queue wait per Kafka topic, the
critical-path bottleneck ranking and trace waterfalls: as text, JSON and one HTML page.

Pure Python: imports nothing from the ituna library, so it runs without the C extension
and reads the traces of any pipeline, not only the ITuna restaurant's.

    from ituna_report import analyze_paths
    report = analyze_paths("traces.jsonl")
    print(report.to_text(width=80))
"""

from .analyze import Analyzer, Report, analyze_paths, analyze_requests
from .load import ReportInputError, fetch_jaeger, iter_requests

__all__ = ["Analyzer", "Report", "ReportInputError", "analyze_paths", "analyze_requests",
           "analyze_jaeger", "fetch_jaeger", "iter_requests", "print_summary", "main"]


def analyze_jaeger(url, service, since="10m", limit=1000, **kw):
    """Report for one service's traces of the last `since` from Jaeger's /api/v3."""
    return analyze_requests(fetch_jaeger(url, service, since, limit), normalise_ids=True, **kw)


def print_summary(paths, out=None, width=None, **kw):
    """Print the bottleneck table for trace files (what ituna-restaurant shows at the end
    of a run). kw go to the Analyzer (reject_topics=...). Returns the Report."""
    import shutil
    import sys
    out = out or sys.stdout
    report = analyze_paths(paths, **kw)
    out.write(report.to_text(width or min(shutil.get_terminal_size((80, 24)).columns, 120)))
    out.flush()
    return report


def main(argv=None):
    from .cli import main as _main
    return _main(argv)
