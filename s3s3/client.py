"""Clients that build everything from a Config: one for each service."""

from __future__ import annotations

from dataclasses import dataclass, field

from s3s3.bucket import Summary, duplicate_bucket
from s3s3.config import Config
from s3s3.listen import Listener
from s3s3.s3 import Bucket, open_bucket


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


class ListenClient(_Buckets):
    """Listens on the configured channel and copies each announced key: `listen()`."""

    def listen(self) -> int:
        """Run the listener until SIGTERM/SIGINT; return the exit code."""
        pubsub = self.config.pubsub
        listener = Listener(
            self.source,
            self.dests,
            pubsub.url,
            pubsub.channel,
            workers=self.workers or pubsub.workers,
        )
        return listener.run()


class BucketClient(_Buckets):
    """Syncs the source bucket onto every destination: `duplicate_bucket()`."""

    def duplicate_bucket(self, *, verify_md5: bool = False) -> Summary:
        """Copy every missing or changed key; return the summary."""
        return duplicate_bucket(
            self.source, self.dests, verify_md5=verify_md5, workers=self.workers or self.config.pubsub.workers
        )
