"""Every Redis key, channel, stream and group name s3s3 uses, in one place."""

from __future__ import annotations

DEFAULT_URL = "redis://localhost:6379/0"  # the Redis of [pubsub] url when none is given
DEFAULT_CHANNEL = "backup"  # pubsub mode: the channel producers PUBLISH announcements on
DEFAULT_STREAM = "s3s3:events"  # stream mode: the stream announcements are appended to
DEFAULT_GROUP = "s3s3"  # stream mode: the consumer group all listeners share
DEFAULT_LIST = "s3s3:queue"  # list mode: the list producers RPUSH announcements onto
STREAM_FIELD = "message"  # stream mode: the entry field holding the announcement
STREAM_MAXLEN = 1_000_000  # stream mode: entries kept (approximately) before the oldest go
DEADLETTER = "s3s3:failed"  # stream of keys that failed beyond retries, and rejected messages
DEADLETTER_MAXLEN = 100_000  # dead-letter entries kept (approximately)
GAPS = "s3s3:gaps"  # stream of (from, to) periods when a pubsub listener was disconnected
GAPS_MAXLEN = 10_000  # gap entries kept (approximately)
LAST_COPIED = "s3s3:last-copied"  # sorted set: destination, scored by when its last copy landed (Unix seconds)
RANGES_PREFIX = "s3s3:ranges:"  # + hash of source, prefix and N: the split points the first --shard I/N computed
SYNC_PREFIX = "s3s3:sync:"  # + hash of the buckets: a --split sync, as {...}:tasks (stream) and {...}:summary (hash)
SYNC_GROUP = "s3s3bucket"  # the consumer group of --work processes on a sync's task stream
LOCK_PREFIX = "s3s3:lock:"  # + source and destinations: held by the running bucket sync
LEDGER_PREFIX = "s3s3:ledger:"  # + destination: hash key -> what s3s3 copied there
FACTS_PREFIX = "s3s3:facts:"  # + hash of a store's URL: what s3s3 learnt of that store (s3s3.store.facts)
RATE_PREFIX = "s3s3:rate:"  # + hash of a store's URL: its shared request rate and throttled answers (s3s3.state.rates)
LEASE_PREFIX = "s3s3:lease:"  # + hash of destination bucket and key: the token of the one replayer of that key
VERSIONS_PREFIX = "s3s3:versions:"  # + destination: hash destination version ID -> the source version it replays
COPYING_PREFIX = "s3s3:copying:"  # + hash of destination and key: copies of it running now (s3s3.overlap)


def processing_list(queue: str, consumer: str) -> str:
    """List mode: the list holding what `consumer` took from `queue` and has not finished.

    `{queue}` is a hash tag: on a Redis Cluster the list is in the queue's slot,
    as BLMOVE between the two needs (a queue with a tag of its own lends it).
    """
    return f"{queue}:processing:{consumer}" if "{" in queue else f"{{{queue}}}:processing:{consumer}"


def former_processing_list(queue: str, consumer: str) -> str:
    """List mode: the processing list's name before it had a hash tag; a listener recovers what is left in it."""
    return f"{queue}:processing:{consumer}"
