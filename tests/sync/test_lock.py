"""s3s3.sync.lock: the bucket sync's lock, named per set of buckets and shard, held, renewed and released in Redis."""

from __future__ import annotations

import calendar
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from typing import cast

import pytest
import redis
from redis.lock import Lock

from s3s3 import names
from s3s3.config import Endpoint
from s3s3.errors import LockHeld
from s3s3.store import Store
from s3s3.sync.lock import SyncLock, lock_name
from tests.helpers import wait_until
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.timeout(30)


class Place:
    """A Store as far as the lock looks at one: where its bucket lives."""

    def __init__(self, name: str, endpoint_url: str | None, bucket: str, prefix: str = "") -> None:
        self.endpoint = Endpoint(name=name, bucket=bucket, endpoint_url=endpoint_url, prefix=prefix)


def place(name: str, endpoint_url: str | None, bucket: str, prefix: str = "") -> Store:
    return cast(Store, Place(name, endpoint_url, bucket, prefix))


SOURCE = place("source", "http://127.0.0.1:9000", "data")
DEST1 = place("dest1", "http://127.0.0.1:9001", "backup")
DEST2 = place("dest2", None, "offsite")


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


def unique_name() -> str:
    return f"{names.LOCK_PREFIX}test-{uuid.uuid4().hex}"


# --- lock_name -----------------------------------------------------------------------------------


def test_the_lock_name_is_the_same_whichever_way_the_buckets_are_synced() -> None:
    # Given a sync, and the restore of the same buckets (--reverse: source and destination swapped)
    forward = lock_name(SOURCE, [DEST1])
    backward = lock_name(DEST1, [SOURCE])
    # Then both take one lock, under the lock prefix
    assert forward == backward
    assert forward.startswith(names.LOCK_PREFIX)
    assert re.fullmatch(re.escape(names.LOCK_PREFIX) + "[0-9a-f]{16}", forward)


def test_the_lock_name_ignores_the_order_of_destinations_and_their_section_names() -> None:
    renamed = place("elsewhere", "http://127.0.0.1:9001", "backup")
    assert lock_name(SOURCE, [DEST1, DEST2]) == lock_name(SOURCE, [DEST2, DEST1])
    assert lock_name(SOURCE, [DEST1, DEST2]) == lock_name(DEST2, [DEST1, SOURCE])
    assert lock_name(SOURCE, [renamed]) == lock_name(SOURCE, [DEST1])


def test_other_buckets_or_another_endpoint_take_another_lock() -> None:
    names_ = {
        lock_name(SOURCE, [DEST1]),
        lock_name(SOURCE, [DEST2]),
        lock_name(SOURCE, [DEST1, DEST2]),
        lock_name(SOURCE, [place("dest1", "http://127.0.0.1:9002", "backup")]),
        lock_name(SOURCE, [place("dest1", "http://127.0.0.1:9001", "backup2")]),
    }
    assert len(names_) == 5


def test_each_shard_takes_its_own_lock_and_one_shard_takes_the_plain_one() -> None:
    plain = lock_name(SOURCE, [DEST1])
    assert lock_name(SOURCE, [DEST1], (0, 1)) == plain
    assert lock_name(SOURCE, [DEST1], (0, 4)) == f"{plain}:0/4"
    assert lock_name(SOURCE, [DEST1], (3, 4)) == f"{plain}:3/4"
    assert lock_name(SOURCE, [DEST1], (0, 2)) == f"{plain}:0/2"
    # And a shard's lock does not depend on direction either
    assert lock_name(DEST1, [SOURCE], (3, 4)) == f"{plain}:3/4"


def test_each_prefix_takes_its_own_lock() -> None:
    under_a = lock_name(place("source", "http://127.0.0.1:9000", "data", "a/"), [DEST1])
    under_b = lock_name(place("source", "http://127.0.0.1:9000", "data", "b/"), [DEST1])
    dest_under_a = lock_name(SOURCE, [place("dest1", "http://127.0.0.1:9001", "backup", "a/")])
    assert len({under_a, under_b, dest_under_a, lock_name(SOURCE, [DEST1])}) == 4


