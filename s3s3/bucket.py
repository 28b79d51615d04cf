"""The bucket sync: compare the source with each destination, copy what differs.

The diff is a streaming merge of the two listings (`s3s3.diff`), so memory stays
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
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import islice
from typing import Any, TypeVar

import redis

from s3s3 import deadletter, ledger
from s3s3.copy import copy_key, dest_key, identical, newer_at_source, read_md5
from s3s3.diff import KeyFilter, diff
from s3s3.errors import ListingOrderError, StoreError
from s3s3.logs import log_outcome
from s3s3.outcome import Action, Outcome
from s3s3.overlap import Overlaps, Ticket
from s3s3.parts import etags_are_md5s
from s3s3.progress import Progress
from s3s3.retry import Budget, RetryPolicy, describe
from s3s3.retry import call as retry_call
from s3s3.store import ObjectInfo, Store
from s3s3.uploads import abort_incomplete

logger = logging.getLogger(__name__)

PAGE = 500  # listing pairs decided together (one ledger round trip, one registration of their copies)
SETTLE = 256  # copies whose registrations are ended together (s3s3.overlap)
DELETE_BATCH = 1000  # keys per DeleteObjects, S3's limit

__all__ = ["ListingOrderError", "Summary", "SyncOptions", "diff", "duplicate_bucket"]

T = TypeVar("T")


class Verdict(StrEnum):
    """What the listings, the ledger or a HEAD say of one key at one destination."""

    SAME = "same"  # the destination holds the same bytes
    MISSING = "missing"  # not at the destination
    CHANGED = "changed"  # at the destination, with other bytes
    UNPROVEN = "unproven"  # neither the listings nor the ledger can tell: a HEAD decides


@dataclass(frozen=True)
class SyncOptions:
    """What a bucket sync may do, from s3s3bucket's command line."""

    keys: KeyFilter = field(default_factory=KeyFilter)
    dry_run: bool = False
    delete: bool = False
    max_delete: int = 1000  # 0: no limit
    verify_md5: bool = False
    workers: int = 16
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    enqueue: Callable[[str], None] | None = None  # announce keys instead of copying them
    retry_failed: bool = True  # retry the dead-letter stream's keys first (never in --reverse: they go forward)
    abort_uploads_older_than: float | None = None  # seconds: abort incomplete uploads this old (s3s3.uploads)
    ledger_days: int = 0  # [pubsub] ledger_days: the ledger expires this long after its last write (0: never)


@dataclass
class Counts:
    """What happened at one destination."""

    checked: int = 0
    copied: int = 0
    skipped: int = 0
    missing: int = 0
    failed: int = 0
    deleted: int = 0
    enqueued: int = 0
    aborted: int = 0  # incomplete multipart uploads aborted (--abort-incomplete-uploads)
    bytes: int = 0


