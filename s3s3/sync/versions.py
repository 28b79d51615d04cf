"""The bucket sync of a destination with `versions = all`: each key's history replayed there, oldest first.

Both buckets are listed with ListObjectVersions and merged key by key, as the
plain diff (s3s3.sync.diff) merges keys: streamed, each side's entries of one
key in memory at a time, decided in pages of at most PAGE_ENTRIES entries.
The version map of a page (s3s3.state.ledger) is read in one Redis round
trip; a key whose destination already represents its newest source entry
costs nothing more. A key with something to replay is replayed under its
lease (s3s3.copy.replay, s3s3.state.leases), both its histories listed again
under it, so that a listener replaying it at the same time never doubles it.

`--delete` means nothing more here: a key deleted at the source is a delete
marker there, replayed as any entry. A version deleted for good at the
source (by its ID) stays at the destination, unless the destination has
`propagate_version_deletes`, under --max-delete.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from itertools import groupby, takewhile
from typing import Any

from s3s3.copy import dest_key
from s3s3.copy.replay import Match, Replayed, learn_map, match, place, replay
from s3s3.errors import ListingOrderError, NoSuchBucket
from s3s3.retry import Budget, describe
from s3s3.retry import call as retry_call
from s3s3.state.leases import LocalLease, RedisLease
from s3s3.state.ledger import VersionLedger
from s3s3.store import Store, Version, list_versions
from s3s3.sync.diff import KeyFilter, prefetched, side, sort_key
from s3s3.sync.options import SyncOptions
from s3s3.sync.progress import Progress
from s3s3.sync.summary import Summary, Tally

logger = logging.getLogger(__name__)

PAGE_ENTRIES = 1000  # listed entries decided together (one round trip to the version map)
PAGE_KEYS = 500  # and at most this many keys
DELETE_BATCH = 1000  # versions to delete held before they are sent, without --max-delete

History = tuple[str, list[Version], list[Version]]  # a source key, its source and destination entries (newest first)
Submit = Callable[..., None]  # run fn(*args) in the sync's pool, its failure counted for that key


class VersionSync:
    """One destination's replay of every key's history: listings merged, versions replayed, versions deleted."""

    def __init__(
        self,
        source: Store,
        dest: Store,
        options: SyncOptions,
        summary: Summary,
        *,
        stop: threading.Event,
        progress: Progress,
        submit: Submit,
        lease: RedisLease | LocalLease,
        versions: VersionLedger | None,
    ) -> None:
        self.source, self.dest, self.options, self.summary = source, dest, options, summary
        self.stop, self.progress, self.lease, self.versions = stop, progress, lease, versions
        self.label = dest.endpoint.label
        self.propagate = dest.endpoint.propagate_version_deletes
        self.deletes = VersionDeletes(dest, options, summary, stop, versions)
        self._submit = submit
        self._running = 0  # keys of this destination in the pool
        self._idle = threading.Condition()

    def run(self) -> None:
        """Replay every key's history at the destination; then delete what the source deleted for good."""
        try:
            for page in _pages(histories(self.source, self.dest, self.options.keys)):
                if self.stop.is_set():
                    break
                self.progress.saw(len(page))
                wanted = [(dest_key(self.source, self.dest, key), _versions(dst)) for key, _, dst in page]
                found = self.versions.known_many(self.dest, wanted) if self.versions else [{} for _ in page]
                for (key, src, dst), known in zip(page, found, strict=True):
                    self.decide(key, src, dst, known)
        finally:
            with self._idle:
                self._idle.wait_for(lambda: self._running == 0)
        self.deletes.finish()
        self.summary.count(self.label, Tally.LEASE_WAITS, n=self.lease.waited.pop(place(self.dest), 0))

    def decide(self, key: str, src: list[Version], dst: list[Version], known: dict[str, str]) -> None:
        """Settle a key from its listings and the map where they suffice; else hand it to the pool."""
        if not src and not (self.propagate and _versions(dst)):
            return  # only at the destination, and nothing to delete there
        if src:
            self.summary.count(self.label, Tally.CHECKED)
        self.summary.count(self.label, Tally.MAPPED, n=len(known))
        if any(v not in known for v in _versions(dst)):
            self.submit(self.learn_then_act, key, src, dst, known)
        elif self.act(key, src, dst, known):
            self.submit(self.replay, key)

    def submit(self, fn: Callable[..., Any], key: str, *args: Any) -> None:
        with self._idle:
            self._running += 1

        def run(*args: Any) -> None:
            try:
                fn(*args)
            finally:
                with self._idle:
                    self._running -= 1
                    self._idle.notify_all()

        self._submit(self.dest, key, run, key, *args)

    def learn_then_act(self, key: str, src: list[Version], dst: list[Version], known: dict[str, str]) -> None:
        """HEAD the destination versions the map does not name (the map learns them), then act."""
        target = dest_key(self.source, self.dest, key)
        done = Replayed()
        mapping = learn_map(self.dest, target, [e for e in dst if not e.delete_marker], self.versions,
                            Budget(self.options.retry), done, found=known)  # fmt: skip
        self.summary.count(self.label, Tally.HEADED, n=done.headed)
        if self.act(key, src, dst, mapping):
            self.replay(key)

    def act(self, key: str, src: list[Version], dst: list[Version], mapping: dict[str, str]) -> bool:
        """What the histories say: versions to delete noted, a dry run said; True when the key needs a replay."""
        found = match(src, dst, mapping)
        target = dest_key(self.source, self.dest, key)
        if self.propagate:
            for entry in found.gone:
                self.deletes.add(key, target, entry, mapping[entry.version_id])
        if not src:
            return False
        self.summary.count(self.label, Tally.MISSED, n=len(found.missed))
        if not found.replay:
            if found.missed:
                logger.warning("%d version(s) of %r older than the newest at %s are missing there; they are not "
                               "inserted into its past", len(found.missed), key, self.label)  # fmt: skip
            self.summary.count(self.label, Tally.SKIPPED)
            return False
        if self.options.dry_run:
            self.say(key, found)
            return False
        if self.options.enqueue is not None:
            self.options.enqueue(key)
            self.summary.count(self.label, Tally.ENQUEUED)
            return False
        self.progress.queue(sum(e.size for e in found.replay))
        return True

    def say(self, key: str, found: Match) -> None:
        """--dry-run: what would be replayed, oldest first."""
        for entry in found.replay:
            if entry.delete_marker:
                print(f"would replay a delete marker ({entry.version_id}) of {key!r} to {self.label}", flush=True)
                self.summary.count(self.label, Tally.MARKERS)
            else:
                print(f"would replay version {entry.version_id} of {key!r} to {self.label} ({entry.size} bytes)",
                      flush=True)  # fmt: skip
                self.summary.count(self.label, Tally.VERSIONS, entry.size)

    def replay(self, key: str) -> None:
        """Replay the key under its lease, both histories listed again under it."""
        options = self.options
        done = replay(self.source, self.dest, key, lease=self.lease, known=self.versions,
                      verify_md5=options.verify_md5, retry=options.retry, limits=options.limits)  # fmt: skip
        self.summary.count(self.label, Tally.HEADED, n=done.headed)
        if not done.outcomes:  # another replayer wrote it first
            self.summary.count(self.label, Tally.SKIPPED)
        for outcome in done.outcomes:  # each logged by the replay
            self.summary.outcome(outcome)
            self.progress.finish(outcome.size)


