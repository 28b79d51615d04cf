"""s3s3: replicate objects from one S3-compatible store to others, event by event and bucket by bucket."""

from __future__ import annotations

__version__ = "1.0.0"

__all__ = ["__version__"]
