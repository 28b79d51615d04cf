"""Each key's verdict and the evidence behind it (s3s3.audit.evidence): pure functions of what the stores said."""

from __future__ import annotations

import base64
import hashlib

import pytest

from s3s3.audit.evidence import Decision, Evidence, Verdict, from_heads, from_listings, from_reads, md5_claim
from s3s3.store import META_MD5, META_MD5CHKSUM, Checksum, ObjectInfo

A, B = hashlib.md5(b"a").hexdigest(), hashlib.md5(b"b").hexdigest()
PARTS, OTHER_PARTS = "1" * 32 + "-3", "2" * 32 + "-2"
SHA = base64.b64encode(hashlib.sha256(b"a").digest()).decode()


def obj(etag: str = A, size: int = 10, metadata: dict[str, str] | None = None, **more: object) -> ObjectInfo:
    return ObjectInfo("k", size, etag, metadata=metadata, **more)  # type: ignore[arg-type]


def chksum(md5: str) -> dict[str, str]:
    return {META_MD5CHKSUM: base64.b64encode(bytes.fromhex(md5)).decode()}


# -- from the listings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst", "expected"),
    [
        (obj(), None, Decision(Verdict.MISSING, Evidence.LISTING)),
        (None, obj(), Decision(Verdict.EXTRA, Evidence.LISTING)),
        (obj(size=10), obj(size=11), Decision(Verdict.DIFFERS, Evidence.SIZE)),
        (obj(A), obj(A), Decision(Verdict.EQUAL, Evidence.ETAG_MD5)),
        (obj(PARTS), obj(PARTS), Decision(Verdict.EQUAL, Evidence.PART_ETAGS)),
    ],
    ids=["missing", "extra", "sizes-differ", "same-md5-etag", "same-multipart-etag"],
)
def test_the_listings_decide_one_sided_keys_sizes_and_equal_etags(
    src: ObjectInfo | None, dst: ObjectInfo | None, expected: Decision
) -> None:
    assert from_listings(src, dst) == expected


@pytest.mark.parametrize(
    ("src", "dst", "md5_etags"),
    [
        (obj(A), obj(B), True),  # they look like MD5s: an object encrypted with KMS has such an ETag too
        (obj(A), obj(PARTS), True),  # a single PUT copied in parts
        (obj(PARTS), obj(OTHER_PARTS), True),  # other part sizes
        (obj(A), obj(A), False),  # a destination whose ETags are not MD5s
        (obj(""), obj(""), True),
    ],
    ids=["md5-etags-differ", "md5-and-multipart", "multipart-etags-differ", "not-md5-destination", "no-etags"],
)
def test_the_listings_leave_to_heads_what_their_etags_cannot_prove(
    src: ObjectInfo, dst: ObjectInfo, md5_etags: bool
) -> None:
    assert from_listings(src, dst, md5_etags=md5_etags) is None


# -- from HEADs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst", "expected"),
    [
        # The stores' MD5s, then s3s3's record against either
        (obj(A), obj(A), Decision(Verdict.EQUAL, Evidence.ETAG_MD5)),
        (obj(A), obj(B), Decision(Verdict.DIFFERS, Evidence.ETAG_MD5)),
        (obj(A), obj(PARTS, metadata={META_MD5: A}), Decision(Verdict.EQUAL, Evidence.S3S3_MD5)),
        (obj(A), obj(PARTS, metadata={META_MD5: B}), Decision(Verdict.DIFFERS, Evidence.S3S3_MD5)),
        (obj(PARTS, metadata={META_MD5: A}), obj(A), Decision(Verdict.EQUAL, Evidence.S3S3_MD5)),
        # s3s3's record on both sides outranks the same multipart ETag, which outranks rclone's record
        (obj(PARTS, metadata={META_MD5: B}), obj(PARTS, metadata={META_MD5: A}),
         Decision(Verdict.DIFFERS, Evidence.S3S3_MD5)),
        (obj(PARTS, metadata=chksum(B)), obj(PARTS, metadata=chksum(A)), Decision(Verdict.EQUAL, Evidence.PART_ETAGS)),
        (obj(PARTS), obj(PARTS), Decision(Verdict.EQUAL, Evidence.PART_ETAGS)),
        # rclone's md5chksum against any MD5
        (obj(PARTS, metadata=chksum(A)), obj(A), Decision(Verdict.EQUAL, Evidence.MD5CHKSUM)),
        (obj(PARTS, metadata=chksum(A)), obj(OTHER_PARTS, metadata={META_MD5: B}),
         Decision(Verdict.DIFFERS, Evidence.MD5CHKSUM)),
        # sizes first, whatever the MD5s say
        (obj(A, size=10), obj(A, size=9), Decision(Verdict.DIFFERS, Evidence.SIZE)),
        # nothing comparable: unproven by sizes alone
        (obj(PARTS), obj(OTHER_PARTS), Decision(Verdict.UNPROVEN, Evidence.SIZE)),
        (obj(PARTS), obj(A), Decision(Verdict.UNPROVEN, Evidence.SIZE)),
    ],
)
def test_heads_decide_by_the_strongest_evidence_both_objects_carry(
    src: ObjectInfo, dst: ObjectInfo, expected: Decision
) -> None:
    assert from_heads(src, dst) == expected