class VersionDeletes:
    """propagate_version_deletes: destination versions whose source version is gone, deleted under --max-delete.

    As --delete's keys (s3s3.sync.deletes): past --max-delete nothing at
    all is deleted at that destination, and the run says so and exits 1.
    """

    def __init__(
        self,
        dest: Store,
        options: SyncOptions,
        summary: Summary,
        stop: threading.Event,
        versions: VersionLedger | None,
    ) -> None:
        self.dest, self.options, self.summary, self.stop, self.versions = dest, options, summary, stop, versions
        self.pending: list[tuple[str, str, str, str]] = []  # (key, target, destination version, source version)
        self.refused = False
        self._lock = threading.Lock()

    def add(self, key: str, target: str, entry: Version, source_version: str) -> None:
        limit = self.options.max_delete
        with self._lock:
            if self.refused:
                return
            self.pending.append((key, target, entry.version_id, source_version))
            if limit and len(self.pending) > limit:
                self.refused, self.pending = True, []
                message = (f"{self.dest.endpoint.label}: refusing to delete more than {limit} versions whose source "
                           "version is gone (raise --max-delete, or 0 for no limit); deleted none")  # fmt: skip
                logger.error("%s", message)
                self.summary.errors.append(message)
                return
            if limit or len(self.pending) < DELETE_BATCH:
                return
            batch, self.pending = self.pending, []
        self.flush(batch)

    def finish(self) -> None:
        with self._lock:
            batch, self.pending = self.pending, []
        if not self.refused and not self.stop.is_set():
            self.flush(batch)

    def flush(self, batch: Sequence[tuple[str, str, str, str]]) -> None:
        label = self.dest.endpoint.label
        for key, target, version, source_version in batch:
            if self.options.dry_run:
                print(f"would delete version {version} of {key!r} at {label} (its source version {source_version} "
                      "is gone)", flush=True)  # fmt: skip
                self.summary.count(label, Tally.PURGED)
                continue
            try:
                retry_call(lambda t=target, v=version: self.dest.delete(t, version_id=v),  # type: ignore[misc]
                           Budget(self.options.retry), what=f"deleting version {version} of {target!r}")  # fmt: skip
            except Exception as e:
                self.summary.failures.append((label, key, f"deleting version {version}: {describe(e)}"))
                self.summary.count(label, Tally.FAILED)
                logger.error("Failed to delete version %s of %r at %s: %s", version, key, label, describe(e))
                continue
            logger.info("Deleted version %s of %r at %s: its source version %s was deleted for good", version, key,
                        label, source_version)  # fmt: skip
            self.summary.count(label, Tally.PURGED)
            if self.versions is not None:
                self.versions.forget(self.dest, target, [version])


