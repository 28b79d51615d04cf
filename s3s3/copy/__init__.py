"""One key to one destination, intact or not at all: the copy engine, its plans and their proofs.

`copy_key` and `delete_key` (s3s3.copy.engine) are the way in; a plan
(s3s3.copy.plan) is carried out by the single-request executors
(s3s3.copy.put) or the multipart ones (s3s3.copy.parts), reading the source
through s3s3.copy.streams, within the process's budgets (s3s3.copy.limits).
This package knows the store interface and the ground below it, nothing of
Redis, the listener or the bucket sync: a `Guard` is handed to it.
"""

from __future__ import annotations

from s3s3.copy.engine import copy_key, delete_key
from s3s3.copy.job import Guard, Job, dest_key, source_key
from s3s3.copy.limits import Limits
from s3s3.copy.proof import identical, newer_at_source, read_md5

__all__ = [
    "Guard",
    "Job",
    "Limits",
    "copy_key",
    "delete_key",
    "dest_key",
    "identical",
    "newer_at_source",
    "read_md5",
    "source_key",
]
