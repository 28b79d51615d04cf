"""s3s3.store.facts: what is learnt of a store is kept in Redis, for every process that comes after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from s3s3.store.facts import Fact, Facts
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


def a_store() -> str:
    return f"http://127.0.0.1:9/{uuid.uuid4().hex}"


def test_a_fact_learnt_by_one_process_is_known_to_the_next(client: redis.Redis) -> None:
    # Given a listener that learns its destination's part ETags are not MD5s
    store = a_store()
    first = Facts(store, client)
    assert not first.knows(Fact.PART_ETAGS_NOT_MD5)
    first.learn(Fact.PART_ETAGS_NOT_MD5)

    # When another process (a later bucket sync) opens the same store
    later = Facts(store, client)

    # Then it knows it from the start; other stores and other facts stay unknown
    assert later.knows(Fact.PART_ETAGS_NOT_MD5)
    assert not later.knows(Fact.NO_PART_NUMBER)
    assert not Facts(a_store(), client).knows(Fact.PART_ETAGS_NOT_MD5)
    assert client.hkeys(later.key) == [b"part-etags-not-md5"]


def test_a_fact_about_a_pair_of_stores_names_the_other_store(client: redis.Redis) -> None:
    source, dest, other = a_store(), a_store(), a_store()
    Facts(source, client).learn(Fact.UNALIGNED, dest)
    assert Facts(source, client).knows(Fact.UNALIGNED, dest)
    assert not Facts(source, client).knows(Fact.UNALIGNED, other)


def test_without_redis_facts_last_as_long_as_the_process() -> None:
    # Given no Redis, or one that cannot be reached
    for client in (None, redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)):
        facts = Facts(a_store(), client)

        # When a fact is learnt, then it is known here, and nothing fails
        facts.learn(Fact.NO_PART_NUMBER)
        assert facts.knows(Fact.NO_PART_NUMBER)


def test_sharing_a_redis_later_reads_what_it_holds(client: redis.Redis) -> None:
    # Given a store's facts kept by an earlier process, and a process that opened the store before Redis
    store = a_store()
    Facts(store, client).learn(Fact.NO_PART_NUMBER)
    facts = Facts(store)
    assert not facts.knows(Fact.NO_PART_NUMBER)

    # When it shares the Redis, then it knows them
    facts.share(client)
    assert facts.knows(Fact.NO_PART_NUMBER)
