"""The copy engine against two real S3 servers (moto, separate processes): bytes, metadata, MD5, failures."""

from __future__ import annotations

import base64
import hashlib
import logging
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from s3s3 import copy as copy_module
from s3s3 import parts as parts_module
from s3s3.api import upload
from s3s3.config import Config, Endpoint, MiB
from s3s3.copy import copy_key
from s3s3.retry import RetryPolicy
from s3s3.s3 import META_ETAG, META_MD5, Bucket, create_client, list_objects, open_bucket
from s3s3.wire import Wire
from tests.helpers import client_error, new_bucket
from tests.servers.base import Server

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

OpenBuckets = Callable[..., tuple[Bucket, list[Bucket]]]
# Whole-key retries at once, so failure tests stay fast.
FAST_RETRY = RetryPolicy(attempts=3, first_delay=0.0)


# -- helpers -------------------------------------------------------------------------------------


def data_of(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def multipart_md5(data: bytes, part: int) -> str:
    digests = [hashlib.md5(data[i : i + part]).digest() for i in range(0, len(data), part)]
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def read_back(bucket: Bucket, key: str) -> tuple[bytes, dict[str, Any]]:
    """The destination's bytes and its GetObject response."""
    response = bucket.client.get_object(Bucket=bucket.name, Key=key)
    return response["Body"].read(), response


def etag_of(response: dict[str, Any]) -> str:
    return response["ETag"].strip('"')


def is_absent(bucket: Bucket, key: str) -> bool:
    try:
        bucket.client.head_object(Bucket=bucket.name, Key=key)
    except ClientError as e:
        return e.response["Error"]["Code"] in ("404", "NoSuchKey")
    return False


def pending_uploads(bucket: Bucket) -> list[dict[str, Any]]:
    return bucket.client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", [])


def put_in_parts(bucket: Bucket, key: str, data: bytes, part: int = 5 * MiB) -> str:
    """Put `data` at the source as a multipart upload, so its ETag is `...-N`; return that ETag."""
    client = bucket.client
    upload_id = client.create_multipart_upload(Bucket=bucket.name, Key=key)["UploadId"]
    parts = []
    for number, start in enumerate(range(0, len(data), part), start=1):
        response = client.upload_part(
            Bucket=bucket.name, Key=key, UploadId=upload_id, PartNumber=number, Body=data[start : start + part]
        )
        parts.append({"PartNumber": number, "ETag": response["ETag"]})
    response = client.complete_multipart_upload(
        Bucket=bucket.name, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    return etag_of(response)


def calls(client: Any, operation: str) -> list[dict[str, Any]]:
    """Record the parameters of every `operation` call this client makes from now on."""
    seen: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(params)

    client.meta.events.register(f"provide-client-params.s3.{operation}", record)
    return seen


def sent_headers(client: Any, operation: str) -> list[dict[str, str]]:
    """Record the HTTP headers of every `operation` request this client sends from now on."""
    seen: list[dict[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        seen.append({k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()})

    client.meta.events.register(f"before-send.s3.{operation}", record)
    return seen


class FlippedBody:
    """A GetObject body whose first byte arrives flipped: a corrupt read."""

    def __init__(self, body: Any) -> None:
        self.body = body
        self.flipped = False

    def read(self, size: int = -1) -> bytes:
        data = self.body.read(size)
        if data and not self.flipped:
            self.flipped = True
            return bytes([data[0] ^ 0xFF]) + data[1:]
        return data

    def close(self) -> None:
        self.body.close()


def corrupt_reads(monkeypatch: pytest.MonkeyPatch, client: Any, times: int | None = None) -> None:
    """Every GetObject body of `client` (or only the first `times`) comes back with a flipped byte."""
    real = client.get_object
    count = {"n": 0}

    def get_object(**kwargs: Any) -> dict[str, Any]:
        response = real(**kwargs)
        count["n"] += 1
        if times is None or count["n"] <= times:
            response["Body"] = FlippedBody(response["Body"])
        return response

    monkeypatch.setattr(client, "get_object", get_object)


@pytest.fixture
def open_buckets(make_config: Callable[..., Config], s3_source: Server, s3_dest: Server) -> OpenBuckets:
    """Fresh source and destination buckets on the two servers, opened as s3s3 opens them.

    By default without the lean path (s3s3.wire), so that tests can watch and
    break the boto3 calls; `lean=True` opens them exactly as s3s3 does.
    """

    def make(
        dests: int = 1, dest_extra: dict[str, str] | None = None, dest_server: Server | None = None, lean: bool = False
    ) -> tuple[Bucket, list[Bucket]]:
        server = dest_server or s3_dest
        config = make_config(
            (s3_source, new_bucket(s3_source, "src")),
            [(server, new_bucket(server, "dst")) for _ in range(dests)],
            dest_extra=dest_extra,
        )
        return open_bucket(config.source, lean=lean), [open_bucket(d, lean=lean) for d in config.dests]

    return make


# -- intact copies -------------------------------------------------------------------------------


@pytest.mark.parametrize("lean", [True, False], ids=["lean-path", "boto3"])
def test_small_object_arrives_with_its_bytes_headers_user_metadata_and_s3s3_record(
    open_buckets: OpenBuckets, lean: bool
) -> None:
    # Given a source object with every content header and user metadata
    source, (dest,) = open_buckets(lean=lean)
    data = data_of(70_000)
    source.client.put_object(Bucket=source.name, Key="rose.jpg", Body=data, Metadata=USER_METADATA, **HEADERS)

    # When it is copied
    outcome = copy_key(source, dest, "rose.jpg")

    # Then the destination holds the same bytes, headers and metadata, plus s3s3's MD5 and source ETag
    assert (outcome.action, outcome.size, outcome.md5) == ("copied", len(data), md5_hex(data))
    body, response = read_back(dest, "rose.jpg")
    assert body == data
    assert etag_of(response) == md5_hex(data)
    for header, value in HEADERS.items():
        assert response[header] == value, header
    assert response["Metadata"] == {**USER_METADATA, META_MD5: md5_hex(data), META_ETAG: md5_hex(data)}


@pytest.mark.parametrize("lean", [True, False], ids=["lean-path", "boto3"])
def test_zero_byte_object_is_copied_as_an_empty_object(open_buckets: OpenBuckets, lean: bool) -> None:
    # Given an empty source object
    source, (dest,) = open_buckets(lean=lean)
    source.client.put_object(Bucket=source.name, Key="empty/marker", Body=b"", ContentType="text/plain")

    # When it is copied
    outcome = copy_key(source, dest, "empty/marker")

    # Then the destination holds an empty object with the MD5 of nothing
    assert (outcome.action, outcome.size) == ("copied", 0)
    body, response = read_back(dest, "empty/marker")
    assert body == b""
    assert response["ContentLength"] == 0
    assert response["ContentType"] == "text/plain"
    assert response["Metadata"][META_MD5] == md5_hex(b"") == etag_of(response)


def test_large_object_goes_in_three_parts_and_arrives_intact_with_its_metadata(open_buckets: OpenBuckets) -> None:
    # Given a 12 MiB source object and a destination that splits at 5 MiB
    source, (dest,) = open_buckets(dest_extra=MULTIPART)
    data = data_of(12 * MiB + 12345, seed=1)
    source.client.put_object(Bucket=source.name, Key="video.mp4", Body=data, Metadata=USER_METADATA, **HEADERS)
    parts = calls(dest.client, "UploadPart")

    # When it is copied
    outcome = copy_key(source, dest, "video.mp4")

    # Then it went in three parts, the destination ETag is the MD5 of the part MD5s, and the bytes match
    assert outcome.action == "copied", outcome.error
    assert sorted(p["PartNumber"] for p in parts) == [1, 2, 3]
    assert all(p["ContentMD5"] for p in parts)
    body, response = read_back(dest, "video.mp4")
    assert etag_of(response) == multipart_md5(data, 5 * MiB) == outcome.dest_etag
    assert md5_hex(body) == md5_hex(data)
    for header, value in HEADERS.items():
        assert response[header] == value, header
    assert response["Metadata"] == {**USER_METADATA, META_MD5: md5_hex(data), META_ETAG: md5_hex(data)}
    assert pending_uploads(dest) == []

    # And a second copy recognises the multipart object by its recorded MD5 and skips it
    assert copy_key(source, dest, "video.mp4").action == "skipped"


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
@pytest.mark.parametrize("lean", [True, False], ids=["lean-path", "boto3"])
def test_awkward_keys_round_trip_unchanged(open_buckets: OpenBuckets, key: str, lean: bool) -> None:
    # Given a source object whose key needs quoting somewhere
    source, (dest,) = open_buckets(lean=lean)
    data = key.encode() * 10
    source.client.put_object(Bucket=source.name, Key=key, Body=data)

    # When it is copied
    outcome = copy_key(source, dest, key)

    # Then the destination lists exactly that key, with the same bytes
    assert outcome.action == "copied", outcome.error
    listed = [o["Key"] for o in dest.client.list_objects_v2(Bucket=dest.name)["Contents"]]
    assert listed == [key]
    assert read_back(dest, key)[0] == data


# -- skip, change, several destinations ----------------------------------------------------------


def test_unchanged_key_is_skipped_and_a_changed_one_is_copied_again(open_buckets: OpenBuckets) -> None:
    # Given a key already copied once
    source, (dest,) = open_buckets()
    source.client.put_object(Bucket=source.name, Key="doc.txt", Body=b"version one")
    assert copy_key(source, dest, "doc.txt").action == "copied"
    puts = calls(dest.client, "PutObject")

    # When it is copied again unchanged
    again = copy_key(source, dest, "doc.txt")

    # Then it is skipped without a write
    assert again.action == "skipped"
    assert puts == []

    # When the source object changes and it is copied again
    source.client.put_object(Bucket=source.name, Key="doc.txt", Body=b"version two, longer")
    changed = copy_key(source, dest, "doc.txt")

    # Then the destination holds the new bytes and records the new MD5
    assert changed.action == "copied"
    body, response = read_back(dest, "doc.txt")
    assert body == b"version two, longer"
    assert response["Metadata"][META_MD5] == md5_hex(body)
    assert len(puts) == 1


def test_same_size_change_is_copied_again(open_buckets: OpenBuckets) -> None:
    # Given a key copied once, then rewritten at the source with different bytes of the same size
    source, (dest,) = open_buckets()
    source.client.put_object(Bucket=source.name, Key="same-size", Body=b"AAAA")
    assert copy_key(source, dest, "same-size").action == "copied"
    source.client.put_object(Bucket=source.name, Key="same-size", Body=b"BBBB")

    # When it is copied again
    outcome = copy_key(source, dest, "same-size")

    # Then the size alone did not fool the comparison
    assert outcome.action == "copied"
    assert read_back(dest, "same-size")[0] == b"BBBB"


def test_upload_copies_a_key_to_every_destination(open_buckets: OpenBuckets) -> None:
    # Given two destinations
    source, dests = open_buckets(dests=2)
    data = data_of(4096, seed=2)
    source.client.put_object(Bucket=source.name, Key="shared.bin", Body=data)

    # When the key is uploaded through the Python API
    outcomes = upload(source, dests, "shared.bin")

    # Then each destination gets it, and says so in its own outcome
    assert [(o.dest, o.action) for o in outcomes] == [(d.endpoint.label, "copied") for d in dests]
    for dest in dests:
        body, response = read_back(dest, "shared.bin")
        assert body == data
        assert response["Metadata"][META_MD5] == md5_hex(data)


# -- multipart turned off ------------------------------------------------------------------------


def test_with_multipart_off_a_12_mib_object_goes_as_one_put(open_buckets: OpenBuckets) -> None:
    # Given a destination where multipart is off
    source, (dest,) = open_buckets(dest_extra=SINGLE_PUT)
    data = data_of(12 * MiB, seed=3)
    source.client.put_object(Bucket=source.name, Key="big.bin", Body=data)
    starts = calls(dest.client, "CreateMultipartUpload")
    headers = sent_headers(dest.client, "PutObject")

    # When a 12 MiB object is copied
    outcome = copy_key(source, dest, "big.bin")

    # Then one PUT with its Content-MD5 carried it, and the destination ETag is its plain MD5
    assert outcome.action == "copied", outcome.error
    assert starts == []
    assert [h["Content-MD5"] for h in headers] == [base64.b64encode(hashlib.md5(data).digest()).decode()]
    body, response = read_back(dest, "big.bin")
    assert etag_of(response) == md5_hex(data) == outcome.dest_etag
    assert body == data


def test_multipart_source_to_single_put_destination_is_hashed_first_and_sent_with_content_md5(
    open_buckets: OpenBuckets,
) -> None:
    # Given a source object uploaded in parts (its ETag is not an MD5) and a destination without multipart
    source, (dest,) = open_buckets(dest_extra=SINGLE_PUT)
    data = data_of(11 * MiB, seed=4)
    source_etag = put_in_parts(source, "parts.bin", data)
    assert source_etag.endswith("-3")
    headers = sent_headers(dest.client, "PutObject")

    # When it is copied
    outcome = copy_key(source, dest, "parts.bin")

    # Then the single PUT still carried the whole object's Content-MD5, and the bytes landed intact
    assert outcome.action == "copied", outcome.error
    assert [h["Content-MD5"] for h in headers] == [base64.b64encode(hashlib.md5(data).digest()).decode()]
    body, response = read_back(dest, "parts.bin")
    assert body == data
    assert etag_of(response) == md5_hex(data)
    assert response["Metadata"] == {META_MD5: md5_hex(data), META_ETAG: source_etag}


def test_object_over_the_single_put_limit_with_multipart_off_fails_clearly(
    open_buckets: OpenBuckets, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a destination without multipart, and a single-PUT limit shrunk so a 4 KiB object is "over 5 GiB"
    source, (dest,) = open_buckets(dest_extra={"multipart": "false", "multipart_threshold": "1KiB"})
    monkeypatch.setattr(copy_module, "MAX_PART", 2048)
    source.client.put_object(Bucket=source.name, Key="huge.iso", Body=data_of(4096))
    gets = calls(source.client, "GetObject")

    # When it is copied
    outcome = copy_key(source, dest, "huge.iso", retry=FAST_RETRY)

    # Then that key fails at once (no retry can help), saying why, and nothing is written
    assert outcome.action == "failed"
    assert "4096 bytes: over 5 GiB it needs multipart, which dest1 turns off" in (outcome.error or "")
    assert len(gets) == 1
    assert is_absent(dest, "huge.iso")


# -- integrity failures --------------------------------------------------------------------------


def test_corrupt_read_of_a_small_object_fails_the_key_and_writes_nothing(
    open_buckets: OpenBuckets, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a source whose reads always come back with a flipped byte
    source, (dest,) = open_buckets()
    data = data_of(1000, seed=5)
    source.client.put_object(Bucket=source.name, Key="flip.bin", Body=data)
    corrupt_reads(monkeypatch, source.client)

    # When the key is copied
    outcome = copy_key(source, dest, "flip.bin", retry=FAST_RETRY)

    # Then the MD5 check fails it and the destination has nothing
    assert outcome.action == "failed"
    assert f"the source says {md5_hex(data)}" in (outcome.error or "")
    assert "read MD5" in (outcome.error or "")
    assert is_absent(dest, "flip.bin")


def test_corrupt_read_of_a_multipart_object_is_aborted_leaving_no_object_and_no_upload(
    open_buckets: OpenBuckets, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a 12 MiB source object whose reads come back corrupt, and a multipart destination
    source, (dest,) = open_buckets(dest_extra=MULTIPART)
    data = data_of(12 * MiB, seed=6)
    source.client.put_object(Bucket=source.name, Key="flip-big.bin", Body=data)
    corrupt_reads(monkeypatch, source.client)
    aborts = calls(dest.client, "AbortMultipartUpload")

    # When the key is copied
    outcome = copy_key(source, dest, "flip-big.bin", retry=FAST_RETRY)

    # Then every attempt was aborted: no object and no pending multipart upload remain
    assert outcome.action == "failed"
    assert f"the source says {md5_hex(data)}" in (outcome.error or "")
    assert len(aborts) == FAST_RETRY.attempts
    assert is_absent(dest, "flip-big.bin")
    assert pending_uploads(dest) == []


def test_one_corrupt_read_is_retried_and_the_copy_lands_intact(
    open_buckets: OpenBuckets, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a source whose first read only comes back corrupt
    source, (dest,) = open_buckets()
    data = data_of(3000, seed=7)
    source.client.put_object(Bucket=source.name, Key="once.bin", Body=data)
    corrupt_reads(monkeypatch, source.client, times=1)

    # When the key is copied
    with caplog.at_level(logging.WARNING, logger="s3s3"):
        outcome = copy_key(source, dest, "once.bin", retry=FAST_RETRY)

    # Then the second attempt copies it intact, after one warning
    assert outcome.action == "copied"
    assert read_back(dest, "once.bin")[0] == data
    assert [r.getMessage().split(" after: ")[0] for r in caplog.records] == [
        f"Retrying 'once.bin' to {dest.endpoint.label} in 0.0s"
    ]


def test_failed_part_aborts_the_multipart_upload_leaving_nothing(
    open_buckets: OpenBuckets, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a multipart destination that refuses the second part
    source, (dest,) = open_buckets(dest_extra=MULTIPART)
    source.client.put_object(Bucket=source.name, Key="refused.bin", Body=data_of(12 * MiB, seed=8))
    real = dest.client.upload_part

    def upload_part(**kwargs: Any) -> dict[str, Any]:
        if kwargs["PartNumber"] == 2:
            raise client_error("AccessDenied", 403, "UploadPart")
        return real(**kwargs)

    monkeypatch.setattr(dest.client, "upload_part", upload_part)

    # When the key is copied
    outcome = copy_key(source, dest, "refused.bin", retry=FAST_RETRY)

    # Then it fails with the store's word, and the upload was aborted: no object, no pending upload
    assert outcome.action == "failed"
    assert "AccessDenied" in (outcome.error or "")
    assert is_absent(dest, "refused.bin")
    assert pending_uploads(dest) == []


def test_transient_part_failure_is_retried_and_the_first_upload_is_aborted(
    open_buckets: OpenBuckets, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a multipart destination whose second part fails once with a 500
    source, (dest,) = open_buckets(dest_extra=MULTIPART)
    data = data_of(12 * MiB, seed=9)
    source.client.put_object(Bucket=source.name, Key="flaky.bin", Body=data)
    real = dest.client.upload_part
    failed: list[int] = []

    def upload_part(**kwargs: Any) -> dict[str, Any]:
        if kwargs["PartNumber"] == 2 and not failed:
            failed.append(2)
            raise client_error("InternalError", 500, "UploadPart")
        return real(**kwargs)

    monkeypatch.setattr(dest.client, "upload_part", upload_part)

    # When the key is copied
    outcome = copy_key(source, dest, "flaky.bin", retry=FAST_RETRY)

    # Then the retry lands it intact and the failed attempt left no upload behind
    assert outcome.action == "copied", outcome.error
    body, response = read_back(dest, "flaky.bin")
    assert body == data
    assert etag_of(response) == multipart_md5(data, 5 * MiB)
    assert pending_uploads(dest) == []


def test_a_destination_that_stores_other_bytes_is_caught_by_its_etag_and_the_copy_discarded(
    open_buckets: OpenBuckets, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a destination with verify_md5 that ignores Content-MD5 and stores a flipped byte
    source, (dest,) = open_buckets(dest_extra={"verify_md5": "true"})
    data = data_of(2048, seed=10)
    source.client.put_object(Bucket=source.name, Key="silent.bin", Body=data)
    real = dest.client.put_object

    def put_object(**kwargs: Any) -> dict[str, Any]:
        kwargs.pop("ContentMD5")
        body = kwargs["Body"]
        kwargs["Body"] = bytes([body[0] ^ 0xFF]) + body[1:]
        return real(**kwargs)

    monkeypatch.setattr(dest.client, "put_object", put_object)

    # When the key is copied
    outcome = copy_key(source, dest, "silent.bin", retry=FAST_RETRY)

    # Then the ETag the store answered exposes the bad bytes, the key fails, and no corrupt copy is left
    assert outcome.action == "failed"
    assert f"{md5_hex(data)} was sent" in (outcome.error or "")
    assert "Contents" not in dest.client.list_objects_v2(Bucket=dest.name)


def test_verify_md5_reads_a_multipart_copy_back_and_catches_bad_bytes(
    open_buckets: OpenBuckets, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a multipart destination whose ETag is no MD5, so verifying means reading it back
    source, (dest,) = open_buckets(dest_extra=MULTIPART)
    data = data_of(6 * MiB, seed=11)
    source.client.put_object(Bucket=source.name, Key="check.bin", Body=data)
    reads = calls(dest.client, "GetObject")

    # When it is copied with verify_md5, the bytes read back are good
    good = copy_key(source, dest, "check.bin", verify_md5=True)

    # Then it is copied after one read-back
    assert good.action == "copied", good.error
    assert len(reads) == 1

    # When the destination then returns different bytes for the same copy
    corrupt_reads(monkeypatch, dest.client)
    bad = copy_key(source, dest, "check.bin", verify_md5=True, check_dest=False, retry=FAST_RETRY)

    # Then the read-back MD5 does not match and the key fails
    assert bad.action == "failed"
    assert f"expected {md5_hex(data)}" in (bad.error or "")


# -- missing keys, server-side copies ------------------------------------------------------------


def test_missing_source_key_is_reported_as_missing_with_a_warning(
    open_buckets: OpenBuckets, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a key that is not at the source
    source, (dest,) = open_buckets()

    # When it is uploaded
    with caplog.at_level(logging.INFO, logger="s3s3"):
        outcomes = upload(source, dest, "gone/away.txt")

    # Then the outcome says missing, one warning says so, and nothing was written
    assert [o.action for o in outcomes] == ["missing"]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", f"Missing 'gone/away.txt' at the source; nothing copied to {dest.endpoint.label}")
    ]
    assert is_absent(dest, "gone/away.txt")


def test_same_store_copies_server_side_keeping_metadata(open_buckets: OpenBuckets, s3_source: Server) -> None:
    # Given source and destination on the same server with the same credentials
    source, (dest,) = open_buckets(dest_server=s3_source)
    assert dest.endpoint.same_store(source.endpoint)
    data = data_of(5000, seed=12)
    source.client.put_object(Bucket=source.name, Key="local.bin", Body=data, Metadata=USER_METADATA, **HEADERS)
    gets = calls(source.client, "GetObject") + calls(dest.client, "GetObject")
    copies = calls(dest.client, "CopyObject")

    # When it is copied
    outcome = copy_key(source, dest, "local.bin")

    # Then the store copied it (no bytes read by s3s3), with headers, metadata and s3s3's record
    assert outcome.action == "copied", outcome.error
    assert gets == []
    assert len(copies) == 1
    body, response = read_back(dest, "local.bin")
    assert body == data
    for header, value in HEADERS.items():
        assert response[header] == value, header
    assert response["Metadata"] == {**USER_METADATA, META_MD5: md5_hex(data), META_ETAG: md5_hex(data)}

    # And a second copy is skipped
    assert copy_key(source, dest, "local.bin").action == "skipped"
    assert len(copies) == 1


def test_same_store_copy_quotes_awkward_keys_in_the_copy_source(open_buckets: OpenBuckets, s3_source: Server) -> None:
    # Given, on one store, a key with every character a CopySource header must quote
    source, (dest,) = open_buckets(dest_server=s3_source)
    key = "dir one/a+b c%25 100%?x=1#frag/ünï😀.txt"
    source.client.put_object(Bucket=source.name, Key=key, Body=b"quoted")

    # When it is copied server-side
    outcome = copy_key(source, dest, key)

    # Then exactly that key holds the bytes
    assert outcome.action == "copied", outcome.error
    assert [o["Key"] for o in dest.client.list_objects_v2(Bucket=dest.name)["Contents"]] == [key]
    assert read_back(dest, key)[0] == b"quoted"


def test_same_store_missing_key_is_missing(open_buckets: OpenBuckets, s3_source: Server) -> None:
    # Given source and destination on the same store, and a key that is not there
    source, (dest,) = open_buckets(dest_server=s3_source)

    # When it is copied
    outcome = copy_key(source, dest, "never-was")

    # Then it is missing, not failed
    assert outcome.action == "missing"


# -- clients -------------------------------------------------------------------------------------


class _Raw:
    """The raw stream behind a fake HTTP response."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def answer_locally(client: Any, operation: str, body: bytes) -> list[Any]:
    """Answer every `operation` request with 200 and `body` without sending it; return the requests."""
    sent: list[Any] = []

    def respond(request: Any, **_: Any) -> AWSResponse:
        sent.append(request)
        return AWSResponse(request.url, 200, {}, _Raw(body))

    client.meta.events.register(f"before-send.s3.{operation}", respond)
    return sent


def endpoint(**options: Any) -> Endpoint:
    defaults: dict[str, Any] = {
        "name": "source",
        "bucket": "photos",
        "endpoint_url": "http://127.0.0.1:9",
        "access_key": "AKEXAMPLE",
        "secret_key": "secret",
    }
    return Endpoint(**{**defaults, **options})


LIST_RESULT = (
    b'<?xml version="1.0"?><ListBucketResult><Name>photos</Name><IsTruncated>false</IsTruncated></ListBucketResult>'
)
DELETE_RESULT = b'<?xml version="1.0"?><DeleteResult></DeleteResult>'


def test_sigv2_path_style_client_is_configured_as_asked() -> None:
    # Given an endpoint for an old Ceph: SigV2, path style
    client = create_client(endpoint(signature_version="s3", addressing_style="path"))

    # Then the client says so, and computes checksums only where S3 requires them
    assert client.meta.config.signature_version == "s3"
    assert client.meta.config.s3["addressing_style"] == "path"
    assert client.meta.config.request_checksum_calculation == "when_required"
    assert client.meta.config.response_checksum_validation == "when_required"


def test_checksums_option_turns_on_botocore_checksums() -> None:
    # Given an endpoint with checksums = true
    client = create_client(endpoint(checksums=True))

    # Then botocore computes and validates checksums where supported
    assert client.meta.config.request_checksum_calculation == "when_supported"
    assert client.meta.config.response_checksum_validation == "when_supported"


def test_sigv2_bucket_calls_send_the_signed_bucket_path_with_its_slash() -> None:
    # Given a SigV2 path-style client
    client = create_client(endpoint(signature_version="s3", addressing_style="path"))
    sent = answer_locally(client, "ListObjects", LIST_RESULT)
    objects = answer_locally(client, "HeadObject", b"")

    # When it lists the bucket and heads a key
    client.list_objects(Bucket="photos")
    client.head_object(Bucket="photos", Key="a/b.jpg")

    # Then the bucket call goes to "/photos/" (the path signed), and key calls are untouched
    assert urlsplit(sent[0].url).path == "/photos/"
    assert urlsplit(objects[0].url).path == "/photos/a/b.jpg"
    assert sent[0].headers["Authorization"].startswith(b"AWS AKEXAMPLE:")


def test_sigv4_bucket_calls_keep_botocore_paths() -> None:
    # Given a SigV4 path-style client
    client = create_client(endpoint(addressing_style="path"))
    sent = answer_locally(client, "ListObjects", LIST_RESULT)

    # When it lists the bucket
    client.list_objects(Bucket="photos")

    # Then the path is botocore's own
    assert urlsplit(sent[0].url).path == "/photos"


def test_delete_objects_carries_content_md5_and_no_crc32() -> None:
    # Given a client with the default checksums setting
    client = create_client(endpoint(signature_version="s3", addressing_style="path"))
    sent = answer_locally(client, "DeleteObjects", DELETE_RESULT)

    # When it deletes a batch of keys
    client.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": "a"}, {"Key": "b"}]})

    # Then Swift gets the Content-MD5 it requires of the body sent, and no CRC32 header
    headers = {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in sent[0].headers.items()}
    assert headers["content-md5"] == base64.b64encode(hashlib.md5(sent[0].body).digest()).decode()
    assert not any(name.startswith("x-amz-checksum") or name.startswith("x-amz-sdk-checksum") for name in headers)


def test_delete_objects_with_checksums_on_sends_botocore_crc32() -> None:
    # Given a client with checksums = true
    client = create_client(endpoint(checksums=True, addressing_style="path"))
    sent = answer_locally(client, "DeleteObjects", DELETE_RESULT)

    # When it deletes a batch of keys
    client.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": "a"}]})

    # Then botocore's default CRC32 is left alone
    assert "x-amz-checksum-crc32" in {k.lower() for k in sent[0].headers}



def test_delete_objects_through_an_s3s3_client_deletes_on_a_real_server(s3_dest: Server) -> None:
    # Given two keys on a real server and an s3s3 client for it
    name = new_bucket(s3_dest, "del")
    client = create_client(
        endpoint(
            bucket=name,
            endpoint_url=s3_dest.endpoint_url,
            access_key=s3_dest.access_key,
            secret_key=s3_dest.secret_key,
            addressing_style="path",
        )
    )
    for key in ("a", "b"):
        client.put_object(Bucket=name, Key=key, Body=key.encode())

    # When both are deleted in one batch
    response = client.delete_objects(Bucket=name, Delete={"Objects": [{"Key": "a"}, {"Key": "b"}]})

    # Then the server accepted the request and the bucket is empty
    assert sorted(d["Key"] for d in response["Deleted"]) == ["a", "b"]
    assert client.list_objects_v2(Bucket=name).get("Contents", []) == []


def test_the_lean_path_skips_an_identical_key_and_copies_a_changed_one(open_buckets: OpenBuckets) -> None:
    # Given buckets opened as s3s3 opens them, with the lean path
    source, (dest,) = open_buckets(lean=True)
    assert source.wire is not None and dest.wire is not None
    source.client.put_object(Bucket=source.name, Key="doc.txt", Body=b"version one", Metadata={"a": "1"})
    assert copy_key(source, dest, "doc.txt").action == "copied"

    # When it is copied again unchanged, then it is skipped
    assert copy_key(source, dest, "doc.txt").action == "skipped"

    # When the source changes, then the new bytes land with their record
    source.client.put_object(Bucket=source.name, Key="doc.txt", Body=b"version two, longer")
    assert copy_key(source, dest, "doc.txt").action == "copied"
    body, response = read_back(dest, "doc.txt")
    assert body == b"version two, longer"
    assert response["Metadata"] == {META_MD5: md5_hex(body), META_ETAG: md5_hex(body)}


def test_the_lean_path_reports_a_missing_source_key(open_buckets: OpenBuckets) -> None:
    source, (dest,) = open_buckets(lean=True)
    assert copy_key(source, dest, "not/there").action == "missing"


def test_the_lean_path_is_not_used_for_sigv2_or_when_checksums_are_on(open_buckets: OpenBuckets) -> None:
    source, (dest,) = open_buckets(dest_extra={"signature_version": "s3"}, lean=True)
    assert source.wire is not None
    assert dest.wire is None
    _, (checked,) = open_buckets(dest_extra={"checksums": "true"}, lean=True)
    assert checked.wire is None


# -- multipart sources on the lean path: parts are ranged reads streamed into UploadPart ----------


def watch_streamed_parts(monkeypatch: pytest.MonkeyPatch, flip: Callable[[int], bool] = lambda n: False) -> list[int]:
    """Record the part numbers streamed through Wire.upload_part; where flip(n), the nth arrives with a byte flipped."""
    real = Wire.upload_part
    seen: list[int] = []

    def upload_part(self: Wire, key: str, upload_id: str, number: int, chunks: Any, length: int) -> Any:
        seen.append(number)
        if flip(len(seen)):
            chunks = _flipped_first(chunks)
        return real(self, key, upload_id, number, chunks, length)

    monkeypatch.setattr(Wire, "upload_part", upload_part)
    return seen


def _flipped_first(chunks: Any) -> Iterator[bytes]:
    for i, chunk in enumerate(chunks):
        data = bytes(chunk)
        yield bytes([data[0] ^ 0xFF]) + data[1:] if i == 0 else data


def test_a_multipart_source_is_streamed_in_ranges_and_lands_intact(
    open_buckets: OpenBuckets, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a source object uploaded in parts (no MD5 from the store) and a multipart destination
    source, (dest,) = open_buckets(dest_extra=MULTIPART, lean=True)
    data = data_of(12 * MiB + 777, seed=21)
    source_etag = put_in_parts(source, "big/parts.bin", data, part=6 * MiB)
    streamed = watch_streamed_parts(monkeypatch)
    monkeypatch.setattr(parts_module, "_NO_PART_NUMBER", set())

    # When it is copied
    outcome = copy_key(source, dest, "big/parts.bin")

    # Then its three 5 MiB ranges were streamed as parts, and the bytes, ETag and record landed
    assert outcome.action == "copied", outcome.error
    assert sorted(streamed) == [1, 2, 3]
    body, response = read_back(dest, "big/parts.bin")
    assert md5_hex(body) == md5_hex(data)
    assert etag_of(response) == multipart_md5(data, 5 * MiB) == outcome.dest_etag
    assert response["Metadata"] == {META_ETAG: source_etag}
    assert pending_uploads(dest) == []
    # And moto, which answers HEAD ?partNumber=1 for the whole object (200), is not asked again
    assert {source.endpoint.label} == parts_module._NO_PART_NUMBER


def test_a_part_that_reaches_the_store_with_other_bytes_is_caught_by_its_etag_and_sent_again(
    open_buckets: OpenBuckets, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a multipart source, and a byte flipped on the wire in the first part streamed
    source, (dest,) = open_buckets(dest_extra=MULTIPART, lean=True)
    data = data_of(11 * MiB, seed=22)
    put_in_parts(source, "flip/part.bin", data)
    streamed = watch_streamed_parts(monkeypatch, flip=lambda n: n == 1)

    # When it is copied
    outcome = copy_key(source, dest, "flip/part.bin", retry=FAST_RETRY)

    # Then the store's part ETag exposed it, that part alone was sent again (not the whole key),
    # and the bytes that landed are the source's
    assert outcome.action == "copied", outcome.error
    assert outcome.attempts == 1
    assert len(streamed) == 4 and sorted(set(streamed)) == [1, 2, 3]
    assert streamed.count(streamed[0]) == 2
    assert read_back(dest, "flip/part.bin")[0] == data
    assert pending_uploads(dest) == []


def test_parts_that_always_arrive_corrupt_fail_the_key_leaving_no_object_and_no_upload(
    open_buckets: OpenBuckets, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, (dest,) = open_buckets(dest_extra=MULTIPART, lean=True)
    put_in_parts(source, "flip/always.bin", data_of(11 * MiB, seed=23))
    watch_streamed_parts(monkeypatch, flip=lambda n: True)

    outcome = copy_key(source, dest, "flip/always.bin", retry=FAST_RETRY)

    assert outcome.action == "failed"
    assert "store says" in (outcome.error or "")
    assert is_absent(dest, "flip/always.bin")
    assert pending_uploads(dest) == []


def test_a_source_that_changes_during_the_copy_is_read_again_whole(
    open_buckets: OpenBuckets, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a multipart source that is overwritten just before its first range is read
    source, (dest,) = open_buckets(dest_extra=MULTIPART, lean=True)
    put_in_parts(source, "moving.bin", data_of(11 * MiB, seed=24))
    newer = data_of(10 * MiB + 5, seed=25)
    real_get = Wire.get
    overwritten: list[bool] = []

    def get(self: Wire, key: str, headers: Any = None) -> Any:
        if headers and "Range" in headers and not overwritten:
            overwritten.append(True)
            put_in_parts(source, "moving.bin", newer)
        return real_get(self, key, headers)

    monkeypatch.setattr(Wire, "get", get)

    # When it is copied
    outcome = copy_key(source, dest, "moving.bin", retry=FAST_RETRY)

    # Then no part of the old version was mixed with the new: the new version landed whole
    assert outcome.action == "copied", outcome.error
    assert read_back(dest, "moving.bin")[0] == newer
    assert pending_uploads(dest) == []


def test_a_store_whose_part_etags_are_not_md5s_gets_each_part_whole_with_content_md5(
    open_buckets: OpenBuckets, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a destination whose streamed part answers carry an ETag that is not an MD5 (as with SSE-KMS)
    monkeypatch.setattr(parts_module, "_NO_MD5_PART_ETAGS", set())
    source, (dest,) = open_buckets(dest_extra=MULTIPART, lean=True)
    data = data_of(11 * MiB, seed=26)
    put_in_parts(source, "opaque.bin", data)
    real = Wire.upload_part

    def upload_part(self: Wire, *args: Any) -> Any:
        response = real(self, *args)
        response.headers.replace_header("ETag", '"not-an-md5"')
        return response

    monkeypatch.setattr(Wire, "upload_part", upload_part)
    with_md5 = sent_headers(dest.client, "UploadPart")

    # When it is copied
    outcome = copy_key(source, dest, "opaque.bin")

    # Then every part went (again) through boto3 with its Content-MD5, and the copy is intact
    assert outcome.action == "copied", outcome.error
    assert len(with_md5) == 3
    assert all(h.get("Content-MD5") for h in with_md5)
    body, response = read_back(dest, "opaque.bin")
    assert body == data
    assert etag_of(response) == multipart_md5(data, 5 * MiB)


def test_without_check_small_a_single_put_object_is_sent_without_asking_the_destination(
    open_buckets: OpenBuckets, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a small object already copied, and a large one (in parts) already copied
    source, (dest,) = open_buckets(dest_extra=MULTIPART, lean=True)
    small, large = data_of(4096, seed=31), data_of(6 * MiB, seed=32)
    source.client.put_object(Bucket=source.name, Key="small.bin", Body=small)
    source.client.put_object(Bucket=source.name, Key="large.bin", Body=large)
    assert copy_key(source, dest, "small.bin").action == "copied"
    assert copy_key(source, dest, "large.bin").action == "copied"
    heads: list[str] = []
    real_head = Wire.head
    monkeypatch.setattr(Wire, "head", lambda self, key: heads.append(key) or real_head(self, key))

    # When both are copied again with check_small=False (as the listener does)
    again_small = copy_key(source, dest, "small.bin", check_small=False)
    again_large = copy_key(source, dest, "large.bin", check_small=False)

    # Then the small one is sent again without a HEAD, and the large one is found identical by one HEAD
    assert (again_small.action, again_large.action) == ("copied", "skipped")
    assert heads == ["large.bin"]
    assert read_back(dest, "small.bin")[0] == small


# -- multipart sources copied part for part: no hashing, the ETags must add up ---------------------


def count_hashed_bytes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, [bytes fed to MD5 anywhere in the process]."""
    total = [0]
    real_md5 = hashlib.md5

    class Counted:
        def __init__(self, data: bytes = b"") -> None:
            self.inner = real_md5()
            self.update(data)

        def update(self, data: Any) -> None:
            total[0] += len(data)
            self.inner.update(data)

        def digest(self) -> bytes:
            return self.inner.digest()

        def hexdigest(self) -> str:
            return self.inner.hexdigest()

    monkeypatch.setattr(hashlib, "md5", Counted)
    return total


@pytest.fixture
def aligned(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Make the source say its part size, as stores that answer HEAD ?partNumber=1 do (moto does not)."""
    monkeypatch.setattr(parts_module, "_UNALIGNED", set())

    def say(size: int) -> None:
        monkeypatch.setattr(parts_module, "source_part_size", lambda source, info: size)

    return say


def test_a_multipart_source_is_copied_part_for_part_and_keeps_its_etag(
    open_buckets: OpenBuckets, aligned: Callable[[int], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a source uploaded in 6 MiB parts, whose store says so, and a destination that splits at 5 MiB
    source, (dest,) = open_buckets(dest_extra=MULTIPART, lean=True)
    data = data_of(13 * MiB + 99, seed=41)
    source_etag = put_in_parts(source, "aligned.bin", data, part=6 * MiB)
    aligned(6 * MiB)
    hashed = count_hashed_bytes(monkeypatch)

    # When it is copied
    outcome = copy_key(source, dest, "aligned.bin")

    # Then it went in the source's own three parts, unhashed, and its ETag is the source's
    assert outcome.action == "copied", outcome.error
    assert hashed[0] < 1024  # the part ETags were hashed together; no byte of the object was
    body, response = read_back(dest, "aligned.bin")
    assert etag_of(response) == source_etag == multipart_md5(data, 6 * MiB) == outcome.dest_etag
    assert md5_hex(body) == md5_hex(data)
    assert response["Metadata"] == {META_ETAG: source_etag}
    assert pending_uploads(dest) == []


def test_part_for_part_etags_that_do_not_add_up_are_aborted_and_the_copy_sent_again_hashed(
    open_buckets: OpenBuckets, aligned: Callable[[int], None], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a part-for-part copy whose first part reaches the store with a byte flipped
    source, (dest,) = open_buckets(dest_extra=MULTIPART, lean=True)
    data = data_of(12 * MiB, seed=42)
    source_etag = put_in_parts(source, "unaligned.bin", data, part=6 * MiB)
    aligned(6 * MiB)
    streamed = watch_streamed_parts(monkeypatch, flip=lambda n: n == 1)
    aborts: list[str] = []
    real_abort = Wire.abort_multipart_upload
    monkeypatch.setattr(Wire, "abort_multipart_upload", lambda self, *a: aborts.append(a[0]) or real_abort(self, *a))

    # When it is copied
    with caplog.at_level(logging.WARNING, logger="s3s3"):
        outcome = copy_key(source, dest, "unaligned.bin")

    # Then the ETags did not make the source's, that upload was aborted, and the copy went again in hashed ranges
    assert outcome.action == "copied", outcome.error
    assert len(aborts) == 1
    assert len(streamed) == 2 + 3  # two parts of 6 MiB, then three of 5 MiB
    assert f"not the source's {source_etag}" in caplog.text
    assert read_back(dest, "unaligned.bin")[0] == data
    assert pending_uploads(dest) == []
    # And the pair is not tried part for part again
    assert (source.endpoint.label, dest.endpoint.label) in parts_module._UNALIGNED


def whole_gets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Keys read by a lean GET of the whole object (not a range) from now on."""
    seen: list[str] = []
    real = Wire.get

    def get(self: Wire, key: str, headers: Any = None) -> Any:
        if not headers or "Range" not in headers:
            seen.append(key)
        return real(self, key, headers)

    monkeypatch.setattr(Wire, "get", get)
    return seen


def test_a_listed_multipart_source_is_read_only_in_ranges_after_a_head(
    open_buckets: OpenBuckets, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a multipart source, as a bucket listing shows it
    source, (dest,) = open_buckets(dest_extra=MULTIPART, lean=True)
    data = data_of(11 * MiB, seed=51)
    put_in_parts(source, "listed.bin", data)
    (listed,) = list_objects(source)
    gets = whole_gets(monkeypatch)

    # When it is copied with what the listing said
    outcome = copy_key(source, dest, "listed.bin", check_dest=False, listed=listed)

    # Then no GET of the whole object was started (and dropped): the parts read their ranges
    assert outcome.action == "copied", outcome.error
    assert gets == []
    assert read_back(dest, "listed.bin")[0] == data


def test_a_listed_source_that_carries_its_md5_is_read_in_order_after_all(open_buckets: OpenBuckets) -> None:
    # Given a multipart source carrying s3s3-md5 (a copy of a copy), so its whole MD5 is checked
    source, (dest,) = open_buckets(dest_extra=MULTIPART, lean=True)
    data = data_of(11 * MiB, seed=52)
    client = source.client
    metadata = {META_MD5: md5_hex(data)}
    upload_id = client.create_multipart_upload(Bucket=source.name, Key="carried.bin", Metadata=metadata)["UploadId"]
    etags = [
        client.upload_part(Bucket=source.name, Key="carried.bin", UploadId=upload_id, PartNumber=n,
                           Body=data[(n - 1) * 6 * MiB : n * 6 * MiB])["ETag"]
        for n in (1, 2)
    ]  # fmt: skip
    client.complete_multipart_upload(
        Bucket=source.name, Key="carried.bin", UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )  # fmt: skip
    (listed,) = list_objects(source)

    # When it is copied with what the listing said
    outcome = copy_key(source, dest, "carried.bin", check_dest=False, listed=listed)

    # Then it was read in order and hashed whole: the copy carries the MD5, checked against the recorded one
    assert outcome.action == "copied", outcome.error
    assert outcome.md5 == md5_hex(data)
    body, response = read_back(dest, "carried.bin")
    assert body == data
    assert response["Metadata"][META_MD5] == md5_hex(data)
