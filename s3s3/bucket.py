"""The bucket sync: compare the source listing with each destination's, copy what differs.

Both listings arrive sorted (S3 lists keys in UTF-8 binary order), so the diff is
a streaming merge of the two: memory stays flat whatever the number of keys.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from s3s3.copy import Outcome, copy_key, dest_key
from s3s3.errors import S3S3Error
from s3s3.logs import log_outcome
from s3s3.s3 import Bucket, ClientError, ObjectInfo, error_code, list_objects

logger = logging.getLogger(__name__)


class ListingOrderError(S3S3Error):
    """Raised when a store lists keys out of UTF-8 binary order, so the diff cannot be trusted."""


@dataclass
class Summary:
    """What a bucket sync did, for the printed summary and the exit code."""

    checked: int = 0
    copied: int = 0
    skipped: int = 0
    missing: int = 0
    failed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (dest, key, error)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, outcome: Outcome) -> None:
        with self._lock:
            if outcome.action == "copied":
                self.copied += 1
                self.bytes += outcome.size
            elif outcome.action == "skipped":
                self.skipped += 1
            elif outcome.action == "missing":
                self.missing += 1
            elif outcome.action == "failed":
                self.failed += 1
                self.failures.append((outcome.dest, outcome.key, outcome.error or ""))

    def as_dict(self) -> dict[str, object]:
        return {
            "checked": self.checked,
            "copied": self.copied,
            "skipped": self.skipped,
            "missing": self.missing,
            "failed": self.failed,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "failures": [{"dest": d, "key": k, "error": e} for d, k, e in self.failures],
        }

    def line(self) -> str:
        return (
            f"checked {self.checked} keys: copied {self.copied}, skipped {self.skipped} as identical, "
            f"missing {self.missing}, failed {self.failed}; {self.bytes} bytes in {self.seconds:.1f}s"
        )


def duplicate_bucket(
    source: Bucket,
    dests: Iterable[Bucket],
    *,
    verify_md5: bool = False,
    workers: int = 8,
) -> Summary:
    """Copy every key missing or changed at each destination; return what was done."""
    started = time.monotonic()
    summary = Summary()
    gate = threading.BoundedSemaphore(workers * 2)  # listed-but-not-copied keys held in memory

    def run(dest: Bucket, key: str, check_dest: bool) -> None:
        try:
            outcome = copy_key(source, dest, key, verify_md5=verify_md5, check_dest=check_dest)
            log_outcome(outcome)
            summary.add(outcome)
        finally:
            gate.release()

    with ThreadPoolExecutor(workers, thread_name_prefix="s3s3-bucket") as pool:
        for dest in dests:
            for src, dst in diff(source, dest):
                summary.checked += 1
                if dst is not None and _unchanged(src, dst):
                    # Through add(): worker threads update the same counters under its lock.
                    summary.add(Outcome(src.key, dest.endpoint.label, "skipped", src.size))
                    continue
                gate.acquire()
                # A key whose ETags differ (multipart, other upload shapes) may
                # still be identical: let the copy engine HEAD it and decide.
                pool.submit(run, dest, src.key, dst is not None)
    summary.seconds = time.monotonic() - started
    return summary


def diff(source: Bucket, dest: Bucket) -> Iterator[tuple[ObjectInfo, ObjectInfo | None]]:
    """Each source object with the destination object at its key (None where there is none)."""
    src_iter = _ordered(list_objects(source, source.endpoint.prefix), source)
    dst_iter = _ordered(list_objects(dest, dest.endpoint.prefix), dest)
    try:
        dst = next(dst_iter, None)
    except ClientError as e:
        if error_code(e) != "NoSuchBucket":
            raise
        # A destination bucket that does not exist holds nothing: each key is
        # tried, fails and is listed, and the other destinations still sync.
        dst = None
    for src in src_iter:
        target = dest_key(source, dest, src.key)
        while dst is not None and _sort_key(dst.key) < _sort_key(target):
            dst = next(dst_iter, None)
        if dst is not None and dst.key == target:
            yield src, dst
            dst = next(dst_iter, None)
        else:
            yield src, None


def _unchanged(src: ObjectInfo, dst: ObjectInfo) -> bool:
    """Decided from the listings alone: same size and same plain-MD5 ETag."""
    return src.size == dst.size and bool(src.md5) and src.md5 == dst.md5


def _ordered(objects: Iterator[ObjectInfo], bucket: Bucket) -> Iterator[ObjectInfo]:
    """Pass the listing through, failing loudly if it is not in UTF-8 binary order."""
    previous: bytes | None = None
    for info in objects:
        current = _sort_key(info.key)
        if previous is not None and current <= previous:
            raise ListingOrderError(
                f"{bucket.endpoint.label} listed {info.key!r} after a key that sorts later; "
                "try list_version = 1 for this endpoint"
            )
        previous = current
        yield info


def _sort_key(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")
