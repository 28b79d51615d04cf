"""The copy engine: one key, from the source bucket to one destination, intact or not at all.

boto3's managed upload cannot do what s3s3 needs here: a Content-MD5 on every
part (the only checksum Ceph and Swift enforce), an MD5 of the whole object
computed while it streams, multipart turned off for stores where it is
unreliable, and bounded memory for a body that is not seekable (its managed
upload buffered 520-600 MiB for one stream). So the short loop is written
here, once. Memory per copy is bounded by the part size times the part window.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass, replace
from typing import Any, BinaryIO, Protocol

from botocore.exceptions import ClientError

from s3s3 import parts
from s3s3.config import MAX_PART
from s3s3.errors import CopyError, IntegrityError, S3S3Error
from s3s3.memory import BUDGET
from s3s3.retry import DEFAULT_RETRY, Budget, RetryPolicy, describe, is_transient
from s3s3.retry import call as retry_call
from s3s3.s3 import (
    META_ETAG,
    META_MD5,
    Bucket,
    ObjectInfo,
    b64_md5,
    error_code,
    get_object,
    head,
    is_md5,
    is_not_found,
    put_object,
    strip_etag,
)

logger = logging.getLogger(__name__)

READ_BLOCK = 1024 * 1024  # how much a hashing pass reads at a time
# Swift's user-metadata limits, the tightest of the stores s3s3 meets; only used
# to explain a store's refusal, never to refuse metadata ahead of the store.
META_VALUE_LIMIT = 256  # bytes in one value
META_COUNT_LIMIT = 90  # keys
META_TOTAL_LIMIT = 4096  # bytes of all names and values

class Guard(Protocol):
    """Says whether another copy of the same key ran at the same time as this one (s3s3.overlap)."""

    def begin(self, dest: str, key: str) -> Any: ...

    def end(self, ticket: Any) -> bool: ...


class SourceChanged(S3S3Error):
    """Raised when the source holds another version than the one just copied: copy it again."""


@dataclass(frozen=True)
class Outcome:
    """What happened to one key at one destination."""

    key: str
    dest: str  # the destination's label, "section:bucket"
    action: str  # copied | skipped | missing | failed | deleted | kept
    size: int = 0
    seconds: float = 0.0
    md5: str | None = None
    source_etag: str | None = None
    dest_etag: str | None = None
    error: str | None = None  # why it failed, or why a delete was not done
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.action != "failed"


def dest_key(source: Bucket, dest: Bucket, key: str) -> str:
    """Where a source key lands: the source prefix swapped for the destination's."""
    return dest.endpoint.prefix + key[len(source.endpoint.prefix) :]


def source_key(source: Bucket, dest: Bucket, target: str) -> str:
    """The source key a destination key was copied from (dest_key the other way)."""
    return source.endpoint.prefix + target[len(dest.endpoint.prefix) :]


def identical(src: ObjectInfo, dst: ObjectInfo | None) -> bool:
    """True when `dst` already holds the bytes of `src` (by size and MD5, or by s3s3's record)."""
    if dst is None or dst.size != src.size:
        return False
    if src.md5 and dst.md5:
        return src.md5 == dst.md5
    if dst.metadata and dst.metadata.get(META_ETAG) == src.etag:
        return True  # s3s3 copied it from this very source version
    return bool(src.etag) and src.etag == dst.etag


