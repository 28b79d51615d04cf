"""The boto3 transport (s3s3.store.boto): which endpoints get it, how its client is configured, its store fixes.

Endpoints that sign with SigV2 (old Ceph) or turn boto3's checksums on get
a BotoStore from `open_store`; where a test needs the boto3 transport on an
endpoint production would give the lean one, it builds the BotoStore itself.
Requests that need no server are answered locally, at the before-send event
of the store's own boto3 client, and looked at as they would have been sent.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from s3s3.config import Endpoint
from s3s3.errors import NoSuchBucket, NotFound, StoreError
from s3s3.store import Attributes, list_objects, open_store, transport_for
from s3s3.store.boto import BotoStore
from s3s3.store.http import HttpStore
from tests.helpers import new_bucket
from tests.servers.base import Server
from tests.stores import open_with

pytestmark = pytest.mark.timeout(60)

LIST_RESULT = (
    b'<?xml version="1.0"?><ListBucketResult><Name>photos</Name><IsTruncated>false</IsTruncated></ListBucketResult>'
)
DELETE_RESULT = b'<?xml version="1.0"?><DeleteResult></DeleteResult>'
UPLOAD_RESULT = (
    b'<?xml version="1.0"?><InitiateMultipartUploadResult><UploadId>u-1</UploadId></InitiateMultipartUploadResult>'
)


class _Raw:
    """The raw stream behind a fake HTTP response."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def answer_locally(client: Any, operation: str, body: bytes) -> list[Any]:
    """Answer every `operation` request of this client with 200 and `body` without sending it; return the requests."""
    sent: list[Any] = []

    def respond(request: Any, **_: Any) -> AWSResponse:
        sent.append(request)
        return AWSResponse(request.url, 200, {}, _Raw(body))

    client.meta.events.register(f"before-send.s3.{operation}", respond)
    return sent


def headers_of(request: Any) -> dict[str, str]:
    """A request's headers, names lower-cased, values as text."""
    return {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}


def endpoint(**options: Any) -> Endpoint:
    """An endpoint nothing listens on: for what is decided, and sent, before any answer."""
    defaults: dict[str, Any] = {
        "name": "source",
        "bucket": "photos",
        "endpoint_url": "http://127.0.0.1:9",
        "access_key": "AKEXAMPLE",
        "secret_key": "secret",
    }
    return Endpoint(**{**defaults, **options})


def on_server(server: Server, bucket: str) -> Endpoint:
    return endpoint(name="dest1", bucket=bucket, endpoint_url=server.endpoint_url, access_key=server.access_key,
                    secret_key=server.secret_key, addressing_style="path")  # fmt: skip


def boto_store(options: dict[str, Any]) -> BotoStore:
    """The BotoStore `open_store` gives a SigV2 or checksums endpoint; else one built for the endpoint."""
    store = open_with(endpoint(**options), "boto3")
    assert isinstance(store, BotoStore)
    return store


# -- which endpoints get boto3 -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "transport", "kind"),
    [
        ({}, "http", HttpStore),
        ({"signature_version": "s3"}, "boto3", BotoStore),
        ({"checksums": True}, "boto3", BotoStore),
        ({"signature_version": "s3", "checksums": True}, "boto3", BotoStore),
    ],
    ids=["sigv4", "sigv2", "checksums", "sigv2-checksums"],
)
def test_sigv2_and_checksums_endpoints_get_the_boto3_transport_and_every_other_the_lean_one(
    options: dict[str, Any], transport: str, kind: type
) -> None:
    # Given an endpoint with (or without) SigV2 or boto3's checksums
    configured = endpoint(**options)

    # When it is opened
    store = open_store(configured)

    # Then the transport is the one transport_for names, and the store is of its kind
    assert transport_for(configured) == store.transport == transport
    assert isinstance(store, kind)
    store.close()


