"""`s3s3bucket --reverse --at TIME`: the source put back as it was at TIME, from a destination's history.

A destination with `versions = all` keeps every version of each key. For
each key this finds the entry that was current at TIME, by the source time
each copy carries: a version's `mtime` metadata (the source's Last-Modified,
one HEAD per version looked at, newest first), a delete marker's own
LastModified at the destination (a marker carries no metadata: it counts
from when it was replayed there, not from when the source's was made). That
version is written back to the source where the source's current object
holds other bytes (same bytes: nothing written), read through the copy
engine as any copy. A key that did not exist at TIME (deleted then, not yet
written, or never backed up) is deleted at the source only with --delete,
under --max-delete.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from s3s3.copy import copy_key, identical
from s3s3.logs import log_outcome
from s3s3.outcome import Action, Outcome
from s3s3.retry import Budget, describe
from s3s3.retry import call as retry_call
from s3s3.store import META_ETAG, META_MTIME, ObjectInfo, Store, Version, list_objects
from s3s3.store.pinned import Pinned
from s3s3.sync.deletes import Deletes
from s3s3.sync.diff import KeyFilter, prefetched, side, sort_key
from s3s3.sync.options import SyncOptions
from s3s3.sync.progress import Progress
from s3s3.sync.summary import Counts, Summary, Tally
from s3s3.sync.versions import by_key, versions_in_range

logger = logging.getLogger(__name__)

Pair = tuple[str, list[Version], ObjectInfo | None]  # a backup key, its history (newest first), the source's object


def restore(
    backup: Store,
    source: Store,
    at: datetime,
    *,
    options: SyncOptions,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> Summary:
    """Write back to `source` each key as `backup`'s history says it was at `at`; return what was done."""
    restoring = _Restore(backup, source, at, options, stop or threading.Event(), progress or Progress(enabled=False))
    logger.info("Restoring %s as it was at %s, from the versions at %s", source.label, at.isoformat(), backup.label)
    started = time.monotonic()
    restoring.summary.destinations.setdefault(source.endpoint.label, Counts())
    with ThreadPoolExecutor(options.workers, thread_name_prefix="s3s3-restore") as restoring.pool:
        for key, entries, current in pairs(backup, source, options.keys):
            if restoring.stop.is_set():
                break
            restoring.progress.saw()
            restoring.submit(key, entries, current)
    restoring.finish()
    restoring.summary.interrupted = restoring.stop.is_set()
    restoring.summary.seconds = time.monotonic() - started
    return restoring.summary


class _Restore:
    """One restore's state: the pool, the bound on queued keys, the deletions, the counts."""

    def __init__(
        self, backup: Store, source: Store, at: datetime, options: SyncOptions, stop: threading.Event,
        progress: Progress,
    ) -> None:  # fmt: skip
        self.backup, self.source, self.at, self.options = backup, source, at, options
        self.stop, self.progress = stop, progress
        self.summary = Summary(dry_run=options.dry_run)
        self.label = source.endpoint.label
        self.pool: ThreadPoolExecutor
        self.gate = threading.BoundedSemaphore(options.workers * 2)
        self.deletes = Deletes(source, options, self.summary, stop, None)
        self.kept = 0  # keys absent at TIME, left at the source without --delete
        self._lock = threading.Lock()

    def submit(self, key: str, entries: list[Version], current: ObjectInfo | None) -> None:
        self.gate.acquire()

        def run() -> None:
            try:
                self.one(key, entries, current)
            except Exception as e:
                logger.exception("Unexpected error restoring %r to %s", key, self.label)
                self.summary.outcome(Outcome(key, self.label, Action.FAILED, error=describe(e)))
            finally:
                self.gate.release()

        self.pool.submit(run)

    def one(self, key: str, entries: list[Version], current: ObjectInfo | None) -> None:
        """Put one key back as it was at TIME."""
        if entries:
            self.summary.count(self.label, Tally.CHECKED)
        try:
            found = state_at(self.backup, key, entries, self.at, Budget(self.options.retry))
        except Exception as e:
            self.summary.outcome(Outcome(key, self.label, Action.FAILED, error=f"reading its versions: {describe(e)}"))
            return
        if found is None:
            self.absent(key, current)
        elif current is not None and same_bytes(found[1], current):
            self.summary.count(self.label, Tally.SKIPPED)
        elif self.options.dry_run:
            print(f"would restore version {found[0].version_id} of {key!r} to {self.label} ({found[1].size} bytes)",
                  flush=True)  # fmt: skip
            self.summary.count(self.label, Tally.COPIED, found[1].size)
        else:
            self.progress.queue(found[1].size)
            outcome = copy_key(Pinned(self.backup, key, found[0].version_id), self.source, key, check_dest=False,
                               verify_md5=self.options.verify_md5, retry=self.options.retry,
                               limits=self.options.limits, server_side=False)  # fmt: skip
            log_outcome(outcome)
            self.summary.outcome(outcome)
            self.progress.finish(outcome.size)

    def absent(self, key: str, current: ObjectInfo | None) -> None:
        """A key that did not exist at TIME: deleted at the source with --delete, else left there."""
        if current is None:
            return
        if not self.options.delete:
            logger.info("%r did not exist at %s (deleted, or not yet written); kept at %s (--delete deletes it)",
                        current.key, self.at.isoformat(), self.label)  # fmt: skip
            with self._lock:
                self.kept += 1
            return
        with self._lock:
            self.deletes.add(current)

    def finish(self) -> None:
        with self._lock:
            self.deletes.finish()
        if self.kept:
            logger.info("Kept %d key(s) at %s that did not exist at %s (--delete deletes them)", self.kept,
                        self.label, self.at.isoformat())  # fmt: skip


