"""Multipart uploads: the parts of one object, each proven before the upload is completed.

Nothing of a multipart upload is visible until it is completed, so each part
is checked on its own first, and any failure aborts the upload: no orphaned
parts, no partial object. A part is proven one of three ways:

- Sent whole with its Content-MD5 (the only checksum Ceph and Swift enforce):
  the store refuses other bytes. The body is read in order, so the whole
  object's MD5 can be computed on the way; each part is held in memory.
- Streamed from a ranged GET of the source and hashed on the way through: the
  store's part ETag, the MD5 of what it received, must equal the MD5 of what
  was sent. Parts go in parallel, a block at a time.
- Streamed from the source's own parts, not hashed at all: once every part is
  in, the part ETags the store gave must make the source's own multipart
  ETag, so the store holds the source's bytes, part for part. This costs no
  CPU per byte; a copy whose ETags do not add up is aborted and sent again
  the hashed way.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, BinaryIO

from botocore.exceptions import BotoCoreError, ClientError

from s3s3.config import MAX_PART, MIN_PART
from s3s3.errors import IntegrityError
from s3s3.memory import BUDGET
from s3s3.retry import ABORT_RETRY, Budget, describe, is_transient
from s3s3.retry import call as retry_call
from s3s3.s3 import (
    NOT_FOUND,
    Bucket,
    ObjectInfo,
    abort_multipart_upload,
    b64_md5,
    complete_multipart_upload,
    create_multipart_upload,
    error_code,
    head,
    is_md5,
    multipart_etag,
    strip_etag,
)

logger = logging.getLogger(__name__)

PART_WINDOW = 4  # whole parts of one object uploading at once (each held in memory)
RANGE_WINDOW = 8  # streamed parts of one object at once (each holds one STREAM_BLOCK)
# Streamed parts at once in the whole process: past a few streams the stores
# and the GIL only share the same cores among more threads, and slow them all.
STREAMS = threading.BoundedSemaphore(8)
STREAM_BLOCK = 1024 * 1024

# What this process learnt about its stores, so that it stops trying what cannot work:
_NO_MD5_PART_ETAGS: set[str] = set()  # destinations whose part ETags are not MD5s
_UNALIGNED: set[tuple[str, str]] = set()  # (source, dest) whose part-for-part copies did not add up
_NO_PART_NUMBER: set[str] = set()  # sources that do not answer HEAD ?partNumber= for a part


class Unproven(IntegrityError):
    """The store's part ETags do not make the source's ETag: nothing proves the copy, so it is not completed."""


def upload_from(
    dest: Bucket,
    target: str,
    args: dict[str, Any],
    body: BinaryIO,
    whole: Any,
    check: Callable[[int], None],
    budget: Budget,
) -> str:
    """Upload `body` in whole parts with Content-MD5 (into `whole`, in order, if given); return the ETag.

    `check(bytes read)` runs once the body is read, before the upload is completed.
    """
    upload_id = create_multipart_upload(dest, target, args)
    try:
        parts = _upload_parts(dest, target, upload_id, body, dest.endpoint.multipart_chunksize, whole, budget)
        check(sum(p["Size"] for p in parts))
        return complete(dest, target, upload_id, parts)
    except BaseException:
        abort(dest, target, upload_id)
        raise


def copy_in_ranges(
    source: Bucket, dest: Bucket, target: str, info: ObjectInfo, args: dict[str, Any], budget: Budget
) -> str:
    """Copy a source that gives no MD5 in streamed parts; return the destination ETag.

    Part for part where the source's parts can be found and the pair has not
    failed to add up before; else in hashed ranges of the destination's part size.
    """
    pair = (source.endpoint.label, dest.endpoint.label)
    part_size = None if pair in _UNALIGNED else source_part_size(source, info)
    if part_size is not None:
        try:
            return _upload_ranges(source, dest, target, info, args, part_size, budget, hashed=False)
        except Unproven as e:
            _UNALIGNED.add(pair)
            logger.warning("%s; sending %r again, hashed (and so from now on)", e, info.key)
    return _upload_ranges(source, dest, target, info, args, dest.endpoint.multipart_chunksize, budget, hashed=True)


def source_part_size(source: Bucket, info: ObjectInfo) -> int | None:
    """The size of the source's parts, where they are all that size but the last; else None.

    One HEAD of part 1 (`partNumber=1`) says its size and how many parts
    there are; a store that does not know `partNumber` answers for the whole
    object, and gets None.
    """
    count = _part_count(info.etag)
    if source.wire is None or count is None or source.endpoint.label in _NO_PART_NUMBER:
        return None
    try:
        # No If-Match: a part size from another version cannot pass, as every range is read If-Match.
        response = source.wire.head(info.key, query="partNumber=1")
    except ClientError as e:
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if 400 <= status < 500 and error_code(e) not in NOT_FOUND:  # refused (Swift: 405), not missing or down
            _NO_PART_NUMBER.add(source.endpoint.label)
        return None
    except BotoCoreError:
        return None
    if response.status != 206 or "x-amz-mp-parts-count" not in response.headers:
        _NO_PART_NUMBER.add(source.endpoint.label)  # it answered for the whole object: ask no more
        return None
    size = int(response.headers.get("Content-Length") or 0)
    if response.headers["x-amz-mp-parts-count"] != str(count):
        return None
    if not (MIN_PART <= size <= MAX_PART or count == 1) or not (count - 1) * size < info.size <= count * size:
        return None
    return size


def _part_count(etag: str) -> int | None:
    number = etag.rpartition("-")[2] if "-" in etag else ""
    return int(number) if number.isdigit() and 0 < int(number) <= 10000 else None


@dataclass(frozen=True)
class _Upload:
    """One object's upload in streamed parts: where from, where to, and whether the parts are hashed."""

    source: Bucket
    dest: Bucket
    info: ObjectInfo
    target: str
    upload_id: str
    hashed: bool
    budget: Budget


