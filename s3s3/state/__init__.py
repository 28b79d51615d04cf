"""What the services keep in Redis for each other: the ledger of copies, copies running now, dead letters,
the last copy per destination, and the one way every service connects to that Redis.

It imports only the store interface and the ground: the listener and the
bucket sync both use it, and it knows neither.
"""

from __future__ import annotations

from s3s3.state.connect import connect_redis

__all__ = ["connect_redis"]
