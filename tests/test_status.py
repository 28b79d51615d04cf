"""`s3s3 status`: the backlog; `s3s3 status KEY`: one key at the source and every destination, as printed."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from s3s3 import names
from s3s3.state.rates import SharedLimit
from s3s3.store import open_store
from s3s3.store.throttle import Pace
from s3s3.sync.bucket import duplicate_bucket
from s3s3.sync.options import SyncOptions
from tests.helpers import (
    new_bucket,
    write_config,
)
from tests.processes import BIN
from tests.servers.base import Server
from tests.servers.redis import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


# --- 10. s3s3 status KEY -----------------------------------------------------------------------


def test_given_a_key_when_s3s3_status_is_run_then_it_prints_every_side_and_exits_0_only_when_all_are_in_sync(
    s3_source: Server, s3_dest: Server, tmp_path: Path
) -> None:
    # Given a key at the source, copied intact to one destination and stale at the other
    src, dst1, dst2 = new_bucket(s3_source), new_bucket(s3_dest), new_bucket(s3_dest)
    body = b"the status of things\n"
    md5 = hashlib.md5(body).hexdigest()
    for server, bucket, data in ((s3_source, src, body), (s3_dest, dst1, body), (s3_dest, dst2, b"stale")):
        server.client().put_object(Bucket=bucket, Key="docs/a b.txt", Body=data)
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst1, {}), (s3_dest, dst2, {})],
                          {"url": "redis://127.0.0.1:1/0"})  # fmt: skip

    def status(key: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "s3s3"), "status", "--config", config.path, key], capture_output=True,
                              text=True, timeout=30)  # fmt: skip

    # When `s3s3 status` is asked about it
    done = status("docs/a b.txt")

    # Then it prints size, ETag and MD5 of each side, which are in sync, and exits 1
    stale = hashlib.md5(b"stale").hexdigest()
    assert (done.returncode, done.stderr) == (1, "")
    assert done.stdout.splitlines() == [
        f"source:{src}: 'docs/a b.txt', size 21, ETag {md5}, MD5 {md5}  (source)",
        f"dest1:{dst1}: 'docs/a b.txt', size 21, ETag {md5}, MD5 {md5}  (in sync)",
        f"dest2:{dst2}: 'docs/a b.txt', size 5, ETag {stale}, MD5 {stale}  (differs)",
    ]

    # When the stale copy is brought up to date, then it exits 0
    s3_dest.client().put_object(Bucket=dst2, Key="docs/a b.txt", Body=body)
    done = status("docs/a b.txt")
    assert done.returncode == 0 and done.stdout.splitlines()[-1].endswith("  (in sync)")

    # And a key missing at a destination is reported as missing, exit 1
    s3_source.client().put_object(Bucket=src, Key="new.txt", Body=b"new")
    done = status("new.txt")
    assert done.returncode == 1
    assert done.stdout.splitlines()[1:] == [f"dest1:{dst1}: not there  (missing)",
                                            f"dest2:{dst2}: not there  (missing)"]  # fmt: skip



def test_status_of_a_key_lists_its_versions_on_each_side_and_what_each_destination_version_replays(
    s3_source: Server, s3_dest: Server, tmp_path: Path
) -> None:
    # Given a key with two versions replayed to a destination with versions = all, and a third not yet
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    for server, bucket in ((s3_source, src), (s3_dest, dst)):
        server.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst, {"versions": "all"})],
                          {"url": "redis://127.0.0.1:1/0"})  # fmt: skip
    put = s3_source.client().put_object
    ids = [put(Bucket=src, Key="k", Body=body)["VersionId"] for body in (b"one", b"two!")]
    assert duplicate_bucket(open_store(config.source), [open_store(config.dests[0])],
                            options=SyncOptions(workers=2)).ok  # fmt: skip
    ids.append(put(Bucket=src, Key="k", Body=b"three")["VersionId"])

    # When `s3s3 status` is asked about it
    done = subprocess.run([str(BIN / "s3s3"), "status", "--config", config.path, "k"], capture_output=True,
                          text=True, timeout=30)  # fmt: skip

    # Then it lists the versions on each side, newest first, each copy with the source version it replays,
    # and says the destination lacks one: exit 1
    listed = s3_dest.client().list_object_versions(Bucket=dst)["Versions"]
    copies = [v["VersionId"] for v in listed]
    entry = r"    \S+  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  "
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1] == "  versions, newest first: 3"
    assert [line.split()[0] for line in lines[2:5]] == ids[::-1]
    assert re.fullmatch(entry + f"size 5, ETag {hashlib.md5(b'three').hexdigest()}", lines[2])
    assert lines[5].startswith(f"dest1:{dst}: 'k', size 4") and lines[5].endswith("(differs)")
    assert lines[6] == "  versions, newest first: 2"
    assert [line.split()[0] for line in lines[7:9]] == copies
    assert lines[7].endswith(f"(replays {ids[1]})") and lines[8].endswith(f"(replays {ids[0]})")
    assert lines[9:] == ["  history: 1 source entry to replay"]

# --- s3s3 status: the backlog ------------------------------------------------------------------


def test_given_a_stream_backlog_when_s3s3_status_is_run_without_a_key_then_it_prints_it_and_as_json(
    s3_source: Server, s3_dest: Server, tmp_path: Path, private_redis: Callable[..., RedisServer]
) -> None:
    # Given a stream with two entries, one of them delivered and not acknowledged, a dead letter, and a
    # destination that got its last copy 30 s ago while the other never got one
    server = private_redis()
    src, dst1, dst2 = new_bucket(s3_source), new_bucket(s3_dest), new_bucket(s3_dest)
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst1, {}), (s3_dest, dst2, {})],
                          {"url": server.url, "mode": "stream", "stream": "announced", "group": "g"})  # fmt: skip
    client = redis.Redis.from_url(server.url)
    client.xgroup_create("announced", "g", id="0", mkstream=True)
    client.xadd("announced", {"key": b"a"})
    client.xadd("announced", {"key": b"b"})
    client.xreadgroup("g", "listener-1", {"announced": ">"}, count=1)
    client.xadd(names.DEADLETTER, {"key": b"x"})
    copied = time.time() - 30
    client.zadd(names.LAST_COPIED, {f"dest1:{dst1}": copied})

    def status(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "s3s3"), "status", "--config", config.path, *args], capture_output=True,
                              text=True, timeout=30)  # fmt: skip

    # When `s3s3 status` is run with no key
    done = status()

    # Then it prints the mode, backlog, dead letters and each destination's last copy, and exits 0
    assert (done.returncode, done.stderr) == (0, "")
    lines = done.stdout.splitlines()
    assert lines[0].startswith("mode:            stream (group 'g' on 'announced' at redis://127.0.0.1:")
    assert lines[1:5] == [
        "waiting:         1 (not yet delivered to a listener)",
        "pending:         1 (delivered, not yet acknowledged)",
        lines[3],
        "listeners:       1",
    ]
    assert re.fullmatch(r"oldest pending:  \d+ s", lines[3])
    assert lines[5] == "dead letters:    1 (s3s3 failed lists them)"
    assert re.fullmatch(rf"last copy:       dest1:{dst1}: \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(3\d s ago\)", lines[6])
    assert lines[7:] == [f"last copy:       dest2:{dst2}: never"]

    # And --json gives the same for machines
    done = status("--json")
    assert done.returncode == 0
    doc = json.loads(done.stdout)
    assert {k: doc[k] for k in ("mode", "target", "waiting", "pending", "consumers", "dead_letters")} == {
        "mode": "stream", "target": "announced", "waiting": 1, "pending": 1, "consumers": 1, "dead_letters": 1,
    }  # fmt: skip
    assert doc["last_copied"] == {f"dest1:{dst1}": copied, f"dest2:{dst2}": None}

    # And a Redis that does not answer is a one-line error and exit 1
    server.stop()
    done = status()
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("s3s3: error: cannot read the backlog from redis://127.0.0.1:")
    assert len(done.stderr.splitlines()) == 1


def test_status_shows_each_limited_store_s_shared_rate_and_the_throttled_answers(
    s3_source: Server, s3_dest: Server, tmp_path: Path, redis_server: RedisServer
) -> None:
    # Given a destination limited to 50 requests a second, whose fleet lowered the rate after a SlowDown
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst, {"max_requests_per_second": 50})],
                          {"url": redis_server.url, "mode": "stream", "stream": f"s-{src}"})  # fmt: skip
    limit = SharedLimit(redis.Redis.from_url(redis_server.url), s3_dest.endpoint_url, Pace(50))
    limit.wait()
    limit.throttled()

    # When s3s3 status is run
    done = subprocess.run([str(BIN / "s3s3"), "status", "--config", str(config.path)], capture_output=True,
                          text=True, timeout=30)  # fmt: skip

    # Then it names the store, the rate in force against the configured one, and the throttled answers
    line = next(line for line in done.stdout.splitlines() if line.startswith("request rate:"))
    assert re.fullmatch(rf"request rate:    {re.escape(s3_dest.endpoint_url)}: 3\d\.\d/s of 50/s, 1 throttled "
                        r"answer\(s\) \(SlowDown, 503, 429\)", line), line  # fmt: skip
