"""The services, built from a Config: the listener (`ListenClient`), the bucket sync (`BucketClient`), the audit
(`AuditClient`).

This is where the wings meet: the stores (s3s3.store) are opened, the Redis
every service shares is connected (s3s3.state), the process's limits are
handed to the copies, and the listener (s3s3.listen), the bucket sync
(s3s3.sync) or the audit (s3s3.audit) is put together from them. Nothing
below this module builds a service; the command line and the Python API
start here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

import redis

from s3s3 import names
from s3s3.config import Config, Mode, Versions
from s3s3.copy.limits import DEFAULT, Limits
from s3s3.copy.replay import check_versioning
from s3s3.errors import ConfigError
from s3s3.listen.delivery import ListDelivery, describe, make_delivery, publish
from s3s3.retry import RetryPolicy
from s3s3.state import connect_redis
from s3s3.state.leases import RedisLease
from s3s3.state.ledger import VersionLedger
from s3s3.state.overlap import Overlaps
from s3s3.state.rates import SharedLimit
from s3s3.state.version import require_redis
from s3s3.store import Store, open_store, store_name
from s3s3.store.throttle import Pace
from s3s3.sync import fleet
from s3s3.sync.bucket import duplicate_bucket
from s3s3.sync.diff import KeyFilter
from s3s3.sync.fleet import Sync
from s3s3.sync.lock import SyncLock, buckets_hash, lock_name
from s3s3.sync.options import SyncOptions
from s3s3.sync.progress import Progress
from s3s3.sync.ranges import KeyRange, ranges, shared_split, split_points
from s3s3.sync.restore import restore
from s3s3.sync.summary import Summary

if TYPE_CHECKING:
    from s3s3.audit import AuditOptions, Report
    from s3s3.audit import Summary as AuditSummary
    from s3s3.listen.listener import Listener

logger = logging.getLogger(__name__)


def shard_keys(client: redis.Redis | None, source: Store, keys: KeyFilter, shard: tuple[int, int]) -> KeyFilter:
    """`keys` in the I-th (0-based) of N key ranges only (`shard` is (I, N)): the first shard's split points,
    where Redis can share them."""
    points = shared_split(client, source, source.endpoint.prefix + keys.prefix, shard[1])
    span = ranges([keys.prefix + p for p in points])[min(shard[0], len(points))]
    if shard[0] > len(points):  # fewer ranges than shards (a tiny bucket): this one has nothing
        span = KeyRange(keys.prefix + "\U0010ffff", keys.prefix + "\U0010ffff")
    logger.info("Shard %d/%d: keys in %s", shard[0], shard[1], span.describe())
    return replace(keys, range=span)


@dataclass
class _Buckets:
    config: Config
    workers: int | None = None
    limits: Limits = DEFAULT  # the process's bandwidth, memory and stream budgets (the command line sets bwlimit)
    source: Store = field(init=False)
    dests: list[Store] = field(init=False)
    redis_checked: bool = field(default=False, init=False)  # its version, once per client (it is too old: exit)

    def __post_init__(self) -> None:
        pool = self.workers or self.config.pubsub.workers
        self.source = open_store(self.config.source, pool_size=pool * 2)
        self.dests = [open_store(d, pool_size=pool * 2) for d in self.config.dests]

    def share_facts(self, client: redis.Redis) -> None:
        """What the stores teach s3s3, and each store's request rate, are kept in this Redis for every process."""
        for store in (self.source, *self.dests):
            store.facts.share(client)
            if store.endpoint.max_requests_per_second:
                pace = Pace(store.endpoint.max_requests_per_second)
                store.throttle.use(SharedLimit(client, store_name(store.endpoint), pace))

    def _redis(self, without: str = "syncing without the lock, the ledger and the dead-letter stream") -> (
        redis.Redis | None
    ):
        """Redis for the lock, ledger, dead-letter stream and facts; None (with a warning: doing `without`) when
        unreachable.

        Raises RequirementError when it is older than s3s3 needs.
        """
        client = connect_redis(self.config.pubsub)
        try:
            client.ping()
        except redis.RedisError as e:
            logger.warning("Cannot reach Redis at %s (%s): %s", self.config.pubsub.safe_url, e, without)
            return None
        if not self.redis_checked:
            require_redis(client, self.config.pubsub.safe_url)
            self.redis_checked = True
        return client

    def _named(self, dest_names: Sequence[str]) -> list[Store]:
        """The destinations named by --dest (every one when none is)."""
        known = [d.endpoint.name for d in self.dests]
        unknown = [n for n in dest_names if n not in known]
        if unknown:
            raise ConfigError(f"{self.config.path}: --dest {unknown[0]}: no such section (have {', '.join(known)})")
        return [d for d in self.dests if not dest_names or d.endpoint.name in dest_names]

    @property
    def retry(self) -> RetryPolicy:
        pubsub = self.config.pubsub
        return RetryPolicy(attempts=pubsub.max_attempts, max_seconds=pubsub.max_retry_seconds)


