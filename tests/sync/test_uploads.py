"""s3s3.sync.uploads: aborting a destination's incomplete multipart uploads that are old enough and s3s3's to abort."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from s3s3.config import Endpoint
from s3s3.errors import StoreError
from s3s3.retry import RetryPolicy
from s3s3.store import ObjectInfo, Store, Upload
from s3s3.store.facts import Facts
from s3s3.sync.uploads import Aborted, abort_incomplete

pytestmark = pytest.mark.timeout(30)

HOUR = 3600.0
SHORT = RetryPolicy(max_seconds=1, first_delay=0.01)
BEGUN = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


class FakeStore:
    """A bucket as abort_incomplete sees it: keys it holds, uploads begun, and aborts that may be refused."""

    def __init__(
        self, name: str, prefix: str = "", keys: tuple[str, ...] = (), uploads: tuple[Upload, ...] = ()
    ) -> None:
        self.endpoint = Endpoint(name=name, bucket="backup" if name.startswith("dest") else "data", prefix=prefix)
        self.facts = Facts(name)
        self.keys = set(keys)
        self.uploads = list(uploads)
        self.refusals: dict[str, list[StoreError]] = {}  # upload ID -> errors its next aborts raise, in turn
        self.refuse_always: dict[str, StoreError] = {}  # upload ID -> the error every abort of it raises
        self.heads: list[str] = []
        self.listed: list[str] = []
        self.aborts: list[tuple[str, str]] = []  # every abort asked, refused or not

    @property
    def label(self) -> str:
        return self.endpoint.label

    def head(self, key: str, *, part_number: int | None = None) -> ObjectInfo | None:
        self.heads.append(key)
        return ObjectInfo(key, 1, "0" * 32) if key in self.keys else None

    def list_uploads(self, prefix: str) -> Iterator[Upload]:
        self.listed.append(prefix)
        yield from (u for u in self.uploads if u.key.startswith(prefix))

    def abort_upload(self, key: str, upload_id: str) -> None:
        self.aborts.append((key, upload_id))
        if upload_id in self.refuse_always:
            raise self.refuse_always[upload_id]
        if self.refusals.get(upload_id):
            raise self.refusals[upload_id].pop(0)
        self.uploads = [u for u in self.uploads if u.upload_id != upload_id]


def store(fake: FakeStore) -> Store:
    return cast(Store, fake)


def ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


def slow_down() -> StoreError:
    return StoreError(
        "SlowDown: injected", operation="AbortMultipartUpload", code="SlowDown", status=503, transient=True
    )


def test_only_uploads_begun_longer_ago_than_the_age_are_aborted() -> None:
    # Given two uploads of keys the source holds: one begun 2 h ago, one 10 min ago
    source = FakeStore("source", keys=("old.bin", "young.bin"))
    dest = FakeStore(
        "dest1", uploads=(Upload("old.bin", "u-old", ago(2 * HOUR)), Upload("young.bin", "u-young", ago(600)))
    )
    # When uploads older than an hour are aborted
    done = abort_incomplete(store(source), store(dest), HOUR, retry=SHORT)
    # Then the old one is, and the young one is kept
    assert done == Aborted(aborted=1, kept=1, failed=0)
    assert dest.aborts == [("old.bin", "u-old")]
    assert [u.upload_id for u in dest.uploads] == ["u-young"]


def test_an_age_of_zero_aborts_every_upload_begun_before_now() -> None:
    # Given uploads begun seconds and days ago, When every upload begun before now is asked for
    source = FakeStore("source", keys=("a", "b"))
    dest = FakeStore("dest1", uploads=(Upload("a", "u1", ago(5)), Upload("b", "u2", BEGUN)))
    assert abort_incomplete(store(source), store(dest), 0, retry=SHORT) == Aborted(aborted=2)
    assert dest.aborts == [("a", "u1"), ("b", "u2")]


def test_uploads_of_keys_the_source_does_not_hold_are_kept() -> None:
    # Given two old uploads, one of a key the source lacks (not s3s3's)
    source = FakeStore("source", keys=("ours.bin",))
    dest = FakeStore("dest1", uploads=(Upload("theirs.bin", "u1", BEGUN), Upload("ours.bin", "u2", BEGUN)))
    done = abort_incomplete(store(source), store(dest), HOUR, retry=SHORT)
    # Then only s3s3's is aborted
    assert done == Aborted(aborted=1, kept=1, failed=0)
    assert dest.aborts == [("ours.bin", "u2")]
    assert source.heads == ["theirs.bin", "ours.bin"]


def test_a_young_upload_is_kept_without_asking_the_source() -> None:
    # Given an upload begun a minute ago, When uploads older than an hour are aborted, Then it is kept unasked
    source = FakeStore("source", keys=("k",))
    dest = FakeStore("dest1", uploads=(Upload("k", "u1", ago(60)),))
    assert abort_incomplete(store(source), store(dest), HOUR, retry=SHORT) == Aborted(kept=1)
    assert source.heads == []
    assert dest.aborts == []


def test_a_dry_run_says_what_it_would_abort_and_aborts_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    # Given an old upload, a young one, and one of a key the source lacks
    source = FakeStore("source", keys=("k.bin", "young.bin"))
    uploads = (Upload("k.bin", "u1", BEGUN), Upload("young.bin", "u2", ago(60)), Upload("other.bin", "u3", BEGUN))
    dest = FakeStore("dest1", uploads=uploads)
    # When a dry run asks
    done = abort_incomplete(store(source), store(dest), HOUR, dry_run=True, retry=SHORT)
    # Then it names the one it would abort, and aborts none
    assert capsys.readouterr().out == "would abort the upload of 'k.bin' at dest1:backup (begun 2024-05-01T10:00:00Z)\n"
    assert done == Aborted(aborted=1, kept=2, failed=0)
    assert dest.aborts == []
    assert len(dest.uploads) == 3


def test_an_abort_refused_for_now_is_asked_again_until_it_is_done(caplog: pytest.LogCaptureFixture) -> None:
    # Given an upload whose first three aborts are refused with SlowDown
    source = FakeStore("source", keys=("k",))
    dest = FakeStore("dest1", uploads=(Upload("k", "u1", BEGUN),))
    dest.refusals["u1"] = [slow_down(), slow_down(), slow_down()]
    with caplog.at_level(logging.INFO, logger="s3s3"):
        done = abort_incomplete(store(source), store(dest), HOUR, retry=SHORT)
    # Then the fourth does it
    assert done == Aborted(aborted=1)
    assert dest.aborts == [("k", "u1")] * 4
    assert dest.uploads == []
    messages = [r.getMessage() for r in caplog.records]
    assert [m.split(" in ")[0] for m in messages[:3]] == ["Retrying aborting the upload of 'k'"] * 3
    assert messages[3] == "Aborted the incomplete upload of 'k' at dest1:backup (begun 2024-05-01T10:00:00Z)"


def test_an_abort_refused_until_the_retry_time_is_up_is_counted_failed(caplog: pytest.LogCaptureFixture) -> None:
    # Given an upload every abort of which is refused for now, and then one that can be aborted
    source = FakeStore("source", keys=("stuck", "fine"))
    dest = FakeStore("dest1", uploads=(Upload("stuck", "u1", BEGUN), Upload("fine", "u2", BEGUN)))
    dest.refuse_always["u1"] = slow_down()
    with caplog.at_level(logging.ERROR, logger="s3s3"):
        done = abort_incomplete(store(source), store(dest), HOUR, retry=SHORT)
    # Then it was asked more than once, counted failed, logged, and the next upload still aborted
    assert done == Aborted(aborted=1, kept=0, failed=1)
    assert dest.aborts.count(("stuck", "u1")) > 1
    assert dest.aborts[-1] == ("fine", "u2")
    assert [r.getMessage() for r in caplog.records] == [
        "Could not abort the upload of 'stuck' at dest1:backup: SlowDown: injected"
    ]


def test_an_abort_refused_for_good_is_not_asked_again() -> None:
    # Given an abort refused with AccessDenied, Then it is counted failed after one try
    source = FakeStore("source", keys=("k",))
    dest = FakeStore("dest1", uploads=(Upload("k", "u1", BEGUN),))
    dest.refuse_always["u1"] = StoreError(
        "AccessDenied", operation="AbortMultipartUpload", code="AccessDenied", status=403
    )
    assert abort_incomplete(store(source), store(dest), HOUR, retry=SHORT) == Aborted(failed=1)
    assert dest.aborts == [("k", "u1")]


def test_source_keys_are_mapped_from_destination_keys_through_the_prefixes() -> None:
    # Given a source under "a/" copied to a destination under "b/"
    source = FakeStore("source", prefix="a/", keys=("a/x/1.bin",))
    uploads = (Upload("b/x/1.bin", "u1", BEGUN), Upload("b/x/2.bin", "u2", BEGUN))
    dest = FakeStore("dest1", prefix="b/", uploads=uploads)
    done = abort_incomplete(store(source), store(dest), HOUR, retry=SHORT)
    # Then the source is asked for "a/..." keys, and the destination's "b/..." upload is aborted
    assert source.heads == ["a/x/1.bin", "a/x/2.bin"]
    assert dest.listed == ["b/"]
    assert done == Aborted(aborted=1, kept=1, failed=0)
    assert dest.aborts == [("b/x/1.bin", "u1")]


def test_a_key_prefix_narrows_the_uploads_listed_under_the_destination_prefix() -> None:
    source = FakeStore("source", prefix="a/", keys=("a/x/1.bin", "a/y/1.bin"))
    uploads = (Upload("b/x/1.bin", "u1", BEGUN), Upload("b/y/1.bin", "u2", BEGUN))
    dest = FakeStore("dest1", prefix="b/", uploads=uploads)
    # When only keys under "x/" are asked for
    done = abort_incomplete(store(source), store(dest), HOUR, prefix="x/", retry=SHORT)
    # Then only uploads under "b/x/" are listed and aborted
    assert dest.listed == ["b/x/"]
    assert done == Aborted(aborted=1)
    assert dest.aborts == [("b/x/1.bin", "u1")]


def test_no_uploads_no_work() -> None:
    source, dest = FakeStore("source"), FakeStore("dest1")
    assert abort_incomplete(store(source), store(dest), HOUR, retry=SHORT) == Aborted()
    assert (source.heads, dest.aborts) == ([], [])
