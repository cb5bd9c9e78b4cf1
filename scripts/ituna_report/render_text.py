"""Terminal rendering of a Report (tables sorted by share of latency) and of one trace
as a waterfall. Plain ASCII, fitted to a given width (80 columns by default)."""

__all__ = ["render_report", "render_waterfall", "fmt_ms"]


def fmt_ms(ms):
    if ms is None:
        return "-"
    if ms < 1:
        return "%.2fms" % ms
    if ms < 100:
        return "%.1fms" % ms
    if ms < 1000:
        return "%.0fms" % ms
    if ms < 60000:
        return "%.2fs" % (ms / 1000)
    return "%.1fm" % (ms / 60000)


def _cut(s, n):
    s = str(s)
    return s if len(s) <= n else s[:max(0, n - 1)] + "~"


def _row(cols, widths, aligns):
    out = []
    for c, w, a in zip(cols, widths, aligns):
        c = _cut(c, w)
        out.append(c.ljust(w) if a == "<" else c.rjust(w))
    return " ".join(out).rstrip()


def render_report(r, width=80):
    width = max(60, int(width))
    L = []
    oc = r.outcomes
    L.append("ituna-report: %d %s (%s), %d spans"
             % (r.traces, r.unit, ", ".join("%d %s" % (oc.get(o, 0), o) for o in r.outcome_order), r.spans))
    L.append("")
    L.append("WHERE THE TIME GOES - each stage's share of the traces' critical paths")
    L.append("(the chain of work, Kafka waits and HTTP calls that decided when each ended)")
    name_w = width - 39
    widths = [2, name_w, 6, 8, 8, 8]
    aligns = [">", "<", ">", "<", ">", ">"]
    L.append(_row(["#", "stage", "share", "", "total", "/trace"], widths, aligns))
    for i, row in enumerate(r.ranking[:15], 1):
        bar = "#" * max(1 if row["share"] > 0.005 else 0, int(round(row["share"] * 8)))
        L.append(_row([str(i), row["stage"], "%.1f%%" % (100 * row["share"]), bar,
                       fmt_ms(row["totalMs"]), fmt_ms(row["meanPerTraceMs"])], widths, aligns))
    if len(r.ranking) > 15:
        rest = sum(x["share"] for x in r.ranking[15:])
        L.append("    ... %d more stages, %.1f%% together" % (len(r.ranking) - 15, 100 * rest))
    if not r.ranking:
        L.append("    (no spans)")

    L.append("")
    L.append("END-TO-END per source (root span start -> the end, or the outcome reached)")
    widths = [width - 55, 10, 7, 8, 8, 8, 8]
    aligns = ["<", "<", ">", ">", ">", ">", ">"]
    L.append(_row(["source", "outcome", "traces", "p50", "p95", "p99", "max"], widths, aligns))
    for e in r.e2e:
        L.append(_row([e["source"], e["outcome"], str(e["count"]), fmt_ms(e["p50Ms"]), fmt_ms(e["p95Ms"]),
                       fmt_ms(e["p99Ms"]), fmt_ms(e["maxMs"])], widths, aligns))

    if r.queues:
        L.append("")
        L.append("QUEUE WAIT per topic (producer span end -> consumer span start; 'kafka ts' is")
        L.append("the consumer's own figure from the message timestamp, ituna.queue_wait_ms)")
        widths = [width - 62, 6, 8, 8, 8, 8, 8, 8]
        aligns = ["<", ">", ">", ">", ">", ">", ">", ">"]
        L.append(_row(["topic", "msgs", "p50", "p95", "p99", "max", "ts p50", "ts p95"], widths, aligns))
        for q in r.queues:
            L.append(_row([q["topic"], str(q["count"]), fmt_ms(q["p50Ms"]), fmt_ms(q["p95Ms"]),
                           fmt_ms(q["p99Ms"]), fmt_ms(q["maxMs"]), fmt_ms(q["attr"]["p50Ms"]),
                           fmt_ms(q["attr"]["p95Ms"])], widths, aligns))

    http = [h for h in r.hops if h["via"] == "http"]
    if http:
        L.append("")
        L.append("HTTP HOPS (a CLIENT span and the SERVER span it called in another service)")
        for h in http:
            L.append(_cut("  %s -> %s  %d calls" % (h["from"], h["to"], h["hops"]), width))

    L.append("")
    L.append("STAGES - duration of every span, by service / span name")
    widths = [width - 51, 7, 6, 8, 8, 8, 8]
    aligns = ["<", ">", ">", ">", ">", ">", ">"]
    L.append(_row(["service:  span", "count", "err%", "p50", "p95", "p99", "max"], widths, aligns))
    svc = None
    for s in r.stages:
        if s["service"] != svc:
            svc = s["service"]
            L.append(_cut(svc, width))
        L.append(_row(["  " + s["name"], str(s["count"]), "%.1f" % (100 * s["errorRate"]),
                       fmt_ms(s["p50Ms"]), fmt_ms(s["p95Ms"]), fmt_ms(s["p99Ms"]), fmt_ms(s["maxMs"])],
                      widths, aligns))

    if r.broken or r.skew or r.late_spans:
        L.append("")
        L.append("PROBLEMS FOUND")
        for b in r.broken:
            ex = ", ".join(x[:16] for x in b["examples"][:2])
            L.append(_cut("  %-40s %6d  e.g. %s" % (b["kind"], b["count"], ex), width))
        for s in r.skew:
            L.append(_cut("  clock skew %s -> %s in %d traces:" % (s["from"], s["to"], s["traces"]), width))
            L.append(_cut("    %s's clock is behind by >= %s (corrected)"
                          % (s["to"], fmt_ms(s["estimatedSkewMs"])), width))
        if r.late_spans:
            L.append(_cut("  %d spans arrived after their trace was finalised (raise --max-in-flight)"
                          % r.late_spans, width))
    return "\n".join(L) + "\n"


