"""`s3s3 status`: how far behind replication is; `s3s3 status KEY`: one key everywhere, and whether it is in sync."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import redis

from s3s3 import names
from s3s3.config import Config, Mode, Versions
from s3s3.copy import dest_key, identical
from s3s3.copy.replay import history, match
from s3s3.errors import StoreError
from s3s3.listen import backlog
from s3s3.retry import describe
from s3s3.state import rates
from s3s3.store import META_ETAG, META_VERSION, ObjectInfo, Store, Version, Versioning, open_store, store_name

logger = logging.getLogger(__name__)


def overview(config: Config, client: redis.Redis, *, as_json: bool = False) -> None:
    """Print the backlog (the picture /metrics gives) for a terminal, or as one JSON document."""
    now = time.time()
    found = backlog.read(client, config.pubsub)
    last = {endpoint.label: found.last_copied.get(endpoint.label) for endpoint in config.dests}
    limited = [rates.read(client, store) for store in _limited_stores(config)]
    if as_json:
        doc = found.as_dict() | {"target": config.pubsub.target, "last_copied": last, "now": now}
        doc["request_rates"] = {r.store: {"rate": r.rate, "most": r.most, "throttled": r.throttled} for r in limited}
        print(json.dumps(doc, indent=2, sort_keys=True))
        return
    pubsub = config.pubsub
    where = f"group {pubsub.group!r} on " if found.mode is Mode.STREAM else ""
    print(f"mode:            {found.mode} ({where}{pubsub.target!r} at {pubsub.safe_url})")
    if found.mode is Mode.STREAM:
        print(f"waiting:         {_count(found.waiting)} (not yet delivered to a listener)")
        print(f"pending:         {_count(found.pending)} (delivered, not yet acknowledged)")
        print(f"oldest pending:  {_age(found.oldest_pending_seconds)}")
        print(f"listeners:       {_count(found.consumers)}")
    elif found.mode is Mode.LIST:
        print(f"waiting:         {_count(found.waiting)} (in the queue)")
        print(f"pending:         {_count(found.pending)} (in the listeners' processing lists)")
    else:
        print(f"gaps:            {found.gaps} (periods a listener was disconnected; in {names.GAPS})")
    print(f"dead letters:    {found.dead_letters}" + (" (s3s3 failed lists them)" if found.dead_letters else ""))
    for label, when in last.items():
        seen = "never" if when is None else f"{_stamp(when)} ({_age(now - when)} ago)"
        print(f"last copy:       {label}: {seen}")
    for reading in limited:
        rate = "none lately" if reading.rate is None else f"{reading.rate:.1f}/s of {reading.most:g}/s"
        print(f"request rate:    {reading.store}: {rate}, {reading.throttled} throttled answer(s) (SlowDown, 503, 429)")


def _limited_stores(config: Config) -> list[str]:
    """The stores (by URL) with a max_requests_per_second, each once."""
    found = [store_name(e) for e in (config.source, *config.dests) if e.max_requests_per_second]
    return list(dict.fromkeys(found))


def sync_overview(summary: dict[str, Any] | None, tasks: str, *, as_json: bool = False) -> None:
    """Print the last --split sync's progress and totals (from s3s3.fleet.summary)."""
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return
    if summary is None:
        print(f"no split sync of these buckets in Redis ({tasks})")
        return
    started = _stamp(summary["started"])
    print(f"split:     {summary['split']}, {summary['ranges']} range(s), started {started}")
    print(f"ranges:    {summary['ranges_done']} done ({summary['ranges_failed']} with failures), "
          f"{summary['working']} being synced, {summary['waiting']} waiting")  # fmt: skip
    print(f"keys:      checked {summary['checked']}, copied {summary['copied']}, skipped {summary['skipped']}, "
          f"missing {summary['missing']}, failed {summary['failed']}, deleted {summary['deleted']}")  # fmt: skip
    print(f"bytes:     {summary['bytes']}")
    done = summary["ranges_done"] == summary["ranges"] and not summary["working"] and not summary["waiting"]
    print(f"state:     {'finished' if done else 'open'}")


