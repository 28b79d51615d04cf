"""Helpers the tests of versions and Object Lock share, on moto and on real stores.

Versioned and locked buckets; versions and delete markers written with a
plain client; a key's history read back version by version; a bucket sync
whose destination's writes are counted; s3s3bucket run in-process; the
Object Lock a HEAD answers.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from s3s3.cli import main
from s3s3.config import Config, MiB
from s3s3.store import META_VERSION, Store, open_store
from s3s3.sync.bucket import duplicate_bucket
from s3s3.sync.options import SyncOptions
from s3s3.sync.summary import Summary
from tests.helpers import new_bucket, next_number, write_config
from tests.servers.base import Server
from tests.stores import FaultyStore, bucket_of, client_of

PROBES = ".s3s3-probe"  # s3s3.store.probes: what a store does with a Content-MD5, asked once
WRITES = ("put", "create_upload", "upload_part", "complete_upload", "delete", "delete_many", "copy_object")
MULTIPART = {"multipart_threshold": "5MiB", "multipart_chunksize": "5MiB"}
UNTIL = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)  # the retain-until of locked versions


# -- buckets -------------------------------------------------------------------------------------


def versioned(server: Server, bucket: str) -> None:
    server.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def versioned_bucket(server: Server, prefix: str) -> str:
    """A new bucket that keeps versions."""
    bucket = new_bucket(server, prefix)
    versioned(server, bucket)
    return bucket


def lock_bucket(server: Server, *, lock: bool) -> str:
    """A new bucket, with Object Lock (and so versions) or with neither."""
    name = f"lock-{next_number()}-{uuid.uuid4().hex[:8]}"
    if lock:
        server.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    else:
        server.client().create_bucket(Bucket=name)
    return name


def versions_config(
    tmp_path: Path, source: tuple[Server, str], dest: tuple[Server, str], redis_url: str, **dest_extra: object
) -> Config:
    """An s3s3.ini for a source bucket and one destination bucket, `versions = all` unless told."""
    pubsub = {"url": redis_url, "channel": f"ch-{uuid.uuid4().hex[:8]}"}
    return write_config(tmp_path, source, [(*dest, {"versions": "all"} | dest_extra)], pubsub)


# -- versions and delete markers ----------------------------------------------------------------


def put(store: Store, key: str, data: bytes) -> str:
    """Write a version; return its ID."""
    return str(client_of(store).put_object(Bucket=bucket_of(store), Key=key, Body=data).get("VersionId", ""))


def put_at(server: Server, bucket: str, key: str, data: bytes, mtime: float) -> None:
    """A version the source wrote at `mtime` (Unix seconds), as rclone records it."""
    server.client().put_object(Bucket=bucket, Key=key, Body=data, Metadata={"mtime": f"{mtime:.9f}"})


def delete(store: Store, key: str, version_id: str | None = None) -> str:
    """A delete marker (or, with `version_id`, that version deleted for good); return the ID the store answered."""
    extra = {"VersionId": version_id} if version_id else {}
    return str(client_of(store).delete_object(Bucket=bucket_of(store), Key=key, **extra).get("VersionId", ""))


@dataclass(frozen=True)
class Entry:
    """One entry of a key's history as a test sees it: a marker, or a version's bytes and what it replays."""

    marker: bool
    md5: str | None = None
    size: int = 0
    replays: str | None = None  # its s3s3-source-version-id


MARKER = Entry(True)


def version(data: bytes, replays: str) -> Entry:
    return Entry(False, hashlib.md5(data).hexdigest(), len(data), replays)


def history_of(store: Store, key: str) -> list[Entry]:
    """`key`'s history, oldest first: each version read back by its ID, with its metadata."""
    client = client_of(store)
    answer = client.list_object_versions(Bucket=bucket_of(store), Prefix=key)
    versions = [(v, False) for v in answer.get("Versions", []) if v["Key"] == key]
    markers = [(m, True) for m in answer.get("DeleteMarkers", []) if m["Key"] == key]
    entries = _newest_first(versions, markers)
    assert not entries or entries[0][0]["IsLatest"], f"{key!r}: the newest entry by time is not the current one"
    found = []
    for item, marker in reversed(entries):
        if marker:
            found.append(MARKER)
            continue
        got = client.get_object(Bucket=bucket_of(store), Key=key, VersionId=item["VersionId"])
        data = got["Body"].read()
        found.append(Entry(False, hashlib.md5(data).hexdigest(), len(data), got["Metadata"].get(META_VERSION)))
    return found


