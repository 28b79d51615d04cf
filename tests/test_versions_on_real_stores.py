"""`versions = all` on a real Ceph RGW 16.2: the replay, the point-in-time restore, Object Lock carried by copies.

The three end-to-end features that tests/test_versions_replayed.py,
tests/test_point_in_time_restore.py and tests/test_object_lock.py prove
between two moto servers, run on a one-OSD Ceph cluster and a real
redis-server. Source and destination are two buckets on the one cluster,
with one identity: a replayed or restored version is always streamed, but a
plain copy between them goes server-side (CopyObject), as a user with one
cluster meets it, and Ceph keeps none of the Object Lock that CopyObject
carries. A locked version is also streamed into Ceph from SeaweedFS, in one
PUT and in parts, and Ceph keeps none sent with CreateMultipartUpload
either: both times s3s3 sets it on the copy's version afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from s3s3.config import Config, MiB
from s3s3.copy import copy_key
from s3s3.outcome import Action
from tests.servers.base import Server
from tests.servers.redis import RedisServer
from tests.stores import FaultyStore, open_with
from tests.versions import (
    MULTIPART,
    UNTIL,
    bucket_cli,
    current,
    lock_bucket,
    lock_of,
    logging_and_signals_kept,
    make_world,
    md5,
    put_at,
    put_locked,
    replays_three_histories_in_order_then_writes_nothing,
    versioned_bucket,
    versions_config,
    versions_of,
)

# Ceph's start (a mon, an OSD and radosgw) counts against the first test that asks for it.
pytestmark = [pytest.mark.compat, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    # Its own: the bucket sync retries the dead-letter stream, which other tests' listeners write to.
    server = RedisServer(str(tmp_path_factory.mktemp("redis-versions-real"))).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _restore_logging_and_signals() -> Iterator[None]:
    with logging_and_signals_kept():
        yield


# -- the replay ----------------------------------------------------------------------------------


def test_a_history_replays_to_ceph_in_order_byte_for_byte_and_a_second_run_writes_nothing(
    tmp_path: Path, ceph: Server, own_redis: RedisServer
) -> None:
    # Given two versioned buckets on one Ceph (a replayed version never goes server-side)
    replays_three_histories_in_order_then_writes_nothing(make_world(tmp_path, ceph, ceph, own_redis.url, MULTIPART))


# -- the point-in-time restore -------------------------------------------------------------------


def test_a_time_between_two_versions_restores_the_older_one_into_an_empty_ceph_bucket(
    tmp_path: Path, ceph: Server, own_redis: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a source on Ceph whose history is replayed to a versioned backup bucket on the same Ceph
    # (k: v1 at 1000, v2 at 2000; same: one version at 1000; later: one version at 3000)
    source, backup = versioned_bucket(ceph, "src"), versioned_bucket(ceph, "bak")
    put_at(ceph, source, "k", b"k as it was at 1000", 1000)
    put_at(ceph, source, "k", b"k as it is since 2000", 2000)
    put_at(ceph, source, "same", b"unchanged since 1000", 1000)
    put_at(ceph, source, "later", b"written at 3000", 3000)
    code, _, err = bucket_cli(capsys, versions_config(tmp_path, (ceph, source), (ceph, backup), own_redis.url))
    assert code == 0, err
    assert versions_of(ceph, backup, "k") == 2

    # When an empty versioned bucket is restored from the backup as the source was at 1500
    empty = versioned_bucket(ceph, "new")
    config = versions_config(tmp_path, (ceph, empty), (ceph, backup), own_redis.url)
    code, out, err = bucket_cli(capsys, config, "--reverse", "--dest", "dest1", "--at", "1500", "--json")

    # Then it holds each key's version of 1500, once, and nothing written later
    assert code == 0, err
    assert current(ceph, empty) == {"k": md5(b"k as it was at 1000"), "same": md5(b"unchanged since 1000")}
    assert (versions_of(ceph, empty, "k"), versions_of(ceph, empty, "same")) == (1, 1)
    assert '"copied": 2' in out


# -- Object Lock carried by a copy ---------------------------------------------------------------


@pytest.fixture
def locked_pair(make_config: Callable[..., Config]) -> Callable[..., tuple[Config, str, str]]:
    """A source bucket with Object Lock at `source`, a destination bucket at `dest` (with it, or not)."""

    def make(source: Server, dest: Server, *, dest_lock: bool = True, **dest_extra: str) -> tuple[Config, str, str]:
        src, dst = lock_bucket(source, lock=True), lock_bucket(dest, lock=dest_lock)
        return make_config((source, src), [(dest, dst)], dest_extra=dest_extra), src, dst

    return make


@pytest.mark.parametrize("transport", ["http", "boto3"])
def test_a_locked_version_copied_between_two_ceph_buckets_goes_server_side_and_keeps_its_lock(
    locked_pair: Callable[..., tuple[Config, str, str]], ceph: Server, transport: str
) -> None:
    # Given a version under a COMPLIANCE retention and a legal hold, in a bucket with Object Lock on Ceph
    config, src, dst = locked_pair(ceph, ceph)
    data = os.urandom(64 * 1024)
    source_head = put_locked(ceph, src, "held.bin", data, mode="COMPLIANCE")

    # When it is copied to another bucket with Object Lock on the same Ceph, by the same user
    dest = FaultyStore(open_with(config.dests[0], transport))
    outcome = copy_key(open_with(config.source, transport), dest, "held.bin")

    # Then Ceph copied it itself, in one CopyObject; Ceph 16 keeps none of the lock a CopyObject carries with
    # x-amz-metadata-directive REPLACE (s3s3 sends it so, to write its own metadata), so s3s3 set it on the
    # copy's version afterwards (PutObjectRetention, PutObjectLegalHold)
    assert outcome.action is Action.COPIED, outcome.error
    assert (len(dest.of("copy_object")), dest.of("put"), len(dest.of("put_lock"))) == (1, [], 1)
    # And the copy has the same bytes, retention mode, retain-until date and legal hold
    landed = ceph.client().get_object(Bucket=dst, Key="held.bin")
    assert md5(landed["Body"].read()) == md5(data)
    assert lock_of(landed) == lock_of(source_head) == ("COMPLIANCE", UNTIL, "ON")


@pytest.mark.parametrize("size", [1024, 11 * MiB], ids=["single-put", "multipart"])
@pytest.mark.parametrize("transport", ["http", "boto3"])
def test_a_locked_version_streamed_from_seaweedfs_to_ceph_keeps_its_lock_with_a_single_put_and_in_parts(
    locked_pair: Callable[..., tuple[Config, str, str]], seaweedfs: Server, ceph: Server, transport: str, size: int
) -> None:
    # Given a version under a COMPLIANCE retention and a legal hold, in a bucket with Object Lock on SeaweedFS,
    # the big one uploaded in parts (a plain-MD5 source goes to Ceph in one PUT whatever its size: Ceph checks it)
    config, src, dst = locked_pair(seaweedfs, ceph, **MULTIPART)
    data = os.urandom(size)
    multipart = size > 5 * MiB
    source_head = put_locked(seaweedfs, src, "held.bin", data, mode="COMPLIANCE", part=5 * MiB if multipart else None)

    # When it is copied to a bucket with Object Lock on Ceph
    dest = FaultyStore(open_with(config.dests[0], transport))
    outcome = copy_key(open_with(config.source, transport), dest, "held.bin")

    # Then the copy has the same bytes, retention mode, retain-until date and legal hold
    assert outcome.action is Action.COPIED, outcome.error
    landed = ceph.client().get_object(Bucket=dst, Key="held.bin")
    assert md5(landed["Body"].read()) == md5(data)
    assert lock_of(landed) == lock_of(source_head) == ("COMPLIANCE", UNTIL, "ON")
    # And every part went with its Content-MD5; Ceph kept none of the lock CreateMultipartUpload carried,
    # so s3s3 set it on the copy's version afterwards (PutObjectRetention, PutObjectLegalHold)
    assert bool(dest.of("upload_part")) is multipart
    assert all(call.kwargs.get("md5") for call in dest.of("upload_part"))
    assert bool(dest.of("put_lock")) is multipart


@pytest.mark.parametrize("source_name", ["ceph", "seaweedfs"], ids=["server-side", "streamed"])
def test_a_ceph_bucket_without_object_lock_fails_a_locked_version_at_once_naming_the_option(
    locked_pair: Callable[..., tuple[Config, str, str]], request: pytest.FixtureRequest, ceph: Server, source_name: str
) -> None:
    # Given a locked source version, and a destination bucket on Ceph without Object Lock
    source: Server = request.getfixturevalue(source_name)
    config, src, dst = locked_pair(source, ceph, dest_lock=False)
    put_locked(source, src, "held.txt", b"protected", mode="COMPLIANCE")

    # When it is copied with object_lock = copy (the default)
    dest = FaultyStore(open_with(config.dests[0], "http"))
    outcome = copy_key(open_with(config.source, "http"), dest, "held.txt")

    # Then the key fails at once, not retried, saying why and what to change
    assert (outcome.action, outcome.attempts) == (Action.FAILED, 1)
    until = UNTIL.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert outcome.error == (
        f"'held.txt': dest1:{dst} has no Object Lock, and the source version has retention (COMPLIANCE until "
        f"{until}) and a legal hold: enable Object Lock on {dst} or set object_lock = ignore in [dest1]"
    )
    # And nothing was written there
    assert dest.of("put") == dest.of("create_upload") == dest.of("copy_object") == []
    assert ceph.client().list_objects_v2(Bucket=dst).get("KeyCount") == 0
