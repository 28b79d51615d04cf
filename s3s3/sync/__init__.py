"""The bucket sync: compare the source with each destination by listings, and copy what differs.

`duplicate_bucket` (s3s3.sync.bucket) walks the streamed diff of two
listings (s3s3.sync.diff) page by page; the ledger (s3s3.state.ledger)
decides what listings cannot. Key ranges (s3s3.sync.ranges) and the task
stream of a fleet (s3s3.sync.fleet) split one sync among processes; a lock
(s3s3.sync.lock) keeps two runs off the same buckets. This package never
imports the listener's.
"""

from __future__ import annotations

from s3s3.sync.bucket import duplicate_bucket
from s3s3.sync.options import SyncOptions
from s3s3.sync.summary import Summary

__all__ = ["Summary", "SyncOptions", "duplicate_bucket"]
