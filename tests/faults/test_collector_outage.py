"""The collector goes away for 30 s and comes back on the same port while a tracer
keeps ending spans: span end never blocks, export resumes by itself, and every
ended span is accounted for: ended = exported + dropped + export failed, exported =
what the receiver decoded; the final shutdown reports the loss (False)."""
import time

import ituna
from otlp_receiver import OtlpReceiver

OUTAGE_S = 30.0
RATE = 100  # spans per second


def test_collector_down_30_s_then_back_every_span_is_exported_or_counted():
    rx = OtlpReceiver().__enter__()
    port = int(rx.endpoint.rsplit(":", 1)[1].split("/")[0])
    t = ituna.Tracer(env=False, settings=[("service_name", "outage"), ("exporter.endpoint", rx.endpoint),
                                          ("exporter.schedule-delay", "100"), ("exporter.export-timeout", "2000"),
                                          ("exporter.max-queue-size", "2048")])
    received_before = received_after = 0
    rx2 = None
    try:
        worst_end_ns = 0
        phase_ends = {}
        start = time.monotonic()
        i = 0
        phase = "before"
        while True:
            now = time.monotonic() - start
            if phase == "before" and now >= 5:
                assert t.flush(timeout=5), "export works before the outage"
                received_before = len(rx.spans())
                rx.__exit__(None, None, None)  # collector gone: connections refused
                phase = "down"
            elif phase == "down" and now >= 5 + OUTAGE_S:
                rx2 = OtlpReceiver(port=port).__enter__()  # back on the same port
                phase_ends["down"] = i
                phase = "after"
            elif phase == "after" and now >= 5 + OUTAGE_S + 5:
                break
            t0 = time.perf_counter_ns()
            with t.span(f"s-{i}", attributes={"phase": phase, "i": i}):
                pass
            worst_end_ns = max(worst_end_ns, time.perf_counter_ns() - t0)
            i += 1
            time.sleep(1.0 / RATE)
        ok = t.shutdown(timeout=10)
        st = t.stats()
        received_after = len(rx2.spans())
        rx2.check()
        after_names = {sp.name for _, _, sp in rx2.spans()}
    finally:
        if rx2:
            rx2.__exit__(None, None, None)
    print(f"collector outage {OUTAGE_S:.0f} s: ended {st['spans_ended']}, exported {st['spans_exported']}, "
          f"dropped {st['spans_dropped']}, export failed {st['spans_export_failed']}, "
          f"retries {st['export_retries']}, worst span end {worst_end_ns / 1e6:.2f} ms")
    assert st["spans_ended"] == i
    assert st["spans_ended"] == st["spans_exported"] + st["spans_dropped"] + st["spans_export_failed"], st
    assert st["spans_exported"] == received_before + received_after, (st, received_before, received_after)
    assert st["spans_dropped"] + st["spans_export_failed"] > 0, "a 30 s outage at 100/s loses some"
    assert ok is False, "shutdown says spans were lost"
    # export resumed by itself: every span ended after the collector came back arrived
    assert all(f"s-{k}" in after_names for k in range(phase_ends["down"], i)), "export did not resume"
    assert worst_end_ns < 50e6, "span end blocked on the dead collector"