# --- SyncLock ------------------------------------------------------------------------------------


def test_a_second_run_on_the_same_lock_is_told_who_holds_it_and_since_when(client: redis.Redis) -> None:
    name = unique_name()
    # Given a run holding the lock
    with SyncLock(client, name):
        # When a second tries to take it
        with pytest.raises(LockHeld) as raised, SyncLock(client, name):
            pytest.fail("the second run got the lock")
        # Then it is told where and since when the first runs
        message = str(raised.value)
        pattern = r"already running since (\S+) \(host (.+), pid (\d+)\)"
        match = re.fullmatch(pattern, message)
        assert match is not None, message
        assert match.group(2) == socket.gethostname()
        assert int(match.group(3)) == os.getpid()
        since = calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%SZ"))
        assert abs(since - time.time()) < 60


def test_the_message_names_the_holder_the_token_records(client: redis.Redis) -> None:
    # Given a lock taken by a run on another host
    name = unique_name()
    holder = {"host": "worker-7", "pid": 4242, "since": "2024-05-01T10:00:00Z"}
    client.set(name, json.dumps(holder), px=20_000)
    # Then a run here is told exactly that
    with pytest.raises(LockHeld) as raised, SyncLock(client, name):
        pytest.fail("got a lock held elsewhere")
    assert str(raised.value) == "already running since 2024-05-01T10:00:00Z (host worker-7, pid 4242)"
    client.delete(name)


def test_a_lock_whose_token_says_nothing_is_held_since_an_unknown_time(client: redis.Redis) -> None:
    name = unique_name()
    client.set(name, "not json", px=20_000)
    with pytest.raises(LockHeld) as raised, SyncLock(client, name):
        pytest.fail("got a lock held elsewhere")
    assert str(raised.value) == "already running since an unknown time"
    client.delete(name)


def test_the_lock_is_renewed_while_held_beyond_its_ttl(client: redis.Redis) -> None:
    name = unique_name()
    # Given a lock of 1 s TTL, held for three TTLs
    with SyncLock(client, name, ttl=1.0) as held:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            # Then all along its key lives, with a TTL no longer than one TTL, and no one else takes it
            ttl = cast(int, client.pttl(name))
            assert 0 < ttl <= 1000, ttl
            with pytest.raises(LockHeld), SyncLock(client, name, ttl=1.0):
                pytest.fail("another run took a held lock")
            time.sleep(0.1)  # pacing the checks, not waiting on anything
        assert not held.lost.is_set()


def test_the_lock_is_released_on_exit_so_the_next_run_takes_it_at_once(client: redis.Redis) -> None:
    name = unique_name()
    with SyncLock(client, name):
        assert client.exists(name) == 1
    # Then the key is gone, and another run gets the lock
    assert client.exists(name) == 0
    with SyncLock(client, name):
        assert client.exists(name) == 1
    assert client.exists(name) == 0


def test_the_lock_is_released_when_the_run_fails(client: redis.Redis) -> None:
    name = unique_name()
    with pytest.raises(RuntimeError, match="the run failed"), SyncLock(client, name):
        raise RuntimeError("the run failed")
    assert client.exists(name) == 0


def test_a_lock_whose_holder_stopped_renewing_expires_after_its_ttl(client: redis.Redis) -> None:
    name = unique_name()
    # Given a lock taken by a run that died (it took it for 1 s and never renewed it)
    token = json.dumps({"host": "gone", "pid": 1, "since": "2024-05-01T10:00:00Z"})
    assert Lock(client, name, timeout=1.0, thread_local=False).acquire(blocking=False, token=token)
    with pytest.raises(LockHeld), SyncLock(client, name):
        pytest.fail("took a lock still held")
    # When its TTL has passed, Then the next run takes it
    wait_until(lambda: client.exists(name) == 0, timeout=5)
    with SyncLock(client, name):
        assert json.loads(cast(bytes, client.get(name)))["pid"] == os.getpid()


def test_different_names_are_different_locks(client: redis.Redis) -> None:
    with SyncLock(client, unique_name()), SyncLock(client, unique_name()):
        pass
