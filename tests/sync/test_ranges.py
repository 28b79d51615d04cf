"""s3s3.sync.ranges: split points from a few listing pages, and the ranges they make."""

from __future__ import annotations

import hashlib
import random

import pytest

from s3s3.config import Endpoint
from s3s3.sync.diff import KeyFilter, diff
from s3s3.sync.ranges import KeyRange, ranges, split_points
from tests.stores import SortedStore


def store(keys: list[str], name: str = "source", prefix: str = "") -> SortedStore:
    return SortedStore(Endpoint(name=name, bucket=name, prefix=prefix), keys)


def hexkeys(prefix: str, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{prefix}{rng.getrandbits(48):012x}.dat" for _ in range(count)]


def skewed(total: int, seed: int = 7) -> list[str]:
    """Keys over 60 tenants, Zipf-like: the first holds about a third of them; a few loose keys at the top."""
    weights = [1 / (i + 1) ** 1.1 for i in range(60)]
    scale = total / sum(weights)
    keys = [f"loose-{i}.txt" for i in range(5)]
    for i, weight in enumerate(weights):
        keys += hexkeys(f"tenant{i:03d}/", max(1, int(weight * scale)), seed + i)
    return keys


def shard_sizes(keys: list[str], points: list[str]) -> list[int]:
    parts = ranges(points)
    sizes = [0] * len(parts)
    for key in keys:
        (index,) = [i for i, r in enumerate(parts) if key in r]  # in exactly one range
        sizes[index] += 1
    return sizes


def test_ranges_cut_the_key_space_so_that_every_key_is_in_exactly_one() -> None:
    parts = ranges(["b", "m/x"])
    assert parts == [KeyRange("", "b"), KeyRange("b", "m/x"), KeyRange("m/x", None)]
    assert [[k in r for r in parts] for k in ("a", "b", "b0", "m/x", "m/y", "\U0001f600")] == [
        [True, False, False], [True, False, False], [False, True, False],
        [False, True, False], [False, False, True], [False, False, True],
    ]  # fmt: skip


@pytest.mark.parametrize("count", [2, 4, 16])
def test_split_points_balance_a_skewed_bucket_from_a_few_pages(count: int) -> None:
    # Given 120,000 keys over 60 prefixes, a third of them under one
    keys = skewed(120_000)
    source = store(keys)
    # When the split points are chosen
    points = split_points(source, "", count)
    # Then they cost a page per prefix and a few more, and every range holds about 1/count of the keys
    assert source.pages <= 1 + 60 + 16 + 4 * count
    sizes = shard_sizes(keys, points)
    assert len(sizes) == count and sum(sizes) == len(keys)
    assert max(sizes) <= 1.25 * len(keys) / count, sizes
    # And every shard computes the same points
    assert split_points(store(keys), "", count) == points


def test_split_points_balance_a_flat_bucket_of_random_names() -> None:
    keys = hexkeys("", 50_000, 3)
    sizes = shard_sizes(keys, split_points(store(keys), "", 4))
    assert max(sizes) <= 1.25 * len(keys) / 4, sizes


def test_split_points_balance_sequential_names_under_one_prefix() -> None:
    keys = [f"img{i:07d}.jpg" for i in range(50_000)]
    sizes = shard_sizes(keys, split_points(store(keys), "", 4))
    assert max(sizes) <= 1.25 * len(keys) / 4, sizes


def test_split_points_are_relative_to_the_prefix_and_a_small_bucket_needs_one_page() -> None:
    keys = [f"base/k{i:03d}" for i in range(300)]
    source = store(keys)
    points = split_points(source, "base/", 3)
    assert source.pages <= 2
    assert all(not p.startswith("base/") for p in points)
    assert shard_sizes([k[len("base/") :] for k in keys], points) == [100, 100, 100]
    assert split_points(store([]), "", 4) == []


def test_a_range_diff_lists_only_its_range_on_both_sides_and_the_ranges_cover_the_bucket() -> None:
    # Given a source and a destination under different prefixes, the destination missing some keys
    keys = skewed(20_000)
    source = store(keys, prefix="")
    dest = store(["copy/" + k for k in keys if hashlib.md5(k.encode()).digest()[0] > 8], name="dest", prefix="copy/")
    whole_pages = None
    seen: list[str] = []
    pages = []
    for part in ranges(split_points(source, "", 4)):
        source.pages = dest.pages = 0
        # When each range is diffed
        pairs = list(diff(source, dest, KeyFilter(range=part)))
        pages.append(source.pages + dest.pages)
        seen += [(s or d).key if s else "copy-gone" for s, d in pairs]  # type: ignore[union-attr]
    source.pages = dest.pages = 0
    whole = list(diff(source, dest))
    whole_pages = source.pages + dest.pages
    # Then together they saw every key once, and listed about what one whole listing costs
    assert seen == [s.key for s, _ in whole]  # type: ignore[union-attr]
    assert sum(pages) <= whole_pages + 2 * 4
