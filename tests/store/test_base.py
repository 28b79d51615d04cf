"""What the store interface's values say of an object (s3s3.store.base): its MD5, its checksum."""

from __future__ import annotations

import base64
import hashlib

import pytest

from s3s3.store import META_MD5, META_MD5CHKSUM, Checksum, ObjectInfo, md5_from_b64
from s3s3.store.base import checksum_from

MD5 = hashlib.md5(b"bytes").hexdigest()
B64 = base64.b64encode(bytes.fromhex(MD5)).decode()
OTHER = hashlib.md5(b"other").hexdigest()


def test_an_object_whose_etag_is_no_md5_takes_its_md5_from_s3s3s_record_then_from_rcloness() -> None:
    # Given multipart objects carrying s3s3's record, rclone's, both, or neither
    etag = "0" * 32 + "-2"
    both = ObjectInfo("k", 5, etag, metadata={META_MD5: OTHER, META_MD5CHKSUM: B64})

    # Then rclone's md5chksum (base64) is taken as the MD5, s3s3's first where both are there
    assert ObjectInfo("k", 5, etag, metadata={META_MD5CHKSUM: B64}).md5 == MD5
    assert both.md5 == OTHER
    assert ObjectInfo("k", 5, etag, metadata={}).md5 is None
    # And a plain MD5 ETag comes before either
    assert ObjectInfo("k", 5, MD5, metadata={META_MD5CHKSUM: base64.b64encode(b"x" * 16).decode()}).md5 == MD5


@pytest.mark.parametrize("value", ["", "not base64!", base64.b64encode(b"short").decode(), B64 + "AA=="])
def test_an_md5chksum_that_is_not_a_base64_md5_is_no_md5(value: str) -> None:
    assert md5_from_b64(value) is None
    assert ObjectInfo("k", 5, "0" * 32 + "-2", metadata={META_MD5CHKSUM: value}).md5 is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-amz-checksum-sha256": "c2hh", "x-amz-checksum-type": "FULL_OBJECT"}, Checksum("sha256", "c2hh")),
        ({"x-amz-checksum-crc32": "Y3Jj"}, Checksum("crc32", "Y3Jj")),  # moto gives one PUT's no type
        ({"x-amz-checksum-crc32c": "Y3Jj-3"}, Checksum("crc32c", "Y3Jj", full_object=False)),
        ({"x-amz-checksum-sha1": "c2hh", "x-amz-checksum-type": "COMPOSITE"}, Checksum("sha1", "c2hh", False)),
        ({"x-amz-checksum-crc64nvme": "Y3JjNjQ=", "x-amz-checksum-type": "FULL_OBJECT"},
         Checksum("crc64nvme", "Y3JjNjQ=")),
        ({"content-type": "text/plain"}, None),
    ],
)
def test_a_checksum_is_read_from_an_answers_headers_full_object_or_composite(
    headers: dict[str, str], expected: Checksum | None
) -> None:
    found = checksum_from(headers.get)

    assert found == expected
    info = ObjectInfo("k", 1, MD5, checksum=found)
    assert info.full_checksum == (found if found is not None and found.full_object else None)
