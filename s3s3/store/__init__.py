"""The S3 boundary: one interface (`Store`), two transports behind it, one function choosing between them."""

from __future__ import annotations

from s3s3.store.base import (
    META_ETAG,
    META_MD5,
    META_MTIME,
    Attributes,
    Body,
    Buffer,
    ObjectInfo,
    Page,
    Store,
    Upload,
    b64_md5,
    is_md5,
    list_objects,
    multipart_etag,
    strip_etag,
)
from s3s3.store.connect import open_store, store_name, transport_for
from s3s3.store.facts import Fact, Facts

__all__ = [
    "META_ETAG",
    "META_MD5",
    "META_MTIME",
    "Attributes",
    "Body",
    "Buffer",
    "Fact",
    "Facts",
    "ObjectInfo",
    "Page",
    "Store",
    "Upload",
    "b64_md5",
    "is_md5",
    "list_objects",
    "multipart_etag",
    "open_store",
    "store_name",
    "strip_etag",
    "transport_for",
]
