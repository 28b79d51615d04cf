"""Ending the work of announcements: their copies' registrations ended together, then their acknowledgements.

The listener registers the copies of every batch of announcements it reads
in one Redis round trip (s3s3.state.overlap), before any starts. An
announcement whose copies are done waits here, with the others done
meanwhile, until a batch is full, nothing else is being copied, or it has
waited SETTLE_SECONDS (the listener looks at least once per poll). Then
their registrations are ended in one round trip, each copy that overlapped
another copy of its key is proven (the source still holds what it copied)
or copied again, and only then are the announcements acknowledged,
together. A burst costs a few round trips per batch instead of three per
key, and the guarantee stands: an announcement is acknowledged only once
every destination holds the newest version of its keys.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from s3s3.listen.delivery import Delivery, Message
from s3s3.state.overlap import Overlaps, Ticket
from s3s3.store import Store

logger = logging.getLogger(__name__)

SETTLE_BATCH = 64  # announcements settled together at most
SETTLE_SECONDS = 0.05  # the longest an announcement waits for others to settle with, while copies run


@dataclass
class Copy:
    """One copy of an announcement: where, its registration, and the source ETag it wrote (None: nothing)."""

    dest: Store
    key: str
    ticket: Ticket | None  # None: not registered (no Redis, or a delete)
    copied: str | None = None


@dataclass
class Done:
    """An announcement whose copies are all done: to be settled, then acknowledged (or given back)."""

    message: Message
    kept: bool  # every failure of it is in the dead-letter stream; False: give it back, never acknowledge
    copies: list[Copy] = field(default_factory=list)
    since: float = field(default_factory=time.monotonic)


class Settler:
    """Ends registrations and acknowledges announcements in batches, once their copies are done and proven.

    `again(dest, key, copied)` proves a copy that overlapped another (the
    source moved on from `copied`: copy again) and says whether its outcome
    is kept (False: the announcement must be given back).
    """

    def __init__(
        self,
        delivery: Delivery,
        guard: Overlaps | None,
        again: Callable[[Store, str, str], bool],
        *,
        batch: int = SETTLE_BATCH,
        seconds: float = SETTLE_SECONDS,
    ) -> None:
        self.delivery = delivery
        self.guard = guard
        self.again = again
        self.batch = batch
        self.seconds = seconds
        self._lock = threading.Lock()
        self._waiting: list[Done] = []

    def add(self, done: Done) -> None:
        """`done` is ready: settled now if the batch is full or its oldest has waited long enough."""
        with self._lock:
            self._waiting.append(done)
            due = len(self._waiting) >= self.batch or time.monotonic() - self._waiting[0].since > self.seconds
        if due:
            self.flush()

    def due(self) -> None:
        """Settle what has waited long enough (the listener asks at least once per poll)."""
        with self._lock:
            due = bool(self._waiting) and time.monotonic() - self._waiting[0].since > self.seconds
        if due:
            self.flush()

    def flush(self) -> None:
        """Settle and acknowledge everything waiting."""
        with self._lock:
            batch, self._waiting = self._waiting, []
        if not batch:
            return
        self._prove(batch)
        self._acknowledge(batch)

    def _prove(self, batch: list[Done]) -> None:
        copies = [(done, c) for done in batch for c in done.copies if c.ticket is not None]
        if not copies or self.guard is None:
            return
        overlapped = self.guard.end_many([c.ticket for _, c in copies if c.ticket is not None])
        for (done, c), over in zip(copies, overlapped, strict=True):
            if over and c.copied is not None:
                done.kept = self.again(c.dest, c.key, c.copied) and done.kept

    def _acknowledge(self, batch: list[Done]) -> None:
        # The delivery guarantee: acknowledged only now, every destination holding the newest version,
        # or its failure kept in the dead-letter stream; an announcement with a failure not kept goes back.
        kept = [done.message for done in batch if done.kept]
        try:
            if kept:
                self.delivery.ack_many(kept)
        except redis.RedisError as e:
            # Not acknowledged: delivered again, and copied again (harmless).
            logger.warning("Could not acknowledge %d announcement(s): %s", len(kept), e)
        for done in batch:
            if not done.kept:
                try:
                    self.delivery.release(done.message)
                except redis.RedisError as e:  # it stays in flight: delivered again after a reconnect or claim_idle
                    logger.warning("Could not give an announcement back: %s", e)