Listed = tuple[dict[str, Any], bool]  # a ListObjectVersions entry, and whether it is a delete marker


def _newest_first(versions: list[Listed], markers: list[Listed]) -> list[Listed]:
    """One key's versions and markers in one list, newest first.

    A listing gives both newest first, but apart (boto3 parses Version and
    DeleteMarker into two lists), so they are merged by LastModified. A tie
    puts the marker first: moto 5.2 gives whole seconds and the histories of
    the tests put their markers after their versions; Ceph gives milliseconds.
    """
    merged: list[Listed] = []
    versions, markers = list(versions), list(markers)
    while versions and markers:
        newer = markers if markers[0][0]["LastModified"] >= versions[0][0]["LastModified"] else versions
        merged.append(newer.pop(0))
    return merged + versions + markers


def current(server: Server, bucket: str) -> dict[str, str]:
    """Every key's current object, by the MD5 of the bytes a GET returns."""
    client = server.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: hashlib.md5(client.get_object(Bucket=bucket, Key=k)["Body"].read()).hexdigest() for k in keys}


def versions_of(server: Server, bucket: str, key: str) -> int:
    answer = server.client().list_object_versions(Bucket=bucket, Prefix=key)
    return len([v for v in answer.get("Versions", []) if v["Key"] == key])


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# -- the bucket sync -----------------------------------------------------------------------------


@dataclass
class World:
    """A versioned source and destination, their s3s3.ini, and the Redis of their ledger."""

    config: Config
    source: Store
    dest: FaultyStore  # counts every request made of the destination
    client: redis.Redis

    def sync(self, **options: Any) -> Summary:
        """One bucket sync, as s3s3bucket runs it (its workers and retries made short)."""
        opts = SyncOptions(workers=4, **options)
        return duplicate_bucket(self.source, [self.dest], options=opts, client=self.client)

    def writes(self) -> list[str]:
        """The writing requests made of the destination since the last call (its probes' aside)."""
        found = [c.operation for c in self.dest.calls if c.operation in WRITES and not c.key.startswith(PROBES)]
        self.dest.calls.clear()
        return found


def make_world(
    tmp_path: Path,
    source: Server,
    dest: Server,
    redis_url: str,
    dest_extra: dict[str, Any] | None = None,
    *,
    source_versioned: bool = True,
    dest_versioned: bool = True,
) -> World:
    """New buckets at `source` and `dest` (versioned unless told), the destination with `versions = all`."""
    src_bucket, dst_bucket = new_bucket(source, "src"), new_bucket(dest, "dst")
    if source_versioned:
        versioned(source, src_bucket)
    if dest_versioned:
        versioned(dest, dst_bucket)
    config = versions_config(tmp_path, (source, src_bucket), (dest, dst_bucket), redis_url, **(dest_extra or {}))
    client = redis.Redis.from_url(redis_url)
    return World(config, open_store(config.source), FaultyStore(open_store(config.dests[0])), client)


