"""The two SeaweedFS servers (source and destination) and the Redis a benchmark runs against."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tests.servers.base import Server
from tests.servers.redis import RedisServer
from tests.servers.seaweedfs import start_seaweedfs


@dataclass
class Stores:
    """Everything a run talks to; `stop()` ends every process."""

    source: Server
    dest: Server
    redis: RedisServer | None = None

    def stop(self) -> None:
        """Stop all servers at once: a SeaweedFS takes ~2 s to shut down."""
        with ThreadPoolExecutor(3) as pool:
            for server in (self.source, self.dest):
                pool.submit(server.stop)
            if self.redis is not None:
                pool.submit(self.redis.stop)


def start_stores(workdir: str, *, with_redis: bool) -> Stores:
    """Start source and destination SeaweedFS side by side (and redis-server if asked) under workdir."""
    with ThreadPoolExecutor(2) as pool:
        source = pool.submit(start_seaweedfs, os.path.join(workdir, "source"), access_key="bench-src",
                             secret_key="bench-src-secret")
        dest = pool.submit(start_seaweedfs, os.path.join(workdir, "dest"), access_key="bench-dst",
                           secret_key="bench-dst-secret")
        started = [f.result() if f.exception() is None else f.exception() for f in (source, dest)]
    failed = [s for s in started if isinstance(s, BaseException)]
    servers = [s for s in started if isinstance(s, Server)]
    if failed:
        for server in servers:
            server.stop()
        raise failed[0]
    stores = Stores(source=servers[0], dest=servers[1])
    if with_redis:
        redis_dir = os.path.join(workdir, "redis")
        os.makedirs(redis_dir, exist_ok=True)
        try:
            stores.redis = RedisServer(redis_dir).start()
        except BaseException:
            stores.stop()
            raise
    return stores


def drop_bucket(server: Server, bucket: str) -> None:
    """Delete a bucket and everything in it (SeaweedFS deletes non-empty buckets whole)."""
    server.client().delete_bucket(Bucket=bucket)
