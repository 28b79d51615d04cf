"""Every Redis key, channel, stream and group name s3s3 uses, in one place."""

from __future__ import annotations

DEFAULT_CHANNEL = "backup"  # pubsub channel producers PUBLISH key names on
DEFAULT_URL = "redis://localhost:6379/0"  # the Redis of [pubsub] url when none is given
