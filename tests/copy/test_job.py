"""What a copy is written with besides its bytes (s3s3.copy.job.attributes): s3s3's record, and rclone's."""

from __future__ import annotations

import pytest

from s3s3.config import Endpoint
from s3s3.copy.job import attributes
from s3s3.store import META_ETAG, META_MD5, META_MD5CHKSUM, ObjectInfo, Store, b64_md5
from tests.helpers import md5_hex
from tests.stores import ListedStore

MD5 = md5_hex(b"bytes")
SINGLE = ObjectInfo("k", 5, MD5, metadata={"colour": "blue"})
MULTIPART = ObjectInfo("k", 5, "0" * 32 + "-2", metadata={"colour": "blue"})


def dest(**options: str) -> Store:
    return ListedStore(Endpoint(name="dest", bucket="b", preserve_mtime=False, **options), [])  # type: ignore[return-value, arg-type]


def test_a_single_put_copy_records_s3s3s_md5_and_no_md5chksum_its_etag_says_it_all() -> None:
    metadata = attributes(dest(), SINGLE, MD5).metadata

    assert metadata == {"colour": "blue", META_ETAG: MD5, META_MD5: MD5}


def test_a_copy_in_parts_records_its_md5_also_as_rclones_base64_md5chksum() -> None:
    metadata = attributes(dest(), SINGLE, MD5, parts=True).metadata

    assert metadata == {"colour": "blue", META_ETAG: MD5, META_MD5: MD5, META_MD5CHKSUM: b64_md5(MD5)}


def test_a_copy_to_a_kms_destination_records_md5chksum_as_its_etag_will_be_no_md5() -> None:
    metadata = attributes(dest(sse="aws:kms"), SINGLE, MD5).metadata

    assert metadata[META_MD5CHKSUM] == b64_md5(MD5)


@pytest.mark.parametrize("parts", [False, True])
def test_a_copy_whose_md5_is_unknown_carries_no_md5_claim_of_the_source(parts: bool) -> None:
    # Given a source whose metadata claims MD5s this copy does not prove (not MD5s, as far as s3s3 can tell)
    claims = {META_MD5: "not an md5", META_MD5CHKSUM: "not base64!", "colour": "blue"}
    info = ObjectInfo("k", 5, MULTIPART.etag, metadata=claims)

    # Then the copy is written without them
    assert attributes(dest(), info, None, parts=parts).metadata == {"colour": "blue", META_ETAG: MULTIPART.etag}


def test_a_source_md5chksum_is_written_again_from_the_md5_the_copy_proves() -> None:
    # Given an rclone-written source whose md5chksum and MD5 ETag disagree
    info = ObjectInfo("k", 5, MD5, metadata={META_MD5CHKSUM: b64_md5(md5_hex(b"stale"))})

    # Then the copy's md5chksum is the MD5 it was proven by
    assert attributes(dest(), info, MD5).metadata[META_MD5CHKSUM] == b64_md5(MD5)
