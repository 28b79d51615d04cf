"""How s3s3 knows a destination holds the source's bytes: before a copy, after it, and when in doubt.

`identical` decides from what the stores say (sizes, MD5s, s3s3's own
record); `verify` proves a finished copy, reading it back only where no store
gives an MD5; a copy proven corrupt is discarded so that nothing trusts it.
"""

from __future__ import annotations

import hashlib
import logging

from s3s3.copy.streams import READ_BLOCK
from s3s3.errors import IntegrityError
from s3s3.outcome import Action, Outcome
from s3s3.store import META_ETAG, ObjectInfo, Store, is_md5

logger = logging.getLogger(__name__)


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


def skipped(key: str, dest: Store, info: ObjectInfo) -> Outcome:
    """The outcome of a key whose copy `dest` already holds: nothing sent."""
    return Outcome(key, dest.label, Action.SKIPPED, info.size, md5=info.md5, source_etag=info.etag)


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


def is_md5_other(etag: str, md5: str) -> bool:
    """True when a store's answer is an MD5, and not the one sent: it holds other bytes."""
    return is_md5(etag) and etag != md5


def verify(dest: Store, target: str, md5: str, etag: str) -> None:
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
        discard(dest, target)
        raise IntegrityError(f"{target!r} at {dest.label} has MD5 {read_back}, expected {md5}")


def discard(dest: Store, target: str) -> None:
    """Delete a copy proven corrupt, so nothing trusts it; the key is copied again.

    In a versioned bucket that copy is its key's newest version, deleted by
    its ID: a plain DELETE would only hide it under a delete marker.
    """
    try:
        found = dest.head(target)
        dest.delete(target, version_id=found.version_id if found is not None else None)
    except Exception as e:
        logger.warning("Could not delete the corrupt copy %r at %s: %s", target, dest.label, e)


def read_md5(store: Store, key: str, *, if_match: str | None = None) -> str:
    """Read an object whole and return its MD5 (for stores that give none)."""
    _, body = store.get(key, if_match=if_match)
    digest = hashlib.md5()
    try:
        for block in iter(lambda: body.read(READ_BLOCK), b""):
            digest.update(block)
    finally:
        body.close()
    return digest.hexdigest()
