"""What s3s3 learns about a store by using it, so that it stops trying what cannot work there.

Some stores answer in ways no configuration says: part ETags that are not
MD5s (AWS with SSE-KMS), a HEAD ?partNumber= answered for the whole object
(Ceph 16, Swift, moto), part-for-part copies whose ETags do not combine into
the source's. Each is learnt once, by the copy that meets it, and kept per
store (named by its URL) in a Redis hash, `s3s3:facts:<store>`, when the
service has a Redis: every listener and every later bucket sync starts
knowing it. Without Redis the facts last as long as the process.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from enum import StrEnum
from typing import TYPE_CHECKING

import redis

from s3s3 import names

if TYPE_CHECKING:
    from s3s3.config import Endpoint

logger = logging.getLogger(__name__)


class Fact(StrEnum):
    """Something a store has shown, as the field of its facts hash."""

    PART_ETAGS_NOT_MD5 = "part-etags-not-md5"  # as a destination: its part ETags prove nothing
    NO_PART_NUMBER = "no-part-number"  # as a source: HEAD ?partNumber= does not say a part's size
    UNALIGNED = "unaligned"  # + ":<other store>": part-for-part copies to it did not add up
    CHECKS_CONTENT_MD5 = "checks-content-md5"  # as a destination: a body unlike its Content-MD5 is refused
    IGNORES_CONTENT_MD5 = "ignores-content-md5"  # as a destination: it stores such a body
    # + ":<algorithm>": what it does with a full-object checksum (x-amz-checksum-<algorithm>) sent with a PUT
    CHECKS_CHECKSUM = "checks-checksum"  # refuses a body unlike it, and keeps it
    KEEPS_CHECKSUM = "keeps-checksum"  # keeps it and answers it, without checking the body against it
    IGNORES_CHECKSUM = "ignores-checksum"  # keeps nothing (or refuses the header)
    # + ":<bucket>": whether the bucket has Object Lock. Once on it cannot be turned off, so only that is kept
    # in Redis; "none" lasts as long as the process (a bucket may be given Object Lock later).
    OBJECT_LOCK = "object-lock"
    NO_OBJECT_LOCK = "no-object-lock"


class Facts:
    """The facts of one store: read from Redis once, written there as each is learnt."""

    def __init__(self, store: str, client: redis.Redis | None = None) -> None:
        self.store = store  # names the store: its URL, or the AWS region
        self.key = names.FACTS_PREFIX + hashlib.sha1(store.encode()).hexdigest()[:16]
        self.client = client
        self._known: set[str] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Facts({self.store!r}, {sorted(self._known or ())})"

    def share(self, client: redis.Redis) -> None:
        """From now on keep the facts in this Redis too, and start from what it holds."""
        with self._lock:
            self.client = client
            self._known = None

    def knows(self, fact: Fact, other: str = "") -> bool:
        """True when the store has shown `fact` (about its pairing with store `other`, for UNALIGNED; about
        algorithm `other`, for the checksum facts)."""
        return _field(fact, other) in self._load()

    def learn(self, fact: Fact, other: str = "", *, shared: bool = True) -> None:
        """Remember `fact` here and, where there is one (and `shared`), in Redis for every other process."""
        name = _field(fact, other)
        with self._lock:
            known = self._load()
            if name in known:
                return
            known.add(name)
        shared = shared and self.client is not None
        logger.info("Learnt of %s: %s; remembered in %s", self.store, name, self.key if shared else "memory")
        if shared and self.client is not None:
            try:
                self.client.hset(self.key, name, "1")
            except redis.RedisError as e:
                logger.warning("Could not keep what was learnt of %s in Redis: %s", self.store, e)

    def _load(self) -> set[str]:
        if self._known is None:
            known: set[str] = set()
            if self.client is not None:
                try:
                    known = {f.decode() if isinstance(f, bytes) else str(f) for f in self.client.hkeys(self.key)}
                except redis.RedisError as e:  # the caller warns that Redis is away; this is one more effect
                    logger.debug("Could not read what is known of %s from Redis: %s", self.store, e)
            self._known = known
        return self._known


def store_name(endpoint: Endpoint) -> str:
    """The store an endpoint talks to (not its bucket): what its facts are kept under."""
    return endpoint.endpoint_url or f"aws:{endpoint.region or 'us-east-1'}"


def _field(fact: Fact, other: str) -> str:
    return f"{fact}:{other}" if other else str(fact)
