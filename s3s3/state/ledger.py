"""The ledger: what s3s3 copied where, so a bucket sync can trust listings whose ETags differ.

A listing gives each object's size and ETag but no metadata. Where both ETags
are plain MD5s, comparing them settles "unchanged". Where they cannot be
compared (a multipart ETag on either side, a store whose ETag is no MD5, a copy
made in a different upload shape), the ledger can: for each destination key it
holds the source ETag and size that were copied and the ETag the copy got. If
the two listings still show exactly those, the copy is current, with no request
per key. Without a ledger entry s3s3 falls back to a HEAD of the destination
(its `s3s3-source-etag` metadata says the same thing, one request per key).

One Redis hash per destination bucket; the field is the destination key.

For a destination with `versions = all`, a second hash per bucket, the
version map (`VersionLedger`), says which source version each destination
version replays: what its `s3s3-source-version-id` says, without a HEAD.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import cast

import redis

from s3s3 import names
from s3s3.outcome import Action, Outcome
from s3s3.state.stamps import record_copies
from s3s3.store import ObjectInfo, Store, is_md5

logger = logging.getLogger(__name__)


def ledger_key(dest: Store) -> str:
    """The Redis hash for one destination bucket (named by where it lives, not by config section)."""
    return _ledger_key(dest.endpoint.endpoint_url or "aws", dest.endpoint.bucket)


@functools.cache
def _ledger_key(where: str, bucket: str) -> str:
    return names.LEDGER_PREFIX + hashlib.sha1(f"{where}/{bucket}".encode()).hexdigest()[:16] + ":" + bucket


def entry(source_etag: str, size: int, dest_etag: str) -> str:
    return f"{source_etag} {size} {dest_etag}"


class Recorder:
    """Ledger writes, sent in batches: one Redis round trip per BATCH copies, not one per copy.

    An entry lost before it is sent (a crash, Redis down) costs nothing but a
    HEAD in a later bucket sync, so batching trades nothing that matters.
    """

    BATCH = 256

    def __init__(self, client: redis.Redis, *, days: int = 0) -> None:
        self.client = client
        self.ttl = days * 86400  # seconds each ledger written to lives on after its last write; 0: for ever
        self._pending: list[tuple[str, str, str | None]] = []  # (hash, field, entry or None to forget)
        self._latest: dict[str, float] = {}  # destination -> when its last copy landed, to record
        self._lock = threading.Lock()

    def record(self, dest: Store, target: str, outcome: Outcome) -> None:
        """Remember a copy (or a proven-identical skip) that knows both ETags; forget a deleted key."""
        if outcome.action is Action.COPIED:
            with self._lock:
                self._latest[outcome.dest] = time.time()
        src, dst = outcome.source_etag, outcome.dest_etag
        if outcome.action in (Action.COPIED, Action.SKIPPED) and src and dst:
            if src == dst and is_md5(src):
                return  # the listings decide it (the same plain MD5 on both sides): nothing to remember
            value: str | None = entry(src, outcome.size, dst)
        elif outcome.action is Action.DELETED:
            value = None
        else:
            return
        with self._lock:
            self._pending.append((ledger_key(dest), target, value))
            full = len(self._pending) >= self.BATCH
        if full:
            self.flush()

    def flush(self) -> None:
        """Send what is pending; a Redis error is logged and the batch dropped."""
        with self._lock:
            batch, self._pending = self._pending, []
            latest, self._latest = self._latest, {}
        if not batch and not latest:
            return
        pipe = self.client.pipeline(transaction=False)
        record_copies(pipe, latest)
        for name, target, value in batch:
            if value is None:
                pipe.hdel(name, target)
            else:
                pipe.hset(name, target, value)
        for name in {name for name, _, _ in batch} if self.ttl else ():
            pipe.expire(name, self.ttl)
        try:
            pipe.execute()
        except redis.RedisError as e:
            logger.warning("Could not write %d ledger entries (later syncs HEAD those keys): %s", len(batch), e)


def forget(client: redis.Redis, dest: Store, targets: Iterable[str]) -> None:
    """Drop entries for keys deleted at the destination."""
    batch = list(targets)
    if batch:
        client.hdel(ledger_key(dest), *batch)


def current(client: redis.Redis, dest: Store, pairs: Sequence[tuple[ObjectInfo, ObjectInfo]]) -> list[bool]:
    """For each (source, destination) listing pair: does the ledger prove the copy current?"""
    if not pairs:
        return []
    values = cast("list[bytes | None]", client.hmget(ledger_key(dest), [dst.key for _src, dst in pairs]))
    return [
        value is not None and value.decode() == entry(src.etag, src.size, dst.etag)
        for (src, dst), value in zip(pairs, values, strict=True)
    ]


def versions_key(dest: Store) -> str:
    """The Redis hash of one destination bucket's version map (named as its ledger is)."""
    return names.VERSIONS_PREFIX + ledger_key(dest)[len(names.LEDGER_PREFIX) :]


def _field(key: str, version_id: str) -> str:
    # A version ID names one version in its bucket, but "null" (written while versioning was off) is in every key.
    return f"null/{key}" if version_id == "null" else version_id


class VersionLedger:
    """The version map (s3s3.copy.replay.VersionMap): destination version ID -> the source version it replays.

    One hash per destination bucket. "" marks a version that replays none
    (written before s3s3, or by someone else), so that it is not asked again.
    A Redis that does not answer costs HEADs, never a wrong answer.
    """

    def __init__(self, client: redis.Redis, *, days: int = 0, read_only: bool = False) -> None:
        self.client = client
        self.ttl = days * 86400  # as the Recorder's: the hash lives this long after its last write; 0: for ever
        self.read_only = read_only  # a dry run reads the map and writes nothing

    def known(self, dest: Store, key: str, version_ids: Sequence[str]) -> dict[str, str]:
        """What the map says of these versions of `key` at `dest`."""
        (found,) = self.known_many(dest, [(key, version_ids)])
        return found

    def known_many(self, dest: Store, keys: Sequence[tuple[str, Sequence[str]]]) -> list[dict[str, str]]:
        """`known` for each (key, version IDs), in one round trip."""
        fields = [_field(key, v) for key, ids in keys for v in ids]
        if not fields:
            return [{} for _ in keys]
        try:
            values = iter(cast("list[bytes | None]", self.client.hmget(versions_key(dest), fields)))
        except redis.RedisError as e:
            logger.warning("Could not read the version map (each version it would name costs a HEAD): %s", e)
            return [{} for _ in keys]
        found = []
        for _key, ids in keys:
            answers = [(v, next(values)) for v in ids]
            found.append({v: value.decode() for v, value in answers if value is not None})
        return found

    def learn(self, dest: Store, key: str, pairs: Mapping[str, str]) -> None:
        """Record destination version ID -> source version ID ("" for none) for `key` at `dest`."""
        if not pairs or self.read_only:
            return
        name = versions_key(dest)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(name, mapping={_field(key, d): s for d, s in pairs.items()})
        if self.ttl:
            pipe.expire(name, self.ttl)
        try:
            pipe.execute()
        except redis.RedisError as e:
            logger.warning("Could not write %d version map entries (later runs HEAD those versions): %s", len(pairs), e)

    def forget(self, dest: Store, key: str, version_ids: Sequence[str]) -> None:
        """Drop the entries of versions deleted at the destination."""
        if version_ids and not self.read_only:
            try:
                self.client.hdel(versions_key(dest), *[_field(key, v) for v in version_ids])
            except redis.RedisError as e:
                logger.warning("Could not forget %d deleted versions in the version map: %s", len(version_ids), e)
