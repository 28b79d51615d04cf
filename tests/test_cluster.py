"""Redis Cluster: the listener (stream and pubsub modes), `s3s3 publish` and the bucket sync's lock and ledger."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from s3s3.config import Config
from s3s3.services import BucketClient, ListenClient
from tests.helpers import new_bucket, wait_until
from tests.servers.base import Server
from tests.servers.redis import ClusterNodes

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Three redis-server nodes on loopback, made one cluster; yields a URL of one of them."""
    nodes = ClusterNodes(str(tmp_path_factory.mktemp("cluster")))
    try:
        yield nodes.start().url
    finally:
        nodes.stop()


def arrived(server: Server, bucket: str, keys: list[str]) -> Callable[[], bool]:
    def check() -> bool:
        listed = server.client().list_objects_v2(Bucket=bucket).get("Contents", [])
        return sorted(o["Key"] for o in listed) == sorted(keys)

    return check


@pytest.mark.parametrize("mode", ["stream", "list", "pubsub"])
def test_the_listener_reads_announcements_from_a_redis_cluster(
    cluster: str, s3_source: Server, s3_dest: Server, make_config: Callable[..., Config], mode: str
) -> None:
    # Given a listener on a Redis Cluster
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    config = make_config((s3_source, src), [(s3_dest, dst)], redis_url=cluster,
                         pubsub_extra={"cluster": "true", "mode": mode, "stream": f"s3s3:events:{src}",
                                       "list": f"s3s3:queue:{src}"})  # fmt: skip
    keys = [f"k/{i}" for i in range(20)]
    for key in keys:
        s3_source.client().put_object(Bucket=src, Key=key, Body=key.encode())
    listener = ListenClient(config).listener()
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()
    try:
        wait_until(listener.connected.is_set, timeout=20)
        if mode == "pubsub":
            node = redis.RedisCluster.from_url(cluster)
            channel = config.pubsub.channel

            def subscribed() -> bool:  # a subscription lives on one node: ask them all
                replies = node.execute_command("PUBSUB NUMSUB", channel, target_nodes=redis.RedisCluster.ALL_NODES)
                return sum(count for _channel, count in replies) > 0  # redis-py adds up the nodes' answers

            wait_until(subscribed, timeout=10)
            node.close()

        # When the keys are announced with `s3s3 publish`
        done = subprocess.run([BIN / "s3s3", "publish", "--config", config.path, *keys], capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr

        # Then every key arrives with its bytes
        wait_until(arrived(s3_dest, dst, keys), timeout=30)
        for key in keys:
            assert s3_dest.client().get_object(Bucket=dst, Key=key)["Body"].read() == key.encode()
    finally:
        listener.stopping.set()
        thread.join(30)


def test_the_bucket_sync_takes_its_lock_and_keeps_its_ledger_on_a_redis_cluster(
    cluster: str, s3_source: Server, s3_dest: Server, make_config: Callable[..., Config]
) -> None:
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    config = make_config((s3_source, src), [(s3_dest, dst)], redis_url=cluster, pubsub_extra={"cluster": "true"})
    # (a multipart ETag: the listings cannot decide it, so the ledger keeps it)
    client = s3_source.client()
    upload = client.create_multipart_upload(Bucket=src, Key="a")["UploadId"]
    part = client.upload_part(Bucket=src, Key="a", UploadId=upload, PartNumber=1, Body=b"a")["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": part}]}
    client.complete_multipart_upload(Bucket=src, Key="a", UploadId=upload, MultipartUpload=parts)
    first = BucketClient(config).duplicate_bucket()
    assert (first.copied, first.failed, first.errors) == (1, 0, [])
    node = redis.RedisCluster.from_url(cluster)
    try:
        everywhere = redis.RedisCluster.PRIMARIES
        assert any(k.startswith(b"s3s3:ledger:") for k in node.keys("s3s3:ledger:*", target_nodes=everywhere))
        assert not node.keys("s3s3:lock:*", target_nodes=redis.RedisCluster.PRIMARIES)  # released
    finally:
        node.close()
    again = BucketClient(config).duplicate_bucket()
    assert (again.copied, again.skipped) == (0, 1)


def test_a_sync_replaying_versions_keeps_its_leases_and_version_map_on_a_redis_cluster(
    cluster: str, s3_source: Server, s3_dest: Server, make_config: Callable[..., Config]
) -> None:
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    for server, bucket in ((s3_source, src), (s3_dest, dst)):
        server.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    config = make_config((s3_source, src), [(s3_dest, dst)], redis_url=cluster, pubsub_extra={"cluster": "true"},
                         dest_extra={"versions": "all"})  # fmt: skip
    for body in (b"one", b"two"):
        s3_source.client().put_object(Bucket=src, Key="a", Body=body)
    first = BucketClient(config).duplicate_bucket()
    assert (first.as_dict()["versions_copied"], first.failed, first.errors) == (2, 0, [])
    node = redis.RedisCluster.from_url(cluster)
    try:
        everywhere = redis.RedisCluster.PRIMARIES
        assert node.keys("s3s3:versions:*", target_nodes=everywhere)
        assert not node.keys("s3s3:lease:*", target_nodes=everywhere)  # released
    finally:
        node.close()
    again = BucketClient(config).duplicate_bucket().as_dict()
    assert (again["versions_copied"], again["versions_headed"], again["skipped"]) == (0, 0, 1)


def test_a_split_sync_is_worked_on_a_redis_cluster_its_tasks_and_totals_in_one_slot(
    cluster: str, s3_source: Server, s3_dest: Server, make_config: Callable[..., Config]
) -> None:
    # Given 30 keys at the source, and a sync split in three on a Redis Cluster
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    keys = [f"k/{i:02d}" for i in range(30)]
    for key in keys:
        s3_source.client().put_object(Bucket=src, Key=key, Body=key.encode())
    config = make_config((s3_source, src), [(s3_dest, dst)], redis_url=cluster, pubsub_extra={"cluster": "true"})
    command = [BIN / "s3s3bucket", "--config", config.path]
    split = subprocess.run([*command, "--split", "3"], capture_output=True, text=True, timeout=60)
    assert split.returncode == 0, split.stderr

    # When a --work process does the ranges
    work = subprocess.run([*command, "--work"], capture_output=True, text=True, timeout=90)

    # Then every range is done (the transactions over the task stream and the totals worked) and every key landed
    assert work.returncode == 0, work.stderr
    wait_until(arrived(s3_dest, dst, keys), timeout=10)
    status = subprocess.run([BIN / "s3s3", "status", "--sync", "--config", config.path], capture_output=True,
                            text=True, timeout=30)  # fmt: skip
    assert "state:     finished" in status.stdout, status.stdout + status.stderr
