"""Multipart copies: the plans that send an object in parts (s3s3.copy.plan), and how each part is proven.

- Parts read in order (Plan.PARTS_IN_ORDER): the source's body read part by
  part, each part held in memory and sent with its Content-MD5 (the one
  checksum Ceph and Swift enforce), up to PART_WINDOW at once, the whole
  object hashed on the way where its MD5 is wanted.
- Parts streamed from ranges (Plan.PARTS_FROM_RANGES): each part a ranged GET
  of the source, If-Match the ETag the copy started from, streamed into its
  UploadPart a block at a time and hashed on the way; the store's part ETag
  must equal that MD5 before the upload is completed. Whole parts from
  ranges (WHOLE_PARTS_FROM_RANGES) hold each part and send its Content-MD5,
  for stores whose part ETags are not MD5s.
- Part for part (Plan.PART_FOR_PART): the ranges are the source's own parts
  (HEAD ?partNumber=1 says their size); nothing is hashed, and the part ETags
  the store gives must make the source's own `md5-of-md5s-N` ETag.

Every multipart upload is completed only once every part is proven, and
aborted on any failure.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from s3s3.copy.job import Job
from s3s3.copy.limits import MemoryBudget
from s3s3.copy.streams import check_read, read_blocks, read_exactly
from s3s3.errors import IntegrityError, Unproven
from s3s3.retry import ABORT_RETRY, Budget, describe, is_transient
from s3s3.retry import call as retry_call
from s3s3.store import Body, Fact, Store, is_md5, multipart_etag, store_name
from s3s3.store.probes import etags_are_md5s

logger = logging.getLogger(__name__)

PART_WINDOW = 4  # whole parts of one object uploading at once (each held in memory)
RANGE_WINDOW = 8  # streamed parts of one object at once (each holds one streams.READ_BLOCK)


@dataclass(frozen=True)
class Part:
    """A part the store holds: its number and ETag, what was sent, and the MD5 that proves it."""

    number: int
    etag: str
    size: int
    md5: bytes


def upload_in_order(job: Job) -> tuple[str | None, str]:
    """Plan.PARTS_IN_ORDER: the body in whole parts with Content-MD5; return (the object's MD5 if hashed, ETag)."""
    assert job.body is not None
    info = job.info
    whole = hashlib.md5() if job.verify_md5 or info.md5 is not None else None
    upload_id = job.dest.create_upload(job.target, job.attributes(info.md5, parts=True))
    try:
        parts = _upload_parts(job, upload_id, whole)
        md5 = whole.hexdigest() if whole is not None else None
        check_read(info, sum(p.size for p in parts), md5)
        return md5, complete(job.dest, job.target, upload_id, parts, job.tagging)
    except BaseException:
        abort(job.dest, job.target, upload_id)
        raise


def _upload_parts(job: Job, upload_id: str, whole: hashlib._Hash | None) -> list[Part]:
    """Read the body part by part (into `whole`, in order, if given); upload up to PART_WINDOW parts at once."""
    assert job.body is not None
    chunk = job.dest.endpoint.multipart_chunksize
    memory = job.limits.memory
    futures: list[Future[Part]] = []
    with ThreadPoolExecutor(PART_WINDOW, thread_name_prefix="s3s3-part") as pool:
        while True:
            held = memory.acquire(chunk)
            try:
                data = read_exactly(job.body, chunk)
                pending = [f for f in futures if not f.done()]
                if len(pending) >= PART_WINDOW:
                    wait(pending, return_when=FIRST_EXCEPTION)
                if not data or any(f.done() and f.exception() for f in futures):
                    memory.release(held)
                    break
            except BaseException:
                memory.release(held)
                raise
            if whole is not None:
                whole.update(data)
            number = len(futures) + 1
            send = functools.partial(_send_whole, job, upload_id, number, data)
            future = pool.submit(retry_call, send, job.budget, what=f"part {number} of {job.target!r}",
                                 retryable=_part_retryable)  # fmt: skip
            future.add_done_callback(functools.partial(_release, memory, held))
            futures.append(future)
            if len(data) < chunk:
                break
            del data
        return [f.result() for f in futures]


def _release(memory: MemoryBudget, held: int, _: object) -> None:
    memory.release(held)


def _send_whole(job: Job, upload_id: str, number: int, data: bytes) -> Part:
    """UploadPart of a part held in memory, with its Content-MD5; a part ETag that is an MD5 must be that one."""
    dest, target = job.dest, job.target
    # Hashed here, in the part's own thread (hashlib lets go of the GIL): the
    # reader only keeps the whole object's MD5, which must go in order.
    digest = hashlib.md5(data).digest()
    job.limits.bandwidth.take(len(data))
    etag = dest.upload_part(target, upload_id, number, data, length=len(data), md5=digest.hex())
    if is_md5(etag) and etag != digest.hex() and etags_are_md5s(dest):
        raise IntegrityError(f"{target!r} part {number}: store says {etag}, sent {digest.hex()}")
    return Part(number, etag, len(data), digest)


def upload_ranges(job: Job, *, hashed: bool, whole: bool) -> tuple[None, str]:
    """Plans PARTS_FROM_RANGES, WHOLE_PARTS_FROM_RANGES and PART_FOR_PART: each part from its own range."""
    info, dest = job.info, job.dest
    part_size = job.part_size if not hashed and job.part_size else dest.endpoint.multipart_chunksize
    upload_id = dest.create_upload(job.target, job.attributes(None, parts=True))
    try:
        ranges = [(n, start, min(part_size, info.size - start)) for n, start in enumerate(range(0, info.size,
                  part_size), 1)]  # fmt: skip
        with ThreadPoolExecutor(RANGE_WINDOW, thread_name_prefix="s3s3-part") as pool:
            futures = [pool.submit(_copy_range, job, upload_id, hashed, whole, *r) for r in ranges]
            wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:
                future.cancel()
            parts = [f.result() for f in futures]
        if not hashed:
            made = multipart_etag([p.md5 for p in parts])
            if made != info.etag:
                job.source.facts.learn(Fact.UNALIGNED, store_name(dest.endpoint))
                where = dest.label
                raise Unproven(f"{job.target!r}: the parts at {where} make ETag {made}, not the source's {info.etag}")
        return None, complete(dest, job.target, upload_id, parts, job.tagging)
    except BaseException:
        abort(dest, job.target, upload_id)
        raise


def _copy_range(job: Job, upload_id: str, hashed: bool, whole: bool, number: int, start: int, length: int) -> Part:
    """One part from its range, started over (a new read of the range) when it fails, until the budget is spent."""

    def once() -> Part:
        with job.limits.streams:
            # If-Match: every part comes from the version the copy started with.
            _, body = job.source.get(job.info.key, byte_range=(start, start + length - 1), if_match=job.info.etag)
            try:
                if whole:
                    return _range_whole(job, upload_id, number, body, length)
                return _range_streamed(job, upload_id, hashed, number, body, length)
            finally:
                body.close()

    return retry_call(once, job.budget, what=f"part {number} of {job.target!r}", retryable=_part_retryable)


def _range_whole(job: Job, upload_id: str, number: int, body: Body, length: int) -> Part:
    """A part read whole into memory (counted against the budget) and sent with its Content-MD5."""
    held = job.limits.memory.acquire(length)
    try:
        data = body.read()
        if len(data) != length:
            raise IntegrityError(f"{job.info.key!r}: read {len(data)} bytes of part {number}, not {length}")
        return _send_whole(job, upload_id, number, data)
    finally:
        job.limits.memory.release(held)


def _range_streamed(job: Job, upload_id: str, hashed: bool, number: int, body: Body, length: int) -> Part:
    """A part streamed from its range into UploadPart; the store's part ETag must prove what arrived."""
    digest = hashlib.md5() if hashed else None
    blocks = read_blocks(body, length, digest, bandwidth=job.limits.bandwidth)
    etag = job.dest.upload_part(job.target, upload_id, number, blocks, length=length, md5=None)
    if not is_md5(etag):
        # Its part ETags prove nothing (encryption, say): from now on parts go whole, with Content-MD5.
        job.dest.facts.learn(Fact.PART_ETAGS_NOT_MD5)
        raise Unproven(f"{job.target!r} part {number}: {job.dest.label} gives part ETags that are not MD5s")
    if digest is not None and etag != digest.hexdigest():
        raise IntegrityError(f"{job.target!r} part {number}: store says {etag}, sent {digest.hexdigest()}")
    return Part(number, etag, length, bytes.fromhex(etag))


def _part_retryable(error: BaseException) -> bool:
    """A part refused for now, cut short or read corrupt is sent again; a part that proves nothing is not."""
    return not isinstance(error, Unproven) and (isinstance(error, IntegrityError) or is_transient(error))


def complete(dest: Store, target: str, upload_id: str, parts: list[Part], tagging: str | None = None) -> str:
    """Complete a multipart upload; its ETag must be the one the parts sent make (where part ETags are MD5s).

    Tags sent with CreateMultipartUpload are set again once it is complete:
    Ceph 16 accepts them there and keeps none.
    """
    etag = dest.complete_upload(target, upload_id, [(p.number, p.etag) for p in parts])
    if tagging:
        dest.put_tagging(target, tagging)
    if not etag:
        # Ceph: CompleteMultipartUpload answers with an empty ETag; ask again.
        found = dest.head(target)
        etag = found.etag if found else ""
    expected = multipart_etag([p.md5 for p in parts])
    if "-" in etag and etag != expected and etags_are_md5s(dest):
        raise IntegrityError(f"{target!r}: completed ETag {etag} is not the {expected} of the parts sent")
    return etag


def abort(dest: Store, target: str, upload_id: str) -> None:
    """Abort an upload, so that no part of it is left behind; a failure to is logged, not raised.

    A store that refuses for a moment (503) is asked again for a while; one
    that stays away leaves the parts to `s3s3bucket --abort-incomplete-uploads`
    or the bucket's lifecycle rule.
    """
    try:
        retry_call(lambda: dest.abort_upload(target, upload_id), Budget(ABORT_RETRY),
                   what=f"aborting the upload of {target!r}")  # fmt: skip
    except Exception as e:
        logger.warning("Could not abort the multipart upload %s of %r to %s (its parts stay until aborted): %s",
                       upload_id, target, dest.label, describe(e))  # fmt: skip