def _upload_ranges(
    source: Bucket,
    dest: Bucket,
    target: str,
    info: ObjectInfo,
    args: dict[str, Any],
    part_size: int,
    budget: Budget,
    *,
    hashed: bool,
) -> str:
    upload = _Upload(source, dest, info, target, create_multipart_upload(dest, target, args), hashed, budget)
    try:
        starts = range(0, info.size, part_size)
        ranges = [(n, start, min(part_size, info.size - start)) for n, start in enumerate(starts, 1)]
        with ThreadPoolExecutor(RANGE_WINDOW, thread_name_prefix="s3s3-part") as pool:
            futures = [pool.submit(_copy_range, upload, *r) for r in ranges]
            wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:
                future.cancel()
            parts = [f.result() for f in futures]
        if not hashed:
            made = multipart_etag([p["MD5"] for p in parts])
            if made != info.etag:
                where = dest.endpoint.label
                raise Unproven(f"{target!r}: the parts at {where} make ETag {made}, not the source's {info.etag}")
        return complete(dest, target, upload.upload_id, parts)
    except BaseException:
        abort(dest, target, upload.upload_id)
        raise


def _copy_range(upload: _Upload, number: int, start: int, length: int) -> dict[str, Any]:
    """One streamed part, started over (a new read of its range) when it fails, until the key's budget is spent."""

    def once() -> dict[str, Any]:
        with STREAMS:
            return _copy_range_once(upload, number, start, length)

    return retry_call(once, upload.budget, what=f"part {number} of {upload.target!r}", retryable=_part_retryable)


def _part_retryable(error: BaseException) -> bool:
    """A part refused for now, cut short or read corrupt is sent again; a part that proves nothing is not."""
    return not isinstance(error, Unproven) and (isinstance(error, IntegrityError) or is_transient(error))


def _copy_range_once(upload: _Upload, number: int, start: int, length: int) -> dict[str, Any]:
    source, dest, info, target = upload.source, upload.dest, upload.info, upload.target
    assert source.wire is not None and dest.wire is not None
    # If-Match: every part comes from the version the copy started with.
    response = source.wire.get(info.key, {"Range": f"bytes={start}-{start + length - 1}", "If-Match": f'"{info.etag}"'})
    digest = hashlib.md5() if upload.hashed else None

    def blocks() -> Iterator[memoryview]:
        view = memoryview(bytearray(min(STREAM_BLOCK, length)))
        left = length
        while left:
            n = response.readinto(view[: min(left, len(view))])
            if not n:
                raise IntegrityError(f"{info.key!r}: the source ended {left} bytes early in bytes {start}-")
            if digest is not None:
                digest.update(view[:n])
            left -= n
            yield view[:n]

    try:
        if upload.hashed and dest.endpoint.label in _NO_MD5_PART_ETAGS:
            held = BUDGET.acquire(length)
            try:
                return upload_part(dest, target, upload.upload_id, number, b"".join(bytes(b) for b in blocks()))
            finally:
                BUDGET.release(held)
        answer = dest.wire.upload_part(target, upload.upload_id, number, blocks(), length)
    finally:
        source.wire.discard(response)
    etag = strip_etag(answer.headers.get("ETag"))
    part = {"PartNumber": number, "ETag": answer.headers["ETag"], "Size": length}
    if not is_md5(etag):
        if not upload.hashed:
            raise Unproven(f"{target!r} part {number}: {dest.endpoint.label} gives part ETags that are not MD5s")
        # Its part ETags prove nothing (encryption, say): this and later parts go whole, with Content-MD5.
        _NO_MD5_PART_ETAGS.add(dest.endpoint.label)
        return _copy_range_once(upload, number, start, length)
    if digest is not None and etag != digest.hexdigest():
        raise IntegrityError(f"{target!r} part {number}: store says {etag}, sent {digest.hexdigest()}")
    return {**part, "MD5": bytes.fromhex(etag)}


