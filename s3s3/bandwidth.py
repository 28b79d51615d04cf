"""A cap on the bytes a process sends per second, shared by every copy in it (`bwlimit`).

One token bucket for the whole process, as the memory budget is: every copy
takes tokens for the bytes it is about to send (a block of a streamed body, a
part or small object held in memory) and waits while the bucket is in debt.
A take runs the bucket into debt and waits until the debt is paid, so the
rate holds over any stretch longer than a quarter of a second plus one
part, while taking costs one lock per megabyte, never per byte.
"""

from __future__ import annotations

import threading
import time

BURST_SECONDS = 0.25  # tokens a quiet bucket saves up: a quarter of a second's worth


class Bandwidth:
    """Bytes per second for all the process's copies together; a rate of 0 is no limit."""

    def __init__(self, rate: int = 0) -> None:
        self._lock = threading.Lock()
        self.set_rate(rate)

    def set_rate(self, rate: int) -> None:
        """Cap the process at `rate` bytes per second from now on (0: no cap)."""
        with self._lock:
            self.rate = rate
            self._tokens = rate * BURST_SECONDS
            self._last = time.monotonic()

    def take(self, size: int) -> None:
        """Account for `size` bytes about to be sent: wait until the process may send them."""
        if not self.rate:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.rate * BURST_SECONDS, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= size
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait:
            time.sleep(wait)


LIMIT = Bandwidth()  # the process's one cap: set from [pubsub] bwlimit or --bwlimit
