"""The lean transport (s3s3.store.http, s3s3.store.wire) against a real moto server: the same answers as boto3's.

Each test opens the endpoint as production does (`open_store`: SigV4 with
checksums off is the lean HttpStore) and, where it compares, a BotoStore on
the very same endpoint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from urllib.parse import urlsplit

import pytest

import s3s3.store.wire
from s3s3.config import Config, Endpoint, MiB
from s3s3.errors import NoSuchBucket, NotFound, StoreError
from s3s3.store import Attributes, Store, list_objects, multipart_etag, open_store
from s3s3.store import boto as boto_transport
from s3s3.store.boto import BotoStore, create_client
from s3s3.store.http import HttpStore
from s3s3.sync.bucket import duplicate_bucket
from tests.faults import FaultProxy
from tests.helpers import md5_hex, new_bucket
from tests.servers.base import Server
from tests.stores import FaultyStore, bucket_of, client_of, open_with

pytestmark = pytest.mark.timeout(60)

AWKWARD = ["a b", "a+b", "100%", "q?x=1&y", "h#t", "é/ü/😀", "deep/a/b/c", "a//b", "ctl\x01char", " lead"]
PROBE = "s3s3-url-probe"

OpenPair = Callable[[], tuple[HttpStore, BotoStore, Config]]


@pytest.fixture
def open_pair(make_config: Callable[..., Config], s3_source: Server, s3_dest: Server) -> Iterator[OpenPair]:
    """A fresh source bucket opened as production opens it (the lean transport), and as a BotoStore."""
    opened: list[Store] = []

    def make() -> tuple[HttpStore, BotoStore, Config]:
        config = make_config((s3_source, new_bucket(s3_source, "src")), [(s3_dest, new_bucket(s3_dest, "dst"))])
        lean, plain = open_store(config.source), open_with(config.source, "boto3")
        assert isinstance(lean, HttpStore) and isinstance(plain, BotoStore)
        opened.extend((lean, plain))
        return lean, plain, config

    yield make
    for store in opened:
        store.close()


def boto3_sessions_asked() -> int:
    """How often a boto3 session was asked for: once by every create_client (and credential chain lookup)."""
    info = boto_transport._session.cache_info()
    return info.hits + info.misses


# -- listings ------------------------------------------------------------------------------------


def test_lean_listing_pages_past_1000_keys_and_matches_boto3_key_for_key(open_pair: OpenPair) -> None:
    # Given 1,010 keys, some of which need escaping in XML or URLs
    lean, plain, _ = open_pair()
    keys = [f"k/{i:04d}" for i in range(1000)] + AWKWARD
    client = client_of(plain)
    with ThreadPoolExecutor(8) as pool:  # botocore's pool holds 10 connections
        list(pool.map(lambda k: client.put_object(Bucket=bucket_of(plain), Key=k, Body=k.encode()), keys))

    # When both transports list the bucket
    by_lean = [(o.key, o.size, o.etag) for o in list_objects(lean)]
    by_boto = [(o.key, o.size, o.etag) for o in list_objects(plain)]

    # Then they agree on every key, size and ETag, in order, across pages
    assert len(by_lean) == len(keys)
    assert by_lean == by_boto
    assert sorted(keys, key=lambda k: k.encode()) == [k for k, _, _ in by_lean]


def test_lean_listing_with_a_prefix_and_start_after(open_pair: OpenPair) -> None:
    # Given keys under two prefixes
    lean, plain, _ = open_pair()
    for key in ("a/1", "a/2", "a/3", "b/1"):
        client_of(plain).put_object(Bucket=bucket_of(plain), Key=key, Body=b"x")

    # Then the lean listing keeps to the prefix, and starts after the key given
    assert [o.key for o in list_objects(lean, "a/")] == ["a/1", "a/2", "a/3"]
    assert [o.key for o in list_objects(lean, "a/", start_after="a/1")] == ["a/2", "a/3"]
    assert [o.key for o in list_objects(lean, "a/", start_after="a/1")] == [
        o.key for o in list_objects(plain, "a/", start_after="a/1")
    ]


# -- objects -------------------------------------------------------------------------------------


def test_lean_get_head_and_put_answer_as_boto3_does(open_pair: OpenPair) -> None:
    # Given an object with headers and metadata
    lean, plain, _ = open_pair()
    client_of(plain).put_object(
        Bucket=bucket_of(plain), Key="doc", Body=b"hello", ContentType="text/plain", CacheControl="no-cache",
        Metadata={"owner": "ops"},
    )  # fmt: skip

    # When both transports HEAD and GET it
    by_lean, by_boto = lean.head("doc"), plain.head("doc")
    info, body = lean.get("doc")

    # Then they agree, and the body streams
    assert by_lean is not None and by_boto is not None
    assert (by_lean.size, by_lean.etag, by_lean.metadata, by_lean.headers) == (
        by_boto.size, by_boto.etag, by_boto.metadata, by_boto.headers,
    )  # fmt: skip
    assert info.etag == by_boto.etag
    assert body.read() == b"hello"
    body.close()

    # And a lean PUT lands with its headers and metadata, its Content-MD5 checked
    md5 = "4b3a6218bb3e3a7303e8a171a60fcf92"
    attrs = Attributes(headers={"Content-Type": "a/b"}, metadata={"k": "v"})
    etag = lean.put("copy", b"bytes", length=5, md5=md5, attrs=attrs)
    got = client_of(plain).get_object(Bucket=bucket_of(plain), Key="copy")
    assert (etag, got["Body"].read(), got["ContentType"], got["Metadata"]) == (
        md5, b"bytes", "a/b", {"k": "v"},
    )  # fmt: skip


def test_lean_errors_are_store_errors_with_the_store_code(open_pair: OpenPair) -> None:
    # Given the lean store of a bucket, and of a bucket that does not exist
    lean, _, _ = open_pair()
    nowhere = open_store(replace(lean.endpoint, bucket="no-such-bucket-here"))

    # Then a missing key is None to a HEAD, and NotFound to a GET, with the store's code
    assert lean.head("absent") is None
    with pytest.raises(NotFound) as missing:
        lean.get("absent")
    assert missing.value.code == "NoSuchKey"

    # And a missing bucket is NoSuchBucket, with the store's code
    with pytest.raises(NoSuchBucket) as no_bucket:
        next(list_objects(nowhere))
    assert no_bucket.value.code == "NoSuchBucket"
    nowhere.close()


def test_a_half_read_body_gives_up_its_connection_and_the_next_request_works(open_pair: OpenPair) -> None:
    # Given a large object, of which a GET reads only 10 bytes
    lean, plain, _ = open_pair()
    client_of(plain).put_object(Bucket=bucket_of(plain), Key="big", Body=b"x" * 1_000_000)
    _, body = lean.get("big")
    assert body.read(10) == b"x" * 10

    # When the body is given up
    body.close()

    # Then the next request on the same thread is answered
    again = lean.head("big")
    assert again is not None and again.size == 1_000_000


# -- retries -------------------------------------------------------------------------------------


def test_lean_requests_retry_transient_answers_as_botocore_would_then_give_up(
    open_pair: OpenPair, s3_source: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a bucket behind a proxy that answers 503 or SlowDown, or drops, a few requests
    monkeypatch.setattr(s3s3.store.wire, "REQUEST_BACKOFF", 0.0)
    _, plain, config = open_pair()
    client_of(plain).put_object(Bucket=bucket_of(plain), Key="ok", Body=b"fine")
    client_of(plain).put_object(Bucket=bucket_of(plain), Key="doomed", Body=b"never")
    proxy = FaultProxy(s3_source.endpoint_url, rate=1.0).start()
    proxy.max_faults_per_path = 2
    proxy.faults = ("503", "slowdown", "drop")
    proxy.doomed = ("doomed",)
    lean = open_store(replace(config.source, endpoint_url=proxy.url))
    try:
        # When a key fails twice, then works: the third attempt answers
        _, body = lean.get("ok")
        assert body.read() == b"fine"
        assert len([r for r in proxy.requests if r[0] == "GET" and r[1].endswith("/ok")]) == 3

        # When a key always fails: botocore's tries for max_attempts = 4 (5 in all), then the store's error
        with pytest.raises(StoreError) as failed:
            lean.get("doomed")
        assert failed.value.status == 503
        assert failed.value.transient
        assert proxy.count("GET", "/doomed") == 5
    finally:
        lean.close()
        proxy.stop()


# -- where requests go ---------------------------------------------------------------------------


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

    # When it is opened, and when botocore's own client for the same endpoint says where a key of the bucket is
    asked = boto3_sessions_asked()
    opened = open_store(endpoint)
    made_none = boto3_sessions_asked() == asked
    presigned = create_client(endpoint).generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": PROBE})
    url = urlsplit(presigned)

    # Then both send to the same place, and no client was built for the first
    assert isinstance(opened, HttpStore)
    assert url.path.endswith(PROBE)
    scheme = "https" if opened.wire.ssl_context is not None else "http"
    assert (scheme, opened.wire.netloc, opened.wire.prefix) == (url.scheme, url.netloc, url.path[: -len(PROBE)])
    assert made_none
    assert "SK" not in repr(opened.wire.credentials)


def test_a_sync_that_the_listings_decide_builds_no_boto3_client(
    make_config: Callable[..., Config], s3_source: Server, s3_dest: Server
) -> None:
    # Given a source and a destination that already holds it all, both on the lean transport, watched
    config = make_config((s3_source, new_bucket(s3_source, "src")), [(s3_dest, new_bucket(s3_dest, "dst"))])
    lean_source, lean_dest = open_store(config.source), open_store(config.dests[0])
    assert (lean_source.transport, lean_dest.transport) == ("http", "http")
    for store in (lean_source, lean_dest):
        for key in ("a", "b/c"):
            store.put(key, key.encode(), length=len(key), md5=md5_hex(key.encode()), attrs=Attributes())
    source, dest = FaultyStore(lean_source), FaultyStore(lean_dest)
    asked = boto3_sessions_asked()

    # When a bucket sync runs
    summary = duplicate_bucket(source, [dest])

    # Then the listings decided everything, and no boto3 client was ever made
    assert (summary.copied, summary.skipped) == (0, 2)
    assert {c.operation for c in source.calls + dest.calls} == {"list_page"}
    assert boto3_sessions_asked() == asked
    lean_source.close()
    lean_dest.close()


# -- multipart -----------------------------------------------------------------------------------


def test_lean_multipart_upload_keeps_headers_and_metadata_and_reports_a_bad_part(open_pair: OpenPair) -> None:
    # Given the lean path to a bucket
    lean, plain, _ = open_pair()
    metadata = {"origin": "camera-7", "s3s3-source-etag": "abc-2"}
    attrs = Attributes(headers={"Content-Type": "video/mp4"}, metadata=metadata)
    part_one, part_two = b"a" * (5 * MiB), b"tail"

    # When an upload is created, its parts sent with their Content-MD5, and it is completed
    upload_id = lean.create_upload("clip.mp4", attrs)
    etags = [
        lean.upload_part("clip.mp4", upload_id, n, body, length=len(body), md5=md5_hex(body))
        for n, body in ((1, part_one), (2, part_two))
    ]
    etag = lean.complete_upload("clip.mp4", upload_id, [(1, etags[0]), (2, etags[1])])

    # Then each part's ETag is its MD5, and the object holds the bytes, headers and metadata,
    # under the ETag the store answered
    assert etags == [md5_hex(part_one), md5_hex(part_two)]
    got = client_of(plain).get_object(Bucket=bucket_of(plain), Key="clip.mp4")
    assert got["Body"].read() == part_one + part_two
    assert (got["ContentType"], got["Metadata"]) == ("video/mp4", metadata)
    assert etag == got["ETag"].strip('"') == multipart_etag([hashlib.md5(p).digest() for p in (part_one, part_two)])

    # And completing with a part the store does not hold is the store's error; an abort leaves nothing
    upload_id = lean.create_upload("bad.mp4", Attributes())
    assert [u.upload_id for u in lean.list_uploads("bad")] == [upload_id]
    with pytest.raises(StoreError) as raised:
        lean.complete_upload("bad.mp4", upload_id, [(1, "0123456789abcdef0123456789abcdef")])
    assert raised.value.code in ("InvalidPart", "InvalidPartOrder")
    lean.abort_upload("bad.mp4", upload_id)
    assert client_of(plain).list_multipart_uploads(Bucket=bucket_of(plain)).get("Uploads", []) == []
    assert list(lean.list_uploads("")) == []
