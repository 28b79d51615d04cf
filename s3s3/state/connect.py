"""How every service reaches the Redis it shares with the others: one function, from `[pubsub]`."""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode
from redis.connection import SSLConnection, parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel

from s3s3.config import PubSub


def connect_redis(pubsub: PubSub, **options: Any) -> redis.Redis:
    """A Redis (Sentinel-found master, or Redis Cluster) client whose failures reach s3s3 instead of being
    retried out of sight.

    redis-py would otherwise reconnect and resubscribe by itself, and whatever
    was published in between would be lost without a word in the log.
    """
    options = {"socket_connect_timeout": 5, **options}
    if not pubsub.url.startswith("unix://"):  # redis-py's Unix socket connections take no keepalive
        options.setdefault("socket_keepalive", True)
    if pubsub.sentinels:
        return _master(pubsub, options)
    if pubsub.cluster:
        # redis-py's cluster client finds the other nodes from the first of these that answers.
        nodes = [ClusterNode(host, port) for host, port in pubsub.cluster_nodes]  # type: ignore[no-untyped-call]
        # No retries of its own either: a failover shows (/healthz), and s3s3's loops wait it out.
        return redis.RedisCluster.from_url(  # type: ignore[return-value]
            pubsub.url, startup_nodes=nodes, retry=Retry(NoBackoff(), 0), **options
        )
    return redis.Redis.from_url(pubsub.url, health_check_interval=10, retry=Retry(NoBackoff(), 0), **options)


def _master(pubsub: PubSub, options: dict[str, Any]) -> redis.Redis:
    """The master the sentinels name, asked again at every new connection: a failover is followed by reconnecting.

    The credentials, database and TLS are `url`'s; its host and port are not used.
    """
    given: dict[str, Any] = parse_url(pubsub.url)  # type: ignore[no-untyped-call]
    for where in ("host", "port", "path"):
        given.pop(where, None)
    if given.pop("connection_class", None) is SSLConnection:
        given["ssl"] = True
    asked = {"socket_connect_timeout": options["socket_connect_timeout"], "socket_timeout": 5}
    if pubsub.sentinel_password:
        asked["password"] = pubsub.sentinel_password
    sentinel = Sentinel(list(pubsub.sentinels), sentinel_kwargs=asked)
    master: redis.Redis = sentinel.master_for(
        pubsub.sentinel_master, health_check_interval=10, retry=Retry(NoBackoff(), 0), **given, **options
    )
    return master
