"""When each destination last got a copy: one stamp per destination, written by every listener and bucket sync.

A sorted set (`s3s3:last-copied`), scored by Unix seconds and only ever moved
forward (ZADD GT), so the stamps of many processes writing at once agree.
`s3s3 status` and the listener's /metrics read them.
"""

from __future__ import annotations

from typing import Any, cast

import redis

from s3s3 import names


def last_copies(client: redis.Redis) -> dict[str, float]:
    """When each destination last got a copy, as listeners and bucket syncs recorded it."""
    found = cast("list[tuple[bytes, float]]", client.zrange(names.LAST_COPIED, 0, -1, withscores=True))
    return {dest.decode("utf-8", "replace"): float(when) for dest, when in found}


def record_copies(pipe: Any, latest: dict[str, float]) -> None:
    """Queue, on a pipeline, the time each destination last got a copy (ZADD GT: never moved back)."""
    if latest:
        pipe.zadd(names.LAST_COPIED, latest, gt=True)
