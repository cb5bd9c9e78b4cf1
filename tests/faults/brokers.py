"""A Kafka broker of the fault suite's own (tools/kafka.sh on a port of issue 12's
range, its own state directory), which the tests kill and restart by PID; never the
shared broker of the other tests."""
import os
import signal
import subprocess
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KAFKA_SH = os.path.join(REPO, "tools", "kafka.sh")
# The suite's broker port; ITUNA_FAULTS_KAFKA_PORT moves it (two checkouts testing at once).
PORT = int(os.environ.get("ITUNA_FAULTS_KAFKA_PORT", "12092"))


class OwnBroker:
    def __init__(self, port, state):
        self.port = port
        self.state = str(state)
        self.env = dict(os.environ, ITUNA_KAFKA_PORT=str(port), ITUNA_KAFKA_STATE=self.state,
                        ITUNA_KAFKA_WAIT="240")
        self.bootstrap = f"127.0.0.1:{port}"

    def _sh(self, cmd, timeout=300):
        r = subprocess.run(["bash", KAFKA_SH, cmd], env=self.env, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"kafka.sh {cmd}: {r.stderr[-2000:]}")
        return r.stdout.strip()

    @property
    def pid(self):
        with open(os.path.join(self.state, "kafka.pid")) as f:
            return int(f.read().strip())

    def start(self):
        self._sh("start")
        return self

    def resume(self):
        t0 = time.monotonic()
        self._sh("resume")
        return time.monotonic() - t0

    def kill(self, sig, timeout=60):
        """Send sig to the broker's PID and wait until it is gone."""
        pid = self.pid
        os.kill(pid, sig)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            # the broker is kafka.sh's child: reap it if it is ours
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)

    def stop(self):
        try:
            self._sh("stop", timeout=60)
        except Exception:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass
