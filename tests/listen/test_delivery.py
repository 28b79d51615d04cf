"""s3s3.listen.delivery: stream and list deliveries across Redis failures (fakeredis, and a real redis-server)."""

from __future__ import annotations

import time
import uuid

import fakeredis
import pytest
import redis

from s3s3 import names
from s3s3.listen.delivery import ListDelivery, Message, StreamDelivery, publish
from tests.helpers import (
    FlakyRedis,
    wait_until,
)
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.timeout(60)


# --- the acknowledgement edge of a reconnect, without processes (fakeredis) -------------------


def test_given_a_list_element_moved_as_the_connection_broke_when_the_listener_reconnects_then_it_is_requeued() -> None:
    # Given a list consumer working on one element, and a BLMOVE whose reply was lost with the connection
    client = fakeredis.FakeRedis()
    delivery = ListDelivery(client, "q", "one")
    delivery.connect()
    client.rpush("q", b"working", b"stranded", b"next")
    working = delivery.receive(0.01)
    assert working is not None and working.data == b"working"
    client.lmove("q", names.processing_list("q", "one"), "LEFT", "RIGHT")  # Redis did it; the listener never heard

    # When the listener reconnects
    delivery.connect()

    # Then the stranded element is back at the head of the queue; the one in work stays taken
    assert client.lrange("q", 0, -1) == [b"stranded", b"next"]
    assert client.lrange(names.processing_list("q", "one"), 0, -1) == [b"working"]
    delivery.ack(working)
    assert client.llen(names.processing_list("q", "one")) == 0


def test_given_an_ack_that_failed_while_redis_was_away_when_the_listener_reconnects_then_it_is_acknowledged() -> None:
    # Given a stream entry and a list element copied while Redis could not be reached
    fake = fakeredis.FakeRedis()
    flaky = FlakyRedis(fake, "xack", "lrem")
    stream = StreamDelivery(flaky, "s", "g", "c1", claim_idle=60)  # type: ignore[arg-type]
    queue = ListDelivery(flaky, "q", "c1")  # type: ignore[arg-type]
    stream.connect(), queue.connect()
    publish(fake, "stream", "s", b"k1"), publish(fake, "list", "q", b"k2")
    entry, element = stream.receive(0.01), queue.receive(0.01)
    assert entry is not None and element is not None
    flaky.broken = True
    with pytest.raises(redis.ConnectionError):
        stream.ack(entry)
    with pytest.raises(redis.ConnectionError):
        queue.ack(element)

    # When Redis is back and the listener connects again
    flaky.broken = False
    stream.connect(), queue.connect()

    # Then both are acknowledged: nothing pending, nothing in the processing list, and nothing kept alive
    assert fake.xpending("s", "g")["pending"] == 0
    assert fake.llen(names.processing_list("q", "one")) == 0 and fake.llen(names.processing_list("q", "c1")) == 0
    assert fake.llen("q") == 0
    assert stream.inflight == set()


def test_a_stream_listener_keeps_its_in_flight_entries_fresh_by_itself_and_they_are_claimed_only_once_it_is_gone(
    redis_server: RedisServer,
) -> None:
    # Given listener A working on an entry (no worker will touch it again), claim_idle 1 s
    client = redis.Redis.from_url(redis_server.url)
    stream = f"s-{uuid.uuid4().hex[:8]}"
    a = StreamDelivery(client, stream, "g", "a", claim_idle=1)
    b = StreamDelivery(client, stream, "g", "b", claim_idle=1)
    a.connect(), b.connect()
    publish(client, "stream", stream, b"slow")
    taken = a.receive(0.1)
    assert taken is not None and taken.data == b"slow"

    # When listener B looks for idle entries for three times claim_idle
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        # Then A's heartbeat keeps the entry fresh: B never gets it
        assert b.receive(0.1) is None
        b._next_claim = 0.0  # look again at once, not every claim_idle/4

    # When A is gone (its heartbeat stopped, as when it dies or loses Redis)
    a.close()

    # Then B claims the entry once claim_idle has passed
    claimed = wait_until(lambda: b.receive(0.1) or setattr(b, "_next_claim", 0.0), timeout=10)
    assert isinstance(claimed, Message) and claimed.data == b"slow"
    b.ack(claimed)
    assert client.xpending(stream, "g")["pending"] == 0
    b.close()
    client.close()


def test_a_stream_listener_whose_group_is_gone_makes_it_again_and_reads_on() -> None:
    # Given a stream listener, and a failover to a replica the group never reached (the group destroyed)
    client = fakeredis.FakeRedis()
    delivery = StreamDelivery(client, "s", "g", "c1")
    delivery.connect()
    client.xgroup_destroy("s", "g")
    client.xadd("s", {names.STREAM_FIELD: b"k"})

    # When it reads
    assert delivery.receive(0.01) is None

    # Then the group is back, from the stream's start, and the entry is delivered
    message = delivery.receive(0.01)
    assert message is not None and message.data == b"k"
    delivery.close()


def test_a_list_listener_recovers_what_its_processing_list_held_under_the_name_without_a_hash_tag() -> None:
    # Given what an older s3s3 left in the processing list's former name
    client = fakeredis.FakeRedis()
    client.rpush(names.former_processing_list("q", "one"), b"left")
    client.rpush("q", b"next")

    # When the listener starts
    ListDelivery(client, "q", "one").connect()

    # Then it is back at the head of the queue, and the processing list has the hash tag
    assert client.lrange("q", 0, -1) == [b"left", b"next"]
    assert names.processing_list("q", "one") == "{q}:processing:one"
