"""s3s3.sync.versions: both version listings merged key by key, and the pages a sync decides together."""

from __future__ import annotations

from itertools import islice
from typing import cast

import pytest

from s3s3.config import Endpoint
from s3s3.errors import ListingOrderError
from s3s3.store import Store, Version, VersionPage
from s3s3.store.facts import Facts
from s3s3.sync.diff import KeyFilter
from s3s3.sync.versions import PAGE_ENTRIES, _pages, histories

pytestmark = pytest.mark.timeout(30)


class VersionedStore:
    """A store whose only skill is ListObjectVersions of these entries, `page_size` a page, as S3 pages it."""

    transport = "test"

    def __init__(self, name: str, entries: list[Version], page_size: int = 3, prefix: str = "") -> None:
        self.endpoint = Endpoint(name=name, bucket=name, prefix=prefix)
        self.facts = Facts(name)
        self.entries = entries
        self.page_size = page_size
        self.pages = 0

    @property
    def label(self) -> str:
        return self.endpoint.label

    def list_versions_page(
        self, prefix: str, *, key_marker: str = "", version_marker: str = "", max_keys: int = 1000
    ) -> VersionPage:
        self.pages += 1
        entries = [e for e in self.entries if e.key.startswith(prefix)]
        start = 0
        if version_marker:
            start = 1 + next(i for i, e in enumerate(entries) if (e.key, e.version_id) == (key_marker, version_marker))
        elif key_marker:
            start = next((i for i, e in enumerate(entries) if sort(e.key) > sort(key_marker)), len(entries))
        page = entries[start : start + min(self.page_size, max_keys)]
        truncated = start + len(page) < len(entries)
        last = page[-1] if page else None
        return VersionPage(page, truncated, last.key if last else "", last.version_id if last else "")


def sort(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


def history(key: str, count: int, marker_last: bool = False) -> list[Version]:
    """`key`'s entries, newest first: `count` versions, the newest a delete marker if asked."""
    found = [Version(key, f"{key}#{n}", None, size=n) for n in range(count)][::-1]
    if marker_last:
        found[0] = Version(key, f"{key}#m", None, delete_marker=True)
    return found


def store(name: str, *keys: tuple[str, int], prefix: str = "", page_size: int = 3) -> Store:
    entries = [e for key, count in keys for e in history(key, count)]
    return cast(Store, VersionedStore(name, entries, page_size, prefix))


def test_keys_of_either_side_come_once_in_utf8_order_each_with_both_histories_whole() -> None:
    # Given histories that span pages of three entries, and keys on one side only
    source = store("source", ("a", 4), ("a b", 1), ("é", 2), ("😀", 5))
    dest = store("dest", ("a", 2), ("a!", 1), ("😀", 1), ("😀/x", 2))

    # When they are merged
    found = [(key, [e.version_id for e in src], [e.version_id for e in dst]) for key, src, dst in
             histories(source, dest)]  # fmt: skip

    # Then each key comes once, in order, with all of its entries on each side, newest first
    assert found == [
        ("a", ["a#3", "a#2", "a#1", "a#0"], ["a#1", "a#0"]),
        ("a b", ["a b#0"], []),
        ("a!", [], ["a!#0"]),
        ("é", ["é#1", "é#0"], []),
        ("😀", ["😀#4", "😀#3", "😀#2", "😀#1", "😀#0"], ["😀#0"]),
        ("😀/x", [], ["😀/x#1", "😀/x#0"]),
    ]


def test_the_source_prefix_maps_onto_the_destinations_and_filters_and_ranges_hold() -> None:
    source = store("source", ("p/a", 1), ("p/b", 2), ("p/c", 1), prefix="p/")
    dest = store("dest", ("q/b", 1), ("q/d", 1), prefix="q/")

    keys = [(key, len(src), len(dst)) for key, src, dst in histories(source, dest, KeyFilter(exclude=["*c"]))]

    assert keys == [("p/a", 1, 0), ("p/b", 2, 1), ("p/d", 0, 1)]


def test_a_listing_out_of_order_stops_the_merge() -> None:
    source = cast(Store, VersionedStore("source", [*history("b", 1), *history("a", 1)]))
    with pytest.raises(ListingOrderError, match="listed the versions of 'a' after a key that sorts later"):
        list(histories(source, store("dest")))


def test_pages_hold_about_page_entries_entries_and_keep_each_keys_entries_together() -> None:
    # Given keys of 300 versions each
    source = store("source", *[(f"k{i:03d}", 300) for i in range(20)], page_size=1000)

    pages = list(_pages(histories(source, store("dest"))))

    # Then each page closes once it holds PAGE_ENTRIES entries, never inside a key
    sizes = [sum(len(src) for _, src, _ in page) for page in pages]
    assert sizes == [1200, 1200, 1200, 1200, 1200]
    assert all(len(src) == 300 for page in pages for _, src, _ in page)
    assert PAGE_ENTRIES == 1000


def test_the_merge_reads_the_listings_as_it_goes_not_whole() -> None:
    # Given a source of 100,000 entries in pages of 1000
    source = VersionedStore("source", [e for i in range(20_000) for e in history(f"k{i:06d}", 5)], page_size=1000)

    # When the first page of keys is taken
    first = next(_pages(histories(cast(Store, source), store("dest"))))

    # Then only the pages read ahead so far were listed, not the bucket
    assert sum(len(src) for _, src, _ in first) == 1000
    assert source.pages <= 5
    assert len(list(islice(histories(cast(Store, source), store("dest")), 3))) == 3
