"""S3 event notifications as AWS, MinIO and Ceph RGW emit them, end to end through a running listener.

Each store encodes the object key its own way: AWS and MinIO form-encode it
(space is "+", "+" is "%2B"; MinIO escapes "/" too), Ceph sends it raw. Keys
with spaces, "+", "%", "/" and non-ASCII letters go through every wrapper a
store uses (Records, SNS, MinIO's webhook body and its Redis access list) and
must arrive under their real names with their bytes intact.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.helpers import (
    WHEN,
    all_arrived,
    announce,
    assert_intact,
    listing,
    new_bucket,
    put_objects,
    start_listener,
    stream_pubsub,
    wait_until,
    wrapped,
    write_config,
)
from tests.processes import Proc
from tests.servers.base import Server
from tests.servers.redis import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

TRICKY = ["a b.txt", "c+d.txt", "50%.txt", "100%25 literal.txt", "dir/sub dir/x y.txt", "naïve/日本語 ü+é.txt",
          "mixed +%2B/ é&=?#.txt"]  # fmt: skip


WRAPPERS = ["aws-records", "aws-sns", "minio-records", "minio-webhook", "minio-access", "ceph-records"]


def listener_for(
    tmp_path: Path,
    start_redis: Callable[..., RedisServer],
    spawner: Callable[..., Proc],
    source: tuple[Server, str],
    dests: list[tuple[Server, str, dict[str, object]]],
) -> tuple[Proc, redis.Redis, str]:
    """A stream-mode listener on a Redis of its own: (the process, a client, the stream)."""
    server = start_redis()
    config = write_config(tmp_path, source, dests, stream_pubsub(server.url))
    return start_listener(spawner, config), redis.Redis.from_url(server.url), config.pubsub.stream


def test_given_tricky_key_names_when_every_store_announces_them_in_every_wrapper_then_each_arrives_under_its_name(
    s3_source: Server,
    s3_dest: Server,
    private_redis: Callable[..., RedisServer],  # noqa: F811
    spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:
    # Given objects whose names hold spaces, "+", "%", "/", "&", "#" and non-ASCII letters, under each wrapper's prefix
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    objects = {f"{w}/{k}": f"{w} {k} {uuid.uuid4()}".encode() for w in WRAPPERS for k in TRICKY}
    put_objects(s3_source, src, objects)
    listener, client, stream = listener_for(tmp_path, private_redis, spawn, (s3_source, src), [(s3_dest, dst, {})])

    # When each store's notifications announce them (two records per message)
    messages = []
    for w in WRAPPERS:
        keys = [f"{w}/{k}" for k in TRICKY]
        messages += [wrapped(w, src, keys[i : i + 2]) for i in range(0, len(keys), 2)]
    announce(client, "stream", stream, messages)

    # Then every object arrives under its real name, intact, and nothing else is there
    wait_until(all_arrived(s3_dest, dst, objects), timeout=40)
    assert_intact(s3_dest, dst, objects, sample=len(objects))
    assert sorted(listing(s3_dest, dst)) == sorted(objects)
    assert listener.find(r"(WARNING|ERROR) .*") == []
    client.close()


def test_given_ceph_announces_a_multipart_upload_before_the_object_exists_then_it_is_missing_and_copied_on_its_put(
    s3_source: Server,
    s3_dest: Server,
    private_redis: Callable[..., RedisServer],  # noqa: F811
    spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:
    # Given a listener, and a key not yet at the source
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    listener, client, stream = listener_for(tmp_path, private_redis, spawn, (s3_source, src), [(s3_dest, dst, {})])
    key = "uploads/big file+1.bin"

    # When Ceph sends ObjectCreated:Post on initiating the multipart upload
    announce(client, "stream", stream, [wrapped("ceph-records", src, [key], "ObjectCreated:Post")])

    # Then it is no error: logged as missing at the source, nothing copied, nothing dead-lettered
    missing = rf"WARNING s3s3\.copy: Missing {re.escape(repr(key))} at the source; nothing copied to dest1:{dst}"
    listener.wait_for(missing)
    assert listing(s3_dest, dst) == {}
    assert client.xlen("s3s3:failed") == 0

    # When the object appears and Ceph sends its Put (as s3:ObjectCreated:CompleteMultipartUpload)
    body = b"finally here " * 100
    s3_source.client().put_object(Bucket=src, Key=key, Body=body)
    completed = wrapped("ceph-records", src, [key], "s3:ObjectCreated:CompleteMultipartUpload")
    announce(client, "stream", stream, [completed])

    # Then it is copied, intact
    wait_until(all_arrived(s3_dest, dst, [key]), timeout=20)
    assert_intact(s3_dest, dst, {key: body})
    assert listener.find(r"ERROR .*") == []
    client.close()


def test_given_the_aws_test_event_when_announced_then_it_is_ignored_without_a_rejection(
    s3_source: Server,
    s3_dest: Server,
    private_redis: Callable[..., RedisServer],  # noqa: F811
    spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:
    # Given a listener
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    put_objects(s3_source, src, {"after.txt": b"after the test event"})
    listener, client, stream = listener_for(tmp_path, private_redis, spawn, (s3_source, src), [(s3_dest, dst, {})])

    # When AWS sends the test event it sends when notifications are configured, then a real event
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": WHEN, "Bucket": src,
                  "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw098X5cv4Zk"}  # fmt: skip
    announce(client, "stream", stream, [json.dumps(test_event), wrapped("aws-records", src, ["after.txt"])])

    # Then the real one is copied; the test event is acknowledged, neither rejected nor copied nor dead-lettered
    wait_until(all_arrived(s3_dest, dst, ["after.txt"]), timeout=20)
    wait_until(lambda: client.xpending(stream, "s3s3")["pending"] == 0, timeout=10)
    assert client.xinfo_groups(stream)[0]["entries-read"] == 2
    assert list(listing(s3_dest, dst)) == ["after.txt"]
    assert client.xlen("s3s3:failed") == 0
    assert listener.find(r"(WARNING|ERROR) .*") == []
    client.close()


@pytest.mark.parametrize("store", ["aws", "minio", "ceph"])
def test_given_delete_events_then_only_a_destination_with_propagate_deletes_removes_the_key(
    s3_source: Server,
    s3_dest: Server,
    private_redis: Callable[..., RedisServer],  # noqa: F811
    spawn: Callable[..., Proc],
    tmp_path: Path,
    store: str,
) -> None:
    # Given a key copied to two destinations, only the first of which propagates deletes
    src, dst1, dst2 = new_bucket(s3_source), new_bucket(s3_dest), new_bucket(s3_dest)
    key, body = "old/red flower+1.jpg", b"petals"
    put_objects(s3_source, src, {key: body})
    dests = [(s3_dest, dst1, {"propagate_deletes": "True"}), (s3_dest, dst2, {})]
    listener, client, stream = listener_for(tmp_path, private_redis, spawn, (s3_source, src), dests)
    announce(client, "stream", stream, [wrapped(f"{store}-records", src, [key])])
    wait_until(all_arrived(s3_dest, dst1, [key]), timeout=20)
    wait_until(all_arrived(s3_dest, dst2, [key]), timeout=20)

    # When the source deletes it and announces the deletion
    s3_source.client().delete_object(Bucket=src, Key=key)
    announce(client, "stream", stream, [wrapped(f"{store}-records", src, [key], "ObjectRemoved:Delete")])

    # Then the first destination deletes it, the second keeps it whole, and each says so
    escaped = r"'old/red flower\+1\.jpg'"
    listener.wait_for(rf"INFO s3s3\.copy: Deleted {escaped} at dest1:{dst1} in \d+\.\d\ds")
    listener.wait_for(rf"INFO s3s3\.copy: Kept {escaped} at dest2:{dst2}: deleted at the source, "
                      r"propagate_deletes is off")  # fmt: skip
    assert listing(s3_dest, dst1) == {}
    assert_intact(s3_dest, dst2, {key: body})
    assert hashlib.md5(body).hexdigest() == listing(s3_dest, dst2)[key][1]
    client.close()
