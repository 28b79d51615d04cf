"""One version of one key, seen as if it were the key's current one: what a replay reads through the copy engine.

The copy engine reads "the object" with HEADs and GETs of a key (whole, by
ranges, by parts, again after a HEAD). A replayed version must be read the
same way, every request of that very version: this view of a store adds the
version ID to each HEAD and GET of the pinned key and passes everything else
through. A server-side copy cannot be pinned this way (CopyObject names its
source in a header the view never sees), so the engine is told not to make one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from s3s3.store.base import (
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
    Versioning,
    VersionPage,
)

if TYPE_CHECKING:
    from s3s3.config import Endpoint
    from s3s3.store.facts import Facts
    from s3s3.store.throttle import Throttle


class Pinned:
    """`store`, where each HEAD and GET of `key` is of version `version_id`."""

    def __init__(self, store: Store, key: str, version_id: str) -> None:
        self.store = store
        self.key = key
        self.version_id = version_id
        self.endpoint: Endpoint = store.endpoint
        self.facts: Facts = store.facts
        self.throttle: Throttle = store.throttle

    def __repr__(self) -> str:
        return f"Pinned({self.store!r}, {self.key!r}, {self.version_id!r})"

    @property
    def label(self) -> str:
        return self.store.label

    @property
    def transport(self) -> Transport:
        return self.store.transport

    def _version(self, key: str, version_id: str | None) -> str | None:
        return self.version_id if key == self.key and version_id is None else version_id

    def head(
        self, key: str, *, part_number: int | None = None, checksums: bool = False, version_id: str | None = None
    ) -> ObjectInfo | None:
        return self.store.head(
            key, part_number=part_number, checksums=checksums, version_id=self._version(key, version_id)
        )

    def get(
        self,
        key: str,
        *,
        byte_range: tuple[int, int] | None = None,
        if_match: str | None = None,
        checksums: bool = False,
        version_id: str | None = None,
    ) -> tuple[ObjectInfo, Body]:
        return self.store.get(
            key, byte_range=byte_range, if_match=if_match, checksums=checksums,
            version_id=self._version(key, version_id),
        )  # fmt: skip

    def put(
        self,
        key: str,
        body: bytes | Iterable[Buffer],
        *,
        length: int,
        md5: str | None,
        attrs: Attributes,
        checksum: Checksum | None = None,
    ) -> str:
        return self.store.put(key, body, length=length, md5=md5, attrs=attrs, checksum=checksum)

    def create_upload(self, key: str, attrs: Attributes) -> str:
        return self.store.create_upload(key, attrs)

    def upload_part(
        self, key: str, upload_id: str, number: int, body: bytes | Iterable[Buffer], *, length: int, md5: str | None
    ) -> str:
        return self.store.upload_part(key, upload_id, number, body, length=length, md5=md5)

    def complete_upload(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> str:
        return self.store.complete_upload(key, upload_id, parts)

    def abort_upload(self, key: str, upload_id: str) -> None:
        self.store.abort_upload(key, upload_id)

    def list_uploads(self, prefix: str) -> Iterator[Upload]:
        return self.store.list_uploads(prefix)

    def delete(self, key: str, *, version_id: str | None = None) -> str | None:
        return self.store.delete(key, version_id=version_id)

    def delete_many(self, keys: Sequence[str]) -> dict[str, str]:
        return self.store.delete_many(keys)

    def list_page(self, prefix: str, *, start_after: str = "", token: str | None = None, delimiter: str = "") -> Page:
        return self.store.list_page(prefix, start_after=start_after, token=token, delimiter=delimiter)

    def list_versions_page(
        self, prefix: str, *, key_marker: str = "", version_marker: str = "", max_keys: int = 1000
    ) -> VersionPage:
        return self.store.list_versions_page(
            prefix, key_marker=key_marker, version_marker=version_marker, max_keys=max_keys
        )

    def versioning(self) -> Versioning:
        return self.store.versioning()

    def object_lock(self) -> bool:
        return self.store.object_lock()

    def put_lock(self, key: str, lock: Lock, *, version_id: str | None = None) -> None:
        self.store.put_lock(key, lock, version_id=version_id)

    def copy_object(
        self, source_bucket: str, source_key: str, key: str, *, size: int, if_match: str | None, attrs: Attributes
    ) -> str:
        return self.store.copy_object(source_bucket, source_key, key, size=size, if_match=if_match, attrs=attrs)

    def get_tagging(self, key: str, *, version_id: str | None = None) -> str:
        return self.store.get_tagging(key, version_id=self._version(key, version_id))

    def put_tagging(self, key: str, tagging: str) -> None:
        self.store.put_tagging(key, tagging)

    def close(self) -> None:
        """The store is the caller's: it stays open."""
