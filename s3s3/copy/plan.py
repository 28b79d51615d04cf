"""How one object is copied: the plan, chosen by one pure function from what is known.

Every way s3s3 copies an object is a `Plan`; `choose` picks one from the
facts of the object, the two stores and the destination's options, and the
copy engine (s3s3.copy.engine) carries it out. Where a copy meets a new
fact half-way (part ETags that are not MD5s, parts that do not add up to the
source's ETag), the store's Facts learn it and `choose` is asked again: a
fallback is a second plan, never a branch inside the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Plan(StrEnum):
    """One way of copying an object, named as the DEBUG log names it."""

    SERVER_SIDE = "server-side copy"  # same store and identity: CopyObject (UploadPartCopy past 5 GiB)
    PUT_BUFFERED = "one PUT from memory"  # up to multipart_threshold: hashed, sent with Content-MD5
    PUT_PROVEN = "one streamed PUT proven by the store"  # plain-MD5 source: its MD5 as Content-MD5, nothing hashed
    PUT_STREAMED = "one streamed PUT"  # multipart off, MD5 known: Content-MD5 up front, hashed on the way
    PUT_HASHED_FIRST = "one streamed PUT after a hashing read"  # multipart off, no MD5: read twice
    PARTS_IN_ORDER = "parts read in order"  # whole parts with Content-MD5, the whole object hashed
    PARTS_FROM_RANGES = "parts streamed from ranges"  # each proven by its part ETag
    WHOLE_PARTS_FROM_RANGES = "whole parts from ranges"  # Content-MD5 on each: part ETags are not MD5s
    PART_FOR_PART = "part for part"  # the source's own parts, proven by the source's ETag, unhashed

    @property
    def ranged(self) -> bool:
        """True when the plan reads the source by ranges, not as one body in order."""
        return self in (Plan.PARTS_FROM_RANGES, Plan.WHOLE_PARTS_FROM_RANGES, Plan.PART_FOR_PART)

    @property
    def reads_body(self) -> bool:
        """True when the plan streams the source's GET body from its start."""
        return self in (Plan.PUT_BUFFERED, Plan.PUT_PROVEN, Plan.PUT_STREAMED, Plan.PARTS_IN_ORDER)


# Above it: parts, each retried alone, rather than one PUT a failure sends again whole. On two SeaweedFS
# servers (bench/one_put.py) one proven PUT of 512 MiB took 2.34 s and 0.27 CPU s, parts read in order
# 4.59 s and 1.96 CPU s; of 1 GiB 5.63 s and 0.43 against 7.81 s and 3.65.
PROVEN_PUT_MAX = 1024 * 1024 * 1024


@dataclass(frozen=True)
class Known:
    """What the choice rests on: the object, the two stores, the destination's options."""

    size: int
    md5_known: bool  # the source's MD5 is known before a byte moves (a plain-MD5 ETag, or s3s3-md5)
    verify_md5: bool  # the whole object's MD5 is wanted, to check after the copy
    same_store: bool = False  # source and destination are one store with one identity
    multipart: bool = True  # the destination's `multipart`
    threshold: int = 8 * 1024 * 1024  # the destination's `multipart_threshold`
    ranges: bool = True  # both stores are on the lean path, which streams a ranged GET into an UploadPart
    part_etags_md5: bool = True  # the destination's part ETags are MD5s of what it received
    source_part_size: int | None = None  # the source's own part size, where it said so (and it adds up)
    md5_is_etag: bool = False  # the source's ETag is its MD5: one PUT, no SSE-KMS or SSE-C
    store_checks_md5: bool = False  # the destination refuses a body whose MD5 is not its Content-MD5
    proven_put_max: int = PROVEN_PUT_MAX  # the largest object sent in one PUT the store proves
    parts_need_md5: bool = False  # the copy carries Object Lock: AWS refuses an UploadPart without Content-MD5


def choose(known: Known) -> Plan:
    """The plan for copying an object of which `known` is known."""
    if known.same_store:
        return Plan.SERVER_SIDE
    if known.size <= known.threshold:
        return Plan.PUT_BUFFERED
    # The MD5 is known before a byte moves and the store checks the body against it: nothing to hash.
    proven = known.md5_is_etag and known.store_checks_md5 and not known.verify_md5
    if not known.multipart:
        if proven:
            return Plan.PUT_PROVEN
        return Plan.PUT_STREAMED if known.md5_known else Plan.PUT_HASHED_FIRST
    if proven and known.size <= known.proven_put_max:
        return Plan.PUT_PROVEN
    # The whole object's MD5, to check against the source's or to verify, needs the body read in order.
    if known.md5_known or known.verify_md5 or not known.ranges:
        return Plan.PARTS_IN_ORDER
    # Nothing but a Content-MD5 on each part proves what the store got; or the store wants one on each.
    if not known.part_etags_md5 or known.parts_need_md5:
        return Plan.WHOLE_PARTS_FROM_RANGES
    if known.source_part_size is not None:
        return Plan.PART_FOR_PART
    return Plan.PARTS_FROM_RANGES
