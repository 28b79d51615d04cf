"""Copies in one request: a PUT from memory, a PUT streamed from the GET, and the store's own server-side copy.

Each is the executor of one plan (s3s3.copy.plan). Every byte that lands is
proven before the copy counts: by the Content-MD5 the store checks, by the
ETag it answers, or, for a server-side copy, by asking both sides after.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace

from s3s3.config import MAX_PART
from s3s3.copy import locks
from s3s3.copy.job import Job, attributes
from s3s3.copy.plan import Plan
from s3s3.copy.proof import discard, identical, is_md5_other, read_md5, skipped, verify
from s3s3.copy.streams import check_read, read_ahead, read_blocks
from s3s3.errors import BadDigest, IntegrityError, SourceChanged
from s3s3.outcome import Action, Outcome
from s3s3.store import META_MD5, Store
from s3s3.store.probes import etags_are_md5s

logger = logging.getLogger(__name__)


def put_buffered(job: Job) -> tuple[str, str]:
    """Plan.PUT_BUFFERED: read whole (counted against the memory budget), hash, send with Content-MD5."""
    assert job.body is not None
    memory = job.limits.memory
    held = memory.acquire(job.info.size)
    try:
        data = job.body.read()
        md5 = hashlib.md5(data).hexdigest()
        check_read(job.info, len(data), md5)
        job.limits.bandwidth.take(len(data))
        checksum = job.checksum()
        try:
            etag = job.dest.put(job.target, data, length=len(data), md5=md5, attrs=job.attributes(md5),
                                checksum=checksum)  # fmt: skip
        except BadDigest as e:
            if checksum is None:
                raise
            raise IntegrityError(f"{job.target!r}: the store refused the bytes read, unlike the source's "
                                 f"{checksum.algorithm}") from e  # fmt: skip
    finally:
        memory.release(held)
    if etags_are_md5s(job.dest) and is_md5_other(etag, md5):
        discard(job.dest, job.target)
        raise IntegrityError(f"{job.target!r}: the store says it holds MD5 {etag}, {md5} was sent")
    return md5, etag


def put_proven(job: Job) -> tuple[str, str]:
    """Plan.PUT_PROVEN: the GET's body streams into one PUT whose Content-MD5 is the source's ETag; nothing hashed.

    The destination checks the body against Content-MD5 and stores nothing
    that differs (BadDigest): a corrupt read never lands. The GET is of the
    version whose ETag gave the MD5, so an overwrite mid-copy cannot mix two.
    The next blocks are read while one is sent (streams.read_ahead): B1's eight
    64 MiB copies took 2.84 s reading and sending in turn, 2.54 s overlapped.
    """
    assert job.body is not None
    md5, size = job.info.etag, job.info.size
    blocks = read_ahead(job.body, size, bandwidth=job.limits.bandwidth)
    try:
        etag = job.dest.put(job.target, blocks, length=size, md5=md5, attrs=job.attributes(md5),
                            checksum=job.checksum())  # fmt: skip
    except BadDigest as e:
        raise IntegrityError(f"{job.target!r}: the store refused the bytes read, unlike the source's MD5") from e
    if etags_are_md5s(job.dest) and is_md5_other(etag, md5):
        discard(job.dest, job.target)
        raise IntegrityError(f"{job.target!r}: the store says it holds MD5 {etag}, {md5} was sent")
    return md5, etag


def put_streamed(job: Job) -> tuple[str, str]:
    """Plan.PUT_STREAMED: one PUT streamed from the GET, its Content-MD5 the source's; what streams is hashed too."""
    assert job.body is not None and job.info.md5 is not None
    md5 = job.info.md5
    digest = hashlib.md5()
    size = job.info.size
    blocks = read_blocks(job.body, size, digest, bandwidth=job.limits.bandwidth)
    etag = job.dest.put(job.target, blocks, length=size, md5=md5, attrs=job.attributes(md5), checksum=job.checksum())
    check_read(job.info, size, digest.hexdigest())
    return md5, etag


def put_hashed_first(job: Job) -> tuple[str | None, str]:
    """Plan.PUT_HASHED_FIRST: the store checks only Content-MD5, and the source gives none: hash it first.

    Then a second GET of the very version hashed streams into the PUT.
    """
    md5 = read_md5(job.source, job.info.key, if_match=job.info.etag)
    known = replace(job.info, metadata={**(job.info.metadata or {}), META_MD5: md5})
    _, body = job.source.get(job.info.key, if_match=job.info.etag)
    try:
        return put_streamed(replace(job, info=known, body=body))
    finally:
        body.close()


def server_side_copy(
    source: Store, dest: Store, key: str, target: str, *, verify_md5: bool, check_dest: bool
) -> Outcome:
    """Plan.SERVER_SIDE: same store, same identity, so the store copies the bytes itself."""
    info = source.head(key)
    if info is None:
        return Outcome(key, dest.label, Action.MISSING)
    if check_dest and identical(info, dest.head(target), tags=dest.endpoint.tags):
        return skipped(key, dest, info)
    locks.check_destination(dest, target, info)
    logger.debug("Copying %r to %s: %s", key, dest.label, Plan.SERVER_SIDE)
    # A copy of a multipart object keeps its -N ETag (Ceph, Swift), one past 5 GiB goes in parts: either way
    # the copy's ETag is no MD5.
    attrs = attributes(dest, info, info.md5, parts=not info.etag_is_md5 or info.size > MAX_PART)
    # The Object Lock goes on after the copy, never in it: Ceph 16 keeps none a CopyObject carries with the
    # REPLACE directive, and moto refuses such a CopyObject (it has no body to carry the Content-MD5 a locked
    # write needs).
    attrs = replace(attrs, lock=None)
    # If-Match on the version the HEAD saw: a source changed since is a 412, and the key is tried again.
    # Not for a multipart source: Swift checks x-amz-copy-source-if-match against the MD5 of the whole
    # object, not the md5-N ETag its HEAD gives, and refuses every such copy (412). The check after the
    # copy below proves those.
    if_match = info.etag if info.etag_is_md5 else None
    dest.copy_object(source.endpoint.bucket, key, target, size=info.size, if_match=if_match, attrs=attrs)
    # Ceph 16 ignores x-amz-copy-source-if-match: a source overwritten between the HEAD and the copy is
    # copied under the older version's record (s3s3-md5, s3s3-source-etag). Such a copy goes, so that
    # nothing trusts it, and the key is copied again at once.
    now = source.head(key)
    if now is None or now.etag != info.etag:
        discard(dest, target)
        raise SourceChanged(f"{key!r} changed at the source during its server-side copy")
    lock = locks.carried(dest, info)
    if lock is not None:
        locks.ensure_landed(dest, target, lock)
    copied = dest.head(target)
    if copied is None or copied.size != info.size:
        discard(dest, target)
        left = copied.size if copied else "no"
        raise IntegrityError(f"{target!r}: server-side copy left {left} bytes, not {info.size}")
    md5 = info.md5
    if verify_md5 and not (md5 and copied.etag == info.etag):
        md5 = read_md5(source, info.key)
        verify(dest, target, md5, copied.etag)
    return Outcome(key, dest.label, Action.COPIED, info.size, md5=md5, source_etag=info.etag, dest_etag=copied.etag)
