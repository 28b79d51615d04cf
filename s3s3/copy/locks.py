"""A version's Object Lock carried by its copy: whether the destination can hold it, and proof that it does.

With `object_lock = copy` (the default), a source version's retention (mode
and retain-until date) and legal hold are written with its copy
(s3s3.copy.job.attributes). A destination bucket without Object Lock cannot
hold them: such a key fails at once, naming the option, rather than landing
without the protection the source gave it. Once written, the copy's own
answer must show them: moto 5.2 and Ceph 16 keep none of what
CreateMultipartUpload carries, nor Ceph 16 what a CopyObject carries with
the REPLACE metadata directive, so what is missing is set on the copy's
version afterwards.
"""

from __future__ import annotations

from s3s3.config import ObjectLock
from s3s3.errors import CopyError, IntegrityError
from s3s3.store import Lock, ObjectInfo, Store
from s3s3.store.probes import object_lock_on


def carried(dest: Store, info: ObjectInfo) -> Lock | None:
    """The Object Lock the copy of `info` at `dest` is written with: the source version's, unless ignored."""
    return info.lock if info.lock and dest.endpoint.object_lock is ObjectLock.COPY else None


def check_destination(dest: Store, target: str, info: ObjectInfo) -> None:
    """Raise CopyError (not retried) where the copy would carry a lock that `dest`'s bucket cannot hold."""
    lock = carried(dest, info)
    if lock is None or object_lock_on(dest) is not False:
        return
    ep = dest.endpoint
    raise CopyError(
        f"{target!r}: {dest.label} has no Object Lock, and the source version has {describe(lock)}: "
        f"enable Object Lock on {ep.bucket} or set object_lock = ignore in [{ep.name}]"
    )


def describe(lock: Lock) -> str:
    """A lock in words: `retention (COMPLIANCE until 2030-01-01T00:00:00.000Z) and a legal hold`."""
    parts = [f"retention ({lock.mode} until {lock.retain_until})"] if lock.mode else []
    return " and ".join(parts + (["a legal hold"] if lock.legal_hold else []))


def ensure_landed(dest: Store, target: str, lock: Lock) -> None:
    """Make sure the copy at `target` holds `lock`: set it on the copy's version where the write did not keep it."""
    found = dest.head(target)
    if found is None:
        raise IntegrityError(f"{target!r}: the copy is not at {dest.label} to hold its Object Lock")
    if holds(found.lock, lock):
        return
    dest.put_lock(target, lock, version_id=found.version_id)
    again = dest.head(target, version_id=found.version_id) if found.version_id else dest.head(target)
    if again is None or not holds(again.lock, lock):
        held = describe(again.lock) if again is not None and again.lock else "none"
        raise CopyError(f"{target!r}: {dest.label} holds {held}, not the source version's {describe(lock)}")


def holds(found: Lock | None, lock: Lock) -> bool:
    """Whether `found` (as a HEAD answers it) holds at least `lock` (a bucket's default retention may add one)."""
    if found is None:
        return not lock
    retention = not lock.mode or (found.mode, found.retain_until) == (lock.mode, lock.retain_until)
    return retention and (found.legal_hold or not lock.legal_hold)
