"""The services' former module name, kept so code that imports `s3s3.client` still runs: use s3s3.api."""

from __future__ import annotations

from s3s3.services import BucketClient, ListenClient

__all__ = ["BucketClient", "ListenClient"]
