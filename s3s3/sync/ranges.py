"""Key ranges: a bucket cut into N parts of about equal size, from a few listing requests.

A shard of a bucket sync (`--shard I/N`, or a range task of `--split N`)
lists only its own range, on the source and on every destination
(ListObjectsV2 StartAfter, V1 Marker), and stops at the range's end: N
shards list the bucket once between them instead of N times.

The split points come from samples of the source's listing, taken the same
way by every shard: a delimiter listing of the top of the key space, one page
at the start of each prefix found there, and more pages inside the prefixes
that hold most keys (found as truncated pages). A page of 1000 keys tells how
densely keys sit at that point of the key space; between samples the count
is interpolated, with keys read as numbers whose digits are the characters
the keys there use. A bucket that changes between two shards' samples could
move the points: where Redis is at hand, the first shard to compute them
shares them with the others (`shared_split`).

Every key falls in exactly one range, whatever the split points are: range I
is (point I-1, point I], the first starts at the beginning, the last has no
end. Only the balance rests on the estimate.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import redis

from s3s3 import names
from s3s3.store import Store

logger = logging.getLogger(__name__)

PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))  # the digits of a key read as a number, until one is seen
_PRECISION = 8  # characters that count in that number
PROBES_AT_ONCE = 8
MAX_PROBED_PREFIXES = 1000  # prefixes at the top sampled one page each; more are weighted alike
SHARED_SECONDS = 6 * 3600  # how long the first shard's split points are offered to the others


@dataclass(frozen=True)
class KeyRange:
    """Keys after `start_after` up to `end` (inclusive; None: to the last), below an endpoint's prefix."""

    start_after: str = ""
    end: str | None = None

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        k = _bytes(key)
        return k > _bytes(self.start_after) and (self.end is None or k <= _bytes(self.end))

    def describe(self) -> str:
        return f"({self.start_after!r}, {'the end' if self.end is None else repr(self.end)}]"


WHOLE = KeyRange()


def ranges(points: list[str]) -> list[KeyRange]:
    """The len(points)+1 ranges that split points make."""
    bounds = ["", *points]
    return [KeyRange(bounds[i], points[i] if i < len(points) else None) for i in range(len(bounds))]


@dataclass
class _Segment:
    """Keys under `prefix` after `start` up to `end` (inclusive; None: the prefix's last), counted or estimated."""

    prefix: str
    start: str = ""  # a full key; "" from the prefix's beginning
    end: str | None = None
    count: float = 0.0
    keys: list[str] | None = None  # every key of the segment (exact), or its first page's (open)
    open: bool = False  # `count` is an estimate
    low: float = 0.0  # the segment's span, as numbers in [0, 1) below its prefix
    high: float = 1.0
    alphabet: str = PRINTABLE  # the characters its keys use, as digits of those numbers

    def holds(self, key: str) -> bool:
        return self.end is None or _bytes(key) <= _bytes(self.end)


def split_points(store: Store, prefix: str, count: int, *, budget: int | None = None) -> list[str]:
    """`count - 1` keys, relative to `prefix`, that cut the keys under it into `count` ranges of similar size."""
    if count <= 1:
        return []
    sampler = _Sampler(store, prefix, budget if budget is not None else 16 + 4 * count)
    return _choose(sampler.segments(), count, prefix)


