"""s3s3.listen.backlog: what waits in Redis, read from a real redis-server of the test's own."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from s3s3 import names
from s3s3.config import Mode, PubSub
from s3s3.listen import backlog
from s3s3.listen.delivery import StreamDelivery
from tests.helpers import wait_until
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server(private_redis: Callable[..., RedisServer]) -> RedisServer:
    return private_redis()


@pytest.fixture
def client(server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()


def stream_pubsub(server: RedisServer) -> PubSub:
    return PubSub(url=server.url, mode=Mode.STREAM, stream=f"s-{uuid.uuid4().hex[:8]}", group="g")


def test_a_stream_with_nothing_announced_has_an_empty_backlog(client: redis.Redis, server: RedisServer) -> None:
    found = backlog.read(client, stream_pubsub(server))
    assert (found.waiting, found.pending, found.consumers, found.oldest_pending_seconds) == (0, 0, 0, None)
    assert found.dead_letters == 0 and found.last_copied == {}


def test_a_stream_backlog_counts_waiting_pending_and_the_age_of_the_oldest_pending(
    client: redis.Redis, server: RedisServer
) -> None:
    # Given a group, five entries of which two were delivered to a listener and not acknowledged
    pubsub = stream_pubsub(server)
    client.xgroup_create(pubsub.stream, pubsub.group, id="0", mkstream=True)
    old = int((time.time() - 90) * 1000)
    client.xadd(pubsub.stream, {"key": b"a"}, id=f"{old}-0")
    for key in (b"b", b"c", b"d", b"e"):
        client.xadd(pubsub.stream, {"key": key})
    client.xreadgroup(pubsub.group, "listener-1", {pubsub.stream: ">"}, count=2)
    client.xadd(names.DEADLETTER, {"key": b"x"})

    # When the backlog is read
    found = backlog.read(client, pubsub)

    # Then three wait, two are pending, the oldest pending is the 90 s old one, one listener, one dead letter
    assert (found.mode, found.waiting, found.pending, found.consumers, found.dead_letters) == (
        Mode.STREAM, 3, 2, 1, 1,
    )  # fmt: skip
    assert found.oldest_pending_seconds is not None and 89 <= found.oldest_pending_seconds < 120


def test_a_listener_registers_when_it_starts_and_leaves_only_when_it_holds_nothing(
    client: redis.Redis, server: RedisServer
) -> None:
    # Given a stream listener that connected and has received nothing yet
    pubsub = stream_pubsub(server)
    first = StreamDelivery(client, pubsub.stream, pubsub.group, "first", claim_idle=60)
    first.connect()
    # Then the group already shows it
    assert backlog.read(client, pubsub).consumers == 1
    # When a second takes an entry and both leave
    client.xadd(pubsub.stream, {"key": b"held"})
    second = StreamDelivery(client, pubsub.stream, pubsub.group, "second", claim_idle=60)
    second.connect()
    assert second.receive(timeout=1) is not None
    first.leave()
    second.leave()
    # Then the one holding a pending entry stays, for another to claim it from; the idle one is gone
    consumers = {c["name"]: c["pending"] for c in client.xinfo_consumers(pubsub.stream, pubsub.group)}
    assert consumers == {b"second": 1}


def test_a_list_backlog_counts_the_queue_and_the_processing_lists(client: redis.Redis, server: RedisServer) -> None:
    pubsub = PubSub(url=server.url, mode=Mode.LIST, list=f"l-{uuid.uuid4().hex[:8]}")
    client.rpush(pubsub.list, b"a", b"b", b"c")
    client.rpush(names.processing_list(pubsub.list, "one"), b"d")
    client.rpush(names.processing_list(pubsub.list, "two"), b"e", b"f")
    assert (backlog.read(client, pubsub).waiting, backlog.read(client, pubsub).pending) == (3, 3)
    assert backlog.read(client, pubsub, consumer="two").pending == 2


def test_a_pubsub_backlog_is_the_gaps_recorded(client: redis.Redis, server: RedisServer) -> None:
    client.xadd(names.GAPS, {"from": b"1", "to": b"2"})
    found = backlog.read(client, PubSub(url=server.url))
    assert (found.mode, found.gaps, found.waiting, found.pending) == (Mode.PUBSUB, 1, None, None)


def test_the_watcher_shows_nothing_once_redis_stops_answering(server: RedisServer, client: redis.Redis) -> None:
    # Given a watcher that has read a backlog
    pubsub = stream_pubsub(server)
    watcher = backlog.Watcher(client, pubsub, refresh=0.05).start()
    try:
        wait_until(lambda: watcher.current() is not None, timeout=10)
        # When Redis stops, then its reading goes stale and is not shown
        server.stop()
        wait_until(lambda: watcher.current() is None, timeout=10)
    finally:
        watcher.stop()
