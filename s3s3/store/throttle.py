"""How fast a store may be asked: `max_requests_per_second`, lowered when the store throttles, grown back after.

Stores throttle by request rate (AWS answers 503 SlowDown per prefix, some
providers cap requests per source address), and retrying each throttled
request on its own, as every process does, keeps a fleet over the limit
together. So every request either transport sends first waits for its turn
(`Throttle.before`), and every throttled answer (`Throttle.answered`) lowers
the rate: multiplicatively, at most once a `Pace.cooldown` (the answers of
requests already in flight say nothing new), never below `Pace.floor`. While
no throttling is seen it grows back additively to the configured rate.

The turn-taking is a `RequestLimit`: `LocalLimit` holds the rate in this
process; the services hand a store one shared through Redis (the copy engine
is handed its Guard the same way), so every process using the store backs
off together. A store without `max_requests_per_second` has no limit, and a
request pays one attribute test.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

# What a store answers when asked too fast: the status, or the error code (AWS, Ceph and MinIO say SlowDown).
THROTTLING_STATUSES = frozenset({429, 503})
THROTTLING_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
                              "TooManyRequests", "TooManyRequestsException", "RequestThrottled"})  # fmt: skip


@dataclass(frozen=True)
class Pace:
    """The rate policy of one store: its most requests per second, and how throttling moves the rate."""

    most: float  # max_requests_per_second
    decrease: float = 0.7  # a throttled answer multiplies the rate by this
    increase: float = 0.05  # each second without throttling adds this share of `most`
    cooldown: float = 1.0  # seconds after a decrease during which the rate neither falls again nor grows

    @property
    def floor(self) -> float:
        """The rate never falls below this: a twentieth of the most, at least one request a second."""
        return max(1.0, self.most / 20)


def throttling(status: int, code: str) -> bool:
    """True for an answer that says the store is being asked too fast."""
    return status in THROTTLING_STATUSES or code in THROTTLING_CODES


class RequestLimit(Protocol):
    """Takes turns for one store's requests: per process (`LocalLimit`) or shared by a fleet (s3s3.state)."""

    def wait(self) -> None:
        """Return when this request may be sent."""

    def throttled(self) -> None:
        """The store answered that it is asked too fast: lower the rate."""

    @property
    def rate(self) -> float:
        """The rate in force now, in requests per second."""


class LocalLimit:
    """The rate held in this process: requests are spaced 1/rate apart, whichever thread sends them."""

    def __init__(self, pace: Pace) -> None:
        self.pace = pace
        self._rate = pace.most
        self._next = 0.0  # when the next request may go (monotonic seconds)
        self._grown = self._lowered = -pace.cooldown  # when the rate last grew, was last lowered
        self._lock = threading.Lock()
        self.sleep = time.sleep  # tests shrink waits by replacing these two
        self.now = time.monotonic

    @property
    def rate(self) -> float:
        with self._lock:
            return self._rate

    def wait(self) -> None:
        with self._lock:
            now = self.now()
            self._grow(now)
            start = max(self._next, now)
            self._next = start + 1 / self._rate
        if start > now:
            self.sleep(start - now)

    def throttled(self) -> None:
        with self._lock:
            now = self.now()
            self._grow(now)
            if now - self._lowered >= self.pace.cooldown:
                self._rate = max(self.pace.floor, self._rate * self.pace.decrease)
                self._lowered = now

    def _grow(self, now: float) -> None:
        since = max(self._grown, self._lowered + self.pace.cooldown)
        if now > since and self._rate < self.pace.most:
            self._rate = min(self.pace.most, self._rate + self.pace.increase * self.pace.most * (now - since))
        self._grown = max(self._grown, now)


class Throttle:
    """What a store's transport asks before each request and tells after each answer: its limit, if any."""

    def __init__(self, limit: RequestLimit | None = None) -> None:
        self.limit = limit
        self.throttled = 0  # throttled answers this process saw, limited or not

    @classmethod
    def of(cls, most: int) -> Throttle:
        """The throttle of a store with `max_requests_per_second = most` (0: none), held in this process."""
        return cls(LocalLimit(Pace(most)) if most else None)

    @property
    def rate(self) -> float | None:
        """The rate in force (None: no limit)."""
        return None if self.limit is None else self.limit.rate

    def use(self, limit: RequestLimit) -> None:
        """Take turns through `limit` from now on (one shared by the fleet, say); only where a limit is set."""
        if self.limit is not None:
            self.limit = limit

    def before(self) -> None:
        """Wait for this request's turn (nothing to wait for without a limit)."""
        limit = self.limit
        if limit is not None:
            limit.wait()

    def answered(self, status: int, code: str = "") -> None:
        """Note an error answer: one that says the store is asked too fast lowers the rate."""
        if throttling(status, code):
            self.throttled += 1
            limit = self.limit
            if limit is not None:
                limit.throttled()
