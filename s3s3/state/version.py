"""The Redis s3s3 needs: 6.2 or later, checked by the services once Redis answers.

The listener and the bucket sync use commands Redis 6.2 introduced; on an
older server they would fail at their first use, with an error naming the
command rather than the version. They ask the server's version first and
stop with one line naming both versions instead.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from s3s3.errors import RequirementError

logger = logging.getLogger(__name__)

NEEDED = (6, 2)  # the oldest Redis the services work with
NEEDED_FOR = "XAUTOCLAIM, BLMOVE, XGROUP CREATECONSUMER"  # the commands that version introduced, which they use


def require_redis(client: redis.Redis, where: str) -> str | None:
    """The version of the Redis at `where` (its URL, without a password); RequirementError when it is too old.

    A server that will not say (INFO refused, as some managed services do)
    is let through with a warning: its first newer command will tell.
    """
    try:
        info = client.info("server")
    except redis.ResponseError as e:
        logger.warning("Cannot tell the version of Redis at %s (INFO: %s); s3s3 needs %s or later", where, e,
                       _dotted(NEEDED))  # fmt: skip
        return None
    found = min(_versions(info), key=_parts, default=None)
    if found is None:
        logger.warning("Redis at %s gives no version; s3s3 needs %s or later", where, _dotted(NEEDED))
        return None
    if _parts(found) < NEEDED:
        raise RequirementError(
            f"Redis {found} at {where} is too old: s3s3 needs Redis {_dotted(NEEDED)} or later ({NEEDED_FOR})"
        )
    logger.debug("Redis %s at %s: new enough", found, where)
    return found


def _versions(info: dict[str, Any]) -> list[str]:
    """redis_version from INFO: one server's, or each node's of a Redis Cluster (by node name)."""
    if "redis_version" in info:
        return [str(info["redis_version"])]
    return [str(node["redis_version"]) for node in info.values() if isinstance(node, dict) and "redis_version" in node]


def _parts(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("."):
        digits = "".join(c for c in part if c.isdigit()) or "0"
        parts.append(int(digits))
    return tuple(parts)


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))
