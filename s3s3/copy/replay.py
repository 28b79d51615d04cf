"""One key's history, replayed to one destination: every version and delete marker it lacks, oldest first.

With `versions = all` a destination keeps the source's history of each key,
in the source's order: a version becomes a PUT (proven as every copy is, and
marked with `s3s3-source-version-id`), a delete marker becomes a DELETE (a
delete marker at the destination). Version IDs differ (no client can choose
them); the order and the bytes do not.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from s3s3.copy.limits import DEFAULT, Limits
from s3s3.outcome import Outcome
from s3s3.retry import DEFAULT_RETRY, RetryPolicy
from s3s3.store import Store, Version


class Lease(Protocol):
    """One replayer of a key at a time, across every listener and bucket sync (s3s3.state.leases)."""

    def hold(self, dest: str, key: str) -> AbstractContextManager[None]:
        """Wait for the key's lease at `dest` (a label), hold it while the context runs."""


class VersionMap(Protocol):
    """Which source version each destination version replays (s3s3.state.ledger), so no HEAD need say it."""

    def known(self, dest: Store, version_ids: Sequence[str]) -> Mapping[str, str]:
        """Destination version ID -> source version ID, for the IDs it knows."""

    def learn(self, dest: Store, pairs: Mapping[str, str]) -> None:
        """Record destination version ID -> source version ID."""


def history(store: Store, key: str) -> Iterator[Version]:
    """`key`'s versions and delete markers, newest first (ListObjectVersions under the key, that key only)."""
    raise NotImplementedError


def replay_key(
    source: Store,
    dest: Store,
    key: str,
    *,
    lease: Lease | None = None,
    known: VersionMap | None = None,
    verify_md5: bool = False,
    retry: RetryPolicy = DEFAULT_RETRY,
    limits: Limits = DEFAULT,
    histories: tuple[Sequence[Version], Sequence[Version]] | None = None,
) -> list[Outcome]:
    """Replay to `dest` every entry of `key`'s source history newer than the newest it holds; never raises.

    `histories` are the source's and the destination's (newest first) where a
    listing already gave them; else they are listed here, under the lease.
    Each Outcome names the source version it replayed (`version_id`): COPIED
    for a version, DELETED for a delete marker; FAILED stops the key's replay
    (what follows it waits for the next try, so the order holds).
    """
    raise NotImplementedError
