"""s3s3.state.stamps: when each destination last got a copy, on a redis-server of the test's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from s3s3.state.stamps import last_copies, record_copies
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def client(private_redis: Callable[..., RedisServer]) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(private_redis().url)
    yield client
    client.close()


def test_the_last_copy_of_a_destination_is_never_moved_back(client: redis.Redis) -> None:
    pipe = client.pipeline()
    record_copies(pipe, {"dest1:b": 200.5, "dest2:c": 10.0})
    record_copies(pipe, {"dest1:b": 100.0})
    pipe.execute()
    assert last_copies(client) == {"dest1:b": 200.5, "dest2:c": 10.0}


def test_nothing_recorded_leaves_no_stamps(client: redis.Redis) -> None:
    pipe = client.pipeline()
    record_copies(pipe, {})
    assert pipe.execute() == []
    assert last_copies(client) == {}
