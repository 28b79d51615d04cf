"""A listener keeps every version at a `versions = all` destination: each key's history, in the source's order.

Real `s3s3listen` processes read a stream on a redis-server of their own and
replay into versioned buckets on a second moto server. Whatever order the
events come in, and however many listeners share them, each destination
history is the source's: the same versions, oldest first, byte for byte,
each naming the source version it replays, with delete markers where the
source has them. A version deleted for good at the source stays in the
backup unless the destination propagates version deletes. A replay the
listener gives up on is dead-lettered, and the bucket sync replays it.

moto 5.2 gives LastModified in whole seconds and lists each key's versions
before its delete markers: histories here put markers last, where the
listing order holds (tests/copy/test_replay.py covers markers anywhere).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from s3s3.config import Config
from s3s3.store import META_VERSION
from tests.faults import FaultProxy
from tests.helpers import (
    announce,
    new_bucket,
    pending,
    record,
    start_listener,
    stream_pubsub,
    via,
    wait_until,
    write_config,
)
from tests.processes import BIN, Proc
from tests.servers.base import Server, free_port
from tests.servers.redis import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ALL = {"versions": "all"}


@dataclass(frozen=True)
class Entry:
    """One entry of a key's history as the store lists it: a version (with its bytes) or a delete marker."""

    version_id: str
    marker: bool
    body: bytes | None = None  # a version's bytes, read back by its ID
    replays: str | None = None  # a version's s3s3-source-version-id


def versioned_bucket(server: Server) -> str:
    bucket = new_bucket(server, "v")
    server.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


def history(server: Server, bucket: str, key: str) -> list[Entry]:
    """`key`'s versions and delete markers, oldest first, each version read back whole with its metadata."""
    client = server.client()
    listed = client.list_object_versions(Bucket=bucket, Prefix=key)
    # moto lists a key's versions newest first (in order), then its markers: in order where markers are newest.
    versions = [v["VersionId"] for v in listed.get("Versions", []) if v["Key"] == key]
    markers = [m for m in listed.get("DeleteMarkers", []) if m["Key"] == key]
    assert not markers or markers[0]["IsLatest"], "a history with a delete marker below a version"
    entries = []
    for version_id in reversed(versions):
        got = client.get_object(Bucket=bucket, Key=key, VersionId=version_id)
        entries.append(Entry(version_id, False, got["Body"].read(), got["Metadata"].get(META_VERSION)))
    return entries + [Entry(m["VersionId"], True) for m in reversed(markers)]


def put(server: Server, bucket: str, key: str, body: bytes) -> str:
    """Write a version; its ID."""
    return str(server.client().put_object(Bucket=bucket, Key=key, Body=body)["VersionId"])


def event(bucket: str, key: str, version_id: str, name: str = "ObjectCreated:Put") -> str:
    """The S3 event notification of one version (or delete marker) of `key`, as AWS sends it."""
    rec = record("aws", bucket, key, name)
    rec["s3"]["object"]["versionId"] = version_id
    return json.dumps({"Records": [rec]})


def replica_of(source: list[Entry], dest: list[Entry]) -> bool:
    """Whether `dest` is `source` replayed: the same entries in the same order, same bytes, each naming its own."""
    return [(e.marker, e.body, None if e.marker else e.version_id) for e in source] == [
        (e.marker, e.body, e.replays) for e in dest
    ]


@dataclass
class Setup:
    """A stream-mode listener's world: the buckets, a client of its Redis, the config."""

    src: str
    dst: str
    client: redis.Redis
    stream: str
    config: Config


def setup(
    tmp_path: Path,
    start_redis: Callable[..., RedisServer],
    source: Server,
    dest: Server,
    dest_options: dict[str, object] | None = None,
    pubsub: dict[str, object] | None = None,
    **sections: dict[str, object],
) -> Setup:
    src, dst = versioned_bucket(source), versioned_bucket(dest)
    server = start_redis()
    config = write_config(tmp_path, (source, src), [(dest, dst, {**ALL, **(dest_options or {})})],
                          stream_pubsub(server.url, **(pubsub or {})), **sections)  # fmt: skip
    return Setup(src, dst, redis.Redis.from_url(server.url), config.pubsub.stream, config)


