"""`s3s3bucket --delete`: keys at a destination that the source no longer has, deleted in batches.

Bounded by --max-delete: past it nothing at all is deleted at that
destination, and the run says so and exits 1 (a source listed empty by
mistake must not empty its backup).
"""

from __future__ import annotations

import logging
import threading

import redis

from s3s3.logs import log_outcome
from s3s3.outcome import Action, Outcome
from s3s3.retry import Budget, describe
from s3s3.retry import call as retry_call
from s3s3.state import ledger
from s3s3.store import ObjectInfo, Store
from s3s3.sync.diff import batched
from s3s3.sync.options import SyncOptions
from s3s3.sync.summary import Summary, Tally

logger = logging.getLogger(__name__)

DELETE_BATCH = 1000  # keys per DeleteObjects, S3's limit


class Deletes:
    """Keys at one destination the source no longer has, sent as DeleteObjects batches."""

    def __init__(
        self, dest: Store, options: SyncOptions, summary: Summary, stop: threading.Event, client: redis.Redis | None
    ) -> None:
        self.dest = dest
        self.options = options
        self.summary = summary
        self.stop = stop
        self.client = client  # the ledger forgets what is deleted
        self.pending: list[str] = []
        self.refused = False

    def add(self, dst: ObjectInfo) -> None:
        if not self.options.delete or self.refused:
            return
        self.pending.append(dst.key)
        limit = self.options.max_delete
        if limit and len(self.pending) > limit:
            self.refused = True
            message = (
                f"{self.dest.endpoint.label}: refusing to delete more than {limit} keys the source no longer has "
                f"(raise --max-delete, or 0 for no limit); deleted none"
            )
            logger.error("%s", message)
            self.summary.errors.append(message)
            self.pending = []
        elif not limit and len(self.pending) >= DELETE_BATCH:
            self.flush()

    def finish(self) -> None:
        if not self.refused and not self.stop.is_set():
            self.flush()

    def flush(self) -> None:
        label = self.dest.endpoint.label
        for batch in batched(iter(self.pending), DELETE_BATCH):
            if self.options.dry_run:
                for key in batch:
                    print(f"would delete {key!r} at {label}", flush=True)
                    self.summary.count(label, Tally.DELETED)
                continue
            try:
                failed = retry_call(
                    lambda b=batch: self.dest.delete_many(b),  # type: ignore[misc]
                    Budget(self.options.retry), what=f"deleting {len(batch)} keys at {label}",
                )  # fmt: skip
            except Exception as e:
                failed = {k: describe(e) for k in batch}
            for key in batch:
                if key in failed:
                    self.summary.outcome(Outcome(key, label, Action.FAILED, error=f"delete: {failed[key]}"))
                else:
                    log_outcome(Outcome(key, label, Action.DELETED))
                    self.summary.count(label, Tally.DELETED)
            if self.client is not None:
                ledger.forget(self.client, self.dest, [k for k in batch if k not in failed])
        self.pending = []
