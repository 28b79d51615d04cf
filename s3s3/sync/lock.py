"""The bucket sync's lock: two runs on the same buckets never work at once.

A Redis lock (redis-py's own) with a TTL that the running job renews; a run that
dies leaves no lock beyond its TTL. The lock's token says who holds it and
since when, so a second run can say "already running since ...".
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence

import redis
from redis.lock import Lock

from s3s3 import names
from s3s3.errors import LockHeld
from s3s3.store import Store

logger = logging.getLogger(__name__)

TTL = 60.0  # seconds a lock outlives a job that stopped renewing it


def lock_name(source: Store, dests: Sequence[Store], shard: tuple[int, int] = (0, 1)) -> str:
    """One lock per set of buckets, named by where they live, and per --shard I/N.

    The set ignores direction, so a --reverse restore and a sync of the same
    buckets never run at once either.
    """
    name = names.LOCK_PREFIX + buckets_hash(source, dests)
    # Shards share no key, so a fleet's N shards run at once; one shard still runs once.
    return name if shard[1] == 1 else f"{name}:{shard[0]}/{shard[1]}"


def buckets_hash(source: Store, dests: Sequence[Store]) -> str:
    """A short name for a set of buckets, by where they live (direction ignored)."""
    endpoints = [store.endpoint for store in (source, *dests)]
    places = sorted(f"{e.endpoint_url or 'aws'}/{e.bucket}/{e.prefix}" for e in endpoints)
    return hashlib.sha1(json.dumps(places).encode()).hexdigest()[:16]


class SyncLock:
    """Hold the lock for a `with` block, renewing it in a background thread."""

    def __init__(self, client: redis.Redis, name: str, ttl: float | None = None) -> None:
        self.client = client
        self.name = name
        self.ttl = ttl or TTL  # read at run time, so tests can shrink TTL
        self.lost = threading.Event()  # set when renewal failed: another run may start
        self._lock = Lock(client, name, timeout=self.ttl, thread_local=False)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> SyncLock:
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": _now()}
        if not self._lock.acquire(blocking=False, token=json.dumps(holder)):
            raise LockHeld(self._held_by())
        self._renewer = threading.Thread(target=self._renew, name="s3s3-lock", daemon=True)
        self._renewer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        try:
            self._lock.release()
        except (redis.RedisError, redis.exceptions.LockError) as e:
            logger.warning("Could not release the lock %r (it expires by itself): %s", self.name, e)

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self._lock.reacquire()
            except (redis.RedisError, redis.exceptions.LockError) as e:
                logger.error("Lost the lock %r: %s; another run may start", self.name, e)
                self.lost.set()
                return

    def _held_by(self) -> str:
        try:
            token = self.client.get(self.name)
            holder = json.loads(token) if token else {}
        except (redis.RedisError, ValueError):
            holder = {}
        since = holder.get("since", "an unknown time")
        who = f" (host {holder['host']}, pid {holder['pid']})" if "host" in holder else ""
        return f"already running since {since}{who}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
