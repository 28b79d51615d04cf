"""The S3 boundary: one interface (`Store`), two transports behind it, one function choosing between them.

`s3s3.store.probes` holds the questions a copy asks of a store (MD5 ETags,
Content-MD5 enforcement, part sizes); nothing outside this package touches
a client.
"""

from __future__ import annotations

from s3s3.store.base import (
    CHECKSUM_BYTES,
    META_ETAG,
    META_MD5,
    META_MD5CHKSUM,
    META_MTIME,
    META_VERSION,
    Attributes,
    Body,
    Buffer,
    Checksum,
    Lock,
    ObjectInfo,
    Page,
    Store,
    Transport,
    Upload,
    Version,
    Versioning,
    VersionPage,
    b64_md5,
    is_md5,
    list_objects,
    list_versions,
    md5_from_b64,
    multipart_etag,
    store_error,
    strip_etag,
)
from s3s3.store.connect import open_store, transport_for
from s3s3.store.facts import Fact, Facts, store_name

__all__ = [
    "CHECKSUM_BYTES",
    "META_ETAG",
    "META_MD5",
    "META_MD5CHKSUM",
    "META_MTIME",
    "META_VERSION",
    "Attributes",
    "Body",
    "Buffer",
    "Checksum",
    "Fact",
    "Facts",
    "Lock",
    "ObjectInfo",
    "Page",
    "Store",
    "Transport",
    "Upload",
    "Version",
    "VersionPage",
    "Versioning",
    "b64_md5",
    "is_md5",
    "list_objects",
    "list_versions",
    "md5_from_b64",
    "multipart_etag",
    "open_store",
    "store_error",
    "store_name",
    "strip_etag",
    "transport_for",
]
