"""The questions a copy's plan asks of a store, answered from its Facts or, once per store, by trying.

Whether its ETags are MD5s, whether it refuses a body unlike its Content-MD5,
and how large a source object's own parts are: no configuration says these,
and each decides which plan (s3s3.copy.plan) can prove a copy.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from enum import StrEnum

from s3s3.config import MAX_PART, MIN_PART
from s3s3.errors import BadDigest, StoreError
from s3s3.store.base import CHECKSUM_BYTES, Attributes, Checksum, ObjectInfo, Store
from s3s3.store.facts import Fact, store_name

logger = logging.getLogger(__name__)

PROBE_KEY = ".s3s3-probe-content-md5"  # below the destination's prefix; stays only where Content-MD5 is ignored
CHECKSUM_PROBE_KEY = ".s3s3-probe-checksum"  # below the destination's prefix; deleted once answered


class ChecksumSupport(StrEnum):
    """What a store does with a full-object checksum sent with a PUT, as `s3s3 doctor` words it."""

    CHECKED = "checked"  # it refuses a body unlike the checksum (BadDigest), and keeps the checksum
    KEPT = "kept"  # it keeps the checksum and answers it, without checking the body against it
    IGNORED = "ignored"  # it keeps nothing, or refuses the header


def etags_are_md5s(dest: Store) -> bool:
    """Whether the ETags `dest` gives its objects and parts are MD5s of what it received.

    Not where it encrypts with KMS (AWS gives such objects ETags that look
    like MD5s and are not), nor where a copy found out otherwise.
    """
    return dest.endpoint.sse != "aws:kms" and not dest.facts.knows(Fact.PART_ETAGS_NOT_MD5)


def checks_content_md5(dest: Store) -> bool:
    """Whether `dest` refuses a body whose MD5 is not the Content-MD5 sent with it (AWS, Ceph, Swift do).

    Found out once per store, by one PUT of one byte with a wrong Content-MD5:
    a store that checks stores nothing (BadDigest); one that does not keeps
    the byte, which is deleted at once. The answer is one of the store's Facts.
    """
    if dest.facts.knows(Fact.CHECKS_CONTENT_MD5):
        return True
    if dest.facts.knows(Fact.IGNORES_CONTENT_MD5):
        return False
    key = dest.endpoint.prefix + PROBE_KEY
    try:
        dest.put(key, b"s", length=1, md5=hashlib.md5(b"3").hexdigest(), attrs=Attributes())
    except BadDigest:
        dest.facts.learn(Fact.CHECKS_CONTENT_MD5)
        return True
    except StoreError as e:  # refused for another reason (permissions): learn nothing, assume nothing
        logger.debug("Could not find out whether %s checks Content-MD5: %s", dest.label, e)
        return False
    dest.facts.learn(Fact.IGNORES_CONTENT_MD5)
    try:
        dest.delete(key)
    except StoreError as e:
        logger.warning("Could not delete %r, left by a probe of Content-MD5 at %s: %s", key, dest.label, e)
    return False


def object_lock_on(dest: Store) -> bool | None:
    """Whether `dest`'s bucket has Object Lock (GetObjectLockConfiguration), asked once per bucket; None if unknown.

    Unknown where the store refused to say (permissions): the copy then
    writes what it carries, and the store's own answer explains a refusal.
    """
    bucket = dest.endpoint.bucket
    if dest.facts.knows(Fact.OBJECT_LOCK, bucket):
        return True
    if dest.facts.knows(Fact.NO_OBJECT_LOCK, bucket):
        return False
    try:
        on = dest.object_lock()
    except StoreError as e:
        logger.debug("Could not find out whether %s has Object Lock: %s", dest.label, e)
        return None
    if on:
        dest.facts.learn(Fact.OBJECT_LOCK, bucket)
    else:
        dest.facts.learn(Fact.NO_OBJECT_LOCK, bucket, shared=False)
    return on


def source_part_size(source: Store, dest: Store, info: ObjectInfo) -> int | None:
    """The size of the source's parts, where they are all that size but the last and may be copied as they are.

    One HEAD of part 1 (`partNumber=1`) says its size and how many parts
    there are. A store that answers for the whole object is not asked again;
    nor is a pair whose part-for-part copies did not add up before, nor a
    destination whose part ETags are not MD5s.
    """
    count = part_count(info.etag)
    if (
        count is None
        or source.facts.knows(Fact.NO_PART_NUMBER)
        or source.facts.knows(Fact.UNALIGNED, store_name(dest.endpoint))
        or dest.facts.knows(Fact.PART_ETAGS_NOT_MD5)
    ):
        return None
    try:
        # No If-Match: a part size from another version cannot pass, as every range is read If-Match.
        part = source.head(info.key, part_number=1)
    except StoreError as e:
        if 400 <= e.status < 500 and e.status != 404:  # refused (Swift: 405), not missing or down
            source.facts.learn(Fact.NO_PART_NUMBER)
        return None
    if part is None:
        return None
    if part.parts_count is None:
        source.facts.learn(Fact.NO_PART_NUMBER)  # it answered for the whole object: ask no more
        return None
    size = part.size
    if part.parts_count != count:
        return None
    if not (MIN_PART <= size <= MAX_PART or count == 1) or not (count - 1) * size < info.size <= count * size:
        return None
    return size


def part_count(etag: str) -> int | None:
    """The number of parts a multipart ETag (`md5-of-md5s-N`) says the object has; None for any other ETag."""
    number = etag.rpartition("-")[2] if "-" in etag else ""
    return int(number) if number.isdigit() and 0 < int(number) <= 10000 else None


_SUPPORT_FACTS = {
    ChecksumSupport.CHECKED: Fact.CHECKS_CHECKSUM,
    ChecksumSupport.KEPT: Fact.KEEPS_CHECKSUM,
    ChecksumSupport.IGNORED: Fact.IGNORES_CHECKSUM,
}


def keeps_checksum(dest: Store, algorithm: str) -> bool:
    """Whether `dest` keeps a full-object checksum of `algorithm` sent with a PUT (checked or not).

    Found out once per store and algorithm (`checksum_support`), kept as one of its Facts.
    """
    if dest.facts.knows(Fact.CHECKS_CHECKSUM, algorithm) or dest.facts.knows(Fact.KEEPS_CHECKSUM, algorithm):
        return True
    if dest.facts.knows(Fact.IGNORES_CHECKSUM, algorithm):
        return False
    support = checksum_support(dest, algorithm)
    dest.facts.learn(_SUPPORT_FACTS[support], algorithm)
    return support is not ChecksumSupport.IGNORED


def checksum_support(dest: Store, algorithm: str, key: str | None = None) -> ChecksumSupport:
    """What `dest` does with a full-object checksum of `algorithm`, tried on `key` (a probe key by default).

    One PUT of one byte with a checksum of other bytes: a store that checks
    refuses it; one that does not stores the byte, and a HEAD says whether it
    kept the checksum. The byte is deleted.
    """
    key = key or dest.endpoint.prefix + CHECKSUM_PROBE_KEY
    wrong = base64.b64encode(hashlib.sha256(b"3").digest()[: CHECKSUM_BYTES[algorithm]]).decode()
    sent = Checksum(algorithm, wrong)
    try:
        dest.put(key, b"s", length=1, md5=hashlib.md5(b"s").hexdigest(), attrs=Attributes(), checksum=sent)
    except BadDigest:
        return ChecksumSupport.CHECKED
    except StoreError as e:  # an algorithm it does not know (400), or refused for another reason: send none
        logger.debug("%s refused a PUT with an %s checksum: %s", dest.label, algorithm, e)
        return ChecksumSupport.IGNORED
    try:
        found = dest.head(key, checksums=True)
    finally:
        try:
            dest.delete(key)
        except StoreError as e:
            logger.warning("Could not delete %r, left by a probe of checksums at %s: %s", key, dest.label, e)
    return ChecksumSupport.KEPT if found is not None and found.checksum == sent else ChecksumSupport.IGNORED
