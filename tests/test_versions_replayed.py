"""s3s3bucket with `versions = all`: every key's history replayed in order, byte for byte, and never twice.

On two moto servers and a real redis-server: versions and delete markers
reach a versioned destination oldest first; a second run writes nothing (the
PUTs and DELETEs counted through a FaultyStore); a later version arrives
alone; a ledger lost is rebuilt by HEADs without a copy made twice; a
version deleted for good at the source stays in the backup unless
`propagate_version_deletes` (under --max-delete); a destination that keeps no
versions stops the run; a source that keeps none is synced as `latest`.

moto 5.2 gives LastModified in whole seconds and lists each key's versions
before its delete markers: histories here put markers last, where the
listing order holds (tests/copy/test_replay.py covers markers anywhere).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from s3s3.cli import main
from s3s3.copy.replay import place, replay_key
from s3s3.outcome import Action
from s3s3.state import ledger
from s3s3.state.leases import RedisLease
from s3s3.state.ledger import VersionLedger
from s3s3.store import META_VERSION
from tests.servers.base import Server
from tests.servers.redis import RedisServer
from tests.stores import bucket_of, client_of, failing, refusal
from tests.versions import (
    MULTIPART,
    World,
    delete,
    history_of,
    make_world,
    put,
    replays_three_histories_in_order_then_writes_nothing,
    version,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    # Its own: the bucket sync retries the dead-letter stream, which other tests' listeners write to.
    server = RedisServer(str(tmp_path_factory.mktemp("redis-versions"))).start()
    yield server
    server.stop()


@pytest.fixture
def world(tmp_path: Path, s3_source: Server, s3_dest: Server, own_redis: RedisServer) -> Callable[..., World]:
    def make(
        dest_extra: dict[str, Any] | None = None, *, source_versioned: bool = True, dest_versioned: bool = True
    ) -> World:
        return make_world(tmp_path, s3_source, s3_dest, own_redis.url, dest_extra,
                          source_versioned=source_versioned, dest_versioned=dest_versioned)  # fmt: skip

    return make


# -- the replay ----------------------------------------------------------------------------------


def test_versions_and_delete_markers_replay_in_order_byte_for_byte_and_a_second_run_writes_nothing(
    world: Callable[..., World],
) -> None:
    replays_three_histories_in_order_then_writes_nothing(world(MULTIPART))


def test_a_later_version_arrives_alone(world: Callable[..., World], caplog: pytest.LogCaptureFixture) -> None:
    w = world()
    ids = [put(w.source, "k", b"one"), put(w.source, "k", b"two")]
    assert w.sync().ok
    w.writes()

    # Given a third version written after the first sync
    ids.append(put(w.source, "k", b"three, the newest"))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="s3s3.copy"):
        summary = w.sync()

    # Then it alone is written, after the two already there, and its line names the source version
    assert summary.as_dict()["versions_copied"] == 1
    assert w.writes() == ["put"]
    copied = [r for r in caplog.records if getattr(r, "outcome", None) == "copied"]
    assert [(r.getMessage().split(":")[0], getattr(r, "version_id", None)) for r in copied] == [
        (f"Copied 'k' to {w.dest.label.split(':')[0]}", ids[2])
    ]
    assert history_of(w.dest, "k") == [version(b"one", ids[0]), version(b"two", ids[1]),
                                       version(b"three, the newest", ids[2])]  # fmt: skip


def test_each_replayed_version_carries_its_own_tag_set(world: Callable[..., World]) -> None:
    # Given a key whose two versions were written with different tags
    w = world()
    client, bucket = client_of(w.source), bucket_of(w.source)
    first = client.put_object(Bucket=bucket, Key="k", Body=b"one", Tagging="era=first")["VersionId"]
    second = client.put_object(Bucket=bucket, Key="k", Body=b"two", Tagging="era=second")["VersionId"]

    # When the history is replayed
    assert w.sync().ok

    # Then each destination version has the tags of the source version it replays
    dest, dest_bucket = client_of(w.dest), bucket_of(w.dest)
    listed = dest.list_object_versions(Bucket=dest_bucket, Prefix="k")["Versions"]
    tags = {}
    for item in listed:
        head = dest.head_object(Bucket=dest_bucket, Key="k", VersionId=item["VersionId"])
        tag_set = dest.get_object_tagging(Bucket=dest_bucket, Key="k", VersionId=item["VersionId"])["TagSet"]
        tags[head["Metadata"][META_VERSION]] = {t["Key"]: t["Value"] for t in tag_set}
    assert tags == {first: {"era": "first"}, second: {"era": "second"}}


def test_a_lost_ledger_is_rebuilt_by_heads_and_nothing_is_copied_twice(world: Callable[..., World]) -> None:
    w = world()
    ids = [put(w.source, "k", data) for data in (b"v1", b"v2 is longer", b"v3 is longer still")]
    put(w.source, "j", b"other")
    delete(w.source, "j")
    assert w.sync().ok
    w.writes()

    # Given the ledger flushed
    w.client.delete(ledger.versions_key(w.dest))

    # When the sync runs again
    summary = w.sync()

    # Then each destination version was asked once (a HEAD), nothing written; and the next run asks nothing
    counts = summary.as_dict()
    assert (counts["versions_headed"], counts["versions_copied"], counts["markers_replayed"]) == (4, 0, 0)
    assert w.writes() == []
    written = (b"v1", b"v2 is longer", b"v3 is longer still")
    assert history_of(w.dest, "k") == [version(d, v) for d, v in zip(written, ids, strict=True)]
    w.dest.calls.clear()
    assert w.sync().as_dict()["versions_headed"] == 0
    assert w.dest.of("head") == []


def test_a_version_deleted_for_good_at_the_source_stays_in_the_backup(world: Callable[..., World]) -> None:
    w = world()
    ids = [put(w.source, "k", data) for data in (b"v1", b"v2", b"v3")]
    assert w.sync().ok
    w.writes()

    # Given the oldest version deleted for good at the source (by its ID)
    delete(w.source, "k", ids[0])

    # When the sync runs (with --delete, which means nothing more here)
    summary = w.sync(delete=True)

    # Then the backup keeps it, and nothing is written
    assert summary.ok
    assert w.writes() == []
    assert summary.as_dict()["versions_deleted"] == 0
    assert history_of(w.dest, "k") == [version(d, v) for d, v in zip((b"v1", b"v2", b"v3"), ids, strict=True)]


def test_with_propagate_version_deletes_a_version_gone_at_the_source_goes_under_max_delete(
    world: Callable[..., World],
) -> None:
    w = world({"propagate_version_deletes": "true"})
    ids = {key: [put(w.source, key, f"{key} {n}".encode()) for n in range(3)] for key in ("a", "b")}
    assert w.sync().ok
    w.writes()

    # Given one version of each key deleted for good at the source
    for key in ("a", "b"):
        delete(w.source, key, ids[key][1])

    # When the sync runs with --max-delete 1: two versions would go, so none does
    refused = w.sync(max_delete=1)
    assert not refused.ok
    assert refused.errors == [f"{w.dest.label}: refusing to delete more than 1 versions whose source version is "
                              "gone (raise --max-delete, or 0 for no limit); deleted none"]  # fmt: skip
    assert w.writes() == []

    # When it runs with room for both
    summary = w.sync(max_delete=2)

    # Then the destination's copies of those two versions are gone, and the rest stays in order
    assert summary.ok
    assert summary.as_dict()["versions_deleted"] == 2
    assert sorted(w.writes()) == ["delete", "delete"]
    for key in ("a", "b"):
        assert history_of(w.dest, key) == [version(f"{key} 0".encode(), ids[key][0]),
                                           version(f"{key} 2".encode(), ids[key][2])]  # fmt: skip


def test_a_dry_run_says_what_it_would_replay_and_writes_nothing(
    world: Callable[..., World], capsys: pytest.CaptureFixture[str]
) -> None:
    w = world()
    ids = [put(w.source, "k", b"one"), put(w.source, "k", b"two")]
    marker = delete(w.source, "k")

    summary = w.sync(dry_run=True)

    assert w.writes() == []
    assert summary.as_dict()["versions_copied"] == 2
    assert capsys.readouterr().out.splitlines() == [
        f"would replay version {ids[0]} of 'k' to {w.dest.label} (3 bytes)",
        f"would replay version {ids[1]} of 'k' to {w.dest.label} (3 bytes)",
        f"would replay a delete marker ({marker}) of 'k' to {w.dest.label}",
    ]


# -- start-up ------------------------------------------------------------------------------------


def test_a_destination_that_keeps_no_versions_stops_the_run_with_what_to_do(
    world: Callable[..., World], capsys: pytest.CaptureFixture[str]
) -> None:
    w = world(dest_versioned=False)
    put(w.source, "k", b"one")

    code = main(["bucket", "--config", str(w.config.path)])

    bucket = w.config.dests[0].bucket
    assert code == 2
    assert capsys.readouterr().err == (
        f"s3s3: error: [dest1] versions = all: bucket {bucket!r} has versioning Off: enable versioning on bucket "
        f"{bucket!r} or set versions = latest in [dest1]\n"
    )
    assert client_of(w.dest).list_object_versions(Bucket=bucket).get("Versions") is None


def test_a_source_that_keeps_no_versions_is_synced_as_latest_with_one_warning(
    world: Callable[..., World], caplog: pytest.LogCaptureFixture
) -> None:
    w = world(source_versioned=False)
    put(w.source, "k", b"one")
    put(w.source, "k", b"the current one")

    with caplog.at_level(logging.WARNING, logger="s3s3"):
        summary = w.sync()

    assert summary.ok and summary.copied == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"The source bucket {w.config.source.bucket!r} keeps no versions: [dest1] copy its "
                        "current objects only (as versions = latest) this run"]  # fmt: skip
    assert history_of(w.dest, "k") == [replace(version(b"the current one", ""), replays=None)]


# -- one key, as the listener replays it ----------------------------------------------------------


def test_one_key_replayed_alone_stops_at_a_failure_and_resumes_in_order_and_never_raises(
    world: Callable[..., World],
) -> None:
    # Given a key of three versions, and a destination that refuses the second version's PUT once
    w = world()
    ids = [put(w.source, "k", data) for data in (b"one", b"two", b"three")]
    refused = failing(refusal("PutObject", "AccessDenied", 403), times=1,
                      when=lambda call: call.kwargs["attrs"].metadata.get(META_VERSION) == ids[1])  # fmt: skip
    w.dest.on("put", refused)
    lease, versions = RedisLease(w.client, wait=0.2), VersionLedger(w.client)

    # When the key is replayed (its histories listed under the lease, as the listener asks)
    first = replay_key(w.source, w.dest, "k", lease=lease, known=versions)

    # Then the first version landed, the second failed, the third waits: the order holds
    assert [(o.action, o.version_id) for o in first] == [(Action.COPIED, ids[0]), (Action.FAILED, ids[1])]
    assert history_of(w.dest, "k") == [version(b"one", ids[0])]

    # When it is replayed again, while another replayer holds its lease: a failure, nothing written
    with RedisLease(w.client).hold(place(w.dest), "k"):
        held = replay_key(w.source, w.dest, "k", lease=lease, known=versions)
    assert [(o.action, o.key) for o in held] == [(Action.FAILED, "k")]
    assert "another replayer held its lease" in (held[0].error or "")

    # Then once free, it resumes where it stopped; and after that there is nothing to do
    again = replay_key(w.source, w.dest, "k", lease=lease, known=versions)
    assert [(o.action, o.version_id) for o in again] == [(Action.COPIED, ids[1]), (Action.COPIED, ids[2])]
    assert history_of(w.dest, "k") == [version(d, v) for d, v in zip((b"one", b"two", b"three"), ids, strict=True)]
    assert [o.action for o in replay_key(w.source, w.dest, "k", lease=lease, known=versions)] == [Action.SKIPPED]
