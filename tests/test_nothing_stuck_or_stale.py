"""Nothing stuck, nothing stale, nothing silent: every key ends in one recorded outcome under faults.

S3 answers cut mid-body by a clean close or a reset, a destination gone for
11 seconds, parts refused with SlowDown, two listeners copying two versions of
one key while the older one's PUT stalls, every worker of a listener blocked
past `claim_idle`: each through a fault proxy on loopback in front of a moto
server, with real redis-servers and real s3s3 processes. Every check is on
what landed at the destination (bytes, MD5), the stream's pending entries and
the dead-letter stream, not on a log line alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from s3s3.config import Config
from s3s3.copy import copy_key
from s3s3.retry import RetryPolicy
from s3s3.store import open_store
from s3s3.sync.uploads import abort_incomplete
from tests.faults import FaultProxy
from tests.helpers import (
    MiB,
    all_arrived,
    announce,
    fetched_md5s,
    listing,
    md5s,
    new_bucket,
    pending,
    put_objects,
    random_objects,
    record,
    start_listener,
    stream_pubsub,
    via,
    wait_until,
    write_config,
)
from tests.processes import BIN, Proc
from tests.servers.base import Server
from tests.servers.redis import RedisServer
from tests.stores import open_with

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

QUICK = RetryPolicy(max_seconds=60.0, first_delay=0.05, max_delay=0.5)


@pytest.fixture
def proxies() -> Iterator[Callable[[Server], FaultProxy]]:
    """Fault proxies in front of S3 servers, stopped at teardown."""
    started: list[FaultProxy] = []

    def start(server: Server) -> FaultProxy:
        proxy = FaultProxy(server.endpoint_url).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def hold_first_put(proxy: FaultProxy, path_end: str) -> threading.Event:
    """Make `proxy` hold the first PUT whose path ends with `path_end` until `proxy.gate` is set; set once it holds."""
    held = threading.Event()

    def hold(method: str, path: str) -> bool:
        if method == "PUT" and path.endswith(path_end) and not held.is_set():
            held.set()
            return True
        return False

    proxy.hold = hold
    return held


def pending_uploads(server: Server, bucket: str) -> list[str]:
    return [u["Key"] for u in server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def got(server: Server, bucket: str, key: str) -> bytes:
    return server.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def put_in_parts(server: Server, bucket: str, key: str, data: bytes, part: int = 5 * MiB) -> None:
    """Write `data` as a multipart upload, so its ETag is md5-N and it is copied in ranges."""
    client = server.client()
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for number, start in enumerate(range(0, len(data), part), start=1):
        answer = client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number,
                                    Body=data[start : start + part])  # fmt: skip
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})


# --- 1. a cut response is a transient failure, wherever it happens ------------------------------


@pytest.mark.parametrize("cut", ["fin", "rst"])
@pytest.mark.parametrize("transport", ["http", "boto3"])
def test_a_source_body_cut_mid_way_is_tried_again_and_the_copy_lands_intact(
    make_config: Callable[..., Config],
    s3_source: Server,
    s3_dest: Server,
    proxies: Callable[[Server], FaultProxy],
    cut: str,
    transport: str,
) -> None:
    # Given a source whose first GET of the key is answered with half its body, then a FIN or a reset
    proxy = proxies(s3_source)
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    data = os.urandom(300_000)
    s3_source.client().put_object(Bucket=src, Key="cut/me.bin", Body=data)
    proxy.faults, proxy.rate, proxy.max_faults_per_path = (cut,), 1.0, 1
    proxy.only = lambda method, path, query: method == "GET" and path.endswith("/cut/me.bin")
    config = make_config((via(s3_source, proxy), src), [(s3_dest, dst)])
    source, dest = open_with(config.source, transport), open_with(config.dests[0], transport)

    # When the key is copied
    outcome = copy_key(source, dest, "cut/me.bin", retry=QUICK)

    # Then the cut read was one failed attempt, the second landed the source's bytes
    assert proxy.counts[cut] == 1
    assert (outcome.action, outcome.attempts) == ("copied", 2), outcome.error
    assert got(s3_dest, dst, "cut/me.bin") == data


@pytest.mark.parametrize(
    "operation",
    ["CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"],
)
@pytest.mark.parametrize("transport", ["http", "boto3"])
def test_a_multipart_answer_cut_mid_way_is_tried_again_and_the_copy_lands_intact(
    make_config: Callable[..., Config],
    s3_source: Server,
    s3_dest: Server,
    proxies: Callable[[Server], FaultProxy],
    operation: str,
    transport: str,
) -> None:
    # Given a destination whose first answer to one multipart call is cut half-way, then the connection closed
    proxy = proxies(s3_dest)
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    data = os.urandom(11 * MiB)
    put_in_parts(s3_source, src, "mp/cut.bin", data)
    matches = {
        "CreateMultipartUpload": lambda method, query: method == "POST" and query.startswith("uploads"),
        "UploadPart": lambda method, query: method == "PUT" and "partNumber=2" in query,
        "CompleteMultipartUpload": lambda method, query: method == "POST" and query.startswith("uploadId"),
    }[operation]
    proxy.faults, proxy.rate, proxy.max_faults_per_path = ("fin",), 1.0, 1
    proxy.only = lambda method, path, query: matches(method, query)
    options = {"multipart_threshold": "5MiB", "multipart_chunksize": "5MiB"}
    config = make_config((s3_source, src), [(via(s3_dest, proxy), dst)], dest_extra=options)
    source, dest = open_with(config.source, transport), open_with(config.dests[0], transport)

    # When the key is copied
    outcome = copy_key(source, dest, "mp/cut.bin", retry=QUICK)

    # Then it lands whole
    assert proxy.counts["fin"] == 1
    assert outcome.action == "copied", outcome.error
    assert got(s3_dest, dst, "mp/cut.bin") == data

    # And an upload whose creation answer was lost is the one s3s3 could not abort itself:
    # --abort-incomplete-uploads finds it (the source holds its key), and nothing else is left
    orphans = pending_uploads(s3_dest, dst)
    assert orphans == (["mp/cut.bin"] if operation == "CreateMultipartUpload" else [])
    done = abort_incomplete(source, dest, older_than=0)
    assert (done.aborted, done.failed) == (len(orphans), 0)
    assert pending_uploads(s3_dest, dst) == []


def test_a_destination_gone_for_11_seconds_is_ridden_out_within_max_retry_seconds(
    make_config: Callable[..., Config],
    s3_source: Server,
    s3_dest: Server,
    proxies: Callable[[Server], FaultProxy],
) -> None:
    # Given small objects and one uploaded in parts, and a destination that resets every connection for 11 s
    proxy = proxies(s3_dest)
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    small = random_objects("outage/", 4)
    put_objects(s3_source, src, small)
    large = os.urandom(11 * MiB)
    put_in_parts(s3_source, src, "outage/large.bin", large)
    options = {"multipart_threshold": "5MiB", "multipart_chunksize": "5MiB"}
    config = make_config((s3_source, src), [(via(s3_dest, proxy), dst)], dest_extra=options)
    source, dest = open_store(config.source), open_store(config.dests[0])
    policy = RetryPolicy(max_seconds=300.0)  # the shipped default
    proxy.outage(11)
    started = time.monotonic()

    # When every key is copied during the outage
    outcomes = [copy_key(source, dest, key, retry=policy) for key in [*small, "outage/large.bin"]]

    # Then each landed once the destination was back, none gave up
    assert [o.action for o in outcomes] == ["copied"] * 5, [o.error for o in outcomes]
    assert time.monotonic() - started >= 11 and proxy.counts["reset"] >= 2
    assert fetched_md5s(s3_dest, dst, [*small, "outage/large.bin"]) == md5s({**small, "outage/large.bin": large})


def test_parts_refused_with_slowdown_are_sent_again_as_parts_not_the_whole_object(
    make_config: Callable[..., Config],
    s3_source: Server,
    s3_dest: Server,
    proxies: Callable[[Server], FaultProxy],
) -> None:
    # Given a 15 MiB source written in parts, and a destination answering SlowDown to 60 % of part uploads
    source_proxy, dest_proxy = proxies(s3_source), proxies(s3_dest)
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    data = os.urandom(15 * MiB)
    put_in_parts(s3_source, src, "slow/parts.bin", data)
    dest_proxy.faults, dest_proxy.rate = ("slowdown",), 0.6
    dest_proxy.only = lambda method, path, query: method == "PUT" and "partNumber" in query
    options = {"multipart_threshold": "5MiB", "multipart_chunksize": "5MiB"}
    config = make_config((via(s3_source, source_proxy), src), [(via(s3_dest, dest_proxy), dst)], dest_extra=options)
    source, dest = open_store(config.source), open_store(config.dests[0])

    # When it is copied
    outcome = copy_key(source, dest, "slow/parts.bin", retry=QUICK)

    # Then the object was never started over: each refused part read its range again and was sent again
    assert (outcome.action, outcome.attempts) == ("copied", 1), outcome.error
    refused = dest_proxy.counts["slowdown"]
    ranged_reads = source_proxy.count("GET", "/slow/parts.bin")
    assert refused >= 1
    assert ranged_reads == 1 + 3 + refused  # the GET that opened it, three parts, one more read per refusal
    assert dest_proxy.count("POST", "/slow/parts.bin") == 2  # one create, one complete: one upload
    assert got(s3_dest, dst, "slow/parts.bin") == data


# --- 2. the newest version wins across listeners -------------------------------------------------


def test_two_listeners_copying_two_versions_of_a_key_leave_the_newest_even_when_the_older_lands_last(
    s3_source: Server,
    s3_dest: Server,
    proxies: Callable[[Server], FaultProxy],
    private_redis: Callable[..., RedisServer],
    spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:
    # Given a listener A with one worker whose PUT of version 1 of "k" stalls at the destination
    server = private_redis()
    client = redis.Redis.from_url(server.url)
    proxy = proxies(s3_dest)
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    old, new = b"version 1 " * 1000, b"version 2, the newest " * 1000
    s3_source.client().put_object(Bucket=src, Key="k", Body=old)
    held = hold_first_put(proxy, "/k")
    settings = stream_pubsub(server.url, workers=1, claim_idle=30)
    config = write_config(tmp_path, (s3_source, src), [(via(s3_dest, proxy), dst, {})], settings)
    a = start_listener(spawn, config)
    announce(client, "stream", config.pubsub.stream, ["k"])
    wait_until(held.is_set, timeout=20)

    # When "k" is overwritten with version 2 and announced again, and listener B copies it while A's PUT stalls
    s3_source.client().put_object(Bucket=src, Key="k", Body=new)
    b = start_listener(spawn, config)
    announce(client, "stream", config.pubsub.stream, ["k"])
    wait_until(lambda: b.find(r"INFO s3s3\.copy: Copied 'k' to dest1:\S+: \d+ bytes in \S+"), timeout=20)
    assert got(s3_dest, dst, "k") == new

    # And A's stalled PUT of version 1 lands after it
    proxy.gate.set()

    # Then A finds the source moved on and copies again: the destination ends with version 2
    wait_until(lambda: pending(client, config.pubsub.stream) == 0, timeout=30)
    assert got(s3_dest, dst, "k") == new
    assert a.find(r"INFO s3s3\.copy\.proof: Copying 'k' to dest1:\S+ again: another copy ran at the same time, .+")
    assert client.xlen("s3s3:failed") == 0
    client.close()


def test_a_copy_that_lands_after_another_listener_propagated_the_key_s_delete_is_deleted_again(
    s3_source: Server,
    s3_dest: Server,
    proxies: Callable[[Server], FaultProxy],
    private_redis: Callable[..., RedisServer],
    spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:
    # Given a listener A with one worker whose PUT of "k" stalls at a destination with propagate_deletes
    server = private_redis()
    client = redis.Redis.from_url(server.url)
    proxy = proxies(s3_dest)
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    s3_source.client().put_object(Bucket=src, Key="k", Body=b"deleted soon " * 1000)
    held = hold_first_put(proxy, "/k")
    settings = stream_pubsub(server.url, workers=1, claim_idle=30)
    config = write_config(tmp_path, (s3_source, src), [(via(s3_dest, proxy), dst, {"propagate_deletes": "true"})],
                          settings)  # fmt: skip
    a = start_listener(spawn, config)
    announce(client, "stream", config.pubsub.stream, ["k"])
    wait_until(held.is_set, timeout=20)

    # When "k" is deleted at the source and listener B propagates the delete while A's PUT stalls
    s3_source.client().delete_object(Bucket=src, Key="k")
    b = start_listener(spawn, config)
    announce(client, "stream", config.pubsub.stream, [json.dumps({"Records": [record("aws", src, "k",
                                                                                     "ObjectRemoved:Delete")]})])
    wait_until(lambda: b.find(r"INFO s3s3\.copy: Deleted 'k' at dest1:\S+ in \S+"), timeout=20)

    # And A's stalled PUT lands after it
    proxy.gate.set()

    # Then A finds the key gone from the source and deletes it again: the destination does not keep it
    wait_until(lambda: pending(client, config.pubsub.stream) == 0, timeout=30)
    assert "k" not in listing(s3_dest, dst)
    assert len(a.find(r"INFO s3s3\.copy: Deleted 'k' at dest1:\S+ in \S+")) == 1
    assert client.xlen("s3s3:failed") == 0
    client.close()


def test_a_bucket_sync_whose_older_copy_lands_after_a_listener_copied_the_newest_copies_it_again(
    s3_source: Server,
    s3_dest: Server,
    proxies: Callable[[Server], FaultProxy],
    private_redis: Callable[..., RedisServer],
    spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:
    # Given s3s3bucket copying version 1 of "k" (registered with its page, ended with its batch), its PUT stalled
    server = private_redis()
    client = redis.Redis.from_url(server.url)
    proxy = proxies(s3_dest)
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    old, new = b"version 1 " * 1000, b"version 2, the newest " * 1000
    others = random_objects("other/", 20)
    put_objects(s3_source, src, {**others, "k": old})
    held = hold_first_put(proxy, "/k")
    settings = stream_pubsub(server.url, workers=2, claim_idle=30)
    config = write_config(tmp_path, (s3_source, src), [(via(s3_dest, proxy), dst, {})], settings)
    sync = spawn("s3s3bucket", "--config", config.path)
    wait_until(held.is_set, timeout=20)

    # When "k" is overwritten with version 2 and a listener copies it while the sync's PUT stalls
    s3_source.client().put_object(Bucket=src, Key="k", Body=new)
    listener = start_listener(spawn, config)
    announce(client, "stream", config.pubsub.stream, ["k"])
    wait_until(lambda: listener.find(r"INFO s3s3\.copy: Copied 'k' to dest1:\S+: \d+ bytes in \S+"), timeout=20)
    assert got(s3_dest, dst, "k") == new

    # And the sync's stalled PUT of version 1 lands after it
    proxy.gate.set()

    # Then the sync finds the source moved on and copies "k" again: the destination ends with version 2
    assert sync.proc.wait(timeout=60) == 0
    assert got(s3_dest, dst, "k") == new
    assert sync.find(r"INFO s3s3\.copy\.proof: Copying 'k' to dest1:\S+ again: another copy ran at the same time, .+")
    assert fetched_md5s(s3_dest, dst, others) == md5s(others)
    assert not client.keys("s3s3:copying:*")  # every registration ended
    client.close()


# --- 3. a busy listener keeps its entries ------------------------------------------------------


def test_entries_of_a_listener_whose_workers_are_all_blocked_past_claim_idle_are_not_claimed_by_another(
    s3_source: Server,
    s3_dest: Server,
    proxies: Callable[[Server], FaultProxy],
    private_redis: Callable[..., RedisServer],
    spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:
    # Given listener A with two workers, both blocked in PUTs a throttling destination holds for 3x claim_idle
    server = private_redis()
    client = redis.Redis.from_url(server.url)
    proxy = proxies(s3_dest)
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    objects = random_objects("busy/", 2)
    put_objects(s3_source, src, objects)
    proxy.hold = lambda method, path: method == "PUT"
    settings = stream_pubsub(server.url, workers=2, claim_idle=2)
    config = write_config(tmp_path, (s3_source, src), [(via(s3_dest, proxy), dst, {})], settings)
    a = start_listener(spawn, config)
    announce(client, "stream", config.pubsub.stream, objects)
    wait_until(lambda: sum(proxy.puts_at_once.values()) == 2, timeout=20)

    # When listener B runs beside it for three times claim_idle while A's workers stay blocked
    b = start_listener(spawn, config)
    deadline = time.monotonic() + 6.0
    while time.monotonic() < deadline:
        assert b.find(r"WARNING s3s3\.listen\.delivery: Claimed .+") == [], "B claimed an entry A was working on"
        time.sleep(0.1)

    # Then B claimed nothing; once the destination answers, A copies each key exactly once
    proxy.gate.set()
    wait_until(all_arrived(s3_dest, dst, objects), timeout=20)
    wait_until(lambda: pending(client, config.pubsub.stream) == 0, timeout=20)
    assert b.find(r"WARNING s3s3\.listen\.delivery: Claimed .+") == []
    assert {key: proxy.count("PUT", f"/{key}") for key in objects} == {key: 1 for key in objects}
    assert fetched_md5s(s3_dest, dst, objects) == md5s(objects)
    assert a.alive() and b.alive()
    client.close()


# --- 4. a listener under cut answers: every message acknowledged, none stuck ---------------------


def test_a_listener_whose_reads_are_cut_copies_every_key_and_leaves_nothing_pending_or_unexplained(
    s3_source: Server,
    s3_dest: Server,
    proxies: Callable[[Server], FaultProxy],
    private_redis: Callable[..., RedisServer],
    spawn: Callable[..., Proc],
    tmp_path: Path,
) -> None:
    # Given a source that cuts 40 % of GET answers mid-body (FIN or RST), and keys that it always cuts
    server = private_redis()
    client = redis.Redis.from_url(server.url)
    proxy = proxies(s3_source)
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    good = random_objects("good/", 40, 2048, 65536)
    hopeless = random_objects("hopeless/", 2, 2048, 4096)
    put_objects(s3_source, src, {**good, **hopeless})
    proxy.faults, proxy.rate = ("fin", "rst"), 1.0
    proxy.only = lambda method, path, query: method == "GET" and "/hopeless/" in path
    settings = stream_pubsub(server.url, workers=4, claim_idle=5, max_retry_seconds=3)
    config = write_config(tmp_path, (via(s3_source, proxy), src), [(s3_dest, dst, {})], settings)
    listener = start_listener(spawn, config)

    # When every key is announced
    announce(client, "stream", config.pubsub.stream, [*good, *hopeless])

    # Then every good key arrives whole, every hopeless one is dead-lettered, and nothing stays pending
    wait_until(all_arrived(s3_dest, dst, good), timeout=60)
    wait_until(lambda: client.xlen("s3s3:failed") == 2, timeout=60)
    wait_until(lambda: pending(client, config.pubsub.stream) == 0, timeout=20)
    assert fetched_md5s(s3_dest, dst, good) == md5s(good)
    assert sorted(f[b"key"].decode() for _, f in client.xrange("s3s3:failed")) == sorted(hopeless)
    assert set(listing(s3_dest, dst)) == set(good)
    assert listener.find(r".*Unexpected error.*") == []
    assert proxy.counts["fin"] + proxy.counts["rst"] >= 4
    client.close()


def test_s3s3bucket_exits_1_listing_a_key_whose_every_read_is_cut(
    s3_source: Server,
    s3_dest: Server,
    proxies: Callable[[Server], FaultProxy],
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    # Given one key whose every GET is cut mid-body, beside keys that copy fine
    proxy = proxies(s3_source)
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    fine = random_objects("fine/", 3)
    put_objects(s3_source, src, {**fine, "cut/always.bin": os.urandom(50_000)})
    proxy.faults, proxy.rate = ("fin",), 1.0
    proxy.only = lambda method, path, query: method == "GET" and path.endswith("/cut/always.bin")
    settings = {"url": redis_server.url, "max_retry_seconds": 2}
    config = write_config(tmp_path, (via(s3_source, proxy), src), [(s3_dest, dst, {})], settings)

    # When s3s3bucket runs
    run = subprocess.run([str(BIN / "s3s3bucket"), "--config", config.path], capture_output=True, text=True,
                         timeout=60)  # fmt: skip

    # Then it copied the rest, names the key it could not copy, and exits 1
    assert run.returncode == 1, run.stderr
    assert f"failed: 'cut/always.bin' to dest1:{dst}: " in run.stdout
    assert "copied 3, skipped 0 as identical, missing 0, failed 1" in run.stdout
    assert fetched_md5s(s3_dest, dst, fine) == md5s(fine)


# --- 5. uploads s3s3 could not abort -------------------------------------------------------------


def test_abort_incomplete_uploads_aborts_old_uploads_of_keys_the_source_holds_and_says_what_it_would_in_a_dry_run(
    s3_source: Server, s3_dest: Server, redis_server: RedisServer, tmp_path: Path
) -> None:
    # Given uploads left at the destination: one of a key the source holds, one of a key it does not
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    s3_source.client().put_object(Bucket=src, Key="kept/held.bin", Body=b"x")
    s3_dest.client().put_object(Bucket=dst, Key="kept/held.bin", Body=b"x")
    dest = s3_dest.client()
    for key in ("kept/held.bin", "not/at/source.bin"):
        dest.create_multipart_upload(Bucket=dst, Key=key)
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst, {})], {"url": redis_server.url})

    def s3s3bucket(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "s3s3bucket"), "--config", config.path, *args], capture_output=True,
                              text=True, timeout=60)  # fmt: skip

    # (moto says every upload began in 2010, so "older than" is tested on real stores, in test_compat.py)
    # When a dry run asks for any age: it says what it would abort, and aborts nothing
    dry = s3s3bucket("--abort-incomplete-uploads", "0", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would abort the upload of 'kept/held.bin' at dest1:{dst}" in dry.stdout
    assert "not/at/source.bin" not in dry.stdout
    assert sorted(pending_uploads(s3_dest, dst)) == ["kept/held.bin", "not/at/source.bin"]

    # When it runs for real
    run = s3s3bucket("--abort-incomplete-uploads", "0s")

    # Then the upload of the key the source holds is aborted, the other left to its owner
    assert run.returncode == 0, run.stderr
    assert "aborted 1 incomplete upload(s)" in run.stdout
    assert pending_uploads(s3_dest, dst) == ["not/at/source.bin"]
    assert hashlib.md5(got(s3_dest, dst, "kept/held.bin")).hexdigest() == hashlib.md5(b"x").hexdigest()