def render_waterfall(t, width=80):
    """One trace as rows of: indented span name, service, a time bar, duration. '#' marks
    spans on the critical path, '=' the others, '.' the queue wait before a consumer."""
    width = max(60, int(width))
    total = max(t["totalMs"], 1e-6)
    L = []
    L.append(_cut("order %s (%s, %s) in %s  trace %s" % (t["orderId"] or "-", t["source"], t["outcome"],
                                                       fmt_ms(t["e2eMs"]), t["traceId"]), width))
    name_w = max(18, width * 3 // 10)
    svc_w = max(12, width // 5)
    dur_w = 8
    bar_w = width - name_w - svc_w - dur_w - 5
    L.append(_row(["span", "service", "|" + "0".ljust(bar_w - len(fmt_ms(total))) + fmt_ms(total) + "|", "dur"],
                  [name_w, svc_w, bar_w + 2, dur_w], ["<", "<", "<", ">"]))
    for sp in t["spans"]:
        a = int(sp["startMs"] / total * bar_w)
        b = max(a + 1, int(round((sp["startMs"] + sp["durMs"]) / total * bar_w)))
        bar = [" "] * bar_w
        qw = sp.get("queueWaitMs")
        if qw:
            q0 = int((sp["startMs"] - qw) / total * bar_w)
            for i in range(max(0, q0), min(a, bar_w)):
                bar[i] = "."
        ch = "#" if sp["cpMs"] > 0 else "="
        for i in range(a, min(b, bar_w)):
            bar[i] = ch
        label = "  " * min(sp["depth"], 8) + sp["name"] + (" !" if sp["error"] else "")
        L.append(_row([label, sp["service"], "|" + "".join(bar) + "|", fmt_ms(sp["durMs"])],
                      [name_w, svc_w, bar_w + 2, dur_w], ["<", "<", "<", ">"]))
    L.append("# on the critical path  = other work  . waiting in Kafka  ! error")
    return "\n".join(L) + "\n"
