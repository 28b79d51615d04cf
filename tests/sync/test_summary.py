"""s3s3.sync.summary: a bucket sync's counts per destination and in all, its line, its JSON and its textfile."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3s3.outcome import Action, Outcome
from s3s3.sync.summary import Summary, Tally, write_textfile

pytestmark = pytest.mark.timeout(30)


def test_counts_go_to_the_destination_and_the_totals_and_bytes_only_with_copies() -> None:
    summary = Summary()
    summary.count("d1:b", Tally.CHECKED)
    summary.count("d1:b", Tally.COPIED, 100)
    summary.count("d2:c", Tally.COPIED, 20)
    summary.count("d2:c", Tally.SKIPPED, 999)
    assert (summary.checked, summary.copied, summary.skipped, summary.bytes) == (1, 2, 1, 120)
    assert summary.destinations["d1:b"].as_dict() == {
        "checked": 1, "copied": 1, "skipped": 0, "missing": 0, "failed": 0, "deleted": 0, "enqueued": 0,
        "aborted": 0, "versions_copied": 0, "markers_replayed": 0, "versions_missed": 0, "versions_deleted": 0,
        "versions_mapped": 0, "versions_headed": 0, "lease_waits": 0, "bytes": 100,
    }  # fmt: skip
    assert summary.destinations["d2:c"].bytes == 20


def test_engine_outcomes_are_counted_by_their_action_and_failures_are_listed() -> None:
    summary = Summary()
    summary.outcome(Outcome("a", "d1:b", Action.COPIED, 5))
    summary.outcome(Outcome("b", "d1:b", Action.MISSING))
    summary.outcome(Outcome("c", "d1:b", Action.FAILED, error="refused"))
    summary.outcome(Outcome("d", "d1:b", Action.KEPT))  # no copy of the sync's: counted as nothing sent
    assert (summary.copied, summary.missing, summary.failed, summary.skipped) == (1, 1, 1, 1)
    assert summary.failures == [("d1:b", "c", "refused")]
    assert not summary.ok


def test_replayed_versions_and_markers_are_counted_apart_from_copies_and_their_bytes_count() -> None:
    summary = Summary()
    summary.outcome(Outcome("a", "d1:b", Action.COPIED, 5, version_id="v1"))
    summary.outcome(Outcome("a", "d1:b", Action.COPIED, 7, version_id="v2"))
    summary.outcome(Outcome("a", "d1:b", Action.DELETED, version_id="m3"))
    summary.count("d1:b", Tally.MAPPED, n=40)
    summary.count("d1:b", Tally.HEADED, n=0)
    counts = summary.destinations["d1:b"].as_dict()
    assert (counts["versions_copied"], counts["markers_replayed"], counts["copied"], counts["skipped"]) == (2, 1, 0, 0)
    assert (counts["versions_mapped"], counts["versions_headed"], counts["bytes"]) == (40, 0, 12)
    assert summary.line() == (
        "checked 0 keys: copied 0, skipped 0 as identical, missing 0, failed 0, replayed 2 version(s) and 1 delete "
        "marker(s); 12 bytes in 0.0s"
    )


def test_the_line_and_json_say_what_was_done(tmp_path: Path) -> None:
    summary = Summary(dry_run=True, seconds=1.25)
    summary.count("d1:b", Tally.COPIED, 10)
    summary.count("d1:b", Tally.DELETED)
    assert summary.line() == (
        "checked 0 keys: would copy 1, skipped 0 as identical, missing 0, failed 0, would delete 1; 10 bytes in 1.2s"
    )
    assert summary.as_dict()["destinations"]["d1:b"]["deleted"] == 1
    assert summary.ok


def test_the_textfile_has_one_gauge_per_destination_and_tally(tmp_path: Path) -> None:
    summary = Summary()
    summary.count("d1:b", Tally.ABORTED)
    path = tmp_path / "s3s3.prom"
    write_textfile(str(path), summary)
    text = path.read_text()
    assert 's3s3_bucket_keys{dest="d1:b",outcome="aborted"} 1.0' in text
    assert sum(1 for line in text.splitlines() if line.startswith("s3s3_bucket_keys{")) == len(Tally)
    assert "s3s3_bucket_ok 1.0" in text
