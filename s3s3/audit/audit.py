"""The audit: each key of the source against each destination, and the strongest evidence for what it holds.

The two listings are compared as the bucket sync compares them (the streamed
merge of s3s3.sync.diff, in constant memory), and most keys are decided
there (s3s3.audit.evidence). The others cost HEADs, in a pool of workers:
the destination's first, the source's only where the destination's does
not prove the copy. Keys picked for a read-back (s3s3.audit.fixity) are read
whole on both sides, within the process's bandwidth, and their MD5s decide.
Nothing is copied, written or deleted at any store; entries go to the report
in listing order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from s3s3.audit.counted import Counted, Requests
from s3s3.audit.evidence import Decision, Evidence, Verdict, from_heads, from_listings, from_reads
from s3s3.audit.fixity import picked, read_md5
from s3s3.audit.report import Entry, Report, Summary
from s3s3.copy import source_key
from s3s3.copy.limits import DEFAULT, Limits
from s3s3.errors import ListingOrderError, StoreError
from s3s3.retry import Budget, RetryPolicy, describe
from s3s3.retry import call as retry_call
from s3s3.store import ObjectInfo, Store
from s3s3.store.probes import etags_are_md5s
from s3s3.sync.diff import KeyFilter, batched, diff

logger = logging.getLogger(__name__)

PAGE = 500  # listing pairs decided together: at most this many entries wait for their HEADs or reads
READ_RETRY = RetryPolicy(max_seconds=120.0)  # a read-back cut short is started over for this long

Work = Callable[[Store, ObjectInfo, ObjectInfo, bool], Decision]


@dataclass(frozen=True)
class AuditOptions:
    """What an audit looks at and how hard: from `s3s3 audit`'s command line."""

    keys: KeyFilter = field(default_factory=KeyFilter)
    read_fraction: float = 0.0  # keys read back on both sides: 0 none, 1 every one (--read-all)
    seed: int = 0  # which keys a fraction picks (s3s3.audit.fixity)
    workers: int = 16  # HEADs and reads at once
    limits: Limits = DEFAULT  # the process's bandwidth: reads take from it as copies do


def audit(
    source: Store,
    dests: Sequence[Store],
    report: Report,
    *,
    options: AuditOptions | None = None,
    stop: threading.Event | None = None,
) -> Summary:
    """Audit every key under the options' filter at each destination into `report`; return its summary."""
    options = options or AuditOptions()
    requests = Requests()
    run = _Audit(Counted(source, requests), options, report, requests, stop or threading.Event())
    started = time.monotonic()
    report.begin({dest.endpoint.label: dest.endpoint.name for dest in dests})
    with ThreadPoolExecutor(options.workers, thread_name_prefix="s3s3-audit") as run.pool:
        for dest in dests:
            if run.stop.is_set():
                break
            try:
                run.one(Counted(dest, requests))
            except (StoreError, ListingOrderError) as e:
                message = f"{dest.label}: cannot list: {describe(e)}"
                logger.error("%s", message)
                report.summary.errors.append(message)
    summary = report.summary
    summary.requests = requests.as_dict()
    summary.bytes_read = run.bytes_read
    summary.read_fraction = options.read_fraction
    summary.seed = options.seed if 0.0 < options.read_fraction < 1.0 else None  # --read-all needs no seed
    summary.interrupted = run.stop.is_set()
    summary.seconds = time.monotonic() - started
    return report.finish()