def listen(spawn: Callable[..., Proc], world: Setup) -> Proc:
    return start_listener(spawn, world.config)


def acknowledged(world: Setup, count: int) -> Callable[[], bool]:
    """Every one of `count` announcements read and acknowledged by the group."""

    def check() -> bool:
        groups = world.client.xinfo_groups(world.stream)
        return bool(groups) and groups[0]["entries-read"] == count and pending(world.client, world.stream) == 0

    check.__name__ = f"{count} announcements acknowledged"
    return check


def test_version_events_arriving_out_of_order_replay_the_history_in_order_byte_for_byte(
    s3_source: Server, s3_dest: Server, private_redis: Callable[..., RedisServer], spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:  # fmt: skip
    # Given a key with three versions of different sizes at a versioned source, and a listener
    port = free_port()
    world = setup(tmp_path, private_redis, s3_source, s3_dest, metrics={"port": port, "bind": "127.0.0.1"})
    bodies = [os.urandom(100), os.urandom(5000), os.urandom(70)]
    v1, v2, v3 = (put(s3_source, world.src, "doc.txt", body) for body in bodies)
    listener = listen(spawn, world)

    # When their events come newest first, then the oldest, then the middle one
    announce(world.client, "stream", world.stream,
             [event(world.src, "doc.txt", v) for v in (v3, v1, v2)])  # fmt: skip
    wait_until(acknowledged(world, 3), timeout=30)

    # Then the destination holds the three versions, oldest first, byte for byte, each naming its source version
    source, dest = history(s3_source, world.src, "doc.txt"), history(s3_dest, world.dst, "doc.txt")
    assert [e.body for e in dest] == bodies
    assert [e.replays for e in dest] == [v1, v2, v3]
    assert replica_of(source, dest)
    assert [hashlib.md5(e.body or b"").hexdigest() for e in dest] == [hashlib.md5(b).hexdigest() for b in bodies]
    # And the later events found nothing more to write; nothing was dead-lettered
    assert len(listener.find(r"INFO s3s3\.copy: Copied 'doc\.txt' to dest1:\S+: \d+ bytes in .*")) == 3
    assert world.client.xlen("s3s3:failed") == 0
    assert listener.find(r"(WARNING|ERROR) .*") == []
    # And /metrics counts the versions replayed
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        metrics = answer.read().decode()
    assert f's3s3_versions_copied_total{{dest="dest1:{world.dst}"}} 3.0' in metrics
    world.client.close()


def test_a_delete_marker_event_makes_a_delete_marker_after_the_versions(
    s3_source: Server, s3_dest: Server, private_redis: Callable[..., RedisServer], spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:  # fmt: skip
    # Given two versions of a key replayed to the destination
    world = setup(tmp_path, private_redis, s3_source, s3_dest)
    v1, v2 = put(s3_source, world.src, "k", b"one"), put(s3_source, world.src, "k", b"two")
    listener = listen(spawn, world)
    announce(world.client, "stream", world.stream, [event(world.src, "k", v1), event(world.src, "k", v2)])
    wait_until(acknowledged(world, 2), timeout=30)

    # When the key is deleted at the source (a delete marker) and that is announced
    marker = s3_source.client().delete_object(Bucket=world.src, Key="k")["VersionId"]
    announce(world.client, "stream", world.stream, [event(world.src, "k", marker, "ObjectRemoved:DeleteMarkerCreated")])
    wait_until(acknowledged(world, 3), timeout=30)

    # Then the destination's history ends in a delete marker after the two versions, and the key reads as deleted
    dest = history(s3_dest, world.dst, "k")
    assert [(e.marker, e.body, e.replays) for e in dest] == [
        (False, b"one", v1),
        (False, b"two", v2),
        (True, None, None),
    ]
    assert replica_of(history(s3_source, world.src, "k"), dest)
    assert s3_dest.client().list_objects_v2(Bucket=world.dst).get("KeyCount") == 0
    assert listener.find(r"(WARNING|ERROR) .*") == []
    world.client.close()


@pytest.mark.parametrize("propagate", [False, True], ids=["kept-by-default", "propagated-when-asked"])
def test_a_version_deleted_for_good_at_the_source_stays_in_the_backup_unless_propagate_version_deletes(
    s3_source: Server, s3_dest: Server, private_redis: Callable[..., RedisServer], spawn: Callable[..., Proc],
    tmp_path: Path, propagate: bool,
) -> None:  # fmt: skip
    # Given two versions replayed to the destination
    options = {"propagate_version_deletes": str(propagate)}
    world = setup(tmp_path, private_redis, s3_source, s3_dest, options)
    v1, v2 = put(s3_source, world.src, "k", b"first"), put(s3_source, world.src, "k", b"second")
    listener = listen(spawn, world)
    announce(world.client, "stream", world.stream, [event(world.src, "k", v1), event(world.src, "k", v2)])
    wait_until(acknowledged(world, 2), timeout=30)

    # When the first version is deleted for good at the source, and that is announced
    s3_source.client().delete_object(Bucket=world.src, Key="k", VersionId=v1)
    announce(world.client, "stream", world.stream, [event(world.src, "k", v1, "ObjectRemoved:Delete")])
    wait_until(acknowledged(world, 3), timeout=30)

    # Then the backup keeps it (and says so), or, propagating, deletes that version and no other
    dest = history(s3_dest, world.dst, "k")
    if propagate:
        listener.wait_for(rf"INFO s3s3\.copy: Deleted 'k' at dest1:{world.dst} in \d+\.\d\ds")
        assert [(e.body, e.replays) for e in dest] == [(b"second", v2)]
    else:
        listener.wait_for(rf"INFO s3s3\.copy: Kept 'k' at dest1:{world.dst}: version {re.escape(repr(v1))} deleted "
                          r"for good at the source, propagate_version_deletes is off")  # fmt: skip
        assert [(e.body, e.replays) for e in dest] == [(b"first", v1), (b"second", v2)]
    assert world.client.xlen("s3s3:failed") == 0
    world.client.close()


def test_a_plain_key_announcement_replays_every_version_the_destination_lacks(
    s3_source: Server, s3_dest: Server, private_redis: Callable[..., RedisServer], spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:  # fmt: skip
    # Given a key with versions and a delete marker, the destination already holding the first
    world = setup(tmp_path, private_redis, s3_source, s3_dest)
    v1 = put(s3_source, world.src, "a/b c.bin", b"v1")
    listener = listen(spawn, world)
    announce(world.client, "stream", world.stream, ["a/b c.bin"])
    wait_until(acknowledged(world, 1), timeout=30)
    put(s3_source, world.src, "a/b c.bin", b"v2")
    put(s3_source, world.src, "a/b c.bin", os.urandom(3000))
    s3_source.client().delete_object(Bucket=world.src, Key="a/b c.bin")

    # When only its name is announced, as a bare key
    announce(world.client, "stream", world.stream, ["a/b c.bin"])
    wait_until(acknowledged(world, 2), timeout=30)

    # Then every entry it lacked is replayed after the one it held, in order
    source, dest = history(s3_source, world.src, "a/b c.bin"), history(s3_dest, world.dst, "a/b c.bin")
    assert [e.marker for e in dest] == [False, False, False, True]
    assert dest[0].replays == v1
    assert replica_of(source, dest)
    assert listener.find(r"(WARNING|ERROR) .*") == []
    world.client.close()


def test_two_listeners_in_one_group_given_the_same_keys_versions_keep_each_keys_order(
    s3_source: Server, s3_dest: Server, private_redis: Callable[..., RedisServer], spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:  # fmt: skip
    # Given three keys of five versions each, and two listeners of two workers each in one stream group
    world = setup(tmp_path, private_redis, s3_source, s3_dest, pubsub={"workers": 2})
    keys = [f"k{i}" for i in range(3)]
    versions = {key: [put(s3_source, world.src, key, os.urandom(random.randint(1, 40000))) for _ in range(5)]
                for key in keys}  # fmt: skip
    first, second = listen(spawn, world), listen(spawn, world)

    # When every version's event is announced twice, shuffled
    events = [event(world.src, key, v) for key in keys for v in versions[key]] * 2
    random.Random(7).shuffle(events)
    announce(world.client, "stream", world.stream, events)
    wait_until(acknowledged(world, len(events)), timeout=60)

    # Then both listeners took part, and each key's history at the destination is the source's, in order, once
    consumers = {c["name"] for c in world.client.xinfo_consumers(world.stream, "s3s3")}
    assert len(consumers) == 2
    for listener in (first, second):
        assert listener.find(r"INFO s3s3\.copy: (Copied|Skipped) 'k\d' to dest1:.*"), "a listener did nothing"
    for key in keys:
        dest = history(s3_dest, world.dst, key)
        assert [e.replays for e in dest] == versions[key]
        assert replica_of(history(s3_source, world.src, key), dest)
    assert world.client.xlen("s3s3:failed") == 0
    world.client.close()


def test_a_listener_stopped_mid_replay_finishes_it_and_leaves_nothing_pending(
    s3_source: Server, s3_dest: Server, private_redis: Callable[..., RedisServer], spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:  # fmt: skip
    # Given a key of four versions of 3 MiB, announced to a listener
    world = setup(tmp_path, private_redis, s3_source, s3_dest)
    for _ in range(4):
        put(s3_source, world.src, "big", os.urandom(3 * 2**20))
    listener = listen(spawn, world)
    announce(world.client, "stream", world.stream, ["big"])

    # When it gets SIGTERM once the first version has landed
    listener.wait_for(r"INFO s3s3\.copy: Copied 'big' to dest1:.*", timeout=30)
    os.killpg(listener.proc.pid, signal.SIGTERM)

    # Then it exits 0 after replaying the whole history, its announcement acknowledged
    assert listener.proc.wait(60) == 0
    assert replica_of(history(s3_source, world.src, "big"), history(s3_dest, world.dst, "big"))
    assert pending(world.client, world.stream) == 0
    world.client.close()


def test_a_listener_for_an_unversioned_destination_with_versions_all_exits_2_saying_what_to_do(
    s3_source: Server, s3_dest: Server, private_redis: Callable[..., RedisServer], tmp_path: Path,
) -> None:  # fmt: skip
    # Given a destination with versions = all whose bucket keeps no versions
    src, dst = versioned_bucket(s3_source), new_bucket(s3_dest)
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst, ALL)], stream_pubsub(private_redis().url))

    # When the listener starts
    result = subprocess.run([str(BIN / "s3s3listen"), "--config", str(config.path)], capture_output=True, text=True,
                            timeout=60, check=False)  # fmt: skip

    # Then it exits 2 at once with one line naming the destination, the bucket and what to do
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"s3s3: error: [dest1] versions = all: bucket {dst!r} has versioning Off: enable versioning on bucket "
        f"{dst!r} or set versions = latest in [dest1]"
    )
    assert "Listening" not in result.stderr


def test_an_unversioned_source_warns_once_and_copies_the_latest_version(
    s3_source: Server, s3_dest: Server, private_redis: Callable[..., RedisServer], spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:  # fmt: skip
    # Given a source bucket that keeps no versions, and a destination with versions = all
    src, dst = new_bucket(s3_source), versioned_bucket(s3_dest)
    server = private_redis()
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst, ALL)], stream_pubsub(server.url))
    s3_source.client().put_object(Bucket=src, Key="k", Body=b"only")
    listener = start_listener(spawn, config)

    # When a key is announced
    client = redis.Redis.from_url(server.url)
    announce(client, "stream", config.pubsub.stream, ["k"])
    listener.wait_for(r"INFO s3s3\.copy: Copied 'k' to dest1:.*")

    # Then it said once that the source keeps no versions, and copied the key as versions = latest does
    assert len(listener.find(r"WARNING .*keeps no versions.*")) == 1
    assert [e.body for e in history(s3_dest, dst, "k")] == [b"only"]
    wait_until(lambda: pending(client, config.pubsub.stream) == 0, timeout=10)
    client.close()


