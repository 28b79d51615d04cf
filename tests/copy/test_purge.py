"""purge_version (s3s3.copy.purge): a version deleted for good at the source, deleted from a destination's history.

Two moto servers hold versioned buckets; the destination's versions are
written here as replays write them (each naming its source version in
`s3s3-source-version-id`), so only the purge is under test. The version map
is the ledger's, on fakeredis; deletes and HEADs are counted through
tests.stores.FaultyStore.
"""

from __future__ import annotations

from dataclasses import dataclass

import fakeredis
import pytest

from s3s3.config import Endpoint
from s3s3.copy.purge import purge_version
from s3s3.outcome import Action
from s3s3.retry import RetryPolicy
from s3s3.state.ledger import VersionLedger
from s3s3.store import META_VERSION, Store, open_store
from tests.helpers import new_bucket
from tests.servers.base import Server
from tests.stores import FaultyStore, bucket_of, client_of, failing, refusal

pytestmark = pytest.mark.timeout(60)

FAST_RETRY = RetryPolicy(attempts=2, first_delay=0.0)


@dataclass
class Histories:
    """A key "k" with versions v1, v2 at the source and their replays d1, d2 at the destination."""

    source: Store
    dest: FaultyStore
    v1: str
    v2: str
    d1: str
    d2: str


def store_of(server: Server, bucket: str, name: str) -> Store:
    return open_store(Endpoint(name=name, bucket=bucket, endpoint_url=server.endpoint_url,
                               access_key=server.access_key, secret_key=server.secret_key,
                               addressing_style="path"))  # fmt: skip


def versioned(server: Server) -> str:
    bucket = new_bucket(server, "p")
    server.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


@pytest.fixture
def histories(s3_source: Server, s3_dest: Server) -> Histories:
    src, dst = versioned(s3_source), versioned(s3_dest)
    source, dest = s3_source.client(), s3_dest.client()
    v1, v2 = (source.put_object(Bucket=src, Key="k", Body=body)["VersionId"] for body in (b"one", b"two"))
    d1, d2 = (dest.put_object(Bucket=dst, Key="k", Body=body, Metadata={META_VERSION: v})["VersionId"]
              for body, v in ((b"one", v1), (b"two", v2)))  # fmt: skip
    return Histories(store_of(s3_source, src, "source"), FaultyStore(store_of(s3_dest, dst, "dest1")), v1, v2, d1, d2)


def versions_at(store: Store) -> list[str]:
    """The IDs of "k"'s versions at `store`, newest first, as boto3 lists them."""
    listed = client_of(store).list_object_versions(Bucket=bucket_of(store), Prefix="k")
    return [v["VersionId"] for v in listed.get("Versions", []) if v["Key"] == "k"]


def deleted(store: FaultyStore) -> list[tuple[object, ...]]:
    return [(*call.args, call.kwargs.get("version_id")) for call in store.of("delete")]


def test_a_version_gone_at_the_source_has_its_copy_deleted_and_no_other(histories: Histories) -> None:
    # Given v1 deleted for good at the source
    h = histories
    h.source.delete("k", version_id=h.v1)
    known = VersionLedger(fakeredis.FakeRedis())

    # When it is purged at the destination
    outcome = purge_version(h.source, h.dest, "k", h.v1, known=known)

    # Then its copy d1 (found by a HEAD of each version) is deleted by its ID, d2 stays; the map learnt both
    assert (outcome.action, outcome.version_id, outcome.error) == (Action.DELETED, h.v1, None)
    assert deleted(h.dest) == [("k", h.d1)]
    assert versions_at(h.dest) == [h.d2]
    assert known.known(h.dest, "k", [h.d1, h.d2]) == {h.d1: h.v1, h.d2: h.v2}


def test_a_version_the_map_knows_is_found_without_a_head(histories: Histories) -> None:
    # Given the map already naming both copies, and v2 gone at the source
    h = histories
    known = VersionLedger(fakeredis.FakeRedis())
    known.learn(h.dest, "k", {h.d1: h.v1, h.d2: h.v2})
    h.source.delete("k", version_id=h.v2)

    # When v2 is purged, then d2 goes, and no version was asked for its metadata
    assert purge_version(h.source, h.dest, "k", h.v2, known=known).action is Action.DELETED
    assert h.dest.of("head") == []
    assert deleted(h.dest) == [("k", h.d2)]


def test_a_version_still_at_the_source_is_kept(histories: Histories) -> None:
    # When a purge is asked for a version the source still lists (an event out of date, or a forged one)
    outcome = purge_version(histories.source, histories.dest, "k", histories.v1)

    # Then nothing is deleted, and the outcome says why
    assert (outcome.action, outcome.error) == (Action.KEPT, "that version is still at the source")
    assert deleted(histories.dest) == []


def test_a_version_of_which_the_destination_holds_no_copy_is_kept_saying_so(histories: Histories) -> None:
    # Given a version written and deleted at the source before anything replayed it
    h = histories
    v3 = client_of(h.source).put_object(Bucket=bucket_of(h.source), Key="k", Body=b"brief")["VersionId"]
    h.source.delete("k", version_id=v3)

    # When it is purged, then nothing is deleted at the destination
    outcome = purge_version(h.source, h.dest, "k", v3)
    assert (outcome.action, outcome.error) == (Action.KEPT, f"no version here replays source version {v3!r}")
    assert deleted(h.dest) == []


def test_a_destination_refusing_the_delete_fails_the_purge_with_its_reason(histories: Histories) -> None:
    # Given v1 gone at the source, and a destination that refuses deletes
    h = histories
    h.source.delete("k", version_id=h.v1)
    h.dest.on("delete", failing(refusal("DeleteObject", "AccessDenied", 403)))

    # When it is purged, then the outcome fails with the store's answer, and d1 is still there
    outcome = purge_version(h.source, h.dest, "k", h.v1, retry=FAST_RETRY)
    assert outcome.action is Action.FAILED and "AccessDenied" in (outcome.error or "")
    assert versions_at(h.dest) == [h.d2, h.d1]


def test_a_delete_marker_removed_at_the_source_stays_in_the_backup(histories: Histories) -> None:
    # Given a delete marker at both sides (the map naming the destination's), then removed at the source
    h = histories
    known = VersionLedger(fakeredis.FakeRedis())
    marker = client_of(h.source).delete_object(Bucket=bucket_of(h.source), Key="k")["VersionId"]
    ours = client_of(h.dest).delete_object(Bucket=bucket_of(h.dest), Key="k")["VersionId"]
    known.learn(h.dest, "k", {ours: marker})
    h.source.delete("k", version_id=marker)

    # When that removal is purged, then the backup's marker stays: its history still shows the key deleted then
    outcome = purge_version(h.source, h.dest, "k", marker, known=known)
    assert (outcome.action, outcome.error) == (Action.KEPT, f"no version here replays source version {marker!r}")
    assert deleted(h.dest) == []