def state_at(
    backup: Store, key: str, entries: list[Version], at: datetime, budget: Budget
) -> tuple[Version, ObjectInfo] | None:
    """The version of `key` current at `at` (with its HEAD), or None: deleted then, or not yet written.

    `entries` newest first; a version's time is its source time (`mtime`),
    a delete marker's its LastModified where it is.
    """
    for entry in entries:
        if entry.delete_marker:
            if entry.last_modified is not None and entry.last_modified <= at:
                return None
            continue
        info = retry_call(lambda e=entry: backup.head(key, version_id=e.version_id), budget,  # type: ignore[misc]
                          what=f"the HEAD of {key!r} version {entry.version_id}")  # fmt: skip
        if info is not None and source_time(info, entry) <= at:
            return entry, info
    return None


def source_time(info: ObjectInfo, entry: Version) -> datetime:
    """When the source wrote the version a copy replays: its `mtime`, else the copy's own LastModified."""
    mtime = (info.metadata or {}).get(META_MTIME)
    try:
        return datetime.fromtimestamp(float(mtime), UTC) if mtime else _when(info, entry)
    except ValueError:
        return _when(info, entry)


def _when(info: ObjectInfo, entry: Version) -> datetime:
    return info.last_modified or entry.last_modified or datetime.max.replace(tzinfo=UTC)


def same_bytes(version: ObjectInfo, current: ObjectInfo) -> bool:
    """True when the source's current object holds the bytes of the backup's version."""
    if version.size != current.size:
        return False
    return identical(version, current) or (version.metadata or {}).get(META_ETAG) == current.etag


def pairs(backup: Store, source: Store, keys: KeyFilter) -> Iterator[Pair]:
    """Each key of either side: its history at the backup, and the source's current object, in key order."""
    b_base, s_base = backup.endpoint.prefix, source.endpoint.prefix
    b_iter = by_key(prefetched(versions_in_range(backup, keys)), backup)
    s_iter = prefetched(list_objects(source, s_base + keys.prefix))
    b, s = next(b_iter, None), next(s_iter, None)
    while b is not None or s is not None:
        first = side(sort_key(b[0].key[len(b_base) :]) if b else None, sort_key(s.key[len(s_base) :]) if s else None)
        found: tuple[list[Version], ObjectInfo | None]
        if first < 0:
            assert b is not None
            key, found, b = b[0].key, (b, None), next(b_iter, None)
        elif first > 0:
            assert s is not None
            key, found, s = b_base + s.key[len(s_base) :], ([], s), next(s_iter, None)
        else:
            assert b is not None and s is not None
            key, found = b[0].key, (b, s)
            b, s = next(b_iter, None), next(s_iter, None)
        if keys(key):
            yield key, *found


def parse_time(text: str) -> datetime:
    """--at: ISO 8601 (a time without a zone is UTC) or Unix seconds; ValueError naming what is wrong."""
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError as e:
        raise ValueError(f"{text!r} is not a time: ISO 8601 (2024-05-01T10:00:00Z) or Unix seconds") from e
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
