"""Progress of a bucket sync on a terminal: keys and bytes done, rate, ETA. Nothing elsewhere."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Progress:
    """Counts what was listed for copying and what is done; redraws one line twice a second."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self.listed = self.queued = self.queued_bytes = self.done = self.done_bytes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Progress:
        if self.enabled:
            self._thread = threading.Thread(target=self._draw_until_stopped, name="s3s3-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()

    def saw(self, count: int = 1) -> None:
        with self._lock:
            self.listed += count

    def queue(self, size: int) -> None:
        with self._lock:
            self.queued += 1
            self.queued_bytes += size

    def finish(self, size: int) -> None:
        with self._lock:
            self.done += 1
            self.done_bytes += size

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.done_bytes / elapsed
        left = self.queued_bytes - self.done_bytes
        eta = f"{left / rate:.0f}s" if rate > 0 and left > 0 else "-"
        return (
            f"listed {self.listed} keys; copied {self.done}/{self.queued} "
            f"({_mib(self.done_bytes)}/{_mib(self.queued_bytes)} MiB) at {_mib(rate)} MiB/s, ETA {eta}   "
        )

    def _draw_until_stopped(self) -> None:
        while not self._stop.wait(0.5):
            self.stream.write("\r" + self.line())
            self.stream.flush()


def _mib(size: float) -> str:
    return f"{size / 1048576:.1f}"