class _Sampler:
    """Samples a listing within a budget of requests, always in the same order (so every shard agrees)."""

    def __init__(self, store: Store, prefix: str, budget: int) -> None:
        self.store = store
        self.prefix = prefix
        self.budget = budget
        self.requests = 0
        self._lock = threading.Lock()

    def segments(self) -> list[_Segment]:
        """The key space under the prefix as segments in key order, every one counted or estimated."""
        work = self._top()
        probes = [s for s in work if s.open]
        if len(probes) <= MAX_PROBED_PREFIXES:  # one page at the start of each prefix, beyond the budget
            self.budget += len(probes)
            with ThreadPoolExecutor(PROBES_AT_ONCE) as pool:  # each probe changes its own segment only
                list(pool.map(self._probe, probes))
        # else: so many prefixes that each is taken to hold about as many keys as another
        # Refine where most keys are: sample inside the heaviest estimated segment, while it matters.
        while self.requests < self.budget:
            open_ = [s for s in work if s.open]
            if not open_:
                break
            heaviest = max(open_, key=lambda s: s.count)
            if heaviest.count < sum(s.count for s in work) / 256:
                break
            if heaviest.keys is None:  # estimated from its neighbours: look at it
                self._probe(heaviest)
            else:
                work = self._refine(work, heaviest)
        return work

    def _page(self, prefix: str, start_after: str = "", delimiter: str = "") -> tuple[list[str], list[str], bool]:
        with self._lock:
            self.requests += 1
        page = self.store.list_page(prefix, start_after=start_after, delimiter=delimiter)
        return [o.key for o in page.objects], page.prefixes, page.truncated

    def _top(self) -> list[_Segment]:
        """Loose keys and prefixes at the top, from a delimiter listing."""
        segments: list[_Segment] = []
        after = ""
        while True:
            keys, prefixes, truncated = self._page(self.prefix, after, delimiter="/")
            segments += [_Segment(self.prefix, _before(k), k, 1.0, keys=[k]) for k in keys]
            segments += [_Segment(p, open=True, count=1.0) for p in prefixes]
            if not truncated or not (keys or prefixes):
                break
            after = max(keys[-1:] + prefixes[-1:])
            if len(keys) > len(prefixes):  # mostly loose keys: no structure to follow; sample the rest
                segments.append(_Segment(self.prefix, after, open=True, count=1.0))
                break
        return sorted(segments, key=lambda s: _bytes(s.end if s.keys and s.end is not None else s.start or s.prefix))

    def _probe(self, segment: _Segment) -> None:
        """One page at the segment's start: all its keys, or the density of keys there."""
        keys, _, truncated = self._page(segment.prefix, segment.start)
        inside = [k for k in keys if segment.holds(k)]
        segment.keys = inside
        if not truncated or len(inside) < len(keys) or not inside:
            segment.count, segment.open = float(len(inside)), False
            return
        suffixes = [k[len(segment.prefix) :] for k in inside]
        if segment.alphabet is PRINTABLE:  # its first page: the characters its keys use are the digits
            used = sorted({c for text in suffixes for c in text[:_PRECISION]})
            segment.alphabet = "".join(used) if len(used) > 1 else PRINTABLE
        if not segment.start:
            segment.low = _fraction(suffixes[0], segment.alphabet)
        last = _fraction(suffixes[-1], segment.alphabet)
        density = len(inside) / max(last - segment.low, 1e-12)
        segment.count, segment.open = len(inside) + density * max(segment.high - last, 0.0), True

    def _refine(self, work: list[_Segment], segment: _Segment) -> list[_Segment]:
        """Cut an estimated segment where its first page ended, sample the rest at its middle, estimate between."""
        assert segment.keys
        last = segment.keys[-1]
        digits = segment.alphabet
        seen = _fraction(last[len(segment.prefix) :], digits)
        known = _Segment(segment.prefix, segment.start, last, float(len(segment.keys)), keys=segment.keys,
                         low=segment.low, high=seen, alphabet=digits)  # fmt: skip
        middle = (seen + segment.high) / 2
        mark = segment.prefix + _key_of(middle, digits)
        if _bytes(mark) <= _bytes(last) or (segment.end is not None and _bytes(mark) >= _bytes(segment.end)):
            rest = _Segment(segment.prefix, last, segment.end, low=seen, high=segment.high, alphabet=digits)
            self._probe(rest)
            return _replace(work, segment, [known, rest])
        after = _Segment(segment.prefix, mark, segment.end, low=middle, high=segment.high, alphabet=digits)
        self._probe(after)
        if not after.keys:  # its keys end before the middle: halve the span, as a search for their end
            segment.high = middle
            density = len(segment.keys) / max(seen - segment.low, 1e-12)
            segment.count = len(segment.keys) + density * max(middle - seen, 0.0)
            return work
        gap = _Segment(segment.prefix, last, mark, open=True, low=seen, high=middle, alphabet=digits)
        before_density = len(segment.keys) / max(seen - segment.low, 1e-12)
        after_density = 0.0
        if after.keys:
            end = after.high if not after.open else _fraction(after.keys[-1][len(after.prefix) :], digits)
            span = end - middle
            after_density = len(after.keys) / max(span, 1e-12)
        gap.count = (before_density + after_density) / 2 * (middle - seen)
        return _replace(work, segment, [known, gap, after])


