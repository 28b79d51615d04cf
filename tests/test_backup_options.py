"""What a backup keeps beyond the bytes: tags, encryption, an ACL, modification times, and a bandwidth cap.

Each option is set in a destination section (or [pubsub] for bwlimit), the
object copied as s3s3 copies it (both transports where the option travels in
headers), and what landed read back with a plain boto3 client.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from s3s3.config import Config, MiB
from s3s3.copy import copy_key
from s3s3.outcome import Action
from s3s3.store import open_store
from tests.helpers import new_bucket, write_config
from tests.processes import BIN
from tests.servers.base import Server
from tests.servers.redis import RedisServer
from tests.stores import open_with

pytestmark = pytest.mark.timeout(120)

TAGS = {"team": "photo", "retention": "7 years", "odd": "a+b=c: d/e@f"}  # what AWS allows in a tag
MULTIPART = {"multipart_threshold": "5MiB", "multipart_chunksize": "5MiB"}


def tag_set(server: Server, bucket: str, key: str) -> dict[str, str]:
    tags = server.client().get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    return {t["Key"]: t["Value"] for t in tags}


def encoded(tags: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(tags)


@pytest.fixture
def pair(make_config: Callable[..., Config], s3_source: Server, s3_dest: Server) -> Callable[..., tuple[Any, ...]]:
    """A fresh source and destination bucket, with these destination options; the config and both names."""

    def make(**dest_extra: str) -> tuple[Config, str, str]:
        src, dst = new_bucket(s3_source, "src"), new_bucket(s3_dest, "dst")
        return make_config((s3_source, src), [(s3_dest, dst)], dest_extra=dest_extra), src, dst

    return make


@pytest.mark.parametrize("size", [1024, 11 * MiB], ids=["single-put", "multipart"])
@pytest.mark.parametrize("transport", ["http", "boto3"])
def test_tags_travel_with_the_object(pair: Callable[..., Any], s3_source: Server, s3_dest: Server, transport: str,
                                     size: int) -> None:  # fmt: skip
    # Given a tagged source object
    config, src, dst = pair(**MULTIPART)
    s3_source.client().put_object(Bucket=src, Key="tagged.bin", Body=os.urandom(size), Tagging=encoded(TAGS))

    # When it is copied (tags = true is the default)
    source, dest = open_with(config.source, transport), open_with(config.dests[0], transport)
    outcome = copy_key(source, dest, "tagged.bin")

    # Then the copy has the same tag set
    assert outcome.action is Action.COPIED, outcome.error
    assert tag_set(s3_dest, dst, "tagged.bin") == TAGS


def test_with_tags_false_the_copy_has_none(pair: Callable[..., Any], s3_source: Server, s3_dest: Server) -> None:
    config, src, dst = pair(tags="false")
    s3_source.client().put_object(Bucket=src, Key="tagged.txt", Body=b"x", Tagging=encoded(TAGS))
    outcome = copy_key(open_store(config.source), open_store(config.dests[0]), "tagged.txt")
    assert outcome.action is Action.COPIED, outcome.error
    assert tag_set(s3_dest, dst, "tagged.txt") == {}


@pytest.mark.parametrize("size", [1024, 11 * MiB], ids=["single-put", "multipart"])
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"sse": "AES256"}, {"ServerSideEncryption": "AES256"}),
        ({"sse": "aws:kms", "sse_kms_key_id": "alias/s3s3-backup"},
         {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/s3s3-backup"}),  # fmt: skip
    ],
    ids=["AES256", "aws:kms"],
)
def test_sse_encrypts_the_copy_at_rest(
    pair: Callable[..., Any], s3_source: Server, s3_dest: Server, options: dict[str, str], expected: dict[str, str],
    size: int,
) -> None:
    # Given a destination that asks for encryption at rest
    config, src, dst = pair(**options, **MULTIPART)
    body = os.urandom(size)
    s3_source.client().put_object(Bucket=src, Key="secret.bin", Body=body)

    # When the object is copied
    outcome = copy_key(open_store(config.source), open_store(config.dests[0]), "secret.bin")

    # Then the copy's HEAD says it is encrypted, with the key asked for, and its bytes are the source's
    assert outcome.action is Action.COPIED, outcome.error
    head = s3_dest.client().head_object(Bucket=dst, Key="secret.bin")
    assert {k: head.get(k) for k in expected} == expected
    got = s3_dest.client().get_object(Bucket=dst, Key="secret.bin")["Body"].read()
    assert hashlib.md5(got).hexdigest() == hashlib.md5(body).hexdigest()
    assert head["Metadata"]["s3s3-md5"] == hashlib.md5(body).hexdigest()


@pytest.mark.parametrize("transport", ["http", "boto3"])
def test_acl_bucket_owner_full_control_grants_the_bucket_owner_full_control(
    pair: Callable[..., Any], s3_source: Server, s3_dest: Server, transport: str
) -> None:
    # Given a destination that asks for a canned ACL
    config, src, dst = pair(acl="bucket-owner-full-control")
    s3_source.client().put_object(Bucket=src, Key="shared.txt", Body=b"for the backup account")

    # When the object is copied
    outcome = copy_key(open_with(config.source, transport), open_with(config.dests[0], transport), "shared.txt")

    # Then the copy's ACL grants the bucket's owner FULL_CONTROL
    assert outcome.action is Action.COPIED, outcome.error
    owner = s3_dest.client().get_bucket_acl(Bucket=dst)["Owner"]["ID"]
    grants = s3_dest.client().get_object_acl(Bucket=dst, Key="shared.txt")["Grants"]
    assert {"Grantee": {"ID": owner, "Type": "CanonicalUser"}, "Permission": "FULL_CONTROL"} in [
        {"Grantee": {k: g["Grantee"][k] for k in ("ID", "Type") if k in g["Grantee"]},
         "Permission": g["Permission"]} for g in grants  # fmt: skip
    ]


@pytest.mark.parametrize("size", [1024, 11 * MiB], ids=["single-put", "multipart"])
def test_the_source_modification_time_is_kept_in_mtime_as_rclone_reads_it(
    pair: Callable[..., Any], s3_source: Server, s3_dest: Server, size: int
) -> None:
    # Given a source object
    config, src, dst = pair(**MULTIPART)
    s3_source.client().put_object(Bucket=src, Key="dated.bin", Body=os.urandom(size))
    modified = s3_source.client().head_object(Bucket=src, Key="dated.bin")["LastModified"]

    # When it is copied (preserve_mtime = true is the default)
    outcome = copy_key(open_store(config.source), open_store(config.dests[0]), "dated.bin")

    # Then the copy's `mtime` metadata is its source's Last-Modified, in Unix seconds
    assert outcome.action is Action.COPIED, outcome.error
    mtime = s3_dest.client().head_object(Bucket=dst, Key="dated.bin")["Metadata"]["mtime"]
    assert abs(float(mtime) - modified.timestamp()) < 1.0
    assert "." in mtime


def test_an_mtime_the_source_carries_is_kept_and_preserve_mtime_false_writes_none(
    pair: Callable[..., Any], s3_source: Server, s3_dest: Server
) -> None:
    # Given an object rclone wrote, with its own mtime, and a destination keeping mtimes
    config, src, dst = pair()
    s3_source.client().put_object(Bucket=src, Key="by-rclone", Body=b"x", Metadata={"mtime": "1580000000.123456789"})
    s3_source.client().put_object(Bucket=src, Key="plain", Body=b"y")
    source, dest = open_store(config.source), open_store(config.dests[0])
    assert copy_key(source, dest, "by-rclone").action is Action.COPIED
    assert s3_dest.client().head_object(Bucket=dst, Key="by-rclone")["Metadata"]["mtime"] == "1580000000.123456789"

    # When a destination says preserve_mtime = false, then its copies carry no mtime
    quiet = open_store(replace(config.dests[0], preserve_mtime=False))
    assert copy_key(source, quiet, "plain").action is Action.COPIED
    assert "mtime" not in s3_dest.client().head_object(Bucket=dst, Key="plain")["Metadata"]


def test_bwlimit_caps_what_s3s3bucket_sends(
    s3_source: Server, s3_dest: Server, redis_server: RedisServer, tmp_path: Any
) -> None:
    # Given 48 MiB at the source: six objects of 8 MiB (sent in parts) and a few small ones
    src, dst = new_bucket(s3_source, "src"), new_bucket(s3_dest, "dst")
    client = s3_source.client()
    bodies = {f"big/{i}.bin": os.urandom(8 * MiB) for i in range(6)}
    for key, body in bodies.items():
        client.put_object(Bucket=src, Key=key, Body=body)
    config = write_config(tmp_path, (s3_source, src), [(s3_dest, dst, MULTIPART)],
                          {"url": redis_server.url, "bwlimit": "1GiB"})  # fmt: skip

    # When s3s3bucket copies it with --bwlimit 8MiB (overriding [pubsub] bwlimit)
    started = time.monotonic()
    run = subprocess.run([str(BIN / "s3s3bucket"), "--config", config.path, "--bwlimit", "8MiB"], capture_output=True,
                         text=True, timeout=90)  # fmt: skip
    seconds = time.monotonic() - started

    # Then it took at least the time 48 MiB take at 8 MiB/s (6 s; less a quarter second of burst, and a margin)
    assert run.returncode == 0, run.stderr
    assert "Sending at most 8,388,608 bytes per second" in run.stderr
    assert seconds >= 5.5, seconds
    found = {o["Key"]: o["Size"] for o in s3_dest.client().list_objects_v2(Bucket=dst)["Contents"]}
    assert found == {key: len(body) for key, body in bodies.items()}
