"""s3s3.state.ledger: the Redis hash of what s3s3 copied where, written in batches and read to prove copies current."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from s3s3 import names
from s3s3.config import Endpoint
from s3s3.outcome import Action, Outcome
from s3s3.state.ledger import Recorder, VersionLedger, current, entry, forget, ledger_key, versions_key
from s3s3.state.stamps import last_copies
from s3s3.store import ObjectInfo, Store
from tests.servers.base import free_port
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.timeout(30)

SRC_ETAG = "0123456789abcdef0123456789abcdef-2"
DST_ETAG = "fedcba9876543210fedcba9876543210"


class Place:
    """A Store as far as the ledger looks at one: where its bucket lives."""

    def __init__(self, endpoint_url: str | None, bucket: str, prefix: str = "", name: str = "dest1") -> None:
        self.endpoint = Endpoint(name=name, bucket=bucket, endpoint_url=endpoint_url, prefix=prefix)


def place(endpoint_url: str | None = "http://127.0.0.1:9000", bucket: str | None = None) -> Store:
    return cast(Store, Place(endpoint_url, bucket or f"b-{uuid.uuid4().hex[:12]}"))


class CountingPipeline:
    """A pipeline that counts its round trips (execute calls) on its client."""

    def __init__(self, pipe: Any, owner: CountingRedis) -> None:
        self.pipe, self.owner = pipe, owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipe, name)

    def execute(self) -> Any:
        self.owner.round_trips += 1
        return self.pipe.execute()


class CountingRedis:
    """A client whose pipelines count their round trips."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.round_trips = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def pipeline(self, *args: Any, **kwargs: Any) -> CountingPipeline:
        return CountingPipeline(self.client.pipeline(*args, **kwargs), self)


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


def unreachable_redis() -> redis.Redis:
    """A client of a port nothing listens on, that does not try again."""
    return redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=2, retry=Retry(NoBackoff(), 0))


def copied(key: str, size: int = 10, source_etag: str | None = SRC_ETAG, dest_etag: str | None = DST_ETAG,
           action: Action = Action.COPIED) -> Outcome:  # fmt: skip
    return Outcome(key, "dest1:b", action, size=size, source_etag=source_etag, dest_etag=dest_etag)


def stored(client: redis.Redis, dest: Store) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in cast("dict[bytes, bytes]", client.hgetall(ledger_key(dest))).items()}


# --- ledger_key ----------------------------------------------------------------------------------


def test_the_ledger_key_names_one_hash_per_destination_endpoint_and_bucket() -> None:
    # Given the same bucket name at two endpoints, and two buckets at one endpoint
    here, there = "http://127.0.0.1:9000", "http://127.0.0.1:9001"
    keys = [ledger_key(place(here, "b1")), ledger_key(place(there, "b1")), ledger_key(place(here, "b2"))]
    # Then each has its own hash, under the ledger prefix, ending in the bucket's name
    assert len(set(keys)) == 3
    assert all(k.startswith(names.LEDGER_PREFIX) for k in keys)
    assert [k.rsplit(":", 1)[1] for k in keys] == ["b1", "b1", "b2"]


def test_the_ledger_key_depends_on_where_the_bucket_lives_not_on_the_section_or_prefix() -> None:
    # Given two endpoints of one bucket, under other section names and prefixes
    a = cast(Store, Place("http://127.0.0.1:9000", "b1", prefix="x/"))
    b = cast(Store, Place("http://127.0.0.1:9000", "b1", prefix="y/", name="dest2"))
    # Then they share one ledger; and AWS (no endpoint URL) has one of its own
    assert ledger_key(a) == ledger_key(b)
    assert ledger_key(place(None, "b1")) != ledger_key(a)
    assert ledger_key(place(None, "b1")) == ledger_key(place(None, "b1"))


# --- Recorder ------------------------------------------------------------------------------------


def test_nothing_is_sent_until_a_batch_is_full_then_one_round_trip_sends_it(client: redis.Redis) -> None:
    # Given a recorder on a client that counts pipeline round trips
    counting = CountingRedis(client)
    recorder = Recorder(cast(redis.Redis, counting))
    dest = place()
    # When one entry fewer than a batch is recorded
    for i in range(Recorder.BATCH - 1):
        recorder.record(dest, f"k{i:04d}", copied(f"k{i:04d}"))
    # Then nothing was sent
    assert counting.round_trips == 0
    assert client.exists(ledger_key(dest)) == 0
    # When the batch fills
    recorder.record(dest, "last", copied("last"))
    # Then one round trip sent all of it
    assert counting.round_trips == 1
    assert client.hlen(ledger_key(dest)) == Recorder.BATCH


