"""The Python API, under the original s3s3's names so code written against it still reads right.

`ListenClient` and `BucketClient` build the two services from a Config
(s3s3.services); `upload` and `duplicate_bucket` copy between Stores
opened with `s3s3.store.open_store`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from s3s3.config import Endpoint, endpoint_from_options
from s3s3.copy import copy_key
from s3s3.logs import log_outcome
from s3s3.outcome import Outcome
from s3s3.services import BucketClient, ListenClient
from s3s3.store import Store
from s3s3.store.boto import create_client
from s3s3.sync.bucket import duplicate_bucket as _duplicate_bucket
from s3s3.sync.summary import Summary

__all__ = ["BucketClient", "ListenClient", "Summary", "create_connection", "duplicate_bucket", "upload"]

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def create_connection(connection_args: Mapping[str, Any] | Endpoint, *, pool_size: int = 10) -> S3Client:
    """A boto3 S3 client from a config section's options (a dict) or an Endpoint."""
    endpoint = (
        connection_args
        if isinstance(connection_args, Endpoint)
        else endpoint_from_options("connection", dict(connection_args))
    )
    return create_client(endpoint, pool_size=pool_size)


def upload(
    source: Store, dests: Store | Sequence[Store], key: str, *, verify_md5: bool = False
) -> list[Outcome]:
    """Copy one key from `source` to each destination; one Outcome per destination, never raises."""
    targets = list(dests) if isinstance(dests, Sequence) else [dests]
    outcomes = []
    for dest in targets:
        outcome = copy_key(source, dest, key, verify_md5=verify_md5)
        log_outcome(outcome)
        outcomes.append(outcome)
    return outcomes


def duplicate_bucket(
    source: Store, dests: Store | Sequence[Store], *, verify_md5: bool = False, workers: int = 16
) -> Summary:
    """Copy every key of `source` that is missing or changed at each destination."""
    targets = list(dests) if isinstance(dests, Sequence) else [dests]
    return _duplicate_bucket(source, targets, verify_md5=verify_md5, workers=workers)
