"""`RedisServer`: a real ``redis-server`` on loopback for tests of the shared tool cache.

On a free port, with persistence off and its own working directory, so a test starts from an empty Redis
and leaves nothing behind. It can be stopped, paused (SIGSTOP: connections stay open, nothing answers),
resumed and started again on the same port, as an outage does to replicas.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from chat_mcp_primer.testing._serving import free_port

# A redis-server starts listening in milliseconds; this bounds a start on a loaded machine.
START_TIMEOUT_S = 15.0
# How often a start looks whether the port accepts connections yet.
START_POLL_S = 0.01
# How long a stop waits for the process to exit before killing it.
STOP_TIMEOUT_S = 5.0


class RedisServerError(Exception):
    """``redis-server`` is not installed, or did not start."""


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:port``; a context manager (started on entry)."""

    def __init__(self, executable: str = "redis-server") -> None:
        found = shutil.which(executable)
        if found is None:
            raise RedisServerError(
                f"{executable} is not installed: install Redis (e.g. apt-get install redis-server, brew install redis)"
            )
        self._executable = found
        self.port = free_port()
        self._directory = Path(tempfile.mkdtemp(prefix="redis-test-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self._process is not None:
            raise RedisServerError("the redis-server is running already")
        arguments = [self._executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        arguments += ["no", "--dir", str(self._directory), "--protected-mode", "no", "--loglevel", "warning"]
        self._process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._accepts():
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                self._process = None
                raise RedisServerError(f"redis-server exited at start: {error.strip()[:500]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RedisServerError(f"redis-server did not listen within {START_TIMEOUT_S:g} s")
            time.sleep(START_POLL_S)

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=START_POLL_S):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """End the process (its data goes with it: persistence is off)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGCONT)  # a paused server cannot act on the signal that ends it
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def restart(self) -> None:
        """Stop and start again on the same port: an empty Redis, as after a crash without persistence."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing is answered, as a Redis stalled by the host."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, number: signal.Signals) -> None:
        if self._process is None:
            raise RedisServerError("the redis-server is not running")
        self._process.send_signal(number)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self._directory, ignore_errors=True)
