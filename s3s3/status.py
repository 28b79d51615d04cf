"""`s3s3 status KEY`: one key at the source and at every destination, and whether each is in sync."""

from __future__ import annotations

from s3s3.config import Config
from s3s3.copy import dest_key, identical
from s3s3.errors import StoreError
from s3s3.retry import describe
from s3s3.store import META_ETAG, ObjectInfo, Store, open_store


def show(config: Config, key: str) -> bool:
    """Print the key's size, ETag and MD5 everywhere; True when every destination is in sync."""
    source = open_store(config.source)
    try:
        src = source.head(key)
    except StoreError as e:
        print(f"{source.label}: {key!r}: cannot read: {describe(e)}")
        return False
    print(f"{source.endpoint.label}: {_describe(src) if src else 'not there'}  (source)")
    in_sync = True
    for endpoint in config.dests:
        dest = open_store(endpoint)
        in_sync = _show_dest(source, dest, key, src) and in_sync
    return in_sync


def _show_dest(source: Store, dest: Store, key: str, src: ObjectInfo | None) -> bool:
    target = dest_key(source, dest, key)
    try:
        dst = dest.head(target)
    except StoreError as e:
        print(f"{dest.label}: {target!r}: cannot read: {describe(e)}")
        return False
    if src is None:
        verdict = "in sync (absent at both)" if dst is None else "extra (the source no longer has it)"
        ok = dst is None
    elif dst is None:
        verdict, ok = "missing", False
    else:
        ok = identical(src, dst)
        verdict = "in sync" if ok else "differs"
    print(f"{dest.endpoint.label}: {_describe(dst) if dst else 'not there'}  ({verdict})")
    return ok


def _describe(info: ObjectInfo) -> str:
    meta = info.metadata or {}
    parts = [f"{info.key!r}", f"size {info.size}", f"ETag {info.etag}", f"MD5 {info.md5 or 'unknown'}"]
    if META_ETAG in meta:
        parts.append(f"copied from ETag {meta[META_ETAG]}")
    return ", ".join(parts)
