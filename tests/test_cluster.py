"""Redis Cluster: the listener (stream and pubsub modes), `s3s3 publish` and the bucket sync's lock and ledger."""

from __future__ import annotations

import shutil
import socket
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
from tests.servers.base import Server, free_port, stop_process, wait_for_port

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]
BIN = Path(sys.executable).parent


def cluster_port() -> int:
    """A free port whose cluster bus port (10000 higher) is free too, as Redis Cluster needs."""
    while True:
        port = free_port()
        if port <= 55535:
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Three redis-server nodes on loopback, made one cluster; yields a URL of one of them."""
    if shutil.which("redis-cli") is None:
        pytest.fail("redis-cli is not installed: `make test` installs redis-server, which brings it")
    procs, ports = [], []
    for _ in range(3):
        port, workdir = cluster_port(), tmp_path_factory.mktemp("cluster")
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", str(workdir / "nodes.conf"), "--save", "", "--appendonly", "no",
             "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, start_new_session=True,
        ))  # fmt: skip
        ports.append(port)
    try:
        for port, proc in zip(ports, procs, strict=True):
            wait_for_port(port, timeout=10, proc=proc)
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        node = redis.Redis(port=ports[0])
        state = lambda: node.execute_command("CLUSTER", "INFO", NEVER_DECODE=True)  # noqa: E731
        wait_until(lambda: b"cluster_state:ok" in state(), timeout=20)
        node.close()
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for proc in procs:
            stop_process(proc)


def arrived(server: Server, bucket: str, keys: list[str]) -> Callable[[], bool]:
    def check() -> bool:
        listed = server.client().list_objects_v2(Bucket=bucket).get("Contents", [])
        return sorted(o["Key"] for o in listed) == sorted(keys)

    return check


@pytest.mark.parametrize("mode", ["stream", "pubsub"])
def test_the_listener_reads_announcements_from_a_redis_cluster(
    cluster: str, s3_source: Server, s3_dest: Server, make_config: Callable[..., Config], mode: str
) -> None:
    # Given a listener on a Redis Cluster
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    config = make_config((s3_source, src), [(s3_dest, dst)], redis_url=cluster,
                         pubsub_extra={"cluster": "true", "mode": mode, "stream": f"s3s3:events:{src}"})  # fmt: skip
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
