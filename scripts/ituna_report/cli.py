"""Command line of ituna-report (console entry point ituna_report.cli:main)."""

import argparse
import os
import shutil
import sys

from .analyze import MAX_EMBEDDED, MAX_IN_FLIGHT, analyze_paths, analyze_requests
from .load import ReportInputError, fetch_jaeger
from .profile import ProfileError, load_profile

EPILOG = """examples:
  ituna-report traces.jsonl                      table of where the time goes
  ituna-report run-dir/ --html report.html       also a self-contained page
  ituna-report traces.jsonl --trace TRACE_ID     one trace as a waterfall
  ituna-report traces.jsonl --follow             live ranking while the file grows
  ituna-report --jaeger http://127.0.0.1:16686 --service kitchen-service --since 10m
  ituna-report traces.jsonl --profile scripts/restaurant-profile.ini --order ORDER_ID
                                                 the restaurant's words: served, rejected, orders
"""


def build_parser():
    p = argparse.ArgumentParser(
        prog="ituna-report", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Which stage makes a pipeline slow? Per-stage latency, Kafka queue wait, HTTP hops, "
                    "the critical-path bottleneck ranking and trace waterfalls from any OTLP JSON traces.")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="OTLP JSON-lines file(s), or directories of *.jsonl / *.json files")
    p.add_argument("--jaeger", metavar="URL", help="read from Jaeger's query API (/api/v3) at URL")
    p.add_argument("--service", help="with --jaeger: the service whose traces to fetch")
    p.add_argument("--since", default="10m", help="with --jaeger: how far back (30s, 10m, 2h; default 10m)")
    p.add_argument("--limit", type=int, default=1000, help="with --jaeger: at most this many traces")
    p.add_argument("--order", metavar="ID",
                   help="show the trace of this id as a waterfall (the profile's id-attribute, e.g. order.id)")
    p.add_argument("--trace", metavar="ID", help="show this trace (hex id) as a waterfall")
    p.add_argument("--html", metavar="PATH", help="write a self-contained HTML report")
    p.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    p.add_argument("--width", type=int, default=None, help="terminal width (default: the terminal's, or 80)")
    p.add_argument("--max-in-flight", type=int, default=MAX_IN_FLIGHT,
                   help="traces kept open while reading, the memory bound (~3 KB per span of "
                        "an open trace; default %d)" % MAX_IN_FLIGHT)
    p.add_argument("--max-embedded", type=int, default=MAX_EMBEDDED,
                   help="traces the HTML page can open by search (the slowest; default %d)" % MAX_EMBEDDED)
    p.add_argument("--profile", metavar="PATH",
                   help="what the traces mean to their application (an INI file: outcomes such as served "
                        "or rejected, sources, ids); default: read from the trace graph alone (ok, error, "
                        "incomplete). The restaurant's: scripts/restaurant-profile.ini")
    p.add_argument("--rejected-topic", action="append", metavar="TOPIC",
                   help="replaces the topics of the profile's sends-to rule (the restaurant's rejected "
                        "orders; repeatable; default: [topics] rejected of --config, else the profile's)")
    p.add_argument("--config", metavar="PATH",
                   help="the restaurant's INI file, for its [topics] rejected (with --profile)")
    p.add_argument("--follow", action="store_true",
                   help="refresh the ranking live while the trace files grow (or Jaeger gets more traces); "
                        "Ctrl-C ends it")
    p.add_argument("--interval", type=float, default=2.0, metavar="S",
                   help="with --follow: seconds between refreshes (0.2 to 60; at least twice the last "
                        "analysis time; default 2)")
    p.add_argument("--until-idle", type=float, default=None, metavar="S",
                   help="with --follow: stop once no new span came for S seconds")
    p.add_argument("--quiet", action="store_true", help="no table on stdout")
    return p


def reject_topics(args):
    """--rejected-topic, else --config's [topics] rejected, else the default."""
    if args.rejected_topic:
        return set(args.rejected_topic)
    if args.config:
        import configparser
        cp = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            if not cp.read(args.config, encoding="utf-8"):
                raise ReportInputError("%s: cannot read the config file" % args.config)
        except configparser.Error as e:
            raise ReportInputError("%s: %s" % (args.config, e)) from None
        topic = cp.get("topics", "rejected", fallback="").strip()
        if topic:
            return {topic}
    return None


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.paths and not args.jaeger:
        print("ituna-report: give a trace file or directory, or --jaeger URL --service NAME", file=sys.stderr)
        return 2
    if args.jaeger and not args.service:
        print("ituna-report: --jaeger needs --service NAME", file=sys.stderr)
        return 2
    width = args.width or min(shutil.get_terminal_size((80, 24)).columns, 120)
    try:
        profile = load_profile(args.profile) if args.profile else None
        kw = {"max_in_flight": args.max_in_flight, "want_trace": args.trace, "want_order": args.order,
              "max_embedded": args.max_embedded, "reject_topics": reject_topics(args), "profile": profile}
        if args.follow:
            from .follow import follow
            rc, report = follow(args, kw, width)
            if args.json:
                report.to_json(args.json)
            if args.html:
                report.to_html(args.html)
            return rc
        if args.jaeger:
            report = analyze_requests(fetch_jaeger(args.jaeger, args.service, args.since, args.limit),
                                      normalise_ids=True, **kw)
        else:
            report = analyze_paths(args.paths, **kw)
    except (ReportInputError, ProfileError) as e:
        print("ituna-report: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if args.order or args.trace:
        if not report.found:
            print("ituna-report: no trace found for %s %s (read %d traces)"
                  % ("order" if args.order else "trace", args.order or args.trace, report.traces),
                  file=sys.stderr)
            return 1
        for t in report.found:
            sys.stdout.write(report.waterfall_text(t, width))
    elif not args.quiet:
        sys.stdout.write(report.to_text(width))
    try:
        if args.json:
            report.to_json(args.json)
            print("ituna-report: figures written to %s" % os.path.abspath(args.json), file=sys.stderr)
        if args.html:
            report.to_html(args.html)
            print("ituna-report: page written to %s" % os.path.abspath(args.html), file=sys.stderr)
    except OSError as e:
        print("ituna-report: cannot write: %s" % e, file=sys.stderr)
        return 1
    if report.traces == 0:
        print("ituna-report: the input held no spans", file=sys.stderr)
        return 1
    return 0
