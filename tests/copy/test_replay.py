"""The history matching of s3s3.copy.replay: which source entries a destination lacks, from the histories alone.

Histories are written oldest first here, as a reader thinks of them, and
handed to `match` newest first, as ListObjectVersions gives them. `V` is a
version, `M` a delete marker; a destination entry replaying source entry
`sN` has ID `dN`, and the map names it (markers only where the ledger kept
them); `f...` entries are someone else's.
"""

from __future__ import annotations

import itertools
import random

import pytest

from s3s3.copy.replay import Match, match
from s3s3.store import Version

pytestmark = pytest.mark.timeout(60)


def entry(version_id: str, marker: bool = False) -> Version:
    return Version("k", version_id, None, size=0 if marker else 1, delete_marker=marker)


def source_of(shape: str) -> list[Version]:
    """A source history, oldest first, from a shape such as "VVM": s0, s1, s2."""
    return [entry(f"s{i}", kind == "M") for i, kind in enumerate(shape)]


def replica(entries: list[Version]) -> list[Version]:
    """What a replay of `entries` leaves at the destination, oldest first."""
    return [entry("d" + e.version_id[1:], e.delete_marker) for e in entries]


def versions_map(dest: list[Version], markers: bool = False) -> dict[str, str]:
    """The map a run learns: every version's source by its metadata (foreign ones ""), markers if kept."""
    found = {}
    for e in dest:
        if e.delete_marker and not (markers and e.version_id.startswith("d")):
            continue
        found[e.version_id] = "s" + e.version_id[1:] if e.version_id.startswith("d") else ""
    return found


def matched(source: list[Version], dest: list[Version], known: dict[str, str] | None = None) -> Match:
    """`match` of two oldest-first histories, given newest first as listed."""
    known = versions_map(dest) if known is None else known
    return match(source[::-1], dest[::-1], known)


def ids(entries: list[Version]) -> list[str]:
    return [e.version_id for e in entries]


def test_an_empty_destination_replays_the_whole_history_oldest_first() -> None:
    source = source_of("VVMV")

    found = matched(source, [])

    assert ids(found.replay) == ["s0", "s1", "s2", "s3"]
    assert found.missed == [] and found.gone == []


def test_a_destination_holding_the_whole_history_needs_nothing() -> None:
    source = source_of("VVMVM")

    found = matched(source, replica(source))

    assert found.replay == [] and found.missed == [] and found.gone == []


def test_a_later_version_is_replayed_alone() -> None:
    source = source_of("VVV")

    found = matched(source, replica(source[:2]))

    assert ids(found.replay) == ["s2"]


def test_a_delete_marker_after_the_versions_is_replayed() -> None:
    source = source_of("VVM")

    found = matched(source, replica(source[:2]))

    assert ids(found.replay) == ["s2"]
    assert found.replay[0].delete_marker


def test_markers_after_a_matched_version_match_the_same_run_by_position() -> None:
    source = source_of("VMM")

    found = matched(source, replica(source))

    assert found.replay == []
    assert found.by_position == {"d1": "s1", "d2": "s2"}


def test_a_longer_run_of_markers_at_the_source_replays_only_the_markers_beyond_the_destinations_run() -> None:
    source = source_of("VMMM")

    found = matched(source, replica(source[:2]))

    assert ids(found.replay) == ["s2", "s3"]
    assert found.by_position == {"d1": "s1"}


def test_a_marker_at_the_destination_beyond_the_sources_run_is_left_alone() -> None:
    source = source_of("VM")
    dest = [*replica(source), entry("f0", marker=True)]

    found = matched(source, dest)

    assert found.replay == [] and found.gone == []
    assert found.by_position == {"d1": "s1"}


def test_markers_at_the_start_of_a_history_match_by_position() -> None:
    source = source_of("MMV")

    found = matched(source, replica(source[:2]))

    assert ids(found.replay) == ["s2"]
    assert found.by_position == {"d0": "s0", "d1": "s1"}


def test_a_key_whose_only_entry_is_a_marker_replays_it_once() -> None:
    source = source_of("M")

    assert ids(matched(source, []).replay) == ["s0"]
    assert matched(source, replica(source)).replay == []


