"""A stdio server's stderr, read as it is written, keeping only its last words for the report."""

from __future__ import annotations

import contextlib
import os
from types import TracebackType
from typing import TextIO

import anyio

# How much of the end of the stream is kept: a traceback's last line, or a one-line complaint, fits many
# times over; a server that logs for days costs no more.
TAIL_BYTES = 4096
# One read's size: a pipe's whole buffer on Linux.
_READ_BYTES = 65536


class StderrTail:
    """A pipe to hand a child as its stderr, drained as the child writes (a full pipe would stall it), of
    which only the last `TAIL_BYTES` are kept. POSIX only, as the gateway is.

    ``with StderrTail() as tail:`` opens it; pass `writer` as the child's stderr, call `spawned` once the
    child has its copy, run `drain` in a task while it lives, and read `last_line` after.
    """

    def __init__(self) -> None:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        self._read_end = read_end
        self.writer: TextIO = open(write_end, "w", encoding="utf-8", errors="replace")  # noqa: SIM115
        self._tail = b""

    def __enter__(self) -> StderrTail:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.spawned()
        os.close(self._read_end)

    def spawned(self) -> None:
        """Close the gateway's own copy of the write end (the child has its own): end-of-file then comes when
        the child's copies close."""
        if not self.writer.closed:
            self.writer.close()

    def _read_available(self) -> bool:
        """Keep what can be read now; False at end-of-file."""
        while True:
            try:
                chunk = os.read(self._read_end, _READ_BYTES)
            except BlockingIOError:
                return True
            if not chunk:
                return False
            self._tail = (self._tail + chunk)[-TAIL_BYTES:]

    async def drain(self) -> None:
        """Read until end-of-file (or cancellation)."""
        while self._read_available():
            await anyio.wait_readable(self._read_end)

    def last_line(self) -> str | None:
        """The last non-empty line written so far (what is still in the pipe included), or None."""
        with contextlib.suppress(OSError):
            self._read_available()
        lines = [line.strip() for line in self._tail.decode("utf-8", errors="replace").splitlines() if line.strip()]
        return lines[-1] if lines else None
