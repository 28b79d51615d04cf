"""How every service reaches the Redis it shares with the others: one function, from `[pubsub]`."""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from s3s3.config import PubSub


def connect_redis(pubsub: PubSub, **options: Any) -> redis.Redis:
    """A Redis (or Redis Cluster) client whose failures reach s3s3 instead of being retried out of sight.

    redis-py would otherwise reconnect and resubscribe by itself, and whatever
    was published in between would be lost without a word in the log.
    """
    options = {"socket_connect_timeout": 5, **options}
    if not pubsub.url.startswith("unix://"):  # redis-py's Unix socket connections take no keepalive
        options.setdefault("socket_keepalive", True)
    if pubsub.cluster:
        # redis-py's cluster client finds the other nodes from the one in the URL.
        return redis.RedisCluster.from_url(pubsub.url, **options)  # type: ignore[return-value]
    return redis.Redis.from_url(pubsub.url, health_check_interval=10, retry=Retry(NoBackoff(), 0), **options)