@dataclass
class Summary(Counts):
    """What a bucket sync did, for the printed summary, --json and the exit code: the totals, and more."""

    dry_run: bool = False
    retried: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (dest, key, error)
    errors: list[str] = field(default_factory=list)  # whole-destination problems (listing, refused deletes)
    destinations: dict[str, Counts] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, dest: str, what: str, size: int = 0) -> None:
        """Add one key to `what` (copied, skipped, ...) for `dest` and for the totals."""
        with self._lock:
            per = self.destinations.setdefault(dest, Counts())
            for target in (self, per):
                setattr(target, what, getattr(target, what) + 1)
                if what == "copied":
                    target.bytes += size

    def add(self, outcome: Outcome) -> None:
        """Count a copy engine outcome."""
        if outcome.action is Action.FAILED:
            with self._lock:
                self.failures.append((outcome.dest, outcome.key, outcome.error or ""))
        counted = (Action.COPIED, Action.SKIPPED, Action.MISSING, Action.FAILED)
        self.count(outcome.dest, outcome.action if outcome.action in counted else Action.SKIPPED, outcome.size)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.errors or self.interrupted)

    def as_dict(self) -> dict[str, Any]:
        totals = {name: getattr(self, name) for name in Counts.__dataclass_fields__}
        return {
            **totals,
            "dry_run": self.dry_run,
            "retried": self.retried,
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
            "failures": [{"dest": d, "key": k, "error": e} for d, k, e in self.failures],
            "errors": list(self.errors),
            "destinations": {name: vars(c) for name, c in self.destinations.items()},
        }

    def line(self) -> str:
        verb = "would copy" if self.dry_run else "copied"
        text = (
            f"checked {self.checked} keys: {verb} {self.copied}, skipped {self.skipped} as identical, "
            f"missing {self.missing}, failed {self.failed}"
        )
        if self.deleted:
            text += f", {'would delete' if self.dry_run else 'deleted'} {self.deleted}"
        if self.enqueued:
            text += f", enqueued {self.enqueued}"
        if self.aborted:
            text += f", {'would abort' if self.dry_run else 'aborted'} {self.aborted} incomplete upload(s)"
        if self.retried:
            text += f", retried {self.retried} dead-lettered"
        text += f"; {self.bytes} bytes in {self.seconds:.1f}s"
        return text + (" (interrupted)" if self.interrupted else "")


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

    `client` (Redis) holds the ledger and the dead-letter stream; without it
    every key the listings cannot decide costs a HEAD, and nothing is retried.
    """
    options = options or SyncOptions(verify_md5=verify_md5, workers=workers)
    sync = _Sync(source, options, client, stop or threading.Event(), progress or Progress(enabled=False))
    started = time.monotonic()
    dests = list(dests)
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

    def error(self, message: str) -> None:
        """A problem with a whole destination: logged, and the run exits 1."""
        logger.error("%s", message)
        self.summary.errors.append(message)

    def retry_dead_letters(self, dests: list[Store]) -> None:
        """The listener's dead-letter entries first: keys it gave up on."""
        assert self.client is not None

        def copy_everywhere(key: str) -> bool:
            return all(self.copy(dest, key, check_dest=True) for dest in dests)  # copy() never raises

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
        deletes = _Deletes(self, dest)
        md5_etags = etags_are_md5s(dest)
        for page in _batched(diff(self.source, dest, self.options.keys), PAGE):
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
                self.summary.count(dest.endpoint.label, "checked")
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
            self.summary.count(label, "aborted")
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
            tickets = dict(zip(copying, self.guard.begin_many(dest.label, copying), strict=True))
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
            self.summary.count(label, "skipped")
            return
        if self.options.dry_run:
            self.dry_run(dest, src, dst, verdict)
        elif self.options.enqueue is not None and verdict is not Verdict.SAME:
            self.options.enqueue(src.key)
            self.summary.count(label, "enqueued")
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
            self.summary.count(dest.endpoint.label, "skipped")
            return
        if verdict is Verdict.SAME:  # --verify-md5 in a dry run: say what it would read, read nothing
            self.summary.count(dest.endpoint.label, "skipped")
            return
        print(f"would copy {src.key!r} to {dest.endpoint.label} ({verdict})", flush=True)
        self.summary.count(dest.endpoint.label, "copied", src.size)

    def submit(self, dest: Store, key: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run `fn` for `key` in the pool; whatever it raises is a failure of that key, counted and listed."""
        self.gate.acquire()

        def run() -> None:
            try:
                fn(*args, **kwargs)
            except Exception as e:
                logger.exception("Unexpected error in the bucket sync of %r to %s", key, dest.endpoint.label)
                self.summary.add(Outcome(key, dest.label, Action.FAILED, error=describe(e)))
            finally:
                self.gate.release()

        self.pool.submit(run)

    def copy(
        self, dest: Store, key: str, *, check_dest: bool, listed: ObjectInfo | None = None, ticket: Ticket | None = None
    ) -> bool:
        """Copy one key; with the `ticket` its page registered, the overlap check waits for the batch's end."""
        outcome = copy_key(
            self.source, dest, key, verify_md5=self.options.verify_md5, check_dest=check_dest, listed=listed,
            retry=self.options.retry, guard=self.guard if ticket is None else None,
        )  # fmt: skip
        log_outcome(outcome)
        self.summary.add(outcome)
        self.progress.finish(outcome.size)
        if self.recorder is not None:
            self.recorder.record(dest, dest_key(self.source, dest, key), outcome)
        if ticket is not None:
            self.unsettled.add(dest, key, ticket, outcome.source_etag if outcome.action is Action.COPIED else None)
        return outcome.ok

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
        self.summary.count(dest.endpoint.label, "skipped")
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
            self.summary.add(Outcome(src.key, dest.label, Action.FAILED, error=f"cannot verify: {describe(e)}"))
            return
        if src_md5 == dst_md5:
            self.summary.count(dest.endpoint.label, "skipped")
            return
        logger.error(
            "MD5 mismatch for %r at %s: source %s, destination %s; copying it again",
            src.key, dest.endpoint.label, src_md5, dst_md5,
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


class _Deletes:
    """--delete: keys at a destination the source no longer has, bounded by --max-delete."""

    def __init__(self, sync: _Sync, dest: Store) -> None:
        self.sync = sync
        self.dest = dest
        self.pending: list[str] = []
        self.refused = False

    def add(self, dst: ObjectInfo) -> None:
        options = self.sync.options
        if not options.delete or self.refused:
            return
        self.pending.append(dst.key)
        limit = options.max_delete
        if limit and len(self.pending) > limit:
            self.refused = True
            message = (
                f"{self.dest.endpoint.label}: refusing to delete more than {limit} keys the source no longer has "
                f"(raise --max-delete, or 0 for no limit); deleted none"
            )
            logger.error("%s", message)
            self.sync.summary.errors.append(message)
            self.pending = []
        elif not limit and len(self.pending) >= DELETE_BATCH:
            self.flush()

    def finish(self) -> None:
        if not self.refused and not self.sync.stop.is_set():
            self.flush()

    def flush(self) -> None:
        label = self.dest.endpoint.label
        for batch in _batched(iter(self.pending), DELETE_BATCH):
            if self.sync.options.dry_run:
                for key in batch:
                    print(f"would delete {key!r} at {label}", flush=True)
                    self.sync.summary.count(label, "deleted")
                continue
            try:
                failed = retry_call(
                    lambda b=batch: self.dest.delete_many(b),  # type: ignore[misc]
                    Budget(self.sync.options.retry), what=f"deleting {len(batch)} keys at {label}",
                )  # fmt: skip
            except Exception as e:
                failed = {k: describe(e) for k in batch}
            for key in batch:
                if key in failed:
                    self.sync.summary.add(Outcome(key, label, Action.FAILED, error=f"delete: {failed[key]}"))
                else:
                    log_outcome(Outcome(key, label, Action.DELETED))
                    self.sync.summary.count(label, "deleted")
            if self.sync.client is not None:
                ledger.forget(self.sync.client, self.dest, [k for k in batch if k not in failed])
        self.pending = []


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


def _batched(items: Iterator[T], size: int) -> Iterator[list[T]]:
    while batch := list(islice(items, size)):
        yield batch