# ---------------------------------------------------------------------------------------------- the listings


def histories(source: Store, dest: Store, keys: KeyFilter | None = None) -> Iterator[History]:
    """Every key of either side with both its histories, in key order: a streamed merge of the two listings."""
    keys = keys or KeyFilter()
    src_base, dst_base = source.endpoint.prefix, dest.endpoint.prefix
    src_iter = by_key(prefetched(versions_in_range(source, keys)), source)
    dst_iter = by_key(prefetched(_listing_or_nothing(dest, keys)), dest)
    src, dst = next(src_iter, None), next(dst_iter, None)
    found: tuple[list[Version], list[Version]]
    while src is not None or dst is not None:
        first = side(
            sort_key(src[0].key[len(src_base) :]) if src else None,
            sort_key(dst[0].key[len(dst_base) :]) if dst else None,
        )
        if first < 0:
            assert src is not None
            key, found, src = src[0].key, (src, []), next(src_iter, None)
        elif first > 0:
            assert dst is not None
            key, found, dst = src_base + dst[0].key[len(dst_base) :], ([], dst), next(dst_iter, None)
        else:
            assert src is not None and dst is not None
            key, found = src[0].key, (src, dst)
            src, dst = next(src_iter, None), next(dst_iter, None)
        if keys(key) and key[len(src_base) :] in keys.range:
            yield key, *found


def versions_in_range(store: Store, keys: KeyFilter) -> Iterator[Version]:
    """The store's entries under the filter's prefix, in its range only."""
    base, span = store.endpoint.prefix, keys.range
    entries = list_versions(store, base + keys.prefix, key_marker=base + span.start_after if span.start_after else "")
    if span.end is None:
        return entries
    end = sort_key(base + span.end)
    return takewhile(lambda entry: sort_key(entry.key) <= end, entries)


def _listing_or_nothing(store: Store, keys: KeyFilter) -> Iterator[Version]:
    try:
        yield from versions_in_range(store, keys)
    except NoSuchBucket:
        return  # as the plain diff: each key is tried, fails and is listed


def by_key(entries: Iterator[Version], store: Store) -> Iterator[list[Version]]:
    """Each key's entries together, failing loudly where the keys are not in UTF-8 binary order."""
    previous: bytes | None = None
    for key, group in groupby(entries, key=lambda entry: entry.key):
        current = sort_key(key)
        if previous is not None and current <= previous:
            raise ListingOrderError(f"{store.label} listed the versions of {key!r} after a key that sorts later")
        previous = current
        yield list(group)


def _pages(items: Iterator[History]) -> Iterator[list[History]]:
    """Keys in pages of at most PAGE_KEYS keys and about PAGE_ENTRIES entries (a key's entries stay together)."""
    page: list[History] = []
    entries = 0
    for item in items:
        page.append(item)
        entries += len(item[1]) + len(item[2])
        if entries >= PAGE_ENTRIES or len(page) >= PAGE_KEYS:
            yield page
            page, entries = [], 0
    if page:
        yield page


def _versions(entries: Sequence[Version]) -> list[str]:
    """The IDs of the versions among `entries` (delete markers carry no metadata to read)."""
    return [e.version_id for e in entries if not e.delete_marker]
