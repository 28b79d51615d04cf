"""The copy engine: one key, from the source bucket to one destination, intact or not at all.

A copy opens the source, asks the destination whether it already holds the
bytes, chooses a plan (s3s3.plan) from what it knows, and carries it out:
single PUTs here, parts in s3s3.parts. Every byte that lands is proven before
the object becomes visible: by the Content-MD5 the store checks, by part ETags
checked against what was sent, or by the source's own ETag.

boto3's managed upload cannot do what s3s3 needs here: a Content-MD5 on every
part (the only checksum Ceph and Swift enforce), an MD5 of the whole object
computed while it streams, multipart turned off for stores where it is
unreliable, and bounded memory for a body that is not seekable (its managed
upload buffered 520-600 MiB for one stream). So the short loops are written
here and in s3s3.parts, once.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from s3s3 import parts
from s3s3.bandwidth import LIMIT
from s3s3.config import MAX_PART
from s3s3.errors import BadDigest, CopyError, IntegrityError, NotFound, S3S3Error, SourceChanged, StoreError, Unproven
from s3s3.memory import BUDGET
from s3s3.outcome import Action, Outcome
from s3s3.plan import Known, Plan, choose
from s3s3.retry import DEFAULT_RETRY, Budget, RetryPolicy, describe, is_transient
from s3s3.retry import call as retry_call
from s3s3.store import META_ETAG, META_MD5, META_MTIME, Attributes, Body, ObjectInfo, Store, is_md5

logger = logging.getLogger(__name__)

REPLANS = 3  # plans tried for one object when each meets a new fact of its store
# Swift's user-metadata limits, the tightest of the stores s3s3 meets; only used
# to explain a store's refusal, never to refuse metadata ahead of the store.
META_VALUE_LIMIT = 256  # bytes in one value
META_COUNT_LIMIT = 90  # keys
META_TOTAL_LIMIT = 4096  # bytes of all names and values


class Guard(Protocol):
    """Says whether another copy of the same key ran at the same time as this one (s3s3.overlap)."""

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

    def attributes(self, md5: str | None) -> Attributes:
        return attributes(self.dest, self.info, md5, self.tagging)


def attributes(dest: Store, info: ObjectInfo, md5: str | None, tagging: str | None = None) -> Attributes:
    """What the copy of `info` at `dest` is written with (its MD5 is `md5`, where known) besides its bytes.

    Its headers and user metadata, s3s3's record (`s3s3-source-etag`, and
    `s3s3-md5`), the source's Last-Modified as `mtime` (rclone's convention,
    Unix seconds; an `mtime` the source already carries is kept), its tags,
    and the destination's storage class, encryption and ACL.
    """
    ep = dest.endpoint
    metadata = dict(info.metadata or {})
    metadata[META_ETAG] = info.etag
    if md5:
        metadata[META_MD5] = md5
    else:
        metadata.pop(META_MD5, None)
    if ep.preserve_mtime and META_MTIME not in metadata and info.last_modified is not None:
        metadata[META_MTIME] = f"{info.last_modified.timestamp():.9f}"
    return Attributes(
        info.headers, metadata, storage_class=ep.storage_class, tagging=tagging if ep.tags else None,
        encryption=ep.sse, kms_key_id=ep.sse_kms_key_id, acl=ep.acl,
    )  # fmt: skip


def dest_key(source: Store, dest: Store, key: str) -> str:
    """Where a source key lands: the source prefix swapped for the destination's."""
    return dest.endpoint.prefix + key[len(source.endpoint.prefix) :]


def source_key(source: Store, dest: Store, target: str) -> str:
    """The source key a destination key was copied from (dest_key the other way)."""
    return source.endpoint.prefix + target[len(dest.endpoint.prefix) :]


def identical(src: ObjectInfo, dst: ObjectInfo | None, *, tags: bool = False) -> bool:
    """True when `dst` already holds the bytes of `src` (by size and MD5, or by s3s3's record).

    With `tags`, also as many tags: a HEAD says how many an object has, not which, so a copy whose
    source gained or lost tags is copied again, one whose tag values changed is not.
    """
    if dst is None or dst.size != src.size:
        return False
    if tags and src.tag_count != dst.tag_count:
        return False
    if src.md5 and dst.md5:
        return src.md5 == dst.md5
    if dst.metadata and dst.metadata.get(META_ETAG) == src.etag:
        return True  # s3s3 copied it from this very source version
    return bool(src.etag) and src.etag == dst.etag


