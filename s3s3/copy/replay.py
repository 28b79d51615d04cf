"""One key's history, replayed to one destination: every version and delete marker it lacks, oldest first.

With `versions = all` a destination keeps the source's history of each key,
in the source's order: a version becomes a PUT (proven as every copy is, and
marked with `s3s3-source-version-id`), a delete marker becomes a DELETE (a
delete marker at the destination). Version IDs differ (no client can choose
them); the order and the bytes do not.

Which destination entry replays which source entry: a version says so in its
`s3s3-source-version-id` (one HEAD, learnt once and kept in the ledger's
version map); a delete marker carries no metadata, so a run of markers after
a matched entry matches the same-length run after its source entry (and at
the start of a history, likewise). `match` decides from the two histories and
the map alone, a pure function; `replay` lists, learns and writes, under the
key's lease.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from itertools import takewhile
from typing import Protocol

from s3s3.config import Versions
from s3s3.copy.engine import copy_key
from s3s3.copy.job import dest_key
from s3s3.copy.limits import DEFAULT, Limits
from s3s3.errors import ConfigError, LeaseError, StoreError
from s3s3.logs import log_outcome
from s3s3.outcome import Action, Outcome
from s3s3.retry import DEFAULT_RETRY, Budget, RetryPolicy, describe
from s3s3.retry import call as retry_call
from s3s3.store import META_VERSION, Store, Version, Versioning, list_versions, store_name
from s3s3.store.pinned import Pinned

logger = logging.getLogger(__name__)


class Lease(Protocol):
    """One replayer of a key at a time, across every listener and bucket sync (s3s3.state.leases)."""

    def hold(self, dest: str, key: str) -> AbstractContextManager[None]:
        """Wait for the key's lease at `dest` (where the bucket lives, `place(store)`), hold it while the context
        runs; LeaseError when another holds it past the wait."""


class VersionMap(Protocol):
    """Which source version each destination version replays (s3s3.state.ledger), so no HEAD need say it.

    A destination version that replays nothing (written before s3s3, or by
    someone else) maps to "".
    """

    def known(self, dest: Store, key: str, version_ids: Sequence[str]) -> Mapping[str, str]:
        """Destination version ID -> source version ID, for the IDs of `key` at `dest` it knows."""

    def learn(self, dest: Store, key: str, pairs: Mapping[str, str]) -> None:
        """Record destination version ID -> source version ID for `key` at `dest`."""


# ---------------------------------------------------------------------------------------------- the matching


@dataclass(frozen=True)
class Match:
    """How one key's destination history stands against its source's, and what to replay."""

    replay: list[Version]  # source entries newer than the newest the destination represents, oldest first
    missed: list[Version]  # source entries older than that one, absent at the destination: never inserted
    gone: list[Version]  # destination versions (not markers) whose source version was deleted for good
    by_position: dict[str, str] = field(default_factory=dict)  # destination marker ID -> source marker ID


def match(source: Sequence[Version], dest: Sequence[Version], known: Mapping[str, str]) -> Match:
    """Match one key's histories (each newest first, as listed) by the version map `known`, then markers by
    position; say what the destination lacks.

    Destination entries that match nothing are left alone; a source entry
    missing at the destination below the newest one it represents is
    `missed`, never written (the destination's order cannot be changed).
    """
    src, dst = list(reversed(source)), list(reversed(dest))  # oldest first
    index = {entry.version_id: i for i, entry in enumerate(src)}
    pairs: dict[int, int] = {}  # destination position -> source position
    last = -1
    for j, entry in enumerate(dst):
        i = index.get(known.get(entry.version_id) or "", -1)
        # Increasing on both sides: a second copy of one source version (a replay cut short and done
        # again) or an entry out of order matches nothing.
        if i > last and src[i].delete_marker == entry.delete_marker:
            pairs[j] = i
            last = i
    by_position: dict[str, str] = {}
    anchors, matched = set(pairs), set(pairs.values())
    for j, i in [(-1, -1), *sorted(pairs.items())]:
        j, i = j + 1, i + 1
        while j < len(dst) and j not in anchors and i < len(src) and src[i].delete_marker and i not in matched:
            # A version matching nothing (someone else's, or one whose source version is gone) and a marker
            # the map names as another's are not part of the run: they are left alone.
            if dst[j].delete_marker and dst[j].version_id not in known:
                pairs[j] = i
                by_position[dst[j].version_id] = src[i].version_id
                i += 1
            j += 1
    newest = max(pairs.values(), default=-1)
    represented = set(pairs.values())
    gone = [e for e in dst if not e.delete_marker and known.get(e.version_id) and known[e.version_id] not in index]
    return Match(
        replay=src[newest + 1 :],
        missed=[e for i, e in enumerate(src[: max(newest, 0)]) if i not in represented],
        gone=gone,
        by_position=by_position,
    )


# ---------------------------------------------------------------------------------------------- the replay


@dataclass
class Replayed:
    """What one key's replay did: its outcomes, and what it cost to learn the map."""

    outcomes: list[Outcome] = field(default_factory=list)
    match: Match | None = None
    mapped: int = 0  # destination versions the version map named
    headed: int = 0  # HEADs of destination versions it did not


def history(store: Store, key: str) -> Iterator[Version]:
    """`key`'s versions and delete markers, newest first (ListObjectVersions under the key, that key only)."""
    # `key` sorts first of every key it prefixes: its entries are the first listed, and the listing stops after.
    return takewhile(lambda entry: entry.key == key, list_versions(store, key))


def place(store: Store) -> str:
    """Where a bucket lives, as leases name it: the same across every process's configuration."""
    return f"{store_name(store.endpoint)}/{store.endpoint.bucket}"


def learn_map(
    dest: Store,
    target: str,
    entries: Sequence[Version],
    known: VersionMap | None,
    budget: Budget,
    done: Replayed,
    *,
    found: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Destination version ID -> source version ID for `entries`: from the map (or what it already said, `found`),
    else a HEAD of each version, which the map learns."""
    if found is None:
        ids = [e.version_id for e in entries]
        found = dict(known.known(dest, target, ids)) if known is not None and ids else {}
        done.mapped += len(found)
    learnt: dict[str, str] = {}
    for entry in entries:
        if entry.delete_marker or entry.version_id in found:
            continue
        info = retry_call(lambda e=entry: dest.head(target, version_id=e.version_id), budget,  # type: ignore[misc]
                          what=f"the HEAD of {target!r} version {entry.version_id}")  # fmt: skip
        done.headed += 1
        learnt[entry.version_id] = (info.metadata or {}).get(META_VERSION, "") if info is not None else ""
    if learnt and known is not None:
        known.learn(dest, target, learnt)
    return {**found, **learnt}


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
    (what follows it waits for the next try, so the order holds). A key with
    nothing to replay is one SKIPPED outcome.
    """
    done = replay(source, dest, key, lease=lease, known=known, verify_md5=verify_md5, retry=retry, limits=limits,
                  histories=histories)  # fmt: skip
    return done.outcomes or [Outcome(key, dest.label, Action.SKIPPED)]


def replay(
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
) -> Replayed:
    """`replay_key`, saying also what it learnt and what it cost (the bucket sync counts it); never raises."""
    done = Replayed()
    budget = Budget(retry)
    target = dest_key(source, dest, key)
    started = time.monotonic()
    try:
        with lease.hold(place(dest), target) if lease is not None else nullcontext():
            if histories is None:
                what = f"the versions of {key!r}"
                src = retry_call(lambda: list(history(source, key)), budget, what=f"{what} at {source.label}")
                dst = retry_call(lambda: list(history(dest, target)), budget, what=f"{what} at {dest.label}")
            else:
                src, dst = list(histories[0]), list(histories[1])
            mapping = learn_map(dest, target, [e for e in dst if not e.delete_marker], known, budget, done)
            done.match = match(src, dst, mapping)
            if done.match.missed:
                logger.warning("%d version(s) of %r older than the newest at %s are missing there; they are not "
                               "inserted into its past", len(done.match.missed), key, dest.label)  # fmt: skip
            written = _write(source, dest, key, done, verify_md5=verify_md5, retry=retry, limits=limits)
            if known is not None:
                _learn_written(dest, target, dst, written, done.match, known, budget)
    except Exception as e:
        if not isinstance(e, StoreError | LeaseError):
            logger.exception("Unexpected error replaying %r to %s", key, dest.label)
        failed = Outcome(key, dest.label, Action.FAILED, seconds=time.monotonic() - started, error=describe(e))
        log_outcome(failed)
        done.outcomes.append(failed)
    return done


def _write(
    source: Store, dest: Store, key: str, done: Replayed, *, verify_md5: bool, retry: RetryPolicy, limits: Limits
) -> list[tuple[Version, str | None]]:
    """Write each entry to replay, oldest first; stop at the first that fails. Returns (entry, marker ID) written."""
    assert done.match is not None
    target = dest_key(source, dest, key)
    written: list[tuple[Version, str | None]] = []
    for entry in done.match.replay:
        if entry.delete_marker:
            started = time.monotonic()
            marker = retry_call(lambda: dest.delete(target), Budget(retry), what=f"a delete marker on {target!r}")
            outcome = Outcome(key, dest.label, Action.DELETED, seconds=time.monotonic() - started,
                              version_id=entry.version_id)  # fmt: skip
            written.append((entry, marker))
        else:
            outcome = copy_key(Pinned(source, key, entry.version_id), dest, key, verify_md5=verify_md5,
                               check_dest=False, retry=retry, limits=limits, server_side=False)  # fmt: skip
            outcome = replace(outcome, version_id=entry.version_id)
            if outcome.action is Action.COPIED:
                written.append((entry, None))
        log_outcome(outcome)
        done.outcomes.append(outcome)
        if outcome.action is Action.FAILED:
            break  # what follows waits for the next try: the order holds
    return written


def _learn_written(
    dest: Store,
    target: str,
    before: Sequence[Version],
    written: Sequence[tuple[Version, str | None]],
    matched: Match,
    known: VersionMap,
    budget: Budget,
) -> None:
    """Teach the map the destination IDs of what was just written, and of markers matched by position.

    A PUT's version ID is not handed up by the copy engine: one listing of
    the key says it. Where that listing shows anything but the entries seen
    before and those written after them, nothing is learnt: the next run
    HEADs those versions instead.
    """
    pairs = dict(matched.by_position)
    if any(marker is None for _, marker in written):
        after = retry_call(lambda: list(history(dest, target)), budget, what=f"the versions of {target!r}")
        new = list(reversed(after[: max(len(after) - len(before), 0)]))
        same_past = [e.version_id for e in after[len(new) :]] == [e.version_id for e in before]
        if same_past and len(new) == len(written) and all(
            d.delete_marker == s.delete_marker and (marker is None or marker == d.version_id)
            and (d.delete_marker or d.size == s.size)
            for d, (s, marker) in zip(new, written, strict=True)
        ):  # fmt: skip
            pairs.update({d.version_id: s.version_id for d, (s, _) in zip(new, written, strict=True)})
    else:
        pairs.update({marker: s.version_id for s, marker in written if marker})
    if pairs:
        known.learn(dest, target, pairs)


# ---------------------------------------------------------------------------------------------- start-up


def check_versioning(source: Store, dests: Sequence[Store]) -> list[Store]:
    """The destinations that replay history this run: those with `versions = all`, if the source keeps versions.

    Raises ConfigError (exit 2) naming the section and the bucket when such a
    destination's bucket does not keep versions (Enabled); a source whose
    versioning was never on makes them work as `latest` for the run, with
    one warning. Asks nothing of any store when no destination has
    `versions = all`.
    """
    replaying = [d for d in dests if d.endpoint.versions is Versions.ALL]
    if not replaying:
        return []
    problems = []
    for dest in replaying:
        state = _versioning(dest)
        if state is not None and state is not Versioning.ENABLED:
            ep = dest.endpoint
            problems.append(f"[{ep.name}] versions = all: bucket {ep.bucket!r} has versioning {state}: enable "
                            f"versioning on bucket {ep.bucket!r} or set versions = latest in [{ep.name}]")  # fmt: skip
    if problems:
        raise ConfigError(*problems)
    if _versioning(source) is Versioning.OFF:
        names = ", ".join(f"[{d.endpoint.name}]" for d in replaying)
        logger.warning("The source bucket %r keeps no versions: %s copy its current objects only (as versions "
                       "= latest) this run", source.endpoint.bucket, names)  # fmt: skip
        return []
    return replaying


def _versioning(store: Store) -> Versioning | None:
    """The bucket's versioning, or None (said in a warning) where the store cannot say now."""
    try:
        return store.versioning()
    except StoreError as e:
        logger.warning("Cannot read the versioning of bucket %r at %s: %s", store.endpoint.bucket, store.label,
                       describe(e))  # fmt: skip
        return None
