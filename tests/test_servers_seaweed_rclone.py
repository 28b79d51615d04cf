"""Self-tests of the SeaweedFS and rclone harnesses: each store starts and speaks enough S3.

Measured on the 2-core dev machine: `weed mini` answers its first signed request
0.8-1.1 s after exec and needs ~2.4 s to stop; `rclone serve s3` 0.15 s and 0.2 s.

Where they differ from AWS (SeaweedFS 4.48, rclone 1.75.2):
- SeaweedFS: multipart ETag is md5(part md5s)-N on Complete, HEAD and listing, and
  CopyObject keeps it; HEAD ?partNumber= and GetObjectAttributes report the parts.
  Content-MD5 is enforced (BadDigest) and so is a wrong x-amz-checksum-crc32 (also
  BadDigest, with a message that talks of Content-MD5). User metadata keys come
  back lower-cased, `_` kept. SigV2: object calls work, bucket-level calls
  (ListObjectsV2) fail with SignatureDoesNotMatch, as on Ceph. The listing
  continuation token is the last key in plain text. `If-None-Match: *` is honoured.
- rclone: CompleteMultipartUpload answers md5(part md5s)-N but HEAD, GET and the
  listing then give the MD5 of the whole object (the file is re-hashed), so the ETag
  of a key changes form after the upload. Listing ETags come without the quotes.
  HEAD ?partNumber= is ignored (whole length, no PartsCount); GetObjectAttributes
  is a 500. Content-MD5 is enforced, x-amz-checksum-* is not checked. Metadata
  keys are Go-canonicalised (`Foo_Bar` -> `Foo_bar`) and live only in the
  server's memory. No SigV2 at all (UnsupportedAlgorithm). `If-None-Match: *` is
  ignored. A key `dir/` is listed as `dir`, and a key under an existing object
  (`a` then `a/b`) is a 500 InternalError: it is a file system underneath.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from tests.servers.base import Server
from tests.servers.rclone import start_rclone_s3
from tests.servers.seaweedfs import start_seaweedfs

pytestmark = [pytest.mark.compat, pytest.mark.timeout(180)]

PART_SIZE = 5 * 1024 * 1024  # the smallest part S3 accepts before the last
_bucket_numbers = itertools.count()


@pytest.fixture(scope="module")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_seaweedfs(str(tmp_path_factory.mktemp("seaweedfs")))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rclone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_rclone_s3(str(tmp_path_factory.mktemp("rclone")))
    yield server
    server.stop()


@pytest.fixture(params=["seaweedfs", "rclone"])
def store(request: pytest.FixtureRequest) -> Server:
    return request.getfixturevalue(request.param)


@pytest.fixture
def bucket(store: Server) -> str:
    name = f"selftest-{next(_bucket_numbers)}"
    store.client().create_bucket(Bucket=name)
    return name


def _multipart_upload(client, bucket: str, key: str, parts: list[bytes]) -> dict:
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)
    done = []
    for number, data in enumerate(parts, start=1):
        put = client.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=data)
        done.append({"PartNumber": number, "ETag": put["ETag"]})
    return client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": done}
    )


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


def test_seaweedfs_multipart_etag_is_md5_of_part_md5s_dash_n_everywhere(seaweedfs: Server) -> None:
    client = seaweedfs.client()
    client.create_bucket(Bucket="weed-multipart")
    parts = [b"a" * PART_SIZE, b"b" * 1024]
    expected = f'"{hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()}-2"'

    done = _multipart_upload(client, "weed-multipart", "mp", parts)

    assert done["ETag"] == expected
    assert client.head_object(Bucket="weed-multipart", Key="mp")["ETag"] == expected
    listed = client.list_objects_v2(Bucket="weed-multipart")["Contents"]
    assert [(o["Key"], o["ETag"], o["Size"]) for o in listed] == [("mp", expected, PART_SIZE + 1024)]
    assert client.get_object(Bucket="weed-multipart", Key="mp")["Body"].read() == b"".join(parts)


def test_rclone_multipart_etag_turns_into_whole_object_md5_after_complete(rclone: Server) -> None:
    client = rclone.client()
    client.create_bucket(Bucket="rclone-multipart")
    parts = [b"a" * PART_SIZE, b"b" * 1024]
    multipart = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    whole = hashlib.md5(b"".join(parts)).hexdigest()

    done = _multipart_upload(client, "rclone-multipart", "mp", parts)

    assert done["ETag"] == f'"{multipart}-2"'
    assert client.head_object(Bucket="rclone-multipart", Key="mp")["ETag"] == f'"{whole}"'
    # The listing's ETag has no quotes around it.
    listed = client.list_objects_v2(Bucket="rclone-multipart")["Contents"]
    assert [(o["Key"], o["ETag"].strip('"'), o["Size"]) for o in listed] == [("mp", whole, PART_SIZE + 1024)]


def test_listing_v2_pages_through_every_key_in_order(store: Server, bucket: str) -> None:
    client = store.client()
    keys = [f"page/{i:03d}" for i in range(25)]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())

    pages = []
    kwargs = {"Bucket": bucket, "Prefix": "page/", "MaxKeys": 10}
    while True:
        page = client.list_objects_v2(**kwargs)
        pages.append([o["Key"] for o in page["Contents"]])
        if not page["IsTruncated"]:
            break
        kwargs["ContinuationToken"] = page["NextContinuationToken"]

    assert [len(p) for p in pages] == [10, 10, 5]
    assert sum(pages, []) == keys
    after = client.list_objects_v2(Bucket=bucket, Prefix="page/", StartAfter="page/020")
    assert [o["Key"] for o in after["Contents"]] == keys[21:]


def test_wrong_content_md5_is_refused_with_bad_digest_and_nothing_stored(store: Server, bucket: str) -> None:
    client = store.client()
    wrong_md5 = base64.b64encode(hashlib.md5(b"something else").digest()).decode()

    with pytest.raises(ClientError) as raised:
        client.put_object(Bucket=bucket, Key="bad", Body=b"payload", ContentMD5=wrong_md5)

    assert raised.value.response["Error"]["Code"] == "BadDigest"
    with pytest.raises(ClientError) as missing:
        client.head_object(Bucket=bucket, Key="bad")
    assert missing.value.response["Error"]["Code"] == "404"


def test_wrong_secret_is_refused(store: Server) -> None:
    impostor = Server(store.name, store.endpoint_url, store.access_key, "not-the-secret")

    with pytest.raises(ClientError) as raised:
        impostor.client(retries={"max_attempts": 1}).list_buckets()

    assert raised.value.response["Error"]["Code"] in ("SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId")


def test_two_seaweedfs_servers_run_side_by_side_with_their_own_keys(
    seaweedfs: Server, tmp_path_factory: pytest.TempPathFactory
) -> None:
    workdir = str(tmp_path_factory.mktemp("seaweedfs-2"))
    other = start_seaweedfs(workdir, access_key="second", secret_key="second-secret")
    try:
        other.client().create_bucket(Bucket="only-on-second")
        other.client().put_object(Bucket="only-on-second", Key="k", Body=b"2")

        assert other.endpoint_url != seaweedfs.endpoint_url
        assert "only-on-second" not in [b["Name"] for b in seaweedfs.client().list_buckets()["Buckets"]]
        assert other.client().get_object(Bucket="only-on-second", Key="k")["Body"].read() == b"2"
    finally:
        other.stop()