def copy_key(
    source: Store,
    dest: Store,
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
                logger.error("Giving up on %r to %s after an unexpected error", key, dest.label, exc_info=last)
            return _failed(key, dest, last, budget.started, attempt)
        logger.warning("Retrying %r to %s in %.1fs after: %s", key, dest.label, delay, describe(last))
        time.sleep(delay)


def _copy_newest(
    source: Store, dest: Store, key: str, guard: Guard | None, *, budget: Budget, **options: Any
) -> Outcome:
    """One copy of `key`; then, where another copy overlapped it, proof that the source still holds what was copied.

    A copy of an older version that lands after a newer one would otherwise
    stay: the newer one's copier checked the source before this one landed.
    """
    while True:
        ticket = guard.begin(dest.label, key) if guard is not None else None
        try:
            outcome = _copy_once(source, dest, key, budget=budget, **options)
        finally:
            overlapped = guard.end(ticket) if guard is not None else False
        if outcome.action is not Action.COPIED or not overlapped:
            return outcome
        newer = newer_at_source(source, dest, key, outcome.source_etag)
        if newer is None:
            return outcome
        options["listed"] = None
        if budget.spent():
            raise SourceChanged(f"{key!r} kept changing at the source while it was copied")


def newer_at_source(source: Store, dest: Store, key: str, copied: str | None) -> str | None:
    """After a copy that another overlapped: the source's ETag where it moved on from the `copied` one, else None.

    None too where the source no longer holds the key: a deletion is not
    copied, and the destination keeps the last version it received.
    """
    now = source.head(key)
    if now is None or now.etag == copied:
        return None
    logger.info(
        "Copying %r to %s again: another copy ran at the same time, and the source moved on from ETag %s to %s",
        key, dest.label, copied, now.etag,
    )  # fmt: skip
    return now.etag


def _copy_once(
    source: Store,
    dest: Store,
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
    opened = _open(source, dest, key, listed, verify_md5=verify_md5)
    if opened is None:
        return Outcome(key, dest.label, Action.MISSING)
    info, body = opened
    try:
        check = check_dest and (check_small or info.size > dest.endpoint.multipart_threshold)
        if check and identical(info, dest.head(target), tags=dest.endpoint.tags):
            return _skipped(key, dest, info)
        # Tags are not in a GET's answer, only their number: one more request, where there are any.
        tagging = source.get_tagging(key) if dest.endpoint.tags and info.tag_count else None
        md5, etag = _carry_out(Job(source, dest, target, info, body, budget, verify_md5, tagging=tagging))
    except StoreError as e:
        reason = _refusal_reason(dest, info, e)
        if reason is None:
            raise
        raise CopyError(f"{target!r}: {dest.label} refused it: {reason}", e) from e
    finally:
        if body is not None:
            body.close()
    if verify_md5:
        _verify(dest, target, md5 or read_md5(source, key), etag)  # md5 is known: verifying hashes it whole
    return Outcome(key, dest.label, Action.COPIED, info.size, md5=md5, source_etag=info.etag, dest_etag=etag)


def _open(
    source: Store, dest: Store, key: str, listed: ObjectInfo | None, *, verify_md5: bool
) -> tuple[ObjectInfo, Body | None] | None:
    """The source object and its body to stream; no body where the listing says ranges will read it."""
    if listed is not None and choose(_known(source, dest, listed, verify_md5)).ranged:
        info = source.head(key)  # headers and metadata: the parts read the bytes, range by range
        return None if info is None else (info, None)
    try:
        return source.get(key)
    except NotFound:
        return None


def _known(source: Store, dest: Store, info: ObjectInfo, verify_md5: bool, part_size: int | None = None) -> Known:
    ep = dest.endpoint
    # Asked (and, once per store, probed) only where the answer can choose the plan.
    worth_asking = info.etag_is_md5 and not verify_md5 and info.size > ep.multipart_threshold
    return Known(
        size=info.size,
        md5_known=info.md5 is not None,
        verify_md5=verify_md5,
        multipart=ep.multipart,
        threshold=ep.multipart_threshold,
        # The lean path streams a ranged GET straight into its UploadPart; boto3 would retry an
        # unseekable body by failing, so boto3 endpoints read in order.
        ranges=source.transport == "http" and dest.transport == "http",
        part_etags_md5=parts.etags_are_md5s(dest),
        source_part_size=part_size,
        md5_is_etag=info.etag_is_md5,
        store_checks_md5=worth_asking and parts.checks_content_md5(dest),
    )


def _carry_out(job: Job) -> tuple[str | None, str]:
    """Choose the plan and carry it out; where it meets a new fact of a store, choose again."""
    for _ in range(REPLANS):
        known = _known(job.source, job.dest, job.info, job.verify_md5)
        if choose(known).ranged:  # worth asking the source for its own parts
            known = replace(known, source_part_size=parts.source_part_size(job.source, job.dest, job.info))
            job = replace(job, part_size=known.source_part_size)
        plan = choose(known)
        logger.debug("Copying %r to %s: %s", job.info.key, job.dest.label, plan)
        if plan in (Plan.PUT_PROVEN, Plan.PUT_STREAMED, Plan.PUT_HASHED_FIRST) and job.info.size > MAX_PART:
            name = job.dest.endpoint.name
            raise CopyError(f"{job.info.key!r} is {job.info.size} bytes: over 5 GiB it needs multipart, "
                            f"which [{name}] turns off")  # fmt: skip
        if job.body is not None and not plan.reads_body:
            job.body.close()  # read again: by ranges, or (hashed first) twice
            job = replace(job, body=None)
        try:
            return _run(plan, job)
        except Unproven as e:  # the store's Facts learnt why; the next plan will not meet it again
            logger.warning("%s; sending %r again as the store now allows", e, job.info.key)
    raise IntegrityError(f"{job.info.key!r}: no plan proved the copy")


def _run(plan: Plan, job: Job) -> tuple[str | None, str]:
    """Carry out `plan`; a plan that reads in order after a HEAD gets a GET of that very version."""
    if not plan.reads_body or job.body is not None:
        return EXECUTORS[plan](job)
    _, body = job.source.get(job.info.key, if_match=job.info.etag)
    try:
        return EXECUTORS[plan](replace(job, body=body))
    finally:
        body.close()


def _put_buffered(job: Job) -> tuple[str, str]:
    """Plan.PUT_BUFFERED: read whole (counted against the memory budget), hash, send with Content-MD5."""
    assert job.body is not None
    held = BUDGET.acquire(job.info.size)
    try:
        data = job.body.read()
        md5 = hashlib.md5(data).hexdigest()
        parts.check_read(job.info, len(data), md5)
        LIMIT.take(len(data))
        etag = job.dest.put(job.target, data, length=len(data), md5=md5, attrs=job.attributes(md5))
    finally:
        BUDGET.release(held)
    if parts.etags_are_md5s(job.dest) and is_md5_other(etag, md5):
        _discard(job.dest, job.target)
        raise IntegrityError(f"{job.target!r}: the store says it holds MD5 {etag}, {md5} was sent")
    return md5, etag


def _put_proven(job: Job) -> tuple[str, str]:
    """Plan.PUT_PROVEN: the GET's body streams into one PUT whose Content-MD5 is the source's ETag; nothing hashed.

    The destination checks the body against Content-MD5 and stores nothing
    that differs (BadDigest): a corrupt read never lands. The GET is of the
    version whose ETag gave the MD5, so an overwrite mid-copy cannot mix two.
    The next blocks are read while one is sent (parts.read_ahead): B1's eight
    64 MiB copies took 2.84 s reading and sending in turn, 2.54 s overlapped.
    """
    assert job.body is not None
    md5, size = job.info.etag, job.info.size
    try:
        etag = job.dest.put(job.target, parts.read_ahead(job.body, size), length=size, md5=md5,
                            attrs=job.attributes(md5))  # fmt: skip
    except BadDigest as e:
        raise IntegrityError(f"{job.target!r}: the store refused the bytes read, unlike the source's MD5") from e
    if parts.etags_are_md5s(job.dest) and is_md5_other(etag, md5):
        _discard(job.dest, job.target)
        raise IntegrityError(f"{job.target!r}: the store says it holds MD5 {etag}, {md5} was sent")
    return md5, etag


def _put_streamed(job: Job) -> tuple[str, str]:
    """Plan.PUT_STREAMED: one PUT streamed from the GET, its Content-MD5 the source's; what streams is hashed too."""
    assert job.body is not None and job.info.md5 is not None
    md5 = job.info.md5
    digest = hashlib.md5()
    size = job.info.size
    etag = job.dest.put(job.target, parts.read_blocks(job.body, size, digest), length=size, md5=md5,
                        attrs=job.attributes(md5))  # fmt: skip
    parts.check_read(job.info, size, digest.hexdigest())
    return md5, etag


def _put_hashed_first(job: Job) -> tuple[str | None, str]:
    """Plan.PUT_HASHED_FIRST: the store checks only Content-MD5, and the source gives none: hash it first."""
    md5 = read_md5(job.source, job.info.key, if_match=job.info.etag)
    known = replace(job.info, metadata={**(job.info.metadata or {}), META_MD5: md5})
    return _run(Plan.PUT_STREAMED, replace(job, info=known))


def _server_side_copy(
    source: Store, dest: Store, key: str, target: str, *, verify_md5: bool, check_dest: bool
) -> Outcome:
    """Plan.SERVER_SIDE: same store, same identity, so the store copies the bytes itself."""
    info = source.head(key)
    if info is None:
        return Outcome(key, dest.label, Action.MISSING)
    if check_dest and identical(info, dest.head(target), tags=dest.endpoint.tags):
        return _skipped(key, dest, info)
    logger.debug("Copying %r to %s: %s", key, dest.label, Plan.SERVER_SIDE)
    attrs = attributes(dest, info, info.md5)
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
        _discard(dest, target)
        raise SourceChanged(f"{key!r} changed at the source during its server-side copy")
    copied = dest.head(target)
    if copied is None or copied.size != info.size:
        _discard(dest, target)
        left = copied.size if copied else "no"
        raise IntegrityError(f"{target!r}: server-side copy left {left} bytes, not {info.size}")
    md5 = info.md5
    if verify_md5 and not (md5 and copied.etag == info.etag):
        md5 = read_md5(source, info.key)
        _verify(dest, target, md5, copied.etag)
    return Outcome(key, dest.label, Action.COPIED, info.size, md5=md5, source_etag=info.etag, dest_etag=copied.etag)


EXECUTORS: dict[Plan, Callable[[Job], tuple[str | None, str]]] = {
    Plan.PUT_BUFFERED: _put_buffered,
    Plan.PUT_PROVEN: _put_proven,
    Plan.PUT_STREAMED: _put_streamed,
    Plan.PUT_HASHED_FIRST: _put_hashed_first,
    Plan.PARTS_IN_ORDER: lambda job: parts.upload_in_order(job),
    Plan.PARTS_FROM_RANGES: lambda job: parts.upload_ranges(job, hashed=True, whole=False),
    Plan.WHOLE_PARTS_FROM_RANGES: lambda job: parts.upload_ranges(job, hashed=True, whole=True),
    Plan.PART_FOR_PART: lambda job: parts.upload_ranges(job, hashed=False, whole=False),
}


def is_md5_other(etag: str, md5: str) -> bool:
    """True when a store's answer is an MD5, and not the one sent: it holds other bytes."""
    return is_md5(etag) and etag != md5


def _verify(dest: Store, target: str, md5: str, etag: str) -> None:
    """Prove the destination holds bytes with this MD5: by its ETag, else by reading it back."""
    if etag == md5:
        return
    found = dest.head(target)
    if found is None:
        raise IntegrityError(f"{target!r} is not at {dest.label} after the copy")
    if found.etag == md5:
        return
    read_back = read_md5(dest, found.key)
    if read_back != md5:
        # Its s3s3-md5 claims the right MD5: left in place, later syncs would trust it.
        _discard(dest, target)
        raise IntegrityError(f"{target!r} at {dest.label} has MD5 {read_back}, expected {md5}")


def _discard(dest: Store, target: str) -> None:
    """Delete a copy proven corrupt, so nothing trusts it; the key is copied again."""
    try:
        dest.delete(target)
    except Exception as e:
        logger.warning("Could not delete the corrupt copy %r at %s: %s", target, dest.label, e)


def read_md5(store: Store, key: str, *, if_match: str | None = None) -> str:
    """Read an object whole and return its MD5 (for stores that give none)."""
    _, body = store.get(key, if_match=if_match)
    digest = hashlib.md5()
    try:
        for block in iter(lambda: body.read(parts.READ_BLOCK), b""):
            digest.update(block)
    finally:
        body.close()
    return digest.hexdigest()


def _refusal_reason(dest: Store, info: ObjectInfo, error: StoreError) -> str | None:
    """Why a store refused a PUT when its own answer does not say (and retrying cannot help)."""
    asked = _asked(dest, info)
    # Swift answers a PUT carrying Tagging or encryption headers with 501 NotImplemented; Ceph a storage
    # class it lacks with a bare 400 InvalidArgument; AWS an ACL on a bucket that enforces ownership with
    # AccessControlListNotSupported.
    if asked and (error.status == 501 or (error.status == 400 and error.code in _OPTION_REFUSALS)):
        verb = "is" if len(asked) == 1 else "are not all"
        offered = f"{verb} not offered" if len(asked) == 1 else f"{verb} offered"
        return f"{' and '.join(asked)} {offered} by this store ({error.code}); {_remedy(dest, asked)}"
    if error.status >= 500:
        problem = _metadata_over_limits(attributes(dest, info, "0" * 32).metadata)
        if problem:
            return f"{problem} (the store answered {error.code or error.status}; retrying cannot help)"
    return None


_OPTION_REFUSALS = frozenset(
    {"InvalidStorageClass", "InvalidArgument", "InvalidRequest", "NotImplemented", "AccessControlListNotSupported",
     "InvalidEncryptionAlgorithmError", "KMS.NotFoundException", "KMS.DisabledException"}
)  # fmt: skip


def _asked(dest: Store, info: ObjectInfo) -> list[str]:
    """What this copy asks of the destination that a store may not offer, as the options that ask it."""
    ep = dest.endpoint
    asked = [f"storage_class = {ep.storage_class}"] if ep.storage_class else []
    asked += ["tags = true"] if ep.tags and info.tag_count else []
    asked += [f"sse = {ep.sse}"] if ep.sse else []
    return asked + ([f"acl = {ep.acl}"] if ep.acl else [])


def _remedy(dest: Store, asked: list[str]) -> str:
    options = [a.split(" = ")[0] for a in asked]
    where = f"[{dest.endpoint.name}]"
    if options == ["tags"]:
        return f"set tags = false in {where}"
    return f"remove it from {where}" if len(options) == 1 else f"change them in {where}"


def _metadata_over_limits(metadata: Any) -> str | None:
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
    if isinstance(error, StoreError):
        return error.transient or error.status == 412
    return True


def _expected(error: BaseException | None) -> bool:
    """Errors whose one-line message says it all; anything else is logged with its traceback."""
    return isinstance(error, S3S3Error) or (error is not None and is_transient(error))


def _skipped(key: str, dest: Store, info: ObjectInfo) -> Outcome:
    return Outcome(key, dest.label, Action.SKIPPED, info.size, md5=info.md5, source_etag=info.etag)


def _timed(outcome: Outcome, started: float) -> Outcome:
    return replace(outcome, seconds=time.monotonic() - started)


def _failed(key: str, dest: Store, error: BaseException | None, started: float, attempts: int = 1) -> Outcome:
    seconds = time.monotonic() - started
    return Outcome(key, dest.label, Action.FAILED, seconds=seconds, error=describe(error), attempts=attempts)


def delete_key(source: Store, dest: Store, key: str, *, retry: RetryPolicy = DEFAULT_RETRY) -> Outcome:
    """Remove `key` at `dest`, but only once the source really no longer has it; never raises."""
    budget = Budget(retry)
    target = dest_key(source, dest, key)
    try:
        if retry_call(lambda: source.head(key), budget, what=f"the HEAD of {key!r}") is not None:
            return _timed(Outcome(key, dest.label, Action.KEPT, error="it is still at the source"), budget.started)
        retry_call(lambda: dest.delete(target), budget, what=f"deleting {target!r}")
    except Exception as e:
        return _failed(key, dest, e, budget.started)
    return _timed(Outcome(key, dest.label, Action.DELETED), budget.started)


__all__ = ["MAX_PART", "Action", "Guard", "Outcome", "copy_key", "delete_key", "dest_key", "identical", "read_md5"]
