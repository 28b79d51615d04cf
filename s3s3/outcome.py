"""What happened to one key at one destination: the one outcome every copy, skip or delete ends in."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    """The outcome's kind, as logs, metrics and summaries name it."""

    COPIED = "copied"
    SKIPPED = "skipped"  # the destination already held the same bytes
    MISSING = "missing"  # gone from the source when its copy began
    FAILED = "failed"  # given up on; kept in the dead-letter stream by the listener
    DELETED = "deleted"  # removed at the destination (propagate_deletes, --delete)
    KEPT = "kept"  # a delete announced but not done (propagate_deletes off, or still at the source)


@dataclass(frozen=True)
class Outcome:
    """What happened to one key at one destination."""

    key: str
    dest: str  # the destination's label, "section:bucket"
    action: Action
    size: int = 0
    seconds: float = 0.0
    md5: str | None = None
    source_etag: str | None = None
    dest_etag: str | None = None
    error: str | None = None  # why it failed, or why a delete was not done
    attempts: int = 1
    version_id: str | None = None  # with versions = all: the source version (or delete marker) this replayed

    @property
    def ok(self) -> bool:
        return self.action is not Action.FAILED
