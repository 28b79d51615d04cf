"""The contract of the Store interface (s3s3.store.base.Store), held by both transports on every store.

Every test runs with the same assertions on the lean transport (HttpStore)
and on boto3 (BotoStore), both opened for the same endpoint, against moto
(`make test`) and against Ceph RGW, Swift and SeaweedFS (`make compat`).
What lands is read back with a plain boto3 client, not through the store
under test. Where the stores themselves differ (Content-MD5 or a copy's
If-Match unchecked by moto, HEAD ?partNumber=, Ceph's empty
CompleteMultipartUpload ETag, Swift keeping no tags, SeaweedFS making a bucket
on a PUT), each store is held to its own recorded answer (the tables below),
so a change in any store, or in either transport, shows up here.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from s3s3.errors import BadDigest, NoSuchBucket, NotFound, PreconditionFailed, StoreError
from s3s3.store.base import CHECKSUM_BYTES, Attributes, Checksum, Store, list_objects
from s3s3.store.probes import CHECKSUM_PROBE_KEY, PROBE_KEY, ChecksumSupport, checks_content_md5, checksum_support
from tests.helpers import MiB, data_of, md5_hex, multipart_md5, new_bucket
from tests.servers.base import Server
from tests.stores import Opener, client_of, is_absent, put_in_parts, read_back

pytestmark = pytest.mark.timeout(120)

PART = 5 * MiB  # the smallest part every store accepts before the last
TWO_PARTS = PART + 1000  # an object of a whole part and a short last one
HEADERS = {
    "Content-Type": "text/plain; charset=utf-8",
    "Cache-Control": "max-age=60, private",
    "Content-Disposition": 'attachment; filename="report.txt"',
    "Content-Encoding": "gzip",
    "Content-Language": "fr-CA",
    "Expires": "Thu, 01 Dec 2044 16:00:00 GMT",
}
# No `_` in names: Ceph turns it into `-`.
METADATA = {"colour": "blue", "Mixed-Case": "Kept As Is"}
STORED_METADATA = {"colour": "blue", "mixed-case": "Kept As Is"}  # names come back lower-cased
ODD_KEYS = {
    "with space.txt": b"space",
    "ünïcødé/日本語.txt": "héllo wörld".encode(),
    "plus+sign=1.txt": b"plus",
    "100% sure.txt": b"percent",
    "question?mark.txt": b"question",
    "hash#tag.txt": b"hash",
    "deep/paths/a/b": b"deep",
    "zero bytes/+%?#": b"",
}

# moto does not check Content-MD5 (on PutObject or UploadPart): a wrong one is stored, not refused.
CHECKS_CONTENT_MD5 = {"moto": False, "ceph": True, "swift": True, "seaweedfs": True}
# HEAD ?partNumber=1 of an object of two parts: (parts_count, size) as the store answers, or the
# status of the StoreError raised. A parts count is taken from a 206 answer only.
PART_HEAD: dict[str, tuple[int | None, int] | int] = {
    "moto": (2, PART),  # moto 5.2: 206 for the part, as AWS answers
    "ceph": (None, TWO_PARTS),  # Ceph 16: 200 for the whole object
    "swift": 405,  # Swift 2.30: partNumber refused
    "seaweedfs": (2, PART),  # 206 for the part, as AWS answers
}
# Ceph 16 answers CompleteMultipartUpload with <ETag></ETag>; the others with the object's ETag.
COMPLETE_ANSWERS_NO_ETAG = {"moto": False, "ceph": True, "swift": False, "seaweedfs": False}
# moto 5.2 and Ceph 16 ignore x-amz-copy-source-if-match (Ceph honours only its older x-amz-copy-if-match):
# a stale copy goes through there, unless s3transfer (boto3) HEADs the source If-Match first. s3s3's copy
# engine HEADs the source again after a server-side copy for this reason.
CHECKS_COPY_IF_MATCH = {"moto": False, "ceph": False, "swift": True, "seaweedfs": True}
# moto answers every ListMultipartUploads with the same Initiated, 2010-11-10T20:48:33Z.
REAL_INITIATED = {"moto": False, "ceph": True, "swift": True, "seaweedfs": True}
# Swift 2.30's s3api keeps no tags: it refuses a PUT with tags (501 NotImplemented) and answers every
# GetObjectTagging with an empty tag set.
KEEPS_TAGS = {"moto": True, "ceph": True, "swift": False, "seaweedfs": True}
# SeaweedFS creates a missing bucket on the first PUT into it (answering 200), where S3 answers NoSuchBucket.
PUT_CREATES_BUCKET = {"moto": False, "ceph": False, "swift": False, "seaweedfs": True}
# What each store does with a full-object checksum (x-amz-checksum-<algorithm>) sent with a PUT, for every
# algorithm: moto 5.2 keeps it and answers it without checking the body against it; SeaweedFS 4.48 checks it
# (BadDigest) and keeps it, as AWS does; Ceph 16 and Swift 2.30 neither check nor keep one.
CHECKSUMS = {
    "moto": ChecksumSupport.KEPT,
    "ceph": ChecksumSupport.IGNORED,
    "swift": ChecksumSupport.IGNORED,
    "seaweedfs": ChecksumSupport.CHECKED,
}

def put(store: Store, key: str, data: bytes, attrs: Attributes | None = None) -> str:
    """Put `data` through the store under test, with its Content-MD5."""
    return store.put(key, data, length=len(data), md5=md5_hex(data), attrs=attrs or Attributes())


def put_plainly(store: Store, keys: list[str], data: bytes = b"x") -> None:
    """Put the keys with a plain boto3 client, eight at a time."""
    client, bucket = client_of(store), store.endpoint.bucket
    with ThreadPoolExecutor(8) as pool:  # botocore's pool holds 10 connections
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=data), keys))


def views(data: bytes, size: int = 64 * 1024) -> list[memoryview]:
    """`data` as the memoryviews a streamed body is made of."""
    whole = memoryview(data)
    return [whole[i : i + size] for i in range(0, len(data), size)]


def read_all(store: Store, key: str) -> bytes:
    _, body = store.get(key)
    try:
        return body.read()
    finally:
        body.close()


def binary_order(keys: list[str]) -> list[str]:
    return sorted(keys, key=lambda k: k.encode("utf-8"))


# -- put, head, get -------------------------------------------------------------------------------


def test_a_put_object_heads_and_gets_back_with_its_bytes_md5_headers_and_metadata(store: Store) -> None:
    # Given bytes, every content header and user metadata
    data = data_of(100_000, seed=1)
    attrs = Attributes(headers=HEADERS, metadata=METADATA)

    # When they are put
    etag = put(store, "doc.txt", data, attrs)

    # Then the ETag of a single put is the MD5, and a HEAD says so, with the headers and metadata
    assert etag == md5_hex(data)
    head = store.head("doc.txt")
    assert head is not None
    assert (head.key, head.size, head.etag, head.md5) == ("doc.txt", len(data), md5_hex(data), md5_hex(data))
    assert head.headers == HEADERS
    assert head.metadata == STORED_METADATA
    assert head.last_modified is not None

    # And a GET says the same and gives the bytes
    info, body = store.get("doc.txt")
    assert (info.size, info.etag, info.headers, info.metadata) == (len(data), md5_hex(data), HEADERS, STORED_METADATA)
    assert info.last_modified is not None
    assert body.read() == data
    body.close()

    # And a plain client reads back the same bytes and metadata
    landed, response = read_back(store, "doc.txt")
    assert (landed, response["Metadata"], response["ContentType"]) == (data, STORED_METADATA, HEADERS["Content-Type"])


def test_a_zero_byte_object_is_put_headed_and_got_empty(store: Store) -> None:
    # When an empty body is put
    etag = put(store, "empty", b"")

    # Then it is there, of size 0, with the MD5 of nothing as its ETag, and reads back empty
    assert etag == md5_hex(b"")
    head = store.head("empty")
    assert head is not None and (head.size, head.etag) == (0, md5_hex(b""))
    assert read_all(store, "empty") == b""
    assert read_back(store, "empty")[0] == b""


def test_a_put_with_the_right_md5_is_stored_and_with_a_wrong_one_raises_bad_digest(
    store: Store, server_name: str
) -> None:
    # Given bytes and their MD5
    data = b"checked by the store"

    # When they are put with the right Content-MD5, then the wrong one
    assert store.put("right", data, length=len(data), md5=md5_hex(data), attrs=Attributes()) == md5_hex(data)
    if not CHECKS_CONTENT_MD5[server_name]:
        return  # moto does not check Content-MD5: it would store the bytes under the wrong one

    # Then the wrong one is refused with BadDigest, and nothing is stored
    with pytest.raises(BadDigest) as refused:
        store.put("wrong", data, length=len(data), md5=md5_hex(b"other bytes"), attrs=Attributes())
    assert refused.value.status == 400
    assert store.head("wrong") is None
    assert read_back(store, "right")[0] == data


def test_a_put_streamed_from_memoryviews_stores_every_byte(store: Store) -> None:
    # Given bytes as an iterable of memoryviews, and their length
    data = data_of(300_000, seed=2)

    # When they are put streamed, with and without a Content-MD5
    etag = store.put(
        "streamed", views(data), length=len(data), md5=md5_hex(data), attrs=Attributes(metadata={"a": "1"})
    )
    store.put("streamed-unchecked", views(data), length=len(data), md5=None, attrs=Attributes())

    # Then both hold the bytes, and the ETag is their MD5
    assert etag == md5_hex(data)
    landed, response = read_back(store, "streamed")
    assert (landed, response["Metadata"]) == (data, {"a": "1"})
    assert read_back(store, "streamed-unchecked")[0] == data


def test_odd_keys_are_put_headed_got_listed_back_exactly_and_deleted(store: Store) -> None:
    # When keys with spaces, unicode, + % ? #, deep paths (and one of zero bytes) are put
    for key, data in ODD_KEYS.items():
        assert put(store, key, data) == md5_hex(data), key

    # Then each is headed and got under its own name
    for key, data in ODD_KEYS.items():
        head = store.head(key)
        assert head is not None and (head.key, head.size, head.etag) == (key, len(data), md5_hex(data)), key
        assert read_all(store, key) == data, key
        assert read_back(store, key)[0] == data, key

    # And a listing gives every key back exactly, in UTF-8 binary order
    assert [o.key for o in list_objects(store)] == binary_order(list(ODD_KEYS))
    assert {o.key: o.size for o in list_objects(store)} == {k: len(v) for k, v in ODD_KEYS.items()}

    # And each is deleted under its own name
    for key in ODD_KEYS:
        store.delete(key)
    assert list(list_objects(store)) == []


# -- get: ranges, conditions, errors --------------------------------------------------------------


def test_a_ranged_get_returns_exactly_those_bytes_and_the_whole_objects_size(store: Store) -> None:
    # Given an object
    data = data_of(10_000, seed=3)
    put(store, "ranged", data)

    # When bytes 1000-1999, and the last byte, are got
    info, body = store.get("ranged", byte_range=(1000, 1999))
    middle = body.read()
    body.close()
    last_info, last = store.get("ranged", byte_range=(9999, 9999))

    # Then exactly those bytes arrive, and the size is the whole object's
    assert middle == data[1000:2000]
    assert last.read() == data[-1:]
    last.close()
    assert (info.size, info.etag) == (len(data), md5_hex(data))
    assert last_info.size == len(data)


def test_a_get_if_match_of_the_etag_works_and_of_another_raises_precondition_failed(store: Store) -> None:
    # Given an object
    data = b"conditional"
    etag = put(store, "cond", data)

    # When it is got if it has its ETag
    info, body = store.get("cond", if_match=etag)

    # Then it is
    assert (info.etag, body.read()) == (etag, data)
    body.close()

    # And if it must have another ETag, PreconditionFailed
    with pytest.raises(PreconditionFailed) as failed:
        store.get("cond", if_match=md5_hex(b"another version"))
    assert failed.value.status == 412


def test_a_missing_key_raises_not_found_to_a_get_and_is_none_to_a_head(store: Store) -> None:
    # Given a bucket without the key
    # Then a GET raises NotFound (404), and a HEAD answers None
    with pytest.raises(NotFound) as missing:
        store.get("not/here")
    assert (missing.value.status, missing.value.code, missing.value.transient) == (404, "NoSuchKey", False)
    assert store.head("not/here") is None


def test_calls_on_a_missing_bucket_raise_no_such_bucket(open_on: Opener, server_name: str) -> None:
    # Given a store for a bucket that does not exist
    nowhere = open_on(f"no-such-bucket-{uuid.uuid4().hex[:12]}")

    # Then listing, getting and putting there raise NoSuchBucket (404), not NotFound
    calls: dict[str, Callable[[], object]] = {
        "list_page": lambda: nowhere.list_page(""),
        "get": lambda: nowhere.get("key"),
    }
    if not PUT_CREATES_BUCKET[server_name]:
        calls["put"] = lambda: put(nowhere, "key", b"x")
    for name, call in calls.items():
        with pytest.raises(NoSuchBucket) as raised:
            call()
        assert (raised.value.status, raised.value.code) == (404, "NoSuchBucket"), name

    # (SeaweedFS: the put makes the bucket, and the key lands in it)
    if PUT_CREATES_BUCKET[server_name]:
        assert put(nowhere, "key", b"x") == md5_hex(b"x")
        assert [o.key for o in nowhere.list_page("").objects] == ["key"]


# -- bodies ---------------------------------------------------------------------------------------


def test_a_body_is_read_in_pieces_and_into_a_memoryview(store: Store) -> None:
    # Given an object
    data = data_of(200_000, seed=4)
    put(store, "pieces", data)

    # When its body is read in pieces: read(n), then readinto a memoryview until it ends
    _, body = store.get("pieces")
    got = body.read(1000) + body.read(49_000)
    buffer = bytearray(64 * 1024)
    while n := body.readinto(memoryview(buffer)):
        got += bytes(buffer[:n])

    # Then every byte arrives once, in order, and the end reads empty
    assert got == data
    assert body.read(10) == b""
    body.close()


def test_a_body_closed_half_way_leaves_the_store_working_for_the_next_request(store: Store) -> None:
    # Given an object of some MiB, of which a GET reads only 1000 bytes
    data = data_of(4 * MiB, seed=5)
    put(store, "half", data)
    _, body = store.get("half")
    assert body.read(1000) == data[:1000]

    # When the body is given up half-way
    body.close()

    # Then the next requests on the same store are answered in full
    head = store.head("half")
    assert head is not None and head.size == len(data)
    assert read_all(store, "half") == data


# -- multipart uploads ----------------------------------------------------------------------------


def test_a_multipart_upload_of_a_buffered_and_a_streamed_part_completes_with_the_md5_of_md5s_etag(
    store: Store, server_name: str
) -> None:
    # Given an upload created with headers and metadata (no storage class)
    attrs = Attributes(headers=HEADERS, metadata=METADATA, storage_class=None)
    first, second = data_of(PART, seed=6), data_of(1000, seed=7)
    upload_id = store.create_upload("mp/object.bin", attrs)

    # When a buffered part with its MD5, and a streamed one without, are uploaded and the upload completed
    etags = [
        store.upload_part("mp/object.bin", upload_id, 1, first, length=len(first), md5=md5_hex(first)),
        store.upload_part("mp/object.bin", upload_id, 2, views(second), length=len(second), md5=None),
    ]
    etag = store.complete_upload("mp/object.bin", upload_id, list(enumerate(etags, start=1)))

    # Then each part's ETag is its MD5, and the object's is the MD5 of the part MD5s, -2
    expected = multipart_md5(first + second, PART)
    assert etags == [md5_hex(first), md5_hex(second)]
    # Ceph 16 answers CompleteMultipartUpload with an empty ETag (and the contract allows ""):
    # the HEAD below shows the real one.
    assert etag == ("" if COMPLETE_ANSWERS_NO_ETAG[server_name] else expected)

    # And a HEAD shows the object of two parts, with its headers and metadata; the bytes land
    head = store.head("mp/object.bin")
    assert head is not None
    assert (head.size, head.etag, head.md5) == (len(first) + len(second), expected, None)
    assert (head.headers, head.metadata) == (HEADERS, STORED_METADATA)
    assert read_back(store, "mp/object.bin")[0] == first + second
    assert list(store.list_uploads("mp/")) == []


def test_a_part_with_a_wrong_md5_raises_bad_digest(store: Store, server_name: str) -> None:
    if not CHECKS_CONTENT_MD5[server_name]:
        pytest.skip("moto does not check Content-MD5: it stores the part under the wrong one")
    # Given an open upload
    upload_id = store.create_upload("bad-part", Attributes())

    # When a part is sent with the MD5 of other bytes
    # Then the store refuses it with BadDigest
    data = b"part bytes"
    with pytest.raises(BadDigest) as refused:
        store.upload_part("bad-part", upload_id, 1, data, length=len(data), md5=md5_hex(b"other"))
    assert refused.value.status == 400
    store.abort_upload("bad-part", upload_id)


def test_an_aborted_upload_leaves_no_upload_and_no_object(store: Store) -> None:
    # Given an open upload with a part
    upload_id = store.create_upload("aborted", Attributes(metadata={"a": "1"}))
    store.upload_part("aborted", upload_id, 1, b"part", length=4, md5=md5_hex(b"part"))

    # When it is aborted
    store.abort_upload("aborted", upload_id)

    # Then no upload is left, and the key is absent
    assert list(store.list_uploads("")) == []
    assert store.head("aborted") is None and is_absent(store, "aborted")


def test_an_open_upload_is_listed_with_its_key_upload_id_and_when_it_began(store: Store, server_name: str) -> None:
    # Given an open upload, of a key that needs escaping, and one outside the prefix
    key = "open/with space+plus%.bin"
    upload_id = store.create_upload(key, Attributes())
    other = store.create_upload("elsewhere", Attributes())

    # When the uploads under the prefix are listed
    uploads = list(store.list_uploads("open/"))

    # Then it is there, with its key, upload ID and a time it began
    assert [(u.key, u.upload_id) for u in uploads] == [(key, upload_id)]
    assert uploads[0].initiated.tzinfo is not None
    if REAL_INITIATED[server_name]:
        assert abs(datetime.now(UTC) - uploads[0].initiated) < timedelta(hours=1)
    store.abort_upload(key, upload_id)
    store.abort_upload("elsewhere", other)


def test_completing_with_a_wrong_part_etag_raises_a_store_error(store: Store) -> None:
    # Given an open upload with one part
    upload_id = store.create_upload("wrong-etag", Attributes())
    store.upload_part("wrong-etag", upload_id, 1, b"part", length=4, md5=md5_hex(b"part"))

    # When it is completed naming a part ETag the store does not hold
    # Then a StoreError, and no object
    with pytest.raises(StoreError) as refused:
        store.complete_upload("wrong-etag", upload_id, [(1, md5_hex(b"not the part"))])
    assert (refused.value.status, refused.value.code) == (400, "InvalidPart")
    assert store.head("wrong-etag") is None
    store.abort_upload("wrong-etag", upload_id)


def test_a_body_unlike_its_content_md5_is_refused_where_the_store_checks_and_the_probe_says_so(
    store: Store, server_name: str
) -> None:
    # When a body is sent with the Content-MD5 of other bytes
    wrong = md5_hex(b"other bytes")
    if CHECKS_CONTENT_MD5[server_name]:
        # Then the store refuses it and keeps nothing
        with pytest.raises(BadDigest):
            store.put("bad-digest", b"these bytes", length=11, md5=wrong, attrs=Attributes())
        assert store.head("bad-digest") is None
    else:
        # Then the store keeps it (its ETag the MD5 of what it got)
        etag = store.put("bad-digest", b"these bytes", length=11, md5=wrong, attrs=Attributes())
        assert etag == md5_hex(b"these bytes")
    # And s3s3's probe finds out the same, leaving nothing behind
    assert checks_content_md5(store) is CHECKS_CONTENT_MD5[server_name]
    assert store.head(PROBE_KEY) is None


def checksum_of(algorithm: str, data: bytes) -> Checksum:
    """The full-object checksum of `data`, as S3 computes it (CRC32C and CRC64NVME bit by bit: short bodies only)."""
    if algorithm == "crc32":
        digest = zlib.crc32(data).to_bytes(4, "big")
    elif algorithm in ("sha1", "sha256"):
        digest = hashlib.new(algorithm, data).digest()
    else:
        size = CHECKSUM_BYTES[algorithm]
        digest = _crc(data, CRC_POLYNOMIALS[algorithm], size * 8).to_bytes(size, "big")
    return Checksum(algorithm, base64.b64encode(digest).decode())


# The reflected polynomials of CRC-32C (Castagnoli) and CRC-64/NVME, both with all-ones init and final xor.
CRC_POLYNOMIALS = {"crc32c": 0x82F63B78, "crc64nvme": 0x9A6C9329AC4BC9B5}


def _crc(data: bytes, polynomial: int, bits: int) -> int:
    mask = (1 << bits) - 1
    crc = mask
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ polynomial if crc & 1 else crc >> 1
    return crc ^ mask


def test_the_crcs_the_contract_computes_are_the_standard_ones() -> None:
    check = b"123456789"  # the catalogue's check values
    assert checksum_of("crc32c", check).value == base64.b64encode(bytes.fromhex("e3069283")).decode()
    assert checksum_of("crc64nvme", check).value == base64.b64encode(bytes.fromhex("ae8b14860a799888")).decode()


@pytest.mark.parametrize("algorithm", list(CHECKSUM_BYTES))
def test_a_full_object_checksum_put_with_an_object_is_answered_back_where_the_store_keeps_it(
    store: Store, server_name: str, algorithm: str
) -> None:
    # Given bytes and their full-object checksum
    data = b"checksummed bytes"
    checksum = checksum_of(algorithm, data)

    # When they are put with it
    store.put("summed", data, length=len(data), md5=md5_hex(data), attrs=Attributes(), checksum=checksum)

    # Then a HEAD and a GET asking for checksums answer it where the store keeps it, and nothing where not
    kept = CHECKSUMS[server_name] is not ChecksumSupport.IGNORED
    head = store.head("summed", checksums=True)
    info, body = store.get("summed", checksums=True)
    assert body.read() == data
    body.close()
    assert head is not None
    assert (head.checksum, info.checksum) == ((checksum, checksum) if kept else (None, None))
    # And without asking, no checksum comes
    plain = store.head("summed")
    assert plain is not None and plain.checksum is None
    assert read_back(store, "summed")[0] == data
    # And where the store checks it, other bytes are refused and nothing is stored
    if CHECKSUMS[server_name] is ChecksumSupport.CHECKED:
        with pytest.raises(BadDigest):
            store.put("unlike", b"other bytes", length=11, md5=md5_hex(b"other bytes"), attrs=Attributes(),
                      checksum=checksum)  # fmt: skip
        assert store.head("unlike") is None


@pytest.mark.parametrize("algorithm", list(CHECKSUM_BYTES))
def test_the_checksum_probe_says_what_each_store_does_with_a_checksum_and_leaves_nothing(
    store: Store, server_name: str, algorithm: str
) -> None:
    assert checksum_support(store, algorithm) is CHECKSUMS[server_name]
    assert store.head(CHECKSUM_PROBE_KEY) is None


def test_a_head_of_part_one_answers_as_each_store_does(store: Store, server_name: str) -> None:
    # Given an object uploaded in two parts
    data = data_of(TWO_PARTS, seed=8)
    put_in_parts(store, "two-parts", data, PART)

    # When part 1 of it is headed
    expected = PART_HEAD[server_name]
    if isinstance(expected, int):
        # Then the store refuses the partNumber (Swift 2.30: 405)
        with pytest.raises(StoreError) as refused:
            store.head("two-parts", part_number=1)
        assert refused.value.status == expected
        return
    head = store.head("two-parts", part_number=1)

    # Then it answers for the part (its size, and the parts count) or for the whole object, as recorded
    assert head is not None
    assert (head.parts_count, head.size) == expected


# -- delete ---------------------------------------------------------------------------------------


def test_delete_removes_a_key(store: Store) -> None:
    # Given two keys
    put(store, "gone", b"1")
    put(store, "kept", b"2")

    # When one is deleted
    store.delete("gone")

    # Then it is absent, and the other is not
    assert store.head("gone") is None and is_absent(store, "gone")
    assert [o.key for o in list_objects(store)] == ["kept"]


def test_delete_many_removes_a_thousand_keys_and_reports_none_left(store: Store) -> None:
    # Given 1000 keys (and one more that stays)
    keys = [f"many/{i:04d}" for i in range(1000)]
    put_plainly(store, [*keys, "stays"])

    # When all 1000 are deleted in one call (Swift needs its Content-MD5)
    left = store.delete_many(keys)

    # Then none is left, and nothing else went
    assert left == {}
    assert [o.key for o in list_objects(store)] == ["stays"]


# -- listings -------------------------------------------------------------------------------------


@pytest.mark.parametrize("list_version", ["2", "1"])
def test_a_listing_pages_past_a_thousand_keys_giving_each_once_in_utf8_order(
    open_on: Opener, list_version: str
) -> None:
    # Given 1005 keys under a prefix (more than one page of 1000), some past ASCII, and one outside it
    store = open_on(list_version=list_version)
    keys = [f"p/{i:04d}" for i in range(997)] + ["p/é", "p/z", "p/日本", "p/ü", "p/Z", "p/+", "p/ a", "p/~"]
    put_plainly(store, [*keys, "q/outside"])

    # When the first page is listed
    page = store.list_page("p/")

    # Then it holds 1000 keys and goes on (with a continuation token on V2 only)
    assert (len(page.objects), page.truncated) == (1000, True)
    assert (page.token is not None) == (list_version == "2")

    # And list_objects gives every key of the prefix exactly once, in UTF-8 binary order
    assert [o.key for o in list_objects(store, "p/")] == binary_order(keys)


@pytest.mark.parametrize("list_version", ["2", "1"])
def test_a_listing_starts_after_the_key_given(open_on: Opener, list_version: str) -> None:
    # Given keys under two prefixes
    store = open_on(list_version=list_version)
    put_plainly(store, ["a/1", "a/2", "a/3", "b/1"])

    # When the prefix a/ is listed after a/1
    page = store.list_page("a/", start_after="a/1")

    # Then it holds the keys after it, and ends
    assert ([o.key for o in page.objects], page.truncated) == (["a/2", "a/3"], False)
    assert [o.size for o in page.objects] == [1, 1]
    assert [o.key for o in list_objects(store, "", start_after="a/2")] == ["a/3", "b/1"]


@pytest.mark.parametrize("list_version", ["2", "1"])
def test_a_listing_with_a_delimiter_gives_common_prefixes(open_on: Opener, list_version: str) -> None:
    # Given keys in folders, and one beside them
    store = open_on(list_version=list_version)
    put_plainly(store, ["d/a/1", "d/a/2", "d/b/c/1", "d/top", "e/1"])

    # When d/ is listed with the delimiter /
    page = store.list_page("d/", delimiter="/")

    # Then the object beside the folders is listed, and each folder once as a common prefix
    assert [o.key for o in page.objects] == ["d/top"]
    assert (page.prefixes, page.truncated) == (["d/a/", "d/b/"], False)


# -- copy -----------------------------------------------------------------------------------------


def test_copy_object_within_a_store_writes_the_bytes_with_the_new_attributes(store: Store, server: Server) -> None:
    # Given an object with headers and metadata in another bucket of the same store, and one in this bucket
    data = data_of(50_000, seed=9)
    source_bucket, source_key = new_bucket(server, "copy-src"), "src/with space ü+.bin"
    server.client().put_object(Bucket=source_bucket, Key=source_key, Body=data, Metadata={"old": "1"},
                               ContentType="application/old")  # fmt: skip
    put(store, "here", data, Attributes(metadata={"old": "1"}))
    new = Attributes(headers={"Content-Type": "text/new", "Cache-Control": "no-cache"}, metadata={"new": "2"})

    # When each is copied server-side to a new key, with new attributes
    store.copy_object(source_bucket, source_key, "copied", size=len(data), if_match=md5_hex(data), attrs=new)
    store.copy_object(store.endpoint.bucket, "here", "copied-here", size=len(data), if_match=md5_hex(data), attrs=new)

    # Then each copy holds the bytes, the new headers, and only the new metadata
    for key in ("copied", "copied-here"):
        landed, response = read_back(store, key)
        assert landed == data, key
        assert (response["ContentType"], response["CacheControl"], response["Metadata"]) == (
            "text/new", "no-cache", {"new": "2"},
        ), key  # fmt: skip
        head = store.head(key)
        assert head is not None and (head.etag, head.metadata) == (md5_hex(data), {"new": "2"}), key


def test_copy_object_of_a_stale_etag_raises_precondition_failed_where_the_store_checks(
    store: Store, server_name: str
) -> None:
    # Given an object that has changed since its ETag was read
    put(store, "changed", b"first version")
    put(store, "changed", b"second version")

    # When it is copied if it still has the first version's ETag
    def stale_copy() -> str:
        return store.copy_object(store.endpoint.bucket, "changed", "copy", size=14,
                                 if_match=md5_hex(b"first version"), attrs=Attributes())  # fmt: skip

    # Then PreconditionFailed, and nothing is written: where the store checks, or boto3 checks first
    if CHECKS_COPY_IF_MATCH[server_name] or store.transport == "boto3":
        with pytest.raises(PreconditionFailed) as failed:
            stale_copy()
        assert failed.value.status == 412
        assert store.head("copy") is None
    else:  # the store made the copy of the second version (what the engine's check after the copy is for)
        stale_copy()
        copied = store.head("copy")
        assert copied is not None and copied.etag == md5_hex(b"second version")


# -- tagging --------------------------------------------------------------------------------------


def test_get_tagging_returns_the_url_encoded_tag_set(store: Store, server_name: str) -> None:
    if not KEEPS_TAGS[server_name]:
        # Given Swift, which keeps no tags
        # Then a put with tags is refused as not implemented, and an object's tag set is empty
        with pytest.raises(StoreError) as refused:
            store.put("tagged", b"x", length=1, md5=None, attrs=Attributes(tagging="a=1&b=2"))
        assert (refused.value.status, refused.value.code) == (501, "NotImplemented")
        put(store, "untagged", b"x")
        assert store.get_tagging("untagged") == ""
        return

    # Given an object put with tags by a plain client
    client_of(store).put_object(Bucket=store.endpoint.bucket, Key="tagged", Body=b"x", Tagging="a=1&b=2&c%20d=e%2Ff")

    # When its tag set is read
    # Then it comes URL-encoded as x-amz-tagging wants it, and a HEAD counts the tags
    assert sorted(store.get_tagging("tagged").split("&")) == ["a=1", "b=2", "c%20d=e%2Ff"]
    head = store.head("tagged")
    assert head is not None and head.tag_count == 3


def test_a_tag_set_put_on_an_object_reads_back_the_same(store: Store, server_name: str) -> None:
    if server_name == "swift":
        pytest.skip("Swift keeps no tags (see the test of tags above)")
    # Given an object without tags
    put(store, "later-tagged", b"x")

    # When a tag set with odd characters and an empty value is put on it
    store.put_tagging("later-tagged", "team=ops&c%20d=e%2Ff&empty=")

    # Then it reads back the same, and a HEAD counts the tags
    assert sorted(store.get_tagging("later-tagged").split("&")) == ["c%20d=e%2Ff", "empty=", "team=ops"]
    head = store.head("later-tagged")
    assert head is not None and head.tag_count == 3


# -- what a backup writes besides the bytes: tags, encryption, an ACL ------------------------------

# What each store does with the attributes of a PUT and a CreateMultipartUpload: "kept" (they read back),
# or the code of the refusal. Swift 2.30 refuses Tagging and encryption headers whole; Ceph 16 without a
# key store refuses encryption.
KEEPS = {
    "moto": {"tagging": "kept", "encryption": "kept", "acl": "kept"},
    "ceph": {"tagging": "kept", "encryption": "InvalidRequest", "acl": "kept"},
    "swift": {"tagging": "NotImplemented", "encryption": "NotImplemented", "acl": "kept"},
    "seaweedfs": {"tagging": "kept", "encryption": "kept", "acl": "kept"},
}
BACKUP_ATTRIBUTES = {
    "tagging": Attributes(tagging="team=ops&retention=7%20years"),
    "encryption": Attributes(encryption="AES256"),
    "acl": Attributes(acl="bucket-owner-full-control"),
}


def _landed(attribute: str, store: Store, key: str) -> bool:
    client, bucket = client_of(store), store.endpoint.bucket
    if attribute == "tagging":
        tags = client.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
        return {t["Key"]: t["Value"] for t in tags} == {"team": "ops", "retention": "7 years"}
    if attribute == "encryption":
        return client.head_object(Bucket=bucket, Key=key).get("ServerSideEncryption") == "AES256"
    grants = client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
    return any(g["Permission"] == "FULL_CONTROL" for g in grants)


@pytest.mark.parametrize("attribute", list(BACKUP_ATTRIBUTES))
def test_a_put_and_a_multipart_upload_carry_tags_encryption_and_an_acl_or_are_refused_by_name(
    store: Store, server_name: str, attribute: str
) -> None:
    attrs, expected = BACKUP_ATTRIBUTES[attribute], KEEPS[server_name][attribute]

    def single() -> None:
        put(store, "single", b"one put", attrs)

    def multipart() -> None:
        upload = store.create_upload("parts", attrs)
        etag = store.upload_part("parts", upload, 1, b"one part", length=8, md5=md5_hex(b"one part"))
        store.complete_upload("parts", upload, [(1, etag)])

    for write, key in ((single, "single"), (multipart, "parts")):
        if expected == "kept":
            write()
            if (server_name, attribute, key) == ("ceph", "tagging", "parts"):
                # Ceph 16 takes tags with CreateMultipartUpload and keeps none: the engine sets them afterwards
                assert not _landed(attribute, store, key)
                store.put_tagging(key, attrs.tagging or "")
            assert _landed(attribute, store, key), key
        else:
            with pytest.raises(StoreError) as refused:
                write()
            assert refused.value.code == expected and not refused.value.transient, key
