"""The bucket sync (s3s3.sync.bucket) in process, its summary, and `s3s3bucket` run as a real process."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from s3s3.config import Config, MiB
from s3s3.store import META_MD5, Store, open_store
from s3s3.sync.bucket import ListingOrderError, duplicate_bucket
from tests.helpers import new_bucket
from tests.servers.base import Server
from tests.stores import bucket_of, client_of, listed

pytestmark = pytest.mark.timeout(60)

S3S3BUCKET = str(Path(sys.executable).with_name("s3s3bucket"))
SUMMARY_FIELDS = {
    "checked", "copied", "skipped", "missing", "failed", "deleted", "enqueued", "aborted", "bytes", "retried",
    "seconds", "dry_run", "interrupted", "failures", "errors", "destinations", "versions_copied", "markers_replayed",
    "versions_missed", "versions_deleted", "versions_mapped", "versions_headed", "lease_waits",
}  # fmt: skip
# versions = all: counted for every destination (zeros where it keeps the latest version only)
VERSION_TALLIES = (
    "versions_copied", "markers_replayed", "versions_missed", "versions_deleted", "versions_mapped", "versions_headed",
    "lease_waits",
)  # fmt: skip
NO_VERSIONS = dict.fromkeys(VERSION_TALLIES, 0)
DEST_FIELDS = {"checked", "copied", "skipped", "missing", "failed", "deleted", "enqueued", "aborted", "bytes",
               *VERSION_TALLIES}  # fmt: skip

MakeConfig = Callable[..., Config]
Synced = Callable[..., tuple[Config, Store, list[Store]]]


# -- helpers -------------------------------------------------------------------------------------


def put(bucket: Store, key: str, data: bytes) -> None:
    client_of(bucket).put_object(Bucket=bucket_of(bucket), Key=key, Body=data)


def contents(bucket: Store) -> dict[str, bytes]:
    """Every key of the bucket with its bytes."""
    client = client_of(bucket)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket_of(bucket)).get("Contents", [])]
    return {k: client.get_object(Bucket=bucket_of(bucket), Key=k)["Body"].read() for k in keys}


def counts(summary: Any) -> dict[str, int]:
    return {f: getattr(summary, f) for f in ("checked", "copied", "skipped", "missing", "failed", "bytes")}


def run_s3s3bucket(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([S3S3BUCKET, *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def synced(make_config: MakeConfig, s3_source: Server, s3_dest: Server) -> Synced:
    """A config for a fresh source bucket and fresh destination buckets, and those buckets opened."""

    def make(dests: int = 2, **extra: Any) -> tuple[Config, Store, list[Store]]:
        config = make_config(
            (s3_source, new_bucket(s3_source, "src")),
            [(s3_dest, new_bucket(s3_dest, "dst")) for _ in range(dests)],
            **extra,
        )
        return config, open_store(config.source), [open_store(d) for d in config.dests]

    return make


def test_bucket_sync_with_a_store_listing_out_of_order_raises_listing_order_error() -> None:
    source, dest = listed(["b", "a"]), listed([], name="dest")
    with pytest.raises(ListingOrderError, match="try list_version = 1"):
        duplicate_bucket(source, [dest], workers=1)


# -- bucket sync against real servers ------------------------------------------------------------


def test_bucket_sync_copies_missing_and_changed_keys_skips_identical_and_leaves_extra_ones(
    synced: Synced,
) -> None:
    # Given a source and two destinations that each hold a stale key, an identical key and an extra key
    _, source, dests = synced()
    wanted = {
        "changed.txt": b"new bytes, longer than the old",
        "missing.txt": b"only at the source",
        "same.txt": b"identical everywhere",
        "unicodé/ключ 😀.txt": b"unicode key",
    }
    for key, data in wanted.items():
        put(source, key, data)
    for dest in dests:
        put(dest, "changed.txt", b"old bytes")
        put(dest, "same.txt", wanted["same.txt"])
        put(dest, "extra.txt", b"only at the destination")

    # When the bucket is synced
    summary = duplicate_bucket(source, dests, workers=4)

    # Then each destination holds every source key, byte for byte, and keeps its extra key
    copied_bytes = sum(len(v) for k, v in wanted.items() if k != "same.txt")
    assert counts(summary) == {
        "checked": 8, "copied": 6, "skipped": 2, "missing": 0, "failed": 0, "bytes": 2 * copied_bytes,
    }  # fmt: skip
    assert summary.failures == []
    for dest in dests:
        assert contents(dest) == {**wanted, "extra.txt": b"only at the destination"}

    # When it is synced again
    again = duplicate_bucket(source, dests, workers=4)

    # Then nothing is copied
    assert counts(again) == {"checked": 8, "copied": 0, "skipped": 8, "missing": 0, "failed": 0, "bytes": 0}


def test_bucket_sync_recognises_its_own_multipart_copies_on_the_second_run(
    synced: Synced,
) -> None:
    # Given a multipart-sized key and a destination that stores it in parts (its ETag is then no MD5)
    _, source, (dest,) = synced(dests=1, dest_extra={"multipart_threshold": "5MiB", "multipart_chunksize": "5MiB"})
    data = bytes(range(256)) * (6 * MiB // 256)
    put(source, "big.bin", data)

    # When the bucket is synced twice
    first = duplicate_bucket(source, [dest], workers=2)
    second = duplicate_bucket(source, [dest], workers=2)

    # Then the first run copies it in parts, and the second skips it by s3s3's recorded MD5
    assert counts(first) == {"checked": 1, "copied": 1, "skipped": 0, "missing": 0, "failed": 0, "bytes": len(data)}
    head = client_of(dest).head_object(Bucket=bucket_of(dest), Key="big.bin")
    assert head["ETag"].strip('"').endswith("-2")
    assert head["Metadata"][META_MD5] == hashlib.md5(data).hexdigest()
    assert counts(second) == {"checked": 1, "copied": 0, "skipped": 1, "missing": 0, "failed": 0, "bytes": 0}


def test_bucket_sync_copies_only_the_source_prefix_into_the_destination_prefix(
    synced: Synced,
) -> None:
    # Given a source prefix and a destination prefix
    _, source, (dest,) = synced(dests=1, source_extra={"prefix": "photos/"}, dest_extra={"prefix": "backup/"})
    put(source, "photos/a.jpg", b"a")
    put(source, "photos/b/c.jpg", b"c")
    put(source, "videos/x.mp4", b"x")

    # When the bucket is synced
    summary = duplicate_bucket(source, [dest], workers=2)

    # Then only the prefixed keys are copied, under the destination prefix
    assert (summary.checked, summary.copied) == (2, 2)
    assert contents(dest) == {"backup/a.jpg": b"a", "backup/b/c.jpg": b"c"}


def test_a_missing_destination_bucket_fails_its_keys_while_the_other_destination_syncs(
    make_config: MakeConfig, s3_source: Server, s3_dest: Server
) -> None:
    # Given two destinations, the first of which has no bucket
    good = new_bucket(s3_dest, "dst")
    config = make_config((s3_source, new_bucket(s3_source, "src")), [(s3_dest, "not-there-at-all"), (s3_dest, good)])
    source, dests = open_store(config.source), [open_store(d) for d in config.dests]
    put(source, "k1", b"one")
    put(source, "k2", b"two")

    # When the bucket is synced
    summary = duplicate_bucket(source, dests, workers=2)

    # Then both keys fail at the missing bucket, and both reach the other one
    assert counts(summary) == {"checked": 4, "copied": 2, "skipped": 0, "missing": 0, "failed": 2, "bytes": 6}
    assert sorted((d, k) for d, k, _ in summary.failures) == [
        ("dest1:not-there-at-all", "k1"),
        ("dest1:not-there-at-all", "k2"),
    ]
    assert contents(dests[1]) == {"k1": b"one", "k2": b"two"}


# -- s3s3bucket as a process ---------------------------------------------------------------------


def test_s3s3bucket_syncs_and_prints_the_summary_line(
    synced: Synced,
) -> None:
    # Given a configuration with two keys to copy to one destination
    config, source, (dest,) = synced(dests=1)
    put(source, "one.txt", b"1")
    put(source, "two/three.txt", b"23")

    # When s3s3bucket runs
    result = run_s3s3bucket("--config", config.path)

    # Then it exits 0 after printing the summary, and the keys are there
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(
        r"checked 2 keys: copied 2, skipped 0 as identical, missing 0, failed 0; 3 bytes in \d+\.\ds\n", result.stdout
    ), result.stdout
    assert contents(dest) == {"one.txt": b"1", "two/three.txt": b"23"}


def test_s3s3bucket_exits_1_and_lists_every_key_that_failed(
    make_config: MakeConfig, s3_source: Server, s3_dest: Server
) -> None:
    # Given a destination bucket that does not exist
    config = make_config((s3_source, new_bucket(s3_source, "src")), [(s3_dest, "no-such-bucket-here")])
    source = open_store(config.source)
    put(source, "a.txt", b"a")
    put(source, "b.txt", b"b")

    # When s3s3bucket runs
    result = run_s3s3bucket("--config", config.path)

    # Then every key fails, each is listed, and it exits 1
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("checked 2 keys: copied 0, skipped 0 as identical, missing 0, failed 2; 0 bytes")
    failures = sorted(lines[1:])
    assert len(failures) == 2
    for line, key in zip(failures, ["a.txt", "b.txt"], strict=True):
        assert line.startswith(f"failed: '{key}' to dest1:no-such-bucket-here: "), line
        assert "NoSuchBucket" in line


def test_s3s3bucket_json_prints_the_documented_fields(
    synced: Synced,
) -> None:
    # Given one key to copy, and one already identical, at each of two destinations
    config, source, dests = synced()
    put(source, "new.txt", b"fresh")
    put(source, "old.txt", b"kept")
    for dest in dests:
        put(dest, "old.txt", b"kept")

    # When s3s3bucket runs with --json
    result = run_s3s3bucket("--config", config.path, "--json")

    # Then stdout is one JSON object with the documented fields and the exact counts
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary) == SUMMARY_FIELDS
    assert {k: v for k, v in summary.items() if k not in ("seconds", "destinations")} == {
        "checked": 4, "copied": 2, "skipped": 2, "missing": 0, "failed": 0, "deleted": 0, "enqueued": 0,
        "aborted": 0, "bytes": 10, "retried": 0, "dry_run": False, "interrupted": False, "failures": [], "errors": [],
        **NO_VERSIONS,
    }  # fmt: skip
    assert isinstance(summary["seconds"], float | int)
    per_dest = {"checked": 2, "copied": 1, "skipped": 1, "missing": 0, "failed": 0, "deleted": 0, "enqueued": 0,
                "aborted": 0, "bytes": 5, **NO_VERSIONS}  # fmt: skip
    assert summary["destinations"] == {d.endpoint.label: per_dest for d in dests}


def test_s3s3bucket_with_a_bad_config_exits_2_naming_the_problem(tmp_path: Path) -> None:
    # Given a configuration whose source has no bucket
    path = tmp_path / "bad.ini"
    path.write_text("[source]\nendpoint_url = http://127.0.0.1:9\n[dest1]\nbucket_name = b\n")

    # When s3s3bucket runs
    result = run_s3s3bucket("--config", str(path))

    # Then it exits 2 with one line naming file, section and option
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1] == f"s3s3: error: {path}: [source] bucket_name: is required"


def test_s3s3bucket_with_a_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = run_s3s3bucket("--config", str(tmp_path / "nowhere.ini"))
    assert result.returncode == 2
    assert "nowhere.ini: cannot read" in result.stderr
