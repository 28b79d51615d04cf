"""Clients that build everything from a Config: one for each service."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

from s3s3.bucket import Summary, duplicate_bucket
from s3s3.config import Config
from s3s3.copy import RetryPolicy, copy_key
from s3s3.delivery import describe, make_delivery
from s3s3.listen import Listener, connect_redis
from s3s3.metrics import Metrics, MetricsServer
from s3s3.s3 import Bucket, open_bucket

logger = logging.getLogger(__name__)


@dataclass
class _Buckets:
    config: Config
    workers: int | None = None
    source: Bucket = field(init=False)
    dests: list[Bucket] = field(init=False)

    def __post_init__(self) -> None:
        pool = self.workers or self.config.pubsub.workers
        self.source = open_bucket(self.config.source, pool_size=pool * 2)
        self.dests = [open_bucket(d, pool_size=pool * 2) for d in self.config.dests]

    @property
    def retry(self) -> RetryPolicy:
        pubsub = self.config.pubsub
        return RetryPolicy(attempts=pubsub.max_attempts, max_seconds=pubsub.max_retry_seconds)


class ListenClient(_Buckets):
    """Listens for announcements and copies each key: `listen()`."""

    def listener(self) -> Listener:
        """The Listener this configuration describes (not yet running)."""
        pubsub = self.config.pubsub
        client = connect_redis(pubsub.url)
        return Listener(
            self.source,
            self.dests,
            client,
            make_delivery(client, pubsub),
            workers=self.workers or pubsub.workers,
            copy=functools.partial(copy_key, retry=self.retry),
            metrics=Metrics(),
            label=describe(pubsub),
        )

    def listen(self) -> int:
        """Run the listener until SIGTERM/SIGINT; return the exit code."""
        listener = self.listener()
        server = None
        if self.config.metrics.port:
            address = (self.config.metrics.bind, self.config.metrics.port)
            server = MetricsServer(address, listener.metrics, listener.healthy, listener.refresh_gauges)
            server.start()
            logger.info("Serving /metrics and /healthz on http://%s:%d", *server.server_address[:2])
        try:
            return listener.run()
        finally:
            if server is not None:
                server.shutdown()


class BucketClient(_Buckets):
    """Syncs the source bucket onto every destination: `duplicate_bucket()`."""

    def duplicate_bucket(self, *, verify_md5: bool = False) -> Summary:
        """Copy every missing or changed key; return the summary."""
        return duplicate_bucket(
            self.source, self.dests, verify_md5=verify_md5, workers=self.workers or self.config.pubsub.workers
        )
