"""The dead-letter stream: copies that failed beyond their retries, and announcements rejected as bad.

Nothing s3s3 gives up on is dropped silently: it lands here with the reason,
`s3s3 failed` lists it, `s3s3 retry-failed` announces the keys again, and
`s3s3bucket` retries them first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import cast

import redis

from s3s3 import names

MAX_RAW = 4096  # bytes of a rejected message kept for inspection


class Kind(StrEnum):
    """What a dead-letter entry holds, as its `kind` field says."""

    COPY = "copy"  # a key that could not be copied to a destination: retried by s3s3bucket and retry-failed
    REJECTED = "rejected"  # an announcement that could not be understood: left for a person


@dataclass(frozen=True)
class Failure:
    """One dead-letter entry."""

    id: str
    kind: Kind
    key: str
    dest: str
    error: str
    attempts: int
    time: float

    def line(self) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.time))
        if self.kind == Kind.REJECTED:
            return f"{self.id} {when} rejected {self.key!r}: {self.error}"
        return f"{self.id} {when} {self.key!r} to {self.dest} after {self.attempts} attempt(s): {self.error}"


def record_failure(client: redis.Redis, key: str, dest: str, error: str, attempts: int) -> None:
    """Keep a key that could not be copied to `dest`."""
    _add(client, {"kind": Kind.COPY, "key": key, "dest": dest, "error": error, "attempts": attempts})


def record_rejected(client: redis.Redis, raw: bytes, reason: str) -> None:
    """Keep an announcement that could not be understood, as it came (cut to MAX_RAW bytes)."""
    _add(client, {"kind": Kind.REJECTED, "key": raw[:MAX_RAW], "dest": "", "error": reason, "attempts": 0})


def failures(client: redis.Redis, count: int | None = None) -> Iterator[Failure]:
    """The dead-letter entries, oldest first (at most `count` of them, if given)."""
    after = "-"
    left = count
    while left is None or left > 0:
        batch = cast("list[tuple[bytes, dict[bytes, bytes]]]",
                     client.xrange(names.DEADLETTER, min=after, max="+", count=500))  # fmt: skip
        if not batch:
            return
        for entry_id, fields in batch[:left]:
            yield _failure(entry_id, fields)
        left = None if left is None else left - len(batch)
        # Exclusive from the last ID read: an entry deleted meanwhile (retry-failed, a trim) skips nothing.
        after = "(" + batch[-1][0].decode()


def retry(client: redis.Redis, copy: Callable[[str], bool]) -> tuple[int, int]:
    """Call `copy(key)` for each failed key (once per key); drop those that now succeed.

    Returns (succeeded, still failing). Rejected messages are left for a person.
    """
    by_key: dict[str, list[str]] = {}
    for failure in failures(client):
        if failure.kind == Kind.COPY:
            by_key.setdefault(failure.key, []).append(failure.id)
    done = 0
    for key, ids in by_key.items():
        if copy(key):
            client.xdel(names.DEADLETTER, *ids)
            done += 1
    return done, len(by_key) - done


def _add(client: redis.Redis, fields: dict[str, object]) -> None:
    fields = {**fields, "time": f"{time.time():.3f}"}
    client.xadd(names.DEADLETTER, fields, maxlen=names.DEADLETTER_MAXLEN, approximate=True)  # type: ignore[arg-type]


def _failure(entry_id: bytes, fields: dict[bytes, bytes]) -> Failure:
    def text(name: str) -> str:
        return fields.get(name.encode(), b"").decode("utf-8", "replace")

    return Failure(
        id=entry_id.decode(),
        # Anything but a copy is left for a person, as a rejected message is.
        kind=Kind.COPY if text("kind") == Kind.COPY else Kind.REJECTED,
        key=text("key"),
        dest=text("dest"),
        error=text("error"),
        attempts=int(text("attempts") or 0),
        time=float(text("time") or 0),
    )
