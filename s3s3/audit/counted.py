"""The requests an audit makes, counted at the store interface: listing pages, HEADs, GETs."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from s3s3.store import Body, ObjectInfo, Page, Store


class Requests:
    """How many requests of each kind the audit made, across all its stores and threads."""

    KINDS = ("list", "head", "get")

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, kind: str) -> None:
        with self._lock:
            self._counts[kind] += 1

    def as_dict(self) -> dict[str, int]:
        """Each kind's count (zeros included), by name."""
        with self._lock:
            return {kind: self._counts[kind] for kind in self.KINDS}


class Counted:
    """A Store whose listing pages, HEADs and GETs are counted in `requests`; everything else goes through."""

    def __init__(self, store: Store, requests: Requests) -> None:
        self.inner = store
        self.requests = requests

    def __getattr__(self, name: str) -> Any:  # endpoint, facts, label, transport, and what an audit never calls
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"Counted({self.inner!r})"

    def list_page(self, prefix: str, *, start_after: str = "", token: str | None = None, delimiter: str = "") -> Page:
        self.requests.add("list")
        return self.inner.list_page(prefix, start_after=start_after, token=token, delimiter=delimiter)

    def head(
        self, key: str, *, part_number: int | None = None, checksums: bool = False, version_id: str | None = None
    ) -> ObjectInfo | None:
        self.requests.add("head")
        return self.inner.head(key, part_number=part_number, checksums=checksums, version_id=version_id)

    def get(
        self,
        key: str,
        *,
        byte_range: tuple[int, int] | None = None,
        if_match: str | None = None,
        checksums: bool = False,
        version_id: str | None = None,
    ) -> tuple[ObjectInfo, Body]:
        self.requests.add("get")
        return self.inner.get(key, byte_range=byte_range, if_match=if_match, checksums=checksums,
                              version_id=version_id)  # fmt: skip
