"""s3s3.state.leases: one replayer of a key at a time, on a real redis-server, across threads and processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from s3s3.errors import LeaseError
from s3s3.state.leases import LocalLease, RedisLease, lease_name
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.timeout(60)

DEST = "http://127.0.0.1:9000/backup"
# A process that holds a key's lease until told to let go (a line on stdin), or is killed.
HOLDER = """
import sys, redis
from s3s3.state.leases import RedisLease
lease = RedisLease(redis.Redis.from_url(sys.argv[1]), ttl=float(sys.argv[4]))
with lease.hold(sys.argv[2], sys.argv[3]):
    print("held", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def holder(redis_server: RedisServer) -> Iterator[Callable[..., Holder]]:
    holders: list[Holder] = []

    def start(key: str, ttl: float = 60.0) -> Holder:
        found = Holder(redis_server.url, key, ttl)
        holders.append(found)
        return found

    yield start
    for found in holders:
        found.proc.kill()
        found.proc.communicate(timeout=10)  # and its pipes closed


class Holder:
    """Another process holding a key's lease."""

    def __init__(self, url: str, key: str, ttl: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, url, DEST, key, str(ttl)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "held"

    def release(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "released"
        self.proc.communicate(timeout=10)
        assert self.proc.returncode == 0


def new_key() -> str:
    return f"k-{uuid.uuid4().hex}"


def test_a_lease_held_by_another_process_is_waited_for_and_taken_once_released(
    client: redis.Redis, holder: Callable[..., Holder]
) -> None:
    # Given another process holding the key's lease
    key = new_key()
    other = holder(key)
    lease = RedisLease(client, wait=0.3)
    # When this one asks, it gives up after its wait (the key is tried later)
    with pytest.raises(LeaseError, match="another replayer held its lease"), lease.hold(DEST, key):
        pass
    assert lease.waited[DEST] == 1
    # Then, once the other lets go, it is taken at once
    other.release()
    with RedisLease(client, wait=5).hold(DEST, key):
        assert client.exists(lease_name(DEST, key)) == 1
    assert client.exists(lease_name(DEST, key)) == 0


def test_a_holder_that_dies_lets_go_when_its_ttl_ends(client: redis.Redis, holder: Callable[..., Holder]) -> None:
    # Given a process holding the lease with a TTL of one second, killed (no release, no renewal)
    key = new_key()
    other = holder(key, ttl=1.0)
    other.proc.kill()
    other.proc.communicate(timeout=10)
    # When another asks, waiting up to 10 s
    started = time.monotonic()
    with RedisLease(client, wait=10).hold(DEST, key):
        waited = time.monotonic() - started
    # Then it had it once the TTL ended, not at its deadline
    assert waited < 5


def test_threads_sharing_one_lease_never_hold_a_key_at_once(client: redis.Redis) -> None:
    key = new_key()
    lease = RedisLease(client, wait=20)
    inside: list[int] = []
    overlaps: list[int] = []

    def replay(n: int) -> None:
        for _ in range(5):
            with lease.hold(DEST, key):
                inside.append(n)
                if len(inside) > 1:
                    overlaps.append(n)
                time.sleep(0.002)  # the work done under the lease
                inside.remove(n)

    threads = [threading.Thread(target=replay, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert overlaps == []
    assert client.exists(lease_name(DEST, key)) == 0


def test_other_keys_and_other_destinations_do_not_wait(client: redis.Redis) -> None:
    key = new_key()
    lease = RedisLease(client, wait=0)
    with lease.hold(DEST, key), lease.hold(DEST, new_key()), lease.hold(DEST + "2", key):
        pass
    assert sum(lease.waited.values()) == 0


def test_a_lease_held_longer_than_its_ttl_is_renewed(client: redis.Redis) -> None:
    # Given a lease with a TTL of 0.6 s, held
    key = new_key()
    lease = RedisLease(client, ttl=0.6)
    outcome: list[str] = []

    def wait_for_it() -> None:
        try:
            with RedisLease(client, wait=2.0).hold(DEST, key):
                outcome.append("taken")
        except LeaseError:
            outcome.append("gave up")

    with lease.hold(DEST, key):
        # When another waits for it three TTLs long
        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        waiter.join(10)
    # Then it never had it: the holder renewed it all along
    assert outcome == ["gave up"]


def test_only_the_holder_lets_go(client: redis.Redis) -> None:
    # Given a holder whose lease expired and was taken by another
    key = new_key()
    name = lease_name(DEST, key)
    with RedisLease(client).hold(DEST, key):
        client.set(name, "the next holder's token")
    # Then leaving its block did not release the next holder's lease
    assert client.get(name) == b"the next holder's token"
    # And a release with a token that is not the holder's does nothing either
    assert client.eval(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        1, name, "someone else",
    ) == 0  # fmt: skip
    client.delete(name)


def test_a_redis_that_does_not_answer_fails_the_key_not_the_replayer(redis_server: RedisServer) -> None:
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    with pytest.raises(LeaseError, match="cannot take its lease in Redis"), RedisLease(client).hold(DEST, new_key()):
        pass


def test_without_redis_threads_of_one_process_take_turns_and_a_waiter_gives_up_at_its_deadline() -> None:
    lease = LocalLease(wait=0.2)
    key = new_key()
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with lease.hold(DEST, key):
            held.set()
            release.wait(10)

    holder_thread = threading.Thread(target=hold)
    holder_thread.start()
    assert held.wait(10)
    with pytest.raises(LeaseError), lease.hold(DEST, key):
        pass
    assert lease.waited[DEST] == 1
    release.set()
    holder_thread.join(10)
    with lease.hold(DEST, key):
        pass
    assert lease._locks == {}