class _Audit:
    """One audit's state: the counted source, the pool, the bytes read back."""

    def __init__(
        self, source: Store, options: AuditOptions, report: Report, requests: Requests, stop: threading.Event
    ) -> None:
        self.source = source
        self.options = options
        self.report = report
        self.requests = requests
        self.stop = stop
        self.pool: ThreadPoolExecutor
        self.bytes_read = 0
        self._lock = threading.Lock()

    def one(self, dest: Store) -> None:
        """Audit one destination, page by page of the two listings."""
        md5_etags = etags_are_md5s(dest)
        for page in batched(diff(self.source, dest, self.options.keys), PAGE):
            if self.stop.is_set():
                return
            judged = [self.judge(dest, src, dst, md5_etags) for src, dst in page]
            for item in judged:
                entry = item.result() if isinstance(item, Future) else item
                self.report.add(entry)
                _log(entry)

    def judge(self, dest: Store, src: ObjectInfo | None, dst: ObjectInfo | None, md5_etags: bool) -> Entry | Future[
        Entry
    ]:
        """The entry the listings decide; else the entry HEADs or a read-back will decide, in the pool."""
        decided = from_listings(src, dst, md5_etags=md5_etags)
        read = src is not None and picked(src.key, self.options.read_fraction, self.options.seed)
        if decided is not None and (decided.verdict is not Verdict.EQUAL or not read):
            return self.entry(dest, src, dst, decided)
        assert src is not None and dst is not None  # a key on one side only is decided by the listings
        return self.pool.submit(self.settle, self.read if read else self.heads, dest, src, dst, md5_etags)

    def settle(self, work: Work, dest: Store, src: ObjectInfo, dst: ObjectInfo, md5_etags: bool) -> Entry:
        """Run `work` for one key; a failure is that key's verdict (error), and the audit goes on."""
        try:
            return self.entry(dest, src, dst, work(dest, src, dst, md5_etags))
        except StoreError as e:
            error = describe(e)
        except Exception as e:
            logger.exception("Unexpected error in the audit of %r at %s", src.key, dest.label)
            error = describe(e)
        return self.entry(dest, src, dst, Decision(Verdict.ERROR, Evidence.NONE), error=error)

    def heads(self, dest: Store, src: ObjectInfo, dst: ObjectInfo, md5_etags: bool) -> Decision:
        """HEAD the copy; where it does not prove itself against the source's listing, HEAD the source too."""
        found = dest.head(dst.key, checksums=True)
        if found is None:  # deleted since it was listed
            return Decision(Verdict.MISSING, Evidence.LISTING)
        decided = from_heads(src, found, md5_etags=md5_etags)
        if decided.verdict is Verdict.EQUAL:
            return decided
        # A listing does not say what a HEAD does (encryption, metadata, checksums): ask before saying no.
        original = self.source.head(src.key, checksums=True)
        if original is None:
            return Decision(Verdict.EXTRA, Evidence.LISTING)
        return from_heads(original, found, md5_etags=md5_etags)

    def read(self, dest: Store, src: ObjectInfo, dst: ObjectInfo, md5_etags: bool) -> Decision:
        """Read both objects whole and compare the MD5s of their bytes."""
        mine, theirs = self.read_one(self.source, src.key), self.read_one(dest, dst.key)
        with self._lock:
            self.bytes_read += mine[1] + theirs[1]
        return from_reads(mine[0], theirs[0])

    def read_one(self, store: Store, key: str) -> tuple[str, int]:
        """One object read whole (started over after a cut, for a while): its MD5 and size."""
        bandwidth = self.options.limits.bandwidth
        return retry_call(lambda: read_md5(store, key, bandwidth), Budget(READ_RETRY), what=f"reading {key!r} back")

    def entry(
        self, dest: Store, src: ObjectInfo | None, dst: ObjectInfo | None, decided: Decision, error: str | None = None
    ) -> Entry:
        """The report's entry for a key at `dest`, named by its source key."""
        either = src or dst
        assert either is not None
        key = src.key if src is not None else source_key(self.source, dest, either.key)
        return Entry(
            key=key, dest=dest.label, verdict=decided.verdict, evidence=decided.evidence, size=either.size,
            source_etag=src.etag if src else None, dest_etag=dst.etag if dst else None,
            path=key[len(self.source.endpoint.prefix) :], error=error,
        )  # fmt: skip


def _log(entry: Entry) -> None:
    """An INFO line for each key not proven equal (a WARNING where its audit failed); DEBUG for the rest."""
    if entry.verdict is Verdict.ERROR:
        logger.warning("Could not audit %r at %s: %s", entry.key, entry.dest, entry.error)
    elif entry.verdict is Verdict.EQUAL:
        logger.debug("Audited %r at %s: equal (%s)", entry.key, entry.dest, entry.evidence)
    else:
        logger.info("Audited %r at %s: %s (%s)", entry.key, entry.dest, entry.verdict, entry.evidence)