def _count(value: int | None) -> str:
    return "unknown" if value is None else str(value)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "none"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _stamp(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def show(config: Config, key: str, *, check_timeout: float | None = None) -> bool:
    """Print the key's size, ETag and MD5 everywhere; True when every destination is in sync.

    With `check_timeout`, a store that does not accept a connection within
    that many seconds is given up on at once (each request is tried once).
    """
    source = open_store(config.source, check_timeout=check_timeout)
    try:
        _trying(source, key)
        src = source.head(key)
    except StoreError as e:
        print(f"{source.label}: {key!r}: cannot read: {describe(e)}")
        return False
    print(f"{source.endpoint.label}: {_describe(src) if src else 'not there'}  (source)")
    replaying = any(endpoint.versions is Versions.ALL for endpoint in config.dests)
    src_history = _show_history(source, key) if replaying or _versioned(source) else None
    in_sync = True
    for endpoint in config.dests:
        dest = open_store(endpoint, check_timeout=check_timeout)
        in_sync = _show_dest(source, dest, key, src) and in_sync
        if endpoint.versions is Versions.ALL and src_history is not None:
            in_sync = _show_replayed(source, dest, key, src_history) and in_sync
    return in_sync


def _versioned(store: Store) -> bool:
    try:
        return store.versioning() is not Versioning.OFF
    except StoreError:
        return False  # whether it keeps versions cannot be read: its current object was shown


def _show_history(store: Store, key: str, replays: dict[str, str] | None = None) -> list[Version] | None:
    """Print `key`'s versions at `store`, newest first (with what each replays, where `replays` says)."""
    try:
        entries = list(history(store, key))
    except StoreError as e:
        print(f"  versions: cannot list: {describe(e)}")
        return None
    print(f"  versions, newest first: {len(entries) or 'none'}")
    for entry in entries:
        when = _stamp(entry.last_modified.timestamp()) if entry.last_modified else "unknown time"
        what = "delete marker" if entry.delete_marker else f"size {entry.size}, ETag {entry.etag}"
        line = f"    {entry.version_id}  {when}  {what}"
        if replays is not None and not entry.delete_marker:
            line += f"  (replays {replays.get(entry.version_id) or 'nothing of the source'})"
        print(line)
    return entries


def _show_replayed(source: Store, dest: Store, key: str, src_history: list[Version]) -> bool:
    """A destination with versions = all: its history, what each version replays, and what it lacks."""
    target = dest_key(source, dest, key)
    try:
        replays = {
            e.version_id: ((info.metadata or {}).get(META_VERSION, "") if info else "")
            for e in history(dest, target) if not e.delete_marker
            for info in [dest.head(target, version_id=e.version_id)]
        }  # fmt: skip
    except StoreError as e:
        print(f"  versions: cannot read: {describe(e)}")
        return False
    dst_history = _show_history(dest, target, replays)
    if dst_history is None:
        return False
    found = match(src_history, dst_history, replays)
    missed = f"; {len(found.missed)} older source version(s) missing, never inserted" if found.missed else ""
    lacking = f"{len(found.replay)} source entr{'y' if len(found.replay) == 1 else 'ies'} to replay"
    print(f"  history: {lacking if found.replay else 'in sync'}{missed}")
    return not found.replay


def _trying(store: Store, key: str) -> None:
    endpoint = store.endpoint
    logger.debug("Reading %r at [%s] bucket %r at %s", key, endpoint.name, endpoint.bucket,
                 endpoint.endpoint_url or "AWS")  # fmt: skip


def _show_dest(source: Store, dest: Store, key: str, src: ObjectInfo | None) -> bool:
    target = dest_key(source, dest, key)
    try:
        _trying(dest, target)
        dst = dest.head(target)
    except StoreError as e:
        print(f"{dest.label}: {target!r}: cannot read: {describe(e)}")
        return False
    if src is None:
        verdict = "in sync (absent at both)" if dst is None else "extra (the source no longer has it)"
        ok = dst is None
    elif dst is None:
        verdict, ok = "missing", False
    else:
        ok = identical(src, dst)
        verdict = "in sync" if ok else "differs"
    print(f"{dest.endpoint.label}: {_describe(dst) if dst else 'not there'}  ({verdict})")
    return ok


def _describe(info: ObjectInfo) -> str:
    meta = info.metadata or {}
    parts = [f"{info.key!r}", f"size {info.size}", f"ETag {info.etag}", f"MD5 {info.md5 or 'unknown'}"]
    if META_ETAG in meta:
        parts.append(f"copied from ETag {meta[META_ETAG]}")
    return ", ".join(parts)
