"""Copies of one key that overlap in time, across every listener and bucket sync sharing a Redis.

Two announcements of one key taken by two listeners become two copies; the
one that read the older version may finish last and leave it at the
destination. A copy cannot see that by itself, but it can learn whether
another copy of the same key ran at the same time: each copy registers in a
small Redis hash per destination and key, counting the copies running
(`active`) and every start (`gen`). A copy overlapped another when, at its
start, another was running, or when another started before it ended. Only a
copy that overlapped has to HEAD the source afterwards and copy again if the
source moved on (s3s3.copy); one that ran alone costs two Redis round trips.
The bucket sync registers a page of copies in one round trip before any
starts and ends them in batches after they end (`begin_many`, `end_many`):
each window then holds the copy's, so whatever overlapped the copy overlaps
it, and two round trips serve hundreds of copies.

Whatever Redis cannot say (unreachable, restarted, the hash expired) counts as
an overlap: the answer is then "check", never "no need".
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from s3s3 import names

logger = logging.getLogger(__name__)

TTL_MS = 3_600_000  # a hash outlives a copy that died mid-way by at most this; longer copies just check

_BEGIN = """
local active = redis.call('HINCRBY', KEYS[1], 'active', 1)
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {active, gen}
"""
_END = """
local gen = redis.call('HGET', KEYS[1], 'gen')
if not gen then return -1 end
if redis.call('HINCRBY', KEYS[1], 'active', -1) <= 0 then redis.call('DEL', KEYS[1]) end
return tonumber(gen)
"""


@dataclass(frozen=True)
class Ticket:
    """One copy's registration: where, and what Redis said when it began (None: Redis could not say)."""

    name: str
    alone: bool  # no other copy of the key was running when this one began
    gen: int | None


class Overlaps:
    """Registers copies in Redis and says, as each ends, whether another copy of its key overlapped it."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._begin = client.register_script(_BEGIN)
        self._end = client.register_script(_END)

    def begin(self, dest: str, key: str) -> Ticket:
        name = _name(dest, key)
        try:
            active, gen = self._begin(keys=[name], args=[TTL_MS])
        except redis.RedisError as e:
            logger.debug("Could not register the copy of %r at %s (it will check the source): %s", key, dest, e)
            return Ticket(name, False, None)
        return Ticket(name, int(active) == 1, int(gen))

    def end(self, ticket: Ticket) -> bool:
        """Unregister; True when another copy of the key overlapped this one, or Redis cannot say."""
        if ticket.gen is None:
            return True
        try:
            gen = int(self._end(keys=[ticket.name]))
        except redis.RedisError:
            return True
        return _overlapped(ticket, gen)

    def begin_many(self, dest: str, keys: Sequence[str]) -> list[Ticket]:
        """`begin` for each of `keys` (distinct), in one round trip."""
        names_ = [_name(dest, key) for key in keys]
        if not names_:
            return []
        try:
            pipe = self.client.pipeline(transaction=False)
            for name in names_:
                self._begin(keys=[name], args=[TTL_MS], client=pipe)
            answers = pipe.execute()
        except redis.RedisError as e:
            logger.debug("Could not register %d copies at %s (each will check the source): %s", len(names_), dest, e)
            return [Ticket(name, False, None) for name in names_]
        return [Ticket(name, int(active) == 1, int(gen)) for name, (active, gen) in zip(names_, answers, strict=True)]

    def end_many(self, tickets: Sequence[Ticket]) -> list[bool]:
        """`end` for each of `tickets`, in one round trip."""
        known = [t for t in tickets if t.gen is not None]
        if not known:
            return [True] * len(tickets)
        try:
            pipe = self.client.pipeline(transaction=False)
            for ticket in known:
                self._end(keys=[ticket.name], client=pipe)
            gens = dict(zip((id(t) for t in known), (int(g) for g in pipe.execute()), strict=True))
        except redis.RedisError:
            return [True] * len(tickets)
        return [t.gen is None or _overlapped(t, gens[id(t)]) for t in tickets]


def _name(dest: str, key: str) -> str:
    return names.COPYING_PREFIX + hashlib.sha1(f"{dest}\0{key}".encode("utf-8", "surrogatepass")).hexdigest()


def _overlapped(ticket: Ticket, gen: int) -> bool:
    """Whether the copy of `ticket` overlapped another, from the `gen` its end found (-1: the hash was gone)."""
    return not ticket.alone or gen != ticket.gen
