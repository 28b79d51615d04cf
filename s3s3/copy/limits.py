"""What one process's copies may spend together: bytes sent per second, bytes held in memory, streams at once.

Each is one shared budget for every copy a process runs, whatever their
number and size: a `Limits` is built once per process by the service that
runs the copies (s3s3.services, from `bwlimit`) and handed to the copy engine
with every key; no executor reads a module global. Copies made without one
(the Python API) share `DEFAULT`, so they too are bounded together.
"""

from __future__ import annotations

import ctypes
import threading
import time
from dataclasses import dataclass, field

BURST_SECONDS = 0.25  # tokens a quiet bandwidth bucket saves up: a quarter of a second's worth
MEMORY_BUDGET = 64 * 1024 * 1024  # object bytes held in memory by all copies together
# Streamed parts at once in the whole process: past a few streams the stores
# and the GIL only share the same cores among more threads, and slow them all.
STREAMS_AT_ONCE = 8


class Bandwidth:
    """Bytes per second for all the process's copies together (`bwlimit`); a rate of 0 is no limit.

    One token bucket: every copy takes tokens for the bytes it is about to
    send (a block of a streamed body, a part or small object held in memory)
    and waits while the bucket is in debt. A take runs the bucket into debt
    and waits until the debt is paid, so the rate holds over any stretch
    longer than a quarter of a second plus one part, while taking costs one
    lock per megabyte, never per byte.
    """

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


class MemoryBudget:
    """Bytes of object data held in memory at once, by every copy in the process together.

    Copies stream, but each part (or small object) is held between reading it
    and sending it; it is counted from before it is read until it is sent, so
    peak memory stays near the limit whatever the objects' sizes and however
    many copies run at once. A holder never waits on anything but its own
    upload, so holders always make progress and free what they hold.
    """

    def __init__(self, limit: int = MEMORY_BUDGET) -> None:
        self.limit = limit
        self.used = 0
        self._cond = threading.Condition()

    def acquire(self, size: int) -> int:
        """Wait until `size` bytes (at most the whole budget) are free, take them, return how many."""
        size = min(size, self.limit)
        with self._cond:
            self._cond.wait_for(lambda: self.used + size <= self.limit)
            self.used += size
        return size

    def release(self, size: int) -> None:
        with self._cond:
            self.used -= size
            self._cond.notify_all()


@dataclass(frozen=True)
class Limits:
    """The budgets every copy of one process shares."""

    bandwidth: Bandwidth = field(default_factory=Bandwidth)
    memory: MemoryBudget = field(default_factory=MemoryBudget)
    streams: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(STREAMS_AT_ONCE))

    @classmethod
    def for_process(cls, bwlimit: int = 0) -> Limits:
        """The limits of a process that sends at most `bwlimit` bytes per second (0: no cap)."""
        return cls(bandwidth=Bandwidth(bwlimit))


DEFAULT = Limits()  # shared by copies made without limits of their own


def keep_big_buffers_off_the_heap() -> None:
    """Have glibc serve every part-sized buffer from mmap, so freeing it returns it to the OS.

    glibc raises its mmap threshold each time a large block is freed (up to 32
    MiB); from then on part buffers come from per-thread heaps that keep what is
    freed. Copying 8 objects of 64 MiB at once grew to 246 MiB RSS that way, and
    stays at 124 MiB with the threshold fixed (measured with bench/run.py). A
    fixed threshold turns the raising off. Elsewhere than glibc, nothing to do.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 1024 * 1024)
    except (OSError, AttributeError):
        pass


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
