"""The listener: copy every announced key to every destination.

The loop reads like a job queue worker's: read with a timeout so a stop request
is seen within a second, hand each announcement to a bounded pool of copy
threads (it reads a quarter of the workers' number ahead of them, then
stops reading until as many have started: no unbounded queue), reconnect to
Redis with a backoff that doubles to a cap, and on SIGTERM finish the copies in
flight before returning. Announcements arrive through a `Delivery` (pubsub,
stream or list), as many at once as there are free workers; their copies are
registered together (s3s3.state.overlap) before any starts, and each is
acknowledged only once every destination holds the newest version of its
keys, or their failure is kept in the dead-letter stream (s3s3.listen.settle).

A destination that keeps every version (`versions = all`) is not copied to:
each announcement of a key replays there every version and delete marker of
it the destination lacks, oldest first (s3s3.copy.replay), under the key's
lease, which every listener and bucket sync takes: the order holds however
the announcements arrive, and no registration is needed. A version deleted
for good at the source is deleted there only with propagate_version_deletes.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import redis

from s3s3 import names
from s3s3.config import Versions
from s3s3.copy import copy_key, delete_key, dest_key, newer_at_source
from s3s3.copy.limits import DEFAULT, Limits
from s3s3.copy.purge import purge_version
from s3s3.copy.replay import Lease, VersionMap, replay_key
from s3s3.errors import EXIT_OK, BadMessage
from s3s3.listen.delivery import Delivery, Message
from s3s3.listen.messages import Change, Event, parse
from s3s3.listen.metrics import Metrics
from s3s3.listen.settle import Copy, Done, Settler
from s3s3.logs import log_outcome
from s3s3.outcome import Action, Outcome
from s3s3.retry import DEFAULT_RETRY, RetryPolicy, backoff, describe
from s3s3.state import deadletter, ledger
from s3s3.state.overlap import Overlaps, Ticket
from s3s3.state.version import require_redis
from s3s3.store import Store

# The name operators filter the listener's lines on (documented), the package's rather than the module's.
logger = logging.getLogger("s3s3.listen")

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError)


@dataclass
class _Pending:
    """One message being worked: settled when its last event is done, acknowledged if every outcome is kept."""

    message: Message
    remaining: int
    ok: bool = True
    kept: bool = True  # every failure is in the dead-letter stream; False: it must be delivered again
    started: float = field(default_factory=time.monotonic)
    tickets: dict[tuple[str, str], Ticket] = field(default_factory=dict)  # (key, dest label): its registration
    copied: dict[tuple[str, str], str] = field(default_factory=dict)  # (key, dest label): the source ETag it wrote


class _Slots:
    """Announcements the listener may hold, each worker's and a few read ahead: counted, not a semaphore.

    The reader waits until `batch` are free and takes them all, so it wakes
    once per batch read, not once per copy done (a semaphore's release wakes
    its waiter every time: 14 % of the workers' time in a burst of small keys).
    """

    def __init__(self, size: int, batch: int) -> None:
        self.free = size
        self.batch = batch
        self._cond = threading.Condition()
        self._waiting = False

    def take(self, timeout: float) -> int:
        """Wait up to `timeout` until `batch` are free (or all are); take every free one; 0 if none came."""
        with self._cond:
            self._waiting = True
            self._cond.wait_for(lambda: self.free >= self.batch, timeout)
            self._waiting = False
            taken, self.free = self.free, 0
        return taken

    def give(self, count: int = 1) -> None:
        with self._cond:
            self.free += count
            if self._waiting and self.free >= self.batch:
                self._cond.notify()


@dataclass
class _KeyState:
    """A key being copied or deleted now, and what was announced for it meanwhile."""

    events: list[Event]  # what this round does: the newest decides a copy or a delete; a replay takes them all
    again: list[Event] = field(default_factory=list)  # announced while this round ran: the next round's
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
        guard: Overlaps | None = None,
        ledger_days: int = 0,
        check_redis: bool = False,
        replay: Callable[..., list[Outcome]] | None = None,
        purge: Callable[..., Outcome] | None = None,
        lease: Lease | None = None,
        known: VersionMap | None = None,
        replaying: Collection[str] | None = None,
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
        # Likewise for destinations that keep every version: their histories replayed, their versions purged.
        self.replay = replay or functools.partial(replay_key, retry=retry, limits=limits)
        self.purge = purge or functools.partial(purge_version, retry=retry)
        self.lease = lease  # one replayer of a key at a destination at a time, across every process
        self.known = known  # which source version each destination version replays (the ledger's map)
        # The destinations whose history is replayed: by default those with versions = all; the service
        # leaves out every one when the source keeps no versions (s3s3.copy.replay.check_versioning).
        if replaying is None:
            replaying = [d.label for d in self.dests if d.endpoint.versions == Versions.ALL]
        self._replaying = [d for d in self.dests if d.label in replaying]
        self._latest = [d for d in self.dests if d.label not in replaying]  # copied to, as ever
        self.label = label or "announcements"
        self.redis_safe_url = where  # how logs name the Redis server: never with its password
        self.recorder = ledger.Recorder(client, days=ledger_days)
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.stuck_seconds = stuck_seconds  # a copy in flight longer than this makes /healthz say 503
        self.guard = guard  # registers each batch's copies; where there is none, each copy proves itself alone
        self.settler = Settler(delivery, guard, self._again)
        self.check_redis = check_redis  # ask the server's version once it answers (fakeredis has no INFO)
        # A few read ahead of the workers, so they never wait for the reader; no more, so a listener whose
        # copies are slow does not hold announcements that another in its group would copy now.
        ahead = workers // 4
        self._slots = _Slots(workers + ahead, max(1, ahead))
        self._keys: dict[str, _KeyState] = {}
        self._dests = {dest.label: dest for dest in self.dests}
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
            self.connected.is_set() and not self.stopping.is_set() and self.oldest_copy_seconds() <= self.stuck_seconds
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
            self.settler.flush()
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
            free = self._slots.take(self.poll_seconds)
            if not free:
                self.settler.due()
                continue  # every worker is busy and a few wait: read nothing until they start
            try:
                messages = self.delivery.receive_many(self.poll_seconds, free)
            except BaseException:
                self._slots.give(free)
                raise
            if len(messages) < free:
                self._slots.give(free - len(messages))
            if not messages:
                self.settler.due()
                self.recorder.flush()  # a quiet moment: send the ledger entries held back
                continue
            self.metrics.events_received.inc(len(messages))
            parsed = [(message, self._parse(message)) for message in messages]
            for message, events in parsed:
                if not events:
                    self._slots.give()
                    self._rejected(message, kept=events is not None)
            work = [(_Pending(message, len(events)), events) for message, events in parsed if events]
            self._register(work)
            for pending, events in work:
                pool.submit(self._work, pending, events)

    def _register(self, work: list[tuple[_Pending, list[Event]]]) -> None:
        """Register every copy the messages ask for, in one round trip, before any starts (s3s3.state.overlap)."""
        if self.guard is None:
            return
        # A delete that propagates is registered too: a copy of the key it overlaps then finds the source
        # without it, and deletes what it wrote (`_again`), instead of leaving a deleted key behind.
        # A destination whose history is replayed needs none: the key's lease orders its replays.
        wanted = [
            (pending, (event.key, dest.label))
            for pending, events in work
            for event in {e.key: e for e in events}.values()
            for dest in self._latest
            if event.action in (Change.PUT, Change.PURGE) or dest.endpoint.propagate_deletes
        ]
        tickets = self.guard.begin_many([(label, key) for _, (key, label) in wanted])
        for (pending, copy), ticket in zip(wanted, tickets, strict=True):
            pending.tickets[copy] = ticket

    def _parse(self, message: Message) -> list[Event] | None:
        """The message's events; a bad one is logged, counted and kept in the dead-letter stream ([]).

        None: a bad message the dead-letter stream could not take.
        """
        try:
            events = parse(message.data, self.source.endpoint.bucket)
            outside = [e.key for e in events if not e.key.startswith(self.source.endpoint.prefix)]
            if outside:
                raise BadMessage(f"{outside[0]!r} is not under the source prefix {self.source.endpoint.prefix!r}")
        except BadMessage as e:
            logger.warning("Rejected an announcement: %s", e)
            self.metrics.events_rejected.inc()
            try:
                deadletter.record_rejected(self.client, message.data, str(e))
            except redis.RedisError as lost:
                logger.warning("Could not keep the rejected announcement in %s: %s", names.DEADLETTER, lost)
                return None
            return []
        return events

    def _rejected(self, message: Message, *, kept: bool) -> None:
        """A message with nothing to copy: acknowledged, or given back if its rejection could not be kept."""
        try:
            if kept:
                self.delivery.ack(message)
            else:
                self.delivery.release(message)
        except redis.RedisError as e:
            logger.warning("Could not acknowledge an announcement with nothing to copy: %s", e)

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
                idle = not self._working
            self.metrics.in_flight.dec()
            self._slots.give()
            if idle:  # nothing else is being copied: nothing is worth waiting for
                self.settler.flush()

    def _once_at_a_time(self, event: Event, pending: _Pending) -> None:
        """Act on `event.key`; if announced again meanwhile, act once more after, never at once."""
        with self._lock:
            state = self._keys.get(event.key)
            if state is not None:
                state.again.append(event)  # the newest decides the next round's copy or delete
                state.waiting.append(pending)
                return
            state = self._keys[event.key] = _KeyState([event])
        done = [pending]
        since = event.event_time or pending.message.published_at
        while True:
            ok, kept, copied = self._act(event.key, state.events, since)
            with self._lock:
                # Announced again meanwhile: the next round copies whatever the source holds then, and
                # is proven itself; this round's copies need no proof (their registrations still end).
                superseded = bool(state.again)
            for p in done:
                self._finish(p, ok, kept, event.key, {} if superseded else copied)
            with self._lock:
                if not state.again:
                    del self._keys[event.key]
                    return
                state.events, state.again = state.again, []
                done, state.waiting = state.waiting, []

    def _act(self, key: str, events: list[Event], since: float | None) -> tuple[bool, bool, dict[str, str]]:
        """Copy (or delete) one key at every destination, replay its history where it is kept; never raises.

        Returns (every destination succeeded, every failure is kept in the
        dead-letter stream, the source ETag copied to each destination that
        got one): a message is acknowledged only when the second holds, so
        no failure is dropped unrecorded. The copies were registered with
        their batch (`_register`); they are proven when their message settles.
        """
        action = events[-1].action  # at a destination of the latest version, the newest announcement wins
        ok = kept = True
        copied: dict[str, str] = {}
        for dest in self._replaying:
            replayed, recorded = self._history(dest, key, events)
            ok, kept = ok and replayed, kept and recorded
        for dest in self._latest:
            try:
                if action in (Change.DELETE, Change.MARKER):  # the key reads as deleted at the source
                    outcome = self._delete(dest, key)
                else:  # written; or one version deleted for good, which may leave an older one current
                    outcome = self.copy(self.source, dest, key, verify_md5=self.verify_md5, check_small=False)
                    if action is Change.PURGE and outcome.action is Action.MISSING:  # it was the only one
                        outcome = self._delete(dest, key)
            except Exception as e:  # copy_key never raises; a copy function that does must not strand the key
                logger.exception("Unexpected error while copying %r to %s", key, dest.endpoint.label)
                outcome = Outcome(key, dest.label, Action.FAILED, error=describe(e))
            kept = self._record(dest, outcome) and kept
            ok = ok and outcome.ok
            if outcome.action is Action.COPIED and outcome.source_etag is not None:
                copied[dest.label] = outcome.source_etag
        if ok and since and action == Change.PUT:  # replication lag: until every destination holds it
            self.metrics.lag_seconds.observe(max(0.0, time.time() - since))
        return ok, kept, copied

    def _history(self, dest: Store, key: str, events: list[Event]) -> tuple[bool, bool]:
        """Bring `dest` the key's history: the versions deleted for good, then every entry it lacks; never raises.

        Returns (every step succeeded, every failure is kept in the dead-letter
        stream), as `_act` does for a copy.
        """
        purged = dict.fromkeys(e.version_id for e in events if e.action == Change.PURGE and e.version_id)
        replayed: list[Outcome] = []
        try:
            outcomes = [self._purge(dest, key, version_id) for version_id in purged]
            if any(e.action != Change.PURGE for e in events):  # anything else: whatever the destination lacks
                replayed = self.replay(
                    self.source, dest, key, lease=self.lease, known=self.known, verify_md5=self.verify_md5
                )
        except Exception as e:  # replay_key never raises; a stand-in that does must not strand the key
            logger.exception("Unexpected error while replaying %r to %s", key, dest.endpoint.label)
            outcomes, replayed = [Outcome(key, dest.label, Action.FAILED, error=describe(e))], []
        ok = kept = True
        for outcome in outcomes:
            kept = self._record(dest, outcome) and kept
            ok = ok and outcome.ok
        for outcome in replayed:
            # replay_key logs each entry as it writes it (a long history shows as it lands); not "nothing to do".
            kept = self._record(dest, outcome, logged=outcome.action is not Action.SKIPPED) and kept
            ok = ok and outcome.ok
        self.metrics.replayed(dest.label, replayed)
        return ok, kept

    def _purge(self, dest: Store, key: str, version_id: str) -> Outcome:
        """A backup keeps a version the source deleted for good, unless it says propagate_version_deletes."""
        if dest.endpoint.propagate_version_deletes:
            return self.purge(self.source, dest, key, version_id, lease=self.lease, known=self.known)
        why = f"version {version_id!r} deleted for good at the source, propagate_version_deletes is off"
        return Outcome(key, dest.label, Action.KEPT, error=why, version_id=version_id)

    def _again(self, dest: Store, key: str, copied: str) -> bool:
        """A copy another overlapped: copy the key again if the source moved on from `copied`; False: not kept."""
        try:
            if dest.endpoint.propagate_deletes and self.source.head(key) is None:  # deleted since: as announced
                return self._record(dest, delete_key(self.source, dest, key))
            if newer_at_source(self.source, dest, key, copied) is None:
                return True
        except Exception as e:
            logger.warning("Copying %r to %s again: another copy ran at the same time, and the source cannot "
                           "say which version it holds: %s", key, dest.label, describe(e))  # fmt: skip
        # Registered by itself, as a copy alone would be: whatever overlaps it now is seen too.
        outcome = self.copy(self.source, dest, key, verify_md5=self.verify_md5, check_small=False, guard=self.guard)
        return self._record(dest, outcome)

    def _delete(self, dest: Store, key: str) -> Outcome:
        """A backup keeps what the source deleted, unless the destination says propagate_deletes."""
        if dest.endpoint.propagate_deletes:
            return delete_key(self.source, dest, key)
        return Outcome(key, dest.label, Action.KEPT, error="deleted at the source, propagate_deletes is off")

    def _record(self, dest: Store, outcome: Outcome, *, logged: bool = False) -> bool:
        """Log (unless `logged` already), count, and remember the outcome (ledger, or dead-letter stream when it
        failed).

        Returns False when a failure could not be written to the dead-letter stream.
        """
        if not logged:
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

    def _finish(self, pending: _Pending, ok: bool, kept: bool, key: str, copied: dict[str, str]) -> None:
        """Count down one event of a message; after its last, hand it to be settled and acknowledged.

        A message with a failure that could not be kept in the dead-letter
        stream is given back (to be delivered again) instead: acknowledging
        it would drop that failure without a trace.
        """
        with self._lock:
            pending.remaining -= 1
            pending.ok = pending.ok and ok
            pending.kept = pending.kept and kept
            for label, etag in copied.items():
                pending.copied[key, label] = etag
            if pending.remaining:
                return
        copies = [
            Copy(self._dests[label], key_, ticket, pending.copied.get((key_, label)))
            for (key_, label), ticket in pending.tickets.items()
        ]
        self.settler.add(Done(pending.message, pending.kept, copies))

    def _wait_to_reconnect(self, error: BaseException, failures: int) -> None:
        wait = backoff(failures, self.backoff_start, self.backoff_cap)
        logger.error("Cannot reach Redis at %s (%s); retrying in %.1fs", self.redis_safe_url, error, wait)
        self.stopping.wait(wait)
