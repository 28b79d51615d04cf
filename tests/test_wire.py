"""The lean request path (s3s3.wire) against a real moto server: same answers as boto3."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

import s3s3.wire
from s3s3.bucket import duplicate_bucket
from s3s3.config import Config, Endpoint
from s3s3.s3 import (
    ClientError,
    abort_multipart_upload,
    complete_multipart_upload,
    create_client,
    create_multipart_upload,
    get_object,
    head,
    list_objects,
    multipart_etag,
    open_bucket,
    put_object,
)
from tests.faults import FaultProxy
from tests.helpers import new_bucket
from tests.servers.base import Server

pytestmark = pytest.mark.timeout(120)

AWKWARD = ["a b", "a+b", "100%", "q?x=1&y", "h#t", "é/ü/😀", "deep/a/b/c", "a//b", "ctl\x01char", " lead"]


def open_pair(make_config: Callable[..., Config], s3_source: Server, s3_dest: Server):  # noqa: ANN201
    config = make_config((s3_source, new_bucket(s3_source, "src")), [(s3_dest, new_bucket(s3_dest, "dst"))])
    return open_bucket(config.source), open_bucket(config.source, lean=False), config


def test_lean_listing_pages_past_1000_keys_and_matches_boto3_key_for_key(
    make_config: Callable[..., Config], s3_source: Server, s3_dest: Server
) -> None:
    # Given 1,010 keys, some of which need escaping in XML or URLs
    lean, plain, _ = open_pair(make_config, s3_source, s3_dest)
    keys = [f"k/{i:04d}" for i in range(1000)] + AWKWARD
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: plain.client.put_object(Bucket=plain.name, Key=k, Body=k.encode()), keys))

    # When both paths list the bucket
    assert lean.wire is not None
    by_lean = [(o.key, o.size, o.etag) for o in list_objects(lean)]
    by_boto = [(o.key, o.size, o.etag) for o in list_objects(plain)]

    # Then they agree on every key, size and ETag, in order, across pages
    assert len(by_lean) == len(keys)
    assert by_lean == by_boto
    assert sorted(keys, key=lambda k: k.encode()) == [k for k, _, _ in by_lean]


def test_lean_listing_with_a_prefix_and_start_after(
    make_config: Callable[..., Config], s3_source: Server, s3_dest: Server
) -> None:
    lean, plain, _ = open_pair(make_config, s3_source, s3_dest)
    for key in ("a/1", "a/2", "a/3", "b/1"):
        plain.client.put_object(Bucket=plain.name, Key=key, Body=b"x")
    assert [o.key for o in list_objects(lean, "a/")] == ["a/1", "a/2", "a/3"]
    assert [o.key for o in list_objects(lean, "a/", start_after="a/1")] == ["a/2", "a/3"]


def test_lean_get_head_and_put_answer_as_boto3_does(
    make_config: Callable[..., Config], s3_source: Server, s3_dest: Server
) -> None:
    # Given an object with headers and metadata
    lean, plain, _ = open_pair(make_config, s3_source, s3_dest)
    plain.client.put_object(
        Bucket=plain.name, Key="doc", Body=b"hello", ContentType="text/plain", CacheControl="no-cache",
        Metadata={"owner": "ops"},
    )  # fmt: skip

    # When both paths HEAD and GET it
    by_lean, by_boto = head(lean, "doc"), head(plain, "doc")
    info, body = get_object(lean, "doc")

    # Then they agree, and the body streams
    assert (by_lean.size, by_lean.etag, by_lean.metadata, by_lean.headers) == (
        by_boto.size, by_boto.etag, by_boto.metadata, by_boto.headers,
    )  # fmt: skip
    assert info.etag == by_boto.etag
    assert body.read() == b"hello"
    body.close()

    # And a lean PUT lands with its headers and metadata, its Content-MD5 checked
    md5 = "4b3a6218bb3e3a7303e8a171a60fcf92"
    etag = put_object(lean, "copy", b"bytes", md5, {"ContentType": "a/b", "Metadata": {"k": "v"}})
    got = plain.client.get_object(Bucket=plain.name, Key="copy")
    assert (etag, got["Body"].read(), got["ContentType"], got["Metadata"]) == (
        md5, b"bytes", "a/b", {"k": "v"},
    )  # fmt: skip


def test_lean_errors_are_botocore_client_errors_with_the_store_code(
    make_config: Callable[..., Config], s3_source: Server, s3_dest: Server
) -> None:
    lean, _, _ = open_pair(make_config, s3_source, s3_dest)
    assert head(lean, "absent") is None
    with pytest.raises(ClientError) as missing:
        get_object(lean, "absent")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"
    nowhere = open_bucket(replace(lean.endpoint, bucket="no-such-bucket-here"))
    with pytest.raises(ClientError) as no_bucket:
        next(list_objects(nowhere))
    assert no_bucket.value.response["Error"]["Code"] == "NoSuchBucket"


def test_a_half_read_body_gives_up_its_connection_and_the_next_request_works(
    make_config: Callable[..., Config], s3_source: Server, s3_dest: Server
) -> None:
    lean, plain, _ = open_pair(make_config, s3_source, s3_dest)
    plain.client.put_object(Bucket=plain.name, Key="big", Body=b"x" * 1_000_000)
    _, body = get_object(lean, "big")
    assert body.read(10) == b"x" * 10
    body.close()
    assert head(lean, "big").size == 1_000_000


def test_lean_requests_retry_transient_answers_as_botocore_would_then_give_up(
    make_config: Callable[..., Config], s3_source: Server, s3_dest: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a bucket behind a proxy that answers 503 or SlowDown, or drops, a few requests
    monkeypatch.setattr(s3s3.wire, "REQUEST_BACKOFF", 0.0)
    _, plain, config = open_pair(make_config, s3_source, s3_dest)
    plain.client.put_object(Bucket=plain.name, Key="ok", Body=b"fine")
    plain.client.put_object(Bucket=plain.name, Key="doomed", Body=b"never")
    proxy = FaultProxy(s3_source.endpoint_url, rate=1.0).start()
    proxy.max_faults_per_path = 2
    proxy.faults = ("503", "slowdown", "drop")
    proxy.doomed = ("doomed",)
    try:
        lean = open_bucket(replace(config.source, endpoint_url=proxy.url))

        # When a key fails twice, then works: the third attempt answers
        _, body = get_object(lean, "ok")
        assert body.read() == b"fine"
        assert len([r for r in proxy.requests if r[0] == "GET" and r[1].endswith("/ok")]) == 3

        # When a key always fails: botocore's tries for max_attempts = 4 (5 in all), then the store's error
        with pytest.raises(ClientError) as failed:
            get_object(lean, "doomed")
        assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert proxy.count("GET", "/doomed") == 5
    finally:
        proxy.stop()


@pytest.mark.parametrize(
    ("endpoint_url", "bucket"),
    [
        ("http://127.0.0.1:9000", "photos"),
        ("https://s3.example.com", "photos"),
        ("https://s3.example.com:8443/", "with.dots"),
        ("http://[::1]:7480", "photos"),
        ("https://gateway.example.com/s3/", "backups-2026"),
    ],
)
@pytest.mark.parametrize("addressing_style", ["auto", "path"])
def test_a_wire_made_without_a_client_addresses_the_bucket_as_botocore_does(
    endpoint_url: str, bucket: str, addressing_style: str
) -> None:
    # Given an endpoint whose lean path needs no client (configured URL, keys, not virtual-hosted)
    endpoint = Endpoint(
        name="dest1", endpoint_url=endpoint_url, bucket=bucket, access_key="AK", secret_key="SK",
        addressing_style=addressing_style,
    )  # fmt: skip

    # When it is opened, and when a Wire is made from a real client for the same endpoint
    opened = open_bucket(endpoint)
    from_client = s3s3.wire.Wire.from_client(create_client(endpoint), bucket, opened.wire.credentials)

    # Then both send to the same place, and no client was built for the first
    assert (opened.wire.scheme, opened.wire.netloc, opened.wire.prefix) == (
        from_client.scheme, from_client.netloc, from_client.prefix,
    )  # fmt: skip
    assert opened.client._client is None
    assert "SK" not in repr(opened.wire.credentials)


def test_a_sync_that_the_listings_decide_builds_no_boto3_client(
    make_config: Callable[..., Config], s3_source: Server, s3_dest: Server
) -> None:
    # Given a source and a destination that already holds it all
    config = make_config((s3_source, new_bucket(s3_source, "src")), [(s3_dest, new_bucket(s3_dest, "dst"))])
    source, dest = open_bucket(config.source), open_bucket(config.dests[0])
    for key in ("a", "b/c"):
        put_object(source, key, key.encode(), hashlib.md5(key.encode()).hexdigest(), {})
        put_object(dest, key, key.encode(), hashlib.md5(key.encode()).hexdigest(), {})
    assert source.client._client is None and dest.client._client is None

    # When a bucket sync runs
    summary = duplicate_bucket(source, [dest])

    # Then the listings decided everything, and neither boto3 client was ever made
    assert (summary.copied, summary.skipped) == (0, 2)
    assert source.client._client is None and dest.client._client is None


def test_lean_multipart_upload_keeps_headers_and_metadata_and_reports_a_bad_part(
    make_config: Callable[..., Config], s3_source: Server, s3_dest: Server
) -> None:
    # Given the lean path to a bucket
    lean, plain, _ = open_pair(make_config, s3_source, s3_dest)
    assert lean.wire is not None
    args = {"ContentType": "video/mp4", "Metadata": {"origin": "camera-7", "s3s3-source-etag": "abc-2"}}
    part_one, part_two = b"a" * (5 * 1024 * 1024), b"tail"

    # When an upload is created, its parts sent, and it is completed
    upload_id = create_multipart_upload(lean, "clip.mp4", args)
    etags = [
        plain.client.upload_part(Bucket=plain.name, Key="clip.mp4", UploadId=upload_id, PartNumber=n, Body=body)["ETag"]
        for n, body in ((1, part_one), (2, part_two))
    ]
    etag = complete_multipart_upload(lean, "clip.mp4", upload_id, [(1, etags[0]), (2, etags[1])])

    # Then the object holds the bytes, headers and metadata, under the ETag the store answered
    got = plain.client.get_object(Bucket=plain.name, Key="clip.mp4")
    assert got["Body"].read() == part_one + part_two
    assert (got["ContentType"], got["Metadata"]) == ("video/mp4", args["Metadata"])
    assert etag == got["ETag"].strip('"') == multipart_etag([hashlib.md5(p).digest() for p in (part_one, part_two)])

    # And completing with a part the store does not hold is the store's error; an abort leaves nothing
    upload_id = create_multipart_upload(lean, "bad.mp4", {})
    with pytest.raises(ClientError) as raised:
        complete_multipart_upload(lean, "bad.mp4", upload_id, [(1, '"0123456789abcdef0123456789abcdef"')])
    assert raised.value.response["Error"]["Code"] in ("InvalidPart", "InvalidPartOrder")
    abort_multipart_upload(lean, "bad.mp4", upload_id)
    assert plain.client.list_multipart_uploads(Bucket=plain.name).get("Uploads", []) == []