def copy_key(
    source: Bucket,
    dest: Bucket,
    key: str,
    *,
    verify_md5: bool = False,
    check_dest: bool = True,
    check_small: bool = True,
    listed: ObjectInfo | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    guard: Guard | None = None,
) -> Outcome:
    """Copy `key` to `dest` unless it already holds it; never raises.

    `check_dest` asks the destination first (a HEAD) and skips the copy if it
    holds the same bytes. `check_small=False` asks only for objects that go in
    parts: one that goes in a single PUT is already read, and sending it costs
    the store about what the HEAD would, so the listener (for which an
    announcement means the key changed) saves the round trip. `listed` is
    what a listing said of the key: where it shows an object that will be
    copied in ranges, the source gets a HEAD, not a GET whose body would be
    dropped. `guard` says when another process copied the same key at the
    same time; the source is then asked again, so its newest version is the
    one that stays.

    Whole-key retries happen here, and only here: the transports retry each
    request (botocore's standard mode, and the lean path likewise), and a
    streamed part is retried as a part (s3s3.parts); what is left is what no
    single request can recover from (a body cut mid-stream, a corrupt read,
    a source overwritten mid-copy), tried again until `retry` is spent.
    """
    budget = Budget(retry)
    last: BaseException | None = None
    attempt = 0
    while True:
        attempt += 1
        try:
            outcome = _copy_newest(
                source, dest, key, guard, verify_md5=verify_md5, check_dest=check_dest, check_small=check_small,
                listed=listed, budget=budget,
            )  # fmt: skip
            return replace(outcome, attempts=attempt, seconds=time.monotonic() - budget.started)
        except Exception as e:
            last = e
            delay = budget.next_delay(attempt) if _worth_retrying(e) else None
        if delay is None:
            if not _expected(last):
                logger.error("Giving up on %r to %s after an unexpected error", key, dest.endpoint.label, exc_info=last)
            return _failed(key, dest, last, budget.started, attempt)
        logger.warning("Retrying %r to %s in %.1fs after: %s", key, dest.endpoint.label, delay, describe(last))
        time.sleep(delay)


def _copy_newest(
    source: Bucket, dest: Bucket, key: str, guard: Guard | None, *, budget: Budget, **options: Any
) -> Outcome:
    """One copy of `key`; then, where another copy overlapped it, proof that the source still holds what was copied.

    A copy of an older version that lands after a newer one would otherwise
    stay: the newer one's copier checked the source before this one landed.
    """
    while True:
        ticket = guard.begin(dest.endpoint.label, key) if guard is not None else None
        try:
            outcome = _copy_once(source, dest, key, budget=budget, **options)
        finally:
            overlapped = guard.end(ticket) if guard is not None else False
        if outcome.action != "copied" or not overlapped:
            return outcome
        now = head(source, key)
        if now is None or now.etag == outcome.source_etag:
            return outcome
        logger.info(
            "Copying %r to %s again: another copy ran at the same time, and the source moved on from ETag %s to %s",
            key, dest.endpoint.label, outcome.source_etag, now.etag,
        )  # fmt: skip
        options["listed"] = None
        if budget.spent():
            raise SourceChanged(f"{key!r} kept changing at the source while it was copied")


def _copy_once(
    source: Bucket,
    dest: Bucket,
    key: str,
    *,
    verify_md5: bool,
    check_dest: bool,
    check_small: bool,
    listed: ObjectInfo | None,
    budget: Budget,
) -> Outcome:
    target = dest_key(source, dest, key)
    verify_md5 = verify_md5 or source.endpoint.verify_md5 or dest.endpoint.verify_md5
    if dest.endpoint.same_store(source.endpoint):
        return _server_side_copy(source, dest, key, target, verify_md5=verify_md5, check_dest=check_dest)
    info, body = _open_source(source, dest, key, listed, verify_md5=verify_md5)
    if info is None:
        return Outcome(key, dest.endpoint.label, "missing")
    try:
        check = check_dest and (check_small or info.size > dest.endpoint.multipart_threshold)
        if check and identical(info, head(dest, target)):
            return _skipped(key, dest, info)
        try:
            md5, etag = _stream(
                source, dest, target, info, body, hash_whole=verify_md5 or info.md5 is not None, budget=budget
            )
        except ClientError as e:
            reason = _refusal_reason(dest, info, e)
            if reason is None:
                raise
            raise CopyError(f"{target!r}: {dest.endpoint.label} refused it: {reason}", e) from e
    finally:
        if body is not None:
            body.close()
    if verify_md5:
        _verify(dest, target, md5 or read_md5(source, key), etag)  # md5 is known: verifying hashes it whole
    return Outcome(key, dest.endpoint.label, "copied", info.size, md5=md5, source_etag=info.etag, dest_etag=etag)


