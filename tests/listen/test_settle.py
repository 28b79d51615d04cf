"""s3s3.listen.settle: announcements settled together, overlapped copies proven, then acknowledged, on a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import redis

from s3s3.config import Endpoint
from s3s3.listen.delivery import Message
from s3s3.listen.settle import Copy, Done, Settler
from s3s3.state.overlap import Overlaps
from s3s3.store import Facts
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.timeout(30)


class Acks:
    """A Delivery that records what was acknowledged, how many at a time, and what was given back."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []
        self.released: list[bytes] = []

    def ack_many(self, messages: Sequence[Message]) -> None:
        self.batches.append([m.data for m in messages])

    def release(self, message: Message) -> None:
        self.released.append(message.data)


class Dest:
    """A destination store, of which only its label is read."""

    def __init__(self) -> None:
        self.endpoint = Endpoint(name="dest1", bucket="b")
        self.facts = Facts("dest1")
        self.label = "dest1:b"


@pytest.fixture
def overlaps(redis_server: RedisServer) -> Iterator[Overlaps]:
    client = redis.Redis.from_url(redis_server.url)
    yield Overlaps(client)
    client.close()


def message(name: str) -> Message:
    return Message(name.encode(), receipt=name.encode())


def test_announcements_done_while_others_run_are_acknowledged_together_when_flushed(overlaps: Overlaps) -> None:
    # Given three announcements whose copies were registered together
    dest, acks = Dest(), Acks()
    keys = [f"k-{uuid.uuid4().hex}" for _ in range(3)]
    tickets = overlaps.begin_many([(dest.label, k) for k in keys])
    settler = Settler(acks, overlaps, lambda *_: pytest.fail("no copy overlapped another"))  # type: ignore[arg-type]
    # When they are done while others still run, nothing is acknowledged yet
    for key, ticket in zip(keys, tickets, strict=True):
        settler.add(Done(message(key), True, [Copy(dest, key, ticket, "etag")]))  # type: ignore[arg-type]
    assert acks.batches == []
    # When the listener finds nothing else being copied, all three are acknowledged at once, registrations gone
    settler.flush()
    assert acks.batches == [[k.encode() for k in keys]]
    assert overlaps.client.exists(*(t.name for t in tickets)) == 0


def test_a_copy_another_overlapped_is_proven_before_its_announcement_is_acknowledged(overlaps: Overlaps) -> None:
    # Given a registered copy, and another copy of the same key that ran meanwhile
    dest, acks = Dest(), Acks()
    key = f"k-{uuid.uuid4().hex}"
    (ticket,) = overlaps.begin_many([(dest.label, key)])
    overlaps.end(overlaps.begin(dest.label, key))
    proven: list[tuple[Any, str, str]] = []

    def again(d: Any, k: str, copied: str) -> bool:
        proven.append((d, k, copied))
        assert acks.batches == []  # proven first, acknowledged after
        return True

    # When it settles, Then it is proven (the source asked, copied again if it moved on), then acknowledged
    settler = Settler(acks, overlaps, again, seconds=0.0)
    settler.add(Done(message(key), True, [Copy(dest, key, ticket, "v1")]))  # type: ignore[arg-type]
    assert proven == [(dest, key, "v1")]
    assert acks.batches == [[key.encode()]]


def test_an_announcement_with_a_failure_not_kept_is_given_back_not_acknowledged(overlaps: Overlaps) -> None:
    dest, acks = Dest(), Acks()
    key = f"k-{uuid.uuid4().hex}"
    (ticket,) = overlaps.begin_many([(dest.label, key)])
    overlaps.end(overlaps.begin(dest.label, key))
    # The overlapped copy is copied again, and that copy's failure cannot be dead-lettered
    settler = Settler(acks, overlaps, lambda *_: False, seconds=0.0)  # type: ignore[arg-type]
    settler.add(Done(message(key), True, [Copy(dest, key, ticket, "v1")]))  # type: ignore[arg-type]
    assert acks.batches == [] and acks.released == [key.encode()]


def test_an_announcement_waiting_for_others_is_settled_once_it_has_waited_long_enough(overlaps: Overlaps) -> None:
    dest, acks = Dest(), Acks()
    settler = Settler(acks, overlaps, lambda *_: True, seconds=60)  # type: ignore[arg-type]
    done = Done(message("a"), True, [Copy(dest, "a", None)])  # type: ignore[arg-type]
    settler.add(done)
    settler.due()
    assert acks.batches == []  # not yet
    done.since -= 61  # a minute later
    settler.due()
    assert acks.batches == [[b"a"]]
    settler.due()  # nothing left: nothing sent
    assert acks.batches == [[b"a"]]


def test_a_full_batch_is_settled_without_waiting_for_the_rest(overlaps: Overlaps) -> None:
    dest, acks = Dest(), Acks()
    settler = Settler(acks, overlaps, lambda *_: True, batch=2, seconds=60)  # type: ignore[arg-type]
    for name in ("a", "b", "c"):
        settler.add(Done(message(name), True, [Copy(dest, name, None)]))  # type: ignore[arg-type]
    assert acks.batches == [[b"a", b"b"]]
    settler.flush()
    assert acks.batches == [[b"a", b"b"], [b"c"]]
