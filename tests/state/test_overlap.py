"""s3s3.state.overlap: whether another copy of the same key ran at the same time, on a real redis-server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from s3s3.state.overlap import Overlaps
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def overlaps(redis_server: RedisServer) -> Iterator[Overlaps]:
    client = redis.Redis.from_url(redis_server.url)
    yield Overlaps(client)
    client.close()


def key() -> str:
    return f"k-{uuid.uuid4().hex}"


def test_a_copy_that_ran_alone_did_not_overlap_and_leaves_nothing_in_redis(overlaps: Overlaps) -> None:
    k = key()
    ticket = overlaps.begin("dest1:b", k)
    assert overlaps.end(ticket) is False
    assert overlaps.client.exists(ticket.name) == 0


def test_copies_one_after_the_other_never_overlap(overlaps: Overlaps) -> None:
    k = key()
    for _ in range(3):
        assert overlaps.end(overlaps.begin("dest1:b", k)) is False


def test_the_copy_that_started_first_and_ended_last_learns_that_another_ran_meanwhile(overlaps: Overlaps) -> None:
    # Given copy A begun, then copy B of the same key begun and ended while A runs (the stale-last case)
    k = key()
    first = overlaps.begin("dest1:b", k)
    second = overlaps.begin("dest1:b", k)
    # Then B, which found A running, overlapped; and so did A, which ends last
    assert overlaps.end(second) is True
    assert overlaps.end(first) is True
    assert overlaps.client.exists(first.name) == 0


def test_copies_of_other_keys_or_other_destinations_do_not_overlap(overlaps: Overlaps) -> None:
    k = key()
    a = overlaps.begin("dest1:b", k)
    b = overlaps.begin("dest2:b", k)
    c = overlaps.begin("dest1:b", key())
    assert [overlaps.end(t) for t in (a, b, c)] == [False, False, False]


def test_when_redis_cannot_say_the_answer_is_overlapped(redis_server: RedisServer) -> None:
    # Given a Redis that is not there
    gone = Overlaps(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5))
    # Then every copy checks the source afterwards
    assert gone.end(gone.begin("dest1:b", key())) is True

    # And a registration that expired mid-copy (or vanished with a Redis restart) counts as an overlap too
    client = redis.Redis.from_url(redis_server.url)
    overlaps = Overlaps(client)
    ticket = overlaps.begin("dest1:b", key())
    client.delete(ticket.name)
    assert overlaps.end(ticket) is True
    client.close()


def test_copies_registered_and_ended_in_batches_answer_as_one_at_a_time_would(overlaps: Overlaps) -> None:
    # Given a page of three keys registered together, and a copy of the second begun and ended while they run
    keys = [key(), key(), key()]
    tickets = overlaps.begin_many([("dest1:b", k) for k in keys])
    assert overlaps.end(overlaps.begin("dest1:b", keys[1])) is True  # it found the page's registration running
    # Then ending the page together says the second overlapped, the others ran alone, and leaves nothing behind
    assert overlaps.end_many(tickets) == [False, True, False]
    assert overlaps.client.exists(*(t.name for t in tickets)) == 0
    assert overlaps.begin_many([]) == [] and overlaps.end_many([]) == []


def test_batches_redis_cannot_answer_are_overlapped(redis_server: RedisServer) -> None:
    gone = Overlaps(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5))
    tickets = gone.begin_many([("dest1:b", key()), ("dest1:b", key())])
    assert gone.end_many(tickets) == [True, True]

    client = redis.Redis.from_url(redis_server.url)
    overlaps = Overlaps(client)
    tickets = overlaps.begin_many([("dest1:b", key()), ("dest2:c", key())])
    client.delete(tickets[0].name)  # expired, or lost with a Redis restart
    assert overlaps.end_many(tickets) == [True, False]
    client.close()


def test_copies_of_several_destinations_registered_together_answer_as_one_at_a_time_would(
    overlaps: Overlaps,
) -> None:
    # Given a batch of announcements read together: one key to two destinations, another to one
    k1, k2 = key(), key()
    tickets = overlaps.begin_many([("dest1:b", k1), ("dest2:c", k1), ("dest1:b", k2)])
    # When another copy of k1 runs at dest2 meanwhile
    assert overlaps.end(overlaps.begin("dest2:c", k1)) is True
    # Then only that one is overlapped
    assert overlaps.end_many(tickets) == [False, True, False]


def test_scripts_redis_lost_are_loaded_again(overlaps: Overlaps) -> None:
    overlaps.client.script_flush()
    ticket = overlaps.begin("dest1:b", key())
    assert ticket.gen is not None and overlaps.end(ticket) is False