def test_flush_sends_what_is_pending_in_one_round_trip_and_an_empty_flush_sends_nothing(client: redis.Redis) -> None:
    counting = CountingRedis(client)
    recorder = Recorder(cast(redis.Redis, counting))
    dest = place()
    # Given three entries pending
    for key in ("a", "b", "c"):
        recorder.record(dest, key, copied(key, size=3))
    assert counting.round_trips == 0
    # When flushed, twice
    recorder.flush()
    recorder.flush()
    # Then one round trip wrote the three
    assert counting.round_trips == 1
    assert stored(client, dest) == {k: f"{SRC_ETAG} 3 {DST_ETAG}" for k in ("a", "b", "c")}


def test_two_full_batches_and_a_flush_take_three_round_trips(client: redis.Redis) -> None:
    counting = CountingRedis(client)
    recorder = Recorder(cast(redis.Redis, counting))
    dest = place()
    # When two batches and one more entry are recorded, then flushed
    for i in range(2 * Recorder.BATCH + 1):
        recorder.record(dest, f"k{i:04d}", copied(f"k{i:04d}"))
    assert counting.round_trips == 2
    recorder.flush()
    # Then each batch took one round trip, and every entry arrived
    assert counting.round_trips == 3
    assert client.hlen(ledger_key(dest)) == 2 * Recorder.BATCH + 1


def test_copies_and_proven_skips_that_know_both_etags_are_recorded(client: redis.Redis) -> None:
    recorder = Recorder(client)
    dest = place()
    # When a copy and a skip (both ETags known) are recorded
    recorder.record(dest, "b/copied", copied("a/copied", size=7))
    recorder.record(dest, "b/skipped", copied("a/skipped", size=9, action=Action.SKIPPED))
    recorder.flush()
    # Then each is kept under its destination key, as "source-etag size dest-etag"
    assert stored(client, dest) == {"b/copied": f"{SRC_ETAG} 7 {DST_ETAG}", "b/skipped": f"{SRC_ETAG} 9 {DST_ETAG}"}
    assert entry(SRC_ETAG, 7, DST_ETAG) == f"{SRC_ETAG} 7 {DST_ETAG}"


def test_outcomes_missing_an_etag_and_failed_missing_or_kept_keys_are_not_recorded(client: redis.Redis) -> None:
    counting = CountingRedis(client)
    recorder = Recorder(cast(redis.Redis, counting))
    dest = place()
    # When outcomes that land nothing are recorded
    recorder.record(dest, "empty-dest-etag", copied("k", dest_etag="", action=Action.SKIPPED))
    recorder.record(dest, "failed", copied("k", action=Action.FAILED))
    recorder.record(dest, "missing", copied("k", action=Action.MISSING))
    recorder.record(dest, "kept", copied("k", action=Action.KEPT))
    recorder.flush()
    # Then nothing was pending, nothing sent
    assert counting.round_trips == 0
    # When copies that prove nothing (an ETag missing) are recorded
    before = time.time()
    recorder.record(dest, "no-source-etag", copied("k", source_etag=None))
    recorder.record(dest, "no-dest-etag", copied("k", dest_etag=None))
    recorder.flush()
    # Then the ledger holds nothing, and only the time of the destination's last copy was sent
    assert client.exists(ledger_key(dest)) == 0
    assert counting.round_trips == 1
    assert last_copies(client)["dest1:b"] >= before


def test_a_deleted_key_is_forgotten_by_the_next_batch(client: redis.Redis) -> None:
    recorder = Recorder(client)
    dest = place()
    # Given two keys in the ledger
    client.hset(ledger_key(dest), mapping={"gone": entry(SRC_ETAG, 1, DST_ETAG), "kept": entry(SRC_ETAG, 2, DST_ETAG)})
    # When one is deleted at the destination (an outcome with no ETags at all)
    recorder.record(dest, "gone", Outcome("gone", "dest1:b", Action.DELETED))
    # Then it stays until the batch is sent, and is gone after
    assert stored(client, dest) == {"gone": entry(SRC_ETAG, 1, DST_ETAG), "kept": entry(SRC_ETAG, 2, DST_ETAG)}
    recorder.flush()
    assert stored(client, dest) == {"kept": entry(SRC_ETAG, 2, DST_ETAG)}


