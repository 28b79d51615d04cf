"""Memory for object data: one budget for the whole process, and buffers that go back to the OS.

Copies stream, but each part (or small object) is held in memory between
reading it and sending it. Counting those bytes against one budget keeps peak
memory flat however many large copies run at once.
"""

from __future__ import annotations

import ctypes
import threading

MEMORY_BUDGET = 64 * 1024 * 1024  # object bytes held in memory by all copies together


class MemoryBudget:
    """Bytes of object data held in memory at once, by every copy in the process together.

    Each part (or small object) is counted from before it is read until it is
    sent, so peak memory stays near the limit whatever the objects' sizes and
    however many copies run at once. A holder never waits on anything but its
    own upload, so holders always make progress and free what they hold.
    """

    def __init__(self, limit: int) -> None:
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


BUDGET = MemoryBudget(MEMORY_BUDGET)  # the process's one budget


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
