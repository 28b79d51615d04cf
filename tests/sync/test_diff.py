"""s3s3.sync.diff: the streaming merge of two sorted listings, and its order check."""

from __future__ import annotations

import re

import pytest

from s3s3.errors import ListingOrderError
from s3s3.sync.diff import diff
from tests.stores import listed

pytestmark = pytest.mark.timeout(30)


# -- the listing diff ----------------------------------------------------------------------------


def test_diff_pairs_keys_in_utf8_binary_order_including_unicode_and_shared_prefixes() -> None:
    # Given two listings in UTF-8 binary order ("\uff61" sorts before the astral "😀" in UTF-8,
    # after it in UTF-16) whose keys share prefixes
    source = listed(["a", "a b", "a/b", "a/b/c", "a0", "ab", "é", "\uff61", "😀", "😀/x"])
    dest = listed(["a", "a!", "a/b/c", "a00", "ab", "b", "é", "😀", "😀/x/y"], name="dest")

    # When they are diffed
    pairs = [(s.key if s else None, d.key if d else None) for s, d in diff(source, dest)]

    # Then each key of either side comes once, in order, with its twin or None
    assert pairs == [
        ("a", "a"),
        ("a b", None),
        (None, "a!"),
        ("a/b", None),
        ("a/b/c", "a/b/c"),
        ("a0", None),
        (None, "a00"),
        ("ab", "ab"),
        (None, "b"),
        ("é", "é"),
        ("\uff61", None),
        ("😀", "😀"),
        ("😀/x", None),
        (None, "😀/x/y"),
    ]


def test_diff_maps_the_source_prefix_onto_the_destination_prefix() -> None:
    # Given a source prefix and a different destination prefix
    source = listed(["photos/a.jpg", "photos/b.jpg", "photos/c.jpg"], prefix="photos/")
    dest = listed(["backup/2024/a.jpg", "backup/2024/c.jpg"], name="dest", prefix="backup/2024/")

    # When they are diffed
    pairs = [(s.key if s else None, d.key if d else None) for s, d in diff(source, dest)]

    # Then keys are matched after swapping the prefixes
    assert pairs == [
        ("photos/a.jpg", "backup/2024/a.jpg"),
        ("photos/b.jpg", None),
        ("photos/c.jpg", "backup/2024/c.jpg"),
    ]


def test_diff_against_an_empty_destination_pairs_every_key_with_none() -> None:
    pairs = [(s.key, d) for s, d in diff(listed(["x", "y"]), listed([], name="dest"))]
    assert pairs == [("x", None), ("y", None)]


@pytest.mark.parametrize(
    ("source_keys", "dest_keys", "bad"),
    [
        (["a", "c", "b"], ["a"], "source:source listed 'b'"),
        (["a", "b"], ["b", "a"], "dest:dest listed 'a'"),
        (["a", "a"], [], "source:source listed 'a'"),
        (["😀", "\uff61"], [], "source:source listed '\uff61'"),
    ],
)
def test_a_store_listing_out_of_order_stops_the_diff(source_keys: list[str], dest_keys: list[str], bad: str) -> None:
    # Given a store that lists keys out of UTF-8 binary order (or twice)
    source, dest = listed(source_keys), listed(dest_keys, name="dest")

    # When the listings are diffed
    # Then the diff refuses to guess, naming the store and the key
    with pytest.raises(ListingOrderError, match=re.escape(bad)):
        list(diff(source, dest))
