"""s3s3.state.rates: one request rate per store in Redis, shared by every process, on a real redis-server."""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from s3s3.state import rates
from s3s3.state.rates import SharedLimit
from s3s3.store.throttle import Pace
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


def process(client: redis.Redis, store: str, most: float, waits: list[float]) -> SharedLimit:
    """One process's limit of `store`, noting its waits instead of sleeping."""
    limit = SharedLimit(client, store, Pace(most))
    limit.sleep = waits.append
    return limit


def test_turns_are_spaced_across_every_process_that_uses_the_store(client: redis.Redis) -> None:
    # Given two processes limited to 20 requests a second to one store, whose waits end at once
    store = f"http://store-{uuid.uuid4().hex}"
    one, two = SharedLimit(client, store, Pace(20)), SharedLimit(client, store, Pace(20))
    waits: list[float] = []
    for limit in (one, two):
        limit.sleep = waits.append

    # When they take 20 turns between them, back to back, each noting the slot Redis gave out next
    slots = []
    for _ in range(10):
        for limit in (one, two):
            limit.wait()
            slots.append(float(client.hget(rates.rate_key(store), "next") or 0))

    # Then no two turns, whichever process took them, are closer than a twentieth of a second (Redis's clock),
    # and the processes waited for their turns
    gaps = [later - earlier for earlier, later in itertools.pairwise(slots)]
    assert all(gap >= 0.05 - 1e-6 for gap in gaps), gaps
    assert len(waits) >= 10 and sum(waits) > 0.05 * 10


def test_a_throttled_answer_seen_by_one_process_slows_every_process(client: redis.Redis) -> None:
    # Given two processes limited to 100 requests a second to one store
    store, waits = f"http://store-{uuid.uuid4().hex}", []
    one, two = process(client, store, 100, waits), process(client, store, 100, waits)
    two.wait()

    # When the store throttles one of them
    one.throttled()
    two.wait()

    # Then the other takes its next turns at the lowered rate, and Redis counts the throttled answer
    assert two.rate == pytest.approx(70, abs=0.5)
    reading = rates.read(client, store)
    assert reading.throttled == 1 and reading.most == 100 and reading.rate == pytest.approx(70, abs=0.5)


def test_without_redis_a_process_limits_itself_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    # Given a limit whose Redis cannot be reached
    away = redis.Redis(port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))  # as connect_redis makes
    waits: list[float] = []
    limit = process(away, "http://store", 10, waits)

    # When it takes three turns
    with caplog.at_level(logging.WARNING, logger="s3s3.state.rates"):
        for _ in range(3):
            limit.wait()

    # Then the process spaced them itself, and one warning said why
    assert limit.local.rate == 10 and limit.rate == 10
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert warnings[0].startswith("Cannot share the request rate of http://store through Redis")


def test_a_store_no_process_sent_to_reads_as_nothing(client: redis.Redis) -> None:
    assert rates.read(client, "http://never") == rates.Reading("http://never", None, None, 0)
