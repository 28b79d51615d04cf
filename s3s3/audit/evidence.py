"""What an audit says of one key at one destination: a verdict, and the evidence it rests on.

Each decision is one pure function of what the stores said: their listings
(`from_listings`), their HEADs (`from_heads`), or the MD5s of both objects
read back now (`from_reads`). The evidence is the strongest the two objects
allow, in the order of `Evidence`: an MD5 the stores computed, one s3s3 or
rclone recorded when they wrote the copy, the same multipart ETag, a
full-object checksum both stores keep. Sizes alone prove nothing: such a key
is `unproven`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from s3s3.store import META_MD5, META_MD5CHKSUM, ObjectInfo, is_md5, md5_from_b64


class Verdict(StrEnum):
    """What an audit found of one key at one destination."""

    EQUAL = "equal"  # the destination holds the source's bytes, as the evidence proves
    DIFFERS = "differs"  # it holds other bytes
    MISSING = "missing"  # at the source only
    EXTRA = "extra"  # at the destination only (reported; never a failure)
    UNPROVEN = "unproven"  # the sizes agree, and nothing either store says proves the bytes
    ERROR = "error"  # a request failed: nothing is decided


class Evidence(StrEnum):
    """What a verdict rests on, strongest first (the checksums after rclone's MD5, a read above them all)."""

    ETAG_MD5 = "etag-md5"  # both ETags are the MD5s the stores computed of what they received
    S3S3_MD5 = "s3s3-md5"  # an MD5 s3s3 recorded on a copy it proved (x-amz-meta-s3s3-md5), against the other's
    PART_ETAGS = "part-etags"  # the same multipart ETag: the same parts, of the same MD5s
    MD5CHKSUM = "md5chksum"  # an MD5 recorded as rclone records it (x-amz-meta-md5chksum, base64)
    CHECKSUM_CRC64NVME = "checksum-crc64nvme"  # the same full-object checksum kept by both stores
    CHECKSUM_CRC32C = "checksum-crc32c"
    CHECKSUM_CRC32 = "checksum-crc32"
    CHECKSUM_SHA256 = "checksum-sha256"
    CHECKSUM_SHA1 = "checksum-sha1"
    READ = "read"  # both objects read back now, and their MD5s compared
    SIZE = "size"  # the sizes only: they differ (differs), or nothing more is known (unproven)
    LISTING = "listing"  # the key is in one listing only
    NONE = "none"  # the requests that would have decided failed


@dataclass(frozen=True)
class Decision:
    """A verdict and its evidence."""

    verdict: Verdict
    evidence: Evidence


# The MD5s an object can carry, the stores' own first.
_MD5_STRENGTH = (Evidence.ETAG_MD5, Evidence.S3S3_MD5, Evidence.MD5CHKSUM)


def from_listings(src: ObjectInfo | None, dst: ObjectInfo | None, *, md5_etags: bool = True) -> Decision | None:
    """What two listings decide, or None where it takes HEADs.

    Listings decide a key on one side only, sizes that differ, the same
    plain-MD5 ETag and the same multipart ETag. ETags that look like MD5s
    and differ are asked about: an object encrypted with KMS has such an
    ETag without it being its MD5, and only a HEAD says so. `md5_etags` is
    False for a destination whose ETags are not MD5s (s3s3.store.probes).
    """
    if dst is None:
        return Decision(Verdict.MISSING, Evidence.LISTING)
    if src is None:
        return Decision(Verdict.EXTRA, Evidence.LISTING)
    if src.size != dst.size:
        return Decision(Verdict.DIFFERS, Evidence.SIZE)
    if src.etag == dst.etag and src.etag:
        if is_md5(src.etag) and md5_etags:
            return Decision(Verdict.EQUAL, Evidence.ETAG_MD5)
        if "-" in src.etag:
            return Decision(Verdict.EQUAL, Evidence.PART_ETAGS)
    return None


def from_heads(src: ObjectInfo, dst: ObjectInfo, *, md5_etags: bool = True) -> Decision:
    """What the objects' HEADs (or a listing's entry, for `src`) decide: the strongest evidence both allow."""
    if src.size != dst.size:
        return Decision(Verdict.DIFFERS, Evidence.SIZE)
    mine, theirs = md5_claim(src), md5_claim(dst, md5_etags=md5_etags)
    # Two MD5s decide, named after the weaker of the two who say so; rclone's comes after the same part ETags.
    said = max(_MD5_STRENGTH.index(mine[0]), _MD5_STRENGTH.index(theirs[0])) if mine and theirs else None
    if mine and theirs and said is not None and _MD5_STRENGTH[said] is not Evidence.MD5CHKSUM:
        return _compared(mine[1], theirs[1], _MD5_STRENGTH[said])
    if "-" in src.etag and src.etag == dst.etag:
        return Decision(Verdict.EQUAL, Evidence.PART_ETAGS)
    if mine and theirs:
        return _compared(mine[1], theirs[1], Evidence.MD5CHKSUM)
    # Full-object checksums only: a composite one (of parts) says nothing of another object's bytes.
    ours, other = src.full_checksum, dst.full_checksum
    if ours is not None and other is not None and ours.algorithm == other.algorithm:
        return _compared(ours.value, other.value, Evidence(f"checksum-{ours.algorithm}"))
    return Decision(Verdict.UNPROVEN, Evidence.SIZE)


def from_reads(src_md5: str, dst_md5: str) -> Decision:
    """Both objects read back now: the MD5s of their bytes decide."""
    return _compared(src_md5, dst_md5, Evidence.READ)


def md5_claim(info: ObjectInfo, *, md5_etags: bool = True) -> tuple[Evidence, str] | None:
    """The object's MD5 and who says so: its store (the ETag), s3s3's record, or rclone's; None if nobody."""
    if info.etag_is_md5 and md5_etags:
        return Evidence.ETAG_MD5, info.etag
    metadata = info.metadata or {}
    recorded = metadata.get(META_MD5)
    if recorded and is_md5(recorded):
        return Evidence.S3S3_MD5, recorded
    chksum = md5_from_b64(metadata.get(META_MD5CHKSUM))
    return (Evidence.MD5CHKSUM, chksum) if chksum else None


def _compared(mine: str, theirs: str, evidence: Evidence) -> Decision:
    return Decision(Verdict.EQUAL if mine == theirs else Verdict.DIFFERS, evidence)