class ListenClient(_Buckets):
    """Listens for announcements and copies each key: `listen()`."""

    def listener(self) -> Listener:
        """The Listener this configuration describes (not yet running)."""
        # The listener's modules (and prometheus-client), not the bucket sync's.
        from s3s3.listen.listener import Listener
        from s3s3.listen.metrics import Metrics

        # Before anything runs: a destination keeping every version whose bucket keeps none stops it (exit 2).
        replaying = check_versioning(self.source, self.dests)
        pubsub = self.config.pubsub
        client = connect_redis(pubsub)
        self.share_facts(client)
        return Listener(
            self.source,
            self.dests,
            client,
            make_delivery(client, pubsub),
            workers=self.workers or pubsub.workers,
            retry=self.retry,
            limits=self.limits,
            metrics=Metrics(stores=[self.source, *self.dests]),
            label=describe(pubsub),
            where=pubsub.safe_url,
            stuck_seconds=self.config.metrics.max_copy_seconds,
            guard=Overlaps(client),
            ledger_days=pubsub.ledger_days,
            check_redis=True,
            lease=RedisLease(client),
            known=VersionLedger(client, days=pubsub.ledger_days),
            replaying=[dest.label for dest in replaying],
        )

    def listen(self) -> int:
        """Run the listener until SIGTERM/SIGINT; return the exit code."""
        listener = self.listener()
        server = watcher = None
        if self.config.metrics.port:
            from s3s3.listen.backlog import Watcher
            from s3s3.listen.metrics import MetricsServer

            delivery = listener.delivery
            consumer = delivery.consumer if isinstance(delivery, ListDelivery) else None  # its own list's length
            watcher = Watcher(listener.client, self.config.pubsub, consumer).start()
            listener.metrics.watch(watcher)
            address = (self.config.metrics.bind, self.config.metrics.port)
            server = MetricsServer(address, listener.metrics, listener.healthy)
            server.start()
            logger.info("Serving /metrics and /healthz on http://%s:%d", *server.server_address[:2])
        try:
            return listener.run()
        finally:
            if server is not None:
                server.shutdown()
            if watcher is not None:
                watcher.stop()


