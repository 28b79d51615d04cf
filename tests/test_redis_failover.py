"""A Redis that fails over loses nothing: real redis-server and redis-sentinel processes on loopback, the
master SIGKILLed mid-run, the replica promoted, and the listener, a bucket sync fleet and the webhook follow it."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from s3s3.config import Config
from s3s3.services import BucketClient
from s3s3.sync import fleet
from tests.faults import FaultProxy
from tests.helpers import all_arrived, new_bucket, record, start_listener, via, wait_until, write_config
from tests.processes import BIN, Proc
from tests.servers.base import Server, free_port
from tests.servers.redis import ClusterNodes, SentinelGroup

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]
FOLLOW_SECONDS = 30  # a listener is back at work this soon after the master is killed


def sentinel_pubsub(group: SentinelGroup, **extra: object) -> dict[str, object]:
    """[pubsub] for a stream of the test's own behind these Sentinels; url gives only the database."""
    return {"url": "redis:///0", "sentinels": group.option, "sentinel_master": group.name, "mode": "stream",
            "stream": f"s3s3:events:{uuid.uuid4().hex[:8]}", "wait_replicas": 1, **extra}  # fmt: skip


def publish(config: Config, *keys: str) -> None:
    done = subprocess.run([BIN / "s3s3", "publish", "--config", config.path, *keys], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("held by 1 replica(s)") == len(keys)


def health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as e:
        return e.code


def put(server: Server, bucket: str, keys: list[str]) -> None:
    for key in keys:
        server.client().put_object(Bucket=bucket, Key=key, Body=key.encode() * 3)


def test_a_stream_listener_follows_a_sentinel_failover_and_every_announcement_lands(
    sentinel_group: SentinelGroup, s3_source: Server, s3_dest: Server, tmp_path: Path, spawn: Callable[..., Proc]
) -> None:
    # Given a stream-mode listener that finds its Redis through three Sentinels, serving /healthz
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    before, after = [f"before/{i}" for i in range(20)], [f"after/{i}" for i in range(20)]
    put(s3_source, src, before + after)
    port = free_port()
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst, {})], sentinel_pubsub(sentinel_group),
                          metrics={"port": port})  # fmt: skip
    listener = start_listener(spawn, config)
    assert health(port) == 200

    # When keys are published with wait_replicas = 1, and the master is SIGKILLed at once
    publish(config, *before)
    old = sentinel_group.kill_master()
    killed = time.monotonic()

    # Then /healthz answers 503 while Redis is unreachable
    wait_until(lambda: health(port) == 503, timeout=10)
    listener.wait_for(r"ERROR s3s3\.listen: Lost the Redis connection at redis\+sentinel://[\d.:,]+/s3s3test: .+")

    # And once the Sentinels promote the replica the listener follows it within 30 s: /healthz answers 200
    wait_until(lambda: sentinel_group.promoted(old), timeout=FOLLOW_SECONDS)
    wait_until(lambda: health(port) == 200, timeout=FOLLOW_SECONDS)
    assert time.monotonic() - killed < FOLLOW_SECONDS

    # And every key published before the kill, and every one after (the old master back as a replica), lands
    sentinel_group.rejoin(old)
    publish(config, *after)
    wait_until(all_arrived(s3_dest, dst, before + after), timeout=60)
    for key in before + after:
        assert s3_dest.client().get_object(Bucket=dst, Key=key)["Body"].read() == key.encode() * 3
    assert listener.alive()


