"""Nothing announced is lost: real s3s3listen processes, real redis-servers, moto S3 servers.

Nothing announced is lost: a listener SIGKILLed mid-copy, Redis restarted
under a running listener, S3 answering 503/SlowDown or hanging up, bad input
thrown at it. Many listeners share one stream. Every check is on the bytes at
the destination (their MD5), never on a log line alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import subprocess
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from s3s3 import names
from s3s3.store.probes import PROBE_KEY
from tests.faults import FaultProxy
from tests.helpers import (
    MiB,
    all_arrived,
    announce,
    assert_intact,
    copied_lines,
    fetched_md5s,
    listing,
    md5s,
    new_bucket,
    pending,
    put_objects,
    random_objects,
    start_listener,
    stream_pubsub,
    via,
    wait_until,
    write_config,
)
from tests.processes import BIN, Proc
from tests.servers.base import Server, free_port
from tests.servers.redis import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def thousand(s3_source: Server) -> tuple[str, dict[str, bytes]]:
    """One source bucket of 1000 small objects, shared by the tests that need many keys (moto is slow)."""
    bucket = new_bucket(s3_source)
    objects = random_objects("many/", 1000, 16, 1024)
    put_objects(s3_source, bucket, objects)
    return bucket, objects


# --- 1. stream mode: a listener SIGKILLed mid-copy ---------------------------------------------


def test_given_a_stream_listener_sigkilled_mid_copy_when_another_starts_then_every_key_arrives_and_none_stays_pending(
    s3_source: Server,
    s3_dest: Server,
    thousand: tuple[str, dict[str, bytes]],
    private_redis: Callable[..., RedisServer],
    spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:
    # Given 500 small objects at the source, announced on a stream
    server = private_redis()
    client = redis.Redis.from_url(server.url)
    src, dst = thousand[0], new_bucket(s3_dest)
    objects = dict(list(thousand[1].items())[:500])
    settings = stream_pubsub(server.url, claim_idle=2, workers=4)
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst, {})], settings)
    stream = config.pubsub.stream
    announce(client, "stream", stream, objects)

    # When a listener has copied some of them and is SIGKILLed mid-copy
    first = start_listener(spawn, config)
    wait_until(lambda: len(listing(s3_dest, dst)) >= 40, timeout=30, interval=0.02)
    first.kill()
    at_kill = len(listing(s3_dest, dst))
    left_pending = pending(client, stream)

    # Then it left keys uncopied and entries pending (read, not acknowledged)
    assert 40 <= at_kill < 500
    assert left_pending > 0

    # When another listener starts
    second = start_listener(spawn, config)

    # Then it claims what the dead one left pending, and every key arrives intact; nothing stays pending
    wait_until(all_arrived(s3_dest, dst, objects), timeout=60)
    wait_until(lambda: pending(client, stream) == 0, timeout=20)
    assert_intact(s3_dest, dst, objects)
    assert len(listing(s3_dest, dst)) == 500
    claimed = second.find(r"WARNING s3s3\.listen\.delivery: Claimed \d+-\d+, left pending by a listener that stopped")
    assert len(claimed) >= left_pending
    print(f"\nkilled at {at_kill}/500 copied, {left_pending} pending; "
          f"first copied {copied_lines(first)}, second {copied_lines(second)}, claimed {len(claimed)}")  # fmt: skip
    assert second.find(r"(ERROR) .*") == []
    client.close()


# --- 2. stream mode: three listeners share one group ------------------------------------------


def test_given_three_listeners_in_one_group_when_1000_keys_are_announced_then_each_copies_some_and_all_exactly_once(
    s3_source: Server,
    s3_dest: Server,
    thousand: tuple[str, dict[str, bytes]],
    private_redis: Callable[..., RedisServer],
    spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:
    # Given 1000 objects at the source and three listeners reading one stream in one group
    server = private_redis()
    client = redis.Redis.from_url(server.url)
    (src, objects), dst = thousand, new_bucket(s3_dest)
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst, {})], stream_pubsub(server.url, workers=4))
    listeners = [start_listener(spawn, config) for _ in range(3)]

    # When the 1000 keys are announced
    announce(client, "stream", config.pubsub.stream, objects)

    # Then all arrive intact, each listener copied some, and together exactly 1000 (none twice)
    wait_until(all_arrived(s3_dest, dst, objects), timeout=90)
    wait_until(lambda: pending(client, config.pubsub.stream) == 0, timeout=20)
    wait_until(lambda: sum(copied_lines(x) for x in listeners) >= 1000, timeout=10)
    split = [copied_lines(x) for x in listeners]
    print(f"\nscale-out split: {split}")
    assert all(n > 0 for n in split), split
    assert sum(split) == 1000
    assert_intact(s3_dest, dst, objects)
    consumers = client.xinfo_consumers(config.pubsub.stream, "s3s3")
    assert len(consumers) == 3 and all(c["pending"] == 0 for c in consumers)
    for listener in listeners:
        assert listener.find(r"(WARNING|ERROR) .*") == []
    client.close()


# --- 3. Redis restarts under a running listener ------------------------------------------------


def _restart(server: RedisServer) -> None:
    server.stop()
    server.start()


@pytest.mark.parametrize("mode", ["stream", "list"])
def test_given_redis_with_aof_restarts_under_a_listener_then_keys_from_before_and_after_all_arrive(
    s3_source: Server,
    s3_dest: Server,
    thousand: tuple[str, dict[str, bytes]],
    private_redis: Callable[..., RedisServer],
    spawn: Callable[..., Proc],
    tmp_path: Path,
    mode: str,
) -> None:
    # Given a listener on a Redis that keeps an append-only file
    server = private_redis(persistent=True)
    (src, objects), dst = thousand, new_bucket(s3_dest)
    keys = list(objects)[500:750]
    before, after = {k: objects[k] for k in keys[:200]}, {k: objects[k] for k in keys[200:]}
    name = f"q-{uuid.uuid4().hex[:8]}"
    settings = {"url": server.url, "mode": mode, mode: name, "workers": 4, "claim_idle": 2, "consumer": "one"}
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst, {})], settings)
    listener = start_listener(spawn, config)
    client = redis.Redis.from_url(server.url)

    # When 200 keys are announced and Redis is restarted at once, under the copies
    announce(client, mode, name, before)
    client.close()
    _restart(server)
    at_restart = len(listing(s3_dest, dst))

    # When 50 more are announced once Redis is back
    client = redis.Redis.from_url(server.url)
    announce(client, mode, name, after)

    # Then all 250 arrive intact, and nothing is left pending or in the processing list
    wait_until(all_arrived(s3_dest, dst, {**before, **after}), timeout=60)
    assert_intact(s3_dest, dst, {**before, **after})
    if mode == "stream":
        wait_until(lambda: pending(client, name) == 0, timeout=20)
    else:
        wait_until(lambda: client.llen(names.processing_list(name, "one")) == 0, timeout=20)
        assert client.llen(name) == 0
    lost = listener.find(r"ERROR s3s3\.listen: Lost the Redis connection at \S+: .+")
    print(f"\n{mode}: {at_restart}/200 copied when Redis restarted; {len(lost)} lost connection(s) logged")
    assert at_restart < 200  # the restart came while keys were still to be copied
    # (A restart between two commands is healed by redis-py's pool unseen; one mid-command is logged.)
    assert len(listener.find(r"INFO s3s3\.listen: Connected to \S+, reading .+")) == 1 + len(lost)
    assert listener.alive()
    client.close()


def test_given_redis_restarts_under_a_pubsub_listener_then_it_records_the_gap_survives_and_copies_again(
    s3_source: Server,
    s3_dest: Server,
    private_redis: Callable[..., RedisServer],
    spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:
    # Given a pubsub listener that has copied what was published so far
    server = private_redis()
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    before, after = random_objects("before/", 20), random_objects("after/", 20)
    put_objects(s3_source, src, {**before, **after})
    channel = f"ch-{uuid.uuid4().hex[:8]}"
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst, {})], {"url": server.url, "channel": channel})
    listener = start_listener(spawn, config)
    client = redis.Redis.from_url(server.url)
    for key in before:
        assert client.publish(channel, key) == 1
    wait_until(all_arrived(s3_dest, dst, before), timeout=30)
    client.close()

    # When Redis restarts
    _restart(server)

    # Then the listener survives, subscribes again, and logs and records the gap
    listener.wait_for(r"ERROR s3s3\.listen\.delivery: Announcements published on .+ were missed while Redis was "
                      r"unreachable; run s3s3bucket to catch up", timeout=40)  # fmt: skip
    client = redis.Redis.from_url(server.url)
    wait_until(lambda: client.pubsub_numsub(channel)[0][1] == 1, timeout=10)
    gaps = client.xrange("s3s3:gaps")
    assert len(gaps) == 1 and gaps[0][1][b"channel"] == channel.encode()

    # And what is published now is copied
    for key in after:
        assert client.publish(channel, key) == 1
    wait_until(all_arrived(s3_dest, dst, after), timeout=30)
    assert fetched_md5s(s3_dest, dst, {**before, **after}) == md5s({**before, **after})
    assert listener.alive()
    client.close()


# --- 4. list mode: MinIO's access format, and a SIGKILLed consumer's processing list ----------


def minio_access(bucket: str, keys: list[str]) -> str:
    """MinIO's Redis target, format = access: a list of {"Event": [records], "EventTime": ...}."""
    from urllib.parse import quote_plus

    records = [
        {
            "eventVersion": "2.0",
            "eventSource": "minio:s3",
            "eventName": "s3:ObjectCreated:Put",
            "eventTime": "2024-05-01T10:00:00.000Z",
            "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key), "size": 1}},
        }
        for key in keys
    ]
    return json.dumps([{"Event": records, "EventTime": "2024-05-01T10:00:00.000Z"}])


