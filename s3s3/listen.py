"""The listener: copy every key announced on the Redis channel to every destination.

The loop reads like a job queue worker's: read with a timeout so a stop request
is seen within a second, hand each announcement to a bounded pool of copy
threads (when all are busy it stops reading: no unbounded queue), reconnect to
Redis with a backoff that doubles to a cap, and on SIGTERM finish the copies in
flight before returning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from s3s3.config import redact_url
from s3s3.copy import Outcome, copy_key, delete_key
from s3s3.errors import EXIT_OK, BadMessage
from s3s3.logs import log_outcome
from s3s3.messages import Event, parse
from s3s3.s3 import Bucket

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # longest wait for a message before the stop flag is looked at again


def connect_redis(url: str, **options: Any) -> redis.Redis:
    """A Redis client whose failures reach s3s3 instead of being retried out of sight.

    redis-py would otherwise reconnect and resubscribe by itself, and whatever
    was published in between would be lost without a word in the log.
    """
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=5,
        socket_keepalive=True,
        health_check_interval=10,
        retry=Retry(NoBackoff(), 0),
        **options,
    )


class Listener:
    """Subscribes to the channel and copies each announced key; `run()` until stopped."""

    backoff_start = 0.5  # seconds before the first reconnect to Redis
    backoff_cap = 30.0  # the longest wait between reconnects

    def __init__(
        self,
        source: Bucket,
        dests: Sequence[Bucket],
        redis_url: str,
        channel: str,
        *,
        workers: int = 8,
        verify_md5: bool = False,
        connect: Callable[[str], redis.Redis] = connect_redis,
    ) -> None:
        self.source = source
        self.dests = list(dests)
        self.redis_url = redis_url
        self.channel = channel
        self.workers = workers
        self.verify_md5 = verify_md5
        self.connect = connect
        self.stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(workers)
        self._inflight: dict[str, bool] = {}  # key -> announced again while copying
        self._lock = threading.Lock()
        self.on_outcome: Callable[[Outcome], None] = log_outcome

    def request_stop(self, signum: int = signal.SIGTERM, _frame: object = None) -> None:
        """Signal handler: first call finishes the copies in flight, second exits at once."""
        if self.stopping.is_set():
            os.write(2, b"s3s3: second stop signal, exiting without finishing copies in flight\n")
            os._exit(1)
        self.stopping.set()

    def run(self) -> int:
        """Listen until stopped; return the exit code."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="s3s3-copy")
        logger.info(
            "Listening on channel %r for %s -> %s with %d workers",
            self.channel,
            self.source.endpoint.label,
            ", ".join(d.endpoint.label for d in self.dests),
            self.workers,
        )
        try:
            self._loop(pool)
        finally:
            logger.info("Stopping: finishing the copies in flight")
            pool.shutdown(wait=True)
            logger.info("Stopped")
        return EXIT_OK

    def _loop(self, pool: ThreadPoolExecutor) -> None:
        delay = self.backoff_start
        lost_at: datetime | None = None
        while not self.stopping.is_set():
            try:
                pubsub = self._subscribe()
            except (redis.ConnectionError, redis.TimeoutError) as e:
                lost_at = lost_at or _now()
                delay = self._wait_to_reconnect(e, delay)
                continue
            if lost_at is not None:
                logger.error(
                    "Reconnected to Redis: announcements published from %s to %s were missed; "
                    "run s3s3bucket to catch up",
                    lost_at.isoformat(timespec="seconds"),
                    _now().isoformat(timespec="seconds"),
                )
                lost_at = None
            delay = self.backoff_start
            try:
                self._read(pubsub, pool)
            except (redis.ConnectionError, redis.TimeoutError) as e:
                lost_at = _now()
                logger.error("Lost the Redis connection at %s: %s", self.redis_safe_url, e)
            finally:
                _close(pubsub)

    def _subscribe(self) -> Any:
        pubsub = self.connect(self.redis_url).pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.channel)
        logger.info("Subscribed to %r at %s", self.channel, self.redis_safe_url)
        return pubsub

    def _read(self, pubsub: Any, pool: ThreadPoolExecutor) -> None:
        while not self.stopping.is_set():
            if not self._slots.acquire(timeout=POLL_SECONDS):
                continue  # every worker is busy: read nothing until one frees
            try:
                message = pubsub.get_message(timeout=POLL_SECONDS)
            except BaseException:
                self._slots.release()
                raise
            if message is None or message.get("type") != "message":
                self._slots.release()
                continue
            events = self._parse(message["data"])
            if not events:
                self._slots.release()
                continue
            pool.submit(self._handle, events)

    def _parse(self, raw: bytes) -> list[Event]:
        try:
            events = parse(raw, self.source.name)
        except BadMessage as e:
            logger.warning("Rejected an announcement: %s", e)
            return []
        prefix = self.source.endpoint.prefix
        kept = [e for e in events if e.key.startswith(prefix)]
        for event in events:
            if event not in kept:
                logger.warning("Rejected %r: not under the source prefix %r", event.key, prefix)
        return kept

    def _handle(self, events: list[Event]) -> None:
        try:
            for event in events:
                if event.action == "delete":
                    self._delete(event.key)
                else:
                    self._copy_once_at_a_time(event.key)
        except Exception:
            logger.exception("Unexpected error while copying %r", [e.key for e in events])
        finally:
            self._slots.release()

    def _copy_once_at_a_time(self, key: str) -> None:
        """Copy `key` everywhere; if it is announced again meanwhile, copy once more after."""
        with self._lock:
            if key in self._inflight:
                self._inflight[key] = True  # the copy in flight will run once more
                return
            self._inflight[key] = False
        while True:
            try:
                for dest in self.dests:
                    self.on_outcome(copy_key(self.source, dest, key, verify_md5=self.verify_md5))
            except BaseException:
                with self._lock:
                    del self._inflight[key]  # else every later announcement of it is taken for a repeat
                raise
            with self._lock:
                if not self._inflight[key]:
                    del self._inflight[key]
                    return
                self._inflight[key] = False

    def _delete(self, key: str) -> None:
        """A backup keeps what the source deleted, unless a destination says propagate_deletes."""
        for dest in self.dests:
            if dest.endpoint.propagate_deletes:
                self.on_outcome(delete_key(self.source, dest, key))
            else:
                logger.info("Kept %r at %s: the source deleted it (propagate_deletes is off)", key, dest.endpoint.label)

    def _wait_to_reconnect(self, error: BaseException, delay: float) -> float:
        wait = delay * random.uniform(0.8, 1.2)
        logger.error("Cannot reach Redis at %s (%s); retrying in %.1fs", self.redis_safe_url, error, wait)
        self.stopping.wait(wait)
        return min(delay * 2, self.backoff_cap)

    @property
    def redis_safe_url(self) -> str:
        return redact_url(self.redis_url)


def _now() -> datetime:
    return datetime.now(UTC)


def _close(pubsub: Any) -> None:
    with contextlib.suppress(Exception):  # the connection is already gone; nothing to tidy
        pubsub.close()
