"""How far behind replication is: what waits in Redis, since when, and when each destination last got a copy.

Read from Redis by `read()` for `s3s3 status` and, every few seconds in a
thread of their own (`Watcher`), for the listener's /metrics: a scrape never
waits on Redis, and a Redis that does not answer leaves the backlog out of
the scrape rather than showing a stale one as current.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import redis

from s3s3 import names
from s3s3.config import Mode, PubSub
from s3s3.state.stamps import last_copies

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0  # how often the listener reads the backlog for /metrics; older than 3x: not shown


@dataclass(frozen=True)
class Backlog:
    """What waits in Redis for the listeners, in one delivery mode."""

    mode: Mode
    waiting: int | None = None  # stream: entries not yet delivered (the group's lag); list: the queue's length
    pending: int | None = None  # stream: delivered and not acknowledged; list: in processing lists
    oldest_pending_seconds: float | None = None  # stream: the age of the oldest entry still pending
    consumers: int | None = None  # stream: listeners registered in the group
    gaps: int = 0  # pubsub: periods recorded while a listener was disconnected (s3s3:gaps)
    dead_letters: int = 0  # entries in s3s3:failed
    last_copied: dict[str, float] = field(default_factory=dict)  # destination -> when its last copy landed

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": str(self.mode), "waiting": self.waiting, "pending": self.pending,
            "oldest_pending_seconds": self.oldest_pending_seconds, "consumers": self.consumers,
            "gaps": self.gaps, "dead_letters": self.dead_letters, "last_copied": dict(self.last_copied),
        }  # fmt: skip


def read(client: redis.Redis, pubsub: PubSub, *, consumer: str | None = None) -> Backlog:
    """The backlog as Redis holds it now (list mode: one consumer's processing list, if named, else all)."""
    base = Backlog(pubsub.mode, dead_letters=int(client.xlen(names.DEADLETTER)), last_copied=last_copies(client))
    if pubsub.mode is Mode.STREAM:
        return _stream(client, pubsub, base)
    if pubsub.mode is Mode.LIST:
        return _list(client, pubsub, consumer, base)
    return replace(base, gaps=int(client.xlen(names.GAPS)))


def _stream(client: redis.Redis, pubsub: PubSub, base: Backlog) -> Backlog:
    try:
        groups: list[dict[str, Any]] = client.xinfo_groups(pubsub.stream)
    except redis.ResponseError:  # no such stream yet: nothing was ever announced
        return replace(base, waiting=0, pending=0, consumers=0)
    group = next((g for g in groups if _text(g["name"]) == pubsub.group), None)
    if group is None:
        return replace(base, waiting=int(client.xlen(pubsub.stream)), pending=0, consumers=0)
    oldest = None
    if group["pending"]:
        summary: dict[str, Any] = client.xpending(pubsub.stream, pubsub.group)
        first = _text(summary["min"]) if summary.get("min") else None
        if first:
            oldest = max(0.0, time.time() - int(first.split("-")[0]) / 1000)
    lag = group.get("lag")  # Redis 7: entries not yet delivered to the group (None when it cannot tell)
    return replace(base, waiting=None if lag is None else int(lag), pending=int(group["pending"]),
                   oldest_pending_seconds=oldest, consumers=int(group["consumers"]))  # fmt: skip


def _list(client: redis.Redis, pubsub: PubSub, consumer: str | None, base: Backlog) -> Backlog:
    if consumer is not None:
        lists = [names.processing_list(pubsub.list, consumer)]
    else:
        lists = [_text(k) for k in client.scan_iter(match=names.processing_list(pubsub.list, "*"), count=1000)]
    pending = sum(int(client.llen(name)) for name in lists)
    return replace(base, waiting=int(client.llen(pubsub.list)), pending=pending)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class Watcher:
    """Reads the backlog every `refresh` seconds in a thread of its own; `current()` never touches Redis."""

    def __init__(
        self, client: redis.Redis, pubsub: PubSub, consumer: str | None = None, *, refresh: float = REFRESH_SECONDS
    ) -> None:
        self.client = client
        self.refresh = refresh
        self.pubsub = pubsub
        self.consumer = consumer
        self._reading: tuple[float, Backlog] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="s3s3-backlog", daemon=True)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def current(self) -> Backlog | None:
        """The last reading, if it is recent enough to be shown; None while Redis does not answer."""
        reading = self._reading
        if reading is None or time.monotonic() - reading[0] > 3 * self.refresh:
            return None
        return reading[1]

    def _run(self) -> None:
        while True:
            try:
                self._reading = (time.monotonic(), read(self.client, self.pubsub, consumer=self.consumer))
            except redis.RedisError as e:
                logger.debug("Could not read the backlog: %s", e)
            if self._stop.wait(self.refresh):
                return
