"""The listener: copy every announced key to every destination.

The loop reads like a job queue worker's: read with a timeout so a stop request
is seen within a second, hand each announcement to a bounded pool of copy
threads (when all are busy it stops reading: no unbounded queue), reconnect to
Redis with a backoff that doubles to a cap, and on SIGTERM finish the copies in
flight before returning. Announcements arrive through a `Delivery` (pubsub,
stream or list); each is acknowledged only once every destination holds its
keys, or their failure is kept in the dead-letter stream.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import redis

from s3s3.copy import Guard, copy_key, delete_key, dest_key
from s3s3.copy.limits import DEFAULT, Limits
from s3s3.errors import EXIT_OK, BadMessage
from s3s3.listen.delivery import Delivery, Message
from s3s3.listen.messages import Change, Event, parse
from s3s3.listen.metrics import Metrics
from s3s3.logs import log_outcome
from s3s3.outcome import Action, Outcome
from s3s3.retry import DEFAULT_RETRY, RetryPolicy, backoff, describe
from s3s3.state import deadletter, ledger
from s3s3.state.version import require_redis
from s3s3.store import Store

# The name operators filter the listener's lines on (documented), the package's rather than the module's.
logger = logging.getLogger("s3s3.listen")

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError)


@dataclass
class _Pending:
    """One message being worked: acknowledged when its last event is done and every outcome is kept."""

    message: Message
    remaining: int
    ok: bool = True
    kept: bool = True  # every failure is in the dead-letter stream; False: it must be delivered again
    started: float = field(default_factory=time.monotonic)


@dataclass
class _KeyState:
    """A key being copied or deleted now, and what was announced for it meanwhile."""

    action: Change
    again: Change | None = None  # the latest action announced while this one ran
    waiting: list[_Pending] = field(default_factory=list)  # messages done when the next round is


class Listener:
    """Reads announcements and copies each key everywhere; `run()` until stopped."""

    backoff_start = 0.5  # seconds before the first reconnect to Redis
    backoff_cap = 30.0  # the longest wait between reconnects
    poll_seconds = 1.0  # longest wait for a message before the stop flag is looked at again

    def __init__(
        self,
        source: Store,
        dests: Sequence[Store],
        client: redis.Redis,
        delivery: Delivery,
        *,
        workers: int = 16,
        verify_md5: bool = False,
        metrics: Metrics | None = None,
        copy: Callable[..., Outcome] | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        limits: Limits = DEFAULT,
        label: str = "",
        where: str = "Redis",
        stuck_seconds: float = 900.0,
        guard: Guard | None = None,
        ledger_days: int = 0,
        check_redis: bool = False,
    ) -> None:
        self.source = source
        self.dests = list(dests)
        self.client = client
        self.delivery = delivery
        self.workers = workers
        self.verify_md5 = verify_md5
        self.metrics = metrics or Metrics()
        # `copy` stands in for copy_key in tests; the real one gets the retry policy and the process's limits.
        self.copy = copy or functools.partial(copy_key, retry=retry, limits=limits)
        self.label = label or "announcements"
        self.redis_safe_url = where  # how logs name the Redis server: never with its password
        self.recorder = ledger.Recorder(client, days=ledger_days)
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.stuck_seconds = stuck_seconds  # a copy in flight longer than this makes /healthz say 503
        self.guard = guard
        self.check_redis = check_redis  # ask the server's version once it answers (fakeredis has no INFO)
        self._slots = threading.BoundedSemaphore(workers)
        self._keys: dict[str, _KeyState] = {}
        self._working: dict[int, _Pending] = {}  # id -> message being worked, for the oldest copy's age
        self._lock = threading.Lock()
        self.on_outcome: Callable[[Outcome], None] = log_outcome
        self.metrics.oldest_copy.set_function(self.oldest_copy_seconds)

    def request_stop(self, signum: int = signal.SIGTERM, _frame: object = None) -> None:
        """Signal handler: first call finishes the copies in flight, second exits at once."""
        if self.stopping.is_set():
            os.write(2, b"s3s3: second stop signal, exiting without finishing copies in flight\n")
            os._exit(1)
        self.stopping.set()

    def healthy(self) -> bool:
        """Connected to Redis, still working, and no copy stuck (what /healthz answers)."""
        return (
            self.connected.is_set()
            and not self.stopping.is_set()
            and self.oldest_copy_seconds() <= self.stuck_seconds
        )

    def oldest_copy_seconds(self) -> float:
        """How long the oldest message being worked has been in flight; 0 when none is."""
        with self._lock:
            oldest = min((p.started for p in self._working.values()), default=None)
        return 0.0 if oldest is None else time.monotonic() - oldest

    def run(self) -> int:
        """Listen until stopped; return the exit code."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="s3s3-copy")
        logger.info(
            "Listening on %s for %s -> %s with %d workers",
            self.label,
            self.source.endpoint.label,
            ", ".join(d.endpoint.label for d in self.dests),
            self.workers,
        )
        try:
            self._loop(pool)
        finally:
            logger.info("Stopping: finishing the copies in flight")
            pool.shutdown(wait=True)
            self.recorder.flush()
            self.delivery.leave()
            self.delivery.close()
            logger.info("Stopped")
        return EXIT_OK

    def _loop(self, pool: ThreadPoolExecutor) -> None:
        failures = 0
        while not self.stopping.is_set():
            try:
                self._connect()
            except REDIS_ERRORS as e:
                failures += 1
                self._wait_to_reconnect(e, failures)
                continue
            self.connected.set()
            logger.info("Connected to %s, reading %s", self.redis_safe_url, self.label)
            failures = 0
            try:
                self._read(pool)
            except REDIS_ERRORS as e:
                self.connected.clear()
                self.metrics.reconnects.inc()
                logger.error("Lost the Redis connection at %s: %s", self.redis_safe_url, e)
                self.delivery.close()

    def _connect(self) -> None:
        """Connect the delivery; the first time Redis answers, stop (RequirementError) if it is too old."""
        if self.check_redis:
            require_redis(self.client, self.redis_safe_url)
            self.check_redis = False
        self.delivery.connect()

    def _read(self, pool: ThreadPoolExecutor) -> None:
        while not self.stopping.is_set():
            if not self._slots.acquire(timeout=self.poll_seconds):
                continue  # every worker is busy: read nothing until one frees
            try:
                message = self.delivery.receive(self.poll_seconds)
            except BaseException:
                self._slots.release()
                raise
            if message is None:
                self._slots.release()
                self.recorder.flush()  # a quiet moment: send the ledger entries held back
                continue
            self.metrics.events_received.inc()
            events = self._parse(message)
            if not events:
                self._slots.release()
                self.delivery.ack(message)
                continue
            pool.submit(self._work, _Pending(message, len(events)), events)

    def _parse(self, message: Message) -> list[Event]:
        """The message's events; a bad one is logged, counted and kept in the dead-letter stream."""
        try:
            events = parse(message.data, self.source.endpoint.bucket)
            outside = [e.key for e in events if not e.key.startswith(self.source.endpoint.prefix)]
            if outside:
                raise BadMessage(f"{outside[0]!r} is not under the source prefix {self.source.endpoint.prefix!r}")
        except BadMessage as e:
            logger.warning("Rejected an announcement: %s", e)
            self.metrics.events_rejected.inc()
            deadletter.record_rejected(self.client, message.data, str(e))
            return []
        return events

    def _work(self, pending: _Pending, events: list[Event]) -> None:
        self.metrics.in_flight.inc()
        with self._lock:
            self._working[id(pending)] = pending
        try:
            for event in events:
                self._once_at_a_time(event, pending)
        finally:
            with self._lock:
                del self._working[id(pending)]
            self.metrics.in_flight.dec()
            self._slots.release()

    def _once_at_a_time(self, event: Event, pending: _Pending) -> None:
        """Act on `event.key`; if announced again meanwhile, act once more after, never at once."""
        with self._lock:
            state = self._keys.get(event.key)
            if state is not None:
                state.again = event.action  # the newest announcement wins
                state.waiting.append(pending)
                return
            state = self._keys[event.key] = _KeyState(event.action)
        done = [pending]
        since = event.event_time or pending.message.published_at
        while True:
            ok, kept = self._act(event.key, state.action, since)
            for p in done:
                self._finish(p, ok, kept)
            with self._lock:
                if state.again is None:
                    del self._keys[event.key]
                    return
                state.action, state.again = state.again, None
                done, state.waiting = state.waiting, []

    def _act(self, key: str, action: Change, since: float | None) -> tuple[bool, bool]:
        """Copy (or delete) one key at every destination; never raises.

        Returns (every destination succeeded, every failure is kept in the
        dead-letter stream): a message is acknowledged only when the second
        holds, so no failure is dropped unrecorded.
        """
        ok = kept = True
        for dest in self.dests:
            try:
                if action == Change.DELETE:
                    outcome = self._delete(dest, key)
                else:
                    outcome = self.copy(
                        self.source, dest, key, verify_md5=self.verify_md5, check_small=False, guard=self.guard
                    )
            except Exception as e:  # copy_key never raises; a copy function that does must not strand the key
                logger.exception("Unexpected error while copying %r to %s", key, dest.endpoint.label)
                outcome = Outcome(key, dest.label, Action.FAILED, error=describe(e))
            kept = self._record(dest, outcome) and kept
            ok = ok and outcome.ok
        if ok and since and action != Change.DELETE:  # replication lag: until every destination holds it
            self.metrics.lag_seconds.observe(max(0.0, time.time() - since))
        return ok, kept

    def _delete(self, dest: Store, key: str) -> Outcome:
        """A backup keeps what the source deleted, unless the destination says propagate_deletes."""
        if dest.endpoint.propagate_deletes:
            return delete_key(self.source, dest, key)
        return Outcome(key, dest.label, Action.KEPT, error="deleted at the source, propagate_deletes is off")

    def _record(self, dest: Store, outcome: Outcome) -> bool:
        """Log, count, and remember the outcome (ledger, or dead-letter stream when it failed).

        Returns False when a failure could not be written to the dead-letter stream.
        """
        self.on_outcome(outcome)
        self.metrics.outcome(outcome)
        try:
            if outcome.action is Action.FAILED:
                deadletter.record_failure(self.client, outcome.key, outcome.dest, outcome.error or "", outcome.attempts)
            else:
                self.recorder.record(dest, dest_key(self.source, dest, outcome.key), outcome)
        except redis.RedisError as e:
            logger.warning("Could not record %r for %s in Redis: %s", outcome.key, outcome.dest, e)
            return outcome.action is not Action.FAILED
        return True

    def _finish(self, pending: _Pending, ok: bool, kept: bool) -> None:
        """Count down one event of a message; after its last, acknowledge it, or give it back.

        A message is given back (to be delivered again) when a failure of it
        could not be kept in the dead-letter stream: acknowledging it would
        drop that failure without a trace.
        """
        with self._lock:
            pending.remaining -= 1
            pending.ok = pending.ok and ok
            pending.kept = pending.kept and kept
            if pending.remaining:
                return
        try:
            if pending.kept:
                self.delivery.ack(pending.message)
            else:
                self.delivery.release(pending.message)
        except redis.RedisError as e:
            # Not acknowledged: it will be delivered again, and copied again (harmless).
            logger.warning("Could not acknowledge a message: %s", e)

    def _wait_to_reconnect(self, error: BaseException, failures: int) -> None:
        wait = backoff(failures, self.backoff_start, self.backoff_cap)
        logger.error("Cannot reach Redis at %s (%s); retrying in %.1fs", self.redis_safe_url, error, wait)
        self.stopping.wait(wait)