def _open_source(
    source: Bucket, dest: Bucket, key: str, listed: ObjectInfo | None, *, verify_md5: bool
) -> tuple[ObjectInfo | None, BinaryIO | None]:
    """The source object and its body to stream; no body where the listing says ranges will read it."""
    if listed is not None and _in_ranges(source, dest, listed, hash_whole=verify_md5 or listed.md5 is not None):
        return head(source, key), None  # headers and metadata: the parts read the bytes, range by range
    try:
        return get_object(source, key)
    except ClientError as e:
        if is_not_found(e):
            return None, None
        raise


def _in_ranges(source: Bucket, dest: Bucket, info: ObjectInfo, *, hash_whole: bool) -> bool:
    """Whether the object goes in parts streamed from ranges of the source (s3s3.parts).

    A multipart upload hashes the whole object only where something checks
    that MD5 (the source gave one, or verify_md5): that needs the body read in
    order. Otherwise the parts read their own ranges, where the lean path can.
    """
    ep = dest.endpoint
    lean = source.wire is not None and dest.wire is not None
    return lean and ep.multipart and info.size > ep.multipart_threshold and not hash_whole


def _stream(
    source: Bucket,
    dest: Bucket,
    target: str,
    info: ObjectInfo,
    body: BinaryIO | None,
    *,
    hash_whole: bool,
    budget: Budget,
) -> tuple[str | None, str]:
    """Send the object to the destination in the shape its options ask for; return (md5, dest ETag).

    `body` is the source's GET, or None after a HEAD (where ranges were expected).
    """
    ep = dest.endpoint
    if _in_ranges(source, dest, info, hash_whole=hash_whole):
        if body is not None:
            body.close()  # the parts read it again, each from its own range
        return None, parts.copy_in_ranges(source, dest, target, info, _put_args(dest, info, None), budget)
    if body is None:  # it changed since it was listed, or carries its MD5: read it in order after all
        _, body = get_object(source, info.key, IfMatch=f'"{info.etag}"')
        with contextlib.closing(body):
            return _stream(source, dest, target, info, body, hash_whole=hash_whole, budget=budget)
    if info.size <= ep.multipart_threshold:
        held = BUDGET.acquire(info.size)
        try:
            return _put_buffered(dest, target, info, body.read())
        finally:
            BUDGET.release(held)
    if ep.multipart:
        whole = hashlib.md5() if hash_whole else None

        def check(size: int) -> None:
            _check_read(info, size, whole.hexdigest() if whole is not None else None)

        etag = parts.upload_from(dest, target, _put_args(dest, info, info.md5), body, whole, check, budget)
        return (whole.hexdigest() if whole is not None else None), etag
    if info.size > MAX_PART:
        raise CopyError(f"{info.key!r} is {info.size} bytes: over 5 GiB it needs multipart, which {ep.name} turns off")
    return _put_streaming(source, dest, target, info, body)


def _put_buffered(dest: Bucket, target: str, info: ObjectInfo, data: bytes) -> tuple[str, str]:
    md5 = hashlib.md5(data).hexdigest()
    _check_read(info, len(data), md5)
    etag = put_object(dest, target, data, md5, _put_args(dest, info, md5))
    if is_md5(etag) and etag != md5:
        _discard(dest, target)
        raise IntegrityError(f"{target!r}: the store says it holds MD5 {etag}, {md5} was sent")
    return md5, etag


def _put_streaming(source: Bucket, dest: Bucket, target: str, info: ObjectInfo, body: BinaryIO) -> tuple[str, str]:
    """A single PUT of a large object, streamed; its Content-MD5 must be known before it starts."""
    md5 = info.md5
    if md5 is None:
        # A multipart source gives no MD5 and the store checks only Content-MD5,
        # so hash the object in a first pass rather than send it unchecked.
        body.close()
        md5 = read_md5(source, info.key)
        _, body = get_object(source, info.key, IfMatch=f'"{info.etag}"')
    reader = _HashingReader(body)
    response = dest.client.put_object(
        Bucket=dest.name,
        Key=target,
        Body=reader,
        ContentLength=info.size,
        ContentMD5=b64_md5(md5),
        **_put_args(dest, info, md5),
    )
    _check_read(info, reader.count, reader.md5.hexdigest())
    return md5, strip_etag(response.get("ETag"))


