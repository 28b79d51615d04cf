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
it, and two round trips serve hundreds of copies. The listener does the same
with each batch of announcements it reads (s3s3.listen.settle).

Whatever Redis cannot say (unreachable, restarted, the hash expired) counts as
an overlap: the answer is then "check", never "no need".
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

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
_SCRIPTS = {"begin": _BEGIN, "end": _END}
_SHAS = {op: hashlib.sha1(script.encode()).hexdigest() for op, script in _SCRIPTS.items()}

Op = tuple[Literal["begin", "end"], str]  # what to do, to which registration hash


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

    def begin(self, dest: str, key: str) -> Ticket:
        (ticket,) = self.begin_many([(dest, key)])
        return ticket

    def end(self, ticket: Ticket) -> bool:
        """Unregister; True when another copy of the key overlapped this one, or Redis cannot say."""
        (overlapped,) = self.end_many([ticket])
        return overlapped

    def begin_many(self, copies: Sequence[tuple[str, str]]) -> list[Ticket]:
        """`begin` for each (destination, key) of `copies` (distinct), in one round trip."""
        names_ = [_name(dest, key) for dest, key in copies]
        if not names_:
            return []
        try:
            answers = self._run([("begin", name) for name in names_])
        except redis.RedisError as e:
            answers = [e] * len(names_)
        if any(isinstance(a, Exception) for a in answers):
            logger.debug("Could not register some of %d copies (they will check the source)", len(names_))
        return [
            Ticket(name, False, None) if isinstance(a, Exception) else Ticket(name, int(a[0]) == 1, int(a[1]))
            for name, a in zip(names_, answers, strict=True)
        ]

    def end_many(self, tickets: Sequence[Ticket]) -> list[bool]:
        """`end` for each of `tickets`, in one round trip."""
        known = [t for t in tickets if t.gen is not None]
        if not known:
            return [True] * len(tickets)
        try:
            answers = self._run([("end", t.name) for t in known])
        except redis.RedisError:
            return [True] * len(tickets)
        gens = {id(t): a for t, a in zip(known, answers, strict=True)}
        return [
            t.gen is None or isinstance(gens[id(t)], Exception) or _overlapped(t, int(gens[id(t)])) for t in tickets
        ]

    def _run(self, ops: Sequence[Op]) -> list[Any]:
        """Each op's answer (or the error Redis gave it), from one pipeline; scripts Redis lost are loaded again.

        EVALSHA, not redis-py's Script objects: a pipeline holding those asks
        SCRIPT EXISTS first, a second round trip every time.
        """
        answers = self._pipeline(ops)
        lost = [i for i, a in enumerate(answers) if isinstance(a, redis.exceptions.NoScriptError)]
        if lost:  # a Redis restarted, or flushed its scripts: load them, and send just those again
            for script in _SCRIPTS.values():
                self.client.script_load(script)
            for i, answer in zip(lost, self._pipeline([ops[i] for i in lost]), strict=True):
                answers[i] = answer
        return answers

    def _pipeline(self, ops: Sequence[Op]) -> list[Any]:
        if len(ops) == 1:  # one copy alone: one command, without a pipeline's cost
            return [self._one(*ops[0])]
        pipe = self.client.pipeline(transaction=False)
        for op, name in ops:
            if op == "begin":
                pipe.evalsha(_SHAS[op], 1, name, TTL_MS)
            else:
                pipe.evalsha(_SHAS[op], 1, name)
        return list(pipe.execute(raise_on_error=False))


    def _one(self, op: str, name: str) -> Any:
        args = (name, TTL_MS) if op == "begin" else (name,)
        try:
            return self.client.evalsha(_SHAS[op], 1, *args)
        except redis.exceptions.NoScriptError as e:
            return e
        except redis.ResponseError as e:  # what Redis answered to this one command, as a pipeline reports it
            return e


def _name(dest: str, key: str) -> str:
    return names.COPYING_PREFIX + hashlib.sha1(f"{dest}\0{key}".encode("utf-8", "surrogatepass")).hexdigest()


def _overlapped(ticket: Ticket, gen: int) -> bool:
    """Whether the copy of `ticket` overlapped another, from the `gen` its end found (-1: the hash was gone)."""
    return not ticket.alone or gen != ticket.gen