def test_stores_opened_as_s3s3_opens_them_use_the_lean_path_unless_sigv2_or_checksums(
    make_config: Callable[..., Any], s3_source: Server, s3_dest: Server
) -> None:
    # Given a configuration whose source is plain SigV4, and destinations with SigV2, or checksums on
    sigv2 = make_config((s3_source, new_bucket(s3_source, "src")), [(s3_dest, new_bucket(s3_dest, "dst"))],
                        dest_extra={"signature_version": "s3"})  # fmt: skip
    checked = make_config((s3_source, new_bucket(s3_source, "src")), [(s3_dest, new_bucket(s3_dest, "dst"))],
                          dest_extra={"checksums": "true"})  # fmt: skip

    # When they are opened, then the source is on the lean path, and neither destination is
    assert open_store(sigv2.source).transport == "http"
    assert open_store(sigv2.dests[0]).transport == "boto3"
    assert open_store(checked.dests[0]).transport == "boto3"


# -- the client, configured as asked -------------------------------------------------------------


def test_sigv2_path_style_client_is_configured_as_asked() -> None:
    # Given the store for an old Ceph: SigV2, path style
    client = boto_store({"signature_version": "s3", "addressing_style": "path"}).client

    # Then its client says so, and computes checksums only where S3 requires them
    assert client.meta.config.signature_version == "s3"
    assert client.meta.config.s3["addressing_style"] == "path"
    assert client.meta.config.request_checksum_calculation == "when_required"
    assert client.meta.config.response_checksum_validation == "when_required"


def test_checksums_option_turns_on_botocore_checksums() -> None:
    # Given the store for an endpoint with checksums = true
    client = boto_store({"checksums": True}).client

    # Then botocore computes and validates checksums where supported
    assert client.meta.config.request_checksum_calculation == "when_supported"
    assert client.meta.config.response_checksum_validation == "when_supported"


def test_a_boto3_store_makes_its_client_only_when_first_needed() -> None:
    # Given a boto3 store just opened
    store = boto_store({"signature_version": "s3"})

    # Then it has no client yet; asking for it makes one, once
    assert store._client is None
    assert store.client is store.client


# -- SigV2 fixes ---------------------------------------------------------------------------------


def test_sigv2_bucket_calls_send_the_signed_bucket_path_with_its_slash() -> None:
    # Given a SigV2 path-style store (listing with ListObjects, as old Ceph needs)
    store = boto_store({"signature_version": "s3", "addressing_style": "path", "list_version": 1})
    sent = answer_locally(store.client, "ListObjects", LIST_RESULT)
    objects = answer_locally(store.client, "HeadObject", b"")

    # When it lists the bucket and heads a key
    assert store.list_page("").objects == []
    store.head("a/b.jpg")

    # Then the bucket call goes to "/photos/" (the path signed), and key calls are untouched
    assert urlsplit(sent[0].url).path == "/photos/"
    assert urlsplit(objects[0].url).path == "/photos/a/b.jpg"
    assert sent[0].headers["Authorization"].startswith(b"AWS AKEXAMPLE:")


def test_sigv4_bucket_calls_keep_botocore_paths() -> None:
    # Given a SigV4 path-style boto3 store
    store = boto_store({"addressing_style": "path", "list_version": 1})
    sent = answer_locally(store.client, "ListObjects", LIST_RESULT)

    # When it lists the bucket
    store.list_page("")

    # Then the path is botocore's own
    assert urlsplit(sent[0].url).path == "/photos"


