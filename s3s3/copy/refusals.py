"""Why a store refused a copy, where its own answer does not say, and whether trying again can help.

A store that does not offer what the destination's options ask (a storage
class, tags, encryption, an ACL, a version's Object Lock) refuses with answers
that name nothing, and Swift answers metadata over its limits with a 500 that
looks transient. Each is turned into one line naming the option to change, and
is not retried.
"""

from __future__ import annotations

from collections.abc import Mapping

from s3s3.copy.job import attributes
from s3s3.copy.locks import carried
from s3s3.errors import StoreError
from s3s3.store import ObjectInfo, Store

# Swift's user-metadata limits, the tightest of the stores s3s3 meets; only used
# to explain a store's refusal, never to refuse metadata ahead of the store.
META_VALUE_LIMIT = 256  # bytes in one value
META_COUNT_LIMIT = 90  # keys
META_TOTAL_LIMIT = 4096  # bytes of all names and values

_OPTION_REFUSALS = frozenset(
    {"InvalidStorageClass", "InvalidArgument", "InvalidRequest", "NotImplemented", "AccessControlListNotSupported",
     "InvalidEncryptionAlgorithmError", "KMS.NotFoundException", "KMS.DisabledException"}
)  # fmt: skip


def refusal_reason(dest: Store, info: ObjectInfo, error: StoreError) -> str | None:
    """Why a store refused a PUT when its own answer does not say (and retrying cannot help); None otherwise."""
    lock = _lock_refusal(dest, info, error)
    if lock is not None:
        return lock
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


def _lock_refusal(dest: Store, info: ObjectInfo, error: StoreError) -> str | None:
    """Why a store refused a copy carrying the source version's Object Lock, where that is why."""
    if carried(dest, info) is None:
        return None
    where = f"set object_lock = ignore in [{dest.endpoint.name}]"
    # AWS and moto: a PUT carrying retention to a bucket without Object Lock is 400 InvalidRequest ("Bucket
    # is missing ObjectLockConfiguration"); one without Content-MD5 MissingUploadObjectWithObjectLockHeaders.
    if error.status == 400 and "lock" in str(error).lower():
        return (f"the source version's Object Lock cannot be written there ({error.code}); enable Object Lock on "
                f"{dest.endpoint.bucket} or {where}")  # fmt: skip
    if error.status == 403:
        return (f"writing the source version's Object Lock was refused ({error.code}): it needs "
                f"s3:PutObjectRetention and s3:PutObjectLegalHold on {dest.endpoint.bucket}; or {where}")  # fmt: skip
    return None


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


def _metadata_over_limits(metadata: Mapping[str, str]) -> str | None:
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
