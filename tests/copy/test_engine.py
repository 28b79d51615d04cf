"""The copy engine (s3s3.copy.engine) against two real S3 servers (moto processes): bytes, metadata, MD5, failures.

The engine's tests run on the transport production chooses: every store is
opened by `open_store`, which gives these SigV4 moto endpoints the lean HTTP
transport. The few tests that name a transport ("http", "boto3") run on both,
the boto3 one built as a BotoStore. Faults are injected through
tests.stores.FaultyStore, at the store interface the engine sees. Multipart
plans are tested in tests/test_parts.py, the transports in tests/test_store_*.py.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from s3s3.api import upload
from s3s3.config import MAX_PART, Config, MiB
from s3s3.copy import copy_key
from s3s3.outcome import Action
from s3s3.retry import RetryPolicy
from s3s3.store import META_ETAG, META_MD5, META_MD5CHKSUM, META_MTIME, Checksum, Fact, Store, b64_md5, open_store
from s3s3.store.probes import CHECKSUM_PROBE_KEY, PROBE_KEY
from tests.helpers import data_of, md5_hex, new_bucket
from tests.servers.base import Server
from tests.stores import (
    Call,
    FaultyStore,
    Proceed,
    answering,
    bucket_of,
    checking_content_md5,
    client_of,
    failing,
    first,
    flipped_body,
    flipped_upload,
    is_absent,
    mtime_of,
    open_with,
    put_in_parts,
    read_back,
    refusal,
)

pytestmark = pytest.mark.timeout(60)

MULTIPART = {"multipart_threshold": "5MiB", "multipart_chunksize": "5MiB"}
SINGLE_PUT = {"multipart": "false", "multipart_threshold": "5MiB", "multipart_chunksize": "5MiB"}
HEADERS = {
    "ContentType": "image/jpeg",
    "CacheControl": "max-age=3600, public",
    "ContentDisposition": 'attachment; filename="rose.jpg"',
    "ContentEncoding": "identity",
    "ContentLanguage": "fr-BE",
    "Expires": datetime(2031, 5, 17, 8, 30, tzinfo=UTC),
}
USER_METADATA = {"photographer": "ada", "album": "garden-2024"}

OpenStores = Callable[..., tuple[Store, list[Store]]]
# Whole-key retries at once, so failure tests stay fast.
FAST_RETRY = RetryPolicy(attempts=3, first_delay=0.0)


# -- helpers -------------------------------------------------------------------------------------


def etag_of(response: dict[str, Any]) -> str:
    return str(response["ETag"]).strip('"')


def without_content_md5(call: Call, proceed: Proceed) -> Any:
    """An action: the call goes on as if no Content-MD5 had been given (a store that ignores it)."""
    return proceed(*call.args, **{**call.kwargs, "md5": None})


@pytest.fixture
def open_stores(make_config: Callable[..., Config], s3_source: Server, s3_dest: Server) -> Iterator[OpenStores]:
    """Fresh source and destination buckets on the two servers, opened as production opens them (`open_store`).

    `transport` ("http" or "boto3") opens them on that transport instead, for
    the tests that run on both.
    """
    opened: list[Store] = []

    def make(
        dests: int = 1,
        dest_extra: dict[str, str] | None = None,
        dest_server: Server | None = None,
        transport: str | None = None,
    ) -> tuple[Store, list[Store]]:
        server = dest_server or s3_dest
        config = make_config(
            (s3_source, new_bucket(s3_source, "src")),
            [(server, new_bucket(server, "dst")) for _ in range(dests)],
            dest_extra=dest_extra,
        )
        endpoints = [config.source, *config.dests]
        stores = [open_store(e) if transport is None else open_with(e, transport) for e in endpoints]
        opened.extend(stores)
        return stores[0], stores[1:]

    yield make
    for store in opened:
        store.close()


# -- intact copies -------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "boto3"])
def test_small_object_arrives_with_its_bytes_headers_user_metadata_and_s3s3_record(
    open_stores: OpenStores, transport: str
) -> None:
    # Given a source object with every content header and user metadata
    source, (dest,) = open_stores(transport=transport)
    data = data_of(70_000)
    client_of(source).put_object(Bucket=bucket_of(source), Key="rose.jpg", Body=data, Metadata=USER_METADATA,
                                 **HEADERS)  # fmt: skip

    # When it is copied
    outcome = copy_key(source, dest, "rose.jpg")

    # Then the destination holds the same bytes, headers and metadata, plus s3s3's MD5 and source ETag
    assert (outcome.action, outcome.size, outcome.md5) == (Action.COPIED, len(data), md5_hex(data))
    body, response = read_back(dest, "rose.jpg")
    assert body == data
    assert etag_of(response) == md5_hex(data)
    for header, value in HEADERS.items():
        assert response[header] == value, header
    assert response["Metadata"] == {
        **USER_METADATA, META_MD5: md5_hex(data), META_ETAG: md5_hex(data), META_MTIME: mtime_of(source, "rose.jpg"),
    }


@pytest.mark.parametrize("transport", ["http", "boto3"])
def test_zero_byte_object_is_copied_as_an_empty_object(open_stores: OpenStores, transport: str) -> None:
    # Given an empty source object
    source, (dest,) = open_stores(transport=transport)
    client_of(source).put_object(Bucket=bucket_of(source), Key="empty/marker", Body=b"", ContentType="text/plain")

    # When it is copied
    outcome = copy_key(source, dest, "empty/marker")

    # Then the destination holds an empty object with the MD5 of nothing
    assert (outcome.action, outcome.size) == (Action.COPIED, 0)
    body, response = read_back(dest, "empty/marker")
    assert body == b""
    assert response["ContentLength"] == 0
    assert response["ContentType"] == "text/plain"
    assert response["Metadata"][META_MD5] == md5_hex(b"") == etag_of(response)


@pytest.mark.parametrize(
    "key",
    [
        "with space/and more spaces.txt",
        "café/日本語/ünïcödé-😀.bin",
        "a+b+c.txt",
        "100%25 and 100%.txt",
        "what?is=this&x.txt",
        "hash#tag#.txt",
        "a/b/c/deep/path/file.txt",
        "a//double//slash.txt",
        " lead and trail ",
    ],
)
@pytest.mark.parametrize("transport", ["http", "boto3"])
def test_awkward_keys_round_trip_unchanged(open_stores: OpenStores, key: str, transport: str) -> None:
    # Given a source object whose key needs quoting somewhere
    source, (dest,) = open_stores(transport=transport)
    data = key.encode() * 10
    client_of(source).put_object(Bucket=bucket_of(source), Key=key, Body=data)

    # When it is copied
    outcome = copy_key(source, dest, key)

    # Then the destination lists exactly that key, with the same bytes
    assert outcome.action is Action.COPIED, outcome.error
    listed = [o["Key"] for o in client_of(dest).list_objects_v2(Bucket=bucket_of(dest))["Contents"]]
    assert listed == [key]
    assert read_back(dest, key)[0] == data


# -- skip, change, several destinations ----------------------------------------------------------


def test_unchanged_key_is_skipped_and_a_changed_one_is_copied_again(open_stores: OpenStores) -> None:
    # Given a key already copied once, and a destination whose writes are watched from now on
    source, (plain,) = open_stores()
    client_of(source).put_object(Bucket=bucket_of(source), Key="doc.txt", Body=b"version one")
    assert copy_key(source, plain, "doc.txt").action is Action.COPIED
    dest = FaultyStore(plain)

    # When it is copied again unchanged
    again = copy_key(source, dest, "doc.txt")

    # Then it is skipped without a write
    assert again.action is Action.SKIPPED
    assert dest.of("put") == []

    # When the source object changes and it is copied again
    client_of(source).put_object(Bucket=bucket_of(source), Key="doc.txt", Body=b"version two, longer")
    changed = copy_key(source, dest, "doc.txt")

    # Then the destination holds the new bytes and records the new MD5
    assert changed.action is Action.COPIED
    body, response = read_back(dest, "doc.txt")
    assert body == b"version two, longer"
    assert response["Metadata"][META_MD5] == md5_hex(body)
    assert len(dest.of("put")) == 1


def test_a_key_with_user_metadata_is_skipped_when_identical_and_copied_with_its_record_when_changed(
    open_stores: OpenStores,
) -> None:
    # Given stores opened as production opens them: both on the lean transport
    source, (dest,) = open_stores()
    assert (source.transport, dest.transport) == ("http", "http")
    client_of(source).put_object(Bucket=bucket_of(source), Key="doc.txt", Body=b"version one", Metadata={"a": "1"})
    assert copy_key(source, dest, "doc.txt").action is Action.COPIED

    # When it is copied again unchanged, then it is skipped
    assert copy_key(source, dest, "doc.txt").action is Action.SKIPPED

    # When the source changes, then the new bytes land with their record
    client_of(source).put_object(Bucket=bucket_of(source), Key="doc.txt", Body=b"version two, longer")
    assert copy_key(source, dest, "doc.txt").action is Action.COPIED
    body, response = read_back(dest, "doc.txt")
    assert body == b"version two, longer"
    assert response["Metadata"] == {
        META_MD5: md5_hex(body), META_ETAG: md5_hex(body), META_MTIME: mtime_of(source, "doc.txt"),
    }


def test_same_size_change_is_copied_again(open_stores: OpenStores) -> None:
    # Given a key copied once, then rewritten at the source with different bytes of the same size
    source, (dest,) = open_stores()
    client_of(source).put_object(Bucket=bucket_of(source), Key="same-size", Body=b"AAAA")
    assert copy_key(source, dest, "same-size").action is Action.COPIED
    client_of(source).put_object(Bucket=bucket_of(source), Key="same-size", Body=b"BBBB")

    # When it is copied again
    outcome = copy_key(source, dest, "same-size")

    # Then the size alone did not fool the comparison
    assert outcome.action is Action.COPIED
    assert read_back(dest, "same-size")[0] == b"BBBB"


def test_upload_copies_a_key_to_every_destination(open_stores: OpenStores) -> None:
    # Given two destinations
    source, dests = open_stores(dests=2)
    data = data_of(4096, seed=2)
    client_of(source).put_object(Bucket=bucket_of(source), Key="shared.bin", Body=data)

    # When the key is uploaded through the Python API
    outcomes = upload(source, dests, "shared.bin")

    # Then each destination gets it, and says so in its own outcome
    assert [(o.dest, o.action) for o in outcomes] == [(d.endpoint.label, Action.COPIED) for d in dests]
    for dest in dests:
        body, response = read_back(dest, "shared.bin")
        assert body == data
        assert response["Metadata"][META_MD5] == md5_hex(data)


def test_without_check_small_a_single_put_object_is_sent_without_asking_the_destination(
    open_stores: OpenStores,
) -> None:
    # Given a small object already copied, and a large one (in parts) already copied
    source, (plain,) = open_stores(dest_extra=MULTIPART)
    small, large = data_of(4096, seed=31), data_of(6 * MiB, seed=32)
    client_of(source).put_object(Bucket=bucket_of(source), Key="small.bin", Body=small)
    client_of(source).put_object(Bucket=bucket_of(source), Key="large.bin", Body=large)
    assert copy_key(source, plain, "small.bin").action is Action.COPIED
    assert copy_key(source, plain, "large.bin").action is Action.COPIED
    dest = FaultyStore(plain)

    # When both are copied again with check_small=False (as the listener does)
    again_small = copy_key(source, dest, "small.bin", check_small=False)
    again_large = copy_key(source, dest, "large.bin", check_small=False)

    # Then the small one is sent again without a HEAD, and the large one is found identical by one HEAD
    assert (again_small.action, again_large.action) == (Action.COPIED, Action.SKIPPED)
    assert [c.key for c in dest.of("head")] == ["large.bin"]
    assert read_back(dest, "small.bin")[0] == small


# -- multipart turned off ------------------------------------------------------------------------


def test_with_multipart_off_a_12_mib_object_goes_as_one_put(open_stores: OpenStores) -> None:
    # Given a destination where multipart is off
    source, (plain,) = open_stores(dest_extra=SINGLE_PUT)
    dest = FaultyStore(plain)
    data = data_of(12 * MiB, seed=3)
    client_of(source).put_object(Bucket=bucket_of(source), Key="big.bin", Body=data)

    # When a 12 MiB object is copied
    outcome = copy_key(source, dest, "big.bin")

    # Then one PUT, streamed, with its Content-MD5 carried it, and the destination ETag is its plain MD5
    assert outcome.action is Action.COPIED, outcome.error
    assert dest.of("create_upload") == []
    puts = [c for c in dest.of("put") if c.key == "big.bin"]
    assert [b64_md5(c.kwargs["md5"]) for c in puts] == [b64_md5(md5_hex(data))]
    assert not isinstance(puts[0].args[1], bytes)  # streamed from the GET, not held whole
    body, response = read_back(dest, "big.bin")
    assert etag_of(response) == md5_hex(data) == outcome.dest_etag
    assert body == data


def test_a_plain_md5_object_goes_in_one_streamed_put_the_store_proves_and_nothing_is_hashed(
    open_stores: OpenStores,
) -> None:
    # Given a 12 MiB object written with one PUT (plain-MD5 ETag), and a destination that checks Content-MD5
    source, (plain,) = open_stores(dest_extra=MULTIPART)
    dest = FaultyStore(plain).on("put", checking_content_md5)
    data = data_of(12 * MiB, seed=31)
    client_of(source).put_object(Bucket=bucket_of(source), Key="one-put.bin", Body=data)

    # When it is copied
    outcome = copy_key(source, dest, "one-put.bin")

    # Then the store was probed once (it refused a wrong Content-MD5), and the object went in one PUT,
    # streamed from the GET, with the source's ETag as its Content-MD5: no parts
    assert outcome.action is Action.COPIED, outcome.error
    assert dest.facts.knows(Fact.CHECKS_CONTENT_MD5)
    assert dest.of("create_upload") == [] and dest.of("upload_part") == []
    (put,) = [c for c in dest.of("put") if c.key == "one-put.bin"]
    assert put.kwargs["md5"] == md5_hex(data) and put.kwargs["length"] == len(data)
    body, response = read_back(dest, "one-put.bin")
    assert body == data and etag_of(response) == md5_hex(data) == outcome.dest_etag
    assert response["Metadata"][META_MD5] == md5_hex(data)
    assert is_absent(dest, PROBE_KEY)


def test_a_corrupt_read_streamed_into_a_proven_put_never_lands_and_the_key_is_tried_again(
    open_stores: OpenStores,
) -> None:
    # Given a destination that checks Content-MD5, and a source whose first read comes back corrupt
    plain_source, (plain,) = open_stores(dest_extra=MULTIPART)
    data = data_of(12 * MiB, seed=32)
    client_of(plain_source).put_object(Bucket=bucket_of(plain_source), Key="flip.bin", Body=data)
    source = FaultyStore(plain_source).on("get", flipped_body(when=first()))
    dest = FaultyStore(plain).on("put", checking_content_md5)

    # When it is copied
    outcome = copy_key(source, dest, "flip.bin", retry=FAST_RETRY)

    # Then the store refused the corrupt body (BadDigest), and the second attempt landed the source's bytes
    assert outcome.action is Action.COPIED, outcome.error
    assert outcome.attempts == 2
    assert len([c for c in dest.of("put") if c.key == "flip.bin"]) == 2
    assert read_back(dest, "flip.bin")[0] == data


def test_a_store_that_ignores_content_md5_is_found_out_once_and_keeps_the_hashed_plans(
    open_stores: OpenStores,
) -> None:
    # Given moto, which stores a body whatever its Content-MD5 says, as a destination
    source, (plain,) = open_stores(dest_extra=MULTIPART)
    dest = FaultyStore(plain)
    data = data_of(12 * MiB, seed=33)
    for key in ("a.bin", "b.bin"):
        client_of(source).put_object(Bucket=bucket_of(source), Key=key, Body=data)

    # When two objects written with one PUT are copied
    outcomes = [copy_key(source, dest, key) for key in ("a.bin", "b.bin")]

    # Then one probe found it out (its byte deleted), and both went in parts read in order, hashed
    assert [o.action for o in outcomes] == [Action.COPIED, Action.COPIED]
    assert dest.facts.knows(Fact.IGNORES_CONTENT_MD5)
    assert [c.key for c in dest.of("put")] == [PROBE_KEY]
    assert is_absent(dest, PROBE_KEY)
    assert len(dest.of("create_upload")) == 2
    assert read_back(dest, "b.bin")[0] == data


def test_multipart_source_to_single_put_destination_is_hashed_first_and_sent_with_content_md5(
    open_stores: OpenStores,
) -> None:
    # Given a source object uploaded in parts (its ETag is not an MD5) and a destination without multipart
    source, (plain,) = open_stores(dest_extra=SINGLE_PUT)
    dest = FaultyStore(plain)
    data = data_of(11 * MiB, seed=4)
    source_etag = put_in_parts(source, "parts.bin", data)
    assert source_etag.endswith("-3")

    # When it is copied
    outcome = copy_key(source, dest, "parts.bin")

    # Then the single PUT still carried the whole object's Content-MD5, and the bytes landed intact
    assert outcome.action is Action.COPIED, outcome.error
    assert [b64_md5(c.kwargs["md5"]) for c in dest.of("put")] == [b64_md5(md5_hex(data))]
    body, response = read_back(dest, "parts.bin")
    assert body == data
    assert etag_of(response) == md5_hex(data)
    assert response["Metadata"] == {
        META_MD5: md5_hex(data), META_ETAG: source_etag, META_MTIME: mtime_of(source, "parts.bin"),
    }


def test_object_over_the_single_put_limit_with_multipart_off_fails_clearly(open_stores: OpenStores) -> None:
    # Given a destination without multipart, and a source whose GET says the object is 5 GiB and one byte
    plain_source, (dest,) = open_stores(dest_extra={"multipart": "false", "multipart_threshold": "1KiB"})
    client_of(plain_source).put_object(Bucket=bucket_of(plain_source), Key="huge.iso", Body=data_of(4096))
    source = FaultyStore(plain_source).on("get", answering(lambda got: (replace(got[0], size=MAX_PART + 1), got[1])))

    # When it is copied
    outcome = copy_key(source, dest, "huge.iso", retry=FAST_RETRY)

    # Then that key fails at once (no retry can help), saying why, and nothing is written
    assert outcome.action is Action.FAILED
    assert f"{MAX_PART + 1} bytes: over 5 GiB it needs multipart, which [dest1] turns off" in (outcome.error or "")
    assert len(source.of("get")) == 1
    assert outcome.attempts == 1
    assert is_absent(dest, "huge.iso")


# -- integrity failures --------------------------------------------------------------------------


def test_corrupt_read_of_a_small_object_fails_the_key_and_writes_nothing(open_stores: OpenStores) -> None:
    # Given a source whose reads always come back with a flipped byte
    plain, (dest,) = open_stores()
    data = data_of(1000, seed=5)
    client_of(plain).put_object(Bucket=bucket_of(plain), Key="flip.bin", Body=data)
    source = FaultyStore(plain).on("get", flipped_body())

    # When the key is copied
    outcome = copy_key(source, dest, "flip.bin", retry=FAST_RETRY)

    # Then the MD5 check fails it, every attempt, and the destination has nothing
    assert outcome.action is Action.FAILED
    assert f"the source says {md5_hex(data)}" in (outcome.error or "")
    assert "read MD5" in (outcome.error or "")
    assert outcome.attempts == FAST_RETRY.attempts
    assert is_absent(dest, "flip.bin")


def test_one_corrupt_read_is_retried_and_the_copy_lands_intact(
    open_stores: OpenStores, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a source whose first read only comes back corrupt
    plain, (dest,) = open_stores()
    data = data_of(3000, seed=7)
    client_of(plain).put_object(Bucket=bucket_of(plain), Key="once.bin", Body=data)
    source = FaultyStore(plain).on("get", flipped_body(when=first()))

    # When the key is copied
    with caplog.at_level(logging.WARNING, logger="s3s3"):
        outcome = copy_key(source, dest, "once.bin", retry=FAST_RETRY)

    # Then the second attempt copies it intact, after one warning
    assert outcome.action is Action.COPIED
    assert outcome.attempts == 2
    assert read_back(dest, "once.bin")[0] == data
    assert [r.getMessage().split(" after: ")[0] for r in caplog.records] == [
        f"Retrying 'once.bin' to {dest.endpoint.label} in 0.0s"
    ]


def test_a_destination_that_stores_other_bytes_is_caught_by_its_etag_and_the_copy_discarded(
    open_stores: OpenStores,
) -> None:
    # Given a destination with verify_md5 that ignores Content-MD5 and stores a flipped byte
    source, (plain,) = open_stores(dest_extra={"verify_md5": "true"})
    data = data_of(2048, seed=10)
    client_of(source).put_object(Bucket=bucket_of(source), Key="silent.bin", Body=data)
    dest = FaultyStore(plain).on("put", flipped_upload()).on("put", without_content_md5)

    # When the key is copied
    outcome = copy_key(source, dest, "silent.bin", retry=FAST_RETRY)

    # Then the ETag the store answered exposes the bad bytes, the key fails, and no corrupt copy is left
    assert outcome.action is Action.FAILED
    assert f"{md5_hex(data)} was sent" in (outcome.error or "")
    assert "Contents" not in client_of(dest).list_objects_v2(Bucket=bucket_of(dest))
    assert len(dest.of("delete")) == FAST_RETRY.attempts


def test_verify_md5_reads_a_multipart_copy_back_and_catches_bad_bytes(open_stores: OpenStores) -> None:
    # Given a multipart destination whose ETag is no MD5, so verifying means reading it back
    source, (plain,) = open_stores(dest_extra=MULTIPART)
    dest = FaultyStore(plain)
    data = data_of(6 * MiB, seed=11)
    client_of(source).put_object(Bucket=bucket_of(source), Key="check.bin", Body=data)

    # When it is copied with verify_md5, the bytes read back are good
    good = copy_key(source, dest, "check.bin", verify_md5=True)

    # Then it is copied after one read-back
    assert good.action is Action.COPIED, good.error
    assert len(dest.of("get")) == 1

    # When the destination then returns different bytes for the same copy
    dest.on("get", flipped_body())
    bad = copy_key(source, dest, "check.bin", verify_md5=True, check_dest=False, retry=FAST_RETRY)

    # Then the read-back MD5 does not match, the key fails, and the copy that cannot be trusted is deleted
    assert bad.action is Action.FAILED
    assert f"expected {md5_hex(data)}" in (bad.error or "")
    assert is_absent(dest, "check.bin")


# -- refusals ------------------------------------------------------------------------------------


def test_a_store_that_keeps_refusing_for_now_is_tried_as_the_policy_allows_then_the_key_fails(
    open_stores: OpenStores,
) -> None:
    # Given a destination that answers every PUT with 503 SlowDown
    source, (plain,) = open_stores()
    client_of(source).put_object(Bucket=bucket_of(source), Key="busy.bin", Body=b"later")
    dest = FaultyStore(plain).on("put", failing(refusal("PutObject")))

    # When the key is copied
    outcome = copy_key(source, dest, "busy.bin", retry=FAST_RETRY)

    # Then the whole key was tried as often as the policy allows, and fails with the store's word
    assert outcome.action is Action.FAILED
    assert outcome.attempts == len(dest.of("put")) == FAST_RETRY.attempts
    assert "SlowDown" in (outcome.error or "")
    assert is_absent(dest, "busy.bin")


def test_a_storage_class_the_store_lacks_fails_the_key_at_once_naming_the_option(open_stores: OpenStores) -> None:
    # Given a destination asked for a storage class it answers with a bare 400 InvalidArgument (as Ceph does)
    source, (plain,) = open_stores(dest_extra={"storage_class": "STANDARD_IA"})
    client_of(source).put_object(Bucket=bucket_of(source), Key="cold.bin", Body=b"cold")
    dest = FaultyStore(plain).on("put", failing(refusal("PutObject", "InvalidArgument", 400)))

    # When the key is copied
    outcome = copy_key(source, dest, "cold.bin", retry=FAST_RETRY)

    # Then it fails once, with a message that says which option to remove, and where
    assert outcome.action is Action.FAILED
    assert outcome.attempts == 1
    assert "storage_class = STANDARD_IA is not offered by this store (InvalidArgument); remove it from [dest1]" in (
        outcome.error or ""
    )


def test_metadata_over_swifts_limits_answered_with_a_500_fails_at_once_saying_why(open_stores: OpenStores) -> None:
    # Given a source object with a metadata value over 256 bytes, and a destination that answers 500 (as Swift does)
    source, (plain,) = open_stores()
    client_of(source).put_object(Bucket=bucket_of(source), Key="tagged.bin", Body=b"x", Metadata={"note": "v" * 300})
    dest = FaultyStore(plain).on("put", failing(refusal("PutObject", "InternalError", 500)))

    # When the key is copied
    outcome = copy_key(source, dest, "tagged.bin", retry=FAST_RETRY)

    # Then it fails once (retrying cannot help), and says why
    assert outcome.action is Action.FAILED
    assert outcome.attempts == 1
    assert "metadata value of 300 bytes in 'note' (Swift allows 256)" in (outcome.error or "")


# -- missing keys, server-side copies ------------------------------------------------------------


def test_missing_source_key_is_reported_as_missing_with_a_warning(
    open_stores: OpenStores, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a key that is not at the source
    source, (dest,) = open_stores()

    # When it is uploaded
    with caplog.at_level(logging.INFO, logger="s3s3"):
        outcomes = upload(source, dest, "gone/away.txt")

    # Then the outcome says missing, one warning says so, and nothing was written
    assert [o.action for o in outcomes] == [Action.MISSING]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", f"Missing 'gone/away.txt' at the source; nothing copied to {dest.endpoint.label}")
    ]
    assert is_absent(dest, "gone/away.txt")


def test_a_missing_source_key_is_missing_not_failed(open_stores: OpenStores) -> None:
    # Given a key that is not at the source
    source, (dest,) = open_stores()

    # When it is copied
    outcome = copy_key(source, dest, "not/there")

    # Then it is missing, not failed, and nothing was written
    assert outcome.action is Action.MISSING
    assert is_absent(dest, "not/there")


def test_same_store_copies_server_side_keeping_metadata(open_stores: OpenStores, s3_source: Server) -> None:
    # Given source and destination on the same server with the same credentials
    plain_source, (plain_dest,) = open_stores(dest_server=s3_source)
    source, dest = FaultyStore(plain_source), FaultyStore(plain_dest)
    assert dest.endpoint.same_store(source.endpoint)
    data = data_of(5000, seed=12)
    client_of(source).put_object(Bucket=bucket_of(source), Key="local.bin", Body=data, Metadata=USER_METADATA,
                                 **HEADERS)  # fmt: skip

    # When it is copied
    outcome = copy_key(source, dest, "local.bin")

    # Then the store copied it (no bytes read by s3s3), with headers, metadata and s3s3's record
    assert outcome.action is Action.COPIED, outcome.error
    assert source.of("get") + dest.of("get") == []
    assert len(dest.of("copy_object")) == 1
    body, response = read_back(dest, "local.bin")
    assert body == data
    for header, value in HEADERS.items():
        assert response[header] == value, header
    assert response["Metadata"] == {
        **USER_METADATA, META_MD5: md5_hex(data), META_ETAG: md5_hex(data), META_MTIME: mtime_of(source, "local.bin"),
    }

    # And a second copy is skipped
    assert copy_key(source, dest, "local.bin").action is Action.SKIPPED
    assert len(dest.of("copy_object")) == 1


def test_same_store_copy_quotes_awkward_keys_in_the_copy_source(open_stores: OpenStores, s3_source: Server) -> None:
    # Given, on one store, a key with every character a CopySource header must quote
    source, (dest,) = open_stores(dest_server=s3_source)
    key = "dir one/a+b c%25 100%?x=1#frag/ünï😀.txt"
    client_of(source).put_object(Bucket=bucket_of(source), Key=key, Body=b"quoted")

    # When it is copied server-side
    outcome = copy_key(source, dest, key)

    # Then exactly that key holds the bytes
    assert outcome.action is Action.COPIED, outcome.error
    assert [o["Key"] for o in client_of(dest).list_objects_v2(Bucket=bucket_of(dest))["Contents"]] == [key]
    assert read_back(dest, key)[0] == b"quoted"


def test_same_store_missing_key_is_missing(open_stores: OpenStores, s3_source: Server) -> None:
    # Given source and destination on the same store, and a key that is not there
    source, (dest,) = open_stores(dest_server=s3_source)

    # When it is copied
    outcome = copy_key(source, dest, "never-was")

    # Then it is missing, not failed
    assert outcome.action is Action.MISSING


def test_a_source_overwritten_during_a_server_side_copy_is_copied_again_under_its_own_record(
    open_stores: OpenStores, s3_source: Server
) -> None:
    # Given a same-store copy, and the source overwritten between its HEAD and the CopyObject
    # (as on Ceph 16 or moto, which ignore x-amz-copy-source-if-match)
    plain_source, (plain_dest,) = open_stores(dest_server=s3_source)
    source, dest = FaultyStore(plain_source), FaultyStore(plain_dest)
    client_of(source).put_object(Bucket=bucket_of(source), Key="moving.bin", Body=b"version one")

    def overwrite_first(call: Call, proceed: Proceed) -> Any:
        if len(dest.of("copy_object")) == 1:
            client_of(source).put_object(Bucket=bucket_of(source), Key="moving.bin", Body=b"version two, newer")
        return proceed(*call.args, **call.kwargs)

    dest.on("copy_object", overwrite_first)

    # When it is copied
    outcome = copy_key(source, dest, "moving.bin", retry=FAST_RETRY)

    # Then the copy found the source moved on, and the next attempt copied the newer version under its own record
    assert (outcome.action, outcome.attempts) == (Action.COPIED, 2), outcome.error
    body, response = read_back(dest, "moving.bin")
    assert body == b"version two, newer"
    assert response["Metadata"][META_ETAG] == md5_hex(b"version two, newer")
    assert response["Metadata"][META_MD5] == md5_hex(b"version two, newer")


# -- copies other tools can check: rclone's md5chksum, full-object checksums -------------------------------


def test_a_source_whose_md5chksum_gives_its_md5_is_copied_in_order_and_proven_by_it(open_stores: OpenStores) -> None:
    # Given a multipart source object whose rclone md5chksum says its MD5 (base64), and a destination in parts
    source, (plain,) = open_stores(dest_extra=MULTIPART)
    dest = FaultyStore(plain)
    data = data_of(11 * MiB, seed=21)
    put_in_parts(source, "rclone.bin", data, metadata={META_MD5CHKSUM: b64_md5(md5_hex(data))})

    # When it is copied
    outcome = copy_key(source, dest, "rclone.bin")

    # Then it went in whole parts read in order (its MD5 known), the read was proven by that MD5, and the copy
    # records it both ways
    assert (outcome.action, outcome.md5) == (Action.COPIED, md5_hex(data)), outcome.error
    assert all(c.kwargs["md5"] for c in dest.of("upload_part"))
    body, response = read_back(dest, "rclone.bin")
    assert md5_hex(body) == md5_hex(data)
    assert response["Metadata"][META_MD5] == md5_hex(data)
    assert response["Metadata"][META_MD5CHKSUM] == b64_md5(md5_hex(data))


def test_a_source_whose_md5chksum_is_not_its_bytes_md5_is_not_copied(open_stores: OpenStores) -> None:
    # Given a multipart source object whose md5chksum claims the MD5 of other bytes
    source, (dest,) = open_stores(dest_extra=MULTIPART)
    data = data_of(11 * MiB, seed=22)
    put_in_parts(source, "lying.bin", data, metadata={META_MD5CHKSUM: b64_md5(md5_hex(b"other bytes"))})

    # When it is copied
    outcome = copy_key(source, dest, "lying.bin", retry=FAST_RETRY)

    # Then the copy fails on the read that does not match it, and nothing lands
    assert outcome.action is Action.FAILED
    assert f"the source says {md5_hex(b'other bytes')}" in (outcome.error or "")
    assert is_absent(dest, "lying.bin")


@pytest.mark.parametrize("transport", ["http", "boto3"])
def test_a_full_object_checksum_of_the_source_goes_with_its_single_put_and_the_destination_keeps_it(
    open_stores: OpenStores, transport: str
) -> None:
    # Given a source object that its store keeps a SHA-256 of (the checksum given with its PUT)
    source, (plain,) = open_stores(transport=transport)
    dest = FaultyStore(plain)
    data = data_of(70_000, seed=23)
    sha256 = base64.b64encode(hashlib.sha256(data).digest()).decode()
    client_of(source).put_object(Bucket=bucket_of(source), Key="summed", Body=data, ChecksumSHA256=sha256,
                                 ChecksumAlgorithm="SHA256")  # fmt: skip

    # When it is copied (twice: the second time over an older copy)
    first_copy = copy_key(source, dest, "summed")
    second = copy_key(source, dest, "summed", check_dest=False)

    # Then the PUT carried the checksum, which the destination (moto: keeps it, checks nothing) was probed for
    # once, and answers back
    assert (first_copy.action, second.action) == (Action.COPIED, Action.COPIED), first_copy.error
    sent = [c.kwargs.get("checksum") for c in dest.of("put") if c.key == "summed"]
    assert sent == [Checksum("sha256", sha256)] * 2
    assert dest.facts.knows(Fact.KEEPS_CHECKSUM, "sha256")
    assert [c.key for c in dest.of("put") if c.key != "summed"] == [CHECKSUM_PROBE_KEY]
    answer = client_of(dest).head_object(Bucket=bucket_of(dest), Key="summed", ChecksumMode="ENABLED")
    assert answer["ChecksumSHA256"] == sha256
    assert read_back(dest, "summed")[0] == data


def test_a_destination_that_keeps_no_checksum_is_found_out_once_and_sent_none(open_stores: OpenStores) -> None:
    # Given a source object with a CRC32 its store keeps, and a destination that drops every checksum (as Ceph)
    source, (plain,) = open_stores()
    dest = FaultyStore(plain).on("put", lambda call, proceed: proceed(*call.args, **{**call.kwargs, "checksum": None}))
    for key in ("a", "b"):
        client_of(source).put_object(Bucket=bucket_of(source), Key=key, Body=b"crc", ChecksumAlgorithm="CRC32")

    # When both are copied
    outcomes = [copy_key(source, dest, key) for key in ("a", "b")]

    # Then the store was probed once, is known to ignore CRC32s, and the second copy was sent none
    assert [o.action for o in outcomes] == [Action.COPIED, Action.COPIED]
    assert dest.facts.knows(Fact.IGNORES_CHECKSUM, "crc32")
    assert [c.key for c in dest.of("put")] == [CHECKSUM_PROBE_KEY, "a", "b"]
    assert dest.of("put")[-1].kwargs["checksum"] is None
    assert is_absent(dest, CHECKSUM_PROBE_KEY)