def _replace(work: list[_Segment], old: _Segment, new: list[_Segment]) -> list[_Segment]:
    index = next(i for i, s in enumerate(work) if s is old)
    return work[:index] + new + work[index + 1 :]


def _choose(segments: list[_Segment], count: int, prefix: str) -> list[str]:
    """Split keys at the quantiles of the segments' counts, relative to `prefix`, cut short."""
    total = sum(s.count for s in segments)
    if total <= 0:
        return []
    points: list[str] = []
    done = 0.0
    target_index = 1
    for segment in segments:
        while target_index < count and done + segment.count >= total * target_index / count:
            share = (total * target_index / count - done) / segment.count if segment.count else 0.0
            points.append(_point_in(segment, share))
            target_index += 1
        done += segment.count
    kept: list[str] = []
    for point in points:
        if point.startswith(prefix) and (not kept or _bytes(point) > _bytes(kept[-1])):
            kept.append(point)
    return [p[len(prefix) :] for p in kept]


def _point_in(segment: _Segment, share: float) -> str:
    """The key a `share` of the way through the segment."""
    if segment.keys and not segment.open:
        return segment.keys[min(max(int(share * len(segment.keys)) - 1, 0), len(segment.keys) - 1)]
    return segment.prefix + _key_of(segment.low + share * (segment.high - segment.low), segment.alphabet)


def _digit(char: str, alphabet: str) -> int:
    """The rank of `char` among the alphabet's characters (one it lacks: the rank of the one below it)."""
    return max(bisect.bisect_right(alphabet, char) - 1, 0)


def _fraction(text: str, alphabet: str) -> float:
    """A key read as a number in [0, 1), its characters as digits in the alphabet's base."""
    value, scale = 0.0, 1.0
    for char in text[:_PRECISION]:
        scale /= len(alphabet)
        value += _digit(char, alphabet) * scale
    return value


def _key_of(fraction: float, alphabet: str) -> str:
    """The key text of a number (the inverse of _fraction, to its precision)."""
    chars = []
    for _ in range(_PRECISION):
        fraction *= len(alphabet)
        digit = min(int(fraction), len(alphabet) - 1)
        chars.append(alphabet[digit])
        fraction -= digit
        if fraction <= 1e-9:
            break
    return "".join(chars)


def _before(key: str) -> str:
    """A key that sorts just before `key` (the start of a segment that holds it)."""
    return key[:-1]


def _bytes(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


def shared_split(client: redis.Redis | None, store: Store, prefix: str, count: int) -> list[str]:
    """The split points every shard of this bucket uses: the first shard's, where Redis can share them."""
    if client is None:
        return split_points(store, prefix, count)
    name = names.RANGES_PREFIX + hashlib.sha256(f"{store.label}\0{prefix}\0{count}".encode()).hexdigest()[:16]
    try:
        found = client.get(name)
        if found is not None:
            return list(json.loads(found))
    except (redis.RedisError, ValueError) as e:
        logger.warning("Could not read shared split points (computing them here): %s", e)
    points = split_points(store, prefix, count)
    try:
        if not client.set(name, json.dumps(points), nx=True, ex=SHARED_SECONDS):
            found = client.get(name)  # another shard was first: its points are everyone's
            if found is not None:
                return list(json.loads(found))
    except (redis.RedisError, ValueError) as e:
        logger.warning("Could not share split points: %s", e)
    return points