def _server_side_copy(
    source: Bucket, dest: Bucket, key: str, target: str, *, verify_md5: bool, check_dest: bool
) -> Outcome:
    """Same store, same identity: let the store copy the bytes (CopyObject, multipart copy past 5 GiB)."""
    info = head(source, key)
    if info is None:
        return Outcome(key, dest.endpoint.label, "missing")
    if check_dest and identical(info, head(dest, target)):
        return _skipped(key, dest, info)
    args = _put_args(dest, info, info.md5)
    args["MetadataDirective"] = "REPLACE"
    from boto3.s3.transfer import TransferConfig  # here: only same-store copies need s3transfer

    args["CopySourceIfMatch"] = f'"{info.etag}"'  # the version the HEAD saw, or 412 and the key again
    dest.client.copy(
        {"Bucket": source.name, "Key": key},
        dest.name,
        target,
        ExtraArgs=args,
        Config=TransferConfig(multipart_threshold=MAX_PART, multipart_chunksize=dest.endpoint.multipart_chunksize),
    )
    copied = head(dest, target)
    if copied is None or copied.size != info.size:
        left = copied.size if copied else "no"
        raise IntegrityError(f"{target!r}: server-side copy left {left} bytes, not {info.size}")
    md5 = info.md5
    if verify_md5 and not (md5 and copied.etag == info.etag):
        md5 = read_md5(source, info.key)
        _verify(dest, target, md5, copied.etag)
    return Outcome(key, dest.endpoint.label, "copied", info.size, md5=md5, source_etag=info.etag, dest_etag=copied.etag)


def _put_args(dest: Bucket, info: ObjectInfo, md5: str | None) -> dict[str, Any]:
    """Headers, user metadata and storage class for the destination object."""
    metadata = dict(info.metadata or {})
    metadata[META_ETAG] = info.etag
    if md5:
        metadata[META_MD5] = md5
    else:
        metadata.pop(META_MD5, None)
    args: dict[str, Any] = dict(info.headers)
    args["Metadata"] = metadata
    if dest.endpoint.storage_class:
        args["StorageClass"] = dest.endpoint.storage_class
    return args


def _verify(dest: Bucket, target: str, md5: str, etag: str) -> None:
    """Prove the destination holds bytes with this MD5: by its ETag, else by reading it back."""
    if etag == md5:
        return
    found = head(dest, target)
    if found is None:
        raise IntegrityError(f"{target!r} is not at {dest.endpoint.label} after the copy")
    if found.etag == md5:
        return
    read_back = read_md5(dest, found.key)
    if read_back != md5:
        # Its s3s3-md5 claims the right MD5: left in place, later syncs would trust it.
        _discard(dest, target)
        raise IntegrityError(f"{target!r} at {dest.endpoint.label} has MD5 {read_back}, expected {md5}")


def _discard(dest: Bucket, target: str) -> None:
    """Delete a copy proven corrupt, so nothing trusts it; the key is copied again."""
    try:
        dest.client.delete_object(Bucket=dest.name, Key=target)
    except Exception as e:
        logger.warning("Could not delete the corrupt copy %r at %s: %s", target, dest.endpoint.label, e)


def read_md5(bucket: Bucket, key: str) -> str:
    """Read an object whole and return its MD5 (for stores that give none)."""
    _, body = get_object(bucket, key)
    digest = hashlib.md5()
    try:
        for block in iter(lambda: body.read(READ_BLOCK), b""):
            digest.update(block)
    finally:
        body.close()
    return digest.hexdigest()


def _check_read(info: ObjectInfo, size: int, md5: str | None) -> None:
    """Fail the copy when what was read is not what the source says it holds."""
    if size != info.size:
        raise IntegrityError(f"{info.key!r}: read {size} bytes, the source says {info.size}")
    if info.md5 and info.md5 != md5:
        raise IntegrityError(f"{info.key!r}: read MD5 {md5}, the source says {info.md5}")


class _HashingReader:
    """A file-like body that hashes what botocore reads from it."""

    def __init__(self, body: BinaryIO) -> None:
        self.body = body
        self.md5 = hashlib.md5()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.body.read(size)
        self.md5.update(data)
        self.count += len(data)
        return data


