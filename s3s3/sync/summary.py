"""What a bucket sync did: counts per destination and in all, failures, and how it is reported.

The same Summary gives the printed line, `--json`, the exit code and the
Prometheus textfile (`--metrics-file`) that node_exporter serves.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from s3s3.outcome import Action, Outcome


class Tally(StrEnum):
    """What a bucket sync counts, per destination and in all, as --json and the textfile name it."""

    CHECKED = "checked"  # source keys compared with the destination
    COPIED = "copied"
    SKIPPED = "skipped"  # the destination already held the same bytes
    MISSING = "missing"  # gone from the source when its copy began
    FAILED = "failed"
    DELETED = "deleted"  # --delete: gone from the source, deleted at the destination
    ENQUEUED = "enqueued"  # --enqueue: announced for the listeners instead of copied
    ABORTED = "aborted"  # --abort-incomplete-uploads: incomplete multipart uploads aborted
    # versions = all (s3s3.sync.versions): counted per version, not per key
    VERSIONS = "versions_copied"  # versions replayed, each a PUT
    MARKERS = "markers_replayed"  # delete markers replayed, each a DELETE
    MISSED = "versions_missed"  # source versions older than the newest replayed, absent there: never inserted
    PURGED = "versions_deleted"  # propagate_version_deletes: versions whose source version is gone, deleted
    MAPPED = "versions_mapped"  # destination versions the ledger's version map named: no HEAD
    HEADED = "versions_headed"  # destination versions the map did not name: a HEAD each (then it does)
    LEASE_WAITS = "lease_waits"  # keys whose lease another replayer held first


# A copy engine outcome as the sync counts it: deletes and kept keys are none of its copies.
_TALLY_OF = {Action.COPIED: Tally.COPIED, Action.SKIPPED: Tally.SKIPPED, Action.MISSING: Tally.MISSING,
             Action.FAILED: Tally.FAILED}  # fmt: skip
# A replay's outcome (it names the source version): a version copied, a delete marker replayed.
_REPLAYED = {Action.COPIED: Tally.VERSIONS, Action.DELETED: Tally.MARKERS}
_BYTES = (Tally.COPIED, Tally.VERSIONS)  # the tallies whose sizes count as bytes copied


@dataclass
class Counts:
    """What happened at one destination (in a Summary: at all of them)."""

    tally: Counter[Tally] = field(default_factory=Counter)
    bytes: int = 0  # bytes copied

    def add(self, what: Tally, size: int = 0, n: int = 1) -> None:
        self.tally[what] += n
        if what in _BYTES:
            self.bytes += size

    def as_dict(self) -> dict[str, int]:
        """Every tally (zeros included) and the bytes, by name."""
        return {str(what): self.tally[what] for what in Tally} | {"bytes": self.bytes}

    @property
    def checked(self) -> int:
        return self.tally[Tally.CHECKED]

    @property
    def copied(self) -> int:
        return self.tally[Tally.COPIED]

    @property
    def skipped(self) -> int:
        return self.tally[Tally.SKIPPED]

    @property
    def missing(self) -> int:
        return self.tally[Tally.MISSING]

    @property
    def failed(self) -> int:
        return self.tally[Tally.FAILED]

    @property
    def deleted(self) -> int:
        return self.tally[Tally.DELETED]

    @property
    def enqueued(self) -> int:
        return self.tally[Tally.ENQUEUED]

    @property
    def aborted(self) -> int:
        return self.tally[Tally.ABORTED]


@dataclass
class Summary(Counts):
    """What a bucket sync did, for the printed summary, --json and the exit code: the totals, and more."""

    dry_run: bool = False
    retried: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (dest, key, error)
    errors: list[str] = field(default_factory=list)  # whole-destination problems (listing, refused deletes)
    destinations: dict[str, Counts] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, dest: str, what: Tally, size: int = 0, n: int = 1) -> None:
        """Add `n` keys (or versions) to `what` for `dest` and for the totals."""
        if not n:
            return
        with self._lock:
            self.add(what, size, n)
            self.destinations.setdefault(dest, Counts()).add(what, size, n)

    def outcome(self, outcome: Outcome) -> None:
        """Count a copy engine (or replay) outcome."""
        if outcome.action is Action.FAILED:
            with self._lock:
                self.failures.append((outcome.dest, outcome.key, outcome.error or ""))
        if outcome.version_id is not None and outcome.action in _REPLAYED:
            self.count(outcome.dest, _REPLAYED[outcome.action], outcome.size)
            return
        self.count(outcome.dest, _TALLY_OF.get(outcome.action, Tally.SKIPPED), outcome.size)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.errors or self.interrupted)

    def as_dict(self) -> dict[str, Any]:
        return {
            **super().as_dict(),
            "dry_run": self.dry_run,
            "retried": self.retried,
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
            "failures": [{"dest": d, "key": k, "error": e} for d, k, e in self.failures],
            "errors": list(self.errors),
            "destinations": {name: c.as_dict() for name, c in self.destinations.items()},
        }

    def line(self) -> str:
        verb = "would copy" if self.dry_run else "copied"
        text = (
            f"checked {self.checked} keys: {verb} {self.copied}, skipped {self.skipped} as identical, "
            f"missing {self.missing}, failed {self.failed}"
        )
        if self.deleted:
            text += f", {'would delete' if self.dry_run else 'deleted'} {self.deleted}"
        if self.enqueued:
            text += f", enqueued {self.enqueued}"
        if self.aborted:
            text += f", {'would abort' if self.dry_run else 'aborted'} {self.aborted} incomplete upload(s)"
        versions, markers, purged = (self.tally[t] for t in (Tally.VERSIONS, Tally.MARKERS, Tally.PURGED))
        if versions or markers:
            verb = "would replay" if self.dry_run else "replayed"
            text += f", {verb} {versions} version(s) and {markers} delete marker(s)"
        if self.tally[Tally.MISSED]:
            text += f", {self.tally[Tally.MISSED]} older version(s) missed"
        if purged:
            text += f", {'would delete' if self.dry_run else 'deleted'} {purged} version(s) gone at the source"
        if self.retried:
            text += f", retried {self.retried} dead-lettered"
        text += f"; {self.bytes} bytes in {self.seconds:.1f}s"
        return text + (" (interrupted)" if self.interrupted else "")


def write_textfile(path: str, summary: Summary) -> None:
    """The summary as a Prometheus textfile (for node_exporter), replaced atomically."""
    # prometheus-client: only for those who ask (s3s3bucket's start-up is most of a no-op run).
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()
    per_dest = Gauge("s3s3_bucket_keys", "Keys (versions, for versions_* and markers_*) by destination and outcome "
                     "in the last sync.", ["dest", "outcome"], registry=registry)  # fmt: skip
    for dest, counts in summary.destinations.items():
        for what in Tally:
            per_dest.labels(dest, str(what)).set(counts.tally[what])
    Gauge("s3s3_bucket_bytes_copied", "Bytes copied by the last sync.", registry=registry).set(summary.bytes)
    Gauge("s3s3_bucket_seconds", "Duration of the last sync.", registry=registry).set(summary.seconds)
    Gauge("s3s3_bucket_ok", "1 if the last sync had no failure.", registry=registry).set(int(summary.ok))
    ended = Gauge("s3s3_bucket_last_run_timestamp_seconds", "When the last sync ended.", registry=registry)
    ended.set_to_current_time()
    write_to_textfile(path, registry)