def test_versions_written_by_someone_else_are_left_alone_and_the_history_replays_after_them() -> None:
    source = source_of("VV")
    dest = [entry("f0"), entry("f1")]

    found = matched(source, dest)

    assert ids(found.replay) == ["s0", "s1"]
    assert found.missed == [] and found.gone == []


def test_someone_elses_version_between_replayed_entries_does_not_break_the_run_of_markers() -> None:
    source = source_of("MVMM")
    dest = [entry("f0"), *replica(source[:1]), entry("f1"), *replica(source[1:3])]

    found = matched(source, dest)

    assert ids(found.replay) == ["s3"]
    assert found.by_position == {"d0": "s0", "d2": "s2"}


def test_source_entries_missing_below_the_newest_represented_are_missed_not_inserted() -> None:
    source = source_of("VVVV")
    dest = replica([source[0], source[2]])

    found = matched(source, dest)

    assert found.replay == [source[3]]
    assert ids(found.missed) == ["s1"]


def test_a_destination_version_whose_source_version_is_gone_is_named_and_nothing_is_replayed_for_it() -> None:
    source = source_of("VVV")
    dest = replica(source)
    del source[1]  # deleted for good at the source

    found = matched(source, dest)

    assert found.replay == [] and found.missed == []
    assert ids(found.gone) == ["d1"]


def test_a_marker_removed_at_the_source_an_undelete_is_never_named_gone() -> None:
    source = source_of("VMV")
    dest = replica(source)
    del source[1]  # the delete marker deleted by its ID: v0 was current again, then v2 came

    found = matched(source, dest, versions_map(dest, markers=True))

    assert found.replay == [] and found.gone == []


def test_a_marker_after_a_version_gone_at_the_source_still_matches_its_run() -> None:
    source = source_of("VM")
    dest = replica(source)
    del source[0]

    found = matched(source, dest)

    assert found.replay == []
    assert ids(found.gone) == ["d0"]
    assert found.by_position == {"d1": "s1"}


def test_a_second_copy_of_one_source_version_matches_nothing_and_nothing_is_copied_again() -> None:
    source = source_of("VV")
    dest = [*replica(source), entry("x")]
    known = versions_map(dest) | {"x": "s1"}

    found = matched(source, dest, known)

    assert found.replay == [] and found.missed == [] and found.gone == []


def test_copies_out_of_order_are_never_reordered_the_older_counts_as_missed() -> None:
    source = source_of("VV")
    dest = replica([source[1], source[0]])

    found = matched(source, dest)

    assert found.replay == []
    assert ids(found.missed) == ["s0"]


def test_a_map_naming_a_marker_for_a_version_is_not_trusted() -> None:
    source = source_of("VM")
    dest = [entry("d0"), entry("d1")]  # a version where the source has a marker

    found = matched(source, dest, {"d0": "s0", "d1": "s1"})

    assert ids(found.replay) == ["s1"]


def test_markers_the_ledger_kept_anchor_like_versions() -> None:
    source = source_of("MVMM")
    dest = replica(source[:3])

    found = matched(source, dest, versions_map(dest, markers=True))

    assert ids(found.replay) == ["s3"]
    assert found.by_position == {}


@pytest.mark.parametrize("markers_known", [False, True])
def test_every_prefix_of_every_history_up_to_seven_entries_replays_exactly_the_rest(markers_known: bool) -> None:
    for length in range(8):
        for shape in ("".join(kinds) for kinds in itertools.product("VM", repeat=length)):
            source = source_of(shape)
            for done in range(length + 1):
                dest = replica(source[:done])
                found = matched(source, dest, versions_map(dest, markers=markers_known))
                assert (shape, done, found.replay, found.missed, found.gone) == (shape, done, source[done:], [], [])


def test_someone_elses_versions_anywhere_change_nothing_of_what_is_replayed() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        source = source_of("".join(rng.choice("VM") for _ in range(rng.randint(0, 8))))
        done = rng.randint(0, len(source))
        dest = replica(source[:done])
        for n in range(rng.randint(1, 3)):
            dest.insert(rng.randint(0, len(dest)), entry(f"f{n}"))

        found = matched(source, dest)

        assert (found.replay, found.missed, found.gone) == (source[done:], [], []), (source, dest)
