"""The listing diff: a streaming merge of two sorted listings, in constant memory.

S3 lists keys in UTF-8 binary order, so walking the source and destination
listings side by side pairs every key with its counterpart without holding
either listing. The order is checked as it goes: a store that lists out of
order would otherwise make keys look missing (copied for nothing) or extra
(deleted by mistake), so it stops the diff instead.
"""

from __future__ import annotations

import fnmatch
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from queue import Full, Queue
from typing import Any, TypeVar

from s3s3.errors import ListingOrderError, NoSuchBucket
from s3s3.store import ObjectInfo, Store, list_objects
from s3s3.sync.ranges import WHOLE, KeyRange

T = TypeVar("T")


@dataclass(frozen=True)
class KeyFilter:
    """Which source keys a sync looks at: --prefix, --include, --exclude, and a key range (--shard, --work)."""

    prefix: str = ""  # below each endpoint's own prefix
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    range: KeyRange = WHOLE  # below each endpoint's own prefix; only this range is listed

    def __call__(self, key: str) -> bool:
        if self.include and not any(fnmatch.fnmatchcase(key, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(key, p) for p in self.exclude)


def diff(
    source: Store, dest: Store, keys: KeyFilter | None = None
) -> Iterator[tuple[ObjectInfo | None, ObjectInfo | None]]:
    """Every key of either side, in order: (src, dst), (src, None) if missing, (None, dst) if extra.

    Keys are compared below each bucket's configured prefix, so a source key
    pairs with the destination key it is copied to.
    """
    keys = keys or KeyFilter()
    src_base, dst_base = source.endpoint.prefix, dest.endpoint.prefix
    src_iter = _ordered(prefetched(_in_range(source, keys)), source)
    dst_iter = _ordered(prefetched(_listing_or_nothing(dest, keys)), dest)
    src, dst = next(src_iter, None), next(dst_iter, None)
    while src is not None or dst is not None:
        first = side(_rel(src.key, src_base) if src else None, _rel(dst.key, dst_base) if dst else None)
        pair: tuple[ObjectInfo | None, ObjectInfo | None]
        if first < 0:
            assert src is not None
            pair, key, src = (src, None), src.key, next(src_iter, None)
        elif first > 0:
            assert dst is not None
            pair, key, dst = (None, dst), src_base + dst.key[len(dst_base) :], next(dst_iter, None)
        else:
            assert src is not None and dst is not None
            pair, key = (src, dst), src.key
            src, dst = next(src_iter, None), next(dst_iter, None)
        if keys(key) and key[len(src_base) :] in keys.range:  # a store that ignored StartAfter lists more
            yield pair


def side(src: bytes | None, dst: bytes | None) -> int:
    """Which listing's key comes first: -1 the source's alone, 1 the destination's alone, 0 the same key."""
    if dst is None or (src is not None and src < dst):
        return -1
    if src is None or dst < src:
        return 1
    return 0


def prefetched(items: Iterator[T], batch: int = 1000, ahead: int = 2) -> Iterator[T]:
    """`items`, read by a thread of its own up to `ahead` batches in advance.

    Both listings then wait on their stores at the same time instead of in
    turn, and memory stays bounded by the few batches in the queue.
    """
    queue: Queue[list[T] | BaseException | None] = Queue(maxsize=ahead)
    stop = threading.Event()

    def put(value: list[T] | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                queue.put(value, timeout=0.5)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            while chunk := list(islice(items, batch)):
                if not put(chunk):
                    return
            put(None)
        except BaseException as e:  # handed to the reader, raised there
            put(e)

    # Started now, not at the first next(): both listings are in flight before either is read.
    threading.Thread(target=produce, name="s3s3-listing", daemon=True).start()
    reader = _drain(queue, stop)
    weakref.finalize(reader, stop.set)  # a reader dropped unread still stops its producer
    return reader


def _drain(queue: Queue[Any], stop: threading.Event) -> Iterator[Any]:
    try:
        while (chunk := queue.get()) is not None:
            if isinstance(chunk, BaseException):
                raise chunk
            yield from chunk
    finally:
        stop.set()


def _in_range(store: Store, keys: KeyFilter) -> Iterator[ObjectInfo]:
    """The store's keys under the filter's prefix, in its range only: listed from its start, stopped at its end."""
    base, span = store.endpoint.prefix, keys.range
    start_after = base + span.start_after if span.start_after else ""
    return list_objects(store, base + keys.prefix, start_after, None if span.end is None else base + span.end)


def _listing_or_nothing(store: Store, keys: KeyFilter) -> Iterator[ObjectInfo]:
    try:
        yield from _in_range(store, keys)
    except NoSuchBucket:
        # A destination bucket that does not exist holds nothing: each key is
        # tried, fails and is listed, and the other destinations still sync.
        return


def _ordered(objects: Iterator[ObjectInfo], store: Store) -> Iterator[ObjectInfo]:
    """Pass the listing through, failing loudly if it is not in UTF-8 binary order."""
    previous: bytes | None = None
    for info in objects:
        current = sort_key(info.key)
        if previous is not None and current <= previous:
            raise ListingOrderError(
                f"{store.label} listed {info.key!r} after a key that sorts later; "
                "try list_version = 1 for this endpoint"
            )
        previous = current
        yield info


def _rel(key: str, base: str) -> bytes:
    return sort_key(key[len(base) :])


def sort_key(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


def batched(items: Iterator[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last shorter): pages of pairs, batches of keys."""
    while batch := list(islice(items, size)):
        yield batch
