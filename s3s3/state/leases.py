"""Per-key leases: one replayer of a key at a destination at a time, across every listener and bucket sync.

A replay (s3s3.copy.replay) writes a key's missing versions one after
another; two replayers of one key at once would write them twice, or out of
order. Each holds the key's lease while it works: a Redis key holding a
random token, set only where absent with a TTL (SET NX PX), renewed while
held (a copy may outlast the TTL), deleted only by its holder (a
compare-and-delete script). A holder that dies lets go when its TTL ends. A
waiter waits with backoff up to a deadline, then gives the key up
(LeaseError: it is tried again later, not lost). Without Redis, a lock of
the process does the same among its threads.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from s3s3 import names
from s3s3.errors import LeaseError
from s3s3.retry import backoff

logger = logging.getLogger(__name__)

TTL = 60.0  # seconds a lease outlives a holder that stopped renewing it (renewed every third of it)
WAIT = 120.0  # seconds a waiter waits for another's lease before giving the key up
FIRST_DELAY = 0.05  # a waiter's first pause; it doubles up to MAX_DELAY
MAX_DELAY = 2.0

# Only the holder's token lets go of a lease, or keeps it.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"


def lease_name(dest: str, key: str) -> str:
    """The Redis key of `key`'s lease at `dest` (one key: any Redis Cluster slot will do)."""
    return names.LEASE_PREFIX + hashlib.sha1(f"{dest}\0{key}".encode("utf-8", "surrogatepass")).hexdigest()


class RedisLease:
    """Leases held in Redis, for every process that shares it (implements s3s3.copy.replay.Lease)."""

    def __init__(self, client: redis.Redis, *, ttl: float | None = None, wait: float | None = None) -> None:
        self.client = client
        self.ttl = ttl or TTL  # read when made, so tests can shrink TTL and WAIT
        self.wait = WAIT if wait is None else wait
        self.waited: Counter[str] = Counter()  # keys whose lease another held first, by destination
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)
        self._held: dict[str, tuple[str, str]] = {}  # lease name -> (token, key), renewed while here
        self._lock = threading.Lock()
        self._renewer: threading.Thread | None = None

    @contextmanager
    def hold(self, dest: str, key: str) -> Iterator[None]:
        """Wait for `key`'s lease at `dest`, and hold it (renewed) while the block runs."""
        name, token = lease_name(dest, key), uuid.uuid4().hex
        self._take(name, token, dest, key)
        with self._lock:
            self._held[name] = (token, key)
            if self._renewer is None:
                self._renewer = threading.Thread(target=self._renew_held, name="s3s3-leases", daemon=True)
                self._renewer.start()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(name, None)
            try:
                self._release(keys=[name], args=[token])
            except redis.RedisError as e:
                logger.warning("Could not let go of the lease of %r (it expires by itself): %s", key, e)

    def _take(self, name: str, token: str, dest: str, key: str) -> None:
        deadline = time.monotonic() + self.wait
        attempt = 0
        try:
            while not self.client.set(name, token, nx=True, px=int(self.ttl * 1000)):
                attempt += 1
                if attempt == 1:
                    self.waited[dest] += 1
                    logger.info("Waiting for %r: another replayer holds it at %s", key, dest)
                delay = backoff(attempt, FIRST_DELAY, MAX_DELAY)
                if time.monotonic() + delay > deadline:
                    raise LeaseError(f"{key!r}: another replayer held its lease for over {self.wait:g}s; "
                                     "tried again later")  # fmt: skip
                time.sleep(delay)
        except redis.RedisError as e:
            raise LeaseError(f"{key!r}: cannot take its lease in Redis: {e}") from e

    def _renew_held(self) -> None:
        """Renew every lease held, each third of the TTL; stop once none is."""
        while True:
            time.sleep(self.ttl / 3)
            with self._lock:
                held = dict(self._held)
                if not held:
                    self._renewer = None
                    return
            for name, (token, key) in held.items():
                try:
                    kept = self._renew(keys=[name], args=[token, int(self.ttl * 1000)])
                except redis.RedisError as e:
                    logger.warning("Could not renew the lease of %r (tried again in %.0fs): %s", key, self.ttl / 3, e)
                    continue
                if not kept and self._held.get(name, ("",))[0] == token:
                    logger.error("Lost the lease of %r: it expired before it was renewed; another replayer may "
                                 "write it now", key)  # fmt: skip


class LocalLease:
    """Leases among the threads of this process, where there is no Redis (implements s3s3.copy.replay.Lease)."""

    def __init__(self, *, wait: float | None = None) -> None:
        self.wait = WAIT if wait is None else wait
        self.waited: Counter[str] = Counter()
        self._locks: dict[tuple[str, str], tuple[threading.Lock, int]] = {}  # lock, and how many use it
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, dest: str, key: str) -> Iterator[None]:
        """Wait for `key`'s lock at `dest`, and hold it while the block runs."""
        name = (dest, key)
        with self._guard:
            lock, users = self._locks.get(name, (threading.Lock(), 0))
            self._locks[name] = (lock, users + 1)
        try:
            if not lock.acquire(blocking=False):
                self.waited[dest] += 1
                if not lock.acquire(timeout=self.wait):
                    raise LeaseError(f"{key!r}: another replayer held it for over {self.wait:g}s; tried again later")
            try:
                yield
            finally:
                lock.release()
        finally:
            with self._guard:
                lock, users = self._locks[name]
                if users == 1:
                    del self._locks[name]
                else:
                    self._locks[name] = (lock, users - 1)
