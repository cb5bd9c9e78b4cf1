#!/usr/bin/env python3
"""Cross-peer Kafka hop benchmark: ituna (Python, Lua, C; traced and untraced) against
confluent-kafka, confluent-kafka + opentelemetry-sdk and the seed's stack
(kafka-python + opentelemetry-sdk, carrier in the payload), on a real Kafka broker.

    python3 bench/kafka_peers.py                 # 20,000 messages x 3 rounds, writes BENCHMARKS.md

What it does, in order:
  1. the peers from PyPI (bench/peers/requirements.txt) and this checkout's ituna go
     into a venv of its own under ~/.cache/ituna/bench-peers (reused while unchanged);
     ituna-lua and the C hop are built in ./build with CMake;
  2. a real Kafka 4.1.1 broker (tools/kafka.sh, port 14092) and an OTLP/HTTP sink
     (bench/peers/otlp_sink.py, another process, decoding with opentelemetry-proto)
     are started, and stopped by PID at the end (--bootstrap uses a running broker);
  3. each round fills one input topic per case with the same seed-shaped orders, then
     runs every case once, in a fresh process, in an order rotated each round. A hop
     consumes an order, makes a CONSUMER span, two child spans, and publishes it on
     with a PRODUCER span: 4 spans a message. Warm-up messages (connections, group
     join) are handled before the clocks start; the measured window ends once every
     message is delivered and every span exported;
  4. it checks that the sink received every span of each traced case (4 per message),
     none of an untraced one, and that the output topic holds every message. A case
     that lost spans or messages is marked, not ranked;
  5. it prints the table (CPU us/msg = process CPU of all threads, msgs per CPU-second,
     wall throughput, in-hop latency p50/p99, peak RSS) with ratios against
     confluent-kafka untraced, confluent-kafka + OTel and the seed's stack, the goals of
     issue 14 as met/missed, and writes BENCHMARKS.md with the machine description.

Ratios are medians of per-round ratios (cases of one round ran minutes apart, on
the same broker state); on a shared machine absolute figures drift between runs.
"""
import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = os.path.join(HERE, "peers")
CACHE = os.environ.get("ITUNA_BENCH_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "ituna", "bench-peers"))
VENV = os.path.join(CACHE, "venv")
VPY = os.path.join(VENV, "bin", "python")

# case id -> (label, language, traced, how to run it)
CASES = {
    "ituna-py": ("ituna Python, traced", "py", True),
    "ituna-py-off": ("ituna Python, OTEL_SDK_DISABLED=true", "py", False),
    "ituna-py-q2048": ("ituna Python, traced, default queue (2048)", "py", True),
    "ituna-lua": ("ituna Lua, traced", "lua", True),
    "ituna-lua-off": ("ituna Lua, OTEL_SDK_DISABLED=true", "lua", False),
    "ituna-c": ("ituna C, traced", "c", True),
    "ituna-c-off": ("ituna C, OTEL_SDK_DISABLED=true", "c", False),
    "confluent": ("confluent-kafka, untraced", "confluent", False),
    "confluent-otel": ("confluent-kafka + opentelemetry-sdk", "confluent-otel", True),
    "seed": ("kafka-python + opentelemetry-sdk (the seed's stack)", "seed", True),
}
BASE, OTEL, SEED = "confluent", "confluent-otel", "seed"
DISHES = ["ITUNA SOUP", "TUNA SALAD", "TUNA MAKI", "TUNA SASHIMI", "TUNA NIGIRI", "SPICY TUNA NIGIRI",
          "ITUNA ROLL", "SPICY ITUNA ROLL"]
NAMES = ["Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances"]


def log(msg):
    print("kafka_peers: " + msg, file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    sys.exit(1)


# ---- 1. the venv with the peers and ituna -------------------------------------------

def tree_hash(paths):
    h = hashlib.sha256()
    for top in paths:
        full = os.path.join(ROOT, top)
        files = [full] if os.path.isfile(full) else sorted(
            os.path.join(d, f) for d, _, fs in os.walk(full) for f in fs
            if f.endswith((".c", ".h", ".py", ".pyi", ".toml", ".cfg", ".in")) and "__pycache__" not in d)
        for f in files:
            h.update(os.path.relpath(f, ROOT).encode())
            with open(f, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


def stamp_ok(name, value):
    try:
        with open(os.path.join(VENV, name)) as f:
            return f.read() == value
    except OSError:
        return False


def write_stamp(name, value):
    with open(os.path.join(VENV, name), "w") as f:
        f.write(value)


def ensure_venv():
    pip = [VPY, "-m", "pip", "-q", "--disable-pip-version-check", "--cache-dir", os.path.join(CACHE, "pip")]
    req = os.path.join(PEERS, "requirements.txt")
    with open(req, "rb") as f:
        want = hashlib.sha256(f.read() + sys.version.encode()).hexdigest()
    if not stamp_ok(".peers", want):
        log("installing the peers from PyPI into %s" % VENV)
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run(pip + ["install", "-r", req], check=True)
        write_stamp(".peers", want)
    src = tree_hash(["core", "bindings/python", "setup.py", "pyproject.toml"])
    if not stamp_ok(".ituna", src):
        log("installing ituna from %s into the venv" % ROOT)
        subprocess.run(pip + ["install", "--no-deps", "--force-reinstall", ROOT], check=True)
        write_stamp(".ituna", src)


def ensure_build(build):
    lua, hop = os.path.join(build, "bindings", "lua", "ituna-lua"), os.path.join(build, "bench", "hop_ituna_c")
    if not os.path.exists(os.path.join(build, "CMakeCache.txt")):
        subprocess.run(["cmake", "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], check=True,
                       stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build, "-j2", "--target", "ituna-lua", "hop_ituna_c"], check=True,
                   stdout=subprocess.DEVNULL)
    return lua, hop


# ---- 2. broker and sink ----------------------------------------------------------------

class Services:
    def __init__(self, args):
        self.args = args
        self.kafka_env = None
        self.sink = None
        self.bootstrap = args.bootstrap

    def start(self):
        if not self.bootstrap:
            self.kafka_env = dict(os.environ, ITUNA_KAFKA_PORT=str(self.args.port),
                                  ITUNA_KAFKA_STATE=os.path.join(CACHE, "kafka-%d" % self.args.port))
            log("starting Kafka on 127.0.0.1:%d (tools/kafka.sh)" % self.args.port)
            out = subprocess.run(["bash", os.path.join(ROOT, "tools", "kafka.sh"), "start"], env=self.kafka_env,
                                 check=True, stdout=subprocess.PIPE, text=True).stdout.split()
            self.bootstrap = out[-1]
        self.sink = subprocess.Popen([VPY, os.path.join(PEERS, "otlp_sink.py"), str(self.args.sink_port)],
                                     stdout=subprocess.PIPE, text=True)
        port = int(self.sink.stdout.readline())
        self.sink_url = "http://127.0.0.1:%d" % port
        log("broker %s, OTLP sink %s (pid %d)" % (self.bootstrap, self.sink_url, self.sink.pid))

    def counts(self):
        with urllib.request.urlopen(self.sink_url + "/counts", timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        if self.sink and self.sink.poll() is None:
            self.sink.terminate()
            try:
                self.sink.wait(10)
            except subprocess.TimeoutExpired:
                self.sink.kill()
        if self.kafka_env:
            # kafka.sh stop signals the broker's recorded PID (TERM, then KILL)
            subprocess.run(["bash", os.path.join(ROOT, "tools", "kafka.sh"), "stop"], env=self.kafka_env,
                           stdout=subprocess.DEVNULL)
            # its topics are this run's inputs and outputs: hundreds of MB worth nothing now
            shutil.rmtree(self.kafka_env["ITUNA_KAFKA_STATE"], ignore_errors=True)
            self.kafka_env = None


# ---- 3. topics, orders, cases ----------------------------------------------------------

def make_order(rng):
    dishes = rng.sample(DISHES, rng.randint(2, 5))
    order = {"order_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
             "customer_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
             "order_details": {d: rng.randint(1, 5) for d in dishes}}
    if rng.random() < 0.5:
        order["address"] = "%d Harbour Street" % rng.randint(1, 400)
        order["source"] = "website"
    else:
        order["table"] = rng.randint(1, 40)
        order["source"] = "onsite"
    order["customer_name"] = rng.choice(NAMES)
    return order


def traceparent(rng):
    return "00-%032x-%016x-01" % (rng.getrandbits(128) or 1, rng.getrandbits(64) or 1)


def fill_topics(bootstrap, plan, total, seed):
    """plan: [(case, in_topic, out_topic)]. Every input gets the same orders; the
    seed's carries the W3C carrier in the payload, the others a traceparent header."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [t for _, i, o in plan for t in (i, o)]
    for t, f in admin.create_topics([NewTopic(t, 1, 1) for t in topics]).items():
        f.result(30)
    rng = random.Random(seed)
    orders = []
    for _ in range(total):
        order = make_order(rng)
        orders.append((order, traceparent(rng)))
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "queue.buffering.max.messages": 1000000})
    for case, in_topic, _ in plan:
        for order, tp in orders:
            if case == SEED:
                body = json.dumps(dict(order, carrier=json.dumps({"traceparent": tp}))).encode()
                headers = None
            else:
                body, headers = json.dumps(order).encode(), [("traceparent", tp.encode())]
            while True:
                try:
                    p.produce(in_topic, body, key=order["order_id"].encode(), headers=headers)
                    break
                except BufferError:
                    p.poll(0.1)
            p.poll(0)
    if p.flush(120):
        die("could not fill the input topics")


def watermark(bootstrap, topic):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "kafka-peers-watermarks"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


def delete_topics(bootstrap, topics):
    from confluent_kafka.admin import AdminClient
    for f in AdminClient({"bootstrap.servers": bootstrap}).delete_topics(topics).values():
        try:
            f.result(30)
        except Exception:  # deleting is tidying up; a failure here changes no figure
            pass


def case_command(case, binaries):
    lua, hop_c = binaries
    lang = CASES[case][1]
    if lang == "py":
        return [VPY, os.path.join(PEERS, "hop_ituna.py")]
    if lang == "lua":
        return [lua, os.path.join(PEERS, "hop_ituna.lua")]
    if lang == "c":
        return [hop_c]
    if lang == "confluent":
        return [VPY, os.path.join(PEERS, "hop_confluent.py")]
    if lang == "confluent-otel":
        return [VPY, os.path.join(PEERS, "hop_confluent.py"), "--otel"]
    return [VPY, os.path.join(PEERS, "hop_seed.py")]


def run_case(case, rnd, in_topic, out_topic, svc, services, args, binaries):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ITUNA_", "HOP_"))}
    env.update(HOP_BOOTSTRAP=services.bootstrap, HOP_IN=in_topic, HOP_OUT=out_topic, HOP_N=str(args.messages),
               HOP_WARM=str(args.warm), HOP_GROUP="g-" + svc, HOP_SERVICE=svc, HOP_OTLP=services.sink_url,
               OTEL_SERVICE_NAME=svc, OTEL_EXPORTER_OTLP_ENDPOINT=services.sink_url,
               OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    if not CASES[case][2]:
        env["OTEL_SDK_DISABLED"] = "true"
    elif not case.endswith("-q2048"):
        # The same export policy as the OpenTelemetry SDK peers: a queue that holds
        # every span of the run, so that each case exports all of them and the CPU
        # figures compare like with like. -q2048 keeps ituna's default (the memory goal).
        env["OTEL_BSP_MAX_QUEUE_SIZE"] = str(4 * (args.warm + args.messages) + 512)
    timeout = 120 + args.messages * 0.02
    try:
        p = subprocess.run(case_command(case, binaries), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after %.0f s" % timeout}
    res = None
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
    if p.returncode != 0 or res is None:
        return {"error": "exit %d: %s" % (p.returncode, (p.stderr.strip().splitlines() or ["no output"])[-1][:300])}
    total = args.warm + args.messages
    want = 4 * total if CASES[case][2] else 0
    deadline = time.time() + 30
    while True:
        counts = services.counts()  # the sink answers exports at once and decodes behind
        got = counts.get(svc, 0)
        if (got >= want and not counts.get("_pending")) or time.time() > deadline:
            break
        time.sleep(0.2)
    res["spans_expected"], res["spans_received"] = want, got
    res["out_messages"] = watermark(services.bootstrap, out_topic)
    problems = []
    if got != want:
        problems.append("%d of %d spans reached the sink" % (got, want))
    if res["out_messages"] != total:
        problems.append("%d of %d messages published" % (res["out_messages"], total))
    if res.get("n") != args.messages:
        problems.append("%s of %d messages timed" % (res.get("n"), args.messages))
    if problems:
        res["problem"] = "; ".join(problems)
    return res


# ---- 4. figures -----------------------------------------------------------------------

def med(xs):
    return statistics.median(xs) if xs else float("nan")


def rng_str(xs, fmt):
    if not xs:
        return "-"
    if len(xs) == 1 or min(xs) == max(xs):
        return fmt % xs[0]
    return (fmt + "–" + fmt) % (min(xs), max(xs))


def summarise(results, cases, rounds):
    """results[case][round] -> dict. Returns per-case rows and per-round ratios."""
    rows = {}
    for c in cases:
        runs = [results[c].get(r) for r in range(rounds)]
        good = [x for x in runs if x and "error" not in x and "problem" not in x]
        bad = [x for x in runs if not x or "error" in x or "problem" in x]
        row = {"case": c, "label": CASES[c][0], "rounds_ok": len(good), "rounds": rounds}
        if bad:
            row["mark"] = "; ".join(sorted({(x or {}).get("error") or (x or {}).get("problem") or "not run"
                                            for x in bad}))
        # a marked case still shows its figures (from every round that finished), unranked
        measured = good if not bad else [x for x in runs if x and "cpu_s" in x and x.get("n")]
        if measured:
            good = measured
            cpu = [x["cpu_s"] / x["n"] * 1e6 for x in good]
            row.update(cpu_us=med(cpu), cpu_all=cpu, mps=med([x["n"] / x["cpu_s"] for x in good]),
                       tput=med([x["n"] / x["wall_s"] for x in good]), p50=med([x["lat_p50_us"] for x in good]),
                       p99=med([x["lat_p99_us"] for x in good]), hwm=[x["hwm_mb"] for x in good])
        rows[c] = row

    def ratio(c, peer, inverse):
        out = []
        for r in range(rounds):
            a, b = results[c].get(r), results[peer].get(r) if peer in results else None
            if not a or not b or any(k in x for x in (a, b) for k in ("error", "problem")):
                continue
            ca, cb = a["cpu_s"] / a["n"], b["cpu_s"] / b["n"]
            out.append(cb / ca if inverse else ca / cb)
        return out

    for c, row in rows.items():
        if "mark" in row:
            continue  # marked cases are not ranked
        row["vs_base"] = ratio(c, BASE, False)      # CPU per message, case / confluent untraced
        row["vs_otel"] = ratio(c, OTEL, True)       # msgs per CPU-second, case / confluent + OTel
        row["vs_seed"] = ratio(c, SEED, True)       # msgs per CPU-second, case / seed's stack
    return rows


def fmt_ratio(xs, suffix="x"):
    if not xs:
        return "-"
    m = med(xs)
    s = "%.2f%s" % (m, suffix) if m < 10 else "%.1f%s" % (m, suffix)
    if len(xs) > 1:
        s += " (%.2f–%.2f)" % (min(xs), max(xs)) if m < 10 else " (%.1f–%.1f)" % (min(xs), max(xs))
    return s


def table(rows, cases):
    head = ["case", "CPU µs/msg", "msgs/CPU-s", "msgs/s wall", "in-hop p50/p99 µs", "peak RSS MB",
            "CPU vs confluent", "vs confluent+OTel", "vs seed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cases:
        r = rows[c]
        label = r["label"] + (" — **marked, not ranked: %s**" % r["mark"] if "mark" in r else "")
        if "cpu_us" not in r:
            lines.append("| " + label + " |" + " - |" * (len(head) - 1))
            continue
        cells = [label, "%.1f" % r["cpu_us"], "%.0f" % r["mps"], "%.0f" % r["tput"],
                 "%.0f / %.0f" % (r["p50"], r["p99"]), rng_str(r["hwm"], "%.0f"),
                 fmt_ratio(r.get("vs_base", [])), fmt_ratio(r.get("vs_otel", [])), fmt_ratio(r.get("vs_seed", []))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def goals(rows):
    """Issue 14's goals, each met or missed, from this run's figures."""
    out = []

    def ok(c):
        return c in rows and "mark" not in rows[c] and "cpu_us" in rows[c]

    def line(text, value, met):
        out.append("- %s: %s — **%s**" % (text, value, "met" if met else "missed"))

    for lang, name in (("py", "Python"), ("lua", "Lua"), ("c", "C")):
        off, on = "ituna-%s-off" % lang, "ituna-%s" % lang
        if ok(off) and rows[off].get("vs_base"):
            m = med(rows[off]["vs_base"])
            line("ituna %s untraced CPU/msg ≤ 0.9x confluent-kafka untraced" % name, "%.2fx" % m, m <= 0.9)
        if ok(on) and rows[on].get("vs_base"):
            m = med(rows[on]["vs_base"])
            line("ituna %s traced CPU/msg ≤ 1.25x confluent-kafka untraced" % name, "%.2fx" % m, m <= 1.25)
        if ok(on) and rows[on].get("vs_seed"):
            m = med(rows[on]["vs_seed"])
            line("ituna %s traced ≥ 25x the seed's stack per CPU-second" % name, "%.1fx" % m, m >= 25)
        if ok(on) and rows[on].get("vs_otel"):
            m = med(rows[on]["vs_otel"])
            line("ituna %s traced ≥ 15x confluent-kafka + OTel per CPU-second" % name, "%.1fx" % m, m >= 15)
    for on, name in (("ituna-py-q2048", "Python, default queue"), ("ituna-py", "Python, queue of every span"),
                     ("ituna-lua", "Lua, queue of every span")):
        if on in rows and rows[on].get("hwm") and ok(BASE):
            d = max(rows[on]["hwm"]) - med(rows[BASE]["hwm"])
            line("ituna %s: traced peak RSS ≤ confluent-kafka's + 30 MB" % name, "%+.0f MB" % d, d <= 30)
    return "\n".join(out)


def source_commit():
    """The checkout's commit (and whether it had local changes) when the run began:
    what the venv's ituna and the build were made from."""
    def git(*a):
        return subprocess.run(["git", "-C", ROOT, *a], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "?"
    return commit + (" with local changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine(commit):
    def read(path, key=None):
        try:
            with open(path) as f:
                for line in f:
                    if key is None or line.startswith(key):
                        return line.split(":", 1)[-1].strip() if key else line.strip()
        except OSError:
            pass
        return "?"
    osr = "?"
    try:
        with open("/etc/os-release") as f:
            osr = dict(l.rstrip().split("=", 1) for l in f if "=" in l).get("PRETTY_NAME", "?").strip('"')
    except OSError:
        pass
    import confluent_kafka
    rdkafka = subprocess.run(["pkg-config", "--modversion", "rdkafka"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True).stdout.strip() or "?"
    try:
        from importlib.metadata import version
        peers = ", ".join("%s %s" % (p, version(p)) for p in (
            "kafka-python", "confluent-kafka", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"))
    except Exception:
        peers = "?"
    return [
        ("CPU", "%s, %d logical CPUs" % (read("/proc/cpuinfo", "model name"), os.cpu_count() or 0)),
        ("memory", read("/proc/meminfo", "MemTotal")),
        ("OS", "%s, Linux %s" % (osr, platform.release())),
        ("Python", platform.python_version()),
        ("Kafka", "Apache Kafka 4.1.1 (tools/kafka.sh, KRaft, one node, 127.0.0.1)"),
        ("librdkafka", "ituna: the system's %s; confluent-kafka: its wheel's %s" % (
            rdkafka, confluent_kafka.libversion()[0])),
        ("peers", peers),
        ("ituna", "commit %s (when the run began)" % commit),
    ]


def write_markdown(path, args, rows, cases, results, mach, load0, load1, started):
    rounds = args.rounds
    raw = ["| round | case (order run) | CPU µs/msg | msgs/s wall | p50/p99 µs | peak RSS MB | spans | note |",
           "|---|---|---|---|---|---|---|---|"]
    for r in range(rounds):
        for c in results["_order"][r]:
            x = results[c].get(r) or {}
            if "cpu_s" in x:
                raw.append("| %d | %s | %.1f | %.0f | %.0f / %.0f | %.0f | %d/%d | %s |" % (
                    r + 1, c, x["cpu_s"] / x["n"] * 1e6, x["n"] / x["wall_s"], x["lat_p50_us"], x["lat_p99_us"],
                    x["hwm_mb"], x["spans_received"], x["spans_expected"], x.get("problem", "")))
            else:
                raw.append("| %d | %s | - | - | - | - | - | %s |" % (r + 1, c, x.get("error", "not run")))
    text = """# Kafka hop benchmarks

Produced by `python3 bench/kafka_peers.py %s` on %s (%.0f s).
%d messages a case a round (plus %d warm-up messages before the clocks start), %d rounds,
cases interleaved: every round runs each case once, in a fresh process, in an order
rotated from round to round, so a ratio compares cases that ran minutes apart.

One hop: consume an order from a one-partition topic, a CONSUMER span, two child spans,
publish the order on with a PRODUCER span (4 spans a message). Traced cases export
OTLP/HTTP protobuf to a sink in another process, which checks that every span arrived;
the measured window ends once every message is delivered and every span exported.

- **CPU µs/msg**: process CPU time (user + system, all threads, export threads
  included) over the measured window, per message; median of the rounds.
- **msgs/CPU-s**: its inverse. **msgs/s wall**: messages over the window's wall time.
- **in-hop p50/p99**: per message, wall time from the consumer handing it out to the
  hop being done with it (published, span ended, offset stored); medians of the rounds.
- **peak RSS**: VmHWM at the end (range over the rounds).
- **Ratios**: median over rounds of the per-round ratio (range in brackets). CPU vs
  confluent = CPU/msg divided by confluent-kafka untraced's (lower is better); vs
  confluent+OTel and vs seed = messages per CPU-second divided by theirs (higher is better).

## Results

%s

## Goals (issue 14)

%s

## Machine

%s

Load average before / after the run: %s / %s. The machine's 2 cores are shared with the
broker's JVM, the sink and, during development, other builds: absolute figures move
between runs by tens of percent; the interleaved per-round ratios move much less.

## How each case is written

- ituna Python / Lua / C: `bench/peers/hop_ituna.py`, `hop_ituna.lua` (run by
  `ituna-lua`), `hop_ituna.c`; untraced = the same program with `OTEL_SDK_DISABLED=true`.
  The tracer takes its exporter from `OTEL_EXPORTER_OTLP_*`; its queue holds every span
  of the run (`OTEL_BSP_MAX_QUEUE_SIZE`), the policy the SDK peers get, so no traced case
  drops spans and the CPU figures compare like with like. "default queue (2048)" is the
  same Python hop with ituna's default queue: the memory goal's case, marked if it drops.
- confluent-kafka: `bench/peers/hop_confluent.py`, producer with ituna's defaults
  (idempotent, acks=all, linger.ms=5), `poll(0)` after each produce, offsets stored after
  the hop; `--otel` adds opentelemetry-sdk as Kafka instrumentations do (context in the
  headers, the same messaging attributes, BatchSpanProcessor with a queue holding every
  span of the run so that nothing drops, OTLP/HTTP protobuf exporter).
- the seed's stack: `bench/peers/hop_seed.py`, kafka-python with its defaults and
  opentelemetry-sdk, the carrier as a JSON string inside the payload, one flush at the end.

## Every run

%s
""" % (" ".join(sys.argv[1:]), started, time.time() - results["_t0"], args.messages, args.warm, rounds,
       table(rows, cases), goals(rows) or "(not enough cases ran to judge the goals)",
       "\n".join("- **%s**: %s" % kv for kv in mach), load0, load1, "\n".join(raw))
    with open(path, "w") as f:
        f.write(text)


# ---- main -----------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=20000, help="measured messages a case a round")
    ap.add_argument("--warm", type=int, default=200, help="messages handled before the clocks start")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of: " + ", ".join(CASES))
    ap.add_argument("--bootstrap", help="use this running broker instead of starting one")
    ap.add_argument("--port", type=int, default=14092, help="port of the broker it starts")
    ap.add_argument("--sink-port", type=int, default=14318, help="port of the OTLP sink (0: any free one)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="CMake build dir for ituna-lua and the C hop")
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"), help="where to write the report")
    ap.add_argument("--strict", action="store_true", help="exit 1 if any case was marked")
    args = ap.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for c in cases:
        if c not in CASES:
            ap.error("unknown case %r" % c)
    if os.environ.get("ITUNA_BENCH_IN_VENV") != "1":
        os.environ["ITUNA_BENCH_COMMIT"] = source_commit()
        ensure_venv()
        os.environ["ITUNA_BENCH_IN_VENV"] = "1"
        os.execv(VPY, [VPY, os.path.abspath(__file__)] + sys.argv[1:])
    binaries = ensure_build(args.build) if any(CASES[c][1] in ("lua", "c") for c in cases) else (None, None)

    services = Services(args)

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load0 = "%.2f %.2f %.2f" % os.getloadavg()
    run_id = "%x" % (int(time.time()) % 0xFFFFFF)
    results = {c: {} for c in cases}
    results["_order"], results["_t0"] = [], time.time()
    created = []
    try:
        services.start()
        for r in range(args.rounds):
            k = r % len(cases)
            order = cases[k:] + cases[:k]
            results["_order"].append(order)
            plan = [(c, "hop-%s-r%d-%s-in" % (run_id, r, c), "hop-%s-r%d-%s-out" % (run_id, r, c)) for c in order]
            log("round %d/%d: filling %d input topics with %d orders" % (r + 1, args.rounds, len(plan),
                                                                          args.warm + args.messages))
            fill_topics(services.bootstrap, plan, args.warm + args.messages, seed=r)
            created += [t for _, i, o in plan for t in (i, o)]
            for c, in_topic, out_topic in plan:
                svc = "hop-%s-%s-r%d" % (run_id, c, r)
                res = run_case(c, r, in_topic, out_topic, svc, services, args, binaries)
                results[c][r] = res
                if "cpu_s" in res:
                    log("round %d %-15s %7.1f µs/msg CPU %8.0f msg/s wall  p50 %5.0f µs  RSS %4.0f MB%s" % (
                        r + 1, c, res["cpu_s"] / max(res["n"], 1) * 1e6, res["n"] / res["wall_s"],
                        res["lat_p50_us"], res["hwm_mb"], ("  ** " + res["problem"]) if "problem" in res else ""))
                else:
                    log("round %d %-15s ** %s" % (r + 1, c, res["error"]))
        if args.bootstrap and created:
            delete_topics(services.bootstrap, created)
    finally:
        services.stop()
    load1 = "%.2f %.2f %.2f" % os.getloadavg()
    rows = summarise(results, cases, args.rounds)
    print()
    print("%d messages x %d rounds (interleaved), real Kafka at %s" % (args.messages, args.rounds, services.bootstrap))
    print(table(rows, cases))
    print()
    print(goals(rows))
    commit = os.environ.get("ITUNA_BENCH_COMMIT") or source_commit()
    write_markdown(args.out, args, rows, cases, results, machine(commit), load0, load1, started)
    print("\nwrote %s" % args.out)
    marked = [c for c in cases if "mark" in rows[c]]
    if marked:
        log("marked (not ranked): " + ", ".join(marked))
        if args.strict:
            sys.exit(1)


if __name__ == "__main__":
    main()
