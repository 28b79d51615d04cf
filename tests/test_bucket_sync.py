"""s3s3bucket end to end: every option against a real redis-server and two moto servers.

tests/test_bucket.py covers the diff and the basic copy; these prove the
options (--delete, --dry-run, filters, shards, --reverse, --enqueue,
--verify-md5), the ledger (by counting the requests each moto server saw),
the lock, signals, and what s3s3bucket prints. Objects are checked by the MD5
of their bytes at the destination.

The module runs its own redis-server: the bucket sync retries every entry of
the dead-letter stream `s3s3:failed`, which other tests' listeners write to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from s3s3 import names
from s3s3.cli import _parser, bucket_once, main
from s3s3.config import Config, MiB
from s3s3.services import BucketClient
from s3s3.state import deadletter, ledger
from s3s3.store import META_ETAG, META_MD5, Page, Store, open_store
from s3s3.sync.lock import lock_name
from tests.helpers import RequestLog, endpoint_section, new_bucket, wait_until
from tests.servers.base import Server, free_port
from tests.servers.redis import RedisServer
from tests.stores import FaultyStore, answering, bucket_of, client_of

pytestmark = pytest.mark.timeout(90)

S3S3BUCKET = str(Path(sys.executable).with_name("s3s3bucket"))
# s3s3bucket with a shorter lock TTL (a test cannot wait the default minute for a dead run's lock).
SHORT_TTL = (
    "import sys, s3s3.sync.lock; s3s3.sync.lock.TTL = float(sys.argv[1]); "
    "from s3s3.cli import bucket_main; sys.exit(bucket_main(sys.argv[2:]))"
)
BIG = 11 * MiB  # over the 5 MiB part size: three parts at a destination that uploads in 5 MiB parts
PARTS_5MIB = {"multipart_threshold": "5MiB", "multipart_chunksize": "5MiB"}
SINGLE_PUT = {"multipart_threshold": "64MiB"}
# versions = all: counted for every destination (zeros where it keeps the latest version only)
VERSION_TALLIES = (
    "versions_copied", "markers_replayed", "versions_missed", "versions_deleted", "versions_mapped", "versions_headed",
    "lease_waits",
)  # fmt: skip
SUMMARY_TYPES = {
    "checked": int, "copied": int, "skipped": int, "missing": int, "failed": int, "deleted": int, "enqueued": int,
    "aborted": int, "bytes": int, "retried": int, "seconds": (int, float), "dry_run": bool, "interrupted": bool,
    "failures": list, "errors": list, "destinations": dict, **dict.fromkeys(VERSION_TALLIES, int),
}  # fmt: skip
NO_VERSIONS = dict.fromkeys(VERSION_TALLIES, 0)
DEST_FIELDS = ("checked", "copied", "skipped", "missing", "failed", "deleted", "enqueued", "aborted", "bytes",
               *VERSION_TALLIES)  # fmt: skip
PROGRESS = re.compile(r"listed \d+ keys; copied \d+/\d+ \([\d.]+/[\d.]+ MiB\) at [\d.]+ MiB/s, ETA \S+")

World = Callable[..., tuple[Config, Store, list[Store]]]


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(str(tmp_path_factory.mktemp("redis-bucket-sync"))).start()
    yield server
    server.stop()


@pytest.fixture
def r(own_redis: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(own_redis.url)


@pytest.fixture(autouse=True)
def _restore_logging_and_signals() -> Iterator[None]:
    """main() sets up logging and SIGTERM/SIGINT handlers; give the next test what it had."""
    root = logging.getLogger()
    handlers, level, s3s3_level = root.handlers[:], root.level, logging.getLogger("s3s3").level
    signals = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("s3s3").setLevel(s3s3_level)
    for signum, handler in signals.items():
        signal.signal(signum, handler)


@pytest.fixture
def world(tmp_path: Path, s3_source: Server, s3_dest: Server, own_redis: RedisServer) -> World:
    """Fresh buckets and an s3s3.ini for them: `world(dests=[{}, {...}])`, one options dict per destination."""

    def make(
        dests: int | list[dict[str, Any]] = 1,
        source_extra: dict[str, Any] | None = None,
        pubsub_extra: dict[str, Any] | None = None,
        redis_url: str | None = None,
    ) -> tuple[Config, Store, list[Store]]:
        extras = [{}] * dests if isinstance(dests, int) else dests
        text = endpoint_section("source", s3_source, new_bucket(s3_source, "src"), **(source_extra or {}))
        for i, extra in enumerate(extras, start=1):
            text += endpoint_section(f"dest{i}", s3_dest, new_bucket(s3_dest, "dst"), **extra)
        text += f"[pubsub]\nurl = {redis_url or own_redis.url}\nchannel = ch-{uuid.uuid4().hex[:8]}\n"
        text += "".join(f"{k} = {v}\n" for k, v in (pubsub_extra or {}).items())
        path = tmp_path / f"s3s3-{uuid.uuid4().hex[:8]}.ini"
        path.write_text(text)
        config = Config.from_file(path)
        return config, open_store(config.source), [open_store(d) for d in config.dests]

    return make


# -- helpers -------------------------------------------------------------------------------------


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def put(bucket: Store, key: str, data: bytes, **extra: Any) -> None:
    client_of(bucket).put_object(Bucket=bucket_of(bucket), Key=key, Body=data, **extra)


def put_many(bucket: Store, objects: dict[str, bytes]) -> None:
    with ThreadPoolExecutor(8) as pool:  # botocore's pool holds 10 connections
        list(pool.map(lambda item: put(bucket, *item), objects.items()))


def put_multipart(bucket: Store, key: str, data: bytes, part_size: int, metadata: dict[str, str] | None = None) -> str:
    """Upload `data` in parts of `part_size`; return the object's ETag (`md5-of-md5s-N`)."""
    client = client_of(bucket)
    upload = client.create_multipart_upload(Bucket=bucket_of(bucket), Key=key, Metadata=metadata or {})["UploadId"]
    parts = []
    for number, start in enumerate(range(0, len(data), part_size), start=1):
        part = client.upload_part(
            Bucket=bucket_of(bucket), Key=key, UploadId=upload, PartNumber=number, Body=data[start : start + part_size]
        )
        parts.append({"PartNumber": number, "ETag": part["ETag"]})
    done = client.complete_multipart_upload(
        Bucket=bucket_of(bucket), Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    return done["ETag"].strip('"')


def listing(bucket: Store) -> dict[str, tuple[int, str]]:
    """Every key with its size and ETag, as the store lists them."""
    pages = client_of(bucket).get_paginator("list_objects_v2").paginate(Bucket=bucket_of(bucket))
    return {o["Key"]: (o["Size"], o["ETag"].strip('"')) for page in pages for o in page.get("Contents", [])}


def md5s(bucket: Store) -> dict[str, str]:
    """Every key with the MD5 of the bytes a GET returns."""
    client = client_of(bucket)

    def read(key: str) -> str:
        return md5(client.get_object(Bucket=bucket_of(bucket), Key=key)["Body"].read())

    keys = sorted(listing(bucket))
    with ThreadPoolExecutor(8) as pool:
        return dict(zip(keys, pool.map(read, keys), strict=True))


def bucket_cli(capsys: pytest.CaptureFixture[str], config: Config, *args: str) -> tuple[int, str, str]:
    """Run `s3s3bucket --config ... ARGS` in this process; return (exit code, stdout, stderr)."""
    code = main(["bucket", "--config", str(config.path), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def bucket_process(config: Config, *args: str, ttl: float | None = None, **popen: Any) -> subprocess.Popen[str]:
    """Start s3s3bucket as a process (with a lock TTL of `ttl` seconds when given)."""
    argv = [S3S3BUCKET] if ttl is None else [sys.executable, "-c", SHORT_TTL, str(ttl)]
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([*argv, "--config", str(config.path), *args], text=True, **popen)


def the_lock(config: Config) -> str:
    return lock_name(open_store(config.source), [open_store(d) for d in config.dests])


def check_types(summary: dict[str, Any], dests: list[Store]) -> None:
    """The --json summary has every documented field with its type, and one entry per destination."""
    assert set(summary) == set(SUMMARY_TYPES)
    for name, kind in SUMMARY_TYPES.items():
        assert isinstance(summary[name], kind) and not (kind is int and isinstance(summary[name], bool)), name
    assert set(summary["destinations"]) == {d.endpoint.label for d in dests}
    for counts in summary["destinations"].values():
        assert set(counts) == set(DEST_FIELDS)
        assert all(type(v) is int for v in counts.values())
    for failure in summary["failures"]:
        assert set(failure) == {"dest", "key", "error"}


def only_listings(requests: list[tuple[str, str]], bucket: str) -> bool:
    listing = (f"/{bucket}?list-type=2", f"/{bucket}/?list-type=2")  # boto3's form, and the lean path's
    return bool(requests) and all(m == "GET" and p.startswith(listing) for m, p in requests)


# -- what gets copied and deleted ----------------------------------------------------------------


def test_missing_and_changed_keys_reach_every_destination_and_extra_ones_go_only_with_delete(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two destinations, each with a stale key, an identical key and an extra key
    config, source, dests = world(dests=2)
    wanted = {"changed.txt": b"new bytes, longer than the old", "missing.txt": b"only at the source",
              "same.txt": b"identical everywhere"}  # fmt: skip
    put_many(source, wanted)
    for dest in dests:
        put_many(dest, {"changed.txt": b"old bytes", "same.txt": wanted["same.txt"], "extra.txt": b"extra"})

    # When s3s3bucket runs without --delete
    code, out, _ = bucket_cli(capsys, config, "--json")

    # Then missing and changed keys are copied, the identical one skipped, the extra one kept
    assert code == 0
    summary = json.loads(out)
    check_types(summary, dests)
    copied_bytes = len(wanted["changed.txt"]) + len(wanted["missing.txt"])
    per_dest = {"checked": 3, "copied": 2, "skipped": 1, "missing": 0, "failed": 0, "deleted": 0, "enqueued": 0,
                "aborted": 0, "bytes": copied_bytes, **NO_VERSIONS}  # fmt: skip
    assert summary["destinations"] == {d.endpoint.label: per_dest for d in dests}
    for dest in dests:
        assert md5s(dest) == {**{k: md5(v) for k, v in wanted.items()}, "extra.txt": md5(b"extra")}

    # When it runs again with --delete
    code, out, _ = bucket_cli(capsys, config, "--json", "--delete")

    # Then only the extra keys go, and nothing is copied
    assert code == 0
    summary = json.loads(out)
    check_types(summary, dests)
    assert (summary["copied"], summary["skipped"], summary["deleted"]) == (0, 6, 2)
    for dest in dests:
        assert md5s(dest) == {k: md5(v) for k, v in wanted.items()}


def test_multipart_etags_that_differ_are_proven_unchanged_by_the_ledger_with_listings_only(
    world: World, capsys: pytest.CaptureFixture[str], r: redis.Redis, s3_source: Server, s3_dest: Server
) -> None:
    # Given an 11 MiB key PUT whole (plain MD5 ETag) and one uploaded in 6 MiB parts (ETag ...-2),
    # a destination that stores in 5 MiB parts (...-3) and one that stores in one PUT (plain MD5)
    config, source, dests = world(dests=[PARTS_5MIB, SINGLE_PUT])
    whole, parted = os.urandom(BIG), os.urandom(BIG)
    put(source, "whole.bin", whole)
    assert put_multipart(source, "parted.bin", parted, 6 * MiB).endswith("-2")
    code, _, _ = bucket_cli(capsys, config)
    assert code == 0
    parts, single = dests
    # (parted.bin went part for part, in its own 6 MiB parts: the same ETag as the source's)
    assert {k: etag[-2:] for k, (_, etag) in listing(parts).items()} == {"parted.bin": "-2", "whole.bin": "-3"}
    assert listing(single)["parted.bin"][1] == md5(parted)
    for dest in dests:
        assert md5s(dest) == {"parted.bin": md5(parted), "whole.bin": md5(whole)}

    # When s3s3bucket runs again
    logs = RequestLog(s3_source), RequestLog(s3_dest)
    code, out, _ = bucket_cli(capsys, config, "--json")

    # Then nothing is copied, and both servers saw listings only: no GET, no HEAD of any key
    assert code == 0
    assert (json.loads(out)["copied"], json.loads(out)["skipped"]) == (0, 4)
    assert only_listings(logs[0].requests(bucket_of(source)), bucket_of(source))
    for dest in dests:
        assert only_listings(logs[1].requests(bucket_of(dest)), bucket_of(dest))

    # Given the ledger entries of these destinations are gone (only these keys: others' data stays)
    undecided = {bucket_of(parts): ["whole.bin"], bucket_of(single): ["parted.bin"]}
    # (every copy was recorded but whole.bin on the single-PUT destination: the same plain MD5 on
    # both sides, which the listings decide)
    recorded = {bucket_of(parts): ["parted.bin", "whole.bin"], bucket_of(single): ["parted.bin"]}
    for dest in dests:
        assert sorted(k.decode() for k in r.hkeys(ledger.ledger_key(dest))) == recorded[bucket_of(dest)]
        assert r.delete(ledger.ledger_key(dest)) == 1

    # When s3s3bucket runs again
    logs = RequestLog(s3_source), RequestLog(s3_dest)
    code, out, _ = bucket_cli(capsys, config, "--json")

    # Then one HEAD per key the listings cannot decide settles it: nothing read, nothing copied
    assert code == 0
    assert (json.loads(out)["copied"], json.loads(out)["skipped"]) == (0, 4)
    assert only_listings(logs[0].requests(bucket_of(source)), bucket_of(source))
    for dest in dests:
        requests = logs[1].requests(bucket_of(dest))
        heads = sorted(p.rsplit("/", 1)[1] for m, p in requests if m == "HEAD")
        assert heads == undecided[bucket_of(dest)]
        assert only_listings([q for q in requests if q[0] != "HEAD"], bucket_of(dest))
        # and the ledger knows them again
        assert sorted(k.decode() for k in r.hkeys(ledger.ledger_key(dest))) == undecided[bucket_of(dest)]

    # When it runs once more, listings suffice again
    logs = RequestLog(s3_source), RequestLog(s3_dest)
    assert bucket_cli(capsys, config)[0] == 0
    for dest in dests:
        assert only_listings(logs[1].requests(bucket_of(dest)), bucket_of(dest))


def test_dry_run_changes_nothing_and_says_what_it_would_copy_and_delete(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a missing key, a changed key and an extra key
    config, source, (dest,) = world()
    put_many(source, {"new.txt": b"new", "changed.txt": b"changed bytes"})
    put_many(dest, {"changed.txt": b"old", "extra.txt": b"extra"})
    before = listing(source), listing(dest)

    # When s3s3bucket runs with --dry-run --delete
    code, out, _ = bucket_cli(capsys, config, "--dry-run", "--delete")

    # Then it lists each action, and neither bucket changed
    assert code == 0
    label = dest.endpoint.label
    assert f"would copy 'changed.txt' to {label} (changed)" in out
    assert f"would copy 'new.txt' to {label} (missing)" in out
    assert f"would delete 'extra.txt' at {label}" in out
    assert "checked 2 keys: would copy 2, skipped 0 as identical, missing 0, failed 0, would delete 1" in out
    assert (listing(source), listing(dest)) == before


def test_delete_over_max_delete_deletes_nothing_and_exits_1_and_max_delete_0_has_no_limit(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a destination with three keys the source does not have
    config, source, (dest,) = world()
    put(source, "kept.txt", b"kept")
    put_many(dest, {f"extra-{i}.txt": b"x" for i in range(3)})

    # When s3s3bucket runs with --delete --max-delete 2
    code, out, _ = bucket_cli(capsys, config, "--delete", "--max-delete", "2")

    # Then it deletes none, names the limit and exits 1 (the copy still happened)
    assert code == 1
    assert f"error: {dest.endpoint.label}: refusing to delete more than 2 keys" in out
    assert sorted(listing(dest)) == ["extra-0.txt", "extra-1.txt", "extra-2.txt", "kept.txt"]

    # When it runs with --max-delete 0
    code, out, _ = bucket_cli(capsys, config, "--delete", "--max-delete", "0")

    # Then every extra key goes
    assert code == 0, out
    assert md5s(dest) == {"kept.txt": md5(b"kept")}


def test_prefix_include_and_exclude_limit_what_is_copied_and_deleted(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given keys in and out of a prefix, of two kinds, one of them excluded
    config, source, (dest,) = world()
    put_many(source, {"a/1.jpg": b"1", "a/2.txt": b"2", "a/skip.jpg": b"s", "b/3.jpg": b"3"})
    put_many(dest, {"a/old.jpg": b"o", "a/old.txt": b"t", "a/skip-old.jpg": b"k", "b/old.jpg": b"b"})

    # When s3s3bucket runs with --prefix a/ --include '*.jpg' --exclude '*skip*' --delete
    code, _, _ = bucket_cli(
        capsys, config, "--prefix", "a/", "--include", "*.jpg", "--exclude", "*skip*", "--delete"
    )

    # Then only matching keys were copied or deleted
    assert code == 0
    assert md5s(dest) == {"a/1.jpg": md5(b"1"), "a/old.txt": md5(b"t"), "a/skip-old.jpg": md5(b"k"),
                          "b/old.jpg": md5(b"b")}  # fmt: skip


def test_shards_together_copy_every_key_exactly_once(
    world: World, capsys: pytest.CaptureFixture[str], s3_dest: Server
) -> None:
    # Given 30 keys
    config, source, (dest,) = world()
    objects = {f"key-{i:02d}": os.urandom(64) for i in range(30)}
    put_many(source, objects)
    log = RequestLog(s3_dest)

    # When three runs each take one shard of three
    copied = []
    for i in range(3):
        code, out, _ = bucket_cli(capsys, config, "--json", "--shard", f"{i}/3")
        assert code == 0
        copied.append(json.loads(out)["copied"])

    # Then together they copied every key, each one exactly once
    assert sum(copied) == 30
    assert md5s(dest) == {k: md5(v) for k, v in objects.items()}
    puts = sorted(p.rsplit("/", 1)[1] for m, p in log.requests(bucket_of(dest)) if m == "PUT")
    assert puts == sorted(objects)


def test_shards_of_one_sync_run_at_once_while_the_same_shard_runs_only_once(
    world: World, capsys: pytest.CaptureFixture[str], r: redis.Redis
) -> None:
    # Given shard 0/2 of a sync running (paused while it holds its lock)
    config, source, (dest,) = world()
    objects = {f"key-{i:03d}": os.urandom(64) for i in range(120)}
    put_many(source, objects)
    buckets = open_store(config.source), [open_store(d) for d in config.dests]
    first = bucket_process(config, "--shard", "0/2", "--workers", "1")
    try:
        wait_until(lambda: r.exists(lock_name(*buckets, shard=(0, 2))), interval=0.01)
        os.kill(first.pid, signal.SIGSTOP)

        # When shard 1/2 and another shard 0/2 start
        code_1, out_1, _ = bucket_cli(capsys, config, "--shard", "1/2", "--json")
        code_0, out_0, _ = bucket_cli(capsys, config, "--shard", "0/2")
    finally:
        os.kill(first.pid, signal.SIGCONT)
        first.communicate(timeout=60)

    # Then shard 1/2 copies its keys, and the second shard 0/2 says one is already running
    assert (code_1, code_0, first.returncode) == (0, 0, 0)
    assert 0 < json.loads(out_1)["copied"] < 120
    assert out_0.startswith("s3s3bucket: already running since "), out_0
    assert md5s(dest) == {k: md5(v) for k, v in objects.items()}


# -- the lock, and runs that die or are stopped -------------------------------------------------


def test_a_second_run_while_the_first_holds_the_lock_says_so_and_exits_0(
    world: World, r: redis.Redis
) -> None:
    # Given a run busy copying 120 keys, paused while it holds the lock
    config, source, (dest,) = world()
    objects = {f"k{i:03d}": os.urandom(100) for i in range(120)}
    put_many(source, objects)
    lock = the_lock(config)
    first = bucket_process(config, "--workers", "2")
    try:
        wait_until(lambda: r.exists(lock), interval=0.01)
        os.kill(first.pid, signal.SIGSTOP)

        # When a second run starts
        second = subprocess.run([S3S3BUCKET, "--config", str(config.path)], capture_output=True, text=True,
                                timeout=60, check=False)  # fmt: skip

        # Then it says who runs since when, and exits 0 without copying
        assert second.returncode == 0, second.stderr
        assert re.fullmatch(
            rf"s3s3bucket: already running since \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(host \S+, pid {first.pid}\); "
            r"not starting another\n",
            second.stdout,
        ), second.stdout
    finally:
        os.kill(first.pid, signal.SIGCONT)
        out, err = first.communicate(timeout=60)

    # And the first run finishes the job and releases the lock
    assert first.returncode == 0, err
    assert out.startswith("checked 120 keys: copied 120,")
    assert not PROGRESS.search(err)  # stderr is a pipe: no progress line
    assert not r.exists(lock)
    assert md5s(dest) == {k: md5(v) for k, v in objects.items()}


def test_a_run_killed_mid_copy_leaves_no_partial_object_and_a_lock_that_expires_then_a_rerun_completes(
    world: World, r: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two 11 MiB keys (5 MiB parts at the destination) and 40 small ones
    config, source, (dest,) = world(dests=[PARTS_5MIB])
    objects = {f"a-big-{i}": os.urandom(BIG) for i in range(2)} | {f"b-{i:02d}": os.urandom(1000) for i in range(40)}
    put_many(source, objects)
    lock = the_lock(config)

    # When a run (lock TTL 3 s) is killed once some keys have arrived
    run = bucket_process(config, "--workers", "4", ttl=3.0, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: len(listing(dest)) >= 2, interval=0.02)
    finally:
        run.kill()
        run.wait(timeout=10)

    # Then its lock outlives it by at most its TTL
    assert 0 < r.pttl(lock) <= 3000
    wait_until(lambda: not r.exists(lock), timeout=10)

    # And the objects there are whole (a multipart copy becomes visible only once complete)
    arrived = md5s(dest)
    assert 2 <= len(arrived) < len(objects)
    assert all(arrived[k] == md5(objects[k]) for k in arrived)

    # When s3s3bucket runs again
    code, out, _ = bucket_cli(capsys, config)

    # Then every key is there, whole
    assert code == 0, out
    assert md5s(dest) == {k: md5(v) for k, v in objects.items()}


def test_sigterm_stops_listing_finishes_copies_in_flight_and_exits_1_interrupted(
    world: World, r: redis.Redis
) -> None:
    # Given a run copying 400 keys
    config, source, (dest,) = world()
    objects = {f"k{i:04d}": os.urandom(100) for i in range(400)}
    put_many(source, objects)
    run = bucket_process(config, "--workers", "2")

    # When it gets SIGTERM once a few keys have arrived
    try:
        wait_until(lambda: len(listing(dest)) >= 5, interval=0.02)
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=60)
    finally:
        run.kill()

    # Then it stopped early, every copy it started is whole and counted, and it says it was interrupted
    assert run.returncode == 1, err
    line = out.splitlines()[0]
    assert line.endswith(" (interrupted)"), out
    copied = int(re.search(r"copied (\d+),", line)[1])  # type: ignore[index]
    arrived = md5s(dest)
    assert len(arrived) == copied < 100
    assert all(arrived[k] == md5(objects[k]) for k in arrived)
    assert not r.exists(the_lock(config))


# -- --reverse, --verify-md5, dead letters, --enqueue ---------------------------------------------


def test_reverse_restores_deleted_source_keys_from_one_destination_and_never_deletes_at_the_source(
    world: World, capsys: pytest.CaptureFixture[str], r: redis.Redis
) -> None:
    # Given two synced destinations, then two keys lost at the source and one new there
    config, source, dests = world(dests=2)
    objects = {"a.txt": b"a", "b/c.txt": b"c", "d.txt": b"d"}
    put_many(source, objects)
    assert bucket_cli(capsys, config)[0] == 0
    gone = {"Objects": [{"Key": "a.txt"}, {"Key": "b/c.txt"}]}
    client_of(source).delete_objects(Bucket=bucket_of(source), Delete=gone)
    put(source, "new.txt", b"new")
    # and a dead-lettered key, meant for the forward direction
    r.delete(names.DEADLETTER)
    deadletter.record_failure(r, "d.txt", dests[0].endpoint.label, "boom", 3)

    # When s3s3bucket --reverse --dest dest1 runs
    code, out, _ = bucket_cli(capsys, config, "--reverse", "--dest", "dest1")

    # Then the lost keys are back at the source, the new key stays, the destinations are as they were
    assert code == 0, out
    assert md5s(source) == {k: md5(v) for k, v in {**objects, "new.txt": b"new"}.items()}
    for dest in dests:
        assert md5s(dest) == {k: md5(v) for k, v in objects.items()}
    # and the dead letter is left for a forward run
    assert r.xlen(names.DEADLETTER) == 1
    r.delete(names.DEADLETTER)

    # When --reverse comes with --delete, or without naming one destination
    code, _, err = bucket_cli(capsys, config, "--reverse", "--dest", "dest1", "--delete")
    assert code == 2
    assert "--reverse never deletes at the source: drop --delete" in err
    code, _, err = bucket_cli(capsys, config, "--reverse")
    assert code == 2
    assert "--reverse restores from one destination: name it with --dest" in err


def test_verify_md5_finds_a_multipart_copy_changed_behind_s3s3s_back_and_copies_it_again(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an 11 MiB key copied in 5 MiB parts (its ETag is no MD5)
    config, source, (dest,) = world(dests=[PARTS_5MIB])
    data = os.urandom(BIG)
    put(source, "big.bin", data)
    assert bucket_cli(capsys, config)[0] == 0

    # And the copy overwritten, same size, same parts, same s3s3 metadata, other bytes
    metadata = client_of(dest).head_object(Bucket=bucket_of(dest), Key="big.bin")["Metadata"]
    assert set(metadata) >= {META_MD5, META_ETAG}
    put_multipart(dest, "big.bin", os.urandom(BIG), 5 * MiB, metadata=metadata)

    # When s3s3bucket runs without --verify-md5, the metadata vouches for the copy
    code, out, _ = bucket_cli(capsys, config)
    assert code == 0
    assert out.startswith("checked 1 keys: copied 0, skipped 1 as identical")

    # When it runs with --verify-md5
    code, out, err = bucket_cli(capsys, config, "--verify-md5")

    # Then it reads the copy, reports the mismatch, and copies the key again
    assert code == 0, out
    assert re.search(rf"MD5 mismatch for 'big.bin' at {dest.endpoint.label}: source {md5(data)}, destination ", err)
    assert out.startswith("checked 1 keys: copied 1, skipped 0 as identical")
    assert md5s(dest) == {"big.bin": md5(data)}


def test_dead_lettered_keys_are_retried_first_and_removed_once_copied(
    world: World, capsys: pytest.CaptureFixture[str], r: redis.Redis
) -> None:
    # Given two keys in the dead-letter stream, and a third key nobody failed on
    config, source, (dest,) = world()
    objects = {"failed-1": b"one", "failed-2": b"two", "plain": b"three"}
    put_many(source, objects)
    r.delete(names.DEADLETTER)
    for key in ("failed-1", "failed-2"):
        deadletter.record_failure(r, key, dest.endpoint.label, "SlowDown", 5)

    # When s3s3bucket runs
    code, out, _ = bucket_cli(capsys, config)

    # Then the dead-lettered keys were retried (and said so), left the stream, and everything is there
    assert code == 0, out
    assert "retried 2" in out.splitlines()[0]
    assert r.xlen(names.DEADLETTER) == 0
    assert md5s(dest) == {k: md5(v) for k, v in objects.items()}


def test_enqueue_appends_needed_keys_to_the_stream_and_copies_nothing(
    world: World, capsys: pytest.CaptureFixture[str], r: redis.Redis
) -> None:
    # Given a stream-mode configuration, two keys missing at the destination and one already there
    stream = f"s3s3:test-events:{uuid.uuid4().hex[:8]}"
    config, source, (dest,) = world(pubsub_extra={"mode": "stream", "stream": stream})
    put_many(source, {"one": b"1", "two": b"2", "there": b"3"})
    put(dest, "there", b"3")

    # When s3s3bucket runs with --enqueue
    code, out, _ = bucket_cli(capsys, config, "--enqueue", "--json")

    # Then the two needed keys are in the stream, and nothing was copied
    assert code == 0
    summary = json.loads(out)
    assert (summary["enqueued"], summary["copied"], summary["skipped"]) == (2, 0, 1)
    assert [f[names.STREAM_FIELD.encode()] for _, f in r.xrange(stream)] == [b"one", b"two"]
    assert sorted(listing(dest)) == ["there"]
    r.delete(stream)

    # When the configuration uses pubsub mode, --enqueue is refused
    config, _, _ = world()
    code, _, err = bucket_cli(capsys, config, "--enqueue")
    assert code == 2
    assert "[pubsub] mode: --enqueue needs mode = stream or list" in err


# -- what s3s3bucket prints and writes -----------------------------------------------------------


def test_metrics_file_is_a_prometheus_textfile_of_the_sync(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given one key to copy and one already there
    config, source, (dest,) = world()
    put_many(source, {"new": b"12345", "old": b"kept"})
    put(dest, "old", b"kept")

    # When s3s3bucket runs with --metrics-file
    path = tmp_path / "s3s3bucket.prom"
    assert bucket_cli(capsys, config, "--metrics-file", str(path))[0] == 0

    # Then the file holds the s3s3_bucket_* metrics of that run
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }
    label = dest.endpoint.label
    assert samples[("s3s3_bucket_keys", (("dest", label), ("outcome", "copied")))] == 1
    assert samples[("s3s3_bucket_keys", (("dest", label), ("outcome", "skipped")))] == 1
    assert samples[("s3s3_bucket_keys", (("dest", label), ("outcome", "checked")))] == 2
    assert samples[("s3s3_bucket_bytes_copied", ())] == 5
    assert samples[("s3s3_bucket_ok", ())] == 1
    assert samples[("s3s3_bucket_seconds", ())] >= 0
    assert samples[("s3s3_bucket_last_run_timestamp_seconds", ())] > 1e9


def test_progress_is_drawn_on_a_terminal(world: World) -> None:
    # Given a key to copy
    config, source, _ = world()
    put(source, "k", b"x" * 1000)

    # When s3s3bucket runs with stderr on a pseudo-terminal
    master, slave = pty.openpty()
    run = bucket_process(config, "--log-level", "warning", stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not data:
            break
        seen += data
    os.close(master)
    out, _ = run.communicate(timeout=60)

    # Then stderr shows keys listed, copied and the rate and ETA
    assert run.returncode == 0
    assert PROGRESS.search(seen.decode()), seen
    assert re.search(r"listed 1 keys; copied 1/1 ", seen.decode()), seen
    assert out.startswith("checked 1 keys: copied 1,")


def swapped_first_two(page: Page) -> Page:
    """A listing page with its first two keys swapped: out of order."""
    objects = list(page.objects)
    if len(objects) >= 2:
        objects[0], objects[1] = objects[1], objects[0]
    return replace(page, objects=objects)


def test_a_store_listing_out_of_order_stops_the_sync_naming_it_and_deletes_nothing(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a source whose listing comes out of order, and destination keys that would look extra
    config, source, (dest,) = world()
    put_many(source, {"a": b"a", "b": b"b", "c": b"c"})
    put_many(dest, {"a": b"a", "b": b"b", "c": b"c", "z": b"z"})
    client = BucketClient(config)
    client.source = FaultyStore(client.source).on("list_page", answering(swapped_first_two))

    # When s3s3bucket runs with --delete --max-delete 0
    args = _parser().parse_args(["bucket", "--config", str(config.path), "--delete", "--max-delete", "0"])
    code, err = bucket_once(args, client, threading.Event()), capsys.readouterr().err

    # Then it exits 1 naming the endpoint and the remedy, and the destination is untouched
    assert code == 1
    assert f"s3s3: error: {source.endpoint.label} listed 'a' after a key that sorts later; " in err
    assert "try list_version = 1 for this endpoint" in err
    assert sorted(listing(dest)) == ["a", "b", "c", "z"]


def test_without_redis_the_sync_still_copies_and_warns_without_the_password(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a Redis URL with a password where nothing listens
    port = free_port()
    config, source, (dest,) = world(redis_url=f"redis://:SENTINEL-pw-77@127.0.0.1:{port}/0")
    put(source, "k", b"copied anyway")

    # When s3s3bucket runs
    code, out, err = bucket_cli(capsys, config)

    # Then it copies, warns naming the Redis without its password, and exits 0
    assert code == 0, err
    assert f"Cannot reach Redis at redis://:***@127.0.0.1:{port}/0" in err
    assert "SENTINEL-pw-77" not in out + err
    assert md5s(dest) == {"k": md5(b"copied anyway")}