def test_a_replay_the_listener_gave_up_on_is_dead_lettered_and_replayed_by_the_bucket_sync(
    s3_source: Server, s3_dest: Server, fault_proxy: FaultProxy, private_redis: Callable[..., RedisServer],
    spawn: Callable[..., Proc], tmp_path: Path,
) -> None:  # fmt: skip
    # Given a destination (through a proxy) that refuses every write of one key, and a listener giving up fast
    src, dst = versioned_bucket(s3_source), versioned_bucket(s3_dest)
    server = private_redis()
    pubsub = stream_pubsub(server.url, max_attempts=1, max_retry_seconds=1)
    config = write_config(tmp_path, (s3_source, src), [(via(s3_dest, fault_proxy), dst, ALL)], pubsub)
    versions = [put(s3_source, src, "doomed/k", body) for body in (b"one", b"two")]
    fault_proxy.doomed = ("doomed/",)
    listener = start_listener(spawn, config)
    client = redis.Redis.from_url(server.url)

    # When the key is announced, then its replay fails, is kept in the dead-letter stream, and is acknowledged
    announce(client, "stream", config.pubsub.stream, [event(src, "doomed/k", versions[1])])
    wait_until(lambda: client.xlen("s3s3:failed") == 1 and pending(client, config.pubsub.stream) == 0, timeout=60)
    assert listener.find(rf"ERROR s3s3\.copy: Failed 'doomed/k' to dest1:{dst} after .*")
    assert history(s3_dest, dst, "doomed/k") == []

    # When the destination takes writes again and the bucket sync runs
    fault_proxy.doomed = ()
    result = subprocess.run([str(BIN / "s3s3bucket"), "--config", str(config.path)], capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip

    # Then it retried the dead-lettered key by replaying its history, in order, and the entry is gone
    assert result.returncode == 0, result.stderr
    assert "Retried 1 dead-lettered key(s); 0 still fail" in result.stderr
    assert [e.replays for e in history(s3_dest, dst, "doomed/k")] == versions
    assert client.xlen("s3s3:failed") == 0
    client.close()


def test_a_latest_destination_takes_the_version_a_permanent_delete_left_current(
    s3_source: Server, s3_dest: Server, private_redis: Callable[..., RedisServer], spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:  # fmt: skip
    # Given a key of two versions at the source, the newest copied to a versions = latest destination
    world = setup(tmp_path, private_redis, s3_source, s3_dest, {"versions": "latest"})
    put(s3_source, world.src, "k", b"older")
    newest = put(s3_source, world.src, "k", b"newest")
    listen(spawn, world)
    announce(world.client, "stream", world.stream, [event(world.src, "k", newest)])
    wait_until(acknowledged(world, 1), timeout=30)
    assert s3_dest.client().get_object(Bucket=world.dst, Key="k")["Body"].read() == b"newest"

    # When the newest version is deleted for good at the source, and that is announced
    s3_source.client().delete_object(Bucket=world.src, Key="k", VersionId=newest)
    announce(world.client, "stream", world.stream, [event(world.src, "k", newest, "ObjectRemoved:Delete")])
    wait_until(acknowledged(world, 2), timeout=30)

    # Then the destination holds what the source now reads as current: the older version's bytes
    assert s3_dest.client().get_object(Bucket=world.dst, Key="k")["Body"].read() == b"older"
    assert world.client.xlen("s3s3:failed") == 0
    world.client.close()