def replays_three_histories_in_order_then_writes_nothing(w: World) -> None:
    """The bucket sync's replay, end to end: histories in order, byte for byte, none server-side; then nothing.

    `w`'s destination must take parts of 5 MiB (MULTIPART).
    """
    # Given a key with three versions, a key whose newest entry is a delete marker, and a key whose older
    # version goes in parts (read back by ranges of that very version, not of the current one)
    a = [b"first", b"second, longer", b"third and longest of all"]
    a_ids = [put(w.source, "a.txt", data) for data in a]
    b_ids = [put(w.source, "b.txt", b"b one"), put(w.source, "b.txt", b"b two!")]
    b_ids.append(delete(w.source, "b.txt"))
    big = [os.urandom(6 * MiB), b"small now"]
    big_ids = [put(w.source, "big.bin", data) for data in big]

    # When the bucket sync runs
    summary = w.sync()

    # Then each destination history is the source's, in order, byte for byte, each version naming its source
    assert summary.ok, summary.failures
    assert history_of(w.dest, "a.txt") == [version(d, v) for d, v in zip(a, a_ids, strict=True)]
    assert history_of(w.dest, "b.txt") == [version(b"b one", b_ids[0]), version(b"b two!", b_ids[1]), MARKER]
    assert history_of(w.dest, "big.bin") == [version(d, v) for d, v in zip(big, big_ids, strict=True)]
    counts = summary.as_dict()
    assert (counts["checked"], counts["versions_copied"], counts["markers_replayed"]) == (3, 7, 1)
    assert counts["bytes"] == sum(map(len, [*a, b"b one", b"b two!", *big]))
    # And no version went server-side: a replayed version is read by its ID and written with its record
    writes = w.writes()
    assert "copy_object" not in writes and writes.count("delete") == 1

    # When it runs again
    again = w.sync()

    # Then nothing is written, and the version map named every destination version: no HEAD
    assert again.ok
    assert w.writes() == []
    counts = again.as_dict()
    assert (counts["checked"], counts["skipped"], counts["versions_copied"], counts["markers_replayed"]) == (3, 3, 0, 0)
    assert (counts["versions_mapped"], counts["versions_headed"]) == (7, 0)
    assert w.dest.of("head") == []


# -- s3s3bucket in-process -----------------------------------------------------------------------


def bucket_cli(capsys: pytest.CaptureFixture[str], config: Config, *args: str) -> tuple[int, str, str]:
    """Run `s3s3bucket --config PATH ARGS` in this process: its exit code, stdout and stderr."""
    code = main(["bucket", "--config", str(config.path), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@contextmanager
def logging_and_signals_kept() -> Iterator[None]:
    """main() sets up logging and SIGTERM/SIGINT handlers; give what follows what it had."""
    root = logging.getLogger()
    handlers, level, s3s3_level = root.handlers[:], root.level, logging.getLogger("s3s3").level
    signals = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("s3s3").setLevel(s3s3_level)
        for signum, handler in signals.items():
            signal.signal(signum, handler)


# -- Object Lock ---------------------------------------------------------------------------------


def put_locked(
    server: Server, name: str, key: str, data: bytes, mode: str = "GOVERNANCE", *, part: int | None = None
) -> dict[str, Any]:
    """Put `data` under a retention until UNTIL and a legal hold; return the source's HEAD of it.

    With `part`, as a multipart upload of `part`-byte parts (its ETag `...-N`), the lock sent with
    CreateMultipartUpload: a store that keeps none of it there shows in the HEAD returned.
    """
    client = server.client()
    lock = {"ObjectLockMode": mode, "ObjectLockRetainUntilDate": UNTIL, "ObjectLockLegalHoldStatus": "ON"}
    if part is None:
        client.put_object(Bucket=name, Key=key, Body=data, ContentMD5=_content_md5(data), **lock)
        return dict(client.head_object(Bucket=name, Key=key))
    upload_id = client.create_multipart_upload(Bucket=name, Key=key, **lock)["UploadId"]
    parts = []
    for number, start in enumerate(range(0, len(data), part), start=1):
        chunk = data[start : start + part]
        answer = client.upload_part(Bucket=name, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk,
                                    ContentMD5=_content_md5(chunk))  # fmt: skip
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    client.complete_multipart_upload(Bucket=name, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    return dict(client.head_object(Bucket=name, Key=key))


def _content_md5(data: bytes) -> str:
    """The Content-MD5 of `data`: a write carrying Object Lock must send one."""
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def lock_of(head: dict[str, Any]) -> tuple[Any, Any, Any]:
    """A HEAD's (or GET's) retention mode, retain-until date and legal hold."""
    return head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate"), head.get("ObjectLockLegalHoldStatus")