def test_a_bucket_sync_fleet_follows_a_sentinel_failover_and_finishes_every_range(
    sentinel_group: SentinelGroup, s3_source: Server, s3_dest: Server, tmp_path: Path
) -> None:
    # Given a sync split in four ranges on a Redis behind three Sentinels, its tasks on the replica too
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    keys = [f"k/{i:03d}" for i in range(80)]
    put(s3_source, src, keys)
    proxy = FaultProxy(s3_dest.endpoint_url).start()
    try:
        config = write_config(tmp_path, (s3_source, src), [(via(s3_dest, proxy), dst, {})],
                              sentinel_pubsub(sentinel_group))  # fmt: skip
        done = subprocess.run([BIN / "s3s3bucket", "--config", config.path, "--split", "4"], capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        with redis.Redis(port=sentinel_group.master_port()) as master:
            assert master.wait(1, 5000) == 1

        # When two --work processes copy with their PUTs held, and the master is SIGKILLed meanwhile
        proxy.hold = lambda method, path: method == "PUT"
        workers = [subprocess.Popen([BIN / "s3s3bucket", "--config", config.path, "--work", "--workers", "2"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for _ in range(2)]  # fmt: skip
        sync = BucketClient(config).sync_of()
        with redis.Redis(port=sentinel_group.master_port()) as master:
            wait_until(lambda: fleet.open_tasks(master, sync)[1] == 2, timeout=30)  # each worker holds a range
        wait_until(lambda: proxy.puts_at_once, timeout=30)  # and a PUT waits at the gate
        old = sentinel_group.kill_master()
        wait_until(lambda: sentinel_group.promoted(old), timeout=FOLLOW_SECONDS)
        proxy.healthy()
        results = [w.communicate(timeout=120) for w in workers]
    finally:
        proxy.stop()

    # Then both workers exit 0 once every range is done on the new master, and every key landed
    assert [w.returncode for w in workers] == [0, 0], results
    with redis.Redis(port=sentinel_group.master_port()) as master:
        assert fleet.open_tasks(master, sync) == (0, 0)
    wait_until(all_arrived(s3_dest, dst, keys), timeout=10)


def test_the_webhook_answers_503_while_redis_fails_over_and_200_after_and_keeps_every_accepted_event(
    sentinel_group: SentinelGroup, s3_source: Server, s3_dest: Server, tmp_path: Path, spawn: Callable[..., Proc]
) -> None:
    # Given s3s3 webhook handing notifications to a stream behind three Sentinels, with wait_replicas = 1
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    port = free_port()
    pubsub = sentinel_pubsub(sentinel_group)
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst, {})], pubsub,
                          webhook={"port": port})  # fmt: skip
    webhook = spawn("s3s3", "webhook", "--config", config.path)
    webhook.wait_for(r"INFO s3s3\.listen\.webhook: Webhook listening on .+")

    def send(key: str) -> int:
        body = json.dumps({"Records": [record("minio", src, key)]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=20) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as e:
            return e.code

    # When a notification is sent before the master is SIGKILLed, and others while it fails over
    assert send("before") == 200
    old = sentinel_group.kill_master()
    assert send("during") == 503  # the store keeps it, and sends it again
    wait_until(lambda: sentinel_group.promoted(old), timeout=FOLLOW_SECONDS)

    # Then, the replica promoted, the webhook answers 503 while no replica can hold what it is sent
    assert send("during") == 503

    # And 200 again once the old master is back as a replica
    sentinel_group.rejoin(old)
    wait_until(lambda: send("during") == 200, timeout=FOLLOW_SECONDS)
    assert send("after") == 200

    # And the new master holds every notification that was answered 200 (one answered 503 for want of a
    # replica is on the master too, and arrives twice: copies are idempotent)
    with redis.Redis(port=sentinel_group.master_port()) as master:
        entries = master.xrange(str(pubsub["stream"]))
    keys = [json.loads(fields[b"message"])["Records"][0]["s3"]["object"]["key"] for _id, fields in entries]
    assert keys[0] == "before" and keys[-1] == "after" and set(keys[1:-1]) == {"during"}
    assert webhook.alive()


def test_a_stream_listener_follows_a_cluster_failover_of_the_master_holding_its_stream(
    cluster_nodes: ClusterNodes, s3_source: Server, s3_dest: Server, tmp_path: Path, spawn: Callable[..., Proc]
) -> None:
    # Given a stream-mode listener on a 3-master Redis Cluster with a replica per master, serving /healthz
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    before, after = [f"before/{i}" for i in range(20)], [f"after/{i}" for i in range(20)]
    put(s3_source, src, before + after)
    port, stream = free_port(), f"s3s3:events:{uuid.uuid4().hex[:8]}"
    others = ", ".join(f"127.0.0.1:{s.port}" for s in cluster_nodes.servers[1:])
    pubsub = {"url": cluster_nodes.url, "cluster": "true", "cluster_nodes": others, "mode": "stream", "stream": stream,
              "wait_replicas": 1}  # fmt: skip
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst, {})], pubsub, metrics={"port": port})
    listener = start_listener(spawn, config)

    # When keys are published with wait_replicas = 1, and the master holding the stream is SIGKILLed
    publish(config, *before)
    holder = cluster_nodes.master_of(stream)
    holder.kill()
    killed = time.monotonic()

    # Then /healthz answers 503 while the stream's master is gone
    wait_until(lambda: health(port) == 503, timeout=10)

    # And once its replica is promoted the listener follows within 30 s
    wait_until(lambda: cluster_nodes.master_of(stream).port != holder.port, timeout=FOLLOW_SECONDS)
    wait_until(lambda: health(port) == 200, timeout=FOLLOW_SECONDS)
    assert time.monotonic() - killed < FOLLOW_SECONDS

    # And every key published before the kill, and every one after (the old master back as a replica), lands
    holder.start()
    cluster_nodes.wait_ok()
    publish(config, *after)
    wait_until(all_arrived(s3_dest, dst, before + after), timeout=60)
    assert listener.alive()
