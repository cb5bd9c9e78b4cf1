"""The file exporter (OTLP JSON lines) and the console exporter, through the
span_driver program: every line of the file decodes with opentelemetry-proto's
json_format (after the OTLP hex-id check), one ExportTraceServiceRequest per
line; the console prints one readable line per span."""
from otlp_receiver import decode_json_request, find_driver, run_driver, skip_or_fail

if find_driver("span_driver") is None:
    skip_or_fail("span_driver not built: run cmake --build <build dir> first", module=True)


def test_file_lines_decode_one_request_each(tmp_path):
    path = tmp_path / "traces.jsonl"
    stats, _ = run_driver(["-rich", "-n", "700", "-flush-ms", "5000", "exporter.type=file", f"exporter.file={path}",
                           "exporter.max-export-batch-size=256", "exporter.schedule-delay=20",
                           "tracer.service-name=file-test"])
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"", "the file must end with a newline"
    lines = lines[:-1]
    assert len(lines) >= 3  # 702 spans in batches of at most 256
    names = []
    for line in lines:
        msg = decode_json_request(line.decode("utf-8"))
        assert len(msg.resource_spans) == 1
        rs = msg.resource_spans[0]
        assert {kv.key: kv.value.string_value for kv in rs.resource.attributes}["service.name"] == "file-test"
        assert rs.scope_spans[0].scope.name == "ituna-core"
        spans = rs.scope_spans[0].spans
        assert 0 < len(spans) <= 256
        names += [sp.name for sp in spans]
    assert len(names) == 702 == stats["spans_exported"]
    assert sorted(n for n in names if n.startswith("work-")) == sorted(f"work-{i}" for i in range(700))
    assert "process ituna-orders" in names and "address_validation" in names


def test_file_is_appended_not_truncated(tmp_path):
    path = tmp_path / "traces.jsonl"
    for _ in range(2):
        run_driver(["-n", "5", "-flush-ms", "5000", "exporter.type=file", f"exporter.file={path}"])
    lines = path.read_text().splitlines()
    assert sum(len(decode_json_request(l).resource_spans[0].scope_spans[0].spans) for l in lines) == 10


def test_default_file_is_named_after_service_and_pid(tmp_path):
    import subprocess
    exe = find_driver("span_driver")
    p = subprocess.run([exe, "-n", "2", "-flush-ms", "5000", "tracer.service-name=svc/x"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    files = list(tmp_path.glob("ituna-traces-svc_x-*.jsonl"))
    assert len(files) == 1, list(tmp_path.iterdir())
    assert files[0].name in p.stderr  # the tracer says where traces go, once
    assert p.stderr.count(files[0].name) == 1
    assert len(decode_json_request(files[0].read_text().splitlines()[0]).resource_spans[0].scope_spans[0].spans) == 2


def test_unwritable_file_is_a_clear_error(tmp_path):
    stats, err = run_driver(["-n", "1", "exporter.type=file", f"exporter.file={tmp_path}/no/such/dir/t.jsonl"],
                            check=False)
    assert stats is None
    assert "cannot open traces file" in err and "no/such/dir" in err


def test_console_prints_one_line_per_span():
    stats, err = run_driver(["-rich", "-n", "3", "-flush-ms", "5000", "exporter.type=console",
                             "tracer.service-name=console-test"])
    lines = [l for l in err.splitlines() if l.startswith("[ituna] ")]
    assert len(lines) == 5 == stats["spans_exported"]
    rich = next(l for l in lines if '"process ituna-orders"' in l)
    assert rich.startswith("[ituna] console-test ")
    assert " CONSUMER " in rich and f"span={stats['rich_span_id']}" in rich
    assert f"trace={stats['rich_trace_id']}" in rich and "parent=7071727374757677(remote)" in rich
    assert "864.198ms" in rich  # 1700000000987654321 - 1700000000123456789 ns
    assert 'status=ERROR("boom: "bad" order")' in rich
    assert "messaging.kafka.offset=42" in rich and 'sarr=["a","","c"q"]' in rich
    child = next(l for l in lines if '"address_validation"' in l)
    assert f"parent={stats['rich_span_id']} " in child and "status=OK" in child


def test_strings_of_every_length_and_content_read_back_through_json_format(tmp_path):
    """The encoder copies plain strings a word at a time and escapes the rest:
    names, keys and values of 0..70 characters with a character that needs
    escaping (or a non-ASCII one) at each position decode with opentelemetry-proto
    to exactly what was set, and so do integers and doubles at digit boundaries."""
    import ituna

    path = tmp_path / "strings.jsonl"
    # a queue that holds every span: none may be dropped while the exporter catches up
    tracer = ituna.init(service_name="strings-test", env=False, type="file", file=str(path),
                        settings={"exporter.max-queue-size": "65536"})
    specials = ['"', "\\", "\n", "\x01", "\x1f", "\x7f", "é", "€", "🐟", "\u2028"]
    want = {}
    for length in range(0, 71):
        for pos in range(0, max(length, 1), 3):
            for k, sp in enumerate(specials):
                text = ("abcdefghij" * 8)[:length]
                if length:
                    text = text[:pos] + sp + text[pos + 1:]
                name = f"s{length}-{pos}-{k}:{text}"
                ints = [10**d - 1 for d in range(1, 19)] + [-(2**63), 2**63 - 1, -(length * 7919)]
                with tracer.span(name, attributes={text or "empty": text, "i": ints[length % len(ints)],
                                                   "d": (length * 1000003 + pos) / 1e6}):
                    pass
                want[name] = (text or "empty", text, ints[length % len(ints)], (length * 1000003 + pos) / 1e6)
    assert tracer.flush(timeout=30)
    got = {}
    # split on "\n" only, as the collector's receiver does: U+2028 is a line break to splitlines()
    for line in path.read_text(encoding="utf-8").split("\n")[:-1]:
        for rs in decode_json_request(line).resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    a = {kv.key: kv.value for kv in s.attributes}
                    key = next(k for k in a if k not in ("i", "d"))
                    got[s.name] = (key, a[key].string_value, a["i"].int_value, a["d"].double_value)
    assert len(want) > 8000 and got == want
    tracer.shutdown()
