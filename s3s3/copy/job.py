"""One object's copy under way, and what every executor writes with it.

A `Job` is what each plan's executor (s3s3.copy.put, s3s3.copy.parts) takes:
the two stores, the source object as its GET or HEAD described it, the open
body, the retry budget and the process's limits. `attributes` says what a
copy is written with besides its bytes; `dest_key` where it lands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from s3s3.config import Versions
from s3s3.copy.limits import DEFAULT, Limits
from s3s3.copy.locks import carried
from s3s3.retry import Budget
from s3s3.store import (
    META_ETAG,
    META_MD5,
    META_MD5CHKSUM,
    META_MTIME,
    META_VERSION,
    Attributes,
    Body,
    Checksum,
    ObjectInfo,
    Store,
    b64_md5,
)
from s3s3.store.probes import etags_are_md5s, keeps_checksum


class Guard(Protocol):
    """Says whether another copy of the same key ran at the same time as this one (s3s3.state.overlap)."""

    def begin(self, dest: str, key: str) -> Any: ...

    def end(self, ticket: Any) -> bool: ...


@dataclass(frozen=True)
class Job:
    """One object's copy under way: what a plan's executor works with."""

    source: Store
    dest: Store
    target: str  # the key at the destination
    info: ObjectInfo  # the source object, as its GET or HEAD said
    body: Body | None  # the source's GET body, open, or None after a HEAD
    budget: Budget
    verify_md5: bool = False  # the whole object's MD5 is wanted
    part_size: int | None = None  # Plan.PART_FOR_PART: the source's own part size
    tagging: str | None = None  # the source's tag set, where the destination keeps tags
    limits: Limits = DEFAULT  # the process's bandwidth, memory and stream budgets

    def attributes(self, md5: str | None, *, parts: bool = False) -> Attributes:
        return attributes(self.dest, self.info, md5, self.tagging, parts=parts)

    def checksum(self) -> Checksum | None:
        """The source's full-object checksum, to send with a single PUT where the destination keeps its algorithm.

        A store that checks it refuses bytes unlike the source's (BadDigest);
        one that keeps it answers it to an audit. Parts carry none: a
        full-object checksum of a multipart upload needs every part's CRC.
        """
        checksum = self.info.full_checksum
        return checksum if checksum is not None and keeps_checksum(self.dest, checksum.algorithm) else None


def attributes(
    dest: Store, info: ObjectInfo, md5: str | None, tagging: str | None = None, *, parts: bool = False
) -> Attributes:
    """What the copy of `info` at `dest` is written with (its MD5 is `md5`, where known) besides its bytes.

    Its headers and user metadata, s3s3's record (`s3s3-source-etag`, and
    `s3s3-md5`), the source's Last-Modified as `mtime` (rclone's convention,
    Unix seconds; an `mtime` the source already carries is kept), its tags,
    the destination's storage class, encryption and ACL, the source
    version's Object Lock (with `object_lock = copy`) and, with `versions =
    all`, the source version's ID (`s3s3-source-version-id`). Where the
    copy's ETag will not be its MD5 (it goes in `parts`, or the destination
    encrypts with KMS), the MD5 goes in rclone's `md5chksum` too, so that
    `rclone check` proves the copy without reading it.
    """
    ep = dest.endpoint
    metadata = dict(info.metadata or {})
    metadata[META_ETAG] = info.etag
    if md5:
        metadata[META_MD5] = md5
        if parts or META_MD5CHKSUM in metadata or not etags_are_md5s(dest):
            metadata[META_MD5CHKSUM] = b64_md5(md5)
    else:  # claims this copy does not prove are not carried over
        metadata.pop(META_MD5, None)
        metadata.pop(META_MD5CHKSUM, None)
    if ep.preserve_mtime and META_MTIME not in metadata and info.last_modified is not None:
        metadata[META_MTIME] = f"{info.last_modified.timestamp():.9f}"
    if ep.versions is Versions.ALL and info.version_id:
        metadata[META_VERSION] = info.version_id
    return Attributes(
        info.headers, metadata, storage_class=ep.storage_class, tagging=tagging if ep.tags else None,
        encryption=ep.sse, kms_key_id=ep.sse_kms_key_id, acl=ep.acl, lock=carried(dest, info),
    )  # fmt: skip


def dest_key(source: Store, dest: Store, key: str) -> str:
    """Where a source key lands: the source prefix swapped for the destination's."""
    return dest.endpoint.prefix + key[len(source.endpoint.prefix) :]


def source_key(source: Store, dest: Store, target: str) -> str:
    """The source key a destination key was copied from (dest_key the other way)."""
    return source.endpoint.prefix + target[len(dest.endpoint.prefix) :]