class BucketClient(_Buckets):
    """Syncs the source bucket onto every destination: `duplicate_bucket()`."""

    def duplicate_bucket(
        self,
        *,
        verify_md5: bool = False,
        options: SyncOptions | None = None,
        dest_names: Sequence[str] = (),
        reverse: bool = False,
        enqueue: bool = False,
        shard: tuple[int, int] = (0, 1),
        locked: bool = True,
        stop: threading.Event | None = None,
        progress: Progress | None = None,
        at: datetime | None = None,
    ) -> Summary:
        """Copy every missing or changed key (under the sync lock, where Redis is reachable and `locked`).

        `shard` (I, N) syncs only the I-th (0-based) of N key ranges; the split
        points are the first shard's where Redis can share them. `at` (with
        `reverse`) restores the source as it was then (s3s3.sync.restore).
        """
        options = options or SyncOptions(
            verify_md5=verify_md5, workers=self.workers or self.config.pubsub.workers, retry=self.retry,
            ledger_days=self.config.pubsub.ledger_days, limits=self.limits,
        )
        if at is not None:
            return self.restore(at, options, dest_names, reverse=reverse, enqueue=enqueue, shard=shard, stop=stop,
                                progress=progress)  # fmt: skip
        source, dests = self._direction(dest_names, reverse, options)
        if reverse:  # dead-lettered keys go source -> destinations: a restore must not consume them
            options = replace(options, retry_failed=False)
        client = self._redis()
        if enqueue:
            options = replace(options, enqueue=self._enqueuer(client))
        if shard[1] > 1:
            options = replace(options, keys=shard_keys(client, source, options.keys, shard))
        if client is not None:
            self.share_facts(client)
        if client is None or not locked:
            return duplicate_bucket(source, dests, options=options, client=client, stop=stop, progress=progress)
        with SyncLock(client, lock_name(source, dests, shard)):
            return duplicate_bucket(source, dests, options=options, client=client, stop=stop, progress=progress)

    def restore(
        self,
        at: datetime,
        options: SyncOptions,
        dest_names: Sequence[str] = (),
        *,
        reverse: bool = True,
        enqueue: bool = False,
        shard: tuple[int, int] = (0, 1),
        stop: threading.Event | None = None,
        progress: Progress | None = None,
    ) -> Summary:
        """--reverse --at TIME: the source put back as the --dest destination's history says it was at `at`."""
        path = self.config.path
        if not reverse:
            raise ConfigError(f"{path}: --at restores the source from a destination: it goes with --reverse --dest")
        if enqueue or shard[1] > 1:
            raise ConfigError(f"{path}: --at restores the whole bucket (or --prefix): drop --enqueue and --shard")
        backup, _ = self._direction(dest_names, True, replace(options, delete=False))
        if backup.endpoint.versions is not Versions.ALL:
            name = backup.endpoint.name
            raise ConfigError(f"{path}: [{name}] versions = latest: --at restores from the versions a destination "
                              f"keeps: set versions = all in [{name}], or restore without --at")  # fmt: skip
        client = self._redis()
        if client is not None:
            self.share_facts(client)
        if client is None:
            return restore(backup, self.source, at, options=options, stop=stop, progress=progress)
        with SyncLock(client, lock_name(backup, [self.source])):
            return restore(backup, self.source, at, options=options, stop=stop, progress=progress)

    def sync_of(self) -> Sync:
        """Where a --split sync of these buckets lives in Redis."""
        return Sync(names.SYNC_PREFIX + buckets_hash(self.source, self.dests))

    def split(self, count: int, prefix: str = "", *, force: bool = False) -> tuple[str, list[KeyRange]]:
        """--split N: one task per key range on Redis, for --work processes; return the split's id and ranges."""
        client = self._required_redis("--split")
        points = split_points(self.source, self.source.endpoint.prefix + prefix, count)
        points = [prefix + p for p in points]
        return fleet.split(client, self.sync_of(), points, prefix, force=force), ranges(points)

    def work(self, options: SyncOptions, *, stop: threading.Event, consumer: str) -> fleet.Worked:
        """--work: sync the ranges of the last --split until none is left."""
        client = self._required_redis("--work")

        def run(task: fleet.Task) -> dict[str, int] | None:
            keys = replace(options.keys, prefix=task.prefix, range=task.range)
            # No lock: the group gives each task to one worker, and a dead worker's lock would hold its range
            summary = self.duplicate_bucket(options=replace(options, keys=keys), locked=False, stop=stop)
            if summary.interrupted:
                return None
            totals = {name: int(value) for name, value in summary.as_dict().items() if name in fleet.TOTALS}
            return totals | {"errors": len(summary.errors)}

        return fleet.work(client, self.sync_of(), run, consumer=consumer,
                          claim_idle=self.config.pubsub.claim_idle, stop=stop)  # fmt: skip

    def _required_redis(self, option: str) -> redis.Redis:
        client = self._redis()
        if client is None:
            raise ConfigError(f"{self.config.path}: [pubsub] url: {option} needs Redis, which is unreachable")
        return client

    def _direction(
        self, dest_names: Sequence[str], reverse: bool, options: SyncOptions
    ) -> tuple[Store, list[Store]]:
        """Source and destinations: as configured, or --reverse (a destination restores the source)."""
        dests = self._named(dest_names)
        if not reverse:
            return self.source, dests
        if len(dests) != 1:
            raise ConfigError(f"{self.config.path}: --reverse restores from one destination: name it with --dest")
        if options.delete:
            raise ConfigError(f"{self.config.path}: --reverse never deletes at the source: drop --delete")
        return dests[0], [self.source]


    def _enqueuer(self, client: redis.Redis | None) -> Callable[[str], None]:
        """--enqueue: append each needed key to the configured stream or list for the listeners."""
        pubsub = self.config.pubsub
        if pubsub.mode is Mode.PUBSUB:
            raise ConfigError(f"{self.config.path}: [pubsub] mode: --enqueue needs mode = stream or list")
        if client is None:
            raise ConfigError(f"{self.config.path}: [pubsub] url: --enqueue needs Redis, which is unreachable")

        def enqueue(key: str) -> None:
            publish(client, pubsub.mode, pubsub.target, key.encode("utf-8"))

        return enqueue


class AuditClient(_Buckets):
    """Audits what each destination holds of the source: `audit()`."""

    def audit(
        self,
        report: Report,
        options: AuditOptions,
        *,
        dest_names: Sequence[str] = (),
        shard: tuple[int, int] = (0, 1),
        stop: threading.Event | None = None,
    ) -> AuditSummary:
        """Audit the destinations named (every one when none is) into `report`, `shard` (I, N) as the bucket sync's."""
        from s3s3.audit import audit  # the audit's modules only for an audit, not for every s3s3bucket run

        dests = self._named(dest_names)
        client = self._redis("auditing without the facts s3s3 keeps of each store")
        if client is not None:
            self.share_facts(client)
        if shard[1] > 1:
            options = replace(options, keys=shard_keys(client, self.source, options.keys, shard))
        return audit(self.source, dests, report, options=options, stop=stop)