def test_given_list_mode_when_keys_and_minio_access_lists_are_pushed_then_they_arrive_and_a_killed_consumer_recovers(
    s3_source: Server,
    s3_dest: Server,
    fault_proxy: FaultProxy,
    private_redis: Callable[..., RedisServer],
    spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:
    # Given a list-mode listener with a named consumer, copying through a proxy
    server = private_redis()
    client = redis.Redis.from_url(server.url)
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    plain, minio = random_objects("plain/", 10), random_objects("minio/café ", 6)
    held = random_objects("held/", 12)
    put_objects(s3_source, src, {**plain, **minio, **held})
    queue = f"q-{uuid.uuid4().hex[:8]}"
    settings = {"url": server.url, "mode": "list", "list": queue, "consumer": "lister", "workers": 3}
    config = write_config(tmp_path, (s3_source, src), [(via(s3_dest, fault_proxy), dst, {})], settings)
    listener = start_listener(spawn, config)

    # When plain keys and MinIO access-format messages (two records each) are RPUSHed
    keys = list(minio)
    announce(client, "list", queue, [*plain, minio_access(src, keys[:2]), minio_access(src, keys[2:4]),
                                     minio_access(src, keys[4:])])  # fmt: skip

    # Then all arrive intact
    wait_until(all_arrived(s3_dest, dst, {**plain, **minio}), timeout=30)
    assert fetched_md5s(s3_dest, dst, {**plain, **minio}) == md5s({**plain, **minio})

    # When PUTs hang at the destination, more keys are pushed, and the listener is SIGKILLed
    fault_proxy.hold = lambda method, path: method == "PUT"
    announce(client, "list", queue, held)
    processing = names.processing_list(queue, "lister")
    wait_until(lambda: client.llen(processing) == 3, timeout=20)
    listener.kill()
    assert client.llen(processing) == 3 and client.llen(queue) == len(held) - 3
    fault_proxy.healthy()

    # Then a restarted listener of the same consumer recovers them, and every key arrives
    again = start_listener(spawn, config)
    again.wait_for(rf"WARNING s3s3\.listen\.delivery: Recovered 3 announcement\(s\) left in '{re.escape(processing)}' "
                   r"by a previous run")  # fmt: skip
    wait_until(all_arrived(s3_dest, dst, held), timeout=30)
    assert fetched_md5s(s3_dest, dst, held) == md5s(held)
    wait_until(lambda: client.llen(processing) == 0 and client.llen(queue) == 0, timeout=10)
    client.close()


# --- 5. S3 faults: 503, SlowDown, dropped connections, stalls ---------------------------------


def multipart_etag(body: bytes, chunk: int) -> str:
    digests = b"".join(hashlib.md5(body[i : i + chunk]).digest() for i in range(0, len(body), chunk))
    return f"{hashlib.md5(digests).hexdigest()}-{-(-len(body) // chunk)}"


class Watcher:
    """Lists the destination over and over; records any object whose size or ETag is not the source's."""

    def __init__(self, server: Server, bucket: str, expected: dict[str, tuple[int, str]]) -> None:
        self.server, self.bucket, self.expected = server, bucket, expected
        self.wrong: list[tuple[str, int, str]] = []
        self.listings = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for key, (size, etag) in listing(self.server, self.bucket).items():
                # (the one-byte probe of whether the store checks Content-MD5 is no copy of a key)
                if key != PROBE_KEY and self.expected.get(key) != (size, etag):
                    self.wrong.append((key, size, etag))
            self.listings += 1

    def __enter__(self) -> Watcher:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(10)


def test_given_a_destination_that_fails_requests_then_every_key_arrives_whole_and_the_hopeless_are_dead_lettered(
    s3_source: Server,
    s3_dest: Server,
    fault_proxy: FaultProxy,
    private_redis: Callable[..., RedisServer],
    spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:
    # Given small and multipart objects, and keys under doomed/ that the destination always refuses
    server = private_redis()
    client = redis.Redis.from_url(server.url)
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    small = random_objects("ok/", 60)
    large = {f"ok/large-{i}.bin": os.urandom(11 * MiB) for i in range(2)}
    doomed = random_objects("doomed/", 3)
    put_objects(s3_source, src, {**small, **large, **doomed})
    expected = {k: (len(v), hashlib.md5(v).hexdigest()) for k, v in {**small, **doomed}.items()}
    expected |= {k: (len(v), multipart_etag(v, 5 * MiB)) for k, v in large.items()}
    dest_options = {"multipart_threshold": "5MiB", "multipart_chunksize": "5MiB"}
    settings = stream_pubsub(server.url, workers=6, max_attempts=4, max_retry_seconds=60)
    config = write_config(tmp_path, (s3_source, src), [(via(s3_dest, fault_proxy), dst, dest_options)], settings)
    # Random faults hit at most two requests per object, so four attempts per key always suffice
    # (whatever botocore retries underneath): a key that still fails is a bug, not bad luck.
    fault_proxy.rate, fault_proxy.max_faults_per_path, fault_proxy.doomed = 0.3, 2, ("/doomed/",)
    listener = start_listener(spawn, config)

    # When every key is announced while a quarter of the requests fail (503, SlowDown, hang-up, stall)
    with Watcher(s3_dest, dst, expected) as watcher:
        announce(client, "stream", config.pubsub.stream, [*small, *large, *doomed])

        # Then every good key arrives whole, and no listing ever showed a partial or wrong object
        wait_until(all_arrived(s3_dest, dst, {**small, **large}), timeout=90)
        wait_until(lambda: client.xlen("s3s3:failed") == 3, timeout=60)
    assert watcher.wrong == [] and watcher.listings > 5
    assert fetched_md5s(s3_dest, dst, {**small, **large}) == md5s({**small, **large})
    assert s3_dest.client().list_multipart_uploads(Bucket=dst).get("Uploads", []) == []
    faults = {k: fault_proxy.counts[k] for k in ("503", "slowdown", "drop", "stall", "doomed", "forwarded")}
    hit = {p.split("/", 2)[2] for p in fault_proxy.faulted()} & (set(small) | set(large))
    print(f"\nfault proxy: {faults}; {len(hit)} of {len(small) + len(large)} good keys met a fault")
    assert all(faults[k] > 0 for k in ("503", "slowdown", "drop", "stall")) and len(hit) >= 10

    # And the hopeless keys are in the dead-letter stream with key, dest, error and attempts
    entries = [fields for _id, fields in client.xrange("s3s3:failed")]
    assert sorted(e[b"key"].decode() for e in entries) == sorted(doomed)
    for entry in entries:
        assert entry[b"kind"] == b"copy" and entry[b"dest"] == f"dest1:{dst}".encode()
        assert int(entry[b"attempts"]) == 4
        error = rb"An error occurred \((503|ServiceUnavailable)\) when calling the \w+ operation"
        assert re.search(error, entry[b"error"]), entry[b"error"]
    wait_until(lambda: pending(client, config.pubsub.stream) == 0, timeout=20)

    # When `s3s3 failed` lists them
    shown = subprocess.run([str(BIN / "s3s3"), "failed", "--config", config.path], capture_output=True, text=True,
                           timeout=30)  # fmt: skip
    assert shown.returncode == 0 and shown.stderr.endswith("3 entries in s3s3:failed\n")
    for key in doomed:
        assert re.search(rf"^\d+-\d+ \S+ '{re.escape(key)}' to dest1:{dst} after 4 attempt\(s\): .+$", shown.stdout,
                         re.MULTILINE)  # fmt: skip

    # And, the destination healthy again, `s3s3 retry-failed` announces them again
    fault_proxy.healthy()
    retried = subprocess.run([str(BIN / "s3s3"), "retry-failed", "--config", config.path], capture_output=True,
                             text=True, timeout=30)  # fmt: skip
    assert (retried.returncode, retried.stdout) == (
        0, f"announced 3 failed key(s) again on stream '{config.pubsub.stream}'; 0 could not be\n")

    # Then they arrive intact, and the dead-letter stream is empty
    wait_until(all_arrived(s3_dest, dst, doomed), timeout=30)
    assert fetched_md5s(s3_dest, dst, doomed) == md5s(doomed)
    assert client.xlen("s3s3:failed") == 0
    assert listener.alive()
    client.close()


# --- 6. bad input thrown at a running listener -------------------------------------------------


def bad_inputs(bucket: str) -> list[bytes]:
    """Messages every one of which must be rejected (and none of which may stop the listener)."""
    rng = random.Random(7)
    junk = [b"\xff" + rng.randbytes(rng.randint(1, 300)) for _ in range(20)]  # never UTF-8: 0xff
    record = {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
              "s3": {"bucket": {"name": bucket}, "object": {"key": "k"}}}  # fmt: skip
    return [
        *junk,
        b"x" * 1025,
        ("k/" + "\u00e9" * 512).encode(),  # 1026 bytes of UTF-8
        json.dumps({"key": "y" * 1025}).encode(),
        b"[1, 2, 3]",
        b"{}",
        b'{"Records": []}',
        b'{"Records": "nope"}',
        b'{"Records": [42]}',
        json.dumps({"key": "a.txt", "bucket": "someone-else"}).encode(),
        json.dumps({"Records": [{**record, "s3": {"bucket": {"name": "other"}, "object": {"key": "k"}}}]}).encode(),
        json.dumps({"Records": [{**record, "eventName": "ObjectRestore:Completed"}]}).encode(),
        json.dumps({"Records": [{**record, "eventName": "s3:Replication:OperationFailedReplication"}]}).encode(),
        json.dumps({"Records": [{**record, "eventSource": "gcs"}]}).encode(),
        json.dumps({"Records": [record, {**record, "eventName": None}]}).encode(),
        json.dumps({"key": "a.txt", "event": "rename"}).encode(),
        json.dumps({"key": 42}).encode(),
        json.dumps({"Type": "Notification", "Message": "not json"}).encode(),
        b"",
        b"\n",
    ]


# Meant as JSON and broken (a store's event cut short, say): rejected as broken JSON, never taken for a key.
BROKEN_JSON = [b'{"key": "a", "event": "put"', b'{"Records": [}', b"[{'Event': []}]"]


def metric(url: str, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_given_bad_input_thrown_at_a_running_listener_then_it_stays_up_and_every_rejection_is_counted_and_kept(
    s3_source: Server,
    s3_dest: Server,
    private_redis: Callable[..., RedisServer],
    spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:
    # Given a listener serving /metrics, and good keys to interleave with the bad
    server = private_redis()
    client = redis.Redis.from_url(server.url)
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    good = random_objects("good/", 20)
    put_objects(s3_source, src, good)
    port = free_port()
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst, {})], stream_pubsub(server.url),
                          metrics={"port": port})  # fmt: skip
    listener = start_listener(spawn, config)
    metrics = f"http://127.0.0.1:{port}/metrics"

    # When bad messages and broken JSON are published, with a good key after every fourth
    bad = bad_inputs(src)
    messages: list[bytes] = []
    keys = iter(good)
    for i, message in enumerate([*bad, *BROKEN_JSON]):
        messages.append(message)
        if i % 4 == 0:
            messages.append(next(keys).encode())  # 20 good keys last for 80 messages
    messages += [k.encode() for k in keys]
    announce(client, "stream", config.pubsub.stream, messages)

    # Then the good keys arrive, and every bad one was counted and kept as rejected
    wait_until(all_arrived(s3_dest, dst, good), timeout=30)
    wait_until(lambda: metric(metrics, "s3s3_events_received_total") == len(messages), timeout=10)
    rejected = [*bad, *BROKEN_JSON]
    assert metric(metrics, "s3s3_events_rejected_total") == len(rejected)
    kept = [fields for _id, fields in client.xrange("s3s3:failed")]
    assert [f[b"kind"] for f in kept] == [b"rejected"] * len(rejected)
    assert [f[b"key"] for f in kept] == rejected
    assert [f[b"error"].startswith(b"broken JSON") for f in kept] == [False] * len(bad) + [True] * len(BROKEN_JSON)
    assert len(listener.find(r"WARNING s3s3\.listen: Rejected an announcement: .+")) == len(rejected)
    assert listener.find(r"WARNING s3s3\.copy: Missing .+") == []
    assert fetched_md5s(s3_dest, dst, good) == md5s(good)
    wait_until(lambda: pending(client, config.pubsub.stream) == 0, timeout=10)
    assert listener.alive() and listener.find(r"ERROR .*") == []
    client.close()


# --- 9. one key announced again and again while its copy is in flight -------------------------


def test_given_a_copy_in_flight_when_its_key_is_overwritten_and_announced_again_then_one_more_copy_brings_the_newest(
    s3_source: Server,
    s3_dest: Server,
    fault_proxy: FaultProxy,
    private_redis: Callable[..., RedisServer],
    spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:
    # Given a listener whose PUT of "hot.bin" hangs at the destination
    server = private_redis()
    client = redis.Redis.from_url(server.url)
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    versions = [os.urandom(2000 + i) for i in range(4)]
    s3_source.client().put_object(Bucket=src, Key="hot.bin", Body=versions[0])
    config = write_config(tmp_path, (s3_source, src), [(via(s3_dest, fault_proxy), dst, {})],
                          stream_pubsub(server.url, workers=4))  # fmt: skip
    fault_proxy.hold = lambda method, path: method == "PUT" and path.endswith("/hot.bin")
    listener = start_listener(spawn, config)
    stream = config.pubsub.stream
    announce(client, "stream", stream, ["hot.bin"])
    wait_until(lambda: fault_proxy.puts_at_once["/" + dst + "/hot.bin"] == 1, timeout=20)

    # When the source object is overwritten three times, announced three times after each
    for body in versions[1:]:
        s3_source.client().put_object(Bucket=src, Key="hot.bin", Body=body)
        announce(client, "stream", stream, ["hot.bin"] * 3)
    wait_until(lambda: client.xinfo_groups(stream)[0]["entries-read"] == 10, timeout=10)
    fault_proxy.gate.set()

    # Then it is copied exactly once more, never two at once, and the destination holds the newest version
    newest = hashlib.md5(versions[-1]).hexdigest()
    wait_until(lambda: listing(s3_dest, dst).get("hot.bin", (0, ""))[1] == newest, timeout=20)
    wait_until(lambda: pending(client, stream) == 0, timeout=10)
    path = f"/{dst}/hot.bin"
    assert fault_proxy.count("PUT", path) == 2
    assert fault_proxy.puts_at_once[path] == 1
    assert fetched_md5s(s3_dest, dst, ["hot.bin"]) == {"hot.bin": newest}
    assert len(listener.find(r"INFO s3s3\.copy: Copied 'hot\.bin' to dest1:\S+: \d+ bytes in \d+\.\d\ds")) == 2
    client.close()