def complete(dest: Bucket, target: str, upload_id: str, parts: list[dict[str, Any]]) -> str:
    """Complete a multipart upload; its ETag must be the one the parts sent make."""
    etag = complete_multipart_upload(dest, target, upload_id, [(p["PartNumber"], p["ETag"]) for p in parts])
    if not etag:
        # Ceph: CompleteMultipartUpload answers with an empty ETag; ask again.
        found = head(dest, target)
        etag = found.etag if found else ""
    expected = multipart_etag([p["MD5"] for p in parts])
    if "-" in etag and etag != expected:
        raise IntegrityError(f"{target!r}: completed ETag {etag} is not the {expected} of the parts sent")
    return etag


def _upload_parts(
    dest: Bucket, target: str, upload_id: str, body: BinaryIO, chunk: int, whole: Any, budget: Budget
) -> list[dict[str, Any]]:
    """Read the body part by part (into `whole`, in order, if given); upload up to PART_WINDOW parts at once."""
    futures: list[Future[dict[str, Any]]] = []
    with ThreadPoolExecutor(PART_WINDOW, thread_name_prefix="s3s3-part") as pool:
        while True:
            held = BUDGET.acquire(chunk)
            try:
                data = read_exactly(body, chunk)
                pending = [f for f in futures if not f.done()]
                if len(pending) >= PART_WINDOW:
                    wait(pending, return_when=FIRST_EXCEPTION)
                if not data or any(f.done() and f.exception() for f in futures):
                    BUDGET.release(held)
                    break
            except BaseException:
                BUDGET.release(held)
                raise
            if whole is not None:
                whole.update(data)
            number = len(futures) + 1
            future = pool.submit(
                retry_call, functools.partial(upload_part, dest, target, upload_id, number, data), budget,
                what=f"part {number} of {target!r}", retryable=_part_retryable,
            )  # fmt: skip
            future.add_done_callback(lambda _, held=held: BUDGET.release(held))
            futures.append(future)
            if len(data) < chunk:
                break
            del data
        return [f.result() for f in futures]


def upload_part(dest: Bucket, target: str, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
    """UploadPart of a part held in memory, with its Content-MD5."""
    # Hashed here, in the part's own thread (hashlib lets go of the GIL): the
    # reader only keeps the whole object's MD5, which must go in order.
    digest = hashlib.md5(data).digest()
    response = dest.client.upload_part(
        Bucket=dest.name,
        Key=target,
        UploadId=upload_id,
        PartNumber=number,
        Body=data,
        ContentMD5=b64_md5(digest.hex()),
    )
    etag = strip_etag(response.get("ETag"))
    if is_md5(etag) and etag != digest.hex():
        raise IntegrityError(f"{target!r} part {number}: store says {etag}, sent {digest.hex()}")
    return {"PartNumber": number, "ETag": response["ETag"], "Size": len(data), "MD5": digest}


def abort(dest: Bucket, target: str, upload_id: str) -> None:
    """Abort an upload, so that no part of it is left behind; a failure to is logged, not raised.

    A store that refuses for a moment (503) is asked again for a while; one
    that stays away leaves the parts to `s3s3bucket --abort-incomplete-uploads`
    or the bucket's lifecycle rule.
    """
    try:
        retry_call(
            lambda: abort_multipart_upload(dest, target, upload_id), Budget(ABORT_RETRY),
            what=f"aborting the upload of {target!r}",
        )  # fmt: skip
    except Exception as e:
        logger.warning(
            "Could not abort the multipart upload %s of %r to %s (its parts stay until aborted): %s",
            upload_id, target, dest.endpoint.label, describe(e),
        )  # fmt: skip


def read_exactly(body: BinaryIO, size: int) -> bytes:
    """`size` bytes of `body`, fewer only at its end."""
    data = body.read(size)
    while data and len(data) < size:
        more = body.read(size - len(data))
        if not more:
            break
        data += more
    return data
