"""s3s3.state.deadletter: failed copies and rejected messages kept in a Redis stream, listed, and retried."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis

from s3s3 import names
from s3s3.state.deadletter import MAX_RAW, Failure, failures, record_failure, record_rejected, retry
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def client(private_redis: Callable[..., RedisServer]) -> Iterator[redis.Redis]:
    """A client of a redis-server of this test's own: the dead-letter stream has one fixed name."""
    client = redis.Redis.from_url(private_redis().url)
    yield client
    client.close()


def test_a_failed_copy_is_kept_with_its_key_destination_error_attempts_and_time(client: redis.Redis) -> None:
    # When a key fails
    before = time.time()
    record_failure(client, "a/k.bin", "dest1:backup", "SlowDown: injected", 5)
    after = time.time()
    # Then the stream holds one entry saying so
    [failure] = list(failures(client))
    assert (failure.kind, failure.key, failure.dest, failure.error, failure.attempts) == (
        "copy",
        "a/k.bin",
        "dest1:backup",
        "SlowDown: injected",
        5,
    )
    assert before - 0.001 <= failure.time <= after + 0.001
    assert client.xlen(names.DEADLETTER) == 1
    assert failure.id == client.xrange(names.DEADLETTER)[0][0].decode()


def test_a_rejected_message_is_kept_as_it_came_with_the_reason(client: redis.Redis) -> None:
    record_rejected(client, b'{"Records": [', "not JSON: Expecting value")
    [failure] = list(failures(client))
    assert (failure.kind, failure.key, failure.dest, failure.error, failure.attempts) == (
        "rejected",
        '{"Records": [',
        "",
        "not JSON: Expecting value",
        0,
    )


def test_a_rejected_message_is_cut_to_max_raw_bytes_and_undecodable_bytes_are_replaced(client: redis.Redis) -> None:
    # Given a message of bytes that are not UTF-8, longer than kept
    raw = b"\xff" + b"x" * (MAX_RAW + 1000)
    record_rejected(client, raw, "not UTF-8")
    # Then its first MAX_RAW bytes are kept, and read back with a replacement character
    stored = client.xrange(names.DEADLETTER)[0][1][b"key"]
    assert stored == raw[:MAX_RAW]
    [failure] = list(failures(client))
    assert failure.key == "\ufffd" + "x" * (MAX_RAW - 1)


def test_failures_are_listed_oldest_first_across_pages(client: redis.Redis) -> None:
    # Given more entries than two pages of 500 hold
    for i in range(1203):
        record_failure(client, f"k{i:04d}", "dest1:b", f"error {i}", 1)
    # Then every one is listed once, in the order written
    listed = list(failures(client))
    assert [f.key for f in listed] == [f"k{i:04d}" for i in range(1203)]
    assert [f.error for f in listed[499:502]] == ["error 499", "error 500", "error 501"]
    assert len({f.id for f in listed}) == 1203


def test_failures_stop_at_the_count_asked_for_even_past_a_page(client: redis.Redis) -> None:
    for i in range(1203):
        record_failure(client, f"k{i:04d}", "dest1:b", "boom", 1)
    assert [f.key for f in failures(client, 3)] == ["k0000", "k0001", "k0002"]
    assert [f.key for f in failures(client, 501)] == [f"k{i:04d}" for i in range(501)]
    assert len(list(failures(client, 1203))) == 1203
    assert len(list(failures(client, 5000))) == 1203


def test_an_empty_stream_lists_nothing(client: redis.Redis) -> None:
    assert list(failures(client)) == []
    assert list(failures(client, 10)) == []


def test_a_failure_reads_as_one_line() -> None:
    when = 1714557600.0  # 2024-05-01T10:00:00Z
    failed = Failure("1714557600000-0", "copy", "a/k.bin", "dest1:backup", "SlowDown: injected", 3, when)
    rejected = Failure("1714557600000-1", "rejected", "{oops", "", "not JSON", 0, when)
    expected = "1714557600000-0 2024-05-01T10:00:00Z 'a/k.bin' to dest1:backup after 3 attempt(s): SlowDown: injected"
    assert failed.line() == expected
    assert rejected.line() == "1714557600000-1 2024-05-01T10:00:00Z rejected '{oops': not JSON"


def test_retry_copies_each_failed_key_once_drops_those_that_succeed_and_keeps_the_rest(client: redis.Redis) -> None:
    # Given a key that failed three times, one twice, one once, and a rejected message
    for key in ("k1", "k2", "k1", "k3", "k2", "k1"):
        record_failure(client, key, "dest1:b", "boom", 1)
    record_rejected(client, b"garbage", "not JSON")
    # When retried, with k2 still failing
    calls: list[str] = []

    def copy(key: str) -> bool:
        calls.append(key)
        return key != "k2"

    done, left = retry(client, copy)
    # Then each key was copied once, in the order first failed
    assert calls == ["k1", "k2", "k3"]
    assert (done, left) == (2, 1)
    # And only the failing key's entries and the rejected message remain
    assert [(f.kind, f.key) for f in failures(client)] == [("copy", "k2"), ("copy", "k2"), ("rejected", "garbage")]


def test_retry_with_nothing_failed_copies_nothing(client: redis.Redis) -> None:
    record_rejected(client, b"garbage", "not JSON")
    calls: list[str] = []
    assert retry(client, lambda key: calls.append(key) is None) == (0, 0)
    assert calls == []
    assert [f.kind for f in failures(client)] == ["rejected"]


def test_retry_when_every_key_still_fails_keeps_every_entry(client: redis.Redis) -> None:
    for key in ("k1", "k2", "k1"):
        record_failure(client, key, "dest1:b", "boom", 1)
    assert retry(client, lambda key: False) == (0, 2)
    assert [f.key for f in failures(client)] == ["k1", "k2", "k1"]


def test_an_entry_deleted_while_failures_are_listed_makes_none_of_the_others_be_skipped(client: redis.Redis) -> None:
    # Given 600 failures (two pages), and a retry that deletes the last entry of the first page as it is listed
    for i in range(600):
        record_failure(client, f"k{i:04d}", "dest1:b", "boom", 1)
    seen = []

    # When they are listed
    for failure in failures(client):
        seen.append(failure.key)
        if failure.key == "k0499":
            client.xdel(names.DEADLETTER, failure.id)

    # Then every one was seen once, the first of the second page too
    assert seen == [f"k{i:04d}" for i in range(600)]


def test_a_count_of_zero_lists_nothing(client: redis.Redis) -> None:
    record_failure(client, "k", "dest1:b", "boom", 1)
    assert list(failures(client, 0)) == []