def _refusal_reason(dest: Bucket, info: ObjectInfo, error: ClientError) -> str | None:
    """Why a store refused a PUT when its own answer does not say (and retrying cannot help)."""
    code = error_code(error)
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    storage_class = dest.endpoint.storage_class
    # Ceph answers a storage class it lacks with a bare 400 InvalidArgument.
    if storage_class and (code == "InvalidStorageClass" or (status == 400 and code == "InvalidArgument")):
        section = dest.endpoint.name
        return f"storage_class = {storage_class} is not offered by this store ({code}); remove it from [{section}]"
    if status >= 500:
        problem = _metadata_over_limits(_put_args(dest, info, info.md5 or "0" * 32)["Metadata"])
        if problem:
            return f"{problem} (the store answered {code or status}; retrying cannot help)"
    return None


def _metadata_over_limits(metadata: dict[str, str]) -> str | None:
    # Swift: user metadata over its limits (a value over 256 bytes, more than
    # 90 keys, over 4096 bytes in all) is answered with 500 InternalError, not
    # 400, so the copy would otherwise be retried as if the store were down.
    sizes = {name: len(value.encode()) for name, value in metadata.items()}
    name, largest = max(sizes.items(), key=lambda item: item[1], default=("", 0))
    total = sum(len(n.encode()) + size for n, size in sizes.items())
    if largest > META_VALUE_LIMIT:
        return f"metadata value of {largest} bytes in {name!r} (Swift allows {META_VALUE_LIMIT})"
    if len(sizes) > META_COUNT_LIMIT:
        return f"{len(sizes)} metadata keys (Swift allows {META_COUNT_LIMIT})"
    if total > META_TOTAL_LIMIT:
        return f"metadata of {total} bytes in all (Swift allows {META_TOTAL_LIMIT})"
    return None


def _worth_retrying(error: BaseException) -> bool:
    """Whether a failed attempt may succeed if the key is tried again.

    A refusal that names its reason (a 4xx, a CopyError) will be refused
    again; a source that changed mid-copy (412), a corrupt read, a transient
    error, and whatever nobody expected are tried again under the policy.
    """
    if isinstance(error, IntegrityError | SourceChanged):
        return True
    if isinstance(error, CopyError):
        return False
    if isinstance(error, ClientError):
        return is_transient(error) or error_code(error) in ("PreconditionFailed", "412")
    return True


def _expected(error: BaseException | None) -> bool:
    """Errors whose one-line message says it all; anything else is logged with its traceback."""
    return isinstance(error, S3S3Error | ClientError) or (error is not None and is_transient(error))


def _skipped(key: str, dest: Bucket, info: ObjectInfo) -> Outcome:
    return Outcome(key, dest.endpoint.label, "skipped", info.size, md5=info.md5, source_etag=info.etag)


def _timed(outcome: Outcome, started: float) -> Outcome:
    return replace(outcome, seconds=time.monotonic() - started)


def _failed(key: str, dest: Bucket, error: BaseException | None, started: float, attempts: int = 1) -> Outcome:
    seconds = time.monotonic() - started
    return Outcome(key, dest.endpoint.label, "failed", seconds=seconds, error=describe(error), attempts=attempts)


def delete_key(source: Bucket, dest: Bucket, key: str, *, retry: RetryPolicy = DEFAULT_RETRY) -> Outcome:
    """Remove `key` at `dest`, but only once the source really no longer has it; never raises."""
    budget = Budget(retry)
    target = dest_key(source, dest, key)
    try:
        if retry_call(lambda: head(source, key), budget, what=f"the HEAD of {key!r}") is not None:
            return _timed(Outcome(key, dest.endpoint.label, "kept", error="it is still at the source"), budget.started)
        retry_call(lambda: dest.client.delete_object(Bucket=dest.name, Key=target), budget, what=f"deleting {target!r}")
    except Exception as e:
        return _failed(key, dest, e, budget.started)
    return _timed(Outcome(key, dest.endpoint.label, "deleted"), budget.started)
