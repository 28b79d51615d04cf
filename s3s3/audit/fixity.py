"""Fixity: which keys an audit reads back, and reading one, within the process's bandwidth.

The keys a fraction picks follow from the key and a seed alone, so the same
seed picks the same keys again (`--seed`), whatever the shard, the order or
the other keys; a new seed each run covers other keys over time.
"""

from __future__ import annotations

import hashlib
import random

from s3s3.copy.limits import Bandwidth
from s3s3.copy.streams import READ_BLOCK
from s3s3.store import Store

SEEDS = 10**6  # seeds drawn when none is given: six digits, easy to type again


def new_seed() -> int:
    """A seed for a run that was given none (printed, so that it can be given again)."""
    return random.SystemRandom().randrange(SEEDS)


def picked(key: str, fraction: float, seed: int) -> bool:
    """Whether a read-back of `fraction` of the keys (0 to 1) with `seed` reads `key`."""
    if fraction >= 1.0:
        return True
    if fraction <= 0.0:
        return False
    digest = hashlib.sha256(f"{seed}\0{key}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


def read_md5(store: Store, key: str, bandwidth: Bandwidth) -> tuple[str, int]:
    """Read an object whole, no faster than `bandwidth` allows; return the MD5 of its bytes and their number."""
    info, body = store.get(key)
    digest = hashlib.md5()
    view = memoryview(bytearray(min(READ_BLOCK, info.size) or 1))  # read into, not read: no block allocated
    size = 0
    try:
        while size < info.size and (n := body.readinto(view)):
            bandwidth.take(n)
            digest.update(view[:n])
            size += n
    finally:
        body.close()
    return digest.hexdigest(), size
