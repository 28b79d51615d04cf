"""The bucket sync: compare the source with each destination, copy what differs.

The diff is a streaming merge of the two listings (s3s3.sync.diff), so memory stays
flat whatever the number of keys. Most keys are decided from the listings
alone: same size and same plain-MD5 ETag is unchanged, a missing key or a
different size is a copy. Where the ETags cannot be compared (multipart ETags,
stores whose ETag is no MD5) the ledger decides, one Redis round trip per page
of keys; only keys the ledger knows nothing of cost a HEAD.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from typing import Any

import redis

from s3s3.copy import copy_key, dest_key, identical, newer_at_source, read_md5
from s3s3.copy.replay import check_versioning, replay_key
from s3s3.errors import ListingOrderError, StoreError
from s3s3.logs import log_outcome
from s3s3.outcome import Action, Outcome
from s3s3.retry import describe
from s3s3.state import deadletter, ledger
from s3s3.state.leases import LocalLease, RedisLease
from s3s3.state.ledger import VersionLedger
from s3s3.state.overlap import Overlaps, Ticket
from s3s3.store import ObjectInfo, Store
from s3s3.store.probes import etags_are_md5s
from s3s3.sync.deletes import Deletes
from s3s3.sync.diff import batched, diff
from s3s3.sync.options import SyncOptions
from s3s3.sync.progress import Progress
from s3s3.sync.summary import Counts, Summary, Tally
from s3s3.sync.uploads import abort_incomplete
from s3s3.sync.versions import VersionSync

logger = logging.getLogger(__name__)

PAGE = 500  # listing pairs decided together (one ledger round trip, one registration of their copies)
SETTLE = 256  # copies whose registrations are ended together (s3s3.state.overlap)


class Verdict(StrEnum):
    """What the listings, the ledger or a HEAD say of one key at one destination."""

    SAME = "same"  # the destination holds the same bytes
    MISSING = "missing"  # not at the destination
    CHANGED = "changed"  # at the destination, with other bytes
    UNPROVEN = "unproven"  # neither the listings nor the ledger can tell: a HEAD decides


def duplicate_bucket(
    source: Store,
    dests: Iterable[Store],
    *,
    verify_md5: bool = False,
    workers: int = 16,
    options: SyncOptions | None = None,
    client: redis.Redis | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> Summary:
    """Copy every key missing or changed at each destination; return what was done.

    `options` says what the sync may do (the copies' shared limits among it);
    without it, `verify_md5` and `workers` make the options.

    `client` (Redis) holds the ledger and the dead-letter stream; without it
    every key the listings cannot decide costs a HEAD, and nothing is retried.

    A destination with `versions = all` gets every key's history replayed
    (s3s3.sync.versions); ConfigError when its bucket keeps no versions.
    """
    options = options or SyncOptions(verify_md5=verify_md5, workers=workers)
    dests = list(dests)
    replaying = check_versioning(source, dests)
    sync = _Sync(source, options, client, stop or threading.Event(), progress or Progress(enabled=False))
    sync.replaying = {d.label for d in replaying}
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(options.workers, thread_name_prefix="s3s3-bucket") as sync.pool:
            if client is not None and options.retry_failed and not options.dry_run and not options.enqueue:
                sync.retry_dead_letters(dests)
            for dest in dests:
                if sync.stop.is_set():
                    break
                try:
                    sync.one(dest)
                except ListingOrderError:
                    raise
                except StoreError as e:
                    sync.error(f"{dest.label}: cannot list: {describe(e)}")
                except Exception as e:
                    logger.exception("Unexpected error in the bucket sync of %s", dest.label)
                    sync.error(f"{dest.label}: stopped by an unexpected error: {describe(e)}")
    finally:
        sync.unsettled.finish()  # the pool has finished: copies found overlapped are copied again here
        if sync.recorder is not None:
            sync.recorder.flush()
    sync.summary.interrupted = sync.stop.is_set()
    sync.summary.seconds = time.monotonic() - started
    return sync.summary


class _Sync:
    """One bucket sync's state: the pool, the bound on queued work, the counts."""

    def __init__(
        self,
        source: Store,
        options: SyncOptions,
        client: redis.Redis | None,
        stop: threading.Event,
        progress: Progress,
    ) -> None:
        self.source = source
        self.options = options
        self.client = client
        self.recorder = (
            ledger.Recorder(client, days=options.ledger_days) if client is not None and not options.dry_run else None
        )
        self.stop = stop
        self.progress = progress
        self.summary = Summary(dry_run=options.dry_run)
        self.pool: ThreadPoolExecutor
        self.gate = threading.BoundedSemaphore(options.workers * 2)  # queued copies held in memory
        self.guard = Overlaps(client) if client is not None else None
        self.unsettled = _Unsettled(self)
        self.replaying: set[str] = set()  # labels of the destinations whose keys' histories are replayed
        self.lease: RedisLease | LocalLease = RedisLease(client) if client is not None else LocalLease()
        self.versions = VersionLedger(client, days=options.ledger_days, read_only=options.dry_run) if client else None

    def error(self, message: str) -> None:
        """A problem with a whole destination: logged, and the run exits 1."""
        logger.error("%s", message)
        self.summary.errors.append(message)

    def retry_dead_letters(self, dests: list[Store]) -> None:
        """The listener's dead-letter entries first: keys it gave up on."""
        assert self.client is not None

        def copy_everywhere(key: str) -> bool:
            # copy() and replay() never raise
            return all(self.replay(dest, key) if dest.label in self.replaying else self.copy(dest, key, check_dest=True)
                       for dest in dests)  # fmt: skip

        try:
            done, left = deadletter.retry(self.client, copy_everywhere)
        except redis.RedisError as e:
            logger.warning("Could not read the dead-letter stream: %s", e)
            return
        self.summary.retried = done
        if done or left:
            logger.info("Retried %d dead-lettered key(s); %d still fail", done, left)

    def one(self, dest: Store) -> None:
        """Sync one destination."""
        self.summary.destinations.setdefault(dest.endpoint.label, Counts())
        if dest.label in self.replaying:
            VersionSync(self.source, dest, self.options, self.summary, stop=self.stop, progress=self.progress,
                        submit=self.submit, lease=self.lease, versions=self.versions).run()  # fmt: skip
            return
        deletes = Deletes(dest, self.options, self.summary, self.stop, self.client)
        md5_etags = etags_are_md5s(dest)
        for page in batched(diff(self.source, dest, self.options.keys), PAGE):
            if self.stop.is_set():
                return
            self.progress.saw(len(page))
            decided: list[tuple[ObjectInfo, ObjectInfo | None, Verdict]] = []
            undecided = []
            for src, dst in page:
                if src is None:
                    assert dst is not None  # a pair always has one side
                    deletes.add(dst)
                    continue
                self.summary.count(dest.endpoint.label, Tally.CHECKED)
                verdict = _verdict(src, dst, md5_etags)
                if verdict is Verdict.UNPROVEN:
                    assert dst is not None  # a missing copy is MISSING, never unproven
                    undecided.append((src, dst))
                else:
                    decided.append((src, dst, verdict))
            for (src, dst), proven in zip(undecided, self.proven(dest, undecided), strict=True):
                decided.append((src, dst, Verdict.SAME if proven else Verdict.UNPROVEN))
            self.dispatch_page(dest, decided)
        deletes.finish()
        if self.options.abort_uploads_older_than is not None and not self.stop.is_set():
            self.abort_uploads(dest, self.options.abort_uploads_older_than)

    def abort_uploads(self, dest: Store, older_than: float) -> None:
        """--abort-incomplete-uploads: what no copy could abort itself."""
        options = self.options
        done = abort_incomplete(self.source, dest, older_than, prefix=options.keys.prefix, dry_run=options.dry_run)
        label = dest.endpoint.label
        for _ in range(done.aborted):
            self.summary.count(label, Tally.ABORTED)
        if done.failed:
            self.error(f"{label}: could not abort {done.failed} incomplete upload(s)")

    def proven(self, dest: Store, pairs: list[tuple[ObjectInfo, ObjectInfo]]) -> list[bool]:
        """Which pairs the ledger proves current (none without Redis)."""
        if self.client is None or not pairs:
            return [False] * len(pairs)
        try:
            return ledger.current(self.client, dest, pairs)
        except redis.RedisError as e:
            logger.warning("Could not read the ledger (each such key costs a HEAD): %s", e)
            return [False] * len(pairs)

    def dispatch_page(self, dest: Store, decided: list[tuple[ObjectInfo, ObjectInfo | None, Verdict]]) -> None:
        """Act on a page of verdicts; the copies it may start are registered (s3s3.overlap) in one round trip."""
        copying = [src.key for src, _, verdict in decided if self.may_copy(verdict)]
        tickets: dict[str, Ticket] = {}
        if self.guard is not None and copying:
            tickets = dict(zip(copying, self.guard.begin_many([(dest.label, k) for k in copying]), strict=True))
        for src, dst, verdict in decided:
            self.dispatch(dest, src, dst, verdict, tickets.get(src.key))

    def may_copy(self, verdict: Verdict) -> bool:
        return verdict is not Verdict.SAME and not self.options.dry_run and self.options.enqueue is None

    def dispatch(
        self, dest: Store, src: ObjectInfo, dst: ObjectInfo | None, verdict: Verdict, ticket: Ticket | None = None
    ) -> None:
        """Act on one key's verdict: same, missing, changed, or unproven (a HEAD decides)."""
        label = dest.endpoint.label
        if self.stop.is_set():
            if ticket is not None:
                self.unsettled.add(dest, src.key, ticket, None)
            return  # SIGTERM: start nothing new; the copies in flight finish
        if verdict is Verdict.SAME and not self.options.verify_md5:
            self.summary.count(label, Tally.SKIPPED)
            return
        if self.options.dry_run:
            self.dry_run(dest, src, dst, verdict)
        elif self.options.enqueue is not None and verdict is not Verdict.SAME:
            self.options.enqueue(src.key)
            self.summary.count(label, Tally.ENQUEUED)
        elif verdict is Verdict.SAME:
            self.submit(dest, src.key, self.verify, dest, src, dst)
        else:
            self.progress.queue(src.size)
            if verdict is Verdict.UNPROVEN:
                self.submit(dest, src.key, self.check, dest, src, ticket)
            else:
                self.submit(dest, src.key, self.copy, dest, src.key, check_dest=False, listed=src, ticket=ticket)

    def dry_run(self, dest: Store, src: ObjectInfo, dst: ObjectInfo | None, verdict: Verdict) -> None:
        if verdict is Verdict.UNPROVEN and identical(src, dest.head(dest_key(self.source, dest, src.key))):
            self.summary.count(dest.endpoint.label, Tally.SKIPPED)
            return
        if verdict is Verdict.SAME:  # --verify-md5 in a dry run: say what it would read, read nothing
            self.summary.count(dest.endpoint.label, Tally.SKIPPED)
            return
        print(f"would copy {src.key!r} to {dest.endpoint.label} ({verdict})", flush=True)
        self.summary.count(dest.endpoint.label, Tally.COPIED, src.size)

    def submit(self, dest: Store, key: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run `fn` for `key` in the pool; whatever it raises is a failure of that key, counted and listed."""
        self.gate.acquire()

        def run() -> None:
            try:
                fn(*args, **kwargs)
            except Exception as e:
                logger.exception("Unexpected error in the bucket sync of %r to %s", key, dest.endpoint.label)
                self.summary.outcome(Outcome(key, dest.label, Action.FAILED, error=describe(e)))
            finally:
                self.gate.release()

        self.pool.submit(run)

    def copy(
        self, dest: Store, key: str, *, check_dest: bool, listed: ObjectInfo | None = None, ticket: Ticket | None = None
    ) -> bool:
        """Copy one key; with the `ticket` its page registered, the overlap check waits for the batch's end."""
        outcome = copy_key(
            self.source, dest, key, verify_md5=self.options.verify_md5, check_dest=check_dest, listed=listed,
            retry=self.options.retry, guard=self.guard if ticket is None else None, limits=self.options.limits,
        )  # fmt: skip
        log_outcome(outcome)
        self.summary.outcome(outcome)
        self.progress.finish(outcome.size)
        if self.recorder is not None:
            self.recorder.record(dest, dest_key(self.source, dest, key), outcome)
        if ticket is not None:
            self.unsettled.add(dest, key, ticket, outcome.source_etag if outcome.action is Action.COPIED else None)
        return outcome.ok

    def replay(self, dest: Store, key: str) -> bool:
        """Replay one key's history (a dead-lettered key, at a destination with versions = all)."""
        outcomes = replay_key(self.source, dest, key, lease=self.lease, known=self.versions,
                              verify_md5=self.options.verify_md5, retry=self.options.retry,
                              limits=self.options.limits)  # fmt: skip
        for outcome in outcomes:
            self.summary.outcome(outcome)
        return all(outcome.ok for outcome in outcomes)

    def again_if_moved_on(self, dest: Store, key: str, copied: str) -> None:
        """A copy another overlapped: copy the key again if the source no longer holds the version copied."""
        try:
            if newer_at_source(self.source, dest, key, copied) is None:
                return
        except Exception as e:
            logger.warning("Copying %r to %s again: another copy ran at the same time, and the source cannot "
                           "say which version it holds: %s", key, dest.label, describe(e))  # fmt: skip
        self.copy(dest, key, check_dest=False)

    def check(self, dest: Store, src: ObjectInfo, ticket: Ticket | None = None) -> None:
        """A key neither the listings nor the ledger decide: one HEAD of the copy does, and the ledger learns it."""
        target = dest_key(self.source, dest, src.key)
        try:
            found = dest.head(target)
        except Exception:
            found = None  # the copy tries again, with retries, and reports what fails
        if found is None or not identical(src, found):
            self.copy(dest, src.key, check_dest=False, listed=src, ticket=ticket)
            return
        if ticket is not None:
            self.unsettled.add(dest, src.key, ticket, None)
        if self.options.verify_md5:
            self.verify(dest, src, found)
            return
        self.summary.count(dest.endpoint.label, Tally.SKIPPED)
        self.progress.finish(src.size)
        if self.recorder is not None:
            outcome = Outcome(src.key, dest.label, Action.SKIPPED, src.size, source_etag=src.etag,
                              dest_etag=found.etag)  # fmt: skip
            self.recorder.record(dest, target, outcome)

    def verify(self, dest: Store, src: ObjectInfo, dst: ObjectInfo) -> None:
        """--verify-md5: prove an unchanged-looking copy by MD5, reading where no store gives one."""
        try:
            src_md5 = src.etag if src.etag_is_md5 else read_md5(self.source, src.key)
            dst_md5 = dst.etag if dst.etag_is_md5 else read_md5(dest, dst.key)
        except Exception as e:
            self.summary.outcome(Outcome(src.key, dest.label, Action.FAILED, error=f"cannot verify: {describe(e)}"))
            return
        if src_md5 == dst_md5:
            self.summary.count(dest.endpoint.label, Tally.SKIPPED)
            return
        logger.error(
            "MD5 mismatch for %r at %s: source %s, destination %s; copying it again",
            src.key,
            dest.endpoint.label,
            src_md5,
            dst_md5,
        )
        self.copy(dest, src.key, check_dest=False, listed=src)


class _Unsettled:
    """Copies registered with their page (Overlaps.begin_many) and not yet ended: ended SETTLE at a time.

    A copy's registration outlives it until its batch ends, so the window
    it is checked over only widens: whatever overlapped the copy is still
    seen. A copy that did overlap another is then proven as copy_key proves
    it, by asking the source whether it moved on.
    """

    def __init__(self, sync: _Sync) -> None:
        self.sync = sync
        self.lock = threading.Lock()
        self.items: list[tuple[Store, str, Ticket, str | None]] = []

    def add(self, dest: Store, key: str, ticket: Ticket, copied: str | None) -> None:
        """`copied`: the source ETag the copy wrote, None where it wrote nothing."""
        with self.lock:
            self.items.append((dest, key, ticket, copied))
            if len(self.items) < SETTLE:
                return
            batch, self.items = self.items, []
        self.settle(batch)

    def finish(self) -> None:
        with self.lock:
            batch, self.items = self.items, []
        self.settle(batch)

    def settle(self, batch: list[tuple[Store, str, Ticket, str | None]]) -> None:
        if not batch or self.sync.guard is None:
            return
        overlapped = self.sync.guard.end_many([ticket for _, _, ticket, _ in batch])
        for (dest, key, _, copied), over in zip(batch, overlapped, strict=True):
            if over and copied is not None:
                self.sync.again_if_moved_on(dest, key, copied)


def _verdict(src: ObjectInfo, dst: ObjectInfo | None, md5_etags: bool = True) -> Verdict:
    """What the listings alone say (UNPROVEN: they cannot tell).

    `md5_etags` is False for a destination whose ETags only look like MD5s
    (SSE-KMS): its listing then proves nothing, and the ledger or a HEAD decides.
    """
    if dst is None:
        return Verdict.MISSING
    if src.size != dst.size:
        return Verdict.CHANGED
    if src.md5 and dst.md5 and md5_etags:
        return Verdict.SAME if src.md5 == dst.md5 else Verdict.CHANGED
    if src.etag and src.etag == dst.etag:
        return Verdict.SAME  # the same multipart ETag: the same parts of the same bytes
    return Verdict.UNPROVEN
