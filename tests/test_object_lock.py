"""A version's Object Lock travels with its copy, or the key fails saying why; nothing lands unprotected.

Source and destination are two moto servers; the source bucket has Object
Lock, each object a retention and a legal hold written by a plain client.
Each copy is made as s3s3 makes it (both transports), and what landed is
read back with a plain boto3 client.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import pytest

from s3s3.config import Config, MiB
from s3s3.copy import copy_key
from s3s3.outcome import Action
from s3s3.store import META_VERSION
from tests.servers.base import Server
from tests.stores import FaultyStore, failing, open_with, refusal
from tests.versions import MULTIPART, UNTIL, lock_bucket, lock_of, put_locked

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def pair(make_config: Callable[..., Config], s3_source: Server, s3_dest: Server) -> Callable[..., tuple[Any, ...]]:
    """A source bucket with Object Lock and a destination bucket (with it, or not), with these options."""

    def make(*, dest_lock: bool = True, **dest_extra: str) -> tuple[Config, str, str]:
        src, dst = lock_bucket(s3_source, lock=True), lock_bucket(s3_dest, lock=dest_lock)
        return make_config((s3_source, src), [(s3_dest, dst)], dest_extra=dest_extra), src, dst

    return make


@pytest.mark.parametrize("size", [1024, 11 * MiB], ids=["single-put", "multipart"])
@pytest.mark.parametrize("transport", ["http", "boto3"])
def test_retention_and_legal_hold_arrive_equal_with_a_single_put_and_a_multipart_copy(
    pair: Callable[..., Any], s3_source: Server, s3_dest: Server, transport: str, size: int
) -> None:
    # Given a source version under a COMPLIANCE retention and a legal hold
    config, src, dst = pair(**MULTIPART)
    data = os.urandom(size)
    source_head = put_locked(s3_source, src, "held.bin", data, mode="COMPLIANCE")

    # When it is copied (object_lock = copy is the default)
    dest = FaultyStore(open_with(config.dests[0], transport))
    outcome = copy_key(open_with(config.source, transport), dest, "held.bin")

    # Then the copy has the same bytes, and the same retention mode, retain-until date and legal hold
    assert outcome.action is Action.COPIED, outcome.error
    landed = s3_dest.client().get_object(Bucket=dst, Key="held.bin")
    assert hashlib.md5(landed["Body"].read()).hexdigest() == hashlib.md5(data).hexdigest()
    assert lock_of(landed) == lock_of(source_head) == ("COMPLIANCE", UNTIL, "ON")
    # And every part of a multipart copy went with its Content-MD5, which Object Lock requires on AWS
    assert all(call.kwargs.get("md5") for call in dest.of("upload_part"))
    assert bool(dest.of("upload_part")) is (size > 5 * MiB)


def test_a_destination_without_object_lock_fails_the_key_at_once_naming_the_option(
    pair: Callable[..., Any], s3_source: Server, s3_dest: Server
) -> None:
    # Given a locked source version, and a destination bucket without Object Lock
    config, src, dst = pair(dest_lock=False)
    put_locked(s3_source, src, "held.txt", b"protected", mode="COMPLIANCE")

    # When it is copied with object_lock = copy
    dest = FaultyStore(open_with(config.dests[0], "http"))
    outcome = copy_key(open_with(config.source, "http"), dest, "held.txt")

    # Then the key fails at once, not retried, saying why and what to change
    assert (outcome.action, outcome.attempts) == (Action.FAILED, 1)
    until = UNTIL.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert outcome.error == (
        f"'held.txt': dest1:{dst} has no Object Lock, and the source version has retention (COMPLIANCE until "
        f"{until}) and a legal hold: enable Object Lock on {dst} or set object_lock = ignore in [dest1]"
    )
    # And nothing was written there
    assert dest.of("put") == [] and dest.of("create_upload") == []
    assert s3_dest.client().list_objects_v2(Bucket=dst).get("KeyCount") == 0


def test_a_refused_object_lock_fails_the_key_once_with_its_remedy(
    pair: Callable[..., Any], s3_source: Server, s3_dest: Server
) -> None:
    # Given a destination without Object Lock that does not say so (GetObjectLockConfiguration refused)
    config, src, dst = pair(dest_lock=False)
    put_locked(s3_source, src, "held.txt", b"protected")
    dest = FaultyStore(open_with(config.dests[0], "boto3"))
    dest.on("object_lock", failing(refusal("GetObjectLockConfiguration", "AccessDenied", 403)))

    # When the locked version is copied
    outcome = copy_key(open_with(config.source, "boto3"), dest, "held.txt")

    # Then the store's refusal of the retention fails the key once, naming the option; nothing landed
    assert (outcome.action, outcome.attempts) == (Action.FAILED, 1)
    assert outcome.error is not None
    assert outcome.error.startswith(f"'held.txt': dest1:{dst} refused it: the source version's Object Lock cannot")
    assert outcome.error.endswith(f"enable Object Lock on {dst} or set object_lock = ignore in [dest1]")
    assert s3_dest.client().list_objects_v2(Bucket=dst).get("KeyCount") == 0


@pytest.mark.parametrize("transport", ["http", "boto3"])
def test_with_object_lock_ignore_the_copy_lands_without_retention(
    pair: Callable[..., Any], s3_source: Server, s3_dest: Server, transport: str
) -> None:
    # Given a locked source version, and a destination without Object Lock set to ignore it
    config, src, dst = pair(dest_lock=False, object_lock="ignore")
    put_locked(s3_source, src, "held.txt", b"protected")

    # When it is copied
    outcome = copy_key(open_with(config.source, transport), open_with(config.dests[0], transport), "held.txt")

    # Then it lands, without retention or legal hold
    assert outcome.action is Action.COPIED, outcome.error
    landed = s3_dest.client().head_object(Bucket=dst, Key="held.txt")
    assert lock_of(landed) == (None, None, None)


@pytest.mark.parametrize("versions", ["latest", "all"])
def test_with_versions_all_a_copy_records_the_source_version_it_was_made_from(
    pair: Callable[..., Any], s3_source: Server, s3_dest: Server, versions: str
) -> None:
    # Given a source version
    config, src, dst = pair(versions=versions)
    source_head = put_locked(s3_source, src, "doc.txt", b"version one")

    # When it is copied
    outcome = copy_key(open_with(config.source, "http"), open_with(config.dests[0], "http"), "doc.txt")

    # Then with versions = all its metadata names the source version; with latest, as before, it does not
    assert outcome.action is Action.COPIED, outcome.error
    metadata = s3_dest.client().head_object(Bucket=dst, Key="doc.txt")["Metadata"]
    assert metadata.get(META_VERSION) == (source_head["VersionId"] if versions == "all" else None)


@pytest.mark.parametrize("transport", ["http", "boto3"])
def test_a_copy_within_one_store_carries_retention_and_legal_hold(
    make_config: Callable[..., Config], s3_dest: Server, transport: str
) -> None:
    # Given two buckets of one store, with one identity, so that the store copies the bytes itself
    src, dst = lock_bucket(s3_dest, lock=True), lock_bucket(s3_dest, lock=True)
    config = make_config((s3_dest, src), [(s3_dest, dst)])
    source_head = put_locked(s3_dest, src, "held.bin", b"kept for years", mode="GOVERNANCE")

    # When it is copied
    dest = FaultyStore(open_with(config.dests[0], transport))
    outcome = copy_key(open_with(config.source, transport), dest, "held.bin")

    # Then the store made the copy (CopyObject), and it holds the source version's retention and legal hold
    assert outcome.action is Action.COPIED, outcome.error
    assert len(dest.of("copy_object")) == 1
    landed = s3_dest.client().get_object(Bucket=dst, Key="held.bin")
    assert landed["Body"].read() == b"kept for years"
    assert lock_of(landed) == lock_of(source_head) == ("GOVERNANCE", UNTIL, "ON")
