"""s3s3.sync.fleet: `s3s3bucket --split N` and `--work`, on a redis-server of the test's own and moto."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from s3s3 import names
from s3s3.cli import main
from s3s3.config import Config
from s3s3.services import BucketClient
from s3s3.sync import fleet
from s3s3.sync.fleet import Sync, Task
from s3s3.sync.ranges import KeyRange
from tests.helpers import RequestLog, new_bucket, wait_until, write_config
from tests.processes import BIN
from tests.servers.base import Server
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def server(private_redis: Callable[..., RedisServer]) -> RedisServer:
    return private_redis()


@pytest.fixture
def client(server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()


def test_a_task_keeps_its_range_through_redis() -> None:
    for span in (KeyRange("", "m"), KeyRange("m", None), KeyRange("caf\u00e9/", "\U0001f600")):
        task = Task("s1", 1, 3, "photos/", span)
        assert Task.of({k.encode(): v.encode() for k, v in task.fields().items()}) == task


def test_a_split_refuses_while_tasks_are_open_unless_forced(client: redis.Redis) -> None:
    sync = Sync("s3s3:sync:test-refuse")
    first = fleet.split(client, sync, ["g", "p"], "")
    assert fleet.open_tasks(client, sync) == (3, 0)
    with pytest.raises(fleet.SplitOpen, match="3 task"):
        fleet.split(client, sync, ["m"], "")
    second = fleet.split(client, sync, ["m"], "", force=True)
    assert second != first and fleet.open_tasks(client, sync) == (2, 0)
    summary = fleet.summary(client, sync)
    assert summary is not None and (summary["split"], summary["ranges"], summary["ranges_done"]) == (second, 2, 0)


def test_workers_take_every_task_once_and_one_left_by_a_dead_worker_is_taken_over(client: redis.Redis) -> None:
    # Given a split of four ranges, one of them taken by a worker that then died
    sync = Sync("s3s3:sync:test-work")
    fleet.split(client, sync, ["d", "h", "p"], "")
    client.xreadgroup(names.SYNC_GROUP, "dead", {sync.tasks: ">"}, count=1)
    done: list[tuple[str, Task]] = []
    lock = threading.Lock()

    def run_as(worker: str) -> Callable[[Task], dict[str, int]]:
        def run(task: Task) -> dict[str, int]:
            with lock:
                done.append((worker, task))
            return {"checked": 10, "copied": 2, "bytes": 100}

        return run

    # When two workers work (claiming after 0.5 s idle)
    stop = threading.Event()
    results: dict[str, fleet.Worked] = {}
    threads = [
        threading.Thread(target=lambda w=w: results.__setitem__(w, fleet.work(
            client, sync, run_as(w), consumer=w, claim_idle=0.5, stop=stop)))
        for w in ("one", "two")
    ]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then every range was synced exactly once, the dead worker's too, and both exited with nothing left
    assert sorted(task.index for _, task in done) == [0, 1, 2, 3]
    assert sum(w.ranges for w in results.values()) == 4 and all(w.ok for w in results.values())
    assert fleet.open_tasks(client, sync) == (0, 0)
    summary = fleet.summary(client, sync)
    assert summary is not None
    assert (summary["ranges_done"], summary["checked"], summary["copied"], summary["bytes"]) == (4, 40, 8, 400)


# --- end to end: s3s3bucket --split, --work processes, one killed, s3s3 status --sync -----------


def body_of(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest() * 128  # 4 KiB


def put_keys(server: Server, bucket: str, keys: list[str]) -> dict[str, str]:
    s3 = server.client()
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=body_of(key))
    return {key: hashlib.md5(body_of(key)).hexdigest() for key in keys}


def dest_md5s(server: Server, bucket: str) -> dict[str, str]:
    s3 = server.client()
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            found[item["Key"]] = hashlib.md5(body).hexdigest()
    return found


def bucket_command(config: Config, *args: str) -> list[str]:
    return [str(BIN / "s3s3bucket"), "--config", str(config.path), *args]


def test_a_split_sync_worked_by_a_fleet_with_a_worker_killed_copies_every_key_once(
    s3_source: Server, s3_dest: Server, tmp_path: Path, server: RedisServer, client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    # Given 240 keys at the source, 12 of them already at the destination
    src, dst = new_bucket(s3_source), new_bucket(s3_dest)
    keys = [f"t{i % 7}/obj-{i:04d}.bin" for i in range(240)]
    wanted = put_keys(s3_source, src, keys)
    put_keys(s3_dest, dst, keys[::20])
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst, {})],
                          {"url": server.url, "claim_idle": 2})  # fmt: skip

    # When the sync is split in four
    assert main(["bucket", "--config", str(config.path), "--split", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("split ") and out.count("  range ") == 4

    # Then a second split is refused while its tasks are open
    assert main(["bucket", "--config", str(config.path), "--split", "4"]) == 1
    assert "still open" in capsys.readouterr().err

    # When a worker, slowed to 16 KiB/s, is killed while it syncs a range
    log = RequestLog(s3_dest)
    slow = subprocess.Popen(bucket_command(config, "--work", "--workers", "1", "--bwlimit", "16KiB"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    sync = BucketClient(config).sync_of()
    try:
        wait_until(lambda: fleet.open_tasks(client, sync)[1] == 1, timeout=30)
        wait_until(lambda: any(m == "PUT" for m, _ in log.requests(dst)), timeout=30)
    finally:
        slow.send_signal(signal.SIGKILL)
        slow.communicate(timeout=30)

    # And two workers take what is left, the dead worker's range too
    workers = [subprocess.Popen(bucket_command(config, "--work"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]  # fmt: skip
    results = [w.communicate(timeout=90) for w in workers]

    # Then both exit 0 with every range done, every key landed intact, and each copied once
    # (but the one the killed worker may have been sending)
    assert [w.returncode for w in workers] == [0, 0], results
    assert fleet.open_tasks(client, sync) == (0, 0)
    assert dest_md5s(s3_dest, dst) == wanted
    puts = [p for m, p in log.requests(dst) if m == "PUT"]
    assert len(puts) - len(set(puts)) <= 1
    assert len(set(puts)) == 240 - 12

    # And s3s3 status --sync shows the whole sync
    done = subprocess.run([str(BIN / "s3s3"), "status", "--sync", "--json", "--config", str(config.path)],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    summary = json.loads(done.stdout)
    assert (summary["ranges"], summary["ranges_done"], summary["waiting"], summary["working"]) == (4, 4, 0, 0)
    assert summary["checked"] == 240 and summary["failed"] == 0
    assert summary["copied"] + summary["skipped"] == 240
    text = subprocess.run([str(BIN / "s3s3"), "status", "--sync", "--config", str(config.path)],
                          capture_output=True, text=True, timeout=30).stdout  # fmt: skip
    assert "4 done (0 with failures)" in text and "state:     finished" in text

    # And a new split is taken now that the last one is finished
    assert main(["bucket", "--config", str(config.path), "--split", "2"]) == 0