def test_a_kms_objects_etag_is_no_md5_and_its_recorded_md5_decides() -> None:
    # Given a source object encrypted with KMS (an ETag that looks like an MD5 and is not one), and its copy
    src = obj(B, encryption="aws:kms", metadata=chksum(A))

    # Then its ETag is not compared; the md5chksum recorded on it is
    assert from_heads(src, obj(A)) == Decision(Verdict.EQUAL, Evidence.MD5CHKSUM)
    assert from_heads(obj(A), obj(A), md5_etags=False) == Decision(Verdict.UNPROVEN, Evidence.SIZE)


@pytest.mark.parametrize(
    ("mine", "theirs", "expected"),
    [
        (Checksum("sha256", SHA), Checksum("sha256", SHA), Decision(Verdict.EQUAL, Evidence.CHECKSUM_SHA256)),
        (Checksum("crc32", "AAAAAA=="), Checksum("crc32", "AQAAAA=="),
         Decision(Verdict.DIFFERS, Evidence.CHECKSUM_CRC32)),
        (Checksum("crc32", "AAAAAA=="), Checksum("sha256", SHA), Decision(Verdict.UNPROVEN, Evidence.SIZE)),
        (Checksum("crc32c", "AAAAAA==", full_object=False), Checksum("crc32c", "AAAAAA=="),
         Decision(Verdict.UNPROVEN, Evidence.SIZE)),
        (Checksum("crc32c", "AAAAAA==", False), Checksum("crc32c", "AAAAAA==", False),
         Decision(Verdict.UNPROVEN, Evidence.SIZE)),
    ],
    ids=["same-sha256", "crc32-differs", "other-algorithms", "composite-against-full", "composite-both"],
)
def test_full_object_checksums_of_one_algorithm_decide_where_no_md5_does_and_composite_ones_never(
    mine: Checksum, theirs: Checksum, expected: Decision
) -> None:
    assert from_heads(obj(PARTS, checksum=mine), obj(A, checksum=theirs), md5_etags=False) == expected


def test_an_md5_outranks_a_checksum() -> None:
    src = obj(PARTS, metadata={META_MD5: A}, checksum=Checksum("sha256", SHA))
    dst = obj(B, checksum=Checksum("sha256", SHA))

    assert from_heads(src, dst) == Decision(Verdict.DIFFERS, Evidence.S3S3_MD5)


# -- from reads, and who says what MD5 ------------------------------------------------------------


def test_reads_decide_by_the_md5s_of_the_bytes_read() -> None:
    assert from_reads(A, A) == Decision(Verdict.EQUAL, Evidence.READ)
    assert from_reads(A, B) == Decision(Verdict.DIFFERS, Evidence.READ)


def test_an_objects_md5_claim_names_who_makes_it() -> None:
    assert md5_claim(obj(A, metadata={META_MD5: B})) == (Evidence.ETAG_MD5, A)
    assert md5_claim(obj(PARTS, metadata={META_MD5: B, **chksum(A)})) == (Evidence.S3S3_MD5, B)
    assert md5_claim(obj(PARTS, metadata=chksum(A))) == (Evidence.MD5CHKSUM, A)
    assert md5_claim(obj(PARTS, metadata={META_MD5: "not an md5"})) is None
    assert md5_claim(obj(A), md5_etags=False) is None
