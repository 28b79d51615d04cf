"""Self-tests of the Ceph RGW and Swift harnesses: each store starts and speaks enough S3.

Two Ceph clusters run side by side (one over HTTPS), which is how the
replication tests use them.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib

import pytest
from botocore.exceptions import ClientError, SSLError

from tests.servers.base import Server

pytestmark = [pytest.mark.compat, pytest.mark.timeout(300)]

PART_SIZE = 5 * 1024 * 1024  # the smallest part S3 (and both stores) accept before the last


@pytest.fixture(params=["ceph", "ceph_tls", "swift"])
def store(request: pytest.FixtureRequest) -> Server:
    return request.getfixturevalue(request.param)


@pytest.fixture
def bucket(store: Server, request: pytest.FixtureRequest) -> str:
    name = request.node.originalname.replace("_", "-")[:40] + "-" + request.node.callspec.id.replace("_", "-")
    store.client().create_bucket(Bucket=name)
    return name


def test_bucket_is_created_and_listed(store: Server, bucket: str) -> None:
    names = [b["Name"] for b in store.client().list_buckets()["Buckets"]]
    assert bucket in names


def test_put_object_is_read_back_with_md5_etag(store: Server, bucket: str) -> None:
    client = store.client()
    body = b"hello from s3s3\n" * 100

    client.put_object(Bucket=bucket, Key="dir/key.txt", Body=body)

    got = client.get_object(Bucket=bucket, Key="dir/key.txt")
    assert got["Body"].read() == body
    assert got["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'


def test_multipart_upload_etag_is_md5_of_part_md5s_dash_n(store: Server, bucket: str) -> None:
    client = store.client()
    parts = [b"a" * PART_SIZE, b"b" * 1024]
    upload = client.create_multipart_upload(Bucket=bucket, Key="mp")
    done = []
    for number, data in enumerate(parts, start=1):
        put = client.upload_part(
            Bucket=bucket,
            Key="mp",
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=data,
        )
        done.append({"PartNumber": number, "ETag": put["ETag"]})

    client.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": done},
    )

    # Ceph answers CompleteMultipartUpload with an empty ETag, so the ETag is read with HEAD.
    expected = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f"-{len(parts)}"
    head = client.head_object(Bucket=bucket, Key="mp")
    assert head["ETag"] == f'"{expected}"'
    assert head["ContentLength"] == sum(map(len, parts))
    assert client.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"".join(parts)


def test_wrong_content_md5_is_refused_with_bad_digest_and_nothing_stored(store: Server, bucket: str) -> None:
    client = store.client()
    wrong_md5 = base64.b64encode(hashlib.md5(b"something else").digest()).decode()

    with pytest.raises(ClientError) as raised:
        client.put_object(Bucket=bucket, Key="bad", Body=b"payload", ContentMD5=wrong_md5)

    assert raised.value.response["Error"]["Code"] == "BadDigest"
    with pytest.raises(ClientError) as missing:
        client.head_object(Bucket=bucket, Key="bad")
    assert missing.value.response["Error"]["Code"] == "404"


def test_tls_store_serves_https_signed_by_its_own_ca(ceph_tls: Server) -> None:
    assert ceph_tls.endpoint_url.startswith("https://127.0.0.1:")
    assert ceph_tls.ca_bundle is not None
    ceph_tls.client().list_buckets()

    untrusting = dataclasses.replace(ceph_tls, ca_bundle=None)
    with pytest.raises(SSLError):
        untrusting.client(retries={"max_attempts": 1}).list_buckets()