def test_a_copy_then_a_delete_of_one_key_in_one_batch_leaves_no_entry(client: redis.Redis) -> None:
    recorder = Recorder(client)
    dest = place()
    # When a key is copied, then deleted, before the batch is sent
    recorder.record(dest, "k", copied("k"))
    recorder.record(dest, "k", Outcome("k", "dest1:b", Action.DELETED))
    recorder.flush()
    # Then the batch applied them in order
    assert client.exists(ledger_key(dest)) == 0


def test_one_batch_writes_to_the_hash_of_each_destination(client: redis.Redis) -> None:
    counting = CountingRedis(client)
    recorder = Recorder(cast(redis.Redis, counting))
    one, two = place(), place()
    recorder.record(one, "k", copied("k", size=1))
    recorder.record(two, "k", copied("k", size=2))
    recorder.flush()
    assert counting.round_trips == 1
    assert stored(client, one) == {"k": entry(SRC_ETAG, 1, DST_ETAG)}
    assert stored(client, two) == {"k": entry(SRC_ETAG, 2, DST_ETAG)}


def test_a_redis_error_while_flushing_is_logged_and_the_batch_dropped(
    client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a recorder whose Redis cannot be reached, with two entries pending
    unreachable = unreachable_redis()
    recorder = Recorder(unreachable)
    dest = place()
    recorder.record(dest, "a", copied("a"))
    recorder.record(dest, "b", copied("b"))
    # When it flushes
    with caplog.at_level(logging.WARNING, logger="s3s3.state.ledger"):
        recorder.flush()
    # Then nothing was raised, and the failure was logged
    assert [r.getMessage().split(": ")[0] for r in caplog.records] == [
        "Could not write 2 ledger entries (later syncs HEAD those keys)"
    ]
    # And the batch was dropped: a flush once Redis is back sends nothing
    recorder.client = client
    recorder.flush()
    assert client.exists(ledger_key(dest)) == 0
    unreachable.close()


def test_a_redis_error_when_a_batch_fills_does_not_reach_the_copy_that_filled_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    unreachable = unreachable_redis()
    recorder = Recorder(unreachable)
    dest = place()
    with caplog.at_level(logging.WARNING, logger="s3s3.state.ledger"):
        for i in range(Recorder.BATCH):
            recorder.record(dest, f"k{i}", copied(f"k{i}"))
    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage().startswith(f"Could not write {Recorder.BATCH} ledger entries")
    unreachable.close()


# --- current and forget --------------------------------------------------------------------------


def pair(key: str, src_etag: str = SRC_ETAG, size: int = 10, dst_etag: str = DST_ETAG) -> tuple[ObjectInfo, ObjectInfo]:
    return ObjectInfo("a/" + key, size, src_etag), ObjectInfo("b/" + key, size, dst_etag)


def test_a_pair_is_current_while_both_listings_show_exactly_the_recorded_etags_and_size(client: redis.Redis) -> None:
    # Given the ledger's record of a copy of "a/k" (ETag SRC, 10 bytes) to "b/k" (ETag DST)
    dest = place()
    client.hset(ledger_key(dest), "b/k", entry(SRC_ETAG, 10, DST_ETAG))
    # Then the pair as listed is proven current, and any change on either side is not
    assert current(client, dest, [pair("k")]) == [True]
    assert current(client, dest, [pair("k", src_etag="1" * 32)]) == [False]  # the source changed
    assert current(client, dest, [pair("k", dst_etag="2" * 32)]) == [False]  # the destination changed
    assert current(client, dest, [pair("k", size=11)]) == [False]  # another size


def test_a_pair_with_no_entry_is_not_proven_and_each_pair_gets_its_own_answer_in_order(client: redis.Redis) -> None:
    dest = place()
    client.hset(
        ledger_key(dest), mapping={"b/one": entry(SRC_ETAG, 10, DST_ETAG), "b/three": entry(SRC_ETAG, 10, DST_ETAG)}
    )
    pairs = [pair("one"), pair("two"), pair("three"), pair("four", size=1)]
    assert current(client, dest, pairs) == [True, False, True, False]


def test_the_ledger_of_one_destination_proves_nothing_at_another(client: redis.Redis) -> None:
    one, two = place(), place()
    client.hset(ledger_key(one), "b/k", entry(SRC_ETAG, 10, DST_ETAG))
    assert current(client, two, [pair("k")]) == [False]


def test_no_pairs_need_no_request(client: redis.Redis) -> None:
    unreachable = unreachable_redis()
    assert current(unreachable, place(), []) == []
    unreachable.close()


def test_what_the_recorder_wrote_proves_the_pair_it_was_recorded_for(client: redis.Redis) -> None:
    recorder = Recorder(client)
    dest = place()
    recorder.record(dest, "b/k", copied("a/k", size=10))
    recorder.flush()
    assert current(client, dest, [pair("k")]) == [True]


def test_forget_drops_the_entries_of_the_keys_given_and_nothing_else(client: redis.Redis) -> None:
    dest = place()
    client.hset(ledger_key(dest), mapping={k: entry(SRC_ETAG, 1, DST_ETAG) for k in ("x", "y", "z")})
    # When two keys (and one never recorded) are forgotten
    forget(client, dest, iter(["x", "z", "never"]))
    assert stored(client, dest) == {"y": entry(SRC_ETAG, 1, DST_ETAG)}


def test_forgetting_no_keys_needs_no_request() -> None:
    unreachable = unreachable_redis()
    forget(unreachable, place(), [])
    unreachable.close()


def test_a_copy_the_listings_decide_is_not_recorded_and_a_ledger_with_days_expires(client: redis.Redis) -> None:
    # Given a recorder whose ledgers expire 7 days after their last write
    recorder = Recorder(client, days=7)
    dest = place()
    plain = "0123456789abcdef0123456789abcdef"
    # When a copy with the same plain MD5 on both sides and one the listings cannot decide are recorded
    recorder.record(dest, "same-md5", copied("k", source_etag=plain, dest_etag=plain))
    recorder.record(dest, "multipart", copied("k"))
    recorder.flush()
    # Then only the undecidable one is kept, in a ledger that expires in 7 days
    assert stored(client, dest) == {"multipart": entry(SRC_ETAG, 10, DST_ETAG)}
    assert 7 * 86400 - 5 <= client.ttl(ledger_key(dest)) <= 7 * 86400


# -- the version map ---------------------------------------------------------------------------------


def test_the_version_map_names_what_it_learnt_and_nothing_else(client: redis.Redis) -> None:
    # Given a map that learnt two versions of one key, one of them someone else's ("")
    dest = place()
    versions = VersionLedger(client)
    versions.learn(dest, "k", {"d1": "s1", "d2": ""})
    # Then it names those, and not a version it never learnt
    assert versions.known(dest, "k", ["d1", "d2", "d3"]) == {"d1": "s1", "d2": ""}
    # And keys and buckets do not share entries
    assert versions.known(place(), "k", ["d1"]) == {}


def test_the_version_map_of_a_page_of_keys_is_read_in_one_round_trip(client: redis.Redis) -> None:
    dest = place()
    counting = CountingRedis(client)
    versions = VersionLedger(cast(redis.Redis, counting))
    versions.learn(dest, "a", {"d1": "s1"})
    versions.learn(dest, "b", {"d2": "s2", "d3": "s3"})
    calls = []
    real_hmget = client.hmget
    counting.hmget = lambda *args: calls.append(args) or real_hmget(*args)  # type: ignore[method-assign]
    found = versions.known_many(dest, [("a", ["d1", "dx"]), ("b", ["d3", "d2"]), ("c", [])])
    assert found == [{"d1": "s1"}, {"d3": "s3", "d2": "s2"}, {}]
    assert len(calls) == 1


def test_the_null_version_of_each_key_is_its_own_entry(client: redis.Redis) -> None:
    # "null" names the version written while versioning was off: every key may have one
    dest = place()
    versions = VersionLedger(client)
    versions.learn(dest, "a", {"null": ""})
    versions.learn(dest, "b", {"null": "s9"})
    assert versions.known(dest, "a", ["null"]) == {"null": ""}
    assert versions.known(dest, "b", ["null"]) == {"null": "s9"}


def test_forgotten_versions_are_no_longer_named_and_a_map_with_days_expires(client: redis.Redis) -> None:
    dest = place()
    versions = VersionLedger(client, days=2)
    versions.learn(dest, "k", {"d1": "s1", "d2": "s2"})
    versions.forget(dest, "k", ["d1"])
    assert versions.known(dest, "k", ["d1", "d2"]) == {"d2": "s2"}
    assert 0 < client.ttl(versions_key(dest)) <= 2 * 86400
    assert versions_key(dest).startswith(names.VERSIONS_PREFIX)


def test_a_redis_that_does_not_answer_makes_the_version_map_know_nothing_and_learn_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    versions = VersionLedger(unreachable_redis())
    with caplog.at_level(logging.WARNING, logger="s3s3.state.ledger"):
        assert versions.known(place(), "k", ["d1"]) == {}
        versions.learn(place(), "k", {"d1": "s1"})
        versions.forget(place(), "k", ["d1"])
    assert len(caplog.records) == 3
