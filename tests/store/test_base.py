"""What the store interface's values say of an object (s3s3.store.base): its MD5, its checksum, its versions
and Object Lock."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest

from s3s3.errors import NotFound
from s3s3.store import META_MD5, META_MD5CHKSUM, Attributes, Checksum, Lock, ObjectInfo, Version, md5_from_b64
from s3s3.store.base import checksum_from, in_listing_order, lock_from, next_markers, store_error

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


# -- versions and Object Lock ---------------------------------------------------------------------


def _version(key: str, vid: str, second: int, *, latest: bool = False, marker: bool = False) -> Version:
    return Version(key, vid, datetime(2026, 1, 1, 0, 0, second, tzinfo=UTC), latest=latest, delete_marker=marker)


def test_a_page_split_into_versions_then_markers_is_put_back_in_s3s_order() -> None:
    # Given a page as boto3 (and moto's XML) gives it: every version, then every delete marker
    split = [
        _version("b", "b1", 1), _version("é", "e2", 3, latest=True), _version("é", "e1", 1),
        _version("a", "a1", 1), _version("b", "bm", 2, latest=True, marker=True), _version("é", "em", 2, marker=True),
    ]  # fmt: skip

    # Then by key in UTF-8 order, each key's current entry first, then newest first
    assert [v.version_id for v in in_listing_order(split)] == ["a1", "bm", "b1", "e2", "em", "e1"]


def test_entries_of_one_key_in_one_second_keep_the_order_the_store_gave() -> None:
    # Given a key's entries with the same LastModified (moto writes whole seconds), the current one last
    same = [_version("k", "v2", 5), _version("k", "v1", 5), _version("k", "v3", 5, latest=True)]

    # Then the current entry leads, and the others stay as given
    assert [v.version_id for v in in_listing_order(same)] == ["v3", "v2", "v1"]


def test_the_next_page_starts_after_the_entry_of_the_next_version_marker_whatever_key_the_store_names() -> None:
    # Given a page ending with a key holding "+", named unescaped by a store that says it escaped it (Ceph 16)
    page = [_version("a", "a1", 1), _version("plus+sign", "p2", 2)]

    # Then the next key is the page's own entry's, not the store's decoded marker
    assert next_markers(page, "plus sign", "p2") == ("plus+sign", "p2")
    # And where no entry has that version, the store's markers stand
    assert next_markers(page, "z", "elsewhere") == ("z", "elsewhere")


@pytest.mark.parametrize(
    ("headers", "lock"),
    [
        ({}, None),
        ({"x-amz-object-lock-legal-hold": "OFF"}, None),
        ({"x-amz-object-lock-legal-hold": "ON"}, Lock(None, None, legal_hold=True)),
        ({"x-amz-object-lock-mode": "COMPLIANCE", "x-amz-object-lock-retain-until-date": "2030-01-02T03:04:05Z"},
         Lock("COMPLIANCE", "2030-01-02T03:04:05.000Z")),
        ({"x-amz-object-lock-mode": "GOVERNANCE", "x-amz-object-lock-retain-until-date": "2030-01-02T03:04:05.120000Z",
          "x-amz-object-lock-legal-hold": "ON"}, Lock("GOVERNANCE", "2030-01-02T03:04:05.120Z", legal_hold=True)),
    ],
)  # fmt: skip
def test_an_answers_object_lock_is_read_with_its_date_as_aws_writes_it(headers: dict[str, str], lock: Lock) -> None:
    assert lock_from(headers.get) == lock


def test_a_lock_is_written_as_the_headers_that_set_it() -> None:
    lock = Lock("COMPLIANCE", "2030-01-02T03:04:05.000Z", legal_hold=True)
    assert Attributes(lock=lock).as_headers() == {
        "x-amz-object-lock-mode": "COMPLIANCE",
        "x-amz-object-lock-retain-until-date": "2030-01-02T03:04:05.000Z",
        "x-amz-object-lock-legal-hold": "ON",
    }


def test_a_delete_markers_answer_and_a_missing_version_are_not_found() -> None:
    # A HEAD of a delete marker's version (AWS, moto: 405 with x-amz-delete-marker), a GET of one (moto: 404)
    assert isinstance(store_error("HeadObject", 405, "405", "", delete_marker=True), NotFound)
    assert isinstance(store_error("GetObject", 404, "NoSuchVersion", "gone"), NotFound)
    # But a 405 that is no delete marker is a refusal (Swift: partNumber)
    assert not isinstance(store_error("HeadObject", 405, "405", ""), NotFound)
