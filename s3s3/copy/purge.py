"""A version deleted for good at the source, deleted from a destination that keeps every version.

A backup keeps what the source lost: a version deleted by its ID (S3's
ObjectRemoved:Delete naming a versionId) stays at a `versions = all`
destination unless it says `propagate_version_deletes = true`. Then the
destination's copy of that version goes too: found by the version map
(s3s3.state.ledger) or, for the versions it does not know, by a HEAD of each
(their `s3s3-source-version-id`), and deleted by its own version ID, under
the key's lease (s3s3.copy.replay), once the source's own history shows the
version gone. Versions only: a delete marker removed at the source (an
undelete) stays in the backup's history, which still shows the key deleted then.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from functools import partial

from s3s3.copy.job import dest_key
from s3s3.copy.replay import Lease, Replayed, VersionMap, history, learn_map, place
from s3s3.outcome import Action, Outcome
from s3s3.retry import DEFAULT_RETRY, Budget, RetryPolicy, describe
from s3s3.retry import call as retry_call
from s3s3.store import Store


def purge_version(
    source: Store,
    dest: Store,
    key: str,
    version_id: str,
    *,
    lease: Lease | None = None,
    known: VersionMap | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> Outcome:
    """Delete at `dest` every copy of `key`'s source version `version_id`, once the source lacks it; never raises.

    DELETED when a copy went, KEPT (with why) when the source still lists
    the version or `dest` holds no copy of it, FAILED otherwise. The outcome
    names the source version.
    """
    budget = Budget(retry)
    target = dest_key(source, dest, key)
    held: AbstractContextManager[None] = lease.hold(place(dest), target) if lease is not None else nullcontext()
    try:
        with held:
            what = f"the versions of {key!r}"
            at_source = retry_call(lambda: list(history(source, key)), budget, what=f"{what} at {source.label}")
            if any(entry.version_id == version_id for entry in at_source):
                return _outcome(key, dest, Action.KEPT, budget, version_id, "that version is still at the source")
            entries = retry_call(lambda: list(history(dest, target)), budget, what=f"{what} at {dest.label}")
            versions = [entry for entry in entries if not entry.delete_marker]
            mapping = learn_map(dest, target, versions, known, budget, Replayed())
            copies = [ours for ours, theirs in mapping.items() if theirs == version_id]
            if not copies:
                why = f"no version here replays source version {version_id!r}"
                return _outcome(key, dest, Action.KEPT, budget, version_id, why)
            for copy in copies:
                retry_call(partial(dest.delete, target, version_id=copy), budget, what=f"deleting {target!r} {copy}")
    except Exception as e:  # whatever broke, the key's announcement must go on to be kept or retried
        return _outcome(key, dest, Action.FAILED, budget, version_id, describe(e))
    return _outcome(key, dest, Action.DELETED, budget, version_id)


def _outcome(key: str, dest: Store, action: Action, budget: Budget, version_id: str, why: str | None = None) -> Outcome:
    seconds = time.monotonic() - budget.started
    return Outcome(key, dest.label, action, seconds=seconds, error=why, version_id=version_id)
