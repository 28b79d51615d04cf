"""The copy engine: one key, from the source bucket to one destination, intact or not at all.

A copy opens the source, asks the destination whether it already holds the
bytes, chooses a plan (s3s3.copy.plan) from what it knows, and carries it out:
single requests in s3s3.copy.put, parts in s3s3.copy.parts. Every byte that lands is proven before
the object becomes visible: by the Content-MD5 the store checks, by part ETags
checked against what was sent, or by the source's own ETag.

boto3's managed upload cannot do what s3s3 needs here: a Content-MD5 on every
part (the only checksum Ceph and Swift enforce), an MD5 of the whole object
computed while it streams, multipart turned off for stores where it is
unreliable, and bounded memory for a body that is not seekable (its managed
upload buffered 520-600 MiB for one stream). So the short loops are written
in this package, once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from s3s3.config import MAX_PART
from s3s3.copy import locks, parts, put
from s3s3.copy.job import Guard, Job, dest_key
from s3s3.copy.limits import DEFAULT, Limits
from s3s3.copy.plan import Known, Plan, choose
from s3s3.copy.proof import identical, newer_at_source, read_md5, skipped, verify
from s3s3.copy.refusals import refusal_reason
from s3s3.errors import CopyError, IntegrityError, NotFound, S3S3Error, SourceChanged, StoreError, Unproven
from s3s3.outcome import Action, Outcome
from s3s3.retry import DEFAULT_RETRY, Budget, RetryPolicy, describe, is_transient
from s3s3.retry import call as retry_call
from s3s3.store import Body, ObjectInfo, Store, Transport
from s3s3.store.probes import checks_content_md5, etags_are_md5s, source_part_size

logger = logging.getLogger(__name__)

REPLANS = 3  # plans tried for one object when each meets a new fact of its store


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
    limits: Limits = DEFAULT,
    server_side: bool = True,
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
    one that stays. `limits` are the process's bandwidth, memory and stream
    budgets, shared with every other copy it runs. `server_side=False` reads
    and writes the bytes even within one store: a replayed version
    (s3s3.copy.replay) is read through a view CopyObject would not see.

    Whole-key retries happen here, and only here: the transports retry each
    request (botocore's standard mode, and the lean path likewise), and a
    streamed part is retried as a part (s3s3.copy.parts); what is left is what no
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
                listed=listed, budget=budget, limits=limits, server_side=server_side,
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
    limits: Limits,
    server_side: bool,
) -> Outcome:
    target = dest_key(source, dest, key)
    verify_md5 = verify_md5 or source.endpoint.verify_md5 or dest.endpoint.verify_md5
    if server_side and dest.endpoint.same_store(source.endpoint):
        return put.server_side_copy(source, dest, key, target, verify_md5=verify_md5, check_dest=check_dest)
    opened = _open(source, dest, key, listed, verify_md5=verify_md5)
    if opened is None:
        return Outcome(key, dest.label, Action.MISSING)
    info, body = opened
    try:
        check = check_dest and (check_small or info.size > dest.endpoint.multipart_threshold)
        if check and identical(info, dest.head(target), tags=dest.endpoint.tags):
            return skipped(key, dest, info)
        locks.check_destination(dest, target, info)
        # Tags are not in a GET's answer, only their number: one more request, where there are any.
        tagging = source.get_tagging(key) if dest.endpoint.tags and info.tag_count else None
        md5, etag = _carry_out(Job(source, dest, target, info, body, budget, verify_md5, tagging=tagging,
                                   limits=limits))  # fmt: skip
        lock = locks.carried(dest, info)
        if lock is not None:
            locks.ensure_landed(dest, target, lock)
    except StoreError as e:
        reason = refusal_reason(dest, info, e)
        if reason is None:
            raise
        raise CopyError(f"{target!r}: {dest.label} refused it: {reason}", e) from e
    finally:
        if body is not None:
            body.close()
    if verify_md5:
        verify(dest, target, md5 or read_md5(source, key), etag)  # md5 is known: verifying hashes it whole
    return Outcome(key, dest.label, Action.COPIED, info.size, md5=md5, source_etag=info.etag, dest_etag=etag)


def _open(
    source: Store, dest: Store, key: str, listed: ObjectInfo | None, *, verify_md5: bool
) -> tuple[ObjectInfo, Body | None] | None:
    """The source object and its body to stream; no body where the listing says ranges will read it."""
    # With the checksum the source keeps, if any: a single PUT sends it on (s3s3.copy.job.Job.checksum).
    if listed is not None and choose(_known(source, dest, listed, verify_md5)).ranged:
        info = source.head(key, checksums=True)  # headers and metadata: the parts read the bytes, range by range
        return None if info is None else (info, None)
    try:
        return source.get(key, checksums=True)
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
        ranges=source.transport == Transport.HTTP and dest.transport == Transport.HTTP,
        part_etags_md5=etags_are_md5s(dest),
        source_part_size=part_size,
        md5_is_etag=info.etag_is_md5,
        store_checks_md5=worth_asking and checks_content_md5(dest),
        parts_need_md5=locks.carried(dest, info) is not None,
    )


def _carry_out(job: Job) -> tuple[str | None, str]:
    """Choose the plan and carry it out; where it meets a new fact of a store, choose again."""
    for _ in range(REPLANS):
        known = _known(job.source, job.dest, job.info, job.verify_md5)
        if choose(known).ranged:  # worth asking the source for its own parts
            known = replace(known, source_part_size=source_part_size(job.source, job.dest, job.info))
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


EXECUTORS: dict[Plan, Callable[[Job], tuple[str | None, str]]] = {
    Plan.PUT_BUFFERED: put.put_buffered,
    Plan.PUT_PROVEN: put.put_proven,
    Plan.PUT_STREAMED: put.put_streamed,
    Plan.PUT_HASHED_FIRST: put.put_hashed_first,
    Plan.PARTS_IN_ORDER: lambda job: parts.upload_in_order(job),
    Plan.PARTS_FROM_RANGES: lambda job: parts.upload_ranges(job, hashed=True, whole=False),
    Plan.WHOLE_PARTS_FROM_RANGES: lambda job: parts.upload_ranges(job, hashed=True, whole=True),
    Plan.PART_FOR_PART: lambda job: parts.upload_ranges(job, hashed=False, whole=False),
}


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
