"""The launcher's live progress as a person sees it. On a terminal (a real
pseudo-terminal from the pty module) the progress is one line updated in place
(carriage return + erase-line), its counts growing to the run's total, and the final
summary starts on a fresh line after it; off a terminal every update is a plain line
with no control characters; --no-progress prints none. Stand-in services
(fixtures/dummy_service.py: real processes, the real services' log lines, no Kafka)
keep it fast and independent of any broker."""
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import termios
import time

import pytest

from e2e_common import FIXTURES, launcher_env, processes_mentioning

SERVICES = ["website-ordering", "onsite-ordering", "direct-kitchen-ordering", "order-validation", "kitchen-service"]
ORDERS = 80  # the stand-ins place one order per 50 ms: ~2 s of ordering, several 0.5 s updates
CONFIG = """
[services]
website-ordering = python
onsite-ordering = python
order-validation = python
direct-kitchen-ordering = python
kitchen-service = python

[rates]
website-ordering = 2
onsite-ordering = 1
direct-kitchen-ordering = 1
"""
PROGRESS = re.compile(r"\[\s*(\d+\.\d)s\] placed (\d+) \([\d.]+/s\)  validated (\d+) \([\d.]+/s\)  rejected (\d+)  "
                      r"served (\d+) \([\d.]+/s\)  in flight (\d+)")
SUMMARY = re.compile(r"^Orders in [\d.]+ s: placed (\d+), served (\d+), rejected (\d+), unfinished (\d+)$", re.M)


@pytest.fixture
def stage(tmp_path):
    scripts = tmp_path / "scripts"
    (scripts / "python").mkdir(parents=True)
    (scripts / "lua").mkdir()
    for s in SERVICES:
        shutil.copy(os.path.join(FIXTURES, "dummy_service.py"), scripts / "python" / f"{s}.py")
    cfg = tmp_path / "test.ini"
    cfg.write_text(CONFIG)
    spool = tmp_path / "spool"
    spool.mkdir()
    args = ["--scripts-dir", str(scripts), "--config", str(cfg), "--bootstrap", "127.0.0.1:9", "--no-topic-setup",
            "--run-dir", str(tmp_path / "run"), "--orders", str(ORDERS)]
    return tmp_path, args, launcher_env({"DUMMY_SPOOL": str(spool)})


def run_on_pty(args, env, timeout=90):
    """Run the launcher with stdout on a pseudo-terminal (stderr on a pipe); return
    (exit code, every byte it wrote to the terminal, stderr)."""
    master, slave = pty.openpty()
    # Raw output: no "\n" -> "\r\n" mapping, so the bytes are exactly what the launcher wrote.
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.ONLCR
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    p = subprocess.Popen([sys.executable, "-m", "ituna_restaurant"] + args, env=env, stdin=subprocess.DEVNULL,
                         stdout=slave, stderr=subprocess.PIPE, cwd=os.path.dirname(args[args.index("--run-dir") + 1]))
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if p.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            out += chunk
        else:
            p.kill()
            pytest.fail(f"launcher still running after {timeout} s; output so far:\n{out.decode(errors='replace')}")
        rc = p.wait(timeout=30)
        err = p.stderr.read().decode("utf-8", "replace")
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()
    return rc, out.decode("utf-8", "replace"), err


def counts(m):
    return tuple(int(x) for x in m.groups()[1:])


def test_progress_is_one_line_updated_in_place_on_a_terminal(stage):
    tmp, args, env = stage
    rc, out, err = run_on_pty(args, env)
    assert rc == 0, out + err
    lines = out.split("\n")
    # every progress update went to the terminal as "\r" + erase-line + text, never as a line of its own
    assert len(PROGRESS.findall(out)) == out.count("\r\x1b[K["), repr(out[-2000:])
    assert not any(PROGRESS.match(line) for line in lines), "a progress update printed as a plain line"
    live = [line for line in lines if "\r\x1b[K" in line]
    assert len(live) == 1, "progress took %d terminal lines, not one:\n%r" % (len(live), live)
    updates = live[0].split("\r\x1b[K")
    assert updates[0] == "", repr(live[0][:200])  # the line starts with the first update
    updates = updates[1:]
    assert len(updates) >= 3, f"only {len(updates)} updates in a run of {ORDERS} orders: {updates}"
    seen = [PROGRESS.fullmatch(u) for u in updates]
    assert all(seen), [u for u, m in zip(updates, seen) if not m]
    # the clock and the counts only grow, up to the whole run
    clock = [float(m.group(1)) for m in seen]
    assert clock == sorted(clock) and clock[-1] > clock[0]
    placed, validated, rejected, served, in_flight = zip(*(counts(m) for m in seen))
    assert list(placed) == sorted(placed) and list(served) == sorted(served)
    assert placed[0] < ORDERS and served[0] < placed[-1], "no update showed the run in progress"
    assert placed[-1] == ORDERS and served[-1] + rejected[-1] == ORDERS and in_flight[-1] == 0, updates[-1]
    # the summary still prints, on lines of its own after the progress line
    m = SUMMARY.search(out)
    assert m, out
    assert out.index(live[0]) < m.start()
    assert [int(x) for x in m.groups()] == [ORDERS, served[-1], rejected[-1], 0]
    assert re.search(r"(?m)^Logs:   ", out)
    assert "\x1b" not in out[m.start():], "control characters in the summary"
    assert processes_mentioning(str(tmp)) == []


def test_off_a_terminal_progress_is_plain_lines(stage):
    tmp, args, env = stage
    r = subprocess.run([sys.executable, "-m", "ituna_restaurant"] + args + ["--progress-interval", "0.5"], env=env,
                       capture_output=True, text=True, timeout=90, cwd=str(tmp))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "\r" not in r.stdout and "\x1b" not in r.stdout, repr(r.stdout[:500])
    lines = r.stdout.splitlines()
    progress = [PROGRESS.fullmatch(line) for line in lines if PROGRESS.search(line)]
    assert all(progress), [line for line in lines if PROGRESS.search(line) and not PROGRESS.fullmatch(line)]
    assert len(progress) >= 3, r.stdout
    placed = [counts(m)[0] for m in progress]
    assert placed == sorted(placed) and placed[-1] == ORDERS
    m = SUMMARY.search(r.stdout)
    assert m and int(m.group(1)) == ORDERS and int(m.group(4)) == 0, r.stdout


def test_no_progress_on_a_terminal_prints_only_the_summary(stage):
    tmp, args, env = stage
    rc, out, err = run_on_pty(args + ["--no-progress"], env)
    assert rc == 0, out + err
    assert not PROGRESS.search(out) and "\x1b" not in out and "\r" not in out, repr(out[:500])
    m = SUMMARY.search(out)
    assert m and int(m.group(1)) == ORDERS, out
