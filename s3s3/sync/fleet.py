"""A bucket sync across a fleet: `--split N` puts one task per key range on a Redis stream, `--work` does them.

The tasks live in a stream read through a consumer group, as the listener's
announcements do in stream mode: a task is acknowledged only once its whole
range is synced, a worker refreshes its claim while it works, and a task
whose worker died is claimed by another once it has been idle `claim_idle`
seconds. The totals of the whole sync add up in a Redis hash, read by
`s3s3 status --sync`.

A split writes N entries, whatever the bucket holds: the ranges come from a
few listing pages (s3s3.ranges), never from a listing of every key.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import redis

from s3s3 import names
from s3s3.errors import S3S3Error
from s3s3.retry import backoff
from s3s3.sync.ranges import KeyRange

logger = logging.getLogger(__name__)

REDIS_AWAY = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError)  # waited out, never fatal
BACKOFF_START, BACKOFF_CAP = 0.5, 30.0  # seconds before asking Redis again, doubling to the cap
# What each range's sync adds to the split's totals (versions: at destinations with versions = all).
TOTALS = (
    "checked", "copied", "skipped", "missing", "failed", "deleted", "bytes", "versions_copied", "markers_replayed",
)  # fmt: skip


class SplitOpen(S3S3Error):
    """--split while tasks of an earlier split are still open."""


@dataclass(frozen=True)
class Task:
    """One key range of a split sync."""

    split: str
    index: int  # 0-based
    count: int
    prefix: str  # the --prefix the split was made under (below each endpoint's prefix)
    range: KeyRange

    def fields(self) -> dict[str, str]:
        end = self.range.end
        return {"split": self.split, "index": str(self.index), "count": str(self.count), "prefix": self.prefix,
                "start_after": self.range.start_after, "end": "" if end is None else end,
                "last": "1" if end is None else "0"}  # fmt: skip

    @classmethod
    def of(cls, fields: dict[bytes, bytes]) -> Task:
        text = {k.decode(): v.decode("utf-8", "surrogateescape") for k, v in fields.items()}
        end = None if text["last"] == "1" else text["end"]
        return cls(text["split"], int(text["index"]), int(text["count"]), text["prefix"],
                   KeyRange(text["start_after"], end))  # fmt: skip

    def describe(self) -> str:
        return f"range {self.index + 1}/{self.count} {self.range.describe()}"


@dataclass(frozen=True)
class Sync:
    """Where a split sync of one set of buckets lives in Redis."""

    name: str  # names.SYNC_PREFIX + the buckets' hash

    # {name} is a hash tag: a Redis Cluster keeps both in one slot, as the transactions over them need.
    @property
    def tasks(self) -> str:
        return f"{{{self.name}}}:tasks"

    @property
    def summary(self) -> str:
        return f"{{{self.name}}}:summary"


def open_tasks(client: redis.Redis, sync: Sync) -> tuple[int, int]:
    """(tasks no worker has taken, tasks taken and not finished)."""
    try:
        groups: list[dict[str, Any]] = client.xinfo_groups(sync.tasks)
    except redis.ResponseError:  # no such stream: no split was made
        return 0, 0
    group = next((g for g in groups if g["name"] in (names.SYNC_GROUP, names.SYNC_GROUP.encode())), None)
    if group is None:
        return int(client.xlen(sync.tasks)), 0
    return int(group.get("lag") or 0), int(group["pending"])


def split(client: redis.Redis, sync: Sync, points: list[str], prefix: str, *, force: bool = False) -> str:
    """Put one task per range on the stream, replacing a finished split; return the split's id."""
    waiting, working = open_tasks(client, sync)
    if (waiting or working) and not force:
        raise SplitOpen(
            f"{waiting + working} task(s) of an earlier split are still open ({waiting} waiting, {working} "
            "being worked): run s3s3bucket --work to finish them, or --split again with --force to drop them"
        )
    ident = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
    bounds = ["", *points]
    count = len(points) + 1
    pipe = client.pipeline(transaction=True)
    pipe.delete(sync.tasks, sync.summary)
    for index in range(count):
        end = points[index] if index < len(points) else None
        task = Task(ident, index, count, prefix, KeyRange(bounds[index], end))
        pipe.xadd(sync.tasks, cast(Any, task.fields()))
    pipe.xgroup_create(sync.tasks, names.SYNC_GROUP, id="0")
    pipe.hset(sync.summary, mapping={"split": ident, "ranges": count, "started": repr(time.time()),
                                     "prefix": prefix, "points": json.dumps(points)})  # fmt: skip
    pipe.execute()
    return ident


@dataclass
class Worked:
    """What one --work process did."""

    ranges: int = 0
    ok: bool = True


