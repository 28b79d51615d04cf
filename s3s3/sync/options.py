"""What one bucket sync may do, from s3s3bucket's command line (or the Python API)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from s3s3.copy.limits import DEFAULT, Limits
from s3s3.retry import RetryPolicy
from s3s3.sync.diff import KeyFilter


@dataclass(frozen=True)
class SyncOptions:
    """What a bucket sync may do, from s3s3bucket's command line."""

    keys: KeyFilter = field(default_factory=KeyFilter)
    dry_run: bool = False
    delete: bool = False
    max_delete: int = 1000  # 0: no limit
    verify_md5: bool = False
    workers: int = 16
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    enqueue: Callable[[str], None] | None = None  # announce keys instead of copying them
    retry_failed: bool = True  # retry the dead-letter stream's keys first (never in --reverse: they go forward)
    abort_uploads_older_than: float | None = None  # seconds: abort incomplete uploads this old (s3s3.sync.uploads)
    ledger_days: int = 0  # [pubsub] ledger_days: the ledger expires this long after its last write (0: never)
    limits: Limits = DEFAULT  # the process's bandwidth, memory and stream budgets, shared by every copy