@pytest.mark.parametrize(("signature_version", "name"), [("s3", "taken-by"), ("s3v4", "taken_by")])
def test_sigv2_metadata_names_with_underscores_are_sent_with_dashes(signature_version: str, name: str) -> None:
    # Given a boto3 store signing with SigV2 (Ceph refuses `_` in metadata names then) or SigV4
    store = boto_store({"signature_version": signature_version, "addressing_style": "path"})
    puts = answer_locally(store.client, "PutObject", b"")
    starts = answer_locally(store.client, "CreateMultipartUpload", UPLOAD_RESULT)
    attrs = Attributes(metadata={"taken_by": "ada"})

    # When an object is written, and an upload begun, with a metadata name holding "_"
    store.put("rose.jpg", b"x", length=1, md5=None, attrs=attrs)
    assert store.create_upload("rose.jpg", attrs) == "u-1"

    # Then with SigV2 it is sent with "-" instead (what Ceph stores anyway); with SigV4 as it is
    for request in (puts[0], starts[0]):
        metadata = {k for k in headers_of(request) if k.startswith("x-amz-meta-")}
        assert metadata == {f"x-amz-meta-{name}"}


# -- DeleteObjects: Content-MD5, not CRC32 -------------------------------------------------------


def test_delete_objects_carries_content_md5_and_no_crc32() -> None:
    # Given a boto3 store with the default checksums setting
    store = boto_store({"signature_version": "s3", "addressing_style": "path"})
    sent = answer_locally(store.client, "DeleteObjects", DELETE_RESULT)

    # When it deletes a batch of keys
    assert store.delete_many(["a", "b"]) == {}

    # Then Swift gets the Content-MD5 it requires of the body sent, and no CRC32 header
    headers = headers_of(sent[0])
    assert headers["content-md5"] == base64.b64encode(hashlib.md5(sent[0].body).digest()).decode()
    assert not any(name.startswith("x-amz-checksum") or name.startswith("x-amz-sdk-checksum") for name in headers)


def test_delete_objects_with_checksums_on_sends_botocore_crc32() -> None:
    # Given a boto3 store with checksums = true
    store = boto_store({"checksums": True, "addressing_style": "path"})
    sent = answer_locally(store.client, "DeleteObjects", DELETE_RESULT)

    # When it deletes a batch of keys
    store.delete_many(["a"])

    # Then botocore's default CRC32 is left alone
    assert "x-amz-checksum-crc32" in headers_of(sent[0])


def test_delete_objects_through_a_boto3_store_deletes_on_a_real_server(s3_dest: Server) -> None:
    # Given three keys on a real server and a boto3 store for it
    name = new_bucket(s3_dest, "del")
    store = open_with(on_server(s3_dest, name), "boto3")
    assert isinstance(store, BotoStore)
    client = store.client
    for key in ("a", "b", "c"):
        client.put_object(Bucket=name, Key=key, Body=key.encode())

    # When two are deleted in one batch by its client, and the third by the store
    response = client.delete_objects(Bucket=name, Delete={"Objects": [{"Key": "a"}, {"Key": "b"}]})
    left = store.delete_many(["c"])

    # Then the server accepted both requests and the bucket is empty
    assert sorted(d["Key"] for d in response["Deleted"]) == ["a", "b"]
    assert left == {}
    assert client.list_objects_v2(Bucket=name).get("Contents", []) == []
    store.close()


# -- errors --------------------------------------------------------------------------------------


def test_boto3_errors_are_store_errors_with_the_store_code(s3_dest: Server) -> None:
    # Given a boto3 store for a real bucket, and one for a bucket that does not exist
    store = open_with(on_server(s3_dest, new_bucket(s3_dest, "err")), "boto3")
    nowhere = open_with(on_server(s3_dest, "no-such-bucket-here"), "boto3")

    # Then a missing key is None to a HEAD, and NotFound to a GET, with the store's code
    assert store.head("absent") is None
    with pytest.raises(NotFound) as missing:
        store.get("absent")
    assert missing.value.code == "NoSuchKey"
    assert missing.value.operation == "GetObject"

    # And a missing bucket is NoSuchBucket; nothing of botocore's leaves the store
    with pytest.raises(NoSuchBucket) as no_bucket:
        next(list_objects(nowhere))
    assert no_bucket.value.code == "NoSuchBucket"
    for raised in (missing.value, no_bucket.value):
        assert isinstance(raised, StoreError) and not isinstance(raised, ClientError)
    store.close()
    nowhere.close()