def work(
    client: redis.Redis,
    sync: Sync,
    run: Callable[[Task], dict[str, int] | None],
    *,
    consumer: str,
    claim_idle: float,
    stop: threading.Event,
) -> Worked:
    """Take tasks until none is left, run each, and acknowledge it with its totals; return what was done.

    `run(task)` syncs the range and returns its totals (None when it was
    interrupted: the task stays pending, for another worker to finish).
    Waits while other workers hold tasks, to take over any whose worker dies.
    """
    worked, failures = Worked(), 0
    while not stop.is_set():
        try:
            entry = _claim(client, sync, consumer, claim_idle) or _next(client, sync, consumer)
            if entry is None:
                waiting, working = open_tasks(client, sync)
                if not waiting and not working:
                    return worked
        except REDIS_AWAY as e:  # a failover, say: the tasks are still there once Redis is back
            failures += 1
            _wait_for_redis(e, failures, stop)
            continue
        failures = 0
        if entry is None:
            stop.wait(min(1.0, claim_idle / 4))  # others work: take over if one of them dies
            continue
        entry_id, task = entry
        logger.info("Syncing %s of split %s", task.describe(), task.split)
        with _Heartbeat(client, sync, consumer, entry_id, claim_idle):
            totals = run(task)
        if totals is None:
            return worked
        if totals.get("failed") or totals.get("errors"):
            worked.ok = False
        if _finish(client, sync, entry_id, totals, stop):
            worked.ranges += 1
    return worked


def _finish(client: redis.Redis, sync: Sync, entry_id: bytes, totals: dict[str, int], stop: threading.Event) -> bool:
    """Add a task's totals and acknowledge it, in one transaction, trying again while Redis is away.

    False when stopped first: the task stays pending, and another worker does it again (harmless).
    """
    failures = 0
    while not stop.is_set():
        pipe = client.pipeline(transaction=True)
        for name in TOTALS:
            pipe.hincrby(sync.summary, name, totals.get(name, 0))
        pipe.hincrby(sync.summary, "ranges_done", 1)
        if totals.get("failed") or totals.get("errors"):
            pipe.hincrby(sync.summary, "ranges_failed", 1)
        pipe.hset(sync.summary, "updated", repr(time.time()))
        pipe.xack(sync.tasks, names.SYNC_GROUP, entry_id)
        try:
            pipe.execute()
            return True
        except REDIS_AWAY as e:
            failures += 1
            _wait_for_redis(e, failures, stop)
    return False


def _wait_for_redis(error: BaseException, failures: int, stop: threading.Event) -> None:
    wait = backoff(failures, BACKOFF_START, BACKOFF_CAP)
    logger.error("Cannot reach Redis (%s); retrying in %.1fs", error, wait)
    stop.wait(wait)


def _next(client: redis.Redis, sync: Sync, consumer: str) -> tuple[bytes, Task] | None:
    try:
        found = client.xreadgroup(names.SYNC_GROUP, consumer, {sync.tasks: ">"}, count=1)
    except redis.ResponseError as e:
        if "NOGROUP" in str(e):
            return None
        raise
    streams = cast("list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]", found or [])
    for _stream, entries in streams:
        for entry_id, fields in entries:
            return entry_id, Task.of(fields)
    return None


def _claim(client: redis.Redis, sync: Sync, consumer: str, claim_idle: float) -> tuple[bytes, Task] | None:
    """A task whose worker has not refreshed it for `claim_idle` seconds: it died."""
    try:
        answer = client.xautoclaim(sync.tasks, names.SYNC_GROUP, consumer, int(claim_idle * 1000), "0-0", count=1)
    except redis.ResponseError as e:
        if "NOGROUP" in str(e):
            return None
        raise
    claimed = cast("list[tuple[bytes, dict[bytes, bytes] | None]]", answer[1])
    for entry_id, fields in claimed:
        if fields:  # an entry deleted since is claimed with no fields
            logger.warning("Taking over a range left by a worker that stopped")
            return entry_id, Task.of(fields)
    return None


class _Heartbeat:
    """Refreshes this worker's claim on its task while it works, so that no other takes it over."""

    def __init__(self, client: redis.Redis, sync: Sync, consumer: str, entry_id: bytes, claim_idle: float) -> None:
        self.args = (client, sync, consumer, entry_id)
        self.every = max(claim_idle / 4, 0.1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="s3s3-task-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()

    def _beat(self) -> None:
        client, sync, consumer, entry_id = self.args
        while not self.stop.wait(self.every):
            try:
                client.xclaim(sync.tasks, names.SYNC_GROUP, consumer, 0, [entry_id], justid=True)
            except redis.RedisError as e:
                logger.warning("Could not refresh the claim on this range: %s", e)


def summary(client: redis.Redis, sync: Sync) -> dict[str, Any] | None:
    """The split sync's totals and its tasks' state, or None when no split was made."""
    found = cast("dict[bytes, bytes]", client.hgetall(sync.summary))
    if not found:
        return None
    text = {k.decode(): v.decode() for k, v in found.items()}
    waiting, working = open_tasks(client, sync)
    doc: dict[str, Any] = {"split": text["split"], "prefix": text.get("prefix", ""), "ranges": int(text["ranges"]),
                           "started": float(text["started"]), "waiting": waiting, "working": working}  # fmt: skip
    for name in ("ranges_done", "ranges_failed", *TOTALS):
        doc[name] = int(text.get(name, 0))
    doc["updated"] = float(text["updated"]) if "updated" in text else None
    return doc
